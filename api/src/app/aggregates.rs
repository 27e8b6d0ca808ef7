//! Aggregates: an analyst counts, sums and averages through a grant.
//!
//! `POST /v1/aggregates` takes `{"grant", "group_by": [..], "metrics":
//! [{"fn": "count"|"sum"|"avg", "column"?}], "filter"?, "noise"?:
//! {"mechanism": "laplace"|"discrete-laplace", "epsilon"}}`. The grant is
//! checked with the same [`Grant::refusal`] extracts use (exists, is the
//! caller's or its organization's, not revoked, not expired; the extract
//! count does not apply to aggregates), the caller's organization must be
//! a partner with data access, every referenced column must lie within the
//! grant, and the dataset must be confirmed and not due for destruction.
//! Refusals are 403s whose reason reaches the ledger only; a `core` column
//! is a 403 naming it.
//!
//! [`vault::aggregate`] does the work: group keys are desensitized for the
//! partner's tier before grouping, cells of fewer than k rows are
//! suppressed, and noise (if asked) is charged against the grant's ε
//! budget *before* the scan, under the catalog lock, so concurrent requests
//! cannot overspend and a failed scan stays charged. An exhausted budget
//! is a 403 that says so.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use vault::aggregate::{
    self, AggregateError, AggregatePlan, AggregateRequest, Mechanism, Metric, MetricFn, Noise,
    WhereClause,
};
use vault::catalog::Catalog;
use vault::dataset::Dataset;
use vault::dataset_file::DatasetFile;
use vault::desensitize::{Policy, Refusal as PolicyRefusal, Technique, Tier};
use vault::governance::filing::Use;
use vault::grant::{Grant, GrantRefusal};

use super::audit::{Audit, AuditReason};
use super::grant_access::{
    filing_allows, open_dataset, partner_tier, product_authorized, usable_dataset, GrantDenied,
};
use super::grants::{column_refused, filter_error};
use super::zones::catalog;
use super::AppState;
use crate::error::{json_rejection, ApiError};
use crate::identity::Identity;

/// `POST /v1/aggregates` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AggregateBody {
    grant: String,
    #[serde(default)]
    group_by: Vec<String>,
    metrics: Vec<MetricBody>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    noise: Option<NoiseBody>,
}

/// One metric of the body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricBody {
    #[serde(rename = "fn")]
    function: MetricFn,
    #[serde(default)]
    column: Option<String>,
}

/// The noise of the body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoiseBody {
    mechanism: Mechanism,
    epsilon: f64,
}

/// `POST /v1/aggregates` (analyst).
#[utoipa::path(
    post,
    path = "/v1/aggregates",
    operation_id = "create_aggregate",
    tag = "extracts",
    summary = "Small-cell-suppressed counts, sums and averages under a grant, optional DP noise",
    request_body = AggregateBody,
    responses(
        (status = 200, description = "The cells, suppressed where small", body = Object),
        super::openapi::DatasetUseErrors,
    )
)]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    body: Result<Json<AggregateBody>, JsonRejection>,
) -> Result<Response, Response> {
    let Json(body) = body.map_err(|e| json_rejection(e).into_response())?;
    let job = prepare(&state, &who, body).map_err(IntoResponse::into_response)?;
    let Job {
        grant,
        dataset,
        tier,
        plan,
        filter,
        file,
        k,
        spent,
        policy_version,
    } = job;
    let scan = tokio::task::spawn_blocking(move || {
        aggregate::run(file.connection(), &plan, filter.as_ref(), k).map(|r| (r, plan))
    });
    let (result, plan) = scan
        .await
        .map_err(|e| ApiError::internal(e).into_response())?
        .map_err(|e| ApiError::internal(e).into_response())?;
    let audit = Audit {
        resources: vec![
            format!("grant:{}", grant.id),
            format!("dataset:{}", dataset.id),
        ],
        purpose: Some(grant.purpose.clone()),
        filing: grant.filing.clone(),
        details: Some(json!({
            "event": "aggregate", "tier": tier, "group_by": result.group_by,
            "metrics": result.metrics, "cells": result.cells.len(),
            "suppressed_cells": result.suppressed_cells, "k": k,
            "epsilon": plan.epsilon(), "epsilon_spent": spent,
        })),
        ..Audit::default()
    };
    let body = json!({
        "grant": grant.id, "dataset": dataset.id, "policy_version": policy_version,
        "group_keys": plan.group_plan(), "epsilon_spent": spent, "epsilon_budget": aggregate::DEFAULT_EPSILON_BUDGET,
        "result": result,
    });
    let mut response = (StatusCode::OK, Json(body)).into_response();
    response.extensions_mut().insert(audit);
    Ok(response)
}

