//! Leak tracing: which issued extract (and so which recipient) a leaked
//! file came from, with a p-value, or "no match".
//!
//! Two fingerprint channels, both already part of desensitization:
//! - **pseudonym tokens**, keyed per grant: each extract stores a
//!   [`TokenSketch`] of its tokens (at most 16 Ki of them, chosen by their
//!   own bits). A leaked token sampled at the sketch's level is either in
//!   it or, if made under another key, lands there with probability
//!   `s / 2^(64 - L)`: a handful of hits is overwhelming evidence;
//! - **keyed cell choices** of ranges and age bands
//!   ([`crate::desensitize::fingerprint`]): recomputed from the grant key,
//!   the recipient and the column, nothing stored. Each distinct pair of
//!   cells the file shows is one check that a file made for someone else
//!   passes with probability ½.
//!
//! Both ignore row order, need no particular rows and no header names, so
//! they survive shuffling, subsets and dropped columns. A candidate's
//! p-value is its best channel's, Bonferroni-corrected for the channels
//! and column pairs tried; a recipient is named only when that p-value
//! times the number of candidates is at most [`ALPHA`]. Nothing here does
//! I/O beyond reading the leaked file from a caller's reader.

mod leak;
mod parquet;
mod sketch;
pub mod stats;

use std::collections::HashMap;

use serde::Serialize;

pub use leak::{Leak, LeakColumn, LeakError};
pub use parquet::{PARQUET_MAGIC, PARQUET_MAX_BYTES};
pub use sketch::{parse_token, SketchError, TokenSketch, EXTRACT_CAPACITY};
pub use stats::Evidence;

use crate::desensitize::{ColumnPlan, FingerprintKey, Generalization, Technique};

/// Family-wise false-accusation bound: a recipient is named only if its
/// extract's p-value, times the number of candidates, is at most this.
pub const ALPHA: f64 = 1e-6;

/// Most candidates listed in a [`Verdict`].
const LISTED: usize = 10;

/// One issued extract that might be the source of a leak. No `Debug`: it
/// holds the recipient's fingerprint key.
pub struct Candidate {
    /// The extract's id.
    pub extract: String,
    /// The grant it was made under.
    pub grant: String,
    /// Who received it.
    pub recipient: String,
    /// The columns it released, with their techniques.
    pub columns: Vec<ColumnPlan>,
    /// Its stored token sketch, if it released pseudonyms.
    pub sketch: Option<TokenSketch>,
    /// The recipient's keyed cell choices under the grant.
    pub key: FingerprintKey,
}

/// How one candidate scored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CandidateScore {
    /// The extract's id.
    pub extract: String,
    /// The grant.
    pub grant: String,
    /// The recipient.
    pub recipient: String,
    /// Share of the deciding channel's checks that hit.
    pub score: f64,
    /// log10 of the candidate's p-value (corrected for channels tried).
    pub log10_p: f64,
    /// The p-value itself (0 once below `f64`'s range).
    pub p_value: f64,
    /// The token channel, if the file had tokens at the sketch's level.
    pub tokens: Option<Evidence>,
    /// The best cell channel: leaked column, extract column, evidence.
    pub cells: Option<CellEvidence>,
}

/// The cell channel's best column pair.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellEvidence {
    /// The leaked file's column (header or key).
    pub leaked_column: String,
    /// The extract's column it matched.
    pub column: String,
    /// The test.
    pub evidence: Evidence,
}

/// The answer of a trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Whether a recipient is named.
    pub matched: bool,
    /// The named recipient (the best candidate's), if any.
    pub recipient: Option<String>,
    /// The named extract, if any.
    pub extract: Option<String>,
    /// Candidates scored.
    pub candidates: usize,
    /// The best candidate's p-value times the number of candidates
    /// (log10, capped at 0): what [`ALPHA`] is compared with.
    pub best_log10_p_adjusted: f64,
    /// Data rows read from the leaked file.
    pub leaked_rows: u64,
    /// The best candidates, most likely first.
    pub ranked: Vec<CandidateScore>,
}

/// Scores one candidate against a leaked file.
pub fn score(leak: &Leak, c: &Candidate) -> CandidateScore {
    let sketch = c.sketch.as_ref().filter(|s| !s.is_empty());
    let tokens = sketch.and_then(|s| token_evidence(leak, s));
    let cells = cell_evidence(leak, c);
    let tried = usize::from(tokens.is_some()) + usize::from(cells.is_some());
    let ps = tokens
        .iter()
        .map(|e| e.log10_p)
        .chain(cells.iter().map(|(e, _)| e.evidence.log10_p));
    let log10_p = stats::bonferroni(ps, tried);
    let cells = cells.map(|(e, _)| e);
    let best = match (&tokens, &cells) {
        (Some(t), Some(g)) if g.evidence.log10_p < t.log10_p => Some(g.evidence),
        (Some(t), _) => Some(*t),
        (None, Some(g)) => Some(g.evidence),
        (None, None) => None,
    };
    CandidateScore {
        extract: c.extract.clone(),
        grant: c.grant.clone(),
        recipient: c.recipient.clone(),
        score: best.map_or(0.0, |e| e.score()),
        log10_p,
        p_value: 10f64.powf(log10_p),
        tokens,
        cells,
    }
}

