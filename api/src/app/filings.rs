//! Data-use filings (备案, clause 7) over the API, and their usage reports.
//!
//! - `POST /v1/filings` (an operator of the datasets' zone) files the
//!   scenario, scope (datasets and columns), method (`extract`,
//!   `aggregate`, `both`), recipient partner organizations and period.
//!   Every recipient must be a partner with scenario authorization, and
//!   with product authorization when the method includes aggregates.
//! - `POST /v1/filings/{id}/acknowledgement` (the zone's regulator):
//!   `{"acknowledge": bool, "reason"}`.
//! - `GET /v1/filings[/{id}]`: the zone's operator and regulator.
//! - `GET /v1/filings/{id}/usage-report?from=&to=&format=json|csv|markdown`:
//!   extracts, rows, aggregates and denied attempts per recipient under
//!   the filing's grants, computed from the ledger
//!   ([`vault::governance::usage`]).
//!
//! Grants are checked against filings in [`super::grants`]; extracts and
//! aggregates against the filing's method and period in
//! [`super::grant_access`].

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;
use vault::catalog::Catalog;
use vault::governance::filing::{Filing, FilingState, Method, NewFiling, ScopeEntry};
use vault::governance::period::{Period, Review};
use vault::governance::usage::UsageReport;
use vault::ids::ZoneId;
use vault::ledger::LedgerEntry;

use super::audit::Audit;
use super::datasets::{dataset_id, owned_dataset};
use super::extract::{ApiPath, ApiQuery};
use super::grants::new_id;
use super::ledger_routes::MAX_ENTRIES_PER_PAGE;
use super::share_applications::{
    audited, conflict, refuse, refused_with, reply, respond, step_error, PeriodBody, Refused, Step,
};
use super::zones::{catalog, visible_zone};
use super::AppState;
use crate::error::{json_rejection, ApiError};
use crate::identity::{Identity, Role};

/// The routes (each has a row in [`crate::authz::RULES`]).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/filings", post(file).get(list))
        .route("/v1/filings/{id}", get(show))
        .route("/v1/filings/{id}/acknowledgement", post(acknowledge))
        .route("/v1/filings/{id}/usage-report", get(usage_report))
}

/// A 403 whose body names the field and the problem: the operator who
/// asked knows its partners and filings, so the reason is safe to show.
pub fn forbidden(field: &str, problem: String) -> Response {
    let body = json!({
        "error": "forbidden",
        "message": "the caller is not allowed to do this",
        "field": field,
        "problem": problem,
    });
    let mut response = (StatusCode::FORBIDDEN, Json(body)).into_response();
    response
        .extensions_mut()
        .insert(super::audit::AuditReason(format!("forbidden: {problem}")));
    response
}

/// One dataset of `POST /v1/filings`' scope.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeBody {
    dataset: String,
    columns: Vec<String>,
}

/// `POST /v1/filings` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileRequest {
    scenario: String,
    scope: Vec<ScopeBody>,
    method: String,
    recipients: Vec<String>,
    period: PeriodBody,
}

fn audit_of(f: &Filing) -> Audit {
    let mut resources = vec![format!("zone:{}", f.zone), format!("filing:{}", f.id)];
    resources.extend(f.scope.iter().map(|e| format!("dataset:{}", e.dataset)));
    Audit {
        resources,
        filing: Some(f.id.clone()),
        ..Audit::default()
    }
}

