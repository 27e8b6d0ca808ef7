//! Feedback data (反哺, clause 5) over the API; the workflow is
//! [`vault::governance::feedback`].
//!
//! - `POST /v1/feedback` (the zone's operator) submits an imported dataset
//!   whose source is `feedback`; the detection pass runs over its rows and
//!   its findings are in the record the regulator reviews.
//! - `POST /v1/feedback/{id}/approval` (the zone's regulator) makes it
//!   available, or rejects it.
//! - `POST /v1/feedback/{id}/applications` (a provider-role department)
//!   applies for an available one.
//! - `POST /v1/feedback-applications/{id}/review` (the zone's regulator and
//!   the zone's operator, either order) approve or reject the application.
//! - Then the operator grants the department with `POST /v1/grants`, which
//!   asks [`grant_refusal`] first: until both approvals exist, a grant on a
//!   feedback dataset is refused (403, reason in the ledger).
//!
//! `GET /v1/feedback[/{id}]`: the zone's operator and regulator see their
//! zones' records; a provider sees the available ones, and only its own
//! organization's applications.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use vault::catalog::Catalog;
use vault::dataset::{Dataset, DatasetSource, DatasetState};
use vault::governance::feedback::{
    self, Feedback, FeedbackApplication, FeedbackState, NewApplication, Reviewer,
};

use super::audit::Audit;
use super::datasets::{dataset_id, owned_dataset};
use super::extract::ApiPath;
use super::workflow_steps::{fresh_id, is_zone_operator, is_zone_regulator, step_error, zone_of};
use super::zones::{answer, catalog, Answer};
use super::AppState;
use crate::error::{json_rejection, ApiError};
use crate::identity::{Identity, Role};

/// The feedback routes (each has a row in [`crate::authz::RULES`]).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/feedback", post(submit).get(list))
        .route("/v1/feedback/{id}", get(show))
        .route("/v1/feedback/{id}/approval", post(approval))
        .route("/v1/feedback/{id}/applications", post(apply))
        .route("/v1/feedback-applications/{id}/review", post(review))
}

/// Why a grant of `columns` of `dataset` to `recipient_org` is refused, if
/// the dataset is feedback data (see the module documentation).
pub fn grant_refusal(
    catalog: &Catalog,
    dataset: &Dataset,
    recipient_org: &str,
    columns: &[String],
) -> Result<Option<String>, ApiError> {
    if dataset.source != DatasetSource::Feedback {
        return Ok(None);
    }
    let records = catalog.feedback_records().map_err(ApiError::internal)?;
    let record = records
        .iter()
        .rev()
        .find(|f| f.dataset == dataset.id && f.state == FeedbackState::Available);
    let applications = match record {
        Some(f) => catalog
            .feedback_applications(&f.id)
            .map_err(ApiError::internal)?,
        None => Vec::new(),
    };
    Ok(feedback::grant_refusal(
        &dataset.id,
        record,
        &applications,
        recipient_org,
        columns,
    ))
}

/// `POST /v1/feedback` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    dataset: String,
    description: String,
}

/// The dataset to submit: the operator's, source `feedback`, with rows,
/// and without a pending or available record.
fn submittable(catalog: &Catalog, who: &Identity, value: &str) -> Result<Dataset, ApiError> {
    let id = dataset_id("dataset", value)?;
    let dataset = owned_dataset(catalog, who, &id).map_err(|e| match e {
        ApiError::NotFound => ApiError::bad_request("dataset", format!("no dataset {id}")),
        other => other,
    })?;
    if dataset.source != DatasetSource::Feedback {
        let problem = format!("dataset {id} has source {}, not feedback", dataset.source);
        return Err(ApiError::bad_request("dataset", problem));
    }
    if !matches!(
        dataset.state,
        DatasetState::Imported | DatasetState::Confirmed
    ) {
        return Err(ApiError::Conflict {
            reason: format!("dataset {id} is {}; import its rows first", dataset.state),
        });
    }
    let open = catalog
        .feedback_records()
        .map_err(ApiError::internal)?
        .into_iter()
        .find(|f| f.dataset == id && f.state != FeedbackState::Rejected);
    if let Some(f) = open {
        return Err(ApiError::Conflict {
            reason: format!(
                "dataset {id} already has feedback {} ({})",
                f.id,
                f.state.as_str()
            ),
        });
    }
    Ok(dataset)
}

