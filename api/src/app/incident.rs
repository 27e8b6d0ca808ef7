//! `GET /v1/trace`: incident trace for regulators and operators.
//!
//! Given one identity, dataset or extract (and optionally a time range),
//! it returns every ledger entry involved, oldest first, each as its exact
//! leaf bytes with its inclusion proof against one freshly signed
//! checkpoint, which is returned too. A regulator can so reconstruct who
//! accessed what and when, and check offline (`zonevault trace-incident`)
//! that every entry shown is in the tamper-evident ledger.
//!
//! An entry is involved when it was recorded for the identity, or names
//! the dataset or extract among its resources (`dataset:<id>`,
//! `extract:<id>`, `identity:<uri>` for alerts about it).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Extension;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use vault::ledger::LedgerEntry;

use super::audit::Audit;
use super::extract::ApiQuery;
use super::zones::{answer, Answer};
use super::AppState;
use crate::error::ApiError;
use crate::identity::Identity;

/// Most entries one trace returns; a longer one is cut (`truncated`).
pub const MAX_TRACE_ENTRIES: usize = 5000;
/// Entries read from the ledger per step.
const BATCH: u64 = 5000;

/// `GET /v1/trace` query: exactly one of `identity`, `dataset`, `extract`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TraceQuery {
    #[serde(default)]
    identity: Option<String>,
    #[serde(default)]
    dataset: Option<String>,
    #[serde(default)]
    extract: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

/// What is traced, and when.
struct Subject {
    field: &'static str,
    value: String,
    from: Option<OffsetDateTime>,
    to: Option<OffsetDateTime>,
}

impl Subject {
    fn parse(q: TraceQuery) -> Result<Subject, ApiError> {
        let given: Vec<(&'static str, String)> = [
            ("identity", q.identity),
            ("dataset", q.dataset),
            ("extract", q.extract),
        ]
        .into_iter()
        .filter_map(|(f, v)| v.map(|v| (f, v.trim().to_owned())))
        .collect();
        let [(field, value)] = <[_; 1]>::try_from(given).map_err(|_| {
            ApiError::bad_request("identity", "give exactly one of identity, dataset, extract")
        })?;
        if value.is_empty() || value.len() > 512 || value.chars().any(char::is_control) {
            return Err(ApiError::bad_request(
                field,
                "must be 1 to 512 printable bytes",
            ));
        }
        let from = time_param("from", q.from.as_deref())?;
        let to = time_param("to", q.to.as_deref())?;
        if let (Some(f), Some(t)) = (from, to) {
            if t < f {
                return Err(ApiError::bad_request("to", "must not be before from"));
            }
        }
        Ok(Subject {
            field,
            value,
            from,
            to,
        })
    }

    fn resource(&self) -> String {
        format!("{}:{}", self.field, self.value)
    }

    fn involves(&self, e: &LedgerEntry) -> bool {
        if self.from.is_some_and(|f| e.time < f) || self.to.is_some_and(|t| e.time > t) {
            return false;
        }
        let named = e.resources.iter().any(|r| *r == self.resource());
        named || (self.field == "identity" && e.identity == self.value)
    }
}

fn time_param(field: &str, value: Option<&str>) -> Result<Option<OffsetDateTime>, ApiError> {
    value
        .map(|v| {
            OffsetDateTime::parse(v.trim(), &Rfc3339)
                .map_err(|e| ApiError::bad_request(field, format!("not an RFC 3339 time: {e}")))
        })
        .transpose()
}

/// `GET /v1/trace` (regulator, operator): the involved entries with their
/// inclusion proofs against the returned checkpoint.
#[utoipa::path(
    get,
    path = "/v1/trace",
    operation_id = "incident_trace",
    tag = "monitoring",
    summary = "Incident trace: every ledger entry of an identity, dataset or extract, with inclusion proofs",
    params(TraceQuery),
    responses(
        (status = 200, description = "The entries and their inclusion proofs", body = Object),
        super::openapi::QueryErrors,
    )
)]
pub async fn trace(
    State(state): State<Arc<AppState>>,
    Extension(_who): Extension<Identity>,
    ApiQuery(q): ApiQuery<TraceQuery>,
) -> Answer {
    let subject = Subject::parse(q)?;
    let worker = state.clone();
    let resource = subject.resource();
    let body = tokio::task::spawn_blocking(move || collect(&worker, &subject))
        .await
        .map_err(|e| ApiError::internal(format!("trace task failed: {e}")))??;
    let audit = Audit {
        resources: vec![resource],
        details: Some(json!({
            "event": "incident.trace",
            "entries": body["entries"].as_array().map_or(0, Vec::len),
            "tree_size": body["tree_size"],
        })),
        ..Audit::default()
    };
    answer(StatusCode::OK, body, audit)
}

/// Signs a checkpoint, scans the ledger up to its size and proves each
/// involved entry against it.
fn collect(state: &AppState, subject: &Subject) -> Result<Value, ApiError> {
    let note = state
        .ledger
        .checkpoint()
        .map_err(ApiError::ledger_unavailable)?;
    let size: u64 = note
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .ok_or_else(|| ApiError::internal("checkpoint without a size"))?;
    let mut entries = Vec::new();
    let mut truncated = false;
    let mut start = 0;
    while start < size && !truncated {
        let end = (start + BATCH).min(size);
        let leaves = state
            .ledger
            .entries(start, end)
            .map_err(ApiError::ledger_unavailable)?;
        for (index, leaf) in (start..).zip(leaves) {
            let Ok(entry) = LedgerEntry::from_leaf_bytes(&leaf) else {
                continue;
            };
            if !subject.involves(&entry) {
                continue;
            }
            if entries.len() == MAX_TRACE_ENTRIES {
                truncated = true;
                break;
            }
            entries.push(proved(state, index, size, &leaf)?);
        }
        start = end;
    }
    Ok(json!({
        "subject": {"kind": subject.field, "id": subject.value},
        "checkpoint": note,
        "tree_size": size,
        "truncated": truncated,
        "entries": entries,
    }))
}

fn proved(state: &AppState, index: u64, size: u64, leaf: &[u8]) -> Result<Value, ApiError> {
    let proof = state
        .ledger
        .inclusion_proof(index, size)
        .map_err(ApiError::internal)?;
    Ok(json!({
        "index": index,
        "leaf": String::from_utf8_lossy(leaf),
        "hashes": proof.iter().map(|h| B64.encode(h)).collect::<Vec<_>>(),
    }))
}
