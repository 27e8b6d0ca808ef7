//! Offline verification of exported ledger entries against signed checkpoints
//! (used by `zonevault ledger verify`). Needs no TPM and no server.
//!
//! Given the entries' leaf bytes, the newer signed checkpoint, optionally an
//! older one, and the verifier key: checks both signatures, recomputes the
//! root at each checkpoint size, checks the older tree is a prefix of the
//! newer (and its consistency proof verifies), and names the first bad entry
//! when the entries' own stored hashes are available (from `entries.log`).

use super::checkpoint::{Checkpoint, NoteError, NoteVerifier};
use super::merkle::{leaf_hash, verify_consistency, Hash, MerkleTree};
use super::store::RECORD_OVERHEAD;

/// Why verification failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The verifier key string is unusable.
    #[error("verifier key: {0}")]
    Key(NoteError),
    /// A checkpoint note does not parse or verify.
    #[error("{which} checkpoint: {source}")]
    Note {
        /// `newer` or `older`.
        which: &'static str,
        /// Why.
        source: NoteError,
    },
    /// The older checkpoint is larger than the newer.
    #[error("older checkpoint size {older} exceeds newer size {newer}")]
    SizesOutOfOrder {
        /// Older size.
        older: u64,
        /// Newer size.
        newer: u64,
    },
    /// Fewer entries than the newer checkpoint covers.
    #[error("{have} entries given but the checkpoint covers {need}")]
    TooFewEntries {
        /// Entries given.
        have: u64,
        /// Checkpoint size.
        need: u64,
    },
    /// An entry's bytes do not match its stored leaf hash.
    #[error("entry {index} does not match its stored leaf hash")]
    EntryAltered {
        /// The first such entry.
        index: u64,
    },
    /// The recomputed root differs from a checkpoint's root.
    #[error("root over {size} entries differs from the {which} checkpoint; the first altered entry is in [{from}, {to})")]
    RootMismatch {
        /// `newer` or `older`.
        which: &'static str,
        /// The checkpoint size.
        size: u64,
        /// Start of the range holding the first altered entry.
        from: u64,
        /// End of that range.
        to: u64,
    },
    /// The consistency proof between the checkpoints does not verify.
    #[error("checkpoints of sizes {older} and {newer} are not consistent")]
    Inconsistent {
        /// Older size.
        older: u64,
        /// Newer size.
        newer: u64,
    },
    /// An `entries.log` file is malformed at a record.
    #[error("entries.log record {index} is malformed")]
    MalformedLog {
        /// The record index.
        index: u64,
    },
}

/// Proof that a ledger export verified. Only [`verify_export`] constructs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedLedger {
    newer: Checkpoint,
    older: Option<Checkpoint>,
}

impl VerifiedLedger {
    /// The newer checkpoint, whose root the entries reproduce.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.newer
    }

    /// The older checkpoint, shown consistent with the newer one.
    pub fn older(&self) -> Option<&Checkpoint> {
        self.older.as_ref()
    }

    /// Entries covered.
    pub fn size(&self) -> u64 {
        self.newer.size
    }
}

/// Splits JSON lines (as served by the entries endpoint) into leaf bytes.
pub fn split_json_lines(jsonl: &[u8]) -> Vec<&[u8]> {
    let body = jsonl.strip_suffix(b"\n").unwrap_or(jsonl);
    if body.is_empty() {
        return Vec::new();
    }
    body.split(|&b| b == b'\n').collect()
}

