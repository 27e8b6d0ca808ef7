//! Partner tiers and grants: the operator's side of analyst access.
//!
//! - `PUT /v1/partners/{org}` sets an organization's tier and whether its
//!   analysts may receive extracts; `GET /v1/partners` lists them.
//! - `POST /v1/grants` creates a grant on a dataset of a zone the operator
//!   runs, for one analyst or one partner organization; `GET /v1/grants`
//!   lists the grants the caller may see; `DELETE /v1/grants/{id}` revokes
//!   one at once.
//!
//! A grant is checked against the policy when it is made: a column graded
//! `core` (or one that may only leave as aggregates) refuses the grant with
//! a 403 that names the column. It must name a data-use filing
//! ([`super::filings`]) that the regulator acknowledged and that is in its
//! period (409 otherwise), and lie inside it: dataset, columns, recipient
//! organization and expiry (403 naming what is outside). The partner flags
//! apply: without data access no grant names the partner; without
//! ownership control only its analysts, by identity, may be named. Every
//! call is one ledger entry.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use vault::catalog::Catalog;
use vault::dataset::{Dataset, DatasetState};
use vault::desensitize::{Refusal as PolicyRefusal, RefusalReason, Tier};
use vault::grant::{Grant, Partner, Recipient};
use vault::schema::ColumnSchema;

use super::audit::{Audit, AuditReason};
use super::datasets::{dataset_id, owned_dataset, visible_dataset};
use super::extract::{ApiPath, ApiQuery};
use super::zones::{answer, catalog, Answer};
use super::AppState;
use crate::error::{json_rejection, ApiError};
use crate::identity::{is_valid_segment, Identity, Role};

/// Longest purpose or filing accepted, in bytes.
const MAX_TEXT_LEN: usize = 1024;

/// `PUT /v1/partners/{org}` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartnerRequest {
    tier: u8,
    #[serde(default)]
    data_access: bool,
    #[serde(default)]
    product_authorization: bool,
    #[serde(default)]
    scenario_authorization: bool,
    #[serde(default)]
    ownership_control: bool,
}

/// `PUT /v1/partners/{org}` (operator): sets a partner's tier and its
/// permission flags (each absent flag is off).
#[utoipa::path(
    put,
    path = "/v1/partners/{org}",
    operation_id = "put_partner",
    tag = "grants",
    summary = "Set a partner organization's tier and permission flags",
    params(("org" = String, Path, description = "The partner organization")),
    request_body = PartnerRequest,
    responses(
        (status = 200, description = "The partner organization", body = Object),
        super::openapi::BodyErrors,
    )
)]
pub async fn put_partner(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    ApiPath(org): ApiPath<String>,
    body: Result<Json<PartnerRequest>, JsonRejection>,
) -> Answer {
    let Json(req) = body.map_err(json_rejection)?;
    if !is_valid_segment(&org) {
        let problem = "must be an organization name matching [a-z0-9][a-z0-9._-]*";
        return Err(ApiError::bad_request("org", problem).into());
    }
    let tier =
        Tier::try_from(req.tier).map_err(|e| ApiError::bad_request("tier", e.to_string()))?;
    let partner = Partner {
        org: org.clone(),
        tier,
        data_access: req.data_access,
        product_authorization: req.product_authorization,
        scenario_authorization: req.scenario_authorization,
        ownership_control: req.ownership_control,
        updated_by: who.uri.clone(),
        updated_at: now(),
    };
    catalog(&state)?
        .put_partner(&partner)
        .map_err(ApiError::internal)?;
    let audit = Audit {
        resources: vec![format!("partner:{org}")],
        details: Some(
            json!({"event": "partner.set", "tier": tier, "data_access": req.data_access,
                   "product_authorization": req.product_authorization,
                   "scenario_authorization": req.scenario_authorization,
                   "ownership_control": req.ownership_control}),
        ),
        ..Audit::default()
    };
    answer(StatusCode::OK, &partner, audit)
}

