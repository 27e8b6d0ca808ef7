//! Operator performance assessment over the API (clause 9; the records
//! are [`vault::governance::assessment`]).
//!
//! `POST /v1/assessments` is for a regulator of the Bureau (the configured
//! `bureau` organization); any other regulator is refused (403). The
//! appliance computes the indicators for the operator and the period from
//! the catalog (share applications, filings, quality tickets, feedback)
//! and the ledger (filings and applications filed, usage reports, alert
//! events, refused requests), and stores them with the rating.
//!
//! The second poor rating in a row terminates the operator's authorization
//! ([`terminate`]): the termination is recorded with the assessment, every
//! zone of the operator enters the exit procedure through
//! [`super::exit::enter_exit`] (which revokes every grant on its datasets
//! and files the zone-wide destruction), and from then on
//! [`ensure_authorized`] refuses new grants, extracts and aggregates in its
//! zones with 403 `authorization_terminated`.
//!
//! `GET /v1/assessments`: the Bureau's regulators see every assessment,
//! another regulator those of the operators of the zones it supervises, an
//! operator its own.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use vault::catalog::Catalog;
use vault::governance::assessment::{
    Assessment, FeedbackIndicators, Indicators, LedgerIndicators, NewAssessment, Termination,
    TicketIndicators,
};
use vault::governance::filing::FilingState;
use vault::governance::period::Period;
use vault::ids::ZoneId;
use vault::ledger::{Decision, EntryKind, LedgerEntry};
use vault::lifecycle::exit::ExitCause;

use super::audit::Audit;
use super::workflow_steps::{fresh_id, step_error};
use super::zones::{answer, catalog, zone_operator, Answer};
use super::AppState;
use crate::error::{json_rejection, ApiError};
use crate::identity::{Identity, Role};

/// Ledger entries read per batch when computing indicators.
const LEDGER_BATCH: u64 = 1024;

/// The assessment routes (each has a row in [`crate::authz::RULES`]).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1/assessments", post(record).get(list))
}

/// Refuses use of `zone` when its operator's authorization was terminated
/// (403 `authorization_terminated`, naming the assessment in the ledger).
/// Call before every grant, extract and aggregate.
pub fn ensure_authorized(catalog: &Catalog, zone: &ZoneId) -> Result<(), ApiError> {
    let Some(operator) = zone_operator(catalog, zone)? else {
        return Ok(());
    };
    match catalog.termination(&operator).map_err(ApiError::internal)? {
        None => Ok(()),
        Some(t) => Err(ApiError::AuthorizationTerminated {
            operator: t.operator,
            assessment: t.assessment,
        }),
    }
}

/// Refuses the use of `grant` by `who`, one of its recipients, when the
/// operator of its dataset's zone was terminated. Call first, so the
/// refusal names the termination rather than the grant's revocation.
pub fn authorization_in_force(
    catalog: &Catalog,
    grant: &vault::grant::Grant,
    who: &Identity,
) -> Result<(), ApiError> {
    if !grant.recipient.includes(&who.uri, &who.org) {
        return Ok(());
    }
    match catalog
        .dataset(&grant.dataset)
        .map_err(ApiError::internal)?
    {
        Some(dataset) => ensure_authorized(catalog, &dataset.zone),
        None => Ok(()),
    }
}

/// `POST /v1/assessments` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordRequest {
    operator: String,
    period: PeriodRequest,
    rating: String,
    notes: String,
}

/// A period as sent.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PeriodRequest {
    from: String,
    to: String,
}

/// The zones `operator` runs.
fn zones_of(catalog: &Catalog, operator: &str) -> Result<Vec<ZoneId>, ApiError> {
    let mut out = Vec::new();
    for z in catalog.zones().map_err(ApiError::internal)? {
        if zone_operator(catalog, &z.id)?.as_deref() == Some(operator) {
            out.push(z.id);
        }
    }
    Ok(out)
}

/// `POST /v1/assessments` (a regulator of the Bureau).
#[utoipa::path(
    post,
    path = "/v1/assessments",
    operation_id = "record_assessment",
    tag = "assessments",
    summary = "Record an operator assessment with computed indicators (Bureau regulator)",
    request_body = RecordRequest,
    responses(
        (status = 201, description = "The assessment and its indicators", body = Object),
        super::openapi::CreateErrors,
    )
)]
pub async fn record(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    body: Result<Json<RecordRequest>, JsonRejection>,
) -> Answer {
    let Json(req) = body.map_err(json_rejection)?;
    let worker = state.clone();
    let (a, termination) =
        tokio::task::spawn_blocking(move || record_blocking(&worker, &who, &req))
            .await
            .map_err(|e| ApiError::internal(format!("assessment task failed: {e}")))??;
    let audit = Audit {
        resources: vec![
            format!("assessment:{}", a.id),
            format!("operator:{}", a.operator),
        ],
        reason: Some(match &termination {
            Some(t) => t.to_string(),
            None => format!("assessment recorded: {}", a.rating),
        }),
        details: Some(json!({
            "event": "assessment.record", "rating": a.rating, "terminates": a.terminates,
            "revoked_grants": termination.as_ref().map(|t| &t.revoked_grants),
        })),
        ..Audit::default()
    };
    let body = json!({ "assessment": a, "termination": termination });
    answer(StatusCode::CREATED, body, audit)
}

