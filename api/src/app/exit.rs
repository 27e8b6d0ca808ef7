//! The exit procedure of a zone over the API ([`vault::lifecycle::exit`]).
//!
//! `POST /v1/zones/{id}/exit` (the zone's operator, or its supervising
//! regulator ordering it) starts it through [`enter_exit`], which the
//! governance workflow also calls when an operating authorization is
//! terminated. Entering the exit revokes every grant on the zone's
//! datasets at once, files the zone-wide destruction request (approved by
//! the zone's regulator through the ordinary destruction routes, which
//! executes a cryptographic erase of the zone key and every dataset) and
//! records a `zone.exiting` ledger event. From then on [`ensure_zone_open`]
//! refuses grants, extracts, aggregates, imports and new datasets in the
//! zone with 409 `zone_exiting`; when the destruction executes,
//! [`record_exited`] marks the zone `exited` with a `zone.exited` event.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;
use vault::catalog::Catalog;
use vault::ids::ZoneId;
use vault::ledger::{Decision, EntryKind, LedgerEntry};
use vault::lifecycle::exit::{self, ExitCause, ExitError, ExitStart, ZoneExit};
use vault::lifecycle::Destruction;

use super::audit::Audit;
use super::extract::ApiPath;
use super::zones::{answer, catalog, owned_zone, visible_zone, zone_id, Answer};
use super::AppState;
use crate::error::{json_rejection, ApiError};
use crate::identity::{Identity, Role};

/// The exit routes (each has a row in [`crate::authz::RULES`]).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1/zones/{id}/exit", get(show).post(start))
}

/// What [`enter_exit`] did.
pub struct ExitOutcome {
    /// The exit as recorded (`exiting`, with the revoked grants).
    pub exit: ZoneExit,
    /// The zone-wide destruction request it filed (`requested`).
    pub destruction: Destruction,
    /// The ledger index of the `zone.exiting` event.
    pub ledger_index: u64,
}

/// Puts `zone` into its exit procedure: revokes every grant on its
/// datasets, refuses all further use of it (see [`ensure_zone_open`]) and
/// files the zone-wide destruction request that the zone's regulator must
/// approve; records a `zone.exiting` ledger event.
///
/// `initiated_by` becomes the destruction's requester, so the same person
/// can never also approve it: pass the caller's identity URI, or
/// `system:<component>` (e.g. `system:governance`) when the exit is the
/// consequence of an automatic decision such as an authorization
/// terminated after two poor assessments. The caller must hold `catalog`
/// (the locked catalog of `state`); who may start an exit is checked by
/// the caller. Refuses a zone that already has an exit (409) and a reason
/// that is empty, too long or holds personal identifiers (400 naming
/// `reason`). All or nothing: on error nothing changed.
pub fn enter_exit(
    state: &AppState,
    catalog: &mut Catalog,
    zone: &ZoneId,
    cause: ExitCause,
    reason: &str,
    initiated_by: &str,
) -> Result<ExitOutcome, ApiError> {
    super::free_text::check("reason", reason)?;
    let start = ExitStart {
        zone,
        cause,
        reason,
        initiated_by,
        destruction_id: super::destructions::new_destruction_id()?,
    };
    let (exit, destruction) = exit::begin(catalog, start).map_err(exit_error)?;
    let mut entry = LedgerEntry::new(
        EntryKind::Event,
        "system",
        "EVENT",
        "zone.exiting",
        Decision::Allow,
    );
    entry.resources = exit_resources(&exit);
    entry.reason = format!("zone exit ({cause}) started by {initiated_by}");
    entry.details = Some(json!({"exit": exit.view(), "destruction_id": destruction.id}));
    let ledger_index = state
        .ledger
        .append(&entry)
        .map_err(ApiError::ledger_unavailable)?;
    Ok(ExitOutcome {
        exit,
        destruction,
        ledger_index,
    })
}

fn exit_resources(exit: &ZoneExit) -> Vec<String> {
    let mut resources = vec![
        format!("zone:{}", exit.zone),
        format!("destruction:{}", exit.destruction_id),
    ];
    resources.extend(exit.revoked_grants.iter().map(|g| format!("grant:{g}")));
    resources
}

fn exit_error(e: ExitError) -> ApiError {
    match e {
        ExitError::AlreadyStarted { .. } => ApiError::Conflict {
            reason: e.to_string(),
        },
        ExitError::BadReason => ApiError::bad_request("reason", e.to_string()),
        ExitError::Destruction(t) => ApiError::bad_request("reason", t.to_string()),
        ExitError::Catalog(detail) => ApiError::internal(detail),
    }
}