/// `GET /v1/partners`.
#[utoipa::path(
    get,
    path = "/v1/partners",
    operation_id = "list_partners",
    tag = "grants",
    summary = "List partner organizations",
    responses(
        (status = 200, description = "partners: the partner organizations", body = Object),
        super::openapi::ReadErrors,
    )
)]
pub async fn list_partners(State(state): State<Arc<AppState>>) -> Answer {
    let partners = catalog(&state)?.partners().map_err(ApiError::internal)?;
    let audit = Audit {
        resources: partners
            .iter()
            .map(|p| format!("partner:{}", p.org))
            .collect(),
        ..Audit::default()
    };
    answer(StatusCode::OK, json!({ "partners": partners }), audit)
}

/// `POST /v1/grants` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    recipient: String,
    dataset: String,
    columns: Vec<String>,
    purpose: String,
    #[serde(default)]
    filing: Option<String>,
    #[serde(default)]
    filter: Option<String>,
    row_limit: u64,
    #[serde(default)]
    max_extracts: Option<u64>,
    expires: String,
}

/// `POST /v1/grants` (operator of the dataset's zone).
#[utoipa::path(
    post,
    path = "/v1/grants",
    operation_id = "create_grant",
    tag = "grants",
    summary = "Grant an analyst or partner extracts of a dataset's columns",
    request_body = GrantRequest,
    responses(
        (status = 201, description = "id and the grant", body = Object),
        super::openapi::DatasetUseErrors,
    )
)]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    body: Result<Json<GrantRequest>, JsonRejection>,
) -> Response {
    match body {
        Ok(Json(req)) => record_grant(&state, &who, req).unwrap_or_else(|refused| *refused),
        Err(e) => json_rejection(e).into_response(),
    }
}

fn record_grant(
    state: &AppState,
    who: &Identity,
    req: GrantRequest,
) -> Result<Response, Box<Response>> {
    let mut catalog = catalog(state).map_err(refuse)?;
    let grant = parse_grant(state, &catalog, who, req)?;
    catalog
        .create_grant(&grant)
        .map_err(|e| refuse(ApiError::internal(e)))?;
    let audit = Audit {
        resources: vec![
            format!("grant:{}", grant.id),
            format!("dataset:{}", grant.dataset),
        ],
        purpose: Some(grant.purpose.clone()),
        filing: grant.filing.clone(),
        details: Some(json!({
            "event": "grant.create", "recipient": grant.recipient, "columns": grant.columns,
            "row_limit": grant.row_limit, "max_extracts": grant.max_extracts,
            "expires": rfc3339(grant.expires_at), "filtered": grant.filter.is_some(),
        })),
        ..Audit::default()
    };
    let body = json!({ "id": grant.id, "grant": grant });
    answer(StatusCode::CREATED, body, audit).map_err(|r| Box::new(r.into_response()))
}

/// A refusal response, boxed (a `Response` is large).
fn refuse(e: ApiError) -> Box<Response> {
    Box::new(e.into_response())
}

/// Parses and checks a grant request against the catalog and the policy.
fn parse_grant(
    state: &AppState,
    catalog: &Catalog,
    who: &Identity,
    req: GrantRequest,
) -> Result<Grant, Box<Response>> {
    super::free_text::check("purpose", &req.purpose).map_err(refuse)?;
    let recipient = recipient(state, catalog, &req.recipient)?;
    let dataset = grant_dataset(catalog, who, &req.dataset).map_err(refuse)?;
    let columns = grant_columns(&dataset, &req.columns).map_err(refuse)?;
    let partner = catalog
        .partner(recipient.org())
        .map_err(|e| refuse(ApiError::internal(e)))?
        .ok_or_else(|| {
            refuse(ApiError::bad_request(
                "recipient",
                "organization has no partner tier",
            ))
        })?;
    let policy = super::policy::current(catalog).map_err(refuse)?;
    if let Err(refusal) = policy.plan_rows(&columns, partner.tier) {
        return Err(Box::new(column_refused(&refusal)));
    }
    let filter = match req.filter.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(check_filter(text, &dataset).map_err(refuse)?),
    };
    let expires_at = expiry(&req.expires).map_err(refuse)?;
    let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    let scope = GrantScope {
        dataset: &dataset.id,
        columns: &names,
        org: recipient.org(),
        expires_at,
    };
    let feedback = super::feedback::grant_refusal(catalog, &dataset, recipient.org(), &names);
    if let Some(problem) = feedback.map_err(refuse)? {
        return Err(Box::new(super::filings::forbidden("dataset", problem)));
    }
    let filing = under_filing(catalog, req.filing.as_deref(), &scope)?;
    Ok(Grant {
        id: new_id("g").map_err(refuse)?,
        recipient,
        dataset: dataset.id.clone(),
        columns: names,
        purpose: text("purpose", &req.purpose).map_err(refuse)?,
        filing: Some(filing),
        filter,
        row_limit: positive("row_limit", Some(req.row_limit))
            .map_err(refuse)?
            .unwrap_or(1),
        max_extracts: positive("max_extracts", req.max_extracts).map_err(refuse)?,
        extracts_used: 0,
        expires_at,
        revoked_at: None,
        created_by: who.uri.clone(),
        created_at: now(),
    })
}