/// `POST /v1/feedback` (the zone's operator).
#[utoipa::path(
    post,
    path = "/v1/feedback",
    operation_id = "submit_feedback",
    tag = "feedback",
    summary = "Submit a derived dataset as feedback data, with its detection findings (operator)",
    request_body = SubmitRequest,
    responses(
        (status = 201, description = "The feedback record and its findings", body = Object),
        super::openapi::StateChangeErrors,
    )
)]
pub async fn submit(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    body: Result<Json<SubmitRequest>, JsonRejection>,
) -> Answer {
    let Json(req) = body.map_err(json_rejection)?;
    let worker = state.clone();
    let f = tokio::task::spawn_blocking(move || submit_blocking(&worker, &who, &req))
        .await
        .map_err(|e| ApiError::internal(format!("feedback task failed: {e}")))??;
    let mut audit = feedback_audit(&f, "feedback.submit");
    audit.details = Some(json!({
        "event": "feedback.submit",
        "rows_scanned": f.findings.rows_scanned,
        "sensitive_columns": f.findings.sensitive_columns,
    }));
    answer(StatusCode::CREATED, view(&f, None), audit)
}

/// Checks, scans (without holding the catalog) and records a submission.
fn submit_blocking(
    state: &AppState,
    who: &Identity,
    req: &SubmitRequest,
) -> Result<Feedback, ApiError> {
    let (dataset, file) = {
        let catalog = catalog(state)?;
        let dataset = submittable(&catalog, who, &req.dataset)?;
        let file = super::grant_access::open_dataset(state, &catalog, &dataset)?;
        (dataset, file)
    };
    let findings =
        feedback::scan(file.connection(), &dataset.columns).map_err(ApiError::internal)?;
    drop(file);
    let f = Feedback::submit(
        fresh_id("fb")?,
        dataset.id.clone(),
        dataset.zone.clone(),
        &req.description,
        findings,
        &who.uri,
    )
    .map_err(step_error)?;
    let mut catalog = catalog(state)?;
    submittable(&catalog, who, &req.dataset)?;
    catalog.insert_feedback(&f).map_err(ApiError::internal)?;
    Ok(f)
}

/// Whether `who` may see `f`, and whether it sees every application.
fn access(catalog: &Catalog, who: &Identity, f: &Feedback) -> Result<Option<bool>, ApiError> {
    let zone = zone_of(catalog, &f.zone)?;
    if is_zone_regulator(who, &zone) || is_zone_operator(catalog, who, &zone)? {
        return Ok(Some(true));
    }
    let provider_sees = who.role == Role::Provider && f.state == FeedbackState::Available;
    Ok(provider_sees.then_some(false))
}

/// The record, if `who` may see it (404 otherwise).
fn visible(catalog: &Catalog, who: &Identity, id: &str) -> Result<(Feedback, bool), ApiError> {
    let f = catalog
        .feedback(id)
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    match access(catalog, who, &f)? {
        Some(all) => Ok((f, all)),
        None => {
            tracing::info!(feedback = %id, caller = %who.uri, "feedback hidden from caller");
            Err(ApiError::NotFound)
        }
    }
}

fn view(f: &Feedback, applications: Option<&[FeedbackApplication]>) -> Value {
    let mut v = serde_json::to_value(f).unwrap_or_else(|_| json!({"id": f.id}));
    if let Some(apps) = applications {
        v["applications"] = json!(apps);
    }
    v
}

fn feedback_audit(f: &Feedback, event: &str) -> Audit {
    Audit {
        resources: vec![
            format!("feedback:{}", f.id),
            format!("dataset:{}", f.dataset),
        ],
        reason: Some(format!("feedback {}", f.state.as_str())),
        details: Some(json!({"event": event, "state": f.state.as_str()})),
        ..Audit::default()
    }
}

