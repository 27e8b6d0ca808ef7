//! The desensitization policy in force: `GET /v1/policy` (operator,
//! regulator) shows it, `PUT /v1/policy` (operator) replaces it.
//!
//! The body of a `PUT` is the policy TOML (the shipped default is
//! `vault/policy/default.toml`). It is validated strictly
//! ([`vault::desensitize::Policy::from_toml`]): any problem is a 400 naming
//! the row and field (`rule[3].tier2`). An accepted policy is stored in the
//! catalog as the next version (`v2`, `v3`, …; `v1` is the built-in
//! default) and its ledger entry records the version and the SHA-256 of the
//! TOML. Extracts, aggregates and grants made afterwards use it, and carry
//! its version (the `Zonevault-Policy-Version` header and the manifest).
//! The fixed grade rules hold whatever the file says.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Extension;
use ring::digest::{digest, SHA256};
use serde_json::json;
use vault::catalog::Catalog;
use vault::desensitize::{Policy, DEFAULT_TOML};

use super::audit::Audit;
use super::zones::{answer, catalog, Answer};
use super::AppState;
use crate::error::ApiError;
use crate::identity::Identity;

/// The routes (each has a row in [`crate::authz::RULES`]).
pub fn routes() -> axum::Router<Arc<AppState>> {
    axum::Router::new().route("/v1/policy", axum::routing::get(show).put(replace))
}

/// The policy in force: the highest stored version, else the default.
/// A stored policy that no longer parses is a 500, never a silent default.
pub fn current(catalog: &Catalog) -> Result<Policy, ApiError> {
    match catalog.current_policy().map_err(ApiError::internal)? {
        None => Ok(Policy::default_v1()),
        Some(stored) => Policy::from_toml(&stored.toml, &version_name(stored.version))
            .map_err(|e| ApiError::internal(format!("stored policy v{}: {e}", stored.version))),
    }
}

fn version_name(n: u64) -> String {
    format!("v{n}")
}

fn sha256_hex(text: &str) -> String {
    hex::encode(digest(&SHA256, text.as_bytes()))
}

/// `GET /v1/policy`: version, SHA-256, who stored it and the TOML.
#[utoipa::path(
    get,
    path = "/v1/policy",
    operation_id = "show_policy",
    tag = "policy",
    summary = "The desensitization policy in force (TOML, version, SHA-256)",
    responses(
        (status = 200, description = "version, sha256, builtin, toml (and who stored it, when)", body = Object),
        super::openapi::ReadErrors,
    )
)]
pub async fn show(State(state): State<Arc<AppState>>) -> Answer {
    let catalog = catalog(&state)?;
    let body = match catalog.current_policy().map_err(ApiError::internal)? {
        None => json!({
            "version": "v1", "sha256": sha256_hex(DEFAULT_TOML), "builtin": true,
            "toml": DEFAULT_TOML,
        }),
        Some(p) => json!({
            "version": version_name(p.version), "sha256": p.sha256, "builtin": false,
            "created_by": p.created_by, "created_at": p.created_at, "toml": p.toml,
        }),
    };
    let audit = Audit {
        resources: vec![format!("policy:{}", body["version"].as_str().unwrap_or(""))],
        ..Audit::default()
    };
    answer(StatusCode::OK, body, audit)
}

/// `PUT /v1/policy`: validates the TOML, stores it as the next version.
#[utoipa::path(
    put,
    path = "/v1/policy",
    operation_id = "replace_policy",
    tag = "policy",
    summary = "Replace the desensitization policy (TOML, validated, next version)",
    request_body(content((String = "application/toml")), description = "The policy, TOML"),
    responses(
        (status = 201, description = "version and sha256 of the policy stored", body = Object),
        super::openapi::BodyErrors,
    )
)]
pub async fn replace(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    body: Bytes,
) -> Answer {
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("toml", "the policy must be UTF-8 text"))?;
    Policy::from_toml(text, "new").map_err(|e| ApiError::bad_request(e.field, e.problem))?;
    let sha256 = sha256_hex(text);
    let version = catalog(&state)?
        .put_policy(text, &sha256, &who.uri)
        .map_err(ApiError::internal)?;
    let name = version_name(version);
    let audit = Audit {
        resources: vec![format!("policy:{name}")],
        details: Some(json!({"event": "policy.put", "version": name, "sha256": sha256})),
        ..Audit::default()
    };
    answer(
        StatusCode::CREATED,
        json!({"version": name, "sha256": sha256}),
        audit,
    )
}
