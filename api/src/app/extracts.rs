//! Extracts: an analyst pulls desensitized rows through a grant.
//!
//! `POST /v1/extracts` checks, in order, that the grant exists and is the
//! caller's (or its organization's), is neither revoked nor expired nor
//! used up, that the caller's organization is a partner with data access,
//! that the requested columns lie within the grant, and that the dataset is
//! confirmed and not due for destruction. Each refusal is a 403 whose
//! reason reaches the ledger entry only; a column the policy will not
//! release row by row (graded `core`) is a 403 naming the column.
//!
//! Then it streams: a blocking producer runs [`vault::extract::run`] (two
//! passes for k-anonymity, on as many reader threads as the machine has
//! cores, up to four; nothing buffered beyond a few chunks per reader and
//! a bounded channel) and feeds the response body. The audit layer writes the
//! **start** entry before the first byte and the **completion** entry (rows,
//! bytes, SHA-256) at the end ([`super::audit_stream`]). Before the body
//! ends, the producer signs the manifest (with the start entry's index)
//! and stores it, so `GET /v1/extracts/{id}/manifest` answers as soon as
//! the analyst has the last byte. The desensitizer carries the recipient's
//! fingerprint (keyed cell choices), and the extract's token sketch is
//! stored with its record, for [`super::leak_trace`]; the policy is the
//! one in force ([`super::policy::current`]).

use std::io::{self, Write};
use std::sync::atomic::AtomicU64;
use std::sync::{mpsc, Arc, OnceLock};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use vault::dataset::Dataset;
use vault::dataset_file::DatasetFile;
use vault::desensitize::{
    manifest, Desensitizer, ExtractManifest, FingerprintKey, Policy, Technique, Tier,
};
use vault::extract::{Format, Outcome, Selection, WhereClause};
use vault::governance::filing::Use;
use vault::grant::{ExtractRecord, Grant};
use vault::schema::{dataset_grade, ColumnSchema};

use super::audit::Audit;
use super::audit_stream::StreamAudit;
use super::datasets::visible_dataset;
use super::extract::ApiPath;
use super::grant_access::{
    filing_allows, open_dataset_readers, partner_tier, usable_dataset, GrantDenied,
};
use super::grants::{column_refused, filter_error, new_id};
use super::zones::{answer, catalog, Answer};
use super::AppState;
use crate::error::{json_rejection, ApiError};
use crate::identity::{Identity, Role};

/// The response header carrying the extract's id.
pub const EXTRACT_ID_HEADER: &str = "zonevault-extract-id";
/// The response header carrying the policy version.
pub const POLICY_VERSION_HEADER: &str = "zonevault-policy-version";
/// Chunks in flight between the producer and the response body.
const CHANNEL_CHUNKS: usize = 8;

/// Largest piece of the body sent through the channel at once.
const PIECE: usize = 64 * 1024;
/// How long the producer waits for the client to start reading.
const FIRST_READ_TIMEOUT: Duration = Duration::from_secs(120);

/// `POST /v1/extracts` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtractRequest {
    grant: String,
    #[serde(default)]
    columns: Option<Vec<String>>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    bom: bool,
}

/// Everything the producer needs, checked and opened.
struct Job {
    id: String,
    grant: Grant,
    dataset: Dataset,
    recipient: String,
    tier: Tier,
    policy: Policy,
    desensitizer: Desensitizer,
    selection: Selection,
    format: Format,
    file: DatasetFile,
}

/// `POST /v1/extracts` (analyst): checks the grant, then streams.
#[utoipa::path(
    post,
    path = "/v1/extracts",
    operation_id = "create_extract",
    tag = "extracts",
    summary = "Stream a desensitized extract (CSV, JSON Lines or Parquet) under a grant",
    request_body = ExtractRequest,
    responses(
        (status = 200, description = "The extract, streamed; its manifest is signed at the end", content((String = "text/csv; charset=utf-8"), (String = "application/x-ndjson"), (String = "application/vnd.apache.parquet"))),
        super::openapi::DatasetUseErrors,
    )
)]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    body: Result<Json<ExtractRequest>, JsonRejection>,
) -> Response {
    let req = match body {
        Ok(Json(req)) => req,
        Err(e) => return json_rejection(e).into_response(),
    };
    match prepare(&state, &who, req) {
        Ok(job) => stream(state, job),
        Err(refused) => *refused,
    }
}

/// A refusal response, boxed (a `Response` is large).
type Refused = Box<Response>;

/// A 403 whose reason goes to the ledger entry, never the body.
fn deny(grant: &str, reason: impl Into<String>) -> Refused {
    let reason = reason.into();
    let mut response = ApiError::Forbidden {
        reason: reason.clone(),
    }
    .into_response();
    response.extensions_mut().insert(Audit {
        resources: vec![format!("grant:{grant}")],
        reason: Some(reason),
        ..Audit::default()
    });
    Box::new(response)
}

