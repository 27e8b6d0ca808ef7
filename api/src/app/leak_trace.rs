//! `POST /v1/leak-trace` (operator, regulator): which issued extract a
//! leaked file came from, and so which recipient leaked it.
//!
//! The body is the file itself (CSV, JSON Lines or Parquet, as extracts
//! are written), streamed into [`vault::trace::Leak::read`] through a
//! bounded channel (`max_import_bytes` applies, 413 beyond). CSV and JSON
//! Lines are read as they arrive, so memory stays bounded whatever their
//! size. A Parquet file (it starts with `PAR1`) keeps its index in a
//! footer at the end, so the reader collects it whole in memory first, at
//! most [`vault::trace::PARQUET_MAX_BYTES`] (512 MiB; 413 beyond), and
//! has it read in a process of its own ([`super::parquet_reader`]); a
//! truncated, corrupt or crafted one is a 400 naming `file`. Then every extract
//! whose dataset the caller may see (its zone's operator org or
//! supervisor), optionally only of `?dataset=`, is scored one at a time
//! from the catalog: its stored token sketch and its recipient's keyed
//! cell choices, recomputed from the grant key ([`vault::trace`]). The
//! answer ranks the candidates with a score and a p-value and names the
//! recipient only when the evidence is overwhelming; otherwise it says
//! "no match" with the best p-value.
//!
//! The ledger entry records the verdict, the named recipient and extract,
//! and the adjusted p-value; never the file's content.

use std::collections::HashMap;
use std::io::{self, BufReader};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Extension;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;
use vault::catalog::{Catalog, TraceRecord};
use vault::desensitize::{ExtractManifest, FingerprintKey};
use vault::ids::DatasetId;
use vault::trace::{
    self, Candidate, CandidateScore, Leak, LeakError, TokenSketch, Verdict, PARQUET_MAX_BYTES,
};

use super::audit::Audit;
use super::datasets::{dataset_id, visible_dataset};
use super::extract::ApiQuery;
use super::import_stream::{pump, ChannelReader, Pumped, CHANNEL_CHUNKS};
use super::parquet_reader;
use super::zones::{answer, catalog, Answer};
use super::AppState;
use crate::error::ApiError;
use crate::identity::Identity;

/// The route (it has a row in [`crate::authz::RULES`]); the body is a
/// file, so axum's JSON body limit does not apply.
pub fn routes() -> axum::Router<Arc<AppState>> {
    use axum::extract::DefaultBodyLimit;
    axum::Router::new().route(
        "/v1/leak-trace",
        axum::routing::post(trace).layer(DefaultBodyLimit::disable()),
    )
}

/// `POST /v1/leak-trace` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TraceQuery {
    /// Only extracts of this dataset are candidates.
    #[serde(default)]
    dataset: Option<String>,
}

/// `POST /v1/leak-trace`: reads the file, scores the candidates, answers
/// with the [`Verdict`].
#[utoipa::path(
    post,
    path = "/v1/leak-trace",
    operation_id = "leak_trace",
    tag = "extracts",
    summary = "Trace a leaked file to the extract and recipient it came from (p-value)",
    params(TraceQuery),
    request_body(content((String = "application/octet-stream")), description = "The leaked file, as found: CSV, JSON Lines or Parquet"),
    responses(
        (status = 200, description = "The verdict: the extract, its recipient and the p-value", body = Object),
        super::openapi::BodyErrors,
    )
)]
pub async fn trace(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Identity>,
    ApiQuery(query): ApiQuery<TraceQuery>,
    body: Body,
) -> Answer {
    let only = match query.dataset.as_deref() {
        Some(id) => Some(dataset_id("dataset", id)?),
        None => None,
    };
    let leak = read_leak(body, state.zones.max_import_bytes).await?;
    let scorer = state.clone();
    let verdict = tokio::task::spawn_blocking(move || rank(&scorer, &who, &leak, only.as_ref()))
        .await
        .map_err(ApiError::internal)??;
    let audit = Audit {
        resources: verdict
            .extract
            .iter()
            .map(|x| format!("extract:{x}"))
            .collect(),
        details: Some(json!({
            "event": "leak_trace",
            "matched": verdict.matched,
            "recipient": verdict.recipient,
            "extract": verdict.extract,
            "candidates": verdict.candidates,
            "best_log10_p_adjusted": verdict.best_log10_p_adjusted,
            "leaked_rows": verdict.leaked_rows,
        })),
        ..Audit::default()
    };
    answer(StatusCode::OK, verdict, audit)
}