/// The scope, checked: datasets the operator runs, all in one zone, whose
/// columns exist. Returns the zone with it.
fn checked_scope(
    catalog: &Catalog,
    who: &Identity,
    scope: Vec<ScopeBody>,
) -> Result<(ZoneId, Vec<ScopeEntry>), Refused> {
    let mut zone: Option<ZoneId> = None;
    let mut out = Vec::with_capacity(scope.len());
    for entry in scope {
        let id = dataset_id("scope.dataset", &entry.dataset).map_err(refuse)?;
        let dataset = owned_dataset(catalog, who, &id).map_err(|e| match e {
            ApiError::NotFound => refuse(ApiError::bad_request(
                "scope.dataset",
                format!("no dataset {id}"),
            )),
            other => refuse(other),
        })?;
        if zone.as_ref().is_some_and(|z| z != &dataset.zone) {
            let problem = "every dataset of a filing must be in one zone (one regulator)";
            return Err(refuse(ApiError::bad_request("scope.dataset", problem)));
        }
        if let Some(c) = entry
            .columns
            .iter()
            .find(|c| !dataset.columns.iter().any(|d| &d.name == *c))
        {
            let problem = format!("no column {c:?} in dataset {id}");
            return Err(refuse(ApiError::bad_request("scope.columns", problem)));
        }
        zone = Some(dataset.zone.clone());
        out.push(ScopeEntry {
            dataset: id,
            columns: entry.columns,
        });
    }
    let zone = zone.ok_or_else(|| {
        refuse(ApiError::bad_request(
            "scope",
            "must list at least one dataset",
        ))
    })?;
    Ok((zone, out))
}

/// Every recipient must be a partner with scenario authorization, and
/// with product authorization when the method includes aggregates.
fn check_recipients(
    catalog: &Catalog,
    recipients: &[String],
    method: Method,
) -> Result<(), Refused> {
    for org in recipients {
        let partner = catalog
            .partner(org.trim())
            .map_err(|e| refuse(ApiError::internal(e)))?;
        let problem = match partner {
            None => Some(format!(
                "{org} is not a partner; set it with PUT /v1/partners/{{org}}"
            )),
            Some(p) if !p.scenario_authorization => Some(format!(
                "partner {org} has no scenario authorization and cannot be a filing's recipient"
            )),
            Some(p) if method.includes_products() && !p.product_authorization => Some(format!(
                "partner {org} has no product authorization, which the {method} method needs"
            )),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            return Err(Box::new(forbidden("recipients", problem)));
        }
    }
    Ok(())
}

/// `POST /v1/filings` (operator of the datasets' zone).
#[utoipa::path(
    post,
    path = "/v1/filings",
    operation_id = "file_filing",
    tag = "filings",
    summary = "File a data-use filing: scenario, scope, method, recipients, period (operator)",
    request_body = FileRequest,
    responses(
        (status = 201, description = "The filing", body = Object),
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
        let method: Method = req.method.parse().map_err(step_error)?;
        let period = req.period.parse().map_err(step_error)?;
        let mut catalog = catalog(&state).map_err(refuse)?;
        let (zone, scope) = checked_scope(&catalog, &who, req.scope)?;
        let recipients: Vec<String> = req.recipients.iter().map(|r| r.trim().to_owned()).collect();
        let new = NewFiling {
            zone,
            scenario: req.scenario,
            scope,
            method,
            recipients,
            period,
        };
        let f = Filing::file(new_id("f").map_err(refuse)?, new, &who.uri).map_err(step_error)?;
        check_recipients(&catalog, &f.recipients, f.method)
            .map_err(|r| refused_with(r, audit_of(&f)))?;
        catalog
            .insert_filing(&f)
            .map_err(|e| refuse(ApiError::internal(e)))?;
        let mut audit = audit_of(&f);
        audit.reason = Some(format!(
            "filing {} filed ({} to {}); awaits the regulator's acknowledgement",
            f.id,
            f.method,
            f.recipients.join(", ")
        ));
        audit.details = Some(json!({
            "event": "filing.file", "scenario": f.scenario, "method": f.method,
            "recipients": f.recipients, "scope": f.scope, "period": f.period,
        }));
        Ok(reply(
            StatusCode::CREATED,
            json!({"id": f.id, "filing": f}),
            audit,
        ))
    }
    .await;
    respond(step)
}

/// The filing, if `who` may see it (the zone's operator or regulator).
fn visible_filing(catalog: &Catalog, who: &Identity, id: &str) -> Result<Filing, Refused> {
    let f = catalog
        .filing(id)
        .map_err(|e| refuse(ApiError::internal(e)))?
        .ok_or_else(|| refuse(ApiError::NotFound))?;
    visible_zone(catalog, who, &f.zone).map_err(refuse)?;
    Ok(f)
}

/// `POST /v1/filings/{id}/acknowledgement` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgeRequest {
    acknowledge: bool,
    reason: String,
}

