//! Security monitoring over the API: the server runs
//! [`vault::monitor::Monitor`] over every new ledger entry (every
//! `interval_secs`, and first thing in `GET /v1/alerts`) and over the TLS
//! handshakes refused per address. Each alert becomes a `security.alert`
//! ledger event (its evidence as ledger indexes), a catalog record served
//! by `GET /v1/alerts` (operator, regulator), and a count in `/metrics`
//! (`zonevault_alerts_total{kind}`).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Extension, Router};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;
use serde_json::json;
use vault::catalog::StoredAlert;
use vault::ledger::{Decision, EntryKind, LedgerEntry};
use vault::monitor::{Alert, AlertKind, Monitor, Observed, Thresholds};

use super::audit::Audit;
use super::zones::{answer, catalog, Answer};
use super::AppState;
use crate::error::ApiError;
use crate::identity::Identity;

/// Entries read from the ledger per step.
const BATCH: u64 = 1000;

/// The monitor, where it has got to in the ledger, and alert counters.
pub struct Monitoring {
    inner: Mutex<(Monitor, u64)>,
    counts: [AtomicU64; 6],
    interval: Duration,
}

impl Monitoring {
    /// A monitor with `thresholds` that starts at ledger index `from`
    /// (the ledger's size at startup: baselines start empty).
    pub fn new(thresholds: Thresholds, from: u64) -> Monitoring {
        let interval = Duration::from_secs(thresholds.interval_secs.max(1));
        Monitoring {
            inner: Mutex::new((Monitor::new(thresholds), from)),
            counts: Default::default(),
            interval,
        }
    }

    fn count(&self, kind: AlertKind) {
        if let Some(i) = AlertKind::ALL.iter().position(|k| *k == kind) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Appends `zonevault_alerts_total{kind}` in Prometheus text format.
    pub fn write_prometheus(&self, out: &mut String) {
        let name = "zonevault_alerts_total";
        let _ = writeln!(
            out,
            "# HELP {name} Security alerts raised, by kind.\n# TYPE {name} counter"
        );
        for (i, kind) in AlertKind::ALL.iter().enumerate() {
            let n = self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}{{kind=\"{kind}\"}} {n}");
        }
    }
}

/// The alert routes (each has a row in [`crate::authz::RULES`]).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1/alerts", get(list))
}

/// Runs the monitor over the refused handshakes and the ledger entries
/// it has not seen yet; the number of alerts raised.
pub fn catch_up(state: &AppState) -> Result<usize, ApiError> {
    let mut inner = state
        .monitoring
        .inner
        .lock()
        .map_err(|_| ApiError::internal("monitor lock poisoned"))?;
    let (monitor, next) = &mut *inner;
    let mut raised = 0;
    for (ip, at) in state.handshakes.take_recent() {
        if let Some(n) = monitor.handshake_failure(&ip.to_string(), at) {
            raised += handshake_alert(state, &ip.to_string(), n, monitor.thresholds())?;
        }
    }
    let size = state.ledger.size();
    while *next < size {
        let end = (*next + BATCH).min(size);
        let leaves = state
            .ledger
            .entries(*next, end)
            .map_err(ApiError::ledger_unavailable)?;
        for (i, leaf) in (*next..).zip(leaves) {
            let Ok(entry) = Observed::parse(&leaf) else {
                continue;
            };
            let lookup = |grant: &str| row_limit(state, grant);
            for alert in monitor.observe(i, &entry, &lookup) {
                publish(state, alert)?;
                raised += 1;
            }
        }
        *next = end;
    }
    Ok(raised)
}

fn row_limit(state: &AppState, grant: &str) -> Option<u64> {
    let catalog = state.catalog.lock().ok()?;
    catalog.grant(grant).ok().flatten().map(|g| g.row_limit)
}

/// Refused handshakes are not ledger entries: one event records them,
/// and is the alert's evidence.
fn handshake_alert(
    state: &AppState,
    ip: &str,
    count: usize,
    t: &Thresholds,
) -> Result<usize, ApiError> {
    let mut entry = LedgerEntry::new(
        EntryKind::Event,
        "system",
        "EVENT",
        "tls.handshake-failures",
        Decision::Deny,
    );
    entry.peer = Some(ip.to_owned());
    entry.reason = format!("{count} refused TLS handshakes from {ip}");
    entry.details =
        Some(json!({"addr": ip, "count": count, "window_secs": t.handshake_window_secs}));
    let index = state
        .ledger
        .append(&entry)
        .map_err(ApiError::ledger_unavailable)?;
    publish(
        state,
        Alert {
            kind: AlertKind::HandshakeFailures,
            subject: format!("addr:{ip}"),
            org: String::new(),
            summary: format!(
                "{count} refused TLS handshakes within {} s",
                t.handshake_window_secs
            ),
            evidence: vec![index],
        },
    )?;
    Ok(1)
}