/// Streams the body into the leak reader on a blocking thread.
async fn read_leak(body: Body, max_bytes: u64) -> Result<Leak, ApiError> {
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let job = tokio::task::spawn_blocking(move || {
        let input = BufReader::with_capacity(64 * 1024, ChannelReader::new(rx));
        Leak::read_bounded_with(input, PARQUET_MAX_BYTES, parquet_reader::read_isolated)
    });
    let pumped = pump(body, tx, max_bytes).await;
    let result = job.await.map_err(ApiError::internal)?;
    match (pumped, result) {
        (Pumped::TooLarge, _) => Err(ApiError::PayloadTooLarge),
        (Pumped::Broken, _) => Err(ApiError::bad_request("file", "the upload broke off")),
        (_, Ok(leak)) => Ok(leak),
        (_, Err(LeakError::TooLarge { .. })) => Err(ApiError::PayloadTooLarge),
        (_, Err(LeakError::Format(problem))) => Err(ApiError::bad_request("file", problem)),
        (_, Err(LeakError::Io(e))) => Err(io_problem(&e)),
    }
}

fn io_problem(e: &io::Error) -> ApiError {
    ApiError::bad_request("file", format!("the file could not be read: {e}"))
}

/// Scores every extract the caller may see (of `only`, if given).
fn rank(
    state: &AppState,
    who: &Identity,
    leak: &Leak,
    only: Option<&DatasetId>,
) -> Result<Verdict, ApiError> {
    let catalog = catalog(state)?;
    let mut visible: HashMap<String, bool> = HashMap::new();
    let mut scores: Vec<CandidateScore> = Vec::new();
    let mut failure: Option<ApiError> = None;
    catalog
        .for_each_traceable_extract(|record| {
            if failure.is_some() {
                return;
            }
            match candidate(state, &catalog, who, only, &mut visible, record) {
                Ok(Some(c)) => scores.push(trace::score(leak, &c)),
                Ok(None) => {}
                Err(e) => failure = Some(e),
            }
        })
        .map_err(ApiError::internal)?;
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(trace::verdict(leak, scores))
}

/// The candidate of one extract record, or `None` if the caller may not
/// see its dataset (or it is not of `only`).
fn candidate(
    state: &AppState,
    catalog: &Catalog,
    who: &Identity,
    only: Option<&DatasetId>,
    visible: &mut HashMap<String, bool>,
    record: TraceRecord,
) -> Result<Option<Candidate>, ApiError> {
    let grant = catalog
        .grant(&record.grant)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::internal(format!("extract {} has no grant", record.id)))?;
    if only.is_some_and(|d| *d != grant.dataset) {
        return Ok(None);
    }
    let seen = *visible
        .entry(grant.dataset.to_string())
        .or_insert_with(|| visible_dataset(catalog, who, &grant.dataset).is_ok());
    if !seen {
        return Ok(None);
    }
    let manifest: ExtractManifest = record
        .manifest
        .lines()
        .nth(1)
        .and_then(|line| serde_json::from_str(line).ok())
        .ok_or_else(|| ApiError::internal(format!("extract {}: bad manifest", record.id)))?;
    let sketch = match record.sketch.as_deref() {
        Some(bytes) => Some(TokenSketch::from_bytes(bytes).map_err(ApiError::internal)?),
        None => None,
    };
    let key = state.keys.grant_key(&record.grant);
    Ok(Some(Candidate {
        key: FingerprintKey::new(&key, &record.recipient),
        extract: record.id,
        grant: record.grant,
        recipient: record.recipient,
        columns: manifest.columns,
        sketch,
    }))
}
