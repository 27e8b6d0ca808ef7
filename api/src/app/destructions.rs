//! Retention and two-person destruction over the API.
//!
//! The operator of a zone requests a destruction (`POST /v1/destructions`);
//! the zone's regulator (its supervising organization) approves or rejects
//! it (`POST /v1/destructions/{id}/approval`), and approval executes the
//! cryptographic erase at once ([`vault::lifecycle::erase`]). The signed
//! certificate is appended to the ledger as a `destruction.executed` event
//! and served at `GET /v1/destructions/{id}/certificate`. A background
//! sweep (and every access check) marks datasets past retention
//! `due-for-destruction`; [`ensure_accessible`] answers 409 for those and
//! 410 Gone, naming the certificate, for destroyed ones.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;
use serde_json::json;
use vault::catalog::Catalog;
use vault::dataset::{Dataset, DatasetState};
use vault::keys::DatasetKey;
use vault::ledger::{Decision, EntryKind, LedgerEntry};
use vault::lifecycle::erase::{self, Execution};
use vault::lifecycle::{
    retention, CertificateSigner, CheckError, Destruction, DestructionObject, DestructionState,
    Inaccessible,
};

use super::audit::Audit;
use super::datasets::{catalog_error, dataset_id, owned_dataset};
use super::extract::ApiPath;
use super::zones::{answer, catalog, owned_zone, visible_zone, zone_id, Answer};
use super::AppState;
use crate::error::{json_rejection, ApiError};
use crate::identity::{Identity, Role};

/// Default period of the retention sweep.
pub const DEFAULT_RETENTION_INTERVAL: Duration = Duration::from_secs(60);

/// What the lifecycle needs besides the catalog and the keys.
pub struct Lifecycle {
    /// Signs certificates with the ledger's key under the ledger origin.
    pub signer: CertificateSigner,
    /// How often the retention sweep runs.
    pub retention_interval: Duration,
}

/// The destruction routes (each has a row in [`crate::authz::RULES`]).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/destructions", post(request))
        .route("/v1/destructions/due", get(due))
        .route("/v1/destructions/{id}", get(show))
        .route("/v1/destructions/{id}/approval", post(approval))
        .route("/v1/destructions/{id}/certificate", get(certificate))
}

/// Refuses access to a dataset that is destroyed (410 naming the
/// certificate) or past its retention (409, marking it due if the sweep
/// has not yet). Call before every import and extract.
pub fn ensure_accessible(catalog: &mut Catalog, dataset: &Dataset) -> Result<(), ApiError> {
    ensure_not_destroyed(catalog, dataset)?;
    super::exit::ensure_zone_open(catalog, &dataset.zone)?;
    if retention::is_past_retention(dataset, time::OffsetDateTime::now_utc()) {
        catalog
            .set_dataset_state(&dataset.id, DatasetState::DueForDestruction)
            .map_err(ApiError::internal)?;
        return Err(ApiError::DueForDestruction {
            dataset: dataset.id.to_string(),
        });
    }
    match vault::lifecycle::check_accessible(catalog, dataset) {
        Ok(()) => Ok(()),
        Err(CheckError::Inaccessible(Inaccessible::Gone { certificate_id })) => {
            Err(ApiError::Gone {
                certificate: certificate_id,
            })
        }
        Err(CheckError::Inaccessible(Inaccessible::DueForDestruction)) => {
            Err(ApiError::DueForDestruction {
                dataset: dataset.id.to_string(),
            })
        }
        Err(CheckError::Catalog(e)) => Err(ApiError::internal(e)),
    }
}

/// Refuses a destroyed dataset with 410 (reads of metadata stay allowed
/// while it is due).
pub fn ensure_not_destroyed(catalog: &Catalog, dataset: &Dataset) -> Result<(), ApiError> {
    if dataset.state != DatasetState::Destroyed {
        return Ok(());
    }
    let certificate = catalog
        .certificate_covering(&dataset.id, &dataset.zone)
        .map_err(ApiError::internal)?;
    Err(ApiError::Gone { certificate })
}

/// `POST /v1/destructions` body: exactly one of `dataset` and `zone`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DestructionRequest {
    #[serde(default)]
    dataset: Option<String>,
    #[serde(default)]
    zone: Option<String>,
    basis: String,
    reason: String,
}

/// The object and its zone, if `who` operates the zone.
fn requested_object(
    catalog: &Catalog,
    who: &Identity,
    req: &DestructionRequest,
) -> Result<(DestructionObject, vault::ids::ZoneId), ApiError> {
    match (&req.dataset, &req.zone) {
        (Some(d), None) => {
            let ds = owned_dataset(catalog, who, &dataset_id("dataset", d)?)?;
            ensure_not_destroyed(catalog, &ds)?;
            Ok((DestructionObject::Dataset(ds.id), ds.zone))
        }
        (None, Some(z)) => {
            let zone = owned_zone(catalog, who, &zone_id("zone", z)?)?;
            Ok((DestructionObject::Zone(zone.id.clone()), zone.id))
        }
        _ => Err(ApiError::bad_request(
            "dataset",
            "give exactly one of dataset and zone",
        )),
    }
}

