//! Workload C (issue 5): a desensitized CSV extract of a whole generated
//! dataset over mTLS (`POST /v1/extracts` as the analyst: grant checks,
//! desensitization per the policy, streaming, a start and a completion
//! ledger entry), against `sqlite3 -csv plain.db "SELECT * FROM t"` of the
//! same rows unencrypted, output to /dev/null, alternately. Also the
//! server's peak RSS during an extract (VmHWM, reset before each), and the
//! same for the 10M-row dataset of the memory check.
//!
//! Setup (not timed) goes the way the guidance orders it: the dataset is
//! imported and its schema confirmed, partner-a gets its tier and
//! permissions, a data-use filing is acknowledged by the regulator, and the
//! operator grants the analyst every column under that filing.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::StatusCode;
use serde_json::{json, Value};

use crate::args::Plan;
use crate::client::Connection;
use crate::import::{self, Outcome};
use crate::stats::{median, pair_ratios};
use crate::zonevault::Server;

/// The analyst of the harness PKI (`pki/analyst`).
const ANALYST: &str = "spiffe://test.zonevault/analyst/partner-a/carol";
/// Every column of `vault::sample`.
const COLUMNS: &str = "id,name,resident_id,mobile,bank_card,address,amount,registered";

/// Workload C's figures.
#[derive(Debug, Clone)]
pub struct Results {
    /// Rows in the dataset.
    pub rows: u64,
    /// Rows the extract returned (fewer if k-anonymity suppressed some).
    pub rows_returned: u64,
    /// Column → technique, from the extract's manifest.
    pub techniques: Vec<(String, String)>,
    /// zonevault's rows/s per run.
    pub ours: Vec<f64>,
    /// sqlite3's rows/s per run.
    pub baseline: Vec<f64>,
    /// The server's highest VmHWM over the extracts, KiB.
    pub peak_rss_kib: u64,
}

impl Results {
    /// Median of the per-pair rows/s ratios (zonevault / sqlite3).
    pub fn ratio(&self) -> f64 {
        median(&pair_ratios(&self.ours, &self.baseline))
    }

    /// The JSON form for results.json.
    pub fn to_json(&self) -> Value {
        let techniques: serde_json::Map<String, Value> = self
            .techniques
            .iter()
            .map(|(c, t)| (c.clone(), json!(t)))
            .collect();
        json!({
            "rows": self.rows,
            "rows_returned": self.rows_returned,
            "techniques": techniques,
            "zonevault_rows_per_s": self.ours,
            "sqlite3_rows_per_s": self.baseline,
            "pair_ratios": pair_ratios(&self.ours, &self.baseline),
            "ratio_median": self.ratio(),
            "server_peak_rss_mib": self.peak_rss_kib as f64 / 1024.0,
        })
    }
}

/// One extract's figures.
#[derive(Debug, Clone)]
pub struct Run {
    /// Rows returned.
    pub rows: u64,
    /// Rows returned per second, request to last byte.
    pub rows_per_s: f64,
    /// The server's VmHWM during the extract, KiB.
    pub peak_rss_kib: u64,
    /// The extract's id (for its manifest).
    pub extract_id: String,
}

/// Runs `plan.pairs` pairs (zonevault extract, sqlite3 select).
pub async fn run_pairs(plan: &Plan, server: &Server) -> Result<Outcome<Results>> {
    let dataset = "extract-src";
    if let Err(missing) = import::fill(server, plan.rows, dataset).await? {
        return Ok(Outcome::Skipped(missing));
    }
    let grant = prepare(server, dataset, plan.rows, plan.pairs)?;
    let db = plain_db(server, plan.rows)?;
    let mut results = Results {
        rows: plan.rows,
        rows_returned: 0,
        techniques: Vec::new(),
        ours: Vec::new(),
        baseline: Vec::new(),
        peak_rss_kib: 0,
    };
    for pair in 1..=plan.pairs {
        let ours = extract(server, &grant).await?;
        eprintln!(
            "C pair {pair}: zonevault {:>9.0} rows/s  peak RSS {:.0} MiB",
            ours.rows_per_s,
            ours.peak_rss_kib as f64 / 1024.0
        );
        let theirs = sqlite_select(&db, plan.rows)?;
        eprintln!("C pair {pair}: sqlite3   {theirs:>9.0} rows/s");
        if results.techniques.is_empty() {
            results.techniques = techniques(server, &ours.extract_id).await?;
        }
        results.rows_returned = ours.rows;
        results.ours.push(ours.rows_per_s);
        results.baseline.push(theirs);
        results.peak_rss_kib = results.peak_rss_kib.max(ours.peak_rss_kib);
    }
    Ok(Outcome::Measured(results))
}

/// Extracts the whole of `dataset` (already imported with `rows` rows) once;
/// for the 10M-row memory check.
pub async fn once(server: &Server, dataset: &str, rows: u64) -> Result<Run> {
    let grant = prepare(server, dataset, rows, 1)?;
    extract(server, &grant).await
}