/// The `security.alert` event, the catalog record and the metric.
fn publish(state: &AppState, alert: Alert) -> Result<(), ApiError> {
    let id = new_alert_id()?;
    let mut entry = LedgerEntry::new(
        EntryKind::Event,
        "system",
        "EVENT",
        "security.alert",
        Decision::Allow,
    );
    entry.resources = vec![format!("alert:{id}"), alert.subject.clone()];
    entry.reason = format!("{}: {}", alert.kind, alert.summary);
    entry.details = Some(json!({
        "alert": id, "kind": alert.kind.as_str(), "subject": alert.subject,
        "org": alert.org, "evidence": alert.evidence,
    }));
    let raised_at = rfc3339(entry.time);
    let ledger_index = state
        .ledger
        .append(&entry)
        .map_err(ApiError::ledger_unavailable)?;
    tracing::warn!(kind = alert.kind.as_str(), subject = %alert.subject, "security alert");
    state.monitoring.count(alert.kind);
    let stored = StoredAlert {
        id,
        alert,
        ledger_index,
        raised_at,
    };
    catalog(state)?
        .insert_alert(&stored)
        .map_err(ApiError::internal)
}

fn new_alert_id() -> Result<String, ApiError> {
    let mut bytes = [0u8; 8];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ApiError::internal("random number generator failed"))?;
    Ok(format!("al-{}", hex::encode(bytes)))
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// `GET /v1/alerts` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    #[serde(default)]
    kind: Option<String>,
}

/// `GET /v1/alerts[?kind=]` (operator, regulator): every alert, oldest
/// first, after running the monitor over the newest entries.
#[utoipa::path(
    get,
    path = "/v1/alerts",
    operation_id = "list_alerts",
    tag = "monitoring",
    summary = "Security-monitoring alerts with their evidence as ledger indexes (?kind=)",
    params(AlertQuery),
    responses(
        (status = 200, description = "The alerts", body = Object),
        super::openapi::QueryErrors,
    )
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(_who): Extension<Identity>,
    query: Result<Query<AlertQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let Query(q) = query.map_err(|e| ApiError::bad_request("query", e.body_text()))?;
    let kind = match q.kind.as_deref() {
        None => None,
        Some(k) => Some(AlertKind::parse(k).ok_or_else(|| {
            let names: Vec<&str> = AlertKind::ALL.iter().map(|k| k.as_str()).collect();
            ApiError::bad_request("kind", format!("must be one of {}", names.join(", ")))
        })?),
    };
    let worker = state.clone();
    tokio::task::spawn_blocking(move || catch_up(&worker))
        .await
        .map_err(|e| ApiError::internal(format!("monitor task failed: {e}")))??;
    let alerts = catalog(&state)?.alerts(kind).map_err(ApiError::internal)?;
    let items: Vec<_> = alerts.iter().map(view).collect();
    let audit = Audit {
        resources: alerts.iter().map(|a| format!("alert:{}", a.id)).collect(),
        ..Audit::default()
    };
    answer(StatusCode::OK, json!({ "alerts": items }), audit)
}

fn view(a: &StoredAlert) -> serde_json::Value {
    json!({
        "id": a.id,
        "kind": a.alert.kind.as_str(),
        "subject": a.alert.subject,
        "org": a.alert.org,
        "summary": a.alert.summary,
        "evidence": a.alert.evidence,
        "ledger_index": a.ledger_index,
        "raised_at": a.raised_at,
    })
}

/// Runs [`catch_up`] every `interval_secs` until the runtime stops.
pub fn spawn_monitor(state: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(state.monitoring.interval);
        loop {
            ticks.tick().await;
            let s = state.clone();
            match tokio::task::spawn_blocking(move || catch_up(&s)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!(alerts = n, "security monitor raised alerts"),
                Ok(Err(e)) => tracing::error!(error = %e, "security monitor failed"),
                Err(e) => tracing::error!(error = %e, "security monitor task failed"),
            }
        }
    })
}
