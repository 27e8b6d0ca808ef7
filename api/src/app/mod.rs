//! The HTTP application: shared state, the router, and the audit layer that
//! every request passes through. `app()` needs no socket, so tests drive it
//! with `oneshot`; [`crate::server`] puts it behind mutual TLS.

pub mod aggregates;
pub mod alerts;
pub mod assessments;
pub mod attestation;
pub mod audit;
pub mod audit_stream;
pub mod datasets;
pub mod destructions;
pub mod exit;
pub mod extract;
pub mod extracts;
pub mod feedback;
pub mod filings;
mod free_text;
mod grant_access;
pub mod grants;
mod health;
pub mod import_stream;
pub mod incident;
pub mod keyring;
pub mod leak_trace;
mod ledger_routes;
pub mod metrics;
pub mod openapi;
pub mod parquet_reader;
pub mod policy;
pub mod quality;
pub mod share_applications;
pub mod workflow_steps;
pub mod zones;

use std::sync::{Arc, Mutex};

use axum::routing::{get, post};
use axum::Router;
use vault::catalog::Catalog;
use vault::ledger::{Ledger, LedgerHmac};

use crate::server::HandshakeStats;

/// Everything a request handler may reach.
pub struct AppState {
    /// The audit ledger (shared with the writer thread).
    pub ledger: Arc<Ledger>,
    /// The encrypted catalog.
    pub catalog: Mutex<Catalog>,
    /// HMAC for sensitive request values in ledger entries.
    pub hmac: LedgerHmac,
    /// The SPIFFE trust domain of client identities.
    pub trust_domain: String,
    /// The appliance id (the ledger origin is `zonevault/<id>`).
    pub appliance_id: String,
    /// TLS handshake failures, for `/metrics`.
    pub handshakes: Arc<HandshakeStats>,
    /// Request counters and the like, for `/metrics`.
    pub metrics: metrics::Metrics,
    /// The master key, for zone and dataset keys only (see [`keyring`]).
    pub keys: keyring::KeyRing,
    /// Data directory, bureau and import limits for zones and datasets.
    pub zones: zones::ZoneSettings,
    /// Certificate signer and retention sweep period.
    pub lifecycle: destructions::Lifecycle,
    /// The TPM connection and AK for quotes; `None` without an AK.
    pub attest: Option<attestation::Attestor>,
    /// Working days per quality dimension for the provider's response.
    pub quality_sla: vault::governance::quality::Sla,
    /// The security monitor over the ledger (see [`alerts`]).
    pub monitoring: alerts::Monitoring,
}

/// The request body limit for JSON requests (imports stream separately).
pub const JSON_BODY_LIMIT: usize = 1024 * 1024;

/// The whole API: every route, behind the audit layer.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/health", get(health::health))
        .route("/metrics", get(metrics::render))
        .route("/v1/openapi.json", get(openapi::openapi))
        .route("/v1/ledger/checkpoint", get(ledger_routes::checkpoint))
        .route("/v1/ledger/entries", get(ledger_routes::entries))
        .route("/v1/ledger/proof/inclusion", get(ledger_routes::inclusion))
        .route(
            "/v1/ledger/proof/consistency",
            get(ledger_routes::consistency),
        )
        .route("/v1/ledger/key", get(ledger_routes::key))
        .route("/v1/ledger/hash", post(ledger_routes::hash))
        .route("/v1/attestation", get(attestation::attestation))
        .route(
            "/v1/attestation/enrollment",
            get(attestation::enrollment::enrollment),
        )
        .route(
            "/v1/attestation/challenge",
            post(attestation::enrollment::challenge),
        )
        .merge(zones::routes())
        .merge(destructions::routes())
        .merge(exit::routes())
        .merge(alerts::routes())
        .route("/v1/trace", get(incident::trace))
        .merge(grants::routes())
        .merge(share_applications::routes())
        .merge(filings::routes())
        .merge(quality::routes())
        .merge(feedback::routes())
        .merge(assessments::routes())
        .merge(leak_trace::routes())
        .merge(policy::routes())
        .route("/v1/aggregates", post(aggregates::create))
        .layer(axum::extract::DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit::audit,
        ))
        .with_state(state)
}