/// The recipient: an analyst of this trust domain or an organization,
/// which must be a partner with data access (403 otherwise); a grant to a
/// whole organization also needs its ownership control.
fn recipient(state: &AppState, catalog: &Catalog, value: &str) -> Result<Recipient, Box<Response>> {
    let recipient = Recipient::parse(value.trim())
        .map_err(|e| refuse(ApiError::bad_request("recipient", e.to_string())))?;
    if let Recipient::Analyst { uri, .. } = &recipient {
        let prefix = format!("spiffe://{}/", state.trust_domain);
        if !uri.starts_with(&prefix) {
            let problem = format!("must be an identity of trust domain {}", state.trust_domain);
            return Err(refuse(ApiError::bad_request("recipient", problem)));
        }
    }
    let partner = catalog
        .partner(recipient.org())
        .map_err(|e| refuse(ApiError::internal(e)))?;
    let problem = match partner {
        None => {
            return Err(refuse(ApiError::bad_request(
                "recipient",
                format!(
                    "organization {:?} has no partner tier; set one with PUT /v1/partners/{{org}}",
                    recipient.org()
                ),
            )))
        }
        Some(p) if !p.data_access => {
            format!("partner {} has no data access; no grant can name it", p.org)
        }
        Some(p) if matches!(recipient, Recipient::Org(_)) && !p.ownership_control => format!(
            "partner {} has no ownership control; grant to its analysts by identity",
            p.org
        ),
        Some(_) => return Ok(recipient),
    };
    Err(Box::new(super::filings::forbidden("recipient", problem)))
}

/// What a grant would release, to be checked against its filing.
struct GrantScope<'a> {
    dataset: &'a vault::ids::DatasetId,
    columns: &'a [String],
    org: &'a str,
    expires_at: OffsetDateTime,
}

/// The filing the grant is made under: named, acknowledged and in its
/// period (409 otherwise), with the grant inside its scope (403).
fn under_filing(
    catalog: &Catalog,
    filing: Option<&str>,
    scope: &GrantScope<'_>,
) -> Result<String, Box<Response>> {
    let Some(id) = filing.map(str::trim).filter(|f| !f.is_empty()) else {
        return Err(refuse(ApiError::bad_request(
            "filing",
            "is required: a grant is made under a data-use filing the regulator acknowledged",
        )));
    };
    let filing = catalog
        .filing(id)
        .map_err(|e| refuse(ApiError::internal(e)))?
        .ok_or_else(|| refuse(ApiError::bad_request("filing", format!("no filing {id}"))))?;
    let at = OffsetDateTime::now_utc();
    if let Some(problem) = filing.standing_refusal(at) {
        return Err(Box::new(super::share_applications::conflict(problem)));
    }
    let refusal = filing.grant_refusal(
        scope.dataset,
        scope.columns,
        scope.org,
        scope.expires_at,
        at,
    );
    match refusal {
        Some(problem) => Err(Box::new(super::filings::forbidden("filing", problem))),
        None => Ok(filing.id),
    }
}

