//! Cross-checks our roots, proofs and signed checkpoints with independent
//! implementations from crates.io: `tlog_tiles` (a port of Go's
//! golang.org/x/mod/sumdb/tlog, RFC 6962 trees and C2SP tlog-checkpoint) and
//! `signed_note` (C2SP signed-note over ed25519-dalek), both Cloudflare azul.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::cell::RefCell;

use signed_note::{Note, StandardVerifier, VerifierList};
use tlog_tiles::{check_record, check_tree, stored_hashes, tree_hash, HashReader};
use vault::ledger::checkpoint::{Checkpoint, CheckpointSigner};
use vault::ledger::merkle::{leaf_hash, MerkleTree};
use zeroize::Zeroizing;

/// tlog's stored-hash storage, filled with tlog's own algorithm.
struct Storage(RefCell<Vec<tlog_tiles::Hash>>);

impl HashReader for Storage {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        let s = self.0.borrow();
        Ok(indexes.iter().map(|&i| s[i as usize]).collect())
    }
}

fn h(x: [u8; 32]) -> tlog_tiles::Hash {
    tlog_tiles::Hash(x)
}

fn both_trees(n: u64) -> (MerkleTree, Storage) {
    let (mut ours, theirs) = (MerkleTree::new(), Storage(RefCell::new(Vec::new())));
    for i in 0..n {
        let data = format!("{{\"i\":{i},\"route\":\"/v1/x\"}}");
        ours.push(leaf_hash(data.as_bytes()));
        let add = stored_hashes(i, data.as_bytes(), &theirs).unwrap();
        theirs.0.borrow_mut().extend(add);
    }
    (ours, theirs)
}

#[test]
fn ledger_roots_match_tlog_tiles_for_every_size_up_to_300() {
    let (ours, theirs) = both_trees(300);
    for size in 0..=300 {
        assert_eq!(
            h(ours.root(size).unwrap()),
            tree_hash(size, &theirs).unwrap(),
            "size {size}"
        );
    }
}

#[test]
fn ledger_our_proofs_pass_tlog_tiles_checkers() {
    let (ours, _) = both_trees(100);
    for size in 1..=100u64 {
        let root = h(ours.root(size).unwrap());
        for index in (0..size).step_by(7).chain([size - 1]) {
            let proof: Vec<_> = ours
                .inclusion_proof(index, size)
                .unwrap()
                .into_iter()
                .map(h)
                .collect();
            check_record(&proof, size, root, index, h(ours.leaf(index).unwrap())).unwrap();
        }
        for first in (1..=size).step_by(5).chain([size]) {
            let proof: Vec<_> = ours
                .consistency_proof(first, size)
                .unwrap()
                .into_iter()
                .map(h)
                .collect();
            check_tree(&proof, size, root, first, h(ours.root(first).unwrap())).unwrap();
        }
    }
}

#[test]
fn ledger_our_notes_verify_with_signed_note_and_parse_with_tlog_tiles() {
    let origin = "zonevault/appliance-7";
    let signer = CheckpointSigner::new(origin, &Zeroizing::new([42u8; 32])).unwrap();
    let (ours, _) = both_trees(33);
    let cp = Checkpoint {
        origin: origin.into(),
        size: 33,
        root: ours.root(33).unwrap(),
    };
    let text = signer.sign(&cp);

    let verifier = StandardVerifier::new(&signer.verifier_key()).unwrap();
    let note = Note::from_bytes(text.as_bytes()).unwrap();
    let (verified, unverified) = note
        .verify(&VerifierList::new(vec![Box::new(verifier)]))
        .unwrap();
    assert_eq!((verified.len(), unverified.len()), (1, 0));
    assert_eq!(verified[0].name(), origin);

    let parsed = tlog_tiles::Checkpoint::from_bytes(note.text()).unwrap();
    assert_eq!(
        (parsed.origin(), parsed.size(), parsed.hash().0),
        (origin, 33, cp.root)
    );

    let forged = text.replacen("\n33\n", "\n34\n", 1);
    let verifier = StandardVerifier::new(&signer.verifier_key()).unwrap();
    let note = Note::from_bytes(forged.as_bytes()).unwrap();
    assert!(note
        .verify(&VerifierList::new(vec![Box::new(verifier)]))
        .is_err());
}