/// Only a regulator of the configured Bureau assesses operators.
fn ensure_bureau(state: &AppState, who: &Identity) -> Result<(), ApiError> {
    if who.role == Role::Regulator && who.org == state.zones.bureau {
        return Ok(());
    }
    let reason = format!(
        "{} is not a regulator of the Bureau ({})",
        who.uri, state.zones.bureau
    );
    Err(ApiError::Forbidden { reason })
}

fn record_blocking(
    state: &AppState,
    who: &Identity,
    req: &RecordRequest,
) -> Result<(Assessment, Option<Termination>), ApiError> {
    ensure_bureau(state, who)?;
    let period = Period::parse(&req.period.from, &req.period.to)
        .map_err(|e| ApiError::bad_request("period", e.to_string()))?;
    let mut catalog = catalog(state)?;
    let zones = zones_of(&catalog, &req.operator)?;
    if zones.is_empty() {
        let problem = format!("{:?} operates no zone on this appliance", req.operator);
        return Err(ApiError::bad_request("operator", problem));
    }
    if let Some(t) = catalog
        .termination(&req.operator)
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::Conflict {
            reason: format!("{t}; it is assessed no more"),
        });
    }
    let indicators = indicators(state, &catalog, &req.operator, &zones, &period)?;
    let previous = catalog
        .assessments(Some(&req.operator))
        .map_err(ApiError::internal)?;
    let new = NewAssessment {
        operator: &req.operator,
        period,
        rating: &req.rating,
        notes: &req.notes,
    };
    let a = Assessment::record(fresh_id("as")?, new, indicators, &previous, &who.uri)
        .map_err(step_error)?;
    if !a.terminates {
        catalog
            .insert_assessment(&a, None)
            .map_err(ApiError::internal)?;
        return Ok((a, None));
    }
    let t = terminate(state, &mut catalog, &a, &zones)?;
    Ok((a, Some(t)))
}

/// Carries out the termination `a` decided: records it, sends each zone
/// into its exit procedure (revoking its grants) and records a ledger
/// event. The one place governance starts exits.
fn terminate(
    state: &AppState,
    catalog: &mut Catalog,
    a: &Assessment,
    zones: &[ZoneId],
) -> Result<Termination, ApiError> {
    let mut t = Termination {
        operator: a.operator.clone(),
        assessment: a.id.clone(),
        at: a.recorded_at,
        revoked_grants: Vec::new(),
        zones: zones.to_vec(),
    };
    catalog
        .insert_assessment(a, Some(&t))
        .map_err(ApiError::internal)?;
    let reason = "operating authorization terminated after two consecutive poor assessments";
    for zone in zones {
        match super::exit::enter_exit(
            state,
            catalog,
            zone,
            ExitCause::AuthorizationTerminated,
            reason,
            "system:governance",
        ) {
            Ok(outcome) => t.revoked_grants.extend(outcome.exit.revoked_grants),
            Err(ApiError::Conflict { reason }) => {
                tracing::info!(zone = %zone, %reason, "zone already in its exit procedure");
            }
            Err(e) => return Err(e),
        }
    }
    catalog.update_termination(&t).map_err(ApiError::internal)?;
    record_termination_event(state, &t)?;
    Ok(t)
}

fn record_termination_event(state: &AppState, t: &Termination) -> Result<u64, ApiError> {
    let mut entry = LedgerEntry::new(
        EntryKind::Event,
        "system",
        "EVENT",
        "operator.authorization-terminated",
        Decision::Allow,
    );
    entry.resources = vec![
        format!("operator:{}", t.operator),
        format!("assessment:{}", t.assessment),
    ];
    entry
        .resources
        .extend(t.zones.iter().map(|z| format!("zone:{z}")));
    entry.reason = t.to_string();
    entry.details = Some(json!({"revoked_grants": t.revoked_grants}));
    state
        .ledger
        .append(&entry)
        .map_err(ApiError::ledger_unavailable)
}