/// Refuses a second open request for the same object.
fn ensure_no_open_request(catalog: &Catalog, object: &DestructionObject) -> Result<(), ApiError> {
    let open = catalog
        .destructions()
        .map_err(ApiError::internal)?
        .into_iter()
        .find(|d| {
            &d.object == object
                && matches!(
                    d.state,
                    DestructionState::Requested | DestructionState::Approved
                )
        });
    match open {
        Some(d) => Err(ApiError::Conflict {
            reason: format!("{object} already has open destruction {}", d.id),
        }),
        None => Ok(()),
    }
}

/// A fresh destruction id, `dx-` and 16 random hex digits.
pub fn new_destruction_id() -> Result<String, ApiError> {
    let mut bytes = [0u8; 8];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ApiError::internal("random number generator failed"))?;
    Ok(format!("dx-{}", hex::encode(bytes)))
}

fn destruction_audit(d: &Destruction) -> Audit {
    Audit {
        resources: vec![
            format!("zone:{}", d.zone),
            d.object.to_string(),
            format!("destruction:{}", d.id),
        ],
        ..Audit::default()
    }
}

/// `POST /v1/destructions` (operator of the zone): files a request.
#[utoipa::path(
    post,
    path = "/v1/destructions",
    operation_id = "request_destruction",
    tag = "destructions",
    summary = "Request the destruction of a dataset or zone (operator)",
    request_body = DestructionRequest,
    responses(
        (status = 201, description = "The destruction request", body = Object),
        super::openapi::StateChangeErrors,
    )
)]
pub async fn request(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    body: Result<Json<DestructionRequest>, JsonRejection>,
) -> Answer {
    let Json(req) = body.map_err(json_rejection)?;
    super::free_text::check("basis", &req.basis)?;
    super::free_text::check("reason", &req.reason)?;
    let mut catalog = catalog(&state)?;
    let (object, zone) = requested_object(&catalog, &who, &req)?;
    ensure_no_open_request(&catalog, &object)?;
    let d = Destruction::request(
        new_destruction_id()?,
        object,
        zone,
        &req.basis,
        &req.reason,
        &who.uri,
    )
    .map_err(|e| ApiError::bad_request("basis", e.to_string()))?;
    catalog.insert_destruction(&d).map_err(ApiError::internal)?;
    let mut audit = destruction_audit(&d);
    audit.reason = Some("destruction requested".into());
    audit.details = Some(json!({"event": "destruction.request", "basis": d.basis}));
    answer(StatusCode::CREATED, d.view(), audit)
}

/// The destruction, if `who` may see it: its zone's operator or regulator.
fn visible_destruction(
    catalog: &Catalog,
    who: &Identity,
    id: &str,
) -> Result<Destruction, ApiError> {
    let d = catalog
        .destruction(id)
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    visible_zone(catalog, who, &d.zone)?;
    Ok(d)
}

/// `GET /v1/destructions/{id}`.
#[utoipa::path(
    get,
    path = "/v1/destructions/{id}",
    operation_id = "show_destruction",
    tag = "destructions",
    summary = "One destruction request and its state",
    params(("id" = String, Path, description = "The resource id")),
    responses(
        (status = 200, description = "The destruction request", body = Object),
        super::openapi::LookupErrors,
    )
)]
pub async fn show(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    ApiPath(id): ApiPath<String>,
) -> Answer {
    let catalog = catalog(&state)?;
    let d = visible_destruction(&catalog, &who, &id)?;
    let mut view = d.view();
    if let Some((_, index)) = catalog.certificate(&d.id).map_err(ApiError::internal)? {
        view["ledger_index"] = json!(index);
    }
    answer(StatusCode::OK, view, destruction_audit(&d))
}

/// `GET /v1/destructions/{id}/certificate`: the signed note (text/plain).
#[utoipa::path(
    get,
    path = "/v1/destructions/{id}/certificate",
    operation_id = "destruction_certificate",
    tag = "destructions",
    summary = "Signed destruction certificate (C2SP signed note)",
    params(("id" = String, Path, description = "The resource id")),
    responses(
        (status = 200, description = "The certificate as a signed note", body = String, content_type = "text/plain; charset=utf-8"),
        super::openapi::LookupErrors,
    )
)]
pub async fn certificate(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    ApiPath(id): ApiPath<String>,
) -> Answer {
    let catalog = catalog(&state)?;
    let d = visible_destruction(&catalog, &who, &id)?;
    let (note, index) = catalog
        .certificate(&d.id)
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    let mut audit = destruction_audit(&d);
    audit.details = Some(json!({"certificate_ledger_index": index}));
    let mut response =
        ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response();
    response.extensions_mut().insert(audit);
    Ok(response)
}

