//! The table printed at the end and `target/bench/results.json`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::args::{Plan, MIN_VALID_PAIRS};
use crate::import::{self, Memory};
use crate::requests::{self, Run};

/// Target of workload A: zonevault req/s ÷ baseline req/s.
pub const TARGET_REQUESTS: f64 = 0.7;
/// Target of workload B: zonevault rows/s ÷ sqlite3 rows/s.
pub const TARGET_IMPORT: f64 = 0.5;
/// Bound on the server's peak RSS during a 10M-row import, MiB.
pub const TARGET_PEAK_RSS_MIB: f64 = 200.0;

/// Everything one run measured.
pub struct Report {
    plan: Plan,
    /// Spawn to listening of `zonevault serve` (unseal on swtpm included), ms.
    pub server_start_ms: Option<f64>,
    /// Workload A.
    pub requests: Option<requests::Results>,
    /// Workload B.
    pub import: Option<import::Outcome>,
    /// The 10M-row memory check; `Err` holds why it was skipped.
    pub memory_10m: Option<Result<Memory, String>>,
}

impl Report {
    /// An empty report for `plan`.
    pub fn new(plan: &Plan) -> Report {
        Report {
            plan: plan.clone(),
            server_start_ms: None,
            requests: None,
            import: None,
            memory_10m: None,
        }
    }

    /// Prints the table on stdout.
    pub fn print(&self) {
        println!("\n{}", self.table());
    }

    fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "zonevault bench on {}", machine());
        let validity = if self.plan.pairs < MIN_VALID_PAIRS {
            " (too few pairs: not a valid run)"
        } else {
            ""
        };
        let _ = writeln!(
            t,
            "{} pair(s) per workload, alternating; figures are medians; \
             ratio = median of per-pair ratios{validity}",
            self.plan.pairs
        );
        let _ = writeln!(
            t,
            "\n{:<40} {:>12} {:>12} {:>7} {:>9}  met",
            "workload", "zonevault", "baseline", "ratio", "target"
        );
        let _ = writeln!(t, "{}", "-".repeat(92));
        if let Some(a) = &self.requests {
            requests_rows(&mut t, a);
        }
        match &self.import {
            Some(import::Outcome::Measured(b)) => import_rows(&mut t, b),
            Some(import::Outcome::Skipped(why)) => {
                let _ = writeln!(t, "{:<40} skipped: {why}", "B  CSV import rows/s");
            }
            None => {}
        }
        match &self.memory_10m {
            Some(Ok(m)) => memory_row(&mut t, m),
            Some(Err(why)) => {
                let _ = writeln!(
                    t,
                    "{:<40} skipped: {why}",
                    "10M-row import: server peak RSS"
                );
            }
            None => {}
        }
        if let Some(ms) = self.server_start_ms {
            let _ = writeln!(
                t,
                "{:<40} {:>12.0} (report only)",
                "server start incl. unseal (swtpm), ms", ms
            );
        }
        let _ = writeln!(
            t,
            "\nThe machine is shared: concurrent compiles or tests skew single runs; \
             compare the medians and the per-pair ratios in the JSON."
        );
        t
    }

    /// Writes the results as JSON to `path` (directories created).
    pub fn write_json(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(&self.to_json())?;
        std::fs::write(path, text + "\n").with_context(|| format!("write {}", path.display()))
    }

    fn to_json(&self) -> Value {
        let import = match &self.import {
            Some(import::Outcome::Measured(b)) => {
                let mut v = b.to_json();
                v["target"] = json!(TARGET_IMPORT);
                v["met"] = json!(b.ratio() >= TARGET_IMPORT);
                v
            }
            Some(import::Outcome::Skipped(why)) => json!({ "skipped": why }),
            None => Value::Null,
        };
        let requests = self.requests.as_ref().map_or(Value::Null, |a| {
            let mut v = a.to_json();
            v["target"] = json!(TARGET_REQUESTS);
            v["met"] = json!(a.ratio() >= TARGET_REQUESTS);
            v
        });
        let memory = match &self.memory_10m {
            Some(Ok(m)) => json!({
                "rows": m.rows,
                "rows_per_s": m.rows_per_s,
                "server_peak_rss_mib": m.peak_rss_kib as f64 / 1024.0,
                "target_mib": TARGET_PEAK_RSS_MIB,
                "met": (m.peak_rss_kib as f64 / 1024.0) < TARGET_PEAK_RSS_MIB,
            }),
            Some(Err(why)) => json!({ "skipped": why }),
            None => Value::Null,
        };
        json!({
            "machine": machine(),
            "unix_time": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            "pairs": self.plan.pairs,
            "duration_secs": self.plan.duration.as_secs(),
            "server_start_ms": self.server_start_ms,
            "requests": requests,
            "import": import,
            "memory_10m": memory,
        })
    }
}

fn requests_rows(t: &mut String, a: &requests::Results) {
    let ours = |f: fn(&Run) -> f64| requests::Results::median_of(&a.ours, f);
    let base = |f: fn(&Run) -> f64| requests::Results::median_of(&a.baseline, f);
    let ratio = a.ratio();
    let label = format!("A  audited GET, {} clients, req/s", a.clients);
    row(
        t,
        &label,
        ours(|r| r.rps),
        base(|r| r.rps),
        Some((
            ratio,
            format!("≥ {TARGET_REQUESTS}"),
            ratio >= TARGET_REQUESTS,
        )),
    );
    row(
        t,
        "   latency p50, ms",
        ours(|r| r.p50_ms),
        base(|r| r.p50_ms),
        None,
    );
    row(
        t,
        "   latency p99, ms",
        ours(|r| r.p99_ms),
        base(|r| r.p99_ms),
        None,
    );
    row(
        t,
        "   ledger fsyncs per 1000 requests",
        a.fsyncs_per_1000,
        f64::NAN,
        None,
    );
}

fn import_rows(t: &mut String, b: &import::Results) {
    let ratio = b.ratio();
    let label = format!("B  CSV import {} rows, rows/s", b.rows);
    row(
        t,
        &label,
        crate::stats::median(&b.ours),
        crate::stats::median(&b.baseline),
        Some((ratio, format!("≥ {TARGET_IMPORT}"), ratio >= TARGET_IMPORT)),
    );
    row(
        t,
        "   server peak RSS, MiB",
        b.peak_rss_kib as f64 / 1024.0,
        f64::NAN,
        None,
    );
}

fn memory_row(t: &mut String, m: &Memory) {
    let label = format!("M  import {} rows, rows/s", m.rows);
    row(t, &label, m.rows_per_s, f64::NAN, None);
    let mib = m.peak_rss_kib as f64 / 1024.0;
    let target = format!("< {TARGET_PEAK_RSS_MIB}");
    let ok = met(mib < TARGET_PEAK_RSS_MIB);
    let label = "   server peak RSS, MiB";
    let _ = writeln!(
        t,
        "{label:<40} {mib:>12.0} {:>12} {:>7} {target:>9}  {ok}",
        "—", ""
    );
}

fn row(t: &mut String, label: &str, ours: f64, base: f64, target: Option<(f64, String, bool)>) {
    let num = |v: f64| {
        if v.is_nan() {
            "—".to_owned()
        } else if v >= 100.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.2}")
        }
    };
    let _ = write!(t, "{label:<40} {:>12} {:>12}", num(ours), num(base));
    match target {
        Some((ratio, target, ok)) => {
            let _ = writeln!(t, " {ratio:>7.2} {target:>9}  {}", met(ok));
        }
        None => t.push('\n'),
    }
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT MET"
    }
}

/// CPU model and core count, for the record.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores")
}
