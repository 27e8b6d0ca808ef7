//! Data quality tickets over the API (clause 4; the workflow is
//! [`vault::governance::quality`]).
//!
//! - `POST /v1/quality-tickets` (any role, on a dataset it can see: the
//!   zone's operator or regulator, the dataset's provider organization, an
//!   analyst holding a grant on it) opens a ticket; its deadline is fixed
//!   by the configured SLA of its dimension (`[quality_sla]`).
//! - `POST /v1/quality-tickets/{id}/response` (the provider organization),
//!   `/dispute` (the opener) and `/resolution` (the opener, or the zone's
//!   regulator as arbiter) move it on; the wrong party is 403, the wrong
//!   state 409, and the reason is in the ledger entry.
//! - `GET /v1/quality-tickets[?overdue=true][&dataset=]` lists the tickets
//!   the caller can see: its own, its organization's as provider, and its
//!   zones' as operator or regulator.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use vault::catalog::Catalog;
use vault::dataset::Dataset;
use vault::governance::quality::{NewTicket, Parties, QualityTicket};

use super::audit::Audit;
use super::datasets::dataset_id;
use super::extract::{ApiPath, ApiQuery};
use super::workflow_steps::{fresh_id, is_zone_operator, is_zone_regulator, step_error, zone_of};
use super::zones::{answer, catalog, Answer};
use super::AppState;
use crate::error::{json_rejection, ApiError};
use crate::identity::{Identity, Role};

/// The quality routes (each has a row in [`crate::authz::RULES`]).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/quality-tickets", post(open).get(list))
        .route("/v1/quality-tickets/{id}", get(show))
        .route("/v1/quality-tickets/{id}/response", post(respond))
        .route("/v1/quality-tickets/{id}/dispute", post(dispute))
        .route("/v1/quality-tickets/{id}/resolution", post(resolve))
}

/// `POST /v1/quality-tickets` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenRequest {
    dataset: String,
    dimension: String,
    #[serde(default)]
    fields: Vec<String>,
    #[serde(default)]
    rows: Vec<u64>,
    description: String,
}

/// Whether `who` may open a ticket on `dataset`.
fn may_open(catalog: &Catalog, who: &Identity, dataset: &Dataset) -> Result<bool, ApiError> {
    let zone = zone_of(catalog, &dataset.zone)?;
    Ok(match who.role {
        Role::Regulator => is_zone_regulator(who, &zone),
        Role::Operator => is_zone_operator(catalog, who, &zone)?,
        Role::Provider => dataset.provider == who.org,
        Role::Analyst => catalog
            .grants(None)
            .map_err(ApiError::internal)?
            .iter()
            .any(|g| g.dataset == dataset.id && g.recipient.includes(&who.uri, &who.org)),
    })
}

/// `POST /v1/quality-tickets` (any role that can see the dataset).
#[utoipa::path(
    post,
    path = "/v1/quality-tickets",
    operation_id = "open_quality_ticket",
    tag = "quality",
    summary = "Open a data quality ticket on a dataset (any role)",
    request_body = OpenRequest,
    responses(
        (status = 201, description = "The ticket, with its deadline", body = Object),
        super::openapi::BodyLookupErrors,
    )
)]
pub async fn open(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    body: Result<Json<OpenRequest>, JsonRejection>,
) -> Answer {
    let Json(req) = body.map_err(json_rejection)?;
    let mut catalog = catalog(&state)?;
    let id = dataset_id("dataset", &req.dataset)?;
    let unknown = || ApiError::bad_request("dataset", format!("no dataset {id}"));
    let dataset = catalog
        .dataset(&id)
        .map_err(ApiError::internal)?
        .ok_or_else(unknown)?;
    if !may_open(&catalog, &who, &dataset)? {
        tracing::info!(dataset = %id, caller = %who.uri, "dataset hidden from caller");
        return Err(unknown().into());
    }
    let columns: Vec<String> = dataset.columns.iter().map(|c| c.name.clone()).collect();
    let new = NewTicket {
        dataset: &dataset.id,
        zone: &dataset.zone,
        provider: &dataset.provider,
        columns: &columns,
        dimension: &req.dimension,
        fields: req.fields,
        rows: req.rows,
        description: &req.description,
    };
    let ticket = QualityTicket::open(fresh_id("qt")?, new, &who.uri, &state.quality_sla)
        .map_err(step_error)?;
    catalog
        .insert_quality_ticket(&ticket)
        .map_err(ApiError::internal)?;
    let audit = ticket_audit(&ticket, "quality.open");
    answer(StatusCode::CREATED, view(&ticket), audit)
}