/// `GET /v1/destructions/due`: datasets due for destruction in the zones
/// the caller may see (the retention sweep runs first).
#[utoipa::path(
    get,
    path = "/v1/destructions/due",
    operation_id = "list_due_destructions",
    tag = "destructions",
    summary = "Datasets past retention, due for destruction",
    responses(
        (status = 200, description = "The datasets due", body = Object),
        super::openapi::ReadErrors,
    )
)]
pub async fn due(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
) -> Answer {
    sweep(&state).map_err(ApiError::internal)?;
    let catalog = catalog(&state)?;
    let mut items = Vec::new();
    for d in retention::due(&catalog).map_err(ApiError::internal)? {
        if visible_zone(&catalog, &who, &d.zone).is_ok() {
            items.push(json!({
                "dataset": d.id.as_str(),
                "zone": d.zone.as_str(),
                "retention": d.retention.to_string(),
                "expired_at": retention::expires_at(&d).map(rfc3339),
                "grade": d.grade,
                "row_count": d.row_count,
            }));
        }
    }
    let audit = Audit {
        resources: items
            .iter()
            .filter_map(|i| i["dataset"].as_str().map(|d| format!("dataset:{d}")))
            .collect(),
        ..Audit::default()
    };
    answer(StatusCode::OK, json!({ "due": items }), audit)
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// `POST /v1/destructions/{id}/approval` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    approve: bool,
}

/// `POST /v1/destructions/{id}/approval` (the zone's regulator): approving
/// executes the erase and issues the certificate; rejecting closes it.
#[utoipa::path(
    post,
    path = "/v1/destructions/{id}/approval",
    operation_id = "approve_destruction",
    tag = "destructions",
    summary = "Approve (and execute) or reject a destruction (zone regulator)",
    params(("id" = String, Path, description = "The resource id")),
    request_body = ApprovalRequest,
    responses(
        (status = 200, description = "The destruction request, approved and executed or rejected", body = Object),
        super::openapi::StateChangeErrors,
    )
)]
pub async fn approval(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    ApiPath(id): ApiPath<String>,
    body: Result<Json<ApprovalRequest>, JsonRejection>,
) -> Answer {
    let Json(req) = body.map_err(json_rejection)?;
    let worker = state.clone();
    let outcome = tokio::task::spawn_blocking(move || decide(&worker, &who, &id, req.approve))
        .await
        .map_err(|e| ApiError::internal(format!("destruction task failed: {e}")))?;
    let (d, certificate_index) = outcome?;
    let mut audit = destruction_audit(&d);
    audit.reason = Some(format!("destruction {}", d.state));
    audit.details = Some(json!({
        "event": "destruction.decision",
        "approve": req.approve,
        "certificate_id": d.certificate_id,
        "certificate_ledger_index": certificate_index,
    }));
    let mut view = d.view();
    if let Some(i) = certificate_index {
        view["ledger_index"] = json!(i);
    }
    answer(StatusCode::OK, view, audit)
}

/// Checks the approver, records the decision and, on approval, executes.
fn decide(
    state: &AppState,
    who: &Identity,
    id: &str,
    approve: bool,
) -> Result<(Destruction, Option<u64>), ApiError> {
    let mut catalog = catalog(state)?;
    let mut d = catalog
        .destruction(id)
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    let zone = catalog
        .zone(&d.zone)
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    if who.role != Role::Regulator || zone.supervisor != who.org {
        return Err(ApiError::Forbidden {
            reason: format!("{} is not the regulator of zone {}", who.uri, zone.id),
        });
    }
    d.decide(approve, &who.uri).map_err(transition_error)?;
    catalog.update_destruction(&d).map_err(ApiError::internal)?;
    if !approve {
        return Ok((d, None));
    }
    let index = execute(state, &mut catalog, &mut d)?;
    Ok((d, Some(index)))
}

fn transition_error(e: vault::lifecycle::destruction::TransitionError) -> ApiError {
    use vault::lifecycle::destruction::TransitionError as T;
    match e {
        T::SamePerson { .. } => ApiError::Forbidden {
            reason: e.to_string(),
        },
        T::WrongState { .. } => ApiError::Conflict {
            reason: e.to_string(),
        },
        T::BadText { field } => ApiError::bad_request(field, e.to_string()),
    }
}

