//! Fail-closed: when the audit ledger cannot be written, a request through
//! `app()` gets 503 and none of the handler's data, and no ledger receipt.
//! Driven with `oneshot` (no socket), with an I/O error injected through
//! `Ledger::open_with` and a real client certificate from the demo PKI.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::{Ipv4Addr, SocketAddr};

use api::app::audit::LEDGER_INDEX_HEADER;
use std::sync::Arc;

use api::app::{app, AppState};
use api::server::PeerInfo;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

mod common;
use common::{operator_cert, state};

async fn health(state: &Arc<AppState>, cert: &[u8]) -> (StatusCode, Option<String>, String) {
    let peer = PeerInfo::new(
        Arc::new(cert.to_vec()),
        SocketAddr::from((Ipv4Addr::LOCALHOST, 40000)),
    );
    let request = Request::builder()
        .uri("/v1/health")
        .extension(peer)
        .body(Body::empty())
        .unwrap();
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let receipt = response
        .headers()
        .get(LEDGER_INDEX_HEADER)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, receipt, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn app_ledger_healthy_ledger_answers_with_data_and_a_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path(), false);
    let (status, receipt, body) = health(&state, &operator_cert(dir.path())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(receipt.as_deref(), Some("0"));
    assert!(body.contains(&state.appliance_id), "{body}");
}

#[tokio::test]
async fn app_ledger_unwritable_ledger_gives_503_and_no_data() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path(), true);
    let cert = operator_cert(dir.path());
    for _ in 0..2 {
        let (status, receipt, body) = health(&state, &cert).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(receipt, None);
        assert!(
            !body.contains(&state.appliance_id),
            "handler data leaked: {body}"
        );
        assert!(!body.contains("ledger_size"), "handler data leaked: {body}");
        assert!(!body.contains("injected"), "internal detail leaked: {body}");
        assert!(body.contains("ledger_unavailable"), "{body}");
    }
    assert!(state.ledger.is_failed());
    assert_eq!(state.ledger.size(), 0);
}