/// Everything the scan needs, checked, charged and opened.
struct Job {
    grant: Grant,
    dataset: Dataset,
    tier: Tier,
    plan: AggregatePlan,
    filter: Option<WhereClause>,
    file: DatasetFile,
    k: usize,
    spent: f64,
    policy_version: String,
}

/// Why a request is refused; becomes its response once, at the edge.
enum Refused {
    /// Any [`ApiError`], as its fixed response.
    Api(ApiError),
    /// A 403 whose reason goes to the ledger entry, never the body.
    Grant { grant: String, reason: String },
    /// A 403 naming the column the policy refuses.
    Column(PolicyRefusal),
    /// A 403 saying the ε budget cannot cover the request.
    Budget(String),
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::Api(e) => e.into_response(),
            Refused::Column(r) => column_refused(&r),
            Refused::Grant { grant, reason } => {
                let mut response = ApiError::Forbidden {
                    reason: reason.clone(),
                }
                .into_response();
                response.extensions_mut().insert(Audit {
                    resources: vec![format!("grant:{grant}")],
                    reason: Some(reason),
                    ..Audit::default()
                });
                response
            }
            Refused::Budget(problem) => {
                let body = json!({
                    "error": "forbidden",
                    "message": "the caller is not allowed to do this",
                    "field": "noise.epsilon",
                    "problem": problem,
                    "reason": "epsilon_budget_exhausted",
                });
                let mut response = (StatusCode::FORBIDDEN, Json(body)).into_response();
                let reason = format!("forbidden: {problem}");
                response.extensions_mut().insert(AuditReason(reason));
                response
            }
        }
    }
}

fn fail(e: ApiError) -> Refused {
    Refused::Api(e)
}

fn denied(grant: &str, d: GrantDenied) -> Refused {
    match d {
        GrantDenied::Reason(reason) => deny(grant, reason),
        GrantDenied::Api(e) => fail(e),
    }
}

fn deny(grant: &str, reason: impl Into<String>) -> Refused {
    Refused::Grant {
        grant: grant.to_owned(),
        reason: reason.into(),
    }
}

/// The checks of the module documentation, the plan, the filter, the ε
/// charge and the opened dataset file, all under one catalog lock.
fn prepare(state: &AppState, who: &Identity, body: AggregateBody) -> Result<Job, Refused> {
    let mut catalog = catalog(state).map_err(fail)?;
    let grant = catalog
        .grant(body.grant.trim())
        .map_err(|e| fail(ApiError::internal(e)))?
        .ok_or_else(|| deny(&body.grant, "no such grant"))?;
    super::assessments::authorization_in_force(&catalog, &grant, who).map_err(fail)?;
    let now = time::OffsetDateTime::now_utc();
    match grant.refusal(&who.uri, &who.org, now) {
        None | Some(GrantRefusal::Exhausted) => {}
        Some(refusal) => return Err(deny(&grant.id, refusal.to_string())),
    }
    let tier = partner_tier(&catalog, who).map_err(|d| denied(&grant.id, d))?;
    product_authorized(&catalog, who).map_err(|d| denied(&grant.id, d))?;
    filing_allows(&catalog, &grant, Use::Aggregate).map_err(|d| denied(&grant.id, d))?;
    let dataset = usable_dataset(&mut catalog, &grant).map_err(|d| denied(&grant.id, d))?;
    let policy = super::policy::current(&catalog).map_err(fail)?;
    let own = match body
        .filter
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        Some(text) => {
            Some(vault::filter::parse(text).map_err(|e| fail(filter_error("filter", &e)))?)
        }
        None => None,
    };
    let request = AggregateRequest {
        group_by: body.group_by,
        metrics: body
            .metrics
            .into_iter()
            .map(|m| Metric {
                function: m.function,
                column: m.column,
            })
            .collect(),
        filter_columns: own
            .as_ref()
            .map(|e| e.columns().into_iter().collect())
            .unwrap_or_default(),
        noise: body.noise.map(|n| Noise {
            mechanism: n.mechanism,
            epsilon: n.epsilon,
        }),
    };
    let key = state.keys.grant_key(&grant.id);
    let plan = AggregatePlan::new(
        &dataset.columns,
        &grant.columns,
        &request,
        tier,
        &policy,
        &key,
    )
    .map_err(|e| plan_refused(&grant.id, e))?;
    check_filter_columns(&request.filter_columns, &dataset, tier, &policy)?;
    let filter = combined_filter(&grant, &dataset, own)?;
    let file = open_dataset(state, &catalog, &dataset).map_err(fail)?;
    let spent = charge(&mut catalog, &grant.id, plan.epsilon())?;
    Ok(Job {
        k: policy.k(),
        policy_version: policy.version().to_owned(),
        grant,
        dataset,
        tier,
        plan,
        filter,
        file,
        spent,
    })
}

