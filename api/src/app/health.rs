//! `GET /v1/health`: sealed state, version and ledger size.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::AppState;

/// The server only runs with the master key unsealed, so `sealed` is false
/// whenever anyone can ask.
#[utoipa::path(
    get,
    path = "/v1/health",
    operation_id = "health",
    tag = "health",
    summary = "Sealed state, version and ledger size",
    responses(
        (status = 200, description = "status, sealed, master_key, version, appliance_id, ledger_size", body = Object),
        super::openapi::ReadErrors,
    )
)]
pub async fn health(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "sealed": false,
        "master_key": "unsealed",
        "version": env!("CARGO_PKG_VERSION"),
        "appliance_id": state.appliance_id,
        "ledger_size": state.ledger.size(),
    }))
}
