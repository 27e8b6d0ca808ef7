//! Streamed responses are audited twice: a start entry before the first
//! byte, and a completion entry with rows, bytes and the body's SHA-256 when
//! the body ends. A stream dropped half-way still gets its completion entry.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use api::app::audit::LEDGER_INDEX_HEADER;
use api::app::audit_stream::{record_streamed, StreamAudit};
use axum::body::{Body, Bytes};
use axum::http::Response;
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use vault::ledger::{Decision, EntryKind, LedgerEntry, Phase};

fn request_entry() -> LedgerEntry {
    LedgerEntry::new(
        EntryKind::Request,
        "spiffe://zv.test/analyst/p/c",
        "POST",
        "/v1/extracts",
        Decision::Deny,
    )
}

fn chunks() -> Vec<Bytes> {
    (0..5).map(|i| Bytes::from(format!("row-{i}\n"))).collect()
}

#[tokio::test]
async fn a_streamed_body_gets_start_and_completion_entries() {
    let dir = tempfile::tempdir().unwrap();
    let state = common::state(dir.path(), false);
    let stream = StreamAudit::default();
    stream.rows.store(5, Ordering::SeqCst);
    let body = Body::from_stream(futures_util::stream::iter(
        chunks().into_iter().map(Ok::<_, std::io::Error>),
    ));
    let (parts, body) = Response::new(body).into_parts();
    let handle = stream.start_index.clone();
    let response = record_streamed(state.clone(), request_entry(), parts, body, stream).await;
    let start: u64 = response.headers()[LEDGER_INDEX_HEADER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        state.ledger.size(),
        start + 1,
        "start entry written before the body"
    );
    assert_eq!(
        handle.get(),
        Some(&start),
        "the handler learns the start index"
    );
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(bytes, chunks().concat());
    assert_eq!(
        state.ledger.size(),
        start + 2,
        "completion written by the end"
    );

    let first = LedgerEntry::from_leaf_bytes(&state.ledger.entry(start).unwrap()).unwrap();
    assert_eq!(first.phase, Some(Phase::Start));
    assert_eq!(first.decision, Decision::Allow);
    let last = LedgerEntry::from_leaf_bytes(&state.ledger.entry(start + 1).unwrap()).unwrap();
    assert_eq!(last.phase, Some(Phase::Complete { start_index: start }));
    assert_eq!(last.rows, Some(5));
    assert_eq!(last.bytes, Some(bytes.len() as u64));
    assert_eq!(last.body_sha256, Some(hex::encode(Sha256::digest(&bytes))));
}

#[tokio::test]
async fn a_stream_dropped_half_way_is_recorded_as_aborted() {
    let dir = tempfile::tempdir().unwrap();
    let state = common::state(dir.path(), false);
    let body = Body::from_stream(futures_util::stream::iter(
        chunks().into_iter().map(Ok::<_, std::io::Error>),
    ));
    let (parts, body) = Response::new(body).into_parts();
    let response = record_streamed(
        state.clone(),
        request_entry(),
        parts,
        body,
        StreamAudit::default(),
    )
    .await;
    let mut body = response.into_body();
    let _first = body.frame().await.unwrap().unwrap();
    drop(body);
    for _ in 0..100 {
        if state.ledger.size() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let last = LedgerEntry::from_leaf_bytes(&state.ledger.entry(1).unwrap()).unwrap();
    assert_eq!(last.phase, Some(Phase::Complete { start_index: 0 }));
    assert_eq!(last.decision, Decision::Error);
    assert_eq!(last.reason, "stream aborted before its end");
    assert_eq!(last.bytes, Some(6));
}