/// A plan error as its response: refusals 403, malformed requests 400.
fn plan_refused(grant: &str, e: AggregateError) -> Refused {
    match e {
        AggregateError::Refused(refusal) => Refused::Column(refusal),
        AggregateError::NotGranted { column } => {
            deny(grant, format!("column {column:?} is outside the grant"))
        }
        AggregateError::UnknownColumn { column } => {
            deny(grant, format!("column {column:?} is not in the dataset"))
        }
        AggregateError::Suppressed { column } => deny(
            grant,
            format!("column {column:?} is suppressed by the policy"),
        ),
        AggregateError::Invalid { field, problem } => fail(ApiError::bad_request(field, problem)),
        other => fail(ApiError::internal(other)),
    }
}

/// The analyst may filter only on columns released as stored (`keep`),
/// as in extracts: a filter on a masked column would probe raw values.
fn check_filter_columns(
    names: &[String],
    dataset: &Dataset,
    tier: Tier,
    policy: &Policy,
) -> Result<(), Refused> {
    let schemas: Vec<_> = dataset
        .columns
        .iter()
        .filter(|c| names.contains(&c.name))
        .cloned()
        .collect();
    let plan = policy
        .plan_aggregate(&schemas, tier)
        .map_err(Refused::Column)?;
    if let Some(p) = plan.iter().find(|p| p.technique != Technique::Keep) {
        let problem = format!(
            "column {:?} is not released as stored; filters may use only kept columns",
            p.name
        );
        return Err(fail(ApiError::bad_request("filter", problem)));
    }
    Ok(())
}

/// The grant's filter AND the analyst's, as one parameterized body.
fn combined_filter(
    grant: &Grant,
    dataset: &Dataset,
    own: Option<vault::filter::Expr>,
) -> Result<Option<WhereClause>, Refused> {
    let granted = match grant.filter.as_deref() {
        Some(text) => {
            Some(vault::filter::parse(text).map_err(|e| fail(filter_error("grant.filter", &e)))?)
        }
        None => None,
    };
    let expr = match (granted, own) {
        (Some(g), Some(o)) => g.and(o),
        (Some(e), None) | (None, Some(e)) => e,
        (None, None) => return Ok(None),
    };
    let all: Vec<String> = dataset.columns.iter().map(|c| c.name.clone()).collect();
    expr.to_sql(&all)
        .map(Some)
        .map_err(|e| fail(filter_error("filter", &e)))
}

/// Charges the request's ε (if any) to the grant; an exhausted budget is
/// a 403 that tells the analyst so.
fn charge(catalog: &mut Catalog, grant: &str, epsilon: f64) -> Result<f64, Refused> {
    let budget = aggregate::DEFAULT_EPSILON_BUDGET;
    if epsilon == 0.0 {
        return aggregate::epsilon_spent(catalog, grant).map_err(|e| fail(ApiError::internal(e)));
    }
    match aggregate::spend_epsilon(catalog, grant, epsilon, budget) {
        Ok(total) => Ok(total),
        Err(e @ AggregateError::BudgetExhausted { .. }) => Err(Refused::Budget(e.to_string())),
        Err(e) => Err(fail(ApiError::internal(e))),
    }
}