fn fail(e: ApiError) -> Refused {
    Box::new(e.into_response())
}

fn denied(grant: &str, d: GrantDenied) -> Refused {
    match d {
        GrantDenied::Reason(reason) => deny(grant, reason),
        GrantDenied::Api(e) => fail(e),
    }
}

/// The checks of the module documentation, then the dataset file opened
/// and one extract counted against the grant.
fn prepare(state: &AppState, who: &Identity, req: ExtractRequest) -> Result<Job, Refused> {
    let format = parse_format(req.format.as_deref(), req.bom).map_err(fail)?;
    let mut catalog = catalog(state).map_err(fail)?;
    let grant = catalog
        .grant(req.grant.trim())
        .map_err(|e| fail(ApiError::internal(e)))?
        .ok_or_else(|| deny(&req.grant, "no such grant"))?;
    super::assessments::authorization_in_force(&catalog, &grant, who).map_err(fail)?;
    if let Some(refusal) = grant.refusal(&who.uri, &who.org, time::OffsetDateTime::now_utc()) {
        return Err(deny(&grant.id, refusal.to_string()));
    }
    let tier = partner_tier(&catalog, who).map_err(|d| denied(&grant.id, d))?;
    filing_allows(&catalog, &grant, Use::Extract).map_err(|d| denied(&grant.id, d))?;
    let dataset = usable_dataset(&mut catalog, &grant).map_err(|d| denied(&grant.id, d))?;
    let columns = selected_columns(&grant, &dataset, req.columns.as_deref())?;
    let policy = super::policy::current(&catalog).map_err(fail)?;
    let key = state.keys.grant_key(&grant.id);
    let desensitizer = Desensitizer::new(&columns, tier, &policy, &key)
        .map_err(|refusal| Box::new(column_refused(&refusal)))?
        .with_fingerprint(FingerprintKey::new(&key, &who.uri));
    let filter = combined_filter(&grant, &dataset, &desensitizer, req.filter.as_deref())?;
    let readers = vault::extract::readers();
    let file = open_dataset_readers(state, &catalog, &dataset, readers).map_err(fail)?;
    if !catalog
        .take_extract(&grant.id)
        .map_err(|e| fail(ApiError::internal(e)))?
    {
        return Err(deny(
            &grant.id,
            "the grant's extracts are used up or it was revoked",
        ));
    }
    let selection = Selection {
        columns: columns.iter().map(|c| c.name.clone()).collect(),
        filter,
        row_limit: grant.row_limit,
    };
    Ok(Job {
        id: new_id("x").map_err(fail)?,
        recipient: who.uri.clone(),
        grant,
        dataset,
        tier,
        policy,
        desensitizer,
        selection,
        format,
        file,
    })
}

fn parse_format(format: Option<&str>, bom: bool) -> Result<Format, ApiError> {
    match format.map(str::trim) {
        None | Some("") | Some("csv") => Ok(Format::Csv { bom }),
        Some("jsonl") if !bom => Ok(Format::Jsonl),
        Some("parquet") if !bom => Ok(Format::Parquet),
        Some("jsonl" | "parquet") => Err(ApiError::bad_request("bom", "only applies to csv")),
        Some(_) => Err(ApiError::bad_request(
            "format",
            "must be csv, jsonl or parquet",
        )),
    }
}

/// The requested columns (default: the grant's), each within the grant,
/// with their current schemas, in dataset order.
fn selected_columns(
    grant: &Grant,
    dataset: &Dataset,
    requested: Option<&[String]>,
) -> Result<Vec<ColumnSchema>, Refused> {
    let wanted: &[String] = match requested {
        Some(names) if !names.is_empty() => names,
        _ => &grant.columns,
    };
    if let Some(outside) = wanted.iter().find(|n| !grant.columns.contains(n)) {
        return Err(deny(
            &grant.id,
            format!("column {outside:?} is outside the grant"),
        ));
    }
    let columns: Vec<ColumnSchema> = dataset
        .columns
        .iter()
        .filter(|c| wanted.contains(&c.name))
        .cloned()
        .collect();
    if columns.len()
        != wanted
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    {
        return Err(deny(
            &grant.id,
            "a granted column is no longer in the dataset",
        ));
    }
    Ok(columns)
}

