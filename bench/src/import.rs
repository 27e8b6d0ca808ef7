//! Workload B (issue 4): import generated CSV through
//! `PUT /v1/datasets/{id}/rows` (detection, encryption, ledger) into a new
//! dataset per run, against `sqlite3 plain.db ".import --csv"` of the same
//! file into an unencrypted database, alternately. Also the server's peak
//! RSS while it imports, from `/proc/<pid>/status` (VmHWM, reset before
//! each import through `/proc/<pid>/clear_refs`).
//!
//! If the server does not have the routes yet, the workload reports
//! "skipped: route missing" instead of failing the whole run.

use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{Channel, Full};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

use crate::args::{Plan, MEMORY_CHECK_ROWS};
use crate::client::Connection;
use crate::stats::{median, pair_ratios};
use crate::zonevault::Server;

/// Seed of the generated data: every run imports the same bytes.
const SEED: u64 = 20_240_601;
/// The zone every benchmark dataset lives in.
const ZONE: &str = "bench";
/// Bytes per body chunk sent to the server.
const CHUNK: usize = 256 * 1024;

/// What a workload produced.
#[derive(Debug, Clone)]
pub enum Outcome<T = Results> {
    /// Measured.
    Measured(T),
    /// Not measured, and why (e.g. "route missing: PUT /v1/datasets/{id}/rows").
    Skipped(String),
}

/// Workload B's figures.
#[derive(Debug, Clone)]
pub struct Results {
    /// Rows per import.
    pub rows: u64,
    /// Size of the CSV file.
    pub csv_bytes: u64,
    /// zonevault's rows/s per run.
    pub ours: Vec<f64>,
    /// sqlite3's rows/s per run.
    pub baseline: Vec<f64>,
    /// The server's highest VmHWM over the imports, KiB.
    pub peak_rss_kib: u64,
}

impl Results {
    /// Median of the per-pair rows/s ratios (zonevault / sqlite3).
    pub fn ratio(&self) -> f64 {
        median(&pair_ratios(&self.ours, &self.baseline))
    }

    /// The JSON form for results.json.
    pub fn to_json(&self) -> Value {
        json!({
            "rows": self.rows,
            "csv_bytes": self.csv_bytes,
            "zonevault_rows_per_s": self.ours,
            "sqlite3_rows_per_s": self.baseline,
            "pair_ratios": pair_ratios(&self.ours, &self.baseline),
            "ratio_median": self.ratio(),
            "server_peak_rss_mib": self.peak_rss_kib as f64 / 1024.0,
        })
    }
}

/// The 10M-row memory check's figures.
#[derive(Debug, Clone)]
pub struct Memory {
    /// Rows imported.
    pub rows: u64,
    /// zonevault's rows/s.
    pub rows_per_s: f64,
    /// The server's VmHWM during the import, KiB.
    pub peak_rss_kib: u64,
}

/// Runs `plan.pairs` pairs (zonevault import, sqlite3 import).
pub async fn run_pairs(plan: &Plan, server: &Server) -> Result<Outcome> {
    let scratch = server.scratch()?;
    let csv = generate(&scratch, plan.rows).await?;
    let csv_bytes = std::fs::metadata(&csv)?.len();
    let mut results = Results {
        rows: plan.rows,
        csv_bytes,
        ours: Vec::new(),
        baseline: Vec::new(),
        peak_rss_kib: 0,
    };
    for pair in 1..=plan.pairs {
        let ours = match import(server, &csv, plan.rows, &format!("bench-{pair}")).await? {
            Ok(run) => run,
            Err(missing) => return Ok(Outcome::Skipped(missing)),
        };
        eprintln!(
            "B pair {pair}: zonevault {:>9.0} rows/s  peak RSS {:.0} MiB",
            ours.rows_per_s,
            ours.peak_rss_kib as f64 / 1024.0
        );
        let theirs = sqlite_import(&csv, &scratch, plan.rows)?;
        eprintln!("B pair {pair}: sqlite3   {theirs:>9.0} rows/s");
        results.ours.push(ours.rows_per_s);
        results.baseline.push(theirs);
        results.peak_rss_kib = results.peak_rss_kib.max(ours.peak_rss_kib);
    }
    Ok(Outcome::Measured(results))
}

