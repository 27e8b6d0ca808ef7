//! Government data-sharing applications over the API (clause 3), and the
//! response helpers the governance steps share.
//!
//! - `POST /v1/share-applications` (an operator of the zone) files one;
//! - `POST /v1/share-applications/{id}/assessment` (the zone's regulator,
//!   i.e. its supervising organization) approves or rejects it;
//! - `POST /v1/share-applications/{id}/decision` (the providing department
//!   named in it) approves or declines it, after the assessment;
//! - `GET /v1/share-applications[/{id}]`: the zone's operator and
//!   regulator, and the named provider, see it; anyone else gets 404.
//!
//! A step by the wrong organization is 403 (reason in the ledger); a step
//! from the wrong state is 409 whose body names the state. Each request is
//! one ledger entry whose reason says what happened. Importing the data is
//! [`super::datasets`]' job: it accepts only a doubly approved application.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use vault::catalog::Catalog;
use vault::governance::period::{Period, Review, StepError};
use vault::governance::share::{NewShare, ShareApplication, ShareItem, ShareState};
use vault::zone::Zone;

use super::audit::{Audit, AuditReason};
use super::extract::ApiPath;
use super::grants::new_id;
use super::zones::{catalog, owned_zone, visible_zone, zone_id, Refusal};
use super::AppState;
use crate::error::{json_rejection, ApiError};
use crate::identity::{Identity, Role};

/// A refusal as its response, boxed (a `Response` is large).
pub type Refused = Box<Response>;

/// A governance step's outcome: the answer, or the refusal.
pub type Step = Result<Response, Refused>;

/// The response of a step, whichever it is.
pub fn respond(step: Step) -> Response {
    step.unwrap_or_else(|refused| *refused)
}

/// The routes (each has a row in [`crate::authz::RULES`]).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/share-applications", post(file).get(list))
        .route("/v1/share-applications/{id}", get(show))
        .route("/v1/share-applications/{id}/assessment", post(assess))
        .route("/v1/share-applications/{id}/decision", post(decide))
}

/// An [`ApiError`] as a response, its detail recorded in the ledger.
pub fn refuse(e: ApiError) -> Refused {
    Box::new(Refusal(e).into_response())
}

/// A 409 whose body names the problem: the state of the caller's own
/// workflow record is not a secret.
pub fn conflict(problem: String) -> Response {
    let body = json!({
        "error": "conflict",
        "message": "the request conflicts with the current state",
        "problem": problem,
    });
    let mut response = (StatusCode::CONFLICT, Json(body)).into_response();
    response
        .extensions_mut()
        .insert(AuditReason(format!("conflict: {problem}")));
    response
}

/// A refused transition: wrong state 409, bad input 400 naming the field.
pub fn step_error(e: StepError) -> Refused {
    match e {
        StepError::WrongState { .. } => Box::new(conflict(e.to_string())),
        StepError::Invalid { field, problem } => refuse(ApiError::bad_request(field, problem)),
    }
}

/// `response` with `audit` attached (its resources reach the ledger even
/// when the step is refused).
pub fn audited(mut response: Response, audit: Audit) -> Response {
    response.extensions_mut().insert(audit);
    response
}

/// A refusal with `audit` attached.
pub fn refused_with(mut refused: Refused, audit: Audit) -> Refused {
    refused.extensions_mut().insert(audit);
    refused
}

/// `body` as JSON with `status` and its audit record.
pub fn reply(status: StatusCode, body: impl Serialize, audit: Audit) -> Response {
    audited((status, Json(body)).into_response(), audit)
}

/// `{"from", "to"}` in RFC 3339.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PeriodBody {
    from: String,
    to: String,
}

impl PeriodBody {
    /// The checked period.
    pub fn parse(&self) -> Result<Period, StepError> {
        Period::parse(&self.from, &self.to)
    }
}

/// `{"approve": bool, "reason"}` of every review step.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    approve: bool,
    reason: String,
}

impl ReviewBody {
    /// The review, made now by `who`.
    pub fn review(&self, who: &Identity) -> Result<Review, StepError> {
        Review::now(self.approve, &self.reason, &who.uri)
    }
}

/// `POST /v1/share-applications` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileRequest {
    zone: String,
    scenario: String,
    provider: String,
    items: Vec<ShareItem>,
    purpose: String,
    period: PeriodBody,
}

fn audit_of(a: &ShareApplication) -> Audit {
    Audit {
        resources: vec![
            format!("zone:{}", a.zone),
            format!("share-application:{}", a.id),
        ],
        purpose: Some(a.purpose.clone()),
        ..Audit::default()
    }
}