/// The dataset, which the operator must run and whose schema must be
/// confirmed.
fn grant_dataset(catalog: &Catalog, who: &Identity, value: &str) -> Result<Dataset, ApiError> {
    let id = dataset_id("dataset", value)?;
    let dataset = owned_dataset(catalog, who, &id).map_err(|e| match e {
        ApiError::NotFound => ApiError::bad_request("dataset", format!("no dataset {id}")),
        other => other,
    })?;
    super::assessments::ensure_authorized(catalog, &dataset.zone)?;
    super::exit::ensure_zone_open(catalog, &dataset.zone)?;
    if dataset.state != DatasetState::Confirmed || !dataset.schema_confirmed {
        let problem = format!(
            "dataset {id} is {}; its schema must be confirmed first",
            dataset.state
        );
        return Err(ApiError::bad_request("dataset", problem));
    }
    Ok(dataset)
}

/// The requested columns, in dataset order; each must exist, once.
fn grant_columns(dataset: &Dataset, names: &[String]) -> Result<Vec<ColumnSchema>, ApiError> {
    if names.is_empty() {
        return Err(ApiError::bad_request(
            "columns",
            "must name at least one column",
        ));
    }
    for (i, name) in names.iter().enumerate() {
        if !dataset.columns.iter().any(|c| &c.name == name) {
            let problem = format!("no column {name:?} in dataset {}", dataset.id);
            return Err(ApiError::bad_request("columns", problem));
        }
        if names[..i].contains(name) {
            return Err(ApiError::bad_request(
                "columns",
                format!("{name:?} appears twice"),
            ));
        }
    }
    Ok(dataset
        .columns
        .iter()
        .filter(|c| names.contains(&c.name))
        .cloned()
        .collect())
}

/// A 403 naming the column the policy refuses: the operator who asked
/// knows the schema, so the name is safe to show; the ledger gets it too.
pub fn column_refused(refusal: &PolicyRefusal) -> Response {
    let why = match refusal.reason {
        RefusalReason::CoreData => "core data never leaves the appliance",
        RefusalReason::AggregateOnly => "it may only be released as aggregates",
    };
    let problem = format!("column {:?} cannot be released: {why}", refusal.column);
    let body = json!({
        "error": "forbidden",
        "message": "the caller is not allowed to do this",
        "field": "columns",
        "problem": problem,
        "column": refusal.column,
    });
    let mut response = (StatusCode::FORBIDDEN, Json(body)).into_response();
    response
        .extensions_mut()
        .insert(AuditReason(format!("forbidden: {problem}")));
    response
}

/// The grant's filter, checked against every column of the dataset.
fn check_filter(text: &str, dataset: &Dataset) -> Result<String, ApiError> {
    let all: Vec<String> = dataset.columns.iter().map(|c| c.name.clone()).collect();
    let expr = vault::filter::parse(text).map_err(|e| filter_error("filter", &e))?;
    expr.to_sql(&all).map_err(|e| filter_error("filter", &e))?;
    Ok(text.to_owned())
}

/// A filter error as a 400 naming the field and the position.
pub fn filter_error(field: &str, e: &vault::filter::FilterError) -> ApiError {
    ApiError::bad_request(field, format!("at position {}: {}", e.position, e.message))
}

fn text(field: &str, value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty() || value.len() > MAX_TEXT_LEN {
        let problem = format!("must be 1 to {MAX_TEXT_LEN} bytes");
        return Err(ApiError::bad_request(field, problem));
    }
    Ok(value.to_owned())
}

fn positive(field: &str, value: Option<u64>) -> Result<Option<u64>, ApiError> {
    match value {
        Some(0) => Err(ApiError::bad_request(field, "must be at least 1")),
        Some(n) if n > i64::MAX as u64 => Err(ApiError::bad_request(field, "is too large")),
        other => Ok(other),
    }
}

fn expiry(value: &str) -> Result<OffsetDateTime, ApiError> {
    let t = OffsetDateTime::parse(value.trim(), &Rfc3339)
        .map_err(|e| ApiError::bad_request("expires", format!("not an RFC 3339 time: {e}")))?;
    if t <= OffsetDateTime::now_utc() {
        return Err(ApiError::bad_request("expires", "is in the past"));
    }
    Ok(t.to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t))
}

