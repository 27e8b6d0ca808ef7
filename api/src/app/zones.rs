//! Zones: create, list, read, and hand supervision over.
//!
//! A zone belongs to the operator organization that created it and is
//! supervised by one regulator organization (the configured bureau when
//! the creator names none). Reads are scoped: an operator sees the zones of
//! its own organization, a regulator the zones it supervises; any other
//! zone answers 404, as if it did not exist, and the ledger records why.
//! Only the current supervisor may hand a zone over, and the handover's
//! from/to are in the request's ledger entry.

use std::sync::{Arc, MutexGuard};

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use vault::catalog::Catalog;
use vault::datadir::DataDir;
use vault::ids::ZoneId;
use vault::zone::{Zone, ZoneKind};

use super::audit::{Audit, AuditReason};
use super::import_stream::ImportsInFlight;
use super::AppState;
use crate::error::{json_rejection, ApiError};
use crate::identity::{is_valid_segment, Identity, Role};

/// Longest zone name accepted, in bytes.
const MAX_NAME_LEN: usize = 256;

/// What the zone and dataset handlers need besides the catalog and keys.
pub struct ZoneSettings {
    /// The data directory (dataset files live in `datasets/`).
    pub datadir: DataDir,
    /// The regulator organization supervising zones with no clear owner.
    pub bureau: String,
    /// Largest import body accepted, in bytes.
    pub max_import_bytes: u64,
    /// Imports currently running.
    pub imports: ImportsInFlight,
}

/// The zone and dataset routes (each has a row in [`crate::authz::RULES`]).
/// Only the import route lifts axum's body limit; it enforces its own.
pub fn routes() -> Router<Arc<AppState>> {
    use super::{datasets, import_stream};
    Router::new()
        .route("/v1/zones", post(create).get(list))
        .route("/v1/zones/{id}", get(show))
        .route("/v1/zones/{id}/supervision", post(hand_over))
        .route(
            "/v1/zones/{zone}/datasets",
            post(datasets::create).get(datasets::list),
        )
        .route("/v1/datasets/{id}", get(datasets::show))
        .route(
            "/v1/datasets/{id}/rows",
            put(import_stream::import).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/datasets/{id}/schema", patch(datasets::confirm_schema))
}

/// An [`ApiError`] whose internal detail also reaches the ledger entry
/// (as [`AuditReason`]); the response body stays the fixed public one.
pub struct Refusal(pub ApiError);

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Refusal(e)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let detail = self.0.detail();
        let mut response = self.0.into_response();
        response.extensions_mut().insert(AuditReason(detail));
        response
    }
}

/// A handler's result.
pub type Answer = Result<Response, Refusal>;

/// `body` as JSON, with the audit record attached.
pub fn answer(status: StatusCode, body: impl Serialize, audit: Audit) -> Answer {
    let mut response = (status, Json(body)).into_response();
    response.extensions_mut().insert(audit);
    Ok(response)
}

/// Locks the catalog; a poisoned lock is a 500.
pub fn catalog(state: &AppState) -> Result<MutexGuard<'_, Catalog>, ApiError> {
    state
        .catalog
        .lock()
        .map_err(|_| ApiError::internal("catalog lock poisoned"))
}

/// A path or body value parsed as a zone id, or a 400 naming `field`.
pub fn zone_id(field: &str, value: &str) -> Result<ZoneId, ApiError> {
    value
        .parse()
        .map_err(|e| ApiError::bad_request(field, format!("{e}")))
}

/// The meta key under which the catalog records a zone's operator org.
fn operator_meta_key(zone: &ZoneId) -> String {
    format!("zone-operator:{zone}")
}

/// The operator organization that owns `zone`; `None` when none is
/// recorded, which nobody owns (fail closed).
pub fn zone_operator(catalog: &Catalog, zone: &ZoneId) -> Result<Option<String>, ApiError> {
    catalog
        .meta(&operator_meta_key(zone))
        .map_err(ApiError::internal)
}

/// A zone, if `who` may see it: its operator organization or its
/// supervising regulator. Anyone else gets 404 with the reason recorded.
pub fn visible_zone(catalog: &Catalog, who: &Identity, id: &ZoneId) -> Result<Zone, ApiError> {
    let zone = catalog
        .zone(id)
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    if may_see(catalog, who, &zone)? {
        Ok(zone)
    } else {
        tracing::info!(zone = %id, caller = %who.uri, "zone hidden from caller");
        Err(ApiError::NotFound)
    }
}

fn may_see(catalog: &Catalog, who: &Identity, zone: &Zone) -> Result<bool, ApiError> {
    Ok(match who.role {
        Role::Regulator => zone.supervisor == who.org,
        Role::Operator => zone_operator(catalog, &zone.id)?.as_deref() == Some(who.org.as_str()),
        Role::Provider | Role::Analyst => false,
    })
}