/// `POST /v1/filings/{id}/acknowledgement` (the zone's regulator).
#[utoipa::path(
    post,
    path = "/v1/filings/{id}/acknowledgement",
    operation_id = "acknowledge_filing",
    tag = "filings",
    summary = "Acknowledge or reject a filing (zone regulator)",
    params(("id" = String, Path, description = "The resource id")),
    request_body = AcknowledgeRequest,
    responses(
        (status = 200, description = "The filing, acknowledged or rejected", body = Object),
        super::openapi::StateChangeErrors,
    )
)]
pub async fn acknowledge(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    ApiPath(id): ApiPath<String>,
    body: Result<Json<AcknowledgeRequest>, JsonRejection>,
) -> Response {
    let step: Step = async move {
        let Json(req) = body.map_err(|e| refuse(json_rejection(e)))?;
        let mut catalog = catalog(&state).map_err(refuse)?;
        let mut f = catalog
            .filing(&id)
            .map_err(|e| refuse(ApiError::internal(e)))?
            .ok_or_else(|| refuse(ApiError::NotFound))?;
        let zone = catalog
            .zone(&f.zone)
            .map_err(|e| refuse(ApiError::internal(e)))?
            .ok_or_else(|| refuse(ApiError::NotFound))?;
        if who.role != Role::Regulator || zone.supervisor != who.org {
            let reason = format!(
            "{} is not the regulator of zone {} (supervised by {}); cannot acknowledge filing {}",
            who.uri, zone.id, zone.supervisor, f.id
        );
            return Err(refused_with(
                refuse(ApiError::Forbidden { reason }),
                audit_of(&f),
            ));
        }
        let review = Review::now(req.acknowledge, &req.reason, &who.uri).map_err(step_error)?;
        if let Err(e) = f.acknowledge(review) {
            return Err(refused_with(step_error(e), audit_of(&f)));
        }
        if !catalog
            .update_filing(&f, FilingState::Filed)
            .map_err(|e| refuse(ApiError::internal(e)))?
        {
            let problem = format!("filing {} changed while this step ran", f.id);
            return Err(refused_with(Box::new(conflict(problem)), audit_of(&f)));
        }
        let mut audit = audit_of(&f);
        audit.reason = Some(format!("filing {} {} by the regulator", f.id, f.state));
        audit.details = Some(json!({
            "event": "filing.acknowledgement", "acknowledge": req.acknowledge,
            "reason": req.reason.trim(), "state": f.state,
        }));
        Ok(reply(StatusCode::OK, &f, audit))
    }
    .await;
    respond(step)
}

/// `GET /v1/filings`: the filings of the zones the caller may see.
#[utoipa::path(
    get,
    path = "/v1/filings",
    operation_id = "list_filings",
    tag = "filings",
    summary = "List data-use filings",
    responses(
        (status = 200, description = "The filings the caller may see", body = Object),
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
        for f in catalog
            .filings()
            .map_err(|e| refuse(ApiError::internal(e)))?
        {
            match visible_zone(&catalog, &who, &f.zone) {
                Ok(_) => shown.push(f),
                Err(ApiError::NotFound) => {}
                Err(e) => return Err(refuse(e)),
            }
        }
        let audit = Audit {
            resources: shown.iter().map(|f| format!("filing:{}", f.id)).collect(),
            ..Audit::default()
        };
        Ok(reply(StatusCode::OK, json!({ "filings": shown }), audit))
    }
    .await;
    respond(step)
}

/// `GET /v1/filings/{id}`, with the ids of the grants made under it.
#[utoipa::path(
    get,
    path = "/v1/filings/{id}",
    operation_id = "show_filing",
    tag = "filings",
    summary = "One filing, its state and its grants",
    params(("id" = String, Path, description = "The resource id")),
    responses(
        (status = 200, description = "The filing and its grants", body = Object),
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
        let f = visible_filing(&catalog, &who, &id)?;
        let grants = catalog
            .grants_under_filing(&f.id)
            .map_err(|e| refuse(ApiError::internal(e)))?;
        let mut body = serde_json::to_value(&f).map_err(|e| refuse(ApiError::internal(e)))?;
        body["grants"] = json!(grants);
        Ok(reply(StatusCode::OK, body, audit_of(&f)))
    }
    .await;
    respond(step)
}