/// The applications of `f` that `who` may see.
fn applications_for(
    catalog: &Catalog,
    who: &Identity,
    f: &Feedback,
    all: bool,
) -> Result<Vec<FeedbackApplication>, ApiError> {
    let apps = catalog
        .feedback_applications(&f.id)
        .map_err(ApiError::internal)?;
    Ok(apps
        .into_iter()
        .filter(|a| all || a.org == who.org)
        .collect())
}

/// `GET /v1/feedback`.
#[utoipa::path(
    get,
    path = "/v1/feedback",
    operation_id = "list_feedback",
    tag = "feedback",
    summary = "List feedback data and its applications",
    responses(
        (status = 200, description = "The feedback records the caller may see", body = Object),
        super::openapi::ReadErrors,
    )
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
) -> Answer {
    let catalog = catalog(&state)?;
    let mut items = Vec::new();
    let mut resources = Vec::new();
    for f in catalog.feedback_records().map_err(ApiError::internal)? {
        if let Some(all) = access(&catalog, &who, &f)? {
            let apps = applications_for(&catalog, &who, &f, all)?;
            resources.push(format!("feedback:{}", f.id));
            items.push(view(&f, Some(&apps)));
        }
    }
    let audit = Audit {
        resources,
        ..Audit::default()
    };
    answer(StatusCode::OK, json!({ "feedback": items }), audit)
}

/// `GET /v1/feedback/{id}`.
#[utoipa::path(
    get,
    path = "/v1/feedback/{id}",
    operation_id = "show_feedback",
    tag = "feedback",
    summary = "One feedback record, its findings and applications",
    params(("id" = String, Path, description = "The resource id")),
    responses(
        (status = 200, description = "The feedback record", body = Object),
        super::openapi::LookupErrors,
    )
)]
pub async fn show(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    ApiPath(id): ApiPath<String>,
) -> Answer {
    let catalog = catalog(&state)?;
    let (f, all) = visible(&catalog, &who, &id)?;
    let apps = applications_for(&catalog, &who, &f, all)?;
    let mut audit = feedback_audit(&f, "feedback.show");
    audit.reason = None;
    answer(StatusCode::OK, view(&f, Some(&apps)), audit)
}

/// A review's body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    approve: bool,
    reason: String,
}

/// `POST /v1/feedback/{id}/approval` (the zone's regulator).
#[utoipa::path(
    post,
    path = "/v1/feedback/{id}/approval",
    operation_id = "approve_feedback",
    tag = "feedback",
    summary = "Approve or reject feedback data (zone regulator)",
    params(("id" = String, Path, description = "The resource id")),
    request_body = ReviewRequest,
    responses(
        (status = 200, description = "The feedback record, reviewed", body = Object),
        super::openapi::StateChangeErrors,
    )
)]
pub async fn approval(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    ApiPath(id): ApiPath<String>,
    body: Result<Json<ReviewRequest>, JsonRejection>,
) -> Answer {
    let Json(req) = body.map_err(json_rejection)?;
    let mut catalog = catalog(&state)?;
    let mut f = catalog
        .feedback(&id)
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    let zone = zone_of(&catalog, &f.zone)?;
    f.review(
        is_zone_regulator(&who, &zone),
        req.approve,
        &req.reason,
        &who.uri,
    )
    .map_err(step_error)?;
    catalog.update_feedback(&f).map_err(ApiError::internal)?;
    let mut audit = feedback_audit(&f, "feedback.review");
    audit.details = Some(json!({
        "event": "feedback.review", "state": f.state.as_str(), "approve": req.approve,
        "sensitive_columns": f.findings.sensitive_columns,
    }));
    answer(StatusCode::OK, view(&f, None), audit)
}

/// `POST /v1/feedback/{id}/applications` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    purpose: String,
    #[serde(default)]
    columns: Vec<String>,
}