/// The zone, if `who` is an operator of the organization that owns it:
/// 404 when it does not exist, 403 when another operator owns it.
pub fn owned_zone(catalog: &Catalog, who: &Identity, id: &ZoneId) -> Result<Zone, ApiError> {
    let zone = catalog
        .zone(id)
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    let owner = zone_operator(catalog, id)?;
    if who.role == Role::Operator && owner.as_deref() == Some(who.org.as_str()) {
        Ok(zone)
    } else {
        Err(ApiError::Forbidden {
            reason: format!(
                "zone {id} is operated by {}, not by {}",
                owner.as_deref().unwrap_or("<nobody>"),
                who.org
            ),
        })
    }
}

/// `POST /v1/zones` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewZoneRequest {
    id: String,
    name: String,
    kind: String,
    domain: String,
    #[serde(default)]
    supervisor: Option<String>,
}

/// A zone as the API shows it.
#[derive(Debug, Serialize)]
pub struct ZoneView {
    id: String,
    name: String,
    kind: String,
    domain: String,
    supervisor: String,
    operator: Option<String>,
    created_at: String,
}

impl ZoneView {
    fn of(zone: &Zone, operator: Option<String>) -> ZoneView {
        ZoneView {
            id: zone.id.to_string(),
            name: zone.name.clone(),
            kind: zone.kind.to_string(),
            domain: zone.domain.clone(),
            supervisor: zone.supervisor.clone(),
            operator,
            created_at: zone
                .created_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| zone.created_at.unix_timestamp().to_string()),
        }
    }
}

/// Parses the request into a zone; an empty supervisor means the bureau.
fn parse_zone(req: NewZoneRequest, bureau: &str) -> Result<Zone, ApiError> {
    let id = zone_id("id", &req.id)?;
    let name = req.name.trim();
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        let problem = format!("must be 1 to {MAX_NAME_LEN} bytes");
        return Err(ApiError::bad_request("name", problem));
    }
    let kind: ZoneKind = req
        .kind
        .parse()
        .map_err(|e| ApiError::bad_request("kind", format!("{e}")))?;
    let domain = req.domain.trim();
    if domain.is_empty() || domain.len() > MAX_NAME_LEN {
        let problem = format!("must be 1 to {MAX_NAME_LEN} bytes");
        return Err(ApiError::bad_request("domain", problem));
    }
    let supervisor = match req.supervisor.as_deref().map(str::trim) {
        None | Some("") => bureau.to_owned(),
        Some(org) => regulator_org("supervisor", org)?,
    };
    Ok(Zone::new(
        id,
        name.to_owned(),
        kind,
        domain.to_owned(),
        supervisor,
    ))
}

fn regulator_org(field: &str, org: &str) -> Result<String, ApiError> {
    if is_valid_segment(org) {
        Ok(org.to_owned())
    } else {
        let problem = "must be an organization name matching [a-z0-9][a-z0-9._-]*";
        Err(ApiError::bad_request(field, problem))
    }
}

/// `POST /v1/zones` (operator): creates a zone with a fresh zone key.
#[utoipa::path(
    post,
    path = "/v1/zones",
    operation_id = "create_zone",
    tag = "zones",
    summary = "Create a zone",
    request_body = NewZoneRequest,
    responses(
        (status = 201, description = "The zone created", body = Object),
        super::openapi::CreateErrors,
    )
)]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    body: Result<Json<NewZoneRequest>, JsonRejection>,
) -> Answer {
    let Json(req) = body.map_err(json_rejection)?;
    let zone = parse_zone(req, &state.zones.bureau)?;
    let (_key, wrapped) = state
        .keys
        .new_zone_key(&zone.id)
        .map_err(ApiError::internal)?;
    let mut catalog = catalog(&state)?;
    catalog.create_zone(&zone, &wrapped).map_err(|e| match e {
        vault::catalog::CatalogError::ZoneExists { .. } => ApiError::Conflict {
            reason: e.to_string(),
        },
        other => ApiError::internal(other),
    })?;
    catalog
        .put_meta(&operator_meta_key(&zone.id), &who.org)
        .map_err(ApiError::internal)?;
    let audit = Audit {
        resources: vec![format!("zone:{}", zone.id)],
        details: Some(json!({"supervisor": zone.supervisor, "kind": zone.kind.to_string()})),
        ..Audit::default()
    };
    answer(
        StatusCode::CREATED,
        ZoneView::of(&zone, Some(who.org.clone())),
        audit,
    )
}

/// `GET /v1/zones`: the zones the caller may see.
#[utoipa::path(
    get,
    path = "/v1/zones",
    operation_id = "list_zones",
    tag = "zones",
    summary = "List zones",
    responses(
        (status = 200, description = "The zones the caller may see", body = Object),
        super::openapi::ReadErrors,
    )
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
) -> Answer {
    let catalog = catalog(&state)?;
    let mut views = Vec::new();
    for zone in catalog.zones().map_err(ApiError::internal)? {
        if may_see(&catalog, &who, &zone)? {
            views.push(ZoneView::of(&zone, zone_operator(&catalog, &zone.id)?));
        }
    }
    let audit = Audit {
        resources: views.iter().map(|z| format!("zone:{}", z.id)).collect(),
        ..Audit::default()
    };
    answer(StatusCode::OK, json!({ "zones": views }), audit)
}

