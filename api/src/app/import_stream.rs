//! `PUT /v1/datasets/{id}/rows`: the request body streams into the vault's
//! importer without ever being held whole.
//!
//! The async side reads the body frame by frame and sends each chunk into
//! a bounded channel ([`CHANNEL_CHUNKS`] deep); a blocking task reads the
//! channel as a [`std::io::Read`] and runs [`vault::import::import_rows`],
//! which writes the rows in one transaction into the dataset's encrypted
//! file. Memory is bounded by the channel and the importer's own buffers,
//! whatever the size of the upload. The route has no body-size limit of
//! axum's; the configured `max_import_bytes` applies instead (413).
//!
//! All or nothing: if anything fails, the importer rolls its transaction
//! back and the catalog is not touched. Row errors describe the caller's
//! own input, so they (the first 100 and the total) go into the body.

use std::collections::HashSet;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;
use vault::catalog::{Catalog, CatalogError};
use vault::dataset::{Dataset, DatasetSource, DatasetState};
use vault::dataset_file::DatasetFile;
use vault::ids::DatasetId;
use vault::import::{import_rows, Format, ImportError, ImportOptions, ImportReport, TextEncoding};

use super::audit::{Audit, AuditReason};
use super::datasets::{catalog_error, dataset_id, owned_dataset, remove_dataset_files};
use super::zones::{answer, catalog, Answer};
use super::AppState;
use crate::error::ApiError;
use crate::identity::Identity;

/// Body chunks buffered between the connection and the importer.
pub const CHANNEL_CHUNKS: usize = 16;

/// After an import fails early, how much of the rest of the body is read
/// and discarded so the client sees the answer rather than a reset.
const DRAIN_LIMIT: u64 = 256 * 1024 * 1024;

/// Row errors returned in the body; the total is always given.
const MAX_REPORTED_ERRORS: usize = 100;

/// Datasets with an import running, so two cannot race on one file.
#[derive(Debug, Default)]
pub struct ImportsInFlight(Mutex<HashSet<DatasetId>>);

/// Marks a dataset's import as running until dropped.
struct InFlight<'a> {
    set: &'a ImportsInFlight,
    id: DatasetId,
}

impl ImportsInFlight {
    fn claim(&self, id: &DatasetId) -> Result<InFlight<'_>, ApiError> {
        let mut set = self
            .0
            .lock()
            .map_err(|_| ApiError::internal("import set poisoned"))?;
        if !set.insert(id.clone()) {
            let reason = format!("an import into dataset {id} is already running");
            return Err(ApiError::Conflict { reason });
        }
        Ok(InFlight {
            set: self,
            id: id.clone(),
        })
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.0.lock() {
            set.remove(&self.id);
        }
    }
}

/// `?format=csv|jsonl&encoding=utf-8|gb18030`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    format: Option<String>,
    encoding: Option<String>,
}

fn parse_options(q: &ImportQuery) -> Result<ImportOptions, ApiError> {
    let format: Format = q
        .format
        .as_deref()
        .unwrap_or("csv")
        .parse()
        .map_err(|e: String| ApiError::bad_request("format", e))?;
    let encoding: TextEncoding = q
        .encoding
        .as_deref()
        .unwrap_or("utf-8")
        .parse()
        .map_err(|e: String| ApiError::bad_request("encoding", e))?;
    Ok(ImportOptions {
        format,
        encoding,
        max_reported_errors: MAX_REPORTED_ERRORS,
        ..ImportOptions::default()
    })
}

