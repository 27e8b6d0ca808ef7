//! The ledger endpoints: checkpoint, entries, inclusion and consistency
//! proofs, the checkpoint verifier key, and the HMAC of a known value.
//! Entries are served in exactly their leaf bytes, one per line, so anyone
//! can recompute the tree from what `GET /v1/ledger/entries` returns.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use vault::ledger::{LedgerEntry, LedgerError};

use super::extract::ApiQuery;
use super::AppState;
use crate::error::ApiError;
use crate::identity::{Identity, Role};

/// Most entries one `GET /v1/ledger/entries` returns.
pub const MAX_ENTRIES_PER_PAGE: u64 = 10_000;

/// `GET /v1/ledger/checkpoint`: the latest signed checkpoint (C2SP signed note).
#[utoipa::path(
    get,
    path = "/v1/ledger/checkpoint",
    operation_id = "ledger_checkpoint",
    tag = "ledger",
    summary = "Latest signed checkpoint (C2SP signed note)",
    responses(
        (status = 200, description = "C2SP tlog-checkpoint as a signed note", body = String, content_type = "text/plain; charset=utf-8"),
        super::openapi::ReadErrors,
    )
)]
pub async fn checkpoint(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let note = state.ledger.checkpoint().map_err(ApiError::internal)?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response())
}

/// `GET /v1/ledger/key`: the signed-note verifier key of the checkpoints.
#[utoipa::path(
    get,
    path = "/v1/ledger/key",
    operation_id = "ledger_key",
    tag = "ledger",
    summary = "Signed-note verifier key of the checkpoints",
    responses(
        (status = 200, description = "The verifier key string", body = String, content_type = "text/plain; charset=utf-8"),
        super::openapi::ReadErrors,
    )
)]
pub async fn key(State(state): State<Arc<AppState>>) -> Response {
    let key = format!("{}\n", state.ledger.verifier_key());
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], key).into_response()
}

/// `start` and `end` of an entries page (end exclusive).
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Range {
    /// First entry index (default 0).
    start: Option<u64>,
    /// One past the last entry index (default: the tree size).
    end: Option<u64>,
}

/// `GET /v1/ledger/entries?start=&end=`: JSON lines, leaf bytes verbatim.
#[utoipa::path(
    get,
    path = "/v1/ledger/entries",
    operation_id = "ledger_entries",
    tag = "ledger",
    summary = "Ledger entries as JSON lines, in their leaf bytes",
    params(Range),
    responses(
        (status = 200, description = "One entry per line, exactly its leaf bytes", body = String, content_type = "application/jsonl"),
        super::openapi::QueryErrors,
    )
)]
pub async fn entries(
    State(state): State<Arc<AppState>>,
    ApiQuery(range): ApiQuery<Range>,
) -> Result<Response, ApiError> {
    let size = state.ledger.size();
    let start = range.start.unwrap_or(0);
    let end = range.end.unwrap_or(size);
    if end > size {
        return Err(ApiError::bad_request(
            "end",
            format!("beyond the tree size {size}"),
        ));
    }
    if start > end {
        return Err(ApiError::bad_request("start", "greater than end"));
    }
    if end - start > MAX_ENTRIES_PER_PAGE {
        let problem = format!("at most {MAX_ENTRIES_PER_PAGE} entries per request");
        return Err(ApiError::bad_request("end", problem));
    }
    let lines = state
        .ledger
        .entries(start, end)
        .map_err(ApiError::internal)?;
    let mut body = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for line in lines {
        body.extend_from_slice(&line);
        body.push(b'\n');
    }
    Ok(([(header::CONTENT_TYPE, "application/jsonl")], body).into_response())
}

/// Query of an inclusion proof.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InclusionQuery {
    /// The entry's leaf index.
    index: u64,
    /// The tree size the proof is against.
    tree_size: u64,
}

