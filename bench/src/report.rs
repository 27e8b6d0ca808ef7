//! The table printed at the end and `target/bench/results.json`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::args::{Plan, MIN_VALID_PAIRS};
use crate::destruction;
use crate::extract;
use crate::import::{self, Memory};
use crate::requests::{self, Run};

/// Target of workload A: zonevault req/s ÷ baseline req/s.
pub const TARGET_REQUESTS: f64 = 0.7;
/// Target of workload B: zonevault rows/s ÷ sqlite3 rows/s.
pub const TARGET_IMPORT: f64 = 0.5;
/// Target of workload C: zonevault rows/s ÷ sqlite3 rows/s.
pub const TARGET_EXTRACT: f64 = 0.5;
/// Bound of workload D: large destruction time ÷ small destruction time.
pub const TARGET_DESTRUCTION: f64 = 1.5;
/// Bound on the server's peak RSS during a 10M-row import, MiB.
pub const TARGET_PEAK_RSS_MIB: f64 = 200.0;

/// Everything one run measured.
pub struct Report {
    plan: Plan,
    /// Spawn to listening of `zonevault serve` (unseal on swtpm included), ms.
    pub server_start_ms: Option<f64>,
    /// The unseal alone (swtpm), from the server's log, ms.
    pub unseal_ms: Option<f64>,
    /// Workload A.
    pub requests: Option<requests::Results>,
    /// Workload B.
    pub import: Option<import::Outcome>,
    /// Workload C.
    pub extract: Option<import::Outcome<extract::Results>>,
    /// Workload D.
    pub destruction: Option<import::Outcome<destruction::Results>>,
    /// The 10M-row memory check; `Err` holds why it was skipped.
    pub memory_10m: Option<Result<Memory, String>>,
    /// The extract of the 10M-row dataset.
    pub memory_10m_extract: Option<extract::Run>,
}