/// Runs the erase, signs the certificate, records it in the catalog and
/// the ledger, and marks the destruction executed; the ledger index of the
/// certificate event.
fn execute(state: &AppState, catalog: &mut Catalog, d: &mut Destruction) -> Result<u64, ApiError> {
    let (targets, remaining) = keys_for(state, catalog, &d.object)?;
    let ex = Execution {
        destruction: d,
        appliance_id: &state.appliance_id,
        datasets: targets,
        remaining_keys: remaining,
        catalog_root: state.keys.catalog_root(),
    };
    let cert = erase::execute(catalog, &state.zones.datadir, ex).map_err(ApiError::internal)?;
    let note = state
        .lifecycle
        .signer
        .sign(&cert)
        .map_err(ApiError::internal)?;
    d.executed(&cert.certificate_id).map_err(transition_error)?;
    catalog.update_destruction(d).map_err(ApiError::internal)?;
    let mut entry = LedgerEntry::new(
        EntryKind::Event,
        "system",
        "EVENT",
        "destruction.executed",
        Decision::Allow,
    );
    entry.resources = vec![d.object.to_string(), format!("destruction:{}", d.id)];
    entry.reason = format!("certificate {}", cert.certificate_id);
    entry.details = Some(json!({"certificate_id": cert.certificate_id, "certificate": note}));
    let index = state
        .ledger
        .append(&entry)
        .map_err(ApiError::ledger_unavailable)?;
    // A checkpoint covering the certificate, so its proof can be fetched now.
    state
        .ledger
        .checkpoint()
        .map_err(ApiError::ledger_unavailable)?;
    catalog
        .store_certificate(&d.id, &note, index)
        .map_err(ApiError::internal)?;
    if let DestructionObject::Zone(zone) = &d.object {
        super::exit::record_exited(state, catalog, zone, &cert.certificate_id)?;
    }
    Ok(index)
}

/// The datasets to erase with their keys, and every other dataset key
/// the appliance still holds.
type KeysInScope = (Vec<(Dataset, DatasetKey)>, Vec<DatasetKey>);

/// The keys of the datasets to erase, and every other dataset key the
/// appliance still holds (for the verification).
fn keys_for(
    state: &AppState,
    catalog: &Catalog,
    object: &DestructionObject,
) -> Result<KeysInScope, ApiError> {
    let mut targets = Vec::new();
    let mut remaining = Vec::new();
    for ds in catalog.datasets(None).map_err(ApiError::internal)? {
        if ds.state == DatasetState::Destroyed {
            continue;
        }
        let in_scope = match object {
            DestructionObject::Dataset(id) => &ds.id == id,
            DestructionObject::Zone(z) => &ds.zone == z,
        };
        let key = dataset_key(state, catalog, &ds);
        match (in_scope, key) {
            (true, Ok(k)) => targets.push((ds, k)),
            (true, Err(e)) => return Err(e),
            (false, Ok(k)) => remaining.push(k),
            (false, Err(e)) => tracing::warn!(dataset = %ds.id, error = %e, "key not usable"),
        }
    }
    Ok((targets, remaining))
}

fn dataset_key(state: &AppState, catalog: &Catalog, ds: &Dataset) -> Result<DatasetKey, ApiError> {
    let zone_wrapped = catalog.zone_wrapped_key(&ds.zone).map_err(catalog_error)?;
    let wrapped = catalog.dataset_wrapped_key(&ds.id).map_err(catalog_error)?;
    state
        .keys
        .dataset_key(&zone_wrapped, &ds.zone, &wrapped, &ds.id)
        .map_err(ApiError::internal)
}

/// Marks datasets past retention as due and records one ledger event per
/// dataset marked.
pub fn sweep(state: &AppState) -> Result<usize, String> {
    let marked = {
        let mut catalog = state.catalog.lock().map_err(|_| "catalog lock poisoned")?;
        retention::mark_due(&mut catalog, time::OffsetDateTime::now_utc())
            .map_err(|e| e.to_string())?
    };
    for d in &marked {
        let mut entry = LedgerEntry::new(
            EntryKind::Event,
            "system",
            "EVENT",
            "dataset.due-for-destruction",
            Decision::Allow,
        );
        entry.resources = vec![format!("zone:{}", d.zone), format!("dataset:{}", d.id)];
        entry.reason = "retention ended".into();
        entry.details = Some(
            json!({"retention": d.retention.to_string(), "expired_at": retention::expires_at(d).map(rfc3339)}),
        );
        state.ledger.append(&entry).map_err(|e| e.to_string())?;
    }
    Ok(marked.len())
}

/// Runs [`sweep`] now and then every `retention_interval`, until the
/// runtime stops.
pub fn spawn_retention_sweep(state: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(state.lifecycle.retention_interval);
        loop {
            ticks.tick().await;
            let s = state.clone();
            match tokio::task::spawn_blocking(move || sweep(&s)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!(datasets = n, "retention: marked due for destruction"),
                Ok(Err(e)) => tracing::error!(error = %e, "retention sweep failed"),
                Err(e) => tracing::error!(error = %e, "retention sweep task failed"),
            }
        }
    })
}