/// Creates dataset `id` and imports `rows` generated rows into it (the CSV
/// is generated once per size and kept for later workloads); not timed.
/// `Ok(Err(why))` when a route is missing.
pub async fn fill(server: &Server, rows: u64, id: &str) -> Result<Result<(), String>> {
    let csv = generate(&server.scratch()?, rows).await?;
    Ok(import(server, &csv, rows, id).await?.map(|_| ()))
}

/// Imports 10,000,000 rows once and reports the server's peak RSS;
/// `Err` inside `Ok` when the routes are missing.
pub async fn memory_check(server: &Server) -> Result<Result<Memory, String>> {
    let scratch = server.scratch()?;
    let csv = generate(&scratch, MEMORY_CHECK_ROWS).await?;
    let run = import(server, &csv, MEMORY_CHECK_ROWS, "bench-10m").await?;
    std::fs::remove_file(&csv)?;
    if let Ok(m) = &run {
        eprintln!(
            "10M rows: zonevault {:.0} rows/s, peak RSS {:.0} MiB",
            m.rows_per_s,
            m.peak_rss_kib as f64 / 1024.0
        );
    }
    Ok(run)
}

/// Writes `rows` rows of `vault::sample` CSV (with a header) into `dir`,
/// unless an earlier workload already did.
pub async fn generate(dir: &Path, rows: u64) -> Result<PathBuf> {
    let path = dir.join(format!("sample-{rows}.csv"));
    if path.is_file() {
        return Ok(path);
    }
    eprintln!("generating {rows} rows of CSV…");
    let out = path.clone();
    tokio::task::spawn_blocking(move || -> Result<()> {
        let file = std::fs::File::create(&out)?;
        vault::sample::write_csv(rows, SEED, BufWriter::with_capacity(1 << 20, file))?;
        Ok(())
    })
    .await??;
    Ok(path)
}

/// A zone for the benchmark (once) and a new dataset `id` in it, then the
/// timed import. `Ok(Err(why))` when a route is missing.
async fn import(
    server: &Server,
    csv: &Path,
    rows: u64,
    id: &str,
) -> Result<Result<Memory, String>> {
    let endpoint = server.endpoint("operator")?;
    let mut operator: Connection<Full<Bytes>> = endpoint.connect().await?;
    if let Err(missing) = create_dataset(&mut operator, id).await? {
        return Ok(Err(missing));
    }
    if !reset_peak_rss(server.pid()) {
        eprintln!("note: cannot reset VmHWM; peak RSS is the server's lifetime peak");
    }
    let started = Instant::now();
    let (status, body) = send_csv(&endpoint, csv, id).await?;
    let secs = started.elapsed().as_secs_f64();
    if matches!(
        status,
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
    ) {
        return Ok(Err(format!(
            "route missing: PUT /v1/datasets/{{id}}/rows ({status})"
        )));
    }
    if !status.is_success() {
        bail!("import {id}: {status}: {}", String::from_utf8_lossy(&body));
    }
    check_row_count(&body, rows, id)?;
    Ok(Ok(Memory {
        rows,
        rows_per_s: rows as f64 / secs,
        peak_rss_kib: peak_rss_kib(server.pid())?,
    }))
}

/// `Ok(Err(route))` when the server does not have a route it needs.
async fn create_dataset(
    operator: &mut Connection<Full<Bytes>>,
    id: &str,
) -> Result<Result<(), String>> {
    let missing =
        |s: StatusCode| matches!(s, StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED);
    let zone = json!({"id": ZONE, "name": "Benchmark zone", "kind": "sectoral",
                      "domain": "finance", "supervisor": "bjeit"});
    let ok = [StatusCode::OK, StatusCode::CREATED, StatusCode::CONFLICT];
    let all = [
        &ok[..],
        &[StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED],
    ]
    .concat();
    let (status, _) = operator
        .json(Method::POST, "/v1/zones", &zone, &all)
        .await?;
    if missing(status) {
        return Ok(Err("route missing: POST /v1/zones".to_owned()));
    }
    let dataset = json!({"id": id, "title": "Benchmark import", "provider": "bureau-x",
                         "source": "operator-own", "retention": "365d"});
    let path = format!("/v1/zones/{ZONE}/datasets");
    let created = [StatusCode::OK, StatusCode::CREATED, StatusCode::NOT_FOUND];
    let (status, _) = operator
        .json(Method::POST, &path, &dataset, &created)
        .await?;
    if missing(status) {
        return Ok(Err(
            "route missing: POST /v1/zones/{zone}/datasets".to_owned()
        ));
    }
    Ok(Ok(()))
}