/// `POST /v1/share-applications` (operator of the zone).
#[utoipa::path(
    post,
    path = "/v1/share-applications",
    operation_id = "file_share_application",
    tag = "share-applications",
    summary = "File a government data-sharing application (operator)",
    request_body = FileRequest,
    responses(
        (status = 201, description = "The application filed", body = Object),
        super::openapi::BodyLookupErrors,
    )
)]
pub async fn file(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    body: Result<Json<FileRequest>, JsonRejection>,
) -> Response {
    let step: Step = async move {
        let Json(req) = body.map_err(|e| refuse(json_rejection(e)))?;
        let zone = zone_id("zone", &req.zone).map_err(refuse)?;
        let mut catalog = catalog(&state).map_err(refuse)?;
        owned_zone(&catalog, &who, &zone).map_err(refuse)?;
        let new = NewShare {
            zone,
            scenario: req.scenario,
            provider: req.provider.trim().to_owned(),
            items: req.items,
            purpose: req.purpose,
            period: req.period.parse().map_err(step_error)?,
        };
        let id = new_id("sa").map_err(refuse)?;
        let a = ShareApplication::file(id, new, &who.uri).map_err(step_error)?;
        catalog
            .insert_share_application(&a)
            .map_err(|e| refuse(ApiError::internal(e)))?;
        let mut audit = audit_of(&a);
        audit.reason = Some(format!(
            "share application {} filed for provider {}; awaits the regulator's assessment",
            a.id, a.provider
        ));
        audit.details = Some(json!({
            "event": "share-application.file", "provider": a.provider, "scenario": a.scenario,
            "fields": a.approved_fields(), "period": a.period,
        }));
        Ok(reply(
            StatusCode::CREATED,
            json!({"id": a.id, "application": a}),
            audit,
        ))
    }
    .await;
    respond(step)
}

fn load(catalog: &Catalog, id: &str) -> Result<ShareApplication, Refused> {
    catalog
        .share_application(id)
        .map_err(|e| refuse(ApiError::internal(e)))?
        .ok_or_else(|| refuse(ApiError::NotFound))
}

fn zone_of(catalog: &Catalog, a: &ShareApplication) -> Result<Zone, Refused> {
    catalog
        .zone(&a.zone)
        .map_err(|e| refuse(ApiError::internal(e)))?
        .ok_or_else(|| refuse(ApiError::NotFound))
}

/// A 403 for a step by the wrong organization, with the application named.
fn wrong_party(a: &ShareApplication, reason: String) -> Refused {
    refused_with(refuse(ApiError::Forbidden { reason }), audit_of(a))
}

/// `POST /v1/share-applications/{id}/assessment` (the zone's regulator).
#[utoipa::path(
    post,
    path = "/v1/share-applications/{id}/assessment",
    operation_id = "assess_share_application",
    tag = "share-applications",
    summary = "Assess a sharing application (zone regulator)",
    params(("id" = String, Path, description = "The resource id")),
    request_body = ReviewBody,
    responses(
        (status = 200, description = "The application, assessed", body = Object),
        super::openapi::StateChangeErrors,
    )
)]
pub async fn assess(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    ApiPath(id): ApiPath<String>,
    body: Result<Json<ReviewBody>, JsonRejection>,
) -> Response {
    let step: Step = async move {
    let Json(req) = body.map_err(|e| refuse(json_rejection(e)))?;
    let mut catalog = catalog(&state).map_err(refuse)?;
    let mut a = load(&catalog, &id)?;
    let zone = zone_of(&catalog, &a)?;
    if who.role != Role::Regulator || zone.supervisor != who.org {
        let reason = format!(
            "{} is not the regulator of zone {} (supervised by {}); cannot assess share application {}",
            who.uri, zone.id, zone.supervisor, a.id
        );
        return Err(wrong_party(&a, reason));
    }
    let review = req.review(&who).map_err(step_error)?;
    let step = a.assess(review);
    transition(
        &mut catalog,
        a,
        step,
        ShareState::Filed,
        "assessment",
        "assessed",
    )
    }
    .await;
    respond(step)
}

/// `POST /v1/share-applications/{id}/decision` (the named provider).
#[utoipa::path(
    post,
    path = "/v1/share-applications/{id}/decision",
    operation_id = "decide_share_application",
    tag = "share-applications",
    summary = "Approve or decline a sharing application (the provider)",
    params(("id" = String, Path, description = "The resource id")),
    request_body = ReviewBody,
    responses(
        (status = 200, description = "The application, decided", body = Object),
        super::openapi::StateChangeErrors,
    )
)]
pub async fn decide(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    ApiPath(id): ApiPath<String>,
    body: Result<Json<ReviewBody>, JsonRejection>,
) -> Response {
    let step: Step = async move {
        let Json(req) = body.map_err(|e| refuse(json_rejection(e)))?;
        let mut catalog = catalog(&state).map_err(refuse)?;
        let mut a = load(&catalog, &id)?;
        if who.role != Role::Provider || who.org != a.provider {
            let reason = format!(
                "{} is not of provider {}; cannot decide on share application {}",
                who.uri, a.provider, a.id
            );
            return Err(wrong_party(&a, reason));
        }
        let review = req.review(&who).map_err(step_error)?;
        let step = a.decide(review);
        transition(
            &mut catalog,
            a,
            step,
            ShareState::Assessed,
            "decision",
            "decided",
        )
    }
    .await;
    respond(step)
}

