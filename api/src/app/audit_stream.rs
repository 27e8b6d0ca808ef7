//! Auditing of streamed responses (extracts): a **start** entry is made
//! durable before the first byte is released, and a **completion** entry
//! (rows, bytes, SHA-256 of the body) when the body ends — the body's end
//! is only signalled to the client once that entry is durable. A stream
//! that breaks off (client gone, producer failed) gets a completion entry
//! with decision `error`, so every start has its end in the ledger.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use axum::body::{Body, Bytes};
use axum::http::response::Parts;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use vault::ledger::{Decision, LedgerEntry, Phase};

use super::audit::{append, Audit, LEDGER_INDEX_HEADER};
use super::AppState;
use crate::error::ApiError;

/// Marks a response as streamed. The handler keeps a clone of `rows` and
/// adds to it as it produces rows.
#[derive(Clone, Debug, Default)]
pub struct StreamAudit {
    /// What the request touched.
    pub audit: Audit,
    /// Rows produced so far.
    pub rows: Arc<AtomicU64>,
    /// The start entry's ledger index, set before the body is first polled.
    pub start_index: Arc<OnceLock<u64>>,
}

/// Writes the start entry, then releases the response with a body that
/// writes the completion entry at its end.
pub async fn record_streamed(
    state: Arc<AppState>,
    mut entry: LedgerEntry,
    mut parts: Parts,
    body: Body,
    stream: StreamAudit,
) -> Response {
    entry.status = Some(parts.status.as_u16());
    entry.decision = Decision::Allow;
    entry.phase = Some(Phase::Start);
    super::audit::apply_audit(&mut entry, &stream.audit);
    if entry.reason.is_empty() {
        "stream started".clone_into(&mut entry.reason);
    }
    let start_index = match append(&state, &entry).await {
        Ok(index) => index,
        Err(detail) => {
            tracing::error!(%detail, "ledger append failed; stream withheld");
            return ApiError::ledger_unavailable(detail).into_response();
        }
    };
    let _ = stream.start_index.set(start_index);
    parts
        .headers
        .insert(LEDGER_INDEX_HEADER, HeaderValue::from(start_index));
    let tail = Tail::new(state, entry, start_index, stream.rows);
    Response::from_parts(parts, Body::from_stream(audited(body, tail)))
}

/// The body, passed through while hashing, then the completion entry.
fn audited(
    body: Body,
    tail: Tail,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    futures_util::stream::unfold(
        (body.into_data_stream(), Some(tail)),
        |(mut inner, tail)| async move {
            let mut tail = tail?;
            match inner.next().await {
                Some(Ok(chunk)) => {
                    tail.update(&chunk);
                    Some((Ok(chunk), (inner, Some(tail))))
                }
                Some(Err(err)) => {
                    if let Err(detail) = tail.finish(Decision::Error, "stream failed").await {
                        tracing::error!(%detail, "could not record a failed stream");
                    }
                    Some((Err(std::io::Error::other(err)), (inner, None)))
                }
                None => match tail.finish(Decision::Allow, "stream complete").await {
                    Ok(()) => None,
                    Err(e) => Some((Err(std::io::Error::other(e)), (inner, None))),
                },
            }
        },
    )
}

/// What the completion entry needs, accumulated as the body passes.
struct Tail {
    state: Arc<AppState>,
    entry: LedgerEntry,
    start_index: u64,
    rows: Arc<AtomicU64>,
    hasher: Sha256,
    bytes: u64,
    done: bool,
}

impl Tail {
    fn new(
        state: Arc<AppState>,
        entry: LedgerEntry,
        start_index: u64,
        rows: Arc<AtomicU64>,
    ) -> Tail {
        Tail {
            state,
            entry,
            start_index,
            rows,
            hasher: Sha256::new(),
            bytes: 0,
            done: false,
        }
    }

    fn update(&mut self, chunk: &Bytes) {
        self.hasher.update(chunk);
        self.bytes += chunk.len() as u64;
    }

    fn completion(&mut self, decision: Decision, reason: &str) -> LedgerEntry {
        self.done = true;
        let mut entry = self.entry.clone();
        entry.time = time::OffsetDateTime::now_utc();
        entry.phase = Some(Phase::Complete {
            start_index: self.start_index,
        });
        entry.decision = decision;
        reason.clone_into(&mut entry.reason);
        entry.rows = Some(self.rows.load(Ordering::SeqCst));
        entry.bytes = Some(self.bytes);
        let digest = std::mem::take(&mut self.hasher).finalize();
        entry.body_sha256 = Some(hex::encode(digest));
        entry
    }

    async fn finish(&mut self, decision: Decision, reason: &str) -> Result<(), String> {
        let entry = self.completion(decision, reason);
        append(&self.state, &entry).await.map(|_| ())
    }
}

impl Drop for Tail {
    /// A stream dropped before its end (the client went away): record it.
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let entry = self.completion(Decision::Error, "stream aborted before its end");
        self.state.ledger.append_then(
            &entry,
            Box::new(|result| {
                if let Err(err) = result {
                    tracing::error!(error = %err, "could not record an aborted stream");
                }
            }),
        );
    }
}