/// Streams `csv` as the body of `PUT /v1/datasets/{id}/rows` on a new
/// connection, in [`CHUNK`]-sized pieces; never holds the file in memory.
async fn send_csv(
    endpoint: &crate::client::Endpoint,
    csv: &Path,
    id: &str,
) -> Result<(StatusCode, Bytes)> {
    let mut conn: Connection<Channel<Bytes>> = endpoint.connect().await?;
    let (mut tx, body) = Channel::<Bytes>::new(4);
    let mut file = tokio::fs::File::open(csv)
        .await
        .with_context(|| format!("open {}", csv.display()))?;
    let feeder = tokio::spawn(async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = file.read(&mut buf).await?;
            // A send error means the server answered early; its answer says why.
            if n == 0
                || tx
                    .send_data(Bytes::copy_from_slice(&buf[..n]))
                    .await
                    .is_err()
            {
                return Ok::<(), std::io::Error>(());
            }
        }
    });
    let path = format!("/v1/datasets/{id}/rows");
    let answer = conn.send(Method::PUT, &path, "text/csv", body).await;
    feeder.await??;
    answer
}

/// If the answer names a row count, it must be `rows`.
fn check_row_count(body: &[u8], rows: u64, id: &str) -> Result<()> {
    let Ok(answer) = serde_json::from_slice::<Value>(body) else {
        return Ok(());
    };
    let count = ["row_count", "rows", "imported"]
        .iter()
        .find_map(|k| answer.get(*k).and_then(Value::as_u64));
    match count {
        Some(n) if n != rows => bail!("import {id}: server says {n} rows, sent {rows}"),
        _ => Ok(()),
    }
}

/// The baseline: `sqlite3 plain.db ".import --csv FILE rows"` into a new,
/// unencrypted database; rows/s.
fn sqlite_import(csv: &Path, dir: &Path, rows: u64) -> Result<f64> {
    let db = dir.join("plain.db");
    let _ = std::fs::remove_file(&db);
    let import = format!(".import --csv \"{}\" rows", csv.display());
    let started = Instant::now();
    let out = Command::new("sqlite3")
        .arg(&db)
        .arg(import)
        .output()
        .context("run sqlite3 (apt package sqlite3)")?;
    let secs = started.elapsed().as_secs_f64();
    if !out.status.success() || !out.stderr.is_empty() {
        bail!(
            "sqlite3 .import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let count = Command::new("sqlite3")
        .arg(&db)
        .arg("SELECT count(*) FROM rows")
        .output()?;
    let n: u64 = String::from_utf8_lossy(&count.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    if n != rows {
        bail!("sqlite3 imported {n} rows, expected {rows}");
    }
    std::fs::remove_file(&db)?;
    Ok(rows as f64 / secs)
}

/// Resets the process's peak RSS (VmHWM) to its current RSS (Linux ≥ 4.0,
/// `echo 5 > /proc/PID/clear_refs`); false if that is not possible.
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// VmHWM of `pid`, KiB.
pub fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_vm_hwm(&status).context("no VmHWM in /proc/PID/status")
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_hwm() {
        let status = "Name:\tzonevault\nVmPeak:\t  900 kB\nVmHWM:\t   51234 kB\nVmRSS:\t 400 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(51234));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
    }

    #[test]
    fn a_row_count_in_the_answer_must_match() {
        assert!(check_row_count(br#"{"row_count": 10}"#, 10, "d").is_ok());
        assert!(check_row_count(br#"{"row_count": 9}"#, 10, "d").is_err());
        assert!(check_row_count(b"not json", 10, "d").is_ok());
    }
}