/// Every indicator of `operator` over `period`.
fn indicators(
    state: &AppState,
    catalog: &Catalog,
    operator: &str,
    zones: &[ZoneId],
    period: &Period,
) -> Result<Indicators, ApiError> {
    let now = OffsetDateTime::now_utc();
    let mut share_applications = BTreeMap::new();
    for s in catalog.share_applications().map_err(ApiError::internal)? {
        if zones.contains(&s.zone) && period.contains(s.filed_at) {
            *share_applications
                .entry(s.state.as_str().to_owned())
                .or_insert(0) += 1;
        }
    }
    let filings_current = catalog
        .filings()
        .map_err(ApiError::internal)?
        .iter()
        .filter(|f| {
            zones.contains(&f.zone)
                && f.state == FilingState::Acknowledged
                && f.period.contains(now)
        })
        .count() as u64;
    let ledger = ledger_counts(state, period, operator)?;
    let notes = vec![
        "alerts: security.alert events of the whole appliance in the period".to_owned(),
        "usage reports: produced in the period for any filing".to_owned(),
    ];
    Ok(Indicators {
        ledger,
        quality_tickets: tickets(catalog, zones, period, now)?,
        feedback: feedback(catalog, zones, period)?,
        share_applications,
        filings_current,
        notes,
    })
}

fn tickets(
    catalog: &Catalog,
    zones: &[ZoneId],
    period: &Period,
    now: OffsetDateTime,
) -> Result<TicketIndicators, ApiError> {
    let mut out = TicketIndicators::default();
    let mut total_days = 0.0;
    for t in catalog.quality_tickets().map_err(ApiError::internal)? {
        if !(zones.contains(&t.zone) && period.contains(t.opened_at)) {
            continue;
        }
        out.opened += 1;
        out.overdue += u64::from(t.is_overdue(now));
        if t.first_response_at().is_some() {
            out.answered += 1;
            out.answered_within_sla += u64::from(t.answered_within_sla());
            total_days += t.response_working_days(now);
        }
    }
    if out.answered > 0 {
        out.mean_response_working_days = Some(total_days / out.answered as f64);
    }
    Ok(out)
}

fn feedback(
    catalog: &Catalog,
    zones: &[ZoneId],
    period: &Period,
) -> Result<FeedbackIndicators, ApiError> {
    let mut out = FeedbackIndicators::default();
    for f in catalog.feedback_records().map_err(ApiError::internal)? {
        if !(zones.contains(&f.zone) && period.contains(f.submitted_at)) {
            continue;
        }
        *out.by_state.entry(f.state.as_str().to_owned()).or_insert(0) += 1;
        for a in catalog
            .feedback_applications(&f.id)
            .map_err(ApiError::internal)?
        {
            *out.applications
                .entry(a.state.as_str().to_owned())
                .or_insert(0) += 1;
        }
    }
    Ok(out)
}

/// The ledger indicators, reading the ledger in batches.
fn ledger_counts(
    state: &AppState,
    period: &Period,
    operator: &str,
) -> Result<LedgerIndicators, ApiError> {
    let size = state.ledger.size();
    let mut out = LedgerIndicators::default();
    let mut start = 0;
    while start < size {
        let end = (start + LEDGER_BATCH).min(size);
        for bytes in state
            .ledger
            .entries(start, end)
            .map_err(ApiError::ledger_unavailable)?
        {
            let entry = LedgerEntry::from_leaf_bytes(&bytes).map_err(ApiError::internal)?;
            out.add(&entry, period, operator);
        }
        start = end;
    }
    Ok(out)
}

/// `GET /v1/assessments`.
#[utoipa::path(
    get,
    path = "/v1/assessments",
    operation_id = "list_assessments",
    tag = "assessments",
    summary = "List operator assessments",
    responses(
        (status = 200, description = "The assessments the caller may see", body = Object),
        super::openapi::ReadErrors,
    )
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
) -> Answer {
    let catalog = catalog(&state)?;
    let mut items = Vec::new();
    for a in catalog.assessments(None).map_err(ApiError::internal)? {
        if may_see(&state, &catalog, &who, &a.operator)? {
            items.push(a);
        }
    }
    let audit = Audit {
        resources: items
            .iter()
            .map(|a| format!("assessment:{}", a.id))
            .collect(),
        ..Audit::default()
    };
    answer(StatusCode::OK, json!({ "assessments": items }), audit)
}

fn may_see(
    state: &AppState,
    catalog: &Catalog,
    who: &Identity,
    operator: &str,
) -> Result<bool, ApiError> {
    Ok(match who.role {
        Role::Operator => who.org == operator,
        Role::Regulator if who.org == state.zones.bureau => true,
        Role::Regulator => {
            let zones = zones_of(catalog, operator)?;
            catalog
                .zones()
                .map_err(ApiError::internal)?
                .iter()
                .any(|z| zones.contains(&z.id) && z.supervisor == who.org)
        }
        Role::Provider | Role::Analyst => false,
    })
}
