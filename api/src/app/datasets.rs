//! Datasets: create one in a zone, read it, list a zone's, and override and
//! confirm its detected schema. Rows come in through
//! [`super::import_stream`].
//!
//! A `government-share` dataset must name a sharing application approved
//! by both the zone's regulator and the provider, for this zone and
//! provider and in its period (409 naming why otherwise); its import may
//! only bring the fields approved there ([`super::import_stream`]).
//!
//! Creating a dataset makes its random key, wraps it under the zone key and
//! creates its empty SQLCipher file, all while the catalog is locked, so an
//! id is never half taken. Only an operator of the zone's organization
//! writes; that operator and the zone's regulator read.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use vault::catalog::{Catalog, CatalogError};
use vault::dataset::{ColumnOverride, Dataset, DatasetSource, DatasetSpec, Retention};
use vault::dataset_file::DatasetFile;
use vault::ids::{DatasetId, ZoneId};
use vault::keys::DatasetKey;
use vault::schema::{ColumnSchema, Grade, SemanticType};

use super::audit::Audit;
use super::zones::{answer, catalog, owned_zone, visible_zone, zone_id, Answer};
use super::AppState;
use crate::error::{json_rejection, ApiError};
use crate::identity::Identity;

/// Longest title, provider or application accepted, in bytes.
const MAX_TEXT_LEN: usize = 512;

/// A path or body value parsed as a dataset id, or a 400 naming `field`.
pub fn dataset_id(field: &str, value: &str) -> Result<DatasetId, ApiError> {
    value
        .parse()
        .map_err(|e| ApiError::bad_request(field, format!("{e}")))
}

/// Maps catalog errors that the caller caused to 404/409, the rest to 500.
pub fn catalog_error(e: CatalogError) -> ApiError {
    match e {
        CatalogError::UnknownZone { .. } | CatalogError::UnknownDataset { .. } => {
            ApiError::NotFound
        }
        CatalogError::ZoneExists { .. }
        | CatalogError::DatasetExists { .. }
        | CatalogError::InvalidState { .. } => ApiError::Conflict {
            reason: e.to_string(),
        },
        CatalogError::UnknownColumn { column, .. } => {
            ApiError::bad_request("columns", format!("no column {column:?} in the dataset"))
        }
        other => ApiError::internal(other),
    }
}

/// The dataset with its zone, if `who` may read it (404 otherwise).
pub fn visible_dataset(
    catalog: &Catalog,
    who: &Identity,
    id: &DatasetId,
) -> Result<Dataset, ApiError> {
    let dataset = catalog
        .dataset(id)
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    visible_zone(catalog, who, &dataset.zone)?;
    Ok(dataset)
}

/// The dataset, if `who` operates its zone (404 absent, 403 not the owner).
pub fn owned_dataset(
    catalog: &Catalog,
    who: &Identity,
    id: &DatasetId,
) -> Result<Dataset, ApiError> {
    let dataset = catalog
        .dataset(id)
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    owned_zone(catalog, who, &dataset.zone)?;
    Ok(dataset)
}

/// `POST /v1/zones/{zone}/datasets` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDatasetRequest {
    id: String,
    title: String,
    provider: String,
    source: String,
    #[serde(default)]
    application: Option<String>,
    retention: String,
    #[serde(default)]
    quasi_identifiers: Vec<String>,
}

fn text(field: &str, value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty() || value.len() > MAX_TEXT_LEN {
        let problem = format!("must be 1 to {MAX_TEXT_LEN} bytes");
        return Err(ApiError::bad_request(field, problem));
    }
    Ok(value.to_owned())
}

