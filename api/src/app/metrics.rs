//! `GET /metrics`: Prometheus text: requests by route and status, TLS
//! handshake failures by reason, ledger size, fsync latencies and entries
//! per group commit.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use vault::ledger::Histogram;

use super::AppState;

/// Request counters, keyed by route pattern and status.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
}

impl Metrics {
    /// Counts one answered request.
    pub fn count(&self, route: &'static str, status: StatusCode) {
        if let Ok(mut map) = self.requests.lock() {
            *map.entry((route, status.as_u16())).or_default() += 1;
        }
    }

    fn snapshot(&self) -> Vec<((&'static str, u16), u64)> {
        self.requests
            .lock()
            .map(|m| m.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default()
    }
}

/// Renders the metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "health",
    summary = "Prometheus metrics",
    responses(
        (status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain; version=0.0.4"),
        super::openapi::ReadErrors,
    )
)]
pub async fn render(State(state): State<Arc<AppState>>) -> Response {
    let mut out = String::new();
    requests(&mut out, &state);
    handshakes(&mut out, &state);
    state.monitoring.write_prometheus(&mut out);
    ledger(&mut out, &state);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

fn requests(out: &mut String, state: &AppState) {
    out.push_str("# HELP zonevault_requests_total Requests answered, by route and status.\n");
    out.push_str("# TYPE zonevault_requests_total counter\n");
    for ((route, status), n) in state.metrics.snapshot() {
        let _ = writeln!(
            out,
            "zonevault_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
        );
    }
}

fn handshakes(out: &mut String, state: &AppState) {
    state.handshakes.write_prometheus(out);
}

fn ledger(out: &mut String, state: &AppState) {
    let _ = writeln!(
        out,
        "# HELP zonevault_ledger_size Entries in the audit ledger.\n\
         # TYPE zonevault_ledger_size gauge\nzonevault_ledger_size {}",
        state.ledger.size()
    );
    let _ = writeln!(
        out,
        "# HELP zonevault_ledger_fsyncs_total Ledger fsyncs.\n\
         # TYPE zonevault_ledger_fsyncs_total counter\nzonevault_ledger_fsyncs_total {}",
        state.ledger.fsync_count()
    );
    write_histogram(
        out,
        "zonevault_ledger_fsync_seconds",
        "Ledger fsync latency.",
        &state.ledger.fsync_histogram(),
    );
    write_histogram(
        out,
        "zonevault_ledger_batch_entries",
        "Entries made durable by each ledger group commit (one fsync).",
        &state.ledger.batch_histogram(),
    );
}

/// One histogram in Prometheus text: cumulative buckets, sum and count.
fn write_histogram(out: &mut String, name: &str, help: &str, h: &Histogram) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    let mut cumulative = 0u64;
    for (i, count) in h.counts.iter().enumerate() {
        cumulative += count;
        let le = h.bounds.get(i).map_or("+Inf".to_owned(), |b| b.to_string());
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_sum {}", h.sum);
    let _ = writeln!(out, "{name}_count {}", h.count);
}