impl Report {
    /// An empty report for `plan`.
    pub fn new(plan: &Plan) -> Report {
        Report {
            plan: plan.clone(),
            server_start_ms: None,
            unseal_ms: None,
            requests: None,
            import: None,
            extract: None,
            destruction: None,
            memory_10m: None,
            memory_10m_extract: None,
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
        match &self.extract {
            Some(import::Outcome::Measured(c)) => extract_rows(&mut t, c),
            Some(import::Outcome::Skipped(why)) => {
                let _ = writeln!(t, "{:<40} skipped: {why}", "C  CSV extract rows/s");
            }
            None => {}
        }
        match &self.destruction {
            Some(import::Outcome::Measured(d)) => destruction_rows(&mut t, d),
            Some(import::Outcome::Skipped(why)) => {
                let _ = writeln!(t, "{:<40} skipped: {why}", "D  destruction");
            }
            None => {}
        }
        match &self.memory_10m {
            Some(Ok(m)) => memory_row(&mut t, m, self.memory_10m_extract.as_ref()),
            Some(Err(why)) => {
                let _ = writeln!(
                    t,
                    "{:<40} skipped: {why}",
                    "10M-row import: server peak RSS"
                );
            }
            None => {}
        }
        if let Some(ms) = self.unseal_ms {
            let _ = writeln!(
                t,
                "{:<40} {:>12.1} (report only)",
                "unseal of the master key (swtpm), ms", ms
            );
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
        let extract = match &self.extract {
            Some(import::Outcome::Measured(c)) => {
                let mut v = c.to_json();
                v["target"] = json!(TARGET_EXTRACT);
                v["met"] = json!(c.ratio() >= TARGET_EXTRACT);
                v
            }
            Some(import::Outcome::Skipped(why)) => json!({ "skipped": why }),
            None => Value::Null,
        };
        let destruction = match &self.destruction {
            Some(import::Outcome::Measured(d)) => {
                let mut v = d.to_json();
                v["target_at_most"] = json!(TARGET_DESTRUCTION);
                v["met"] = json!(d.ratio() <= TARGET_DESTRUCTION);
                v
            }
            Some(import::Outcome::Skipped(why)) => json!({ "skipped": why }),
            None => Value::Null,
        };
        let memory = match &self.memory_10m {
            Some(Ok(m)) => {
                let extract = self.memory_10m_extract.as_ref();
                let extract_mib = extract.map(|r| r.peak_rss_kib as f64 / 1024.0);
                let import_mib = m.peak_rss_kib as f64 / 1024.0;
                json!({
                    "rows": m.rows,
                    "rows_per_s": m.rows_per_s,
                    "server_peak_rss_mib": import_mib,
                    "extract_rows": extract.map(|r| r.rows),
                    "extract_rows_per_s": extract.map(|r| r.rows_per_s),
                    "extract_server_peak_rss_mib": extract_mib,
                    "target_mib": TARGET_PEAK_RSS_MIB,
                    "met": import_mib < TARGET_PEAK_RSS_MIB
                        && extract_mib.is_some_and(|e| e < TARGET_PEAK_RSS_MIB),
                })
            }
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
            "unseal_ms": self.unseal_ms,
            "requests": requests,
            "import": import,
            "extract": extract,
            "destruction": destruction,
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
        "   server CPU per request, µs",
        ours(|r| r.server_cpu_us),
        base(|r| r.server_cpu_us),
        None,
    );
    row(
        t,
        "   ledger fsyncs per 1000 requests",
        a.fsyncs_per_1000,
        f64::NAN,
        None,
    );
    row(
        t,
        "   mean ledger fsync, ms",
        a.fsync_mean_ms,
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

fn destruction_rows(t: &mut String, d: &destruction::Results) {
    let ratio = d.ratio();
    let label = format!("D  destroy {} vs {} rows, ms", d.large_rows, d.small_rows);
    row(
        t,
        &label,
        crate::stats::median(&d.large_ms),
        crate::stats::median(&d.small_ms),
        Some((
            ratio,
            format!("≤ {TARGET_DESTRUCTION}"),
            ratio <= TARGET_DESTRUCTION,
        )),
    );
}

fn memory_row(t: &mut String, m: &Memory, extract: Option<&extract::Run>) {
    let label = format!("M  import {} rows, rows/s", m.rows);
    row(t, &label, m.rows_per_s, f64::NAN, None);
    rss_row(t, "   server peak RSS, MiB", m.peak_rss_kib);
    if let Some(run) = extract {
        let label = format!("M  extract {} rows, rows/s", run.rows);
        row(t, &label, run.rows_per_s, f64::NAN, None);
        rss_row(t, "   server peak RSS, MiB", run.peak_rss_kib);
    }
}

fn rss_row(t: &mut String, label: &str, kib: u64) {
    let mib = kib as f64 / 1024.0;
    let target = format!("< {TARGET_PEAK_RSS_MIB}");
    let ok = met(mib < TARGET_PEAK_RSS_MIB);
    let _ = writeln!(
        t,
        "{label:<40} {mib:>12.0} {:>12} {:>7} {target:>9}  {ok}",
        "—", ""
    );
}

fn extract_rows(t: &mut String, c: &extract::Results) {
    let ratio = c.ratio();
    let label = format!("C  CSV extract {} rows, rows/s", c.rows_returned);
    row(
        t,
        &label,
        crate::stats::median(&c.ours),
        crate::stats::median(&c.baseline),
        Some((
            ratio,
            format!("≥ {TARGET_EXTRACT}"),
            ratio >= TARGET_EXTRACT,
        )),
    );
    row(
        t,
        "   server peak RSS, MiB",
        c.peak_rss_kib as f64 / 1024.0,
        f64::NAN,
        None,
    );
    let techniques: Vec<String> = c
        .techniques
        .iter()
        .map(|(col, tech)| format!("{col}={tech}"))
        .collect();
    let _ = writeln!(t, "   columns: {}", techniques.join(" "));
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