/// Parses the request: ids, source, retention; an application is required
/// with (and only with) a government share.
fn parse_dataset(zone: ZoneId, req: NewDatasetRequest) -> Result<Dataset, ApiError> {
    let id = dataset_id("id", &req.id)?;
    let title = text("title", &req.title)?;
    let provider = text("provider", &req.provider)?;
    let source: DatasetSource = req
        .source
        .parse()
        .map_err(|e| ApiError::bad_request("source", format!("{e}")))?;
    let application = match (source, req.application.as_deref().map(str::trim)) {
        (DatasetSource::GovernmentShare, None | Some("")) => {
            let problem = "is required when the source is government-share";
            return Err(ApiError::bad_request("application", problem));
        }
        (DatasetSource::GovernmentShare, Some(a)) => Some(text("application", a)?),
        (_, None | Some("")) => None,
        (_, Some(_)) => {
            let problem = "is only allowed when the source is government-share";
            return Err(ApiError::bad_request("application", problem));
        }
    };
    let retention: Retention = req
        .retention
        .parse()
        .map_err(|e| ApiError::bad_request("retention", format!("{e}")))?;
    let mut quasi = Vec::with_capacity(req.quasi_identifiers.len());
    for name in &req.quasi_identifiers {
        quasi.push(text("quasi_identifiers", name)?);
    }
    let spec = DatasetSpec {
        title,
        provider,
        source,
        application,
        retention,
        quasi_identifiers: quasi,
    };
    Dataset::new(id, zone, spec).map_err(|e| ApiError::bad_request("application", e.to_string()))
}

fn dataset_audit(d: &DatasetId, zone: &ZoneId) -> Audit {
    Audit {
        resources: vec![format!("zone:{zone}"), format!("dataset:{d}")],
        ..Audit::default()
    }
}

/// `POST /v1/zones/{zone}/datasets` (operator of the zone).
#[utoipa::path(
    post,
    path = "/v1/zones/{zone}/datasets",
    operation_id = "create_dataset",
    tag = "datasets",
    summary = "Create a dataset in a zone",
    params(("zone" = String, Path, description = "The zone id")),
    request_body = NewDatasetRequest,
    responses(
        (status = 201, description = "The dataset created", body = Object),
        super::openapi::StateChangeErrors,
    )
)]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    Path(zone): Path<String>,
    body: Result<Json<NewDatasetRequest>, JsonRejection>,
) -> Answer {
    let zone = zone_id("zone", &zone)?;
    let Json(req) = body.map_err(json_rejection)?;
    let dataset = parse_dataset(zone.clone(), req)?;
    let mut catalog = catalog(&state)?;
    owned_zone(&catalog, &who, &zone)?;
    super::exit::ensure_zone_open(&catalog, &zone)?;
    if let (DatasetSource::GovernmentShare, Some(app)) = (dataset.source, &dataset.application) {
        let approved = super::share_applications::approved_application(
            &catalog,
            app,
            &zone,
            &dataset.provider,
        );
        if let Err(refused) = approved {
            let mut audit = dataset_audit(&dataset.id, &zone);
            audit.resources.push(format!("share-application:{app}"));
            return Ok(*super::share_applications::refused_with(refused, audit));
        }
    }
    if catalog
        .dataset(&dataset.id)
        .map_err(ApiError::internal)?
        .is_some()
    {
        let reason = format!("dataset {} already exists", dataset.id);
        return Err(ApiError::Conflict { reason }.into());
    }
    create_keyed(&state, &mut catalog, &dataset)?;
    let mut audit = dataset_audit(&dataset.id, &zone);
    audit.details = Some(json!({
        "source": dataset.source.to_string(),
        "retention": dataset.retention.to_string(),
    }));
    answer(StatusCode::CREATED, &dataset, audit)
}

/// Makes the dataset key, creates the empty encrypted file, then the
/// catalog record; the file is removed again if the record fails.
fn create_keyed(
    state: &AppState,
    catalog: &mut Catalog,
    dataset: &Dataset,
) -> Result<(), ApiError> {
    let zone_wrapped = catalog
        .zone_wrapped_key(&dataset.zone)
        .map_err(catalog_error)?;
    let zone_key = state
        .keys
        .zone_key(&zone_wrapped, &dataset.zone)
        .map_err(ApiError::internal)?;
    let key = DatasetKey::generate().map_err(ApiError::internal)?;
    let wrapped = key
        .wrap(&zone_key, &dataset.id)
        .map_err(ApiError::internal)?;
    let path = state.zones.datadir.dataset_path(&dataset.id);
    // No catalog record names this id (checked under the same lock), so a
    // file here is an orphan of a crash whose key is gone: unreadable.
    if path.exists() {
        tracing::warn!(path = %path.display(), "removing an orphaned dataset file");
        remove_dataset_files(&path);
    }
    drop(DatasetFile::create(&path, &key).map_err(ApiError::internal)?);
    if let Err(e) = catalog.create_dataset(dataset, &wrapped) {
        remove_dataset_files(&path);
        return Err(catalog_error(e));
    }
    Ok(())
}

