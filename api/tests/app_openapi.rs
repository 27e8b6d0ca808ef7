//! `GET /v1/openapi.json` through `app()`: the audited route serves exactly
//! the document generated from the handlers, an independent OpenAPI 3.1
//! parser reads what went over the wire, and the request is a ledger entry.
//! Driven with `oneshot` and a real client certificate from the demo PKI.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use api::app::audit::LEDGER_INDEX_HEADER;
use api::app::openapi::document;
use api::app::{app, AppState};
use api::server::PeerInfo;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

mod common;
use common::{operator_cert, state};

async fn get(state: &Arc<AppState>, cert: &[u8], uri: &str) -> axum::response::Response {
    let peer = PeerInfo::new(
        Arc::new(cert.to_vec()),
        SocketAddr::from((Ipv4Addr::LOCALHOST, 40000)),
    );
    let request = Request::builder()
        .uri(uri)
        .extension(peer)
        .body(Body::empty())
        .unwrap();
    app(state.clone()).oneshot(request).await.unwrap()
}

#[tokio::test]
async fn app_openapi_serves_the_generated_document_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path(), false);
    let response = get(&state, &operator_cert(dir.path()), "/v1/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers().get(header::CONTENT_TYPE).unwrap();
    assert_eq!(content_type, "application/json");
    let receipt = response.headers().get(LEDGER_INDEX_HEADER).unwrap();
    assert_eq!(receipt, "0");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();

    let served: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(served, serde_json::to_value(document()).unwrap());
    let health = &served["paths"]["/v1/health"]["get"];
    assert_eq!(
        health["x-roles"],
        serde_json::json!(["operator", "regulator", "provider", "analyst"])
    );

    let spec = oas3::from_json(std::str::from_utf8(&bytes).unwrap()).unwrap();
    assert_eq!(spec.info.title, "zonevault");
    assert_eq!(spec.operations().count(), api::authz::RULES.len());

    let entries = state.ledger.entries(0, state.ledger.size()).unwrap();
    assert_eq!(entries.len(), 1);
    let entry: Value = serde_json::from_slice(&entries[0]).unwrap();
    let text = entry.to_string();
    assert!(text.contains("/v1/openapi.json"), "{text}");
}