/// The grant's filter AND the analyst's, as one parameterized `WHERE`
/// body. The analyst may filter only on columns released as stored
/// (technique `keep`): a filter on a masked or pseudonymized column would
/// let it probe raw values one query at a time.
fn combined_filter(
    grant: &Grant,
    dataset: &Dataset,
    d: &Desensitizer,
    analyst: Option<&str>,
) -> Result<Option<WhereClause>, Refused> {
    let bad = |e: vault::filter::FilterError, field| fail(filter_error(field, &e));
    let granted = match grant.filter.as_deref() {
        Some(text) => Some(vault::filter::parse(text).map_err(|e| bad(e, "grant.filter"))?),
        None => None,
    };
    let own = match analyst.map(str::trim).filter(|t| !t.is_empty()) {
        Some(text) => Some(vault::filter::parse(text).map_err(|e| bad(e, "filter"))?),
        None => None,
    };
    if let Some(expr) = &own {
        let keep: Vec<&str> = d
            .plan()
            .iter()
            .filter(|p| p.technique == Technique::Keep)
            .map(|p| p.name.as_str())
            .collect();
        if let Some(c) = expr
            .columns()
            .into_iter()
            .find(|c| !keep.contains(&c.as_str()))
        {
            let problem = format!(
                "column {c:?} is not released as stored in this extract; filters may use: {}",
                keep.join(", ")
            );
            return Err(fail(ApiError::bad_request("filter", problem)));
        }
    }
    let expr = match (granted, own) {
        (Some(g), Some(o)) => g.and(o),
        (Some(e), None) | (None, Some(e)) => e,
        (None, None) => return Ok(None),
    };
    let all: Vec<String> = dataset.columns.iter().map(|c| c.name.clone()).collect();
    expr.to_sql(&all).map(Some).map_err(|e| bad(e, "filter"))
}

type Chunk = Result<Bytes, io::Error>;

/// The streamed response: headers now, body from the producer.
fn stream(state: Arc<AppState>, job: Job) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(CHANNEL_CHUNKS);
    let (read_tx, read_rx) = mpsc::sync_channel::<()>(1);
    let rows = Arc::new(AtomicU64::new(0));
    let start = Arc::new(OnceLock::new());
    let audit = StreamAudit {
        audit: stream_audit(&job),
        rows: rows.clone(),
        start_index: start.clone(),
    };
    let headers = [
        (header::CONTENT_TYPE, job.format.content_type().to_owned()),
        (
            header::HeaderName::from_static(EXTRACT_ID_HEADER),
            job.id.clone(),
        ),
        (
            header::HeaderName::from_static(POLICY_VERSION_HEADER),
            job.policy.version().to_owned(),
        ),
    ];
    tokio::task::spawn_blocking(move || produce(&state, job, &tx, &read_rx, &rows, &start));
    let body = futures_util::stream::unfold((rx, Some(read_tx)), |(mut rx, first)| async move {
        // The audit layer polls the body only after the start entry is
        // durable; tell the producer so it can look up that entry.
        if let Some(signal) = first {
            let _ = signal.try_send(());
        }
        rx.recv().await.map(|chunk| (chunk, (rx, None)))
    });
    let mut response = Response::new(Body::from_stream(body));
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response.extensions_mut().insert(audit);
    response
}

fn stream_audit(job: &Job) -> Audit {
    Audit {
        resources: vec![
            format!("extract:{}", job.id),
            format!("grant:{}", job.grant.id),
            format!("dataset:{}", job.dataset.id),
        ],
        purpose: Some(job.grant.purpose.clone()),
        filing: job.grant.filing.clone(),
        details: Some(json!({
            "event": "extract",
            "extract": job.id,
            "tier": job.tier,
            "columns": job.selection.columns,
            "policy_version": job.policy.version(),
            "filtered": job.selection.filter.is_some(),
        })),
        ..Audit::default()
    }
}

/// Writes into the response channel, blocking while it is full.
struct ChannelWriter<'a> {
    tx: &'a tokio::sync::mpsc::Sender<Chunk>,
}

impl Write for ChannelWriter<'_> {
    /// Sends `buf` in pieces of at most [`PIECE`] bytes: small buffers
    /// the allocator reuses, however large the writes.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for piece in buf.chunks(PIECE) {
            self.tx
                .blocking_send(Ok(Bytes::copy_from_slice(piece)))
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The blocking producer: runs the pipeline into the channel, then signs
/// and stores the manifest before the body ends. Any failure ends the
/// body with an error, so the completion entry records it.
fn produce(
    state: &AppState,
    mut job: Job,
    tx: &tokio::sync::mpsc::Sender<Chunk>,
    first_read: &mpsc::Receiver<()>,
    rows: &AtomicU64,
    start: &OnceLock<u64>,
) {
    let sink = ChannelWriter { tx };
    let k = job.policy.k();
    let result = vault::extract::run(
        job.file.connections_mut(),
        &job.selection,
        &mut job.desensitizer,
        k,
        job.format,
        sink,
        rows,
    );
    let finished = match result {
        Ok((_, outcome)) => finish(state, &job, &outcome, first_read, start),
        Err(e) => Err(e.to_string()),
    };
    if let Err(detail) = finished {
        tracing::error!(extract = %job.id, %detail, "extract failed");
        let _ = tx.blocking_send(Err(io::Error::other(detail)));
    }
}