/// `GET /v1/filings/{id}/usage-report` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    format: Option<String>,
}

/// The report's period: `from`/`to` as given, else the filing's.
fn report_period(f: &Filing, q: &ReportQuery) -> Result<Period, Refused> {
    let text = |t: time::OffsetDateTime| super::grants::rfc3339(t);
    let from = q.from.clone().unwrap_or_else(|| text(f.period.from));
    let to = q.to.clone().unwrap_or_else(|| text(f.period.to));
    Period::parse(&from, &to).map_err(|e| match e {
        vault::governance::period::StepError::Invalid { field, problem } => {
            let field = field.strip_prefix("period.").unwrap_or(field);
            refuse(ApiError::bad_request(field, problem))
        }
        other => step_error(other),
    })
}

/// Reads the whole ledger, page by page, into the report.
fn read_ledger(state: &AppState, report: &mut UsageReport) -> Result<(), ApiError> {
    let size = state.ledger.size();
    let mut start = 0;
    while start < size {
        let end = size.min(start + MAX_ENTRIES_PER_PAGE);
        for leaf in state
            .ledger
            .entries(start, end)
            .map_err(ApiError::internal)?
        {
            let entry = LedgerEntry::from_leaf_bytes(&leaf).map_err(ApiError::internal)?;
            report.add(&entry);
        }
        start = end;
    }
    Ok(())
}

/// `GET /v1/filings/{id}/usage-report` (the zone's operator or regulator).
#[utoipa::path(
    get,
    path = "/v1/filings/{id}/usage-report",
    operation_id = "filing_usage_report",
    tag = "filings",
    summary = "Usage under a filing from the ledger (?from=&to=&format=json|csv|markdown)",
    params(("id" = String, Path, description = "The resource id"), ReportQuery),
    responses(
        (status = 200, description = "The usage report in the format asked for", content((Object = "application/json"), (String = "text/csv; charset=utf-8"), (String = "text/markdown; charset=utf-8"))),
        super::openapi::LookupErrors,
    )
)]
pub async fn usage_report(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ReportQuery>,
) -> Response {
    let step: Step = async move {
        let format = query.format.as_deref().unwrap_or("json").trim().to_owned();
        if !["json", "csv", "markdown"].contains(&format.as_str()) {
            return Err(refuse(ApiError::bad_request(
                "format",
                "must be json, csv or markdown",
            )));
        }
        let (f, grants) = {
            let catalog = catalog(&state).map_err(refuse)?;
            let f = visible_filing(&catalog, &who, &id)?;
            let grants = catalog
                .grants_under_filing(&f.id)
                .map_err(|e| refuse(ApiError::internal(e)))?;
            (f, grants.into_iter().collect::<BTreeSet<_>>())
        };
        let period = report_period(&f, &query)?;
        let worker = state.clone();
        let filing = f.id.clone();
        let report = tokio::task::spawn_blocking(move || {
            let mut report = UsageReport::new(&filing, period.from, period.to, grants);
            read_ledger(&worker, &mut report).map(|()| report)
        })
        .await
        .map_err(|e| refuse(ApiError::internal(e)))?
        .map_err(refuse)?;
        let mut audit = audit_of(&f);
        audit.reason = Some(format!("usage report of filing {} ({format})", f.id));
        audit.details = Some(json!({
            "event": "filing.usage-report", "from": period.from.unix_timestamp(),
            "to": period.to.unix_timestamp(), "extracts": report.total.extracts,
            "rows": report.total.rows, "aggregates": report.total.aggregates,
            "denied": report.total.denied,
        }));
        let response = match format.as_str() {
            "csv" => (
                [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
                report.to_csv(),
            )
                .into_response(),
            "markdown" => (
                [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
                report.to_markdown(),
            )
                .into_response(),
            _ => Json(&report).into_response(),
        };
        Ok(audited(response, audit))
    }
    .await;
    respond(step)
}