/// Parses an `entries.log` file into entry bytes and their stored leaf
/// hashes. The log ends at its end or where only zeros follow (space the
/// writer preallocated; entries are never empty).
pub fn parse_entries_log(log: &[u8]) -> Result<Vec<(&[u8], Hash)>, VerifyError> {
    let (mut out, mut rest) = (Vec::new(), log);
    while !rest.is_empty() && rest.iter().any(|&b| b != 0) {
        let index = out.len() as u64;
        let bad = VerifyError::MalformedLog { index };
        let len = rest.get(..4).ok_or(bad.clone())?;
        let n = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if n == 0 {
            return Err(bad);
        }
        let rec = rest.get(..n + RECORD_OVERHEAD).ok_or(bad.clone())?;
        let hash = Hash::try_from(&rec[4 + n..]).map_err(|_| bad)?;
        out.push((&rec[4..4 + n], hash));
        rest = &rest[n + RECORD_OVERHEAD..];
    }
    Ok(out)
}

/// The verified entries export.
pub struct Export<'a> {
    /// Leaf bytes of entries `0..` (at least the newer checkpoint's size).
    pub entries: Vec<&'a [u8]>,
    /// Stored leaf hashes for the same entries, when verifying an `entries.log`.
    pub stored_hashes: Option<Vec<Hash>>,
}

/// Verifies `export` against the `newer` signed checkpoint and optionally an `older` one.
pub fn verify_export(
    export: &Export<'_>,
    newer: &str,
    older: Option<&str>,
    verifier_key: &str,
) -> Result<VerifiedLedger, VerifyError> {
    let verifier = NoteVerifier::parse(verifier_key).map_err(VerifyError::Key)?;
    let newer = verifier.verify(newer).map_err(|source| VerifyError::Note {
        which: "newer",
        source,
    })?;
    let older = older
        .map(|n| {
            verifier.verify(n).map_err(|source| VerifyError::Note {
                which: "older",
                source,
            })
        })
        .transpose()?;
    if let Some(o) = &older {
        if o.size > newer.size {
            return Err(VerifyError::SizesOutOfOrder {
                older: o.size,
                newer: newer.size,
            });
        }
    }
    let tree = build_tree(export, newer.size)?;
    let older_size = older.as_ref().map_or(0, |o| o.size);
    if tree.root(newer.size).ok() != Some(newer.root) {
        let older_ok = older
            .as_ref()
            .is_none_or(|o| tree.root(o.size).ok() == Some(o.root));
        let (from, to) = if older_ok {
            (older_size, newer.size)
        } else {
            (0, older_size)
        };
        return Err(VerifyError::RootMismatch {
            which: "newer",
            size: newer.size,
            from,
            to,
        });
    }
    if let Some(o) = &older {
        check_older(&tree, o, &newer)?;
    }
    Ok(VerifiedLedger { newer, older })
}

fn build_tree(export: &Export<'_>, size: u64) -> Result<MerkleTree, VerifyError> {
    let have = export.entries.len() as u64;
    if have < size {
        return Err(VerifyError::TooFewEntries { have, need: size });
    }
    let mut tree = MerkleTree::new();
    for (i, entry) in export.entries.iter().take(size as usize).enumerate() {
        let hash = leaf_hash(entry);
        let stored = export.stored_hashes.as_ref().map(|s| s.get(i));
        if stored.is_some_and(|s| s != Some(&hash)) {
            return Err(VerifyError::EntryAltered { index: i as u64 });
        }
        tree.push(hash);
    }
    Ok(tree)
}

/// The older checkpoint's root must be reproduced and provably a prefix.
fn check_older(
    tree: &MerkleTree,
    older: &Checkpoint,
    newer: &Checkpoint,
) -> Result<(), VerifyError> {
    if tree.root(older.size).ok() != Some(older.root) {
        return Err(VerifyError::RootMismatch {
            which: "older",
            size: older.size,
            from: 0,
            to: older.size,
        });
    }
    let inconsistent = VerifyError::Inconsistent {
        older: older.size,
        newer: newer.size,
    };
    let proof = tree
        .consistency_proof(older.size, newer.size)
        .map_err(|_| inconsistent.clone())?;
    if !verify_consistency(older.size, newer.size, &older.root, &newer.root, &proof) {
        return Err(inconsistent);
    }
    Ok(())
}

