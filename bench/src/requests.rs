//! Workload A (issue 3): audited small GETs. N keep-alive mTLS clients,
//! one connection each, send `GET /v1/health` back to back for a fixed
//! time, against zonevault and then against the baseline, alternately.
//! Handshakes happen before the clock starts; only answers count.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::StatusCode;
use serde_json::{json, Value};

use crate::args::Plan;
use crate::baseline;
use crate::client::{Connection, Endpoint};
use crate::stats::{median, pair_ratios, percentile};
use crate::zonevault::Server;

/// The route both servers answer.
const PATH: &str = "/v1/health";
/// The role whose certificate the load clients present.
const ROLE: &str = "analyst";

/// One timed run against one server.
#[derive(Debug, Clone)]
pub struct Run {
    /// Requests answered with 200 inside the run.
    pub ok: u64,
    /// Requests answered otherwise, or failed.
    pub errors: u64,
    /// Answers per second.
    pub rps: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// The server process's CPU time (user + system, all threads) per
    /// answered request, µs.
    pub server_cpu_us: f64,
}

impl Run {
    fn to_json(&self) -> Value {
        json!({"ok": self.ok, "errors": self.errors, "rps": self.rps,
               "p50_ms": self.p50_ms, "p99_ms": self.p99_ms,
               "server_cpu_us_per_request": self.server_cpu_us})
    }
}

/// Everything workload A measured.
#[derive(Debug, Clone)]
pub struct Results {
    /// zonevault's runs, in order.
    pub ours: Vec<Run>,
    /// The baseline's runs, in order.
    pub baseline: Vec<Run>,
    /// zonevault's ledger fsyncs per 1000 ledger entries over its runs.
    pub fsyncs_per_1000: f64,
    /// Mean time of one of those fsyncs, ms.
    pub fsync_mean_ms: f64,
    /// Concurrent clients.
    pub clients: usize,
}

impl Results {
    /// Median of the per-pair throughput ratios (zonevault / baseline).
    pub fn ratio(&self) -> f64 {
        median(&pair_ratios(&rps(&self.ours), &rps(&self.baseline)))
    }

    /// The median of `f` over `runs`.
    pub fn median_of(runs: &[Run], f: impl Fn(&Run) -> f64) -> f64 {
        median(&runs.iter().map(f).collect::<Vec<_>>())
    }

    /// The JSON form for results.json.
    pub fn to_json(&self) -> Value {
        let runs = |r: &[Run]| r.iter().map(Run::to_json).collect::<Vec<_>>();
        json!({
            "clients": self.clients,
            "zonevault_runs": runs(&self.ours),
            "baseline_runs": runs(&self.baseline),
            "pair_ratios": pair_ratios(&rps(&self.ours), &rps(&self.baseline)),
            "ratio_median": self.ratio(),
            "fsyncs_per_1000_requests": self.fsyncs_per_1000,
            "fsync_mean_ms": self.fsync_mean_ms,
        })
    }
}

fn rps(runs: &[Run]) -> Vec<f64> {
    runs.iter().map(|r| r.rps).collect()
}

/// Runs `plan.pairs` pairs (zonevault, baseline) of workload A.
pub async fn run_pairs(plan: &Plan, server: &Server) -> Result<Results> {
    let pki = server.pki();
    let baseline = baseline::Process::start(&pki)?;
    let ours_at = server.endpoint(ROLE)?;
    let theirs_at = baseline.endpoint(&pki, ROLE)?;
    let operator = server.endpoint("operator")?;
    let before = ledger_counters(&operator).await?;
    let mut results = Results {
        ours: Vec::new(),
        baseline: Vec::new(),
        fsyncs_per_1000: f64::NAN,
        fsync_mean_ms: f64::NAN,
        clients: plan.clients,
    };
    for pair in 1..=plan.pairs {
        let ours = load(&ours_at, server.pid(), plan.clients, plan.duration).await?;
        eprintln!("A pair {pair}: zonevault {}", line(&ours));
        let theirs = load(&theirs_at, baseline.pid(), plan.clients, plan.duration).await?;
        eprintln!("A pair {pair}: baseline  {}", line(&theirs));
        results.ours.push(ours);
        results.baseline.push(theirs);
    }
    let after = ledger_counters(&operator).await?;
    let entries = after.entries.saturating_sub(before.entries);
    let fsyncs = after.fsyncs.saturating_sub(before.fsyncs);
    if entries > 0 {
        results.fsyncs_per_1000 = fsyncs as f64 * 1000.0 / entries as f64;
    }
    if fsyncs > 0 {
        results.fsync_mean_ms = (after.fsync_seconds - before.fsync_seconds) * 1e3 / fsyncs as f64;
    }
    Ok(results)
}