/// Removes a dataset file and its SQLite sidecars, ignoring absent ones.
pub fn remove_dataset_files(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

/// `GET /v1/datasets/{id}`.
#[utoipa::path(
    get,
    path = "/v1/datasets/{id}",
    operation_id = "show_dataset",
    tag = "datasets",
    summary = "A dataset's metadata and schema",
    params(("id" = String, Path, description = "The resource id")),
    responses(
        (status = 200, description = "The dataset", body = Object),
        super::openapi::DatasetLookupErrors,
    )
)]
pub async fn show(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    Path(id): Path<String>,
) -> Answer {
    let id = dataset_id("id", &id)?;
    let catalog = catalog(&state)?;
    let dataset = visible_dataset(&catalog, &who, &id)?;
    super::destructions::ensure_not_destroyed(&catalog, &dataset)?;
    answer(StatusCode::OK, &dataset, dataset_audit(&id, &dataset.zone))
}

/// `GET /v1/zones/{zone}/datasets`.
#[utoipa::path(
    get,
    path = "/v1/zones/{zone}/datasets",
    operation_id = "list_datasets",
    tag = "datasets",
    summary = "List a zone's datasets",
    params(("zone" = String, Path, description = "The zone id")),
    responses(
        (status = 200, description = "The zone's datasets", body = Object),
        super::openapi::LookupErrors,
    )
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    Path(zone): Path<String>,
) -> Answer {
    let zone = zone_id("zone", &zone)?;
    let catalog = catalog(&state)?;
    visible_zone(&catalog, &who, &zone)?;
    let datasets = catalog.datasets(Some(&zone)).map_err(ApiError::internal)?;
    let mut audit = Audit {
        resources: vec![format!("zone:{zone}")],
        ..Audit::default()
    };
    audit
        .resources
        .extend(datasets.iter().map(|d| format!("dataset:{}", d.id)));
    answer(StatusCode::OK, json!({ "datasets": datasets }), audit)
}

/// One column override in `PATCH /v1/datasets/{id}/schema`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnOverrideRequest {
    name: String,
    #[serde(default, rename = "type")]
    semantic_type: Option<String>,
    #[serde(default)]
    grade: Option<String>,
    #[serde(default)]
    quasi_identifier: Option<bool>,
}

/// `PATCH /v1/datasets/{id}/schema` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SchemaRequest {
    #[serde(default)]
    columns: Vec<ColumnOverrideRequest>,
    #[serde(default)]
    confirm: bool,
}

/// Parses the overrides against the dataset's detected columns.
fn parse_overrides(
    dataset: &Dataset,
    req: &[ColumnOverrideRequest],
) -> Result<Vec<ColumnOverride>, ApiError> {
    let mut out = Vec::with_capacity(req.len());
    for (i, c) in req.iter().enumerate() {
        let field = |f: &str| format!("columns[{i}].{f}");
        if !dataset.columns.iter().any(|d| d.name == c.name) {
            let problem = format!("no column {:?} in the dataset", c.name);
            return Err(ApiError::bad_request(field("name"), problem));
        }
        let semantic_type = match &c.semantic_type {
            Some(t) => Some(
                t.parse::<SemanticType>()
                    .map_err(|e| ApiError::bad_request(field("type"), format!("{e}")))?,
            ),
            None => None,
        };
        let grade = match &c.grade {
            Some(g) => Some(
                g.parse::<Grade>()
                    .map_err(|e| ApiError::bad_request(field("grade"), format!("{e}")))?,
            ),
            None => None,
        };
        out.push(ColumnOverride {
            name: c.name.clone(),
            semantic_type,
            grade,
            quasi_identifier: c.quasi_identifier,
        });
    }
    Ok(out)
}

/// What changed per column, for the ledger entry.
fn schema_changes(before: &[ColumnSchema], after: &[ColumnSchema]) -> Vec<Value> {
    let mut changes = Vec::new();
    for new in after {
        let Some(old) = before.iter().find(|c| c.name == new.name) else {
            continue;
        };
        let mut change = serde_json::Map::new();
        if old.semantic_type != new.semantic_type {
            change.insert(
                "type".into(),
                json!({"from": old.semantic_type, "to": new.semantic_type}),
            );
        }
        if old.grade != new.grade {
            change.insert("grade".into(), json!({"from": old.grade, "to": new.grade}));
        }
        if old.quasi_identifier != new.quasi_identifier {
            change.insert(
                "quasi_identifier".into(),
                json!({"from": old.quasi_identifier, "to": new.quasi_identifier}),
            );
        }
        if !change.is_empty() {
            change.insert("column".into(), json!(new.name));
            changes.push(Value::Object(change));
        }
    }
    changes
}