/// Stores a step's outcome and answers; a refused step keeps its record.
fn transition(
    catalog: &mut Catalog,
    a: ShareApplication,
    step: Result<(), StepError>,
    from: ShareState,
    event: &str,
    verb: &str,
) -> Step {
    if let Err(e) = step {
        return Err(refused_with(step_error(e), audit_of(&a)));
    }
    let stored = catalog
        .update_share_application(&a, from)
        .map_err(|e| refuse(ApiError::internal(e)))?;
    if !stored {
        let problem = format!("share application {} changed while this step ran", a.id);
        return Err(refused_with(Box::new(conflict(problem)), audit_of(&a)));
    }
    let review = match event {
        "assessment" => a.assessment.as_ref(),
        _ => a.decision.as_ref(),
    };
    let mut audit = audit_of(&a);
    audit.reason = Some(format!(
        "share application {} {verb}: now {}{}",
        a.id,
        a.state,
        match a.state {
            ShareState::Assessed => "; awaits the provider's decision",
            ShareState::Approved => "; approved by the regulator and the provider",
            _ => "",
        }
    ));
    audit.details = Some(json!({
        "event": format!("share-application.{event}"),
        "approve": review.map(|r| r.approve),
        "reason": review.map(|r| r.reason.clone()),
        "state": a.state,
    }));
    Ok(reply(StatusCode::OK, &a, audit))
}

/// Whether `who` may see `a`: the zone's operator or regulator, or the
/// named provider.
fn may_see(catalog: &Catalog, who: &Identity, a: &ShareApplication) -> Result<bool, Refused> {
    if who.role == Role::Provider {
        return Ok(who.org == a.provider);
    }
    match visible_zone(catalog, who, &a.zone) {
        Ok(_) => Ok(true),
        Err(ApiError::NotFound) => Ok(false),
        Err(e) => Err(refuse(e)),
    }
}

/// `GET /v1/share-applications`.
#[utoipa::path(
    get,
    path = "/v1/share-applications",
    operation_id = "list_share_applications",
    tag = "share-applications",
    summary = "List sharing applications",
    responses(
        (status = 200, description = "The applications the caller may see", body = Object),
        super::openapi::ReadErrors,
    )
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
) -> Response {
    let step: Step = async move {
        let catalog = catalog(&state).map_err(refuse)?;
        let mut shown = Vec::new();
        let all = catalog
            .share_applications()
            .map_err(|e| refuse(ApiError::internal(e)))?;
        for a in all {
            if may_see(&catalog, &who, &a)? {
                shown.push(a);
            }
        }
        let audit = Audit {
            resources: shown
                .iter()
                .map(|a| format!("share-application:{}", a.id))
                .collect(),
            ..Audit::default()
        };
        Ok(reply(
            StatusCode::OK,
            json!({ "applications": shown }),
            audit,
        ))
    }
    .await;
    respond(step)
}

/// `GET /v1/share-applications/{id}`.
#[utoipa::path(
    get,
    path = "/v1/share-applications/{id}",
    operation_id = "show_share_application",
    tag = "share-applications",
    summary = "One sharing application and its state",
    params(("id" = String, Path, description = "The resource id")),
    responses(
        (status = 200, description = "The application", body = Object),
        super::openapi::LookupErrors,
    )
)]
pub async fn show(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    ApiPath(id): ApiPath<String>,
) -> Response {
    let step: Step = async move {
        let catalog = catalog(&state).map_err(refuse)?;
        let a = load(&catalog, &id)?;
        if !may_see(&catalog, &who, &a)? {
            return Err(refuse(ApiError::NotFound));
        }
        let audit = audit_of(&a);
        Ok(reply(StatusCode::OK, &a, audit))
    }
    .await;
    respond(step)
}

/// The application `id` if it admits a `government-share` dataset of
/// `zone` from `provider` now: approved by both, same zone and provider,
/// in its period. Otherwise a 409 naming why.
pub fn approved_application(
    catalog: &Catalog,
    id: &str,
    zone: &vault::ids::ZoneId,
    provider: &str,
) -> Result<ShareApplication, Refused> {
    let a = catalog
        .share_application(id)
        .map_err(|e| refuse(ApiError::internal(e)))?
        .ok_or_else(|| {
            refuse(ApiError::bad_request(
                "application",
                format!("no share application {id}"),
            ))
        })?;
    match a.admits_dataset(zone, provider, vault::governance::period::now()) {
        None => Ok(a),
        Some(problem) => Err(Box::new(conflict(problem))),
    }
}