/// `PUT /v1/datasets/{id}/rows` (operator of the dataset's zone).
#[utoipa::path(
    put,
    path = "/v1/datasets/{id}/rows",
    operation_id = "import_rows",
    tag = "datasets",
    summary = "Stream a dataset's rows in (CSV or JSON Lines)",
    params(("id" = String, Path, description = "The resource id"), ImportQuery),
    request_body(content((String = "text/csv"), (String = "application/jsonl")), description = "The rows, in the format the query names"),
    responses(
        (status = 200, description = "The import report: rows written and the digest", body = Object),
        super::openapi::DatasetUseErrors,
    )
)]
pub async fn import(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    Path(id): Path<String>,
    query: Result<Query<ImportQuery>, QueryRejection>,
    body: Body,
) -> Answer {
    let checked = (|| {
        let id = dataset_id("id", &id)?;
        let Query(query) = query.map_err(|e| ApiError::bad_request("query", e.body_text()))?;
        let options = parse_options(&query)?;
        let running = state.zones.imports.claim(&id)?;
        let (dataset, file) = open_for_import(&state, &who, &id)?;
        let approved_fields = shared_fields(&state, &dataset)?;
        Ok((options, running, dataset, file, approved_fields))
    })();
    let (mut options, _running, dataset, file, approved_fields) = match checked {
        Ok(checked) => checked,
        Err(err) => {
            // Read (a bounded part of) what the client is sending, so it
            // sees the refusal instead of a connection reset mid-upload.
            drain(body, 0).await;
            return Err(err);
        }
    };
    options
        .quasi_identifiers
        .clone_from(&dataset.quasi_identifiers);
    options.allowed_columns = approved_fields;
    let (outcome, pumped) = run_import(body, file, options, state.zones.max_import_bytes).await;
    match outcome {
        Ok(report) => finish(&state, &dataset, report),
        Err(err) => Ok(refusal(&dataset, err, pumped)),
    }
}

/// For a `government-share` dataset, the fields its sharing application
/// approved (which must still admit it: approved by both, in its period);
/// `None` for other sources.
fn shared_fields(state: &AppState, dataset: &Dataset) -> Result<Option<Vec<String>>, ApiError> {
    let (DatasetSource::GovernmentShare, Some(id)) = (dataset.source, &dataset.application) else {
        return Ok(None);
    };
    let catalog = catalog(state)?;
    let application = catalog
        .share_application(id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::Conflict {
            reason: format!("share application {id} of dataset {} is gone", dataset.id),
        })?;
    let now = vault::governance::period::now();
    if let Some(reason) = application.admits_dataset(&dataset.zone, &dataset.provider, now) {
        return Err(ApiError::Conflict { reason });
    }
    let fields = application.approved_fields();
    Ok(Some(fields.into_iter().map(str::to_owned).collect()))
}

/// Checks ownership and state, then opens the dataset's file with its key.
fn open_for_import(
    state: &AppState,
    who: &Identity,
    id: &DatasetId,
) -> Result<(Dataset, DatasetFile), ApiError> {
    let mut catalog = catalog(state)?;
    let dataset = owned_dataset(&catalog, who, id)?;
    super::destructions::ensure_accessible(&mut catalog, &dataset)?;
    if dataset.state != DatasetState::Created || dataset.row_count > 0 {
        let reason = format!("dataset {id} is {}; rows are imported once", dataset.state);
        return Err(ApiError::Conflict { reason });
    }
    let zone_wrapped = catalog
        .zone_wrapped_key(&dataset.zone)
        .map_err(catalog_error)?;
    let wrapped = catalog.dataset_wrapped_key(id).map_err(catalog_error)?;
    let key = state
        .keys
        .dataset_key(&zone_wrapped, &dataset.zone, &wrapped, id)
        .map_err(ApiError::internal)?;
    let path = state.zones.datadir.dataset_path(id);
    let file = DatasetFile::open(&path, &key).map_err(ApiError::internal)?;
    Ok((dataset, file))
}

/// How the request body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pumped {
    /// Read to its end; this many bytes.
    Complete(u64),
    /// Over the configured maximum.
    TooLarge,
    /// The connection failed mid-body.
    Broken,
    /// The importer stopped reading (it failed early).
    Abandoned,
}