/// Confirms the schema, sets partner-a's tier and permissions, files and
/// acknowledges a filing of `dataset`, and grants the analyst every column
/// for `extracts` extracts of up to `rows` rows; the grant's id.
fn prepare(server: &Server, dataset: &str, rows: u64, extracts: u32) -> Result<String> {
    let app = server.appliance();
    app.operator_ok(&["dataset", "confirm", "--id", dataset]);
    app.operator_ok(&e2e::appliance::PARTNER_A_TIER_2);
    let scope = format!("{dataset}:{COLUMNS}");
    let filing = app.acknowledged_filing("benchmark", &scope, "extract");
    let grant = json!({"recipient": ANALYST, "dataset": dataset,
                       "columns": COLUMNS.split(',').collect::<Vec<_>>(),
                       "purpose": "benchmark", "filing": filing, "row_limit": rows,
                       "max_extracts": extracts, "expires": "2100-01-01T00:00:00Z"});
    let (code, body) = app.curl("operator", "POST", "/v1/grants", Some(&grant.to_string()));
    ensure!(code == 201, "grant: {code}: {body}");
    let answer: Value = serde_json::from_str(&body).context("grant answer is not JSON")?;
    answer["id"]
        .as_str()
        .map(str::to_owned)
        .context("grant answer has no id")
}

/// One timed CSV extract under `grant` as the analyst, streamed and
/// counted, never kept.
async fn extract(server: &Server, grant: &str) -> Result<Run> {
    let mut analyst: Connection<Full<Bytes>> = server.endpoint("analyst")?.connect().await?;
    if !import::reset_peak_rss(server.pid()) {
        eprintln!("note: cannot reset VmHWM; peak RSS is the server's lifetime peak");
    }
    let started = Instant::now();
    let answer = analyst
        .post_counting("/v1/extracts", &json!({"grant": grant, "format": "csv"}))
        .await?;
    let secs = started.elapsed().as_secs_f64();
    if answer.status != StatusCode::OK {
        bail!(
            "extract: {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.error_body)
        );
    }
    let extract_id = answer
        .headers
        .get("zonevault-extract-id")
        .and_then(|v| v.to_str().ok())
        .context("extract answer has no Zonevault-Extract-Id")?
        .to_owned();
    let rows = answer.lines.saturating_sub(1); // the header line
    Ok(Run {
        rows,
        rows_per_s: rows as f64 / secs,
        peak_rss_kib: import::peak_rss_kib(server.pid())?,
        extract_id,
    })
}

/// Column → technique from the extract's signed manifest.
async fn techniques(server: &Server, extract_id: &str) -> Result<Vec<(String, String)>> {
    let mut analyst: Connection<Full<Bytes>> = server.endpoint("analyst")?.connect().await?;
    let (status, body) = analyst
        .get(&format!("/v1/extracts/{extract_id}/manifest"))
        .await?;
    ensure!(status == StatusCode::OK, "manifest: {status}");
    // `{"id", "note" (the signed note), "manifest" (its JSON)}`.
    let answer: Value = serde_json::from_slice(&body).context("manifest answer is not JSON")?;
    let columns = answer["manifest"]["columns"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    Ok(columns
        .iter()
        .map(|c| {
            let name = c["name"].as_str().unwrap_or("?").to_owned();
            (name, technique_name(&c["technique"]))
        })
        .collect())
}

/// `"keep"`, or the tag of a technique with parameters (`{"mask": …}`).
fn technique_name(t: &Value) -> String {
    match t {
        Value::String(s) => s.clone(),
        Value::Object(m) => m.keys().cloned().collect::<Vec<_>>().join("+"),
        other => other.to_string(),
    }
}

/// The same generated rows in an unencrypted SQLite database (not timed).
fn plain_db(server: &Server, rows: u64) -> Result<std::path::PathBuf> {
    let scratch = server.scratch()?;
    let csv = scratch.join(format!("sample-{rows}.csv"));
    let db = scratch.join("plain-extract.db");
    let _ = std::fs::remove_file(&db);
    let import = format!(".import --csv \"{}\" t", csv.display());
    let out = Command::new("sqlite3")
        .arg(&db)
        .arg(import)
        .output()
        .context("run sqlite3 (apt package sqlite3)")?;
    ensure!(
        out.status.success(),
        "sqlite3 .import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(db)
}

/// The baseline: `sqlite3 -csv plain.db "SELECT * FROM t"` to /dev/null;
/// rows/s.
fn sqlite_select(db: &Path, rows: u64) -> Result<f64> {
    let started = Instant::now();
    let status = Command::new("sqlite3")
        .arg("-csv")
        .arg(db)
        .arg("SELECT * FROM t")
        .stdout(Stdio::null())
        .status()
        .context("run sqlite3")?;
    let secs = started.elapsed().as_secs_f64();
    ensure!(status.success(), "sqlite3 SELECT failed: {status}");
    Ok(rows as f64 / secs)
}
