//! The audit layer: the one door every request passes through.
//!
//! In order: the caller's identity is parsed from its client certificate
//! (a bad identity is 403), the request path is matched against the
//! authorization table (no route is 404, no rule for the role is 403), the
//! handler runs, and then one ledger entry for the request is made durable
//! **before** any byte of the response is released. If the entry cannot be
//! written the caller gets 503 and no data. Denied requests are recorded
//! the same way. Handlers describe what they touched with an [`Audit`]
//! response extension; errors carry their internal detail in
//! [`AuditReason`], which goes to the ledger and the log, never the body.
//! Streamed responses are audited by [`super::audit_stream`].

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use vault::ledger::{Decision as LedgerDecision, EntryKind, LedgerEntry};

use super::audit_stream::{record_streamed, StreamAudit};
use super::AppState;
use crate::authz::{self, Decision};
use crate::error::ApiError;
use crate::identity::Identity;
use crate::server::PeerInfo;

/// The response header that carries the caller's ledger receipt.
pub const LEDGER_INDEX_HEADER: HeaderName = HeaderName::from_static("zonevault-ledger-index");

/// What a handler touched, for its ledger entry. Insert it into the
/// response's extensions; every field is optional.
#[derive(Clone, Debug, Default)]
pub struct Audit {
    /// Ids of the resources touched (zone, dataset, grant, ...).
    pub resources: Vec<String>,
    /// The declared purpose.
    pub purpose: Option<String>,
    /// The filing the access is made under.
    pub filing: Option<String>,
    /// Rows returned or written.
    pub rows: Option<u64>,
    /// A short, non-sensitive note (sensitive values only as HMACs).
    pub reason: Option<String>,
    /// Structured event details.
    pub details: Option<serde_json::Value>,
}

/// Internal detail of an error response, for the ledger and the log only.
#[derive(Clone, Debug)]
pub struct AuditReason(pub String);

/// The audit middleware (see the module documentation).
pub async fn audit(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let peer = req.extensions().get::<PeerInfo>().cloned();
    let mut entry = new_entry(&method, &path, peer.as_ref());
    let response = match admit(&state, &method, &path, peer.as_ref(), &mut entry) {
        Ok(identity) => {
            req.extensions_mut().insert(identity);
            next.run(req).await
        }
        Err(err) => err.into_response(),
    };
    let response = record(state.clone(), entry, response).await;
    state.metrics.count(route_label(&path), response.status());
    response
}

fn new_entry(method: &Method, path: &str, peer: Option<&PeerInfo>) -> LedgerEntry {
    let route = authz::match_route(path).unwrap_or("<unmatched>");
    let mut entry = LedgerEntry::new(
        EntryKind::Request,
        "anonymous",
        method.as_str(),
        route,
        LedgerDecision::Deny,
    );
    if let Some(peer) = peer {
        entry.peer = Some(peer.peer_text.to_string());
        entry.cert_sha256 = Some(peer.cert_sha256.to_string());
    }
    entry
}

/// Identity, route and authorization, in that order.
fn admit(
    state: &AppState,
    method: &Method,
    path: &str,
    peer: Option<&PeerInfo>,
    entry: &mut LedgerEntry,
) -> Result<Identity, ApiError> {
    let peer = peer.ok_or(ApiError::Unauthenticated)?;
    let identity = peer
        .identity(&state.trust_domain)
        .map_err(|e| ApiError::Forbidden {
            reason: format!("identity refused: {e}"),
        })?;
    entry.identity = identity.uri.clone();
    entry.role = Some(identity.role.to_string());
    let route = authz::match_route(path).ok_or(ApiError::NotFound)?;
    match authz::authorize(method, route, identity.role) {
        Decision::Allow => Ok(identity),
        Decision::Deny(reason) => Err(ApiError::Forbidden {
            reason: reason.to_string(),
        }),
    }
}

/// Makes the request's entry durable, then releases the response with its
/// ledger receipt; 503 and no data when the ledger cannot be written.
async fn record(state: Arc<AppState>, mut entry: LedgerEntry, response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    if let Some(stream) = parts.extensions.remove::<StreamAudit>() {
        return record_streamed(state, entry, parts, body, stream).await;
    }
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) => {
            tracing::error!(error = %err, "response body failed");
            return ApiError::internal("response body failed").into_response();
        }
    };
    describe(&mut entry, &parts, &bytes);
    match append(&state, &entry).await {
        Ok(index) => {
            parts
                .headers
                .insert(LEDGER_INDEX_HEADER, HeaderValue::from(index));
            Response::from_parts(parts, Body::from(bytes))
        }
        Err(detail) => {
            tracing::error!(%detail, "ledger append failed; response withheld");
            ApiError::ledger_unavailable(detail).into_response()
        }
    }
}

fn describe(entry: &mut LedgerEntry, parts: &axum::http::response::Parts, body: &Bytes) {
    let status = parts.status;
    entry.status = Some(status.as_u16());
    entry.decision = decision_of(status);
    entry.bytes = Some(body.len() as u64);
    if !body.is_empty() && status.is_success() {
        entry.body_sha256 = Some(hex::encode(Sha256::digest(body)));
    }
    if let Some(audit) = parts.extensions.get::<Audit>() {
        apply_audit(entry, audit);
    }
    if let Some(AuditReason(reason)) = parts.extensions.get::<AuditReason>() {
        entry.reason.clone_from(reason);
    }
    if entry.reason.is_empty() {
        entry.reason = status.canonical_reason().unwrap_or("").to_owned();
    }
}

/// Copies what a handler said it touched into the entry.
pub(super) fn apply_audit(entry: &mut LedgerEntry, audit: &Audit) {
    entry.resources.clone_from(&audit.resources);
    entry.purpose.clone_from(&audit.purpose);
    entry.filing.clone_from(&audit.filing);
    entry.rows = audit.rows;
    entry.details.clone_from(&audit.details);
    if let Some(reason) = &audit.reason {
        entry.reason.clone_from(reason);
    }
}

fn decision_of(status: StatusCode) -> LedgerDecision {
    match status {
        s if s.is_success() || s.is_redirection() => LedgerDecision::Allow,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => LedgerDecision::Deny,
        _ => LedgerDecision::Error,
    }
}

/// Appends `entry` through the ledger's group-commit writer and waits for
/// the batch holding it to be fsynced.
pub async fn append(state: &AppState, entry: &LedgerEntry) -> Result<u64, String> {
    state
        .ledger
        .append_async(entry)
        .await
        .map_err(|err| err.to_string())
}

fn route_label(path: &str) -> &'static str {
    authz::match_route(path).unwrap_or("<unmatched>")
}