/// Runs the importer on a blocking thread while this task feeds it the body.
async fn run_import(
    body: Body,
    mut file: DatasetFile,
    options: ImportOptions,
    max_bytes: u64,
) -> (Result<ImportReport, ImportError>, Pumped) {
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let job = tokio::task::spawn_blocking(move || {
        let mut reader = ChannelReader::new(rx);
        let mut progress = |rows: u64, bytes: u64| {
            tracing::debug!(rows, bytes, "import progress");
        };
        let result = import_rows(&mut reader, &mut file, &options, &mut progress);
        // Leave the rows in the main file and an empty WAL: later readers
        // need not replay it and a destruction has no large WAL to free.
        if result.is_ok() {
            if let Err(e) = file.checkpoint() {
                tracing::warn!(error = %e, "dataset WAL not checkpointed after import");
            }
        }
        drop(file);
        result
    });
    let pumped = pump(body, tx, max_bytes).await;
    let result = match job.await {
        Ok(result) => result,
        Err(join) => Err(ImportError::Io(io::Error::other(format!(
            "import task failed: {join}"
        )))),
    };
    (result, pumped)
}

/// Feeds the body into `tx` chunk by chunk, enforcing `max_bytes`.
pub(super) async fn pump(
    mut body: Body,
    tx: mpsc::Sender<io::Result<Bytes>>,
    max_bytes: u64,
) -> Pumped {
    let mut total: u64 = 0;
    loop {
        let frame = match body.frame().await {
            None => return Pumped::Complete(total),
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                tracing::info!(error = %e, "import body failed");
                let _ = tx.send(Err(io::Error::other("request body failed"))).await;
                return Pumped::Broken;
            }
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total = total.saturating_add(data.len() as u64);
        if total > max_bytes {
            let _ = tx
                .send(Err(io::Error::other("request body too large")))
                .await;
            return Pumped::TooLarge;
        }
        if tx.send(Ok(data)).await.is_err() {
            drop(tx);
            drain(body, total).await;
            return Pumped::Abandoned;
        }
    }
}

/// Reads and discards the rest of a body, up to [`DRAIN_LIMIT`].
async fn drain(mut body: Body, mut total: u64) {
    let stop = total.saturating_add(DRAIN_LIMIT);
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            total = total.saturating_add(data.len() as u64);
        }
        if total > stop {
            return;
        }
    }
}