fn line(run: &Run) -> String {
    format!(
        "{:>9.0} req/s  p50 {:.2} ms  p99 {:.2} ms  server CPU {:.1} µs/req  ({} ok, {} errors)",
        run.rps, run.p50_ms, run.p99_ms, run.server_cpu_us, run.ok, run.errors
    )
}

/// One timed run of `clients` connections against `endpoint`, served by
/// process `pid`.
pub async fn load(
    endpoint: &Endpoint,
    pid: u32,
    clients: usize,
    duration: Duration,
) -> Result<Run> {
    let mut connections = Vec::with_capacity(clients);
    for _ in 0..clients {
        let mut c: Connection<Full<Bytes>> = endpoint.connect().await?;
        let (status, body) = c.get(PATH).await.context("warm-up request")?;
        if status != StatusCode::OK {
            bail!("GET {PATH}: {status}: {}", String::from_utf8_lossy(&body));
        }
        connections.push(c);
    }
    let cpu_before = cpu_seconds(pid)?;
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for c in connections {
        tasks.spawn(client(c, deadline));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    while let Some(done) = tasks.join_next().await {
        let (lat, errs) = done?;
        latencies.extend(lat);
        errors += errs;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid)? - cpu_before;
    latencies.sort_by(f64::total_cmp);
    Ok(Run {
        server_cpu_us: cpu * 1e6 / latencies.len().max(1) as f64,
        ok: latencies.len() as u64,
        errors,
        rps: latencies.len() as f64 / elapsed,
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
    })
}

/// One client: requests back to back until `deadline`; latencies (ms) of
/// the 200 answers, and the count of everything else.
async fn client(mut c: Connection<Full<Bytes>>, deadline: Instant) -> (Vec<f64>, u64) {
    let mut latencies = Vec::new();
    let mut errors = 0;
    while Instant::now() < deadline {
        let sent = Instant::now();
        match c.get(PATH).await {
            Ok((StatusCode::OK, _)) => latencies.push(sent.elapsed().as_secs_f64() * 1e3),
            Ok(_) => errors += 1,
            Err(_) => {
                // A broken connection stays broken: count it and stop.
                errors += 1;
                break;
            }
        }
    }
    (latencies, errors)
}

/// CPU seconds (user + system, all threads) that process `pid` has used,
/// from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    let ticks = parse_cpu_ticks(&stat).context("/proc/PID/stat has no utime and stime")?;
    Ok(ticks as f64 / USER_HZ)
}

/// Clock ticks per second in `/proc/<pid>/stat`: the kernel's `USER_HZ`,
/// 100 on every architecture Linux runs this on.
const USER_HZ: f64 = 100.0;

/// utime + stime (fields 14 and 15) from a `/proc/<pid>/stat` line; the
/// command name in parentheses may itself hold spaces.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The ledger's size and fsync count, from `/metrics` as the operator.
/// Each reading uses a new connection: the server closes idle ones.
#[derive(Debug, Clone, Copy)]
struct LedgerCounters {
    entries: u64,
    fsyncs: u64,
    fsync_seconds: f64,
}

async fn ledger_counters(operator: &Endpoint) -> Result<LedgerCounters> {
    let mut conn: Connection<Full<Bytes>> = operator.connect().await?;
    let (status, body) = conn.get("/metrics").await?;
    if status != StatusCode::OK {
        bail!("GET /metrics: {status}");
    }
    let text = String::from_utf8_lossy(&body);
    Ok(LedgerCounters {
        entries: metric(&text, "zonevault_ledger_size")? as u64,
        fsyncs: metric(&text, "zonevault_ledger_fsyncs_total")? as u64,
        fsync_seconds: metric(&text, "zonevault_ledger_fsync_seconds_sum")?,
    })
}

/// The value of the unlabelled sample `name` in Prometheus text.
fn metric(text: &str, name: &str) -> Result<f64> {
    text.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .find_map(|v| v.trim().parse::<f64>().ok())
        .with_context(|| format!("/metrics has no {name}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_unlabelled_samples_only() {
        let text = "# HELP zonevault_ledger_size x\nzonevault_ledger_size 42\n\
                    zonevault_ledger_fsyncs_total 7\nzonevault_ledger_fsyncs_total_x 9\n\
                    zonevault_ledger_fsync_seconds_sum 0.25\n";
        assert_eq!(metric(text, "zonevault_ledger_size").unwrap(), 42.0);
        assert_eq!(metric(text, "zonevault_ledger_fsyncs_total").unwrap(), 7.0);
        assert_eq!(
            metric(text, "zonevault_ledger_fsync_seconds_sum").unwrap(),
            0.25
        );
        assert!(metric(text, "zonevault_missing").is_err());
    }

    #[test]
    fn cpu_ticks_are_utime_plus_stime() {
        let stat = "4242 (tokio (rt) w) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 75 0 0 20 0 3 0 123 456 789";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
        assert_eq!(parse_cpu_ticks("4242 (x) S 1"), None);
    }
}