/// Waits for the start entry, then signs and stores the manifest.
fn finish(
    state: &AppState,
    job: &Job,
    outcome: &Outcome,
    first_read: &mpsc::Receiver<()>,
    start: &OnceLock<u64>,
) -> Result<(), String> {
    first_read
        .recv_timeout(FIRST_READ_TIMEOUT)
        .map_err(|_| "the client never started reading".to_owned())?;
    // The audit layer sets it once the start entry is durable, before it
    // polls the body for the first time.
    let ledger_index = *start
        .get()
        .ok_or("the stream's start entry was not recorded")?;
    let manifest = ExtractManifest {
        extract_id: job.id.clone(),
        recipient: job.recipient.clone(),
        grant: job.grant.id.clone(),
        purpose: job.grant.purpose.clone(),
        dataset: job.dataset.id.to_string(),
        dataset_grade: job
            .dataset
            .grade
            .unwrap_or_else(|| dataset_grade(&job.dataset.columns)),
        columns: job.desensitizer.plan().to_vec(),
        policy_version: job.policy.version().to_owned(),
        row_count: outcome.rows,
        rows_suppressed: outcome.rows_suppressed,
        generalization_level: outcome.generalization_level,
        body_sha256: outcome.body_sha256.clone(),
        ledger_index,
        created_at: manifest::now(),
        recipient_fingerprint: state
            .keys
            .recipient_fingerprint(&job.grant.id, &job.recipient),
    };
    let signer = state
        .keys
        .manifest_signer(&format!("zonevault/{}", state.appliance_id))
        .map_err(|e| e.to_string())?;
    let note = signer.sign(&manifest).map_err(|e| e.to_string())?;
    let record = ExtractRecord {
        id: job.id.clone(),
        grant: job.grant.id.clone(),
        recipient: job.recipient.clone(),
        manifest: note,
        ledger_index,
        created_at: manifest.created_at,
    };
    let mut catalog = state.catalog.lock().map_err(|_| "catalog lock poisoned")?;
    catalog.record_extract(&record).map_err(|e| e.to_string())?;
    catalog
        .record_extract_sketch(&record.id, &outcome.sketch.to_bytes())
        .map_err(|e| e.to_string())
}

/// `GET /v1/extracts/{id}/manifest`: the signed manifest, to the analyst
/// who made the extract, the operator of its dataset's zone, or the zone's
/// regulator.
#[utoipa::path(
    get,
    path = "/v1/extracts/{id}/manifest",
    operation_id = "extract_manifest",
    tag = "extracts",
    summary = "The signed manifest of an extract",
    params(("id" = String, Path, description = "The resource id")),
    responses(
        (status = 200, description = "The manifest and its signed note", body = Object),
        super::openapi::LookupErrors,
    )
)]
pub async fn manifest(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    ApiPath(id): ApiPath<String>,
) -> Answer {
    let catalog = catalog(&state)?;
    let record = catalog
        .extract(&id)
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    let allowed = match who.role {
        Role::Analyst => record.recipient == who.uri,
        Role::Operator | Role::Regulator => {
            let grant = catalog
                .grant(&record.grant)
                .map_err(ApiError::internal)?
                .ok_or(ApiError::NotFound)?;
            visible_dataset(&catalog, &who, &grant.dataset).is_ok()
        }
        Role::Provider => false,
    };
    if !allowed {
        return Err(ApiError::Forbidden {
            reason: format!("extract {id} is not the caller's to see"),
        }
        .into());
    }
    let manifest: Value = record
        .manifest
        .lines()
        .nth(1)
        .and_then(|line| serde_json::from_str(line).ok())
        .unwrap_or(Value::Null);
    let audit = Audit {
        resources: vec![format!("extract:{id}"), format!("grant:{}", record.grant)],
        ..Audit::default()
    };
    let body = json!({"id": id, "note": record.manifest, "manifest": manifest});
    answer(StatusCode::OK, body, audit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse() {
        assert_eq!(
            parse_format(None, true).ok(),
            Some(Format::Csv { bom: true })
        );
        assert_eq!(parse_format(Some("jsonl"), false).ok(), Some(Format::Jsonl));
        assert!(parse_format(Some("jsonl"), true).is_err());
        assert_eq!(
            parse_format(Some("parquet"), false).ok(),
            Some(Format::Parquet)
        );
        assert!(parse_format(Some("parquet"), true).is_err());
        assert!(parse_format(Some("xlsx"), false).is_err());
    }
}
