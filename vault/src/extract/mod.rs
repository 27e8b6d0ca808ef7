//! The extract pipeline: read a dataset file's selected rows under a
//! parameterized filter and a row limit, desensitize every cell, enforce
//! k-anonymity on the quasi-identifiers, and write CSV or JSON Lines into
//! any [`Write`], hashing the body as it goes.
//!
//! k-anonymity in a stream: a streamed body cannot take back rows it has
//! sent, so [`run`] makes two passes over the same ordered, limited query.
//! Pass one counts the equivalence classes of the desensitized
//! quasi-identifier tuples at every generalization level at once (the
//! policy's, and up to [`kanon::MAX_GENERALIZATION`] steps coarser) and
//! picks the first level whose small classes hold few enough rows;
//! pass two writes, at that level, only the rows whose class has at least
//! k members. Generalizing comes first, suppressing second. Memory is
//! bounded by the number of distinct classes, never by the number of rows.
//! Without quasi-identifier columns there is one pass.
//!
//! Both passes read the same span of rowids (the row limit becomes the
//! span's end), cut into chunks that several reader threads, each on its
//! own connection to the file, read and desensitize at once; the chunks'
//! encoded rows reach the sink in rowid order ([`chunks`]), so the body is
//! the same whatever the number of readers.
//!
//! Every extract also returns a [`TokenSketch`] of the pseudonym tokens
//! it wrote (bounded, see [`crate::trace`]), for the catalog to keep.
//!
//! What this module never does: splice a value into SQL, write a cell that
//! did not pass through the [`Desensitizer`], open a socket, or know about
//! HTTP. The caller supplies the sink (a file, or a channel feeding a
//! response body) and the row counter.

mod chunks;
mod format;
mod parquet;
mod query;

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use ring::hmac;
use rusqlite::Connection;

use crate::desensitize::kanon::{self, EquivalenceClasses};
use crate::desensitize::{Desensitizer, Technique};
use crate::keys::PseudonymRoot;
use crate::trace::{parse_token, TokenSketch, EXTRACT_CAPACITY};

use format::{Encoded, Encoder};
use query::RowidRange;

pub use chunks::readers;
pub use format::Format;
pub use query::{Selection, WhereClause};

/// HMAC label of the per-grant recipient fingerprint key.
const FINGERPRINT_LABEL: &[u8] = b"zonevault/v1/recipient-fingerprint/";

/// Why an extract failed part way.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// Reading the dataset file failed.
    #[error("reading the dataset failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Writing the body failed (for a stream: the client went away).
    #[error("writing the extract failed: {0}")]
    Io(#[from] io::Error),
}

/// What an extract released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Rows written.
    pub rows: u64,
    /// Rows withheld because their quasi-identifier class was smaller
    /// than k.
    pub rows_suppressed: u64,
    /// Steps beyond the policy the quasi-identifiers were generalized to
    /// reach k-anonymity before suppressing (see [`kanon::choose_level`]).
    pub generalization_level: u32,
    /// Bytes written.
    pub bytes: u64,
    /// SHA-256 of the body, lowercase hex.
    pub body_sha256: String,
    /// A sample of the pseudonym tokens written, for leak tracing
    /// ([`crate::trace`]).
    pub sketch: TokenSketch,
}

/// Runs one extract: `selection` from the dataset file open on `conns`
/// (one reader thread per connection, at least one; see [`chunks`]),
/// desensitized by `d` (whose plan must be for `selection.columns`, in the
/// same order), its quasi-identifiers generalized as far as k-anonymity
/// needs (`d` is left at the chosen level, so its plan is what was
/// released), classes of fewer than `k` rows suppressed, written to `sink`
/// as `format`. Each written row increments `rows`. Returns the sink and
/// the outcome.
pub fn run<W: Write + Send>(
    conns: &mut [Connection],
    selection: &Selection,
    d: &mut Desensitizer,
    k: usize,
    format: Format,
    sink: W,
    rows: &AtomicU64,
) -> Result<(W, Outcome), ExtractError> {
    let first = conns.first().ok_or_else(no_reader)?;
    let span = selection.span(first)?;
    let classes = match span {
        Some(span) => count_classes(conns, span, selection, d, k)?,
        None => None,
    };
    let names: Vec<String> = d.plan().iter().map(|p| p.name.clone()).collect();
    let mut writer = format::RowWriter::new(sink, format, &names)?;
    let release = Release {
        selection,
        d,
        classes: classes.as_ref(),
        k,
        encoder: Encoder::new(format, &names),
        tokens: (d.plan().iter().enumerate())
            .filter(|(_, p)| p.technique == Technique::Pseudonymize)
            .map(|(i, _)| i)
            .collect(),
    };
    let (mut written, mut suppressed) = (0u64, 0u64);
    let mut sketch = TokenSketch::new(EXTRACT_CAPACITY);
    if let Some(span) = span {
        let work = |conn: &Connection, range| release.chunk(conn, range);
        chunks::in_order(conns, span, work, |chunk: Released| {
            release.encoder.recycle(writer.chunk(chunk.encoded)?);
            chunk.tokens.into_iter().for_each(|t| sketch.insert(t));
            written += chunk.rows;
            suppressed += chunk.suppressed;
            rows.fetch_add(chunk.rows, Ordering::Relaxed);
            Ok(())
        })?;
    }
    let (sink, bytes, body_sha256) = writer.finish()?;
    let outcome = Outcome {
        rows: written,
        rows_suppressed: suppressed,
        generalization_level: d.generalization_level(),
        bytes,
        body_sha256,
        sketch,
    };
    Ok((sink, outcome))
}