/// `PATCH /v1/datasets/{id}/schema` (operator of the zone): applies the
/// overrides and confirms the schema.
#[utoipa::path(
    patch,
    path = "/v1/datasets/{id}/schema",
    operation_id = "confirm_dataset_schema",
    tag = "datasets",
    summary = "Override and confirm a dataset's detected schema",
    params(("id" = String, Path, description = "The resource id")),
    request_body = SchemaRequest,
    responses(
        (status = 200, description = "The dataset with its schema", body = Object),
        super::openapi::StateChangeErrors,
    )
)]
pub async fn confirm_schema(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    Path(id): Path<String>,
    body: Result<Json<SchemaRequest>, JsonRejection>,
) -> Answer {
    let id = dataset_id("id", &id)?;
    let Json(req) = body.map_err(json_rejection)?;
    if !req.confirm {
        let problem = "must be true: overrides are applied together with the confirmation";
        return Err(ApiError::bad_request("confirm", problem).into());
    }
    let mut catalog = catalog(&state)?;
    let before = owned_dataset(&catalog, &who, &id)?;
    if before.columns.is_empty() {
        let reason = format!("dataset {id} has no imported rows to confirm");
        return Err(ApiError::Conflict { reason }.into());
    }
    let overrides = parse_overrides(&before, &req.columns)?;
    catalog
        .confirm_schema(&id, &overrides)
        .map_err(catalog_error)?;
    let after = catalog
        .dataset(&id)
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    let changes = schema_changes(&before.columns, &after.columns);
    let mut audit = dataset_audit(&id, &after.zone);
    audit.reason = Some("schema confirmed".to_owned());
    audit.details = Some(json!({
        "event": "dataset.schema.confirm",
        "changes": changes,
        "grade": {"from": before.grade, "to": after.grade},
    }));
    answer(StatusCode::OK, &after, audit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(source: &str, application: Option<&str>, retention: &str) -> NewDatasetRequest {
        NewDatasetRequest {
            id: "d1".into(),
            title: "居民".into(),
            provider: "bureau-x".into(),
            source: source.into(),
            application: application.map(Into::into),
            retention: retention.into(),
            quasi_identifiers: vec!["address".into()],
        }
    }

    fn field(r: Result<Dataset, ApiError>) -> String {
        match r {
            Err(ApiError::BadRequest { field, .. }) => field,
            Err(other) => panic!("expected a bad request, got {other}"),
            Ok(d) => panic!("accepted {}", d.id),
        }
    }

    fn zone() -> ZoneId {
        "z1".parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn application_goes_with_government_share_only() {
        let d = parse_dataset(zone(), request("government-share", Some("app-1"), "365d"));
        let d = d.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.application.as_deref(), Some("app-1"));
        assert_eq!(d.quasi_identifiers, vec!["address".to_owned()]);
        let missing = parse_dataset(zone(), request("government-share", None, "365d"));
        assert_eq!(field(missing), "application");
        let extra = parse_dataset(zone(), request("operator-own", Some("app-1"), "365d"));
        assert_eq!(field(extra), "application");
    }

    #[test]
    fn bad_fields_are_named() {
        let r = request("operator-own", None, "forever");
        assert_eq!(field(parse_dataset(zone(), r)), "retention");
        let r = request("bought", None, "30d");
        assert_eq!(field(parse_dataset(zone(), r)), "source");
        let mut r = request("feedback", None, "2030-12-31");
        r.id = "../../catalog".into();
        assert_eq!(field(parse_dataset(zone(), r)), "id");
    }

    #[test]
    fn schema_changes_list_only_what_changed() {
        let col = |name: &str, grade| ColumnSchema {
            name: name.into(),
            semantic_type: SemanticType::Amount,
            confidence: 0.9,
            grade,
            quasi_identifier: false,
        };
        let before = [col("a", Grade::General2), col("b", Grade::General2)];
        let after = [col("a", Grade::General3), col("b", Grade::General2)];
        let changes = schema_changes(&before, &after);
        assert_eq!(
            changes,
            vec![json!({"column": "a", "grade": {"from": "general-2", "to": "general-3"}})]
        );
    }
}