/// `GET /v1/ledger/proof/inclusion?index=&tree_size=`. An analyst may ask
/// only about entries recorded for itself.
#[utoipa::path(
    get,
    path = "/v1/ledger/proof/inclusion",
    operation_id = "ledger_inclusion_proof",
    tag = "ledger",
    summary = "RFC 9162 inclusion proof of one entry",
    params(InclusionQuery),
    responses(
        (status = 200, description = "index, tree_size, leaf_hash, root_hash and the proof hashes (base64)", body = Object),
        super::openapi::QueryErrors,
    )
)]
pub async fn inclusion(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Identity>,
    ApiQuery(q): ApiQuery<InclusionQuery>,
) -> Result<Json<Value>, ApiError> {
    check_size(&state, "tree_size", q.tree_size)?;
    if q.index >= q.tree_size {
        return Err(ApiError::bad_request(
            "index",
            "must be less than tree_size",
        ));
    }
    let leaf = state.ledger.entry(q.index).map_err(range_error("index"))?;
    if caller.role == Role::Analyst && !recorded_for(&leaf, &caller) {
        return Err(ApiError::Forbidden {
            reason: format!(
                "analyst asked for entry {} recorded for someone else",
                q.index
            ),
        });
    }
    let proof = state
        .ledger
        .inclusion_proof(q.index, q.tree_size)
        .map_err(range_error("index"))?;
    let root = state
        .ledger
        .root(q.tree_size)
        .map_err(range_error("tree_size"))?;
    Ok(Json(json!({
        "index": q.index,
        "tree_size": q.tree_size,
        "leaf_hash": B64.encode(vault::ledger::merkle::leaf_hash(&leaf)),
        "root_hash": B64.encode(root),
        "hashes": proof.iter().map(|h| B64.encode(h)).collect::<Vec<_>>(),
    })))
}

fn recorded_for(leaf: &[u8], caller: &Identity) -> bool {
    LedgerEntry::from_leaf_bytes(leaf)
        .map(|e| e.identity == caller.uri)
        .unwrap_or(false)
}

/// Query of a consistency proof.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    /// The older tree size.
    first: u64,
    /// The newer tree size.
    second: u64,
}

/// `GET /v1/ledger/proof/consistency?first=&second=`.
#[utoipa::path(
    get,
    path = "/v1/ledger/proof/consistency",
    operation_id = "ledger_consistency_proof",
    tag = "ledger",
    summary = "RFC 9162 consistency proof between two tree sizes",
    params(ConsistencyQuery),
    responses(
        (status = 200, description = "first, second and the proof hashes (base64)", body = Object),
        super::openapi::QueryErrors,
    )
)]
pub async fn consistency(
    State(state): State<Arc<AppState>>,
    ApiQuery(q): ApiQuery<ConsistencyQuery>,
) -> Result<Json<Value>, ApiError> {
    check_size(&state, "second", q.second)?;
    if q.first > q.second {
        return Err(ApiError::bad_request("first", "must not exceed second"));
    }
    let proof = state
        .ledger
        .consistency_proof(q.first, q.second)
        .map_err(range_error("first"))?;
    Ok(Json(json!({
        "first": q.first,
        "second": q.second,
        "hashes": proof.iter().map(|h| B64.encode(h)).collect::<Vec<_>>(),
    })))
}

fn check_size(state: &AppState, field: &str, size: u64) -> Result<(), ApiError> {
    let current = state.ledger.size();
    if size > current {
        return Err(ApiError::bad_request(
            field,
            format!("beyond the tree size {current}"),
        ));
    }
    Ok(())
}

fn range_error(field: &'static str) -> impl Fn(LedgerError) -> ApiError {
    move |err| match err {
        LedgerError::Range(e) => ApiError::bad_request(field, e.to_string()),
        other => ApiError::internal(other),
    }
}

/// Body of `POST /v1/ledger/hash`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HashRequest {
    value: String,
}

/// `POST /v1/ledger/hash`: the HMAC under which the ledger records `value`,
/// so a regulator can look for a value it already knows.
#[utoipa::path(
    post,
    path = "/v1/ledger/hash",
    operation_id = "ledger_hash",
    tag = "ledger",
    summary = "HMAC under which the ledger records a value",
    request_body = HashRequest,
    responses(
        (status = 200, description = "hmac: the hex HMAC-SHA256 of the value", body = Object),
        super::openapi::BodyErrors,
    )
)]
pub async fn hash(
    State(state): State<Arc<AppState>>,
    body: Result<Json<HashRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(req) = body.map_err(crate::error::json_rejection)?;
    Ok(Json(
        json!({ "hmac": state.hmac.hex(req.value.as_bytes()) }),
    ))
}