fn no_reader() -> ExtractError {
    ExtractError::Io(io::Error::other("no connection to the dataset file"))
}

/// What pass two needs to release one chunk; shared by the readers.
struct Release<'a> {
    selection: &'a Selection,
    d: &'a Desensitizer,
    classes: Option<&'a EquivalenceClasses>,
    k: usize,
    encoder: Encoder,
    /// Output columns holding pseudonym tokens.
    tokens: Vec<usize>,
}

/// One chunk as released.
struct Released {
    encoded: Encoded,
    rows: u64,
    suppressed: u64,
    /// The pseudonym tokens written, for the [`TokenSketch`].
    tokens: Vec<u64>,
}

impl Release<'_> {
    /// Desensitizes and encodes the rows of `range`, leaving out those
    /// whose quasi-identifier class is smaller than k.
    fn chunk(&self, conn: &Connection, range: RowidRange) -> Result<Released, ExtractError> {
        let mut done = Released {
            encoded: self.encoder.chunk(),
            rows: 0,
            suppressed: 0,
            tokens: Vec::new(),
        };
        let mut out = Vec::with_capacity(self.d.plan().len());
        let mut scratch = String::new();
        self.selection.for_each_row_in(conn, range, |row| {
            self.d.apply_row(row, &mut out);
            if let Some(c) = self.classes {
                let at = self.d.quasi_identifiers();
                if !c.admits_at(&out, at, self.k, &mut scratch) {
                    done.suppressed += 1;
                    return Ok(());
                }
            }
            self.encoder.row(&mut done.encoded, &out);
            let tokens = self.tokens.iter().filter_map(|&i| parse_token(&out[i]));
            done.tokens.extend(tokens);
            done.rows += 1;
            Ok(())
        })?;
        Ok(done)
    }
}

/// Pass one: counts the classes of the quasi-identifier tuples, picks the
/// generalization level ([`kanon::choose_level`]), sets `d` to it and
/// returns that level's classes (over tuples of the quasi-identifier cells
/// only); `None` when no selected column is a quasi-identifier. The policy's
/// own level is counted first; only if it would suppress too many rows are
/// the coarser levels counted, all at once, in one more pass: the choice is
/// the same as counting every level, and the common case reads the rows
/// once. Memory: the distinct tuples of each level counted.
fn count_classes(
    conns: &mut [Connection],
    span: RowidRange,
    selection: &Selection,
    d: &mut Desensitizer,
    k: usize,
) -> Result<Option<EquivalenceClasses>, ExtractError> {
    if d.quasi_identifiers().is_empty() {
        return Ok(None);
    }
    let (mut levels, total) = count_levels(conns, span, selection, d, 0..=0)?;
    if !kanon::suffices(&levels[0], k, total) {
        let coarser = 1..=kanon::MAX_GENERALIZATION;
        let (coarser, _) = count_levels(conns, span, selection, d, coarser)?;
        levels.extend(coarser);
    }
    let level = kanon::choose_level(&levels, k, total);
    d.set_generalization_level(level);
    Ok(levels.into_iter().nth(level as usize))
}

/// The classes at each of `range`'s generalization levels, in one pass
/// over `span` that reads only the quasi-identifier columns, and the
/// number of rows.
fn count_levels(
    conns: &mut [Connection],
    span: RowidRange,
    selection: &Selection,
    d: &Desensitizer,
    range: std::ops::RangeInclusive<u32>,
) -> Result<(Vec<EquivalenceClasses>, u64), ExtractError> {
    let all: Vec<usize> = (0..d.quasi_identifiers().len()).collect();
    let fresh = || -> Vec<EquivalenceClasses> {
        range
            .clone()
            .map(|_| EquivalenceClasses::new(&all))
            .collect()
    };
    let narrow = selection.narrowed(d.quasi_identifiers());
    let work = |conn: &Connection, rowids| {
        let mut levels = fresh();
        let mut out = Vec::with_capacity(all.len());
        let mut rows = 0u64;
        narrow.for_each_row_in(conn, rowids, |row| {
            rows += 1;
            for (level, classes) in range.clone().zip(levels.iter_mut()) {
                d.quasi_identifiers_at(row, level, &mut out);
                classes.observe(&out);
            }
            Ok(())
        })?;
        Ok((levels, rows))
    };
    let (mut levels, mut total) = (fresh(), 0u64);
    chunks::in_order(conns, span, work, |(chunk, rows)| {
        levels.iter_mut().zip(chunk).for_each(|(l, c)| l.merge(c));
        total += rows;
        Ok(())
    })?;
    Ok((levels, total))
}

/// The recipient fingerprint of an extract: HMAC-SHA256 of the recipient's
/// identity under a key derived from the pseudonymization root for this
/// grant, lowercase hex. Only the appliance can compute it, and it differs
/// per grant, so a leaked manifest links to one recipient and one grant.
pub fn recipient_fingerprint(root: &PseudonymRoot, grant_id: &str, recipient: &str) -> String {
    let root_key = hmac::Key::new(hmac::HMAC_SHA256, root.derivation_key_bytes());
    let mut ctx = hmac::Context::with_key(&root_key);
    ctx.update(FINGERPRINT_LABEL);
    ctx.update(grant_id.as_bytes());
    let grant_key = hmac::Key::new(hmac::HMAC_SHA256, ctx.sign().as_ref());
    hex::encode(hmac::sign(&grant_key, recipient.as_bytes()))
}

#[cfg(test)]
mod tests;