/// `POST /v1/feedback/{id}/applications` (a provider-role department).
#[utoipa::path(
    post,
    path = "/v1/feedback/{id}/applications",
    operation_id = "apply_for_feedback",
    tag = "feedback",
    summary = "Apply for available feedback data (a provider department)",
    params(("id" = String, Path, description = "The resource id")),
    request_body = ApplyRequest,
    responses(
        (status = 201, description = "The application", body = Object),
        super::openapi::StateChangeErrors,
    )
)]
pub async fn apply(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    ApiPath(id): ApiPath<String>,
    body: Result<Json<ApplyRequest>, JsonRejection>,
) -> Answer {
    let Json(req) = body.map_err(json_rejection)?;
    let mut catalog = catalog(&state)?;
    let f = catalog
        .feedback(&id)
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    let dataset = catalog
        .dataset(&f.dataset)
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    let columns: Vec<String> = dataset.columns.iter().map(|c| c.name.clone()).collect();
    let pending = applications_for(&catalog, &who, &f, false)?
        .into_iter()
        .find(|a| a.state != feedback::ApplicationState::Rejected);
    if let Some(a) = pending {
        let reason = format!(
            "{} already applied for feedback {} ({})",
            who.org, f.id, a.id
        );
        return Err(ApiError::Conflict { reason }.into());
    }
    let new = NewApplication {
        org: &who.org,
        applicant: &who.uri,
        purpose: &req.purpose,
        columns: req.columns,
    };
    let a = FeedbackApplication::apply(fresh_id("fa")?, &f, &columns, new).map_err(step_error)?;
    catalog
        .insert_feedback_application(&a)
        .map_err(ApiError::internal)?;
    answer(
        StatusCode::CREATED,
        &a,
        application_audit(&a, "feedback.apply"),
    )
}

fn application_audit(a: &FeedbackApplication, event: &str) -> Audit {
    Audit {
        resources: vec![
            format!("feedback-application:{}", a.id),
            format!("feedback:{}", a.feedback),
            format!("dataset:{}", a.dataset),
        ],
        purpose: Some(a.purpose.clone()),
        reason: Some(format!("feedback application {}", a.state.as_str())),
        details: Some(json!({"event": event, "state": a.state.as_str(), "org": a.org})),
        ..Audit::default()
    }
}

/// `POST /v1/feedback-applications/{id}/review` (the zone's regulator or
/// operator).
#[utoipa::path(
    post,
    path = "/v1/feedback-applications/{id}/review",
    operation_id = "review_feedback_application",
    tag = "feedback",
    summary = "Review a department's application (zone regulator and operator)",
    params(("id" = String, Path, description = "The resource id")),
    request_body = ReviewRequest,
    responses(
        (status = 200, description = "The application, reviewed", body = Object),
        super::openapi::StateChangeErrors,
    )
)]
pub async fn review(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    ApiPath(id): ApiPath<String>,
    body: Result<Json<ReviewRequest>, JsonRejection>,
) -> Answer {
    let Json(req) = body.map_err(json_rejection)?;
    let mut catalog = catalog(&state)?;
    let mut a = catalog
        .feedback_application(&id)
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    let dataset = catalog
        .dataset(&a.dataset)
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    let zone = zone_of(&catalog, &dataset.zone)?;
    let reviewer = if is_zone_regulator(&who, &zone) {
        Reviewer::ZoneRegulator
    } else if is_zone_operator(&catalog, &who, &zone)? {
        Reviewer::ZoneOperator
    } else {
        let reason = format!(
            "{} neither regulates nor operates zone {}",
            who.uri, zone.id
        );
        return Err(ApiError::Forbidden { reason }.into());
    };
    a.review(reviewer, req.approve, &req.reason, &who.uri)
        .map_err(step_error)?;
    catalog
        .update_feedback_application(&a)
        .map_err(ApiError::internal)?;
    answer(
        StatusCode::OK,
        &a,
        application_audit(&a, "feedback.application-review"),
    )
}