/// The receiving end of the body channel as a blocking reader.
pub(super) struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl ChannelReader {
    pub(super) fn new(rx: mpsc::Receiver<io::Result<Bytes>>) -> Self {
        ChannelReader {
            rx,
            current: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// Records the import in the catalog and answers with the detected schema.
fn finish(state: &AppState, dataset: &Dataset, report: ImportReport) -> Answer {
    let mut catalog = catalog(state)?;
    let updated = catalog
        .record_import(&dataset.id, report.rows, &report.columns)
        .and_then(|()| catalog.dataset(&dataset.id));
    let updated = match updated {
        Ok(Some(d)) => d,
        Ok(None) => return Err(ApiError::NotFound.into()),
        Err(e) => {
            // The rows are committed in the file but the catalog does not
            // know them: the import did not happen, so they must go.
            drop(catalog);
            discard_rows(state, dataset);
            return Err(match e {
                CatalogError::UnknownColumn { column, .. } => ApiError::bad_request(
                    "quasi_identifiers",
                    format!(
                        "names {column:?}, which is not a column of the file; nothing was imported"
                    ),
                ),
                other => ApiError::internal(other),
            }
            .into());
        }
    };
    record_digest(&mut catalog, dataset, &report.content_sha256);
    drop(catalog);
    let audit = Audit {
        resources: vec![
            format!("zone:{}", dataset.zone),
            format!("dataset:{}", dataset.id),
        ],
        rows: Some(report.rows),
        reason: Some("rows imported".to_owned()),
        details: Some(json!({"bytes": report.bytes, "grade": updated.grade})),
        ..Audit::default()
    };
    let body = json!({
        "rows": report.rows,
        "bytes": report.bytes,
        "columns": report.columns,
        "dataset": updated,
    });
    answer(StatusCode::OK, body, audit)
}

/// Records the content digest the importer computed while writing the
/// rows, so that a destruction certifies it without reading every row
/// (datasets are written once). On failure the destruction computes it
/// itself.
fn record_digest(catalog: &mut Catalog, dataset: &Dataset, sha256: &str) {
    if let Err(e) = catalog.set_content_digest(&dataset.id, sha256) {
        tracing::warn!(dataset = %dataset.id, error = %e, "content digest not recorded");
    }
}

/// Replaces the dataset's file with an empty one (same key) after a
/// failed catalog update, so no rows outlive the failed import.
fn discard_rows(state: &AppState, dataset: &Dataset) {
    let result = (|| -> Result<(), ApiError> {
        let catalog = catalog(state)?;
        let zone_wrapped = catalog
            .zone_wrapped_key(&dataset.zone)
            .map_err(catalog_error)?;
        let wrapped = catalog
            .dataset_wrapped_key(&dataset.id)
            .map_err(catalog_error)?;
        let key = state
            .keys
            .dataset_key(&zone_wrapped, &dataset.zone, &wrapped, &dataset.id)
            .map_err(ApiError::internal)?;
        let path = state.zones.datadir.dataset_path(&dataset.id);
        remove_dataset_files(&path);
        DatasetFile::create(&path, &key)
            .map(drop)
            .map_err(ApiError::internal)
    })();
    if let Err(e) = result {
        tracing::error!(dataset = %dataset.id, error = %e, "could not discard imported rows");
    }
}

/// One row error, as the caller sees it.
#[derive(Debug, Serialize)]
struct RowProblem {
    line: u64,
    column: Option<String>,
    problem: String,
}

/// The body of a refused import.
#[derive(Debug, Serialize)]
struct ImportRefusedBody {
    error: &'static str,
    message: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
    total: u64,
    errors: Vec<RowProblem>,
}

/// The answer to a failed import: 400 describing the input, 413 over the
/// limit, 500 for the appliance's own failures (detail only in the log).
fn refusal(dataset: &Dataset, err: ImportError, pumped: Pumped) -> Response {
    let reason = format!("import into dataset {} refused: {err}", dataset.id);
    let mut response = match (err, pumped) {
        (_, Pumped::TooLarge) => ApiError::PayloadTooLarge.into_response(),
        (ImportError::Io(_), Pumped::Broken) => {
            ApiError::bad_request("body", "the request body could not be read").into_response()
        }
        (ImportError::Store(_) | ImportError::Io(_), _) => {
            ApiError::internal(&reason).into_response()
        }
        (input, _) => input_refusal(input),
    };
    let audit = Audit {
        resources: vec![
            format!("zone:{}", dataset.zone),
            format!("dataset:{}", dataset.id),
        ],
        rows: Some(0),
        ..Audit::default()
    };
    response.extensions_mut().insert(audit);
    response.extensions_mut().insert(AuditReason(reason));
    response
}

fn input_refusal(err: ImportError) -> Response {
    let mut body = ImportRefusedBody {
        error: "bad_request",
        message: "the rows were refused; nothing was imported",
        field: Some("body"),
        problem: None,
        total: 0,
        errors: Vec::new(),
    };
    match err {
        ImportError::Empty => body.problem = Some("the file is empty".to_owned()),
        ImportError::Header { problem } => {
            body.field = Some("header");
            body.problem = Some(problem);
        }
        ImportError::Binary { line } => {
            body.problem = Some(format!("binary data at line {line}; expected text"));
        }
        ImportError::Rows { total, first } => {
            body.field = Some("rows");
            body.total = total;
            body.problem = Some(format!("{total} rows are invalid"));
            body.errors = first
                .into_iter()
                .take(MAX_REPORTED_ERRORS)
                .map(|e| RowProblem {
                    line: e.line,
                    column: e.column,
                    problem: e.problem,
                })
                .collect();
        }
        other => body.problem = Some(other.to_string()),
    }
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}