/// Ranks scored candidates and decides whether to name a recipient.
pub fn verdict(leak: &Leak, mut scores: Vec<CandidateScore>) -> Verdict {
    scores.sort_by(|a, b| {
        a.log10_p
            .total_cmp(&b.log10_p)
            .then(b.score.total_cmp(&a.score))
            .then(a.extract.cmp(&b.extract))
    });
    let candidates = scores.len();
    let best = scores.first().map_or(0.0, |s| s.log10_p);
    let adjusted = stats::bonferroni([best], candidates);
    let matched = candidates > 0 && adjusted <= ALPHA.log10();
    scores.truncate(LISTED);
    let named = scores.first().filter(|_| matched);
    Verdict {
        matched,
        recipient: named.map(|s| s.recipient.clone()),
        extract: named.map(|s| s.extract.clone()),
        candidates,
        best_log10_p_adjusted: adjusted,
        leaked_rows: leak.rows,
        ranked: scores,
    }
}

/// The token channel: leaked tokens at the common level, hits in the
/// sketch; `None` when the file has no token at that level.
fn token_evidence(leak: &Leak, sketch: &TokenSketch) -> Option<Evidence> {
    let level = sketch.level().max(leak.tokens.level());
    let checks = leak.tokens_at(level);
    if checks == 0 {
        return None;
    }
    // Walk the smaller side: a stored sketch has at most 16 Ki tokens, a
    // leaked file's up to 1 Mi.
    let kept = sketch.at(level).count() as u64;
    let hits = if kept <= checks {
        sketch
            .at(level)
            .filter(|&t| leak.tokens.contains(t))
            .count()
    } else {
        leak.tokens
            .at(level)
            .filter(|&t| sketch.contains(t))
            .count()
    } as u64;
    let q = (kept as f64 / 2f64.powi(64 - level as i32)).min(1.0);
    Some(Evidence::new(checks, hits, q))
}

/// A fingerprinted column of the candidate: its name, the cell width and
/// whether its cells print as bands (`lo-hi`) rather than ranges.
fn fingerprinted(plan: &ColumnPlan) -> Option<(&str, u64, bool)> {
    match plan.technique {
        Technique::Generalize(Generalization::AmountRange { width }) => {
            Some((plan.name.as_str(), width, false))
        }
        Technique::Generalize(Generalization::AgeBand { years }) => {
            Some((plan.name.as_str(), u64::from(years), true))
        }
        _ => None,
    }
}

/// The cell channel: every (leaked column, fingerprinted column) pair
/// with observations, the best one, and how many pairs were tried.
fn cell_evidence(leak: &Leak, c: &Candidate) -> Option<(CellEvidence, usize)> {
    let mut tried = 0;
    let mut best: Option<CellEvidence> = None;
    for plan in &c.columns {
        let Some((name, width, bands)) = fingerprinted(plan) else {
            continue;
        };
        for column in &leak.columns {
            let Some(evidence) = pair_evidence(column, &c.key, name, width, bands) else {
                continue;
            };
            tried += 1;
            if best
                .as_ref()
                .is_none_or(|b| evidence.log10_p < b.evidence.log10_p)
            {
                best = Some(CellEvidence {
                    leaked_column: column.name.clone(),
                    column: name.to_owned(),
                    evidence,
                });
            }
        }
    }
    let mut best = best?;
    best.evidence.log10_p = stats::bonferroni([best.evidence.log10_p], tried);
    Some((best, tried))
}

/// Checks a leaked column's cells against one fingerprinted column: one
/// check per distinct cell pair shown (a pair shown both merged and split,
/// or a cell that is not one of the key's shapes, is a miss).
fn pair_evidence(
    column: &LeakColumn,
    key: &FingerprintKey,
    name: &str,
    width: u64,
    bands: bool,
) -> Option<Evidence> {
    let w = i64::try_from(width).ok().filter(|w| *w > 0)?;
    let cells: Vec<(i64, i64)> = if bands {
        column.bands.iter().map(|&(lo, hi)| (lo, hi + 1)).collect()
    } else {
        column.ranges.iter().copied().collect()
    };
    if cells.is_empty() {
        return None;
    }
    let mut pairs: HashMap<i64, u8> = HashMap::new();
    let mut misfits = 0u64;
    for (lo, hi) in cells {
        let (first, n) = (lo.div_euclid(w), (hi - lo) / w);
        let aligned = lo.rem_euclid(w) == 0 && (hi - lo) % w == 0;
        match (aligned, n) {
            (true, 1) => *pairs.entry(first.div_euclid(2)).or_default() |= 1,
            (true, 2) if first % 2 == 0 => *pairs.entry(first / 2).or_default() |= 2,
            _ => misfits += 1,
        }
    }
    let hits = pairs
        .iter()
        .filter(|&(&pair, &seen)| {
            let merged = key.merged(name, width, pair);
            seen == if merged { 2 } else { 1 }
        })
        .count() as u64;
    Some(Evidence::new(pairs.len() as u64 + misfits, hits, 0.5))
}

#[cfg(test)]
mod tests;
