//! Workload D (issue 8): two-person destruction of a large dataset against
//! destruction of one a tenth its size, alternately. The timed part is the
//! regulator's approval, which executes the cryptographic erase and issues
//! the signed certificate before it answers; the operator's request and the
//! imports before it are not timed. Cryptographic erase should cost about
//! the same whatever the size, so the target is a ratio of at most 1.5.

use std::time::Instant;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::args::Plan;
use crate::client::Connection;
use crate::import;
use crate::stats::{median, pair_ratios};
use crate::zonevault::Server;

/// Workload D's figures.
#[derive(Debug, Clone)]
pub struct Results {
    /// Rows of the large dataset.
    pub large_rows: u64,
    /// Rows of the small dataset.
    pub small_rows: u64,
    /// Approval-to-certificate time of each large destruction, ms.
    pub large_ms: Vec<f64>,
    /// Approval-to-certificate time of each small destruction, ms.
    pub small_ms: Vec<f64>,
}

impl Results {
    /// Median of the per-pair time ratios (large / small).
    pub fn ratio(&self) -> f64 {
        median(&pair_ratios(&self.large_ms, &self.small_ms))
    }

    /// The JSON form for results.json.
    pub fn to_json(&self) -> Value {
        json!({
            "large_rows": self.large_rows,
            "small_rows": self.small_rows,
            "large_ms": self.large_ms,
            "small_ms": self.small_ms,
            "pair_ratios": pair_ratios(&self.large_ms, &self.small_ms),
            "ratio_median": self.ratio(),
        })
    }
}

/// Runs `plan.pairs` pairs (large destruction, small destruction).
pub async fn run_pairs(plan: &Plan, server: &Server) -> Result<import::Outcome<Results>> {
    let large_rows = plan.rows;
    let small_rows = (plan.rows / 10).max(1);
    let mut results = Results {
        large_rows,
        small_rows,
        large_ms: Vec::new(),
        small_ms: Vec::new(),
    };
    for pair in 1..=plan.pairs {
        let large = format!("destroy-large-{pair}");
        let small = format!("destroy-small-{pair}");
        for (id, rows) in [(&large, large_rows), (&small, small_rows)] {
            if let Err(missing) = import::fill(server, rows, id).await? {
                return Ok(import::Outcome::Skipped(missing));
            }
        }
        let large_ms = destroy(server, &large).await?;
        let small_ms = destroy(server, &small).await?;
        eprintln!(
            "D pair {pair}: {large_rows} rows {large_ms:>7.1} ms, {small_rows} rows {small_ms:>7.1} ms"
        );
        results.large_ms.push(large_ms);
        results.small_ms.push(small_ms);
    }
    Ok(import::Outcome::Measured(results))
}

/// The operator requests the destruction of `dataset` (not timed), the
/// zone's regulator approves it (timed); the answer must say `executed`.
async fn destroy(server: &Server, dataset: &str) -> Result<f64> {
    let mut operator: Connection<Full<Bytes>> = server.endpoint("operator")?.connect().await?;
    let request = json!({"dataset": dataset, "basis": "benchmark",
                         "reason": "bench: cost of cryptographic erase"});
    let (_, body) = operator
        .json(
            Method::POST,
            "/v1/destructions",
            &request,
            &[StatusCode::CREATED],
        )
        .await?;
    let id = id_of(&body)?;
    let mut regulator: Connection<Full<Bytes>> = server.endpoint("regulator")?.connect().await?;
    let path = format!("/v1/destructions/{id}/approval");
    let approve = json!({"approve": true});
    let started = Instant::now();
    let (_, body) = regulator
        .json(Method::POST, &path, &approve, &[StatusCode::OK])
        .await?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let answer: Value = serde_json::from_slice(&body).context("approval answer is not JSON")?;
    anyhow::ensure!(
        answer["state"] == "executed",
        "destruction {id} of {dataset} not executed: {answer}"
    );
    Ok(ms)
}

fn id_of(body: &[u8]) -> Result<String> {
    let answer: Value = serde_json::from_slice(body).context("answer is not JSON")?;
    answer["id"]
        .as_str()
        .map(str::to_owned)
        .context("answer has no id")
}