/// The caller's parts in `ticket`.
fn parties(catalog: &Catalog, who: &Identity, t: &QualityTicket) -> Result<Parties, ApiError> {
    let zone = zone_of(catalog, &t.zone)?;
    Ok(Parties {
        opener: t.opened_by == who.uri,
        provider: who.role == Role::Provider && who.org == t.provider,
        zone_regulator: is_zone_regulator(who, &zone),
    })
}

/// Whether `who` may see `ticket`.
fn may_see(catalog: &Catalog, who: &Identity, t: &QualityTicket) -> Result<bool, ApiError> {
    let p = parties(catalog, who, t)?;
    let zone = zone_of(catalog, &t.zone)?;
    Ok(p.opener || p.provider || p.zone_regulator || is_zone_operator(catalog, who, &zone)?)
}

/// The ticket, if `who` may see it (404 otherwise, the reason logged).
fn visible_ticket(catalog: &Catalog, who: &Identity, id: &str) -> Result<QualityTicket, ApiError> {
    let t = catalog
        .quality_ticket(id)
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    if may_see(catalog, who, &t)? {
        Ok(t)
    } else {
        tracing::info!(ticket = %id, caller = %who.uri, "ticket hidden from caller");
        Err(ApiError::NotFound)
    }
}

/// The ticket as the API shows it: the record plus whether it is overdue
/// now and its response time in working days.
fn view(t: &QualityTicket) -> Value {
    let now = time::OffsetDateTime::now_utc();
    let mut v = serde_json::to_value(t).unwrap_or_else(|_| json!({"id": t.id}));
    v["overdue"] = json!(t.is_overdue(now));
    v["answered_within_sla"] = json!(t.answered_within_sla());
    v["response_working_days"] = json!(t.response_working_days(now));
    v
}

fn ticket_audit(t: &QualityTicket, event: &str) -> Audit {
    Audit {
        resources: vec![
            format!("quality-ticket:{}", t.id),
            format!("dataset:{}", t.dataset),
        ],
        reason: Some(format!("quality ticket {}", t.state.as_str())),
        details: Some(json!({
            "event": event, "state": t.state.as_str(), "dimension": t.dimension,
            "due_at": super::grants::rfc3339(t.due_at),
        })),
        ..Audit::default()
    }
}

/// `GET /v1/quality-tickets` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    overdue: Option<bool>,
    #[serde(default)]
    dataset: Option<String>,
}

/// `GET /v1/quality-tickets`.
#[utoipa::path(
    get,
    path = "/v1/quality-tickets",
    operation_id = "list_quality_tickets",
    tag = "quality",
    summary = "List quality tickets (?overdue=true&dataset=)",
    params(ListQuery),
    responses(
        (status = 200, description = "tickets: the tickets the caller may see", body = Object),
        super::openapi::QueryErrors,
    )
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Answer {
    let catalog = catalog(&state)?;
    let now = time::OffsetDateTime::now_utc();
    let mut items = Vec::new();
    for t in catalog.quality_tickets().map_err(ApiError::internal)? {
        let wanted = q.overdue.is_none_or(|o| t.is_overdue(now) == o)
            && q.dataset.as_deref().is_none_or(|d| t.dataset.as_str() == d);
        if wanted && may_see(&catalog, &who, &t)? {
            items.push(t);
        }
    }
    let audit = Audit {
        resources: items
            .iter()
            .map(|t| format!("quality-ticket:{}", t.id))
            .collect(),
        details: Some(json!({"overdue": q.overdue, "count": items.len()})),
        ..Audit::default()
    };
    let tickets: Vec<Value> = items.iter().map(view).collect();
    answer(StatusCode::OK, json!({ "tickets": tickets }), audit)
}