/// Online check: two signed checkpoints and the server's consistency proof.
pub fn verify_checkpoint_consistency(
    verifier_key: &str,
    older: &str,
    newer: &str,
    proof: &[Hash],
) -> Result<(Checkpoint, Checkpoint), VerifyError> {
    let verifier = NoteVerifier::parse(verifier_key).map_err(VerifyError::Key)?;
    let older = verifier.verify(older).map_err(|source| VerifyError::Note {
        which: "older",
        source,
    })?;
    let newer = verifier.verify(newer).map_err(|source| VerifyError::Note {
        which: "newer",
        source,
    })?;
    if !verify_consistency(older.size, newer.size, &older.root, &newer.root, proof) {
        return Err(VerifyError::Inconsistent {
            older: older.size,
            newer: newer.size,
        });
    }
    Ok((older, newer))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::checkpoint::CheckpointSigner;
    use super::super::store::encode_record;
    use super::*;
    use zeroize::Zeroizing;

    fn setup(n: usize) -> (Vec<Vec<u8>>, CheckpointSigner, MerkleTree) {
        let entries: Vec<Vec<u8>> = (0..n)
            .map(|i| format!("{{\"i\":{i}}}").into_bytes())
            .collect();
        let signer = CheckpointSigner::new("zonevault/t", &Zeroizing::new([3; 32])).unwrap();
        let mut tree = MerkleTree::new();
        entries.iter().for_each(|e| tree.push(leaf_hash(e)));
        (entries, signer, tree)
    }

    fn note(s: &CheckpointSigner, t: &MerkleTree, size: u64) -> String {
        s.sign(&Checkpoint {
            origin: s.name().into(),
            size,
            root: t.root(size).unwrap(),
        })
    }

    #[test]
    fn export_with_two_checkpoints_verifies() {
        let (entries, s, t) = setup(20);
        let jsonl: Vec<u8> = entries
            .iter()
            .flat_map(|e| e.iter().copied().chain([b'\n']))
            .collect();
        let export = Export {
            entries: split_json_lines(&jsonl),
            stored_hashes: None,
        };
        let v = verify_export(
            &export,
            &note(&s, &t, 20),
            Some(&note(&s, &t, 7)),
            &s.verifier_key(),
        )
        .unwrap();
        assert_eq!((v.size(), v.older().unwrap().size), (20, 7));
        let proof = t.consistency_proof(7, 20).unwrap();
        assert!(verify_checkpoint_consistency(
            &s.verifier_key(),
            &note(&s, &t, 7),
            &note(&s, &t, 20),
            &proof
        )
        .is_ok());
    }

    #[test]
    fn altered_entry_is_named_from_the_log_hashes() {
        let (entries, s, t) = setup(10);
        let mut log = Vec::new();
        entries.iter().for_each(|e| {
            encode_record(e, &mut log);
        });
        let offset_of_4 = entries[..4]
            .iter()
            .map(|e| e.len() + RECORD_OVERHEAD)
            .sum::<usize>();
        log[offset_of_4 + 5] ^= 0x01;
        let parsed = parse_entries_log(&log).unwrap();
        let export = Export {
            entries: parsed.iter().map(|(e, _)| *e).collect(),
            stored_hashes: Some(parsed.iter().map(|(_, h)| *h).collect()),
        };
        let err = verify_export(&export, &note(&s, &t, 10), None, &s.verifier_key()).unwrap_err();
        assert_eq!(err, VerifyError::EntryAltered { index: 4 });
        let plain = Export {
            entries: export.entries.clone(),
            stored_hashes: None,
        };
        let err = verify_export(
            &plain,
            &note(&s, &t, 10),
            Some(&note(&s, &t, 6)),
            &s.verifier_key(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            VerifyError::RootMismatch {
                which: "newer",
                size: 10,
                from: 0,
                to: 6
            }
        );
    }
}