/// Now, in UTC, to whole seconds.
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

/// `t` in RFC 3339.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// A fresh id: `prefix-` and 24 random hex digits.
pub fn new_id(prefix: &str) -> Result<String, ApiError> {
    let mut bytes = [0u8; 12];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ApiError::internal("the random number generator failed"))?;
    Ok(format!("{prefix}-{}", hex::encode(bytes)))
}

/// `GET /v1/grants?recipient=` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    recipient: Option<String>,
}

/// `GET /v1/grants`: an operator or regulator sees the grants on datasets
/// it may see; an analyst sees the grants it may use.
#[utoipa::path(
    get,
    path = "/v1/grants",
    operation_id = "list_grants",
    tag = "grants",
    summary = "List grants (?recipient=)",
    params(ListQuery),
    responses(
        (status = 200, description = "grants: the grants the caller may see", body = Object),
        super::openapi::QueryErrors,
    )
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Answer {
    let catalog = catalog(&state)?;
    let recipient = query
        .recipient
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    let mut shown = Vec::new();
    for grant in catalog.grants(recipient).map_err(ApiError::internal)? {
        if may_see(&catalog, &who, &grant)? {
            shown.push(grant);
        }
    }
    let audit = Audit {
        resources: shown.iter().map(|g| format!("grant:{}", g.id)).collect(),
        ..Audit::default()
    };
    answer(StatusCode::OK, json!({ "grants": shown }), audit)
}

fn may_see(catalog: &Catalog, who: &Identity, grant: &Grant) -> Result<bool, ApiError> {
    match who.role {
        Role::Analyst => Ok(grant.recipient.includes(&who.uri, &who.org)),
        Role::Operator | Role::Regulator => match visible_dataset(catalog, who, &grant.dataset) {
            Ok(_) => Ok(true),
            Err(ApiError::NotFound) => Ok(false),
            Err(e) => Err(e),
        },
        Role::Provider => Ok(false),
    }
}

/// `DELETE /v1/grants/{id}` (operator of the dataset's zone): revokes the
/// grant at once; extracts already streaming finish, new ones are refused.
#[utoipa::path(
    delete,
    path = "/v1/grants/{id}",
    operation_id = "revoke_grant",
    tag = "grants",
    summary = "Revoke a grant at once",
    params(("id" = String, Path, description = "The resource id")),
    responses(
        (status = 200, description = "The grant, revoked", body = Object),
        super::openapi::LookupErrors,
    )
)]
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    ApiPath(id): ApiPath<String>,
) -> Answer {
    let mut catalog = catalog(&state)?;
    let grant = catalog
        .grant(&id)
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    owned_dataset(&catalog, &who, &grant.dataset)?;
    let at = now();
    let revoked = catalog.revoke_grant(&id, at).map_err(ApiError::internal)?;
    let audit = Audit {
        resources: vec![format!("grant:{id}"), format!("dataset:{}", grant.dataset)],
        reason: Some(
            if revoked {
                "grant revoked"
            } else {
                "grant was already revoked"
            }
            .to_owned(),
        ),
        details: Some(json!({"event": "grant.revoke", "recipient": grant.recipient})),
        ..Audit::default()
    };
    let revoked_at = grant.revoked_at.unwrap_or(at);
    answer(
        StatusCode::OK,
        json!({"id": id, "revoked_at": rfc3339(revoked_at)}),
        audit,
    )
}

/// The partner, grant and extract routes (each has a row in
/// [`crate::authz::RULES`]).
pub fn routes() -> axum::Router<Arc<AppState>> {
    use super::extracts;
    use axum::routing::{delete, get, post, put};
    axum::Router::new()
        .route("/v1/partners", get(list_partners))
        .route("/v1/partners/{org}", put(put_partner))
        .route("/v1/grants", post(create).get(list))
        .route("/v1/grants/{id}", delete(revoke))
        .route("/v1/extracts", post(extracts::create))
        .route("/v1/extracts/{id}/manifest", get(extracts::manifest))
}