/// `GET /v1/quality-tickets/{id}`.
#[utoipa::path(
    get,
    path = "/v1/quality-tickets/{id}",
    operation_id = "show_quality_ticket",
    tag = "quality",
    summary = "One quality ticket, its deadline and response time",
    params(("id" = String, Path, description = "The resource id")),
    responses(
        (status = 200, description = "The ticket", body = Object),
        super::openapi::LookupErrors,
    )
)]
pub async fn show(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    ApiPath(id): ApiPath<String>,
) -> Answer {
    let catalog = catalog(&state)?;
    let t = visible_ticket(&catalog, &who, &id)?;
    let mut audit = ticket_audit(&t, "quality.show");
    audit.reason = None;
    answer(StatusCode::OK, view(&t), audit)
}

/// The body of a ticket step.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepRequest {
    text: String,
}

/// Which step a route takes.
#[derive(Clone, Copy)]
enum Step {
    Respond,
    Dispute,
    Resolve,
}

fn take_step(
    state: &AppState,
    who: &Identity,
    id: &str,
    step: Step,
    text: &str,
) -> Result<QualityTicket, ApiError> {
    let mut catalog = catalog(state)?;
    let mut t = visible_ticket(&catalog, who, id)?;
    let p = parties(&catalog, who, &t)?;
    match step {
        Step::Respond => t.respond(p, &who.uri, text),
        Step::Dispute => t.dispute(p, &who.uri, text),
        Step::Resolve => t.resolve(p, &who.uri, text),
    }
    .map_err(step_error)?;
    catalog
        .update_quality_ticket(&t)
        .map_err(ApiError::internal)?;
    Ok(t)
}

async fn step_route(
    state: Arc<AppState>,
    who: Identity,
    id: String,
    body: Result<Json<StepRequest>, JsonRejection>,
    step: Step,
    event: &str,
) -> Answer {
    let Json(req) = body.map_err(json_rejection)?;
    let t = take_step(&state, &who, &id, step, &req.text)?;
    answer(StatusCode::OK, view(&t), ticket_audit(&t, event))
}

/// `POST /v1/quality-tickets/{id}/response` (the provider organization).
#[utoipa::path(
    post,
    path = "/v1/quality-tickets/{id}/response",
    operation_id = "respond_quality_ticket",
    tag = "quality",
    summary = "Respond to a quality ticket (the dataset's provider)",
    params(("id" = String, Path, description = "The resource id")),
    request_body = StepRequest,
    responses(
        (status = 200, description = "The ticket", body = Object),
        super::openapi::StateChangeErrors,
    )
)]
pub async fn respond(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    ApiPath(id): ApiPath<String>,
    body: Result<Json<StepRequest>, JsonRejection>,
) -> Answer {
    step_route(state, who, id, body, Step::Respond, "quality.respond").await
}

/// `POST /v1/quality-tickets/{id}/dispute` (the opener).
#[utoipa::path(
    post,
    path = "/v1/quality-tickets/{id}/dispute",
    operation_id = "dispute_quality_ticket",
    tag = "quality",
    summary = "Dispute the provider's response (the opener)",
    params(("id" = String, Path, description = "The resource id")),
    request_body = StepRequest,
    responses(
        (status = 200, description = "The ticket", body = Object),
        super::openapi::StateChangeErrors,
    )
)]
pub async fn dispute(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    ApiPath(id): ApiPath<String>,
    body: Result<Json<StepRequest>, JsonRejection>,
) -> Answer {
    step_route(state, who, id, body, Step::Dispute, "quality.dispute").await
}

/// `POST /v1/quality-tickets/{id}/resolution` (the opener or the zone's
/// regulator).
#[utoipa::path(
    post,
    path = "/v1/quality-tickets/{id}/resolution",
    operation_id = "resolve_quality_ticket",
    tag = "quality",
    summary = "Resolve a quality ticket (the opener or the zone regulator)",
    params(("id" = String, Path, description = "The resource id")),
    request_body = StepRequest,
    responses(
        (status = 200, description = "The ticket", body = Object),
        super::openapi::StateChangeErrors,
    )
)]
pub async fn resolve(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    ApiPath(id): ApiPath<String>,
    body: Result<Json<StepRequest>, JsonRejection>,
) -> Answer {
    step_route(state, who, id, body, Step::Resolve, "quality.resolve").await
}
