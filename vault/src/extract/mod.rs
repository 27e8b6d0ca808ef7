//! The extract pipeline: read a dataset file's selected rows under a
//! parameterized filter and a row limit, desensitize every cell, enforce
//! k-anonymity on the quasi-identifiers, and write CSV or JSON Lines into
//! any [`Write`], hashing the body as it goes.
//!
//! k-anonymity in a stream: a streamed body cannot take back rows it has
//! sent, so [`run`] makes two passes over the same ordered, limited query.
//! Pass one counts the equivalence classes of the desensitized
//! quasi-identifier tuples; pass two writes only the rows whose class has
//! at least k members. Memory is bounded by the number of distinct
//! classes, never by the number of rows. Without quasi-identifier columns
//! there is one pass.
//!
//! What this module never does: splice a value into SQL, write a cell that
//! did not pass through the [`Desensitizer`], open a socket, or know about
//! HTTP. The caller supplies the sink (a file, or a channel feeding a
//! response body) and the row counter.

mod format;
mod query;

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use ring::hmac;
use rusqlite::Connection;

use crate::desensitize::kanon::EquivalenceClasses;
use crate::desensitize::Desensitizer;
use crate::keys::PseudonymRoot;

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
    /// Bytes written.
    pub bytes: u64,
    /// SHA-256 of the body, lowercase hex.
    pub body_sha256: String,
}

/// Runs one extract: `selection` from `conn`, desensitized by `d` (whose
/// plan must be for `selection.columns`, in the same order), classes of
/// fewer than `k` rows suppressed, written to `sink` as `format`. Each
/// written row increments `rows`. Returns the sink and the outcome.
pub fn run<W: Write>(
    conn: &Connection,
    selection: &Selection,
    d: &Desensitizer,
    k: usize,
    format: Format,
    sink: W,
    rows: &AtomicU64,
) -> Result<(W, Outcome), ExtractError> {
    let classes = count_classes(conn, selection, d)?;
    let names: Vec<String> = d.plan().iter().map(|p| p.name.clone()).collect();
    let mut writer = format::RowWriter::new(sink, format, &names)?;
    let mut out = Vec::with_capacity(names.len());
    let (mut written, mut suppressed) = (0u64, 0u64);
    selection.for_each_row(conn, |row| {
        d.apply_row(row, &mut out);
        if classes.as_ref().is_some_and(|c| !c.admits(&out, k)) {
            suppressed += 1;
            return Ok(());
        }
        writer.row(&out)?;
        written += 1;
        rows.fetch_add(1, Ordering::Relaxed);
        Ok(())
    })?;
    let (sink, bytes, body_sha256) = writer.finish()?;
    let outcome = Outcome {
        rows: written,
        rows_suppressed: suppressed,
        bytes,
        body_sha256,
    };
    Ok((sink, outcome))
}

/// Pass one: the equivalence classes of the desensitized quasi-identifier
/// tuples, or `None` when no selected column is a quasi-identifier.
fn count_classes(
    conn: &Connection,
    selection: &Selection,
    d: &Desensitizer,
) -> Result<Option<EquivalenceClasses>, ExtractError> {
    if d.quasi_identifiers().is_empty() {
        return Ok(None);
    }
    let mut classes = EquivalenceClasses::new(d.quasi_identifiers());
    let mut out = Vec::new();
    selection.for_each_row(conn, |row| {
        d.apply_row(row, &mut out);
        classes.observe(&out);
        Ok(())
    })?;
    Ok(Some(classes))
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