/// Refuses use of a zone in its exit procedure with 409 `zone_exiting`
/// naming the zone. Call before every grant, extract, aggregate, import
/// and dataset creation in `zone`.
pub fn ensure_zone_open(catalog: &Catalog, zone: &ZoneId) -> Result<(), ApiError> {
    match catalog.zone_exit(zone).map_err(ApiError::internal)? {
        None => Ok(()),
        Some(exit) => Err(ApiError::ZoneExiting {
            zone: zone.to_string(),
            state: exit.state.to_string(),
        }),
    }
}

/// After a zone-wide destruction executed: marks the zone's exit (if any)
/// `exited` with `certificate_id` and records a `zone.exited` event.
pub fn record_exited(
    state: &AppState,
    catalog: &mut Catalog,
    zone: &ZoneId,
    certificate_id: &str,
) -> Result<(), ApiError> {
    let Some(exit) = exit::finish(catalog, zone, certificate_id).map_err(exit_error)? else {
        return Ok(());
    };
    let mut entry = LedgerEntry::new(
        EntryKind::Event,
        "system",
        "EVENT",
        "zone.exited",
        Decision::Allow,
    );
    entry.resources = exit_resources(&exit);
    entry.reason = format!("zone exit complete, certificate {certificate_id}");
    entry.details = Some(json!({"exit": exit.view()}));
    state
        .ledger
        .append(&entry)
        .map_err(ApiError::ledger_unavailable)?;
    Ok(())
}

/// `POST /v1/zones/{id}/exit` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExitRequest {
    reason: String,
}

/// Who may start the exit of `zone`, and as what cause: its operator
/// (withdrawal) or its supervising regulator (order).
fn exit_cause(catalog: &Catalog, who: &Identity, zone: &ZoneId) -> Result<ExitCause, ApiError> {
    match who.role {
        Role::Operator => owned_zone(catalog, who, zone).map(|_| ExitCause::OperatorWithdrawal),
        Role::Regulator => {
            visible_zone(catalog, who, zone)?;
            Ok(ExitCause::RegulatorOrder)
        }
        _ => Err(ApiError::Forbidden {
            reason: format!("{} may not start a zone exit", who.role),
        }),
    }
}

/// `POST /v1/zones/{id}/exit`: starts the exit procedure.
#[utoipa::path(
    post,
    path = "/v1/zones/{id}/exit",
    operation_id = "start_zone_exit",
    tag = "zones",
    summary = "Start a zone's exit: revoke its grants, refuse its use, request its zone-wide destruction",
    params(("id" = String, Path, description = "The resource id")),
    request_body = ExitRequest,
    responses(
        (status = 201, description = "The exit procedure started", body = Object),
        super::openapi::StateChangeErrors,
    )
)]
pub async fn start(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    ApiPath(id): ApiPath<String>,
    body: Result<Json<ExitRequest>, JsonRejection>,
) -> Answer {
    let Json(req) = body.map_err(json_rejection)?;
    let zone = zone_id("id", &id)?;
    let mut catalog = catalog(&state)?;
    let cause = exit_cause(&catalog, &who, &zone)?;
    let outcome = enter_exit(&state, &mut catalog, &zone, cause, &req.reason, &who.uri)?;
    let audit = Audit {
        resources: exit_resources(&outcome.exit),
        reason: Some(format!("zone exit started ({cause})")),
        details: Some(json!({
            "event": "zone.exit",
            "exit_ledger_index": outcome.ledger_index,
            "revoked_grants": outcome.exit.revoked_grants,
        })),
        ..Audit::default()
    };
    let mut view = outcome.exit.view();
    view["destruction"] = outcome.destruction.view();
    view["ledger_index"] = json!(outcome.ledger_index);
    answer(StatusCode::CREATED, view, audit)
}

/// `GET /v1/zones/{id}/exit`: the zone's exit (404 if none was started).
#[utoipa::path(
    get,
    path = "/v1/zones/{id}/exit",
    operation_id = "show_zone_exit",
    tag = "zones",
    summary = "A zone's exit procedure and its state",
    params(("id" = String, Path, description = "The resource id")),
    responses(
        (status = 200, description = "The exit procedure", body = Object),
        super::openapi::LookupErrors,
    )
)]
pub async fn show(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    ApiPath(id): ApiPath<String>,
) -> Answer {
    let zone = zone_id("id", &id)?;
    let catalog = catalog(&state)?;
    visible_zone(&catalog, &who, &zone)?;
    let exit = catalog
        .zone_exit(&zone)
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    let audit = Audit {
        resources: vec![format!("zone:{zone}")],
        ..Audit::default()
    };
    answer(StatusCode::OK, exit.view(), audit)
}