/// `GET /v1/zones/{id}`.
#[utoipa::path(
    get,
    path = "/v1/zones/{id}",
    operation_id = "show_zone",
    tag = "zones",
    summary = "One zone",
    params(("id" = String, Path, description = "The resource id")),
    responses(
        (status = 200, description = "The zone", body = Object),
        super::openapi::LookupErrors,
    )
)]
pub async fn show(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    Path(id): Path<String>,
) -> Answer {
    let id = zone_id("id", &id)?;
    let catalog = catalog(&state)?;
    let zone = visible_zone(&catalog, &who, &id)?;
    let view = ZoneView::of(&zone, zone_operator(&catalog, &id)?);
    let audit = Audit {
        resources: vec![format!("zone:{id}")],
        ..Audit::default()
    };
    answer(StatusCode::OK, view, audit)
}

/// `POST /v1/zones/{id}/supervision` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandoverRequest {
    supervisor: String,
}

/// `POST /v1/zones/{id}/supervision` (regulator): the current supervisor
/// hands the zone to another regulator organization.
#[utoipa::path(
    post,
    path = "/v1/zones/{id}/supervision",
    operation_id = "hand_over_zone",
    tag = "zones",
    summary = "Hand supervision of a zone to another regulator",
    params(("id" = String, Path, description = "The resource id")),
    request_body = HandoverRequest,
    responses(
        (status = 200, description = "The zone, with its new supervisor", body = Object),
        super::openapi::BodyLookupErrors,
    )
)]
pub async fn hand_over(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    Path(id): Path<String>,
    body: Result<Json<HandoverRequest>, JsonRejection>,
) -> Answer {
    let id = zone_id("id", &id)?;
    let Json(req) = body.map_err(json_rejection)?;
    let to = regulator_org("supervisor", req.supervisor.trim())?;
    let mut catalog = catalog(&state)?;
    let zone = visible_zone(&catalog, &who, &id)?;
    if who.role != Role::Regulator || zone.supervisor != who.org {
        return Err(ApiError::Forbidden {
            reason: format!("{} does not supervise zone {id}", who.org),
        }
        .into());
    }
    if to == zone.supervisor {
        return Err(ApiError::bad_request("supervisor", "already supervises the zone").into());
    }
    catalog
        .set_zone_supervisor(&id, &to)
        .map_err(ApiError::internal)?;
    let audit = Audit {
        resources: vec![format!("zone:{id}")],
        reason: Some("supervision handed over".to_owned()),
        details: Some(json!({"event": "zone.supervision", "from": zone.supervisor, "to": to})),
        ..Audit::default()
    };
    let body = json!({"zone": id.as_str(), "from": zone.supervisor, "to": to});
    answer(StatusCode::OK, body, audit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(id: &str, kind: &str, supervisor: Option<&str>) -> NewZoneRequest {
        NewZoneRequest {
            id: id.into(),
            name: "金融专区".into(),
            kind: kind.into(),
            domain: "finance".into(),
            supervisor: supervisor.map(Into::into),
        }
    }

    fn field(e: ApiError) -> String {
        match e {
            ApiError::BadRequest { field, .. } => field,
            other => panic!("expected a bad request, got {other}"),
        }
    }

    #[test]
    fn no_supervisor_means_the_bureau() {
        for s in [None, Some(""), Some("  ")] {
            let zone = parse_zone(request("z1", "sectoral", s), "bjeit");
            assert_eq!(zone.map(|z| z.supervisor).ok().as_deref(), Some("bjeit"));
        }
        let zone = parse_zone(request("z1", "Regional", Some("haidian-gov")), "bjeit");
        let zone = zone.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (zone.supervisor.as_str(), zone.kind),
            ("haidian-gov", ZoneKind::Regional)
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let bad = |r| parse_zone(r, "bjeit").map(|_| ()).map_err(field);
        assert_eq!(bad(request("../x", "sectoral", None)), Err("id".into()));
        assert_eq!(bad(request("Z", "sectoral", None)), Err("id".into()));
        assert_eq!(bad(request("z", "sector", None)), Err("kind".into()));
        assert_eq!(
            bad(request("z", "regional", Some("Bad Org"))),
            Err("supervisor".into())
        );
        let mut r = request("z", "regional", None);
        r.name = " ".into();
        assert_eq!(bad(r), Err("name".into()));
    }

    #[tokio::test]
    async fn refusals_carry_their_detail_to_the_ledger_only() {
        let refusal = Refusal(ApiError::Forbidden {
            reason: "zone z is operated by a".into(),
        });
        let response = refusal.into_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let reason = response
            .extensions()
            .get::<AuditReason>()
            .map(|r| r.0.clone());
        assert!(reason.unwrap_or_default().contains("operated by a"));
    }
}
