//! End to end: the ledger's checkpoints and proofs, as served over mTLS,
//! verify with our verifier and with independent crates (`tlog_tiles`,
//! `signed_note`); `zonevault ledger verify` works online and offline; a
//! flipped byte in `entries.log` stops `serve` and `ledger verify`, both
//! naming the same entry. Real binary, real swtpm, real TLS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::process::Output;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use e2e::appliance::{s, zonevault, Appliance};
use serde_json::Value;
use signed_note::{Note, StandardVerifier, VerifierList};
use tlog_tiles::{check_record, check_tree, stored_hashes, tree_hash, HashReader};
use vault::ledger::merkle::{leaf_hash, verify_consistency, verify_inclusion, MerkleTree};
use vault::ledger::store::RECORD_OVERHEAD;

fn running() -> Appliance {
    let mut app = Appliance::new();
    app.init("0,2,4,7");
    app.start_server().expect("server starts");
    app
}

fn get(app: &Appliance, path: &str) -> String {
    let reply = app.curl_full("regulator", "GET", path, None);
    assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    reply.body
}

fn traffic(app: &Appliance, n: usize) {
    for i in 0..n {
        let role = ["operator", "analyst", "provider"][i % 3];
        assert_eq!(app.curl(role, "GET", "/v1/health", None).0, 200);
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The checkpoint body's size and root.
fn size_and_root(note: &str) -> (u64, [u8; 32]) {
    let mut lines = note.lines().skip(1);
    let size = lines.next().unwrap().parse().unwrap();
    let root = B64
        .decode(lines.next().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    (size, root)
}

fn decode_hashes(proof: &Value) -> Vec<[u8; 32]> {
    proof["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| B64.decode(h.as_str().unwrap()).unwrap().try_into().unwrap())
        .collect()
}

/// tlog_tiles' stored-hash storage, filled by its own algorithm.
struct Storage(RefCell<Vec<tlog_tiles::Hash>>);

impl HashReader for Storage {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        let s = self.0.borrow();
        Ok(indexes.iter().map(|&i| s[i as usize]).collect())
    }
}

#[test]
fn ledger_proofs_and_checkpoints_verify_with_ours_and_with_independent_crates() {
    let app = running();
    traffic(&app, 12);
    let key = get(&app, "/v1/ledger/key").trim().to_owned();
    let older = get(&app, "/v1/ledger/checkpoint");
    traffic(&app, 9);
    let newer = get(&app, "/v1/ledger/checkpoint");
    let (m, old_root) = size_and_root(&older);
    let (n, root) = size_and_root(&newer);
    assert!(m >= 12 && n >= m + 9, "{m} {n}");

    // signed_note verifies both notes; tlog_tiles parses the checkpoint body.
    for note in [&older, &newer] {
        let verifiers = VerifierList::new(vec![Box::new(StandardVerifier::new(&key).unwrap())]);
        let parsed = Note::from_bytes(note.as_bytes()).unwrap();
        let (verified, _) = parsed.verify(&verifiers).unwrap();
        assert_eq!(verified.len(), 1);
        let cp = tlog_tiles::Checkpoint::from_bytes(parsed.text()).unwrap();
        assert_eq!(cp.origin(), verified[0].name());
        assert!(cp.origin().starts_with("zonevault/"));
    }
    let forged = newer.replacen(&format!("\n{n}\n"), &format!("\n{}\n", n + 1), 1);
    let verifiers = VerifierList::new(vec![Box::new(StandardVerifier::new(&key).unwrap())]);
    assert!(Note::from_bytes(forged.as_bytes())
        .unwrap()
        .verify(&verifiers)
        .is_err());

    // Both trees recomputed from the served entries reproduce both roots.
    let entries = get(&app, &format!("/v1/ledger/entries?start=0&end={n}"));
    let (mut ours, theirs) = (MerkleTree::new(), Storage(RefCell::new(Vec::new())));
    for (i, line) in entries.lines().enumerate() {
        ours.push(leaf_hash(line.as_bytes()));
        let add = stored_hashes(i as u64, line.as_bytes(), &theirs).unwrap();
        theirs.0.borrow_mut().extend(add);
    }
    assert_eq!(ours.size(), n);
    for (size, want) in [(m, old_root), (n, root)] {
        assert_eq!(ours.root(size).unwrap(), want);
        assert_eq!(tree_hash(size, &theirs).unwrap().0, want);
    }

    // Served inclusion proofs pass both checkers.
    let lines: Vec<&str> = entries.lines().collect();
    for index in [0, 1, m / 2, m - 1, m, n - 1] {
        let path = format!("/v1/ledger/proof/inclusion?index={index}&tree_size={n}");
        let proof: Value = serde_json::from_str(&get(&app, &path)).unwrap();
        let hashes = decode_hashes(&proof);
        let leaf = leaf_hash(lines[index as usize].as_bytes());
        assert!(verify_inclusion(index, n, &leaf, &hashes, &root), "{index}");
        let theirs: Vec<_> = hashes.iter().map(|h| tlog_tiles::Hash(*h)).collect();
        check_record(
            &theirs,
            n,
            tlog_tiles::Hash(root),
            index,
            tlog_tiles::Hash(leaf),
        )
        .unwrap();
        let wrong = leaf_hash(b"{}");
        assert!(!verify_inclusion(index, n, &wrong, &hashes, &root));
    }

    // The served consistency proof passes both checkers.
    let path = format!("/v1/ledger/proof/consistency?first={m}&second={n}");
    let proof: Value = serde_json::from_str(&get(&app, &path)).unwrap();
    let hashes = decode_hashes(&proof);
    assert!(verify_consistency(m, n, &old_root, &root, &hashes));
    let theirs: Vec<_> = hashes.iter().map(|h| tlog_tiles::Hash(*h)).collect();
    check_tree(
        &theirs,
        n,
        tlog_tiles::Hash(root),
        m,
        tlog_tiles::Hash(old_root),
    )
    .unwrap();

    // `zonevault ledger verify`, offline on the export and the two notes.
    std::fs::write(app.path("entries.jsonl"), &entries).unwrap();
    std::fs::write(app.path("older.note"), &older).unwrap();
    std::fs::write(app.path("newer.note"), &newer).unwrap();
    let offline = |entries: &str| {
        zonevault(&[
            "ledger",
            "verify",
            "--entries",
            entries,
            "--checkpoint",
            s(&app.path("newer.note")),
            "--previous",
            s(&app.path("older.note")),
            "--key",
            &key,
        ])
    };
    let out = offline(s(&app.path("entries.jsonl")));
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("size:   {n}")),
        "{}",
        text(&out)
    );
    let altered = entries.replacen("/v1/health", "/v1/healtH", 1);
    std::fs::write(app.path("altered.jsonl"), altered).unwrap();
    let out = offline(s(&app.path("altered.jsonl")));
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("differs from the newer checkpoint"),
        "{}",
        text(&out)
    );
}

#[test]
fn ledger_verify_online_pins_the_key_and_checks_the_previous_checkpoint() {
    let app = running();
    traffic(&app, 5);
    let key = get(&app, "/v1/ledger/key").trim().to_owned();
    let saved = app.path("regulator.checkpoint");
    let verify = |extra: &[&str]| {
        let mut args = vec!["ledger", "verify", "--save", s(&saved)];
        args.extend_from_slice(extra);
        app.zonevault_as("regulator", &args)
    };
    let out = verify(&[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("not pinned"), "warns: {}", text(&out));
    let first = std::fs::read_to_string(&saved).unwrap();
    traffic(&app, 5);
    std::fs::copy(&saved, app.path("previous")).unwrap();
    let out = verify(&["--key", &key, "--previous", s(&app.path("previous"))]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(!t.contains("not pinned"), "{t}");
    assert!(
        t.contains(&format!(
            "extends the previous checkpoint of size {}",
            size_and_root(&first).0
        )),
        "{t}"
    );
    assert!(t.trim_end().ends_with("OK"), "{t}");

    // Someone else's key: the checkpoint does not verify.
    let other = "zonevault/other+00000000+AQ".to_owned() + &"A".repeat(43) + "=";
    let out = verify(&["--key", &other]);
    assert!(!out.status.success(), "{}", text(&out));

    // Flags override the environment; a missing setting is named.
    let out = std::process::Command::new(e2e::appliance::zonevault_bin())
        .args(["ledger", "verify"])
        .env_remove("ZONEVAULT_ADDR")
        .output()
        .unwrap();
    assert!(
        text(&out).contains("ZONEVAULT_ADDR is not set; use --addr"),
        "{}",
        text(&out)
    );
    let out = app.zonevault_as(
        "analyst",
        &[
            "health",
            "--client-cert",
            s(&app.path("pki/operator/cert.pem")),
            "--client-key",
            s(&app.path("pki/operator/key.pem")),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = app.zonevault_as("analyst", &["ledger", "checkpoint"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("403"), "{}", text(&out));
    assert!(text(&out).contains("not allowed"), "{}", text(&out));
}

/// Offset of record `index`'s entry bytes in `entries.log`.
fn entry_offset(log: &[u8], index: usize) -> usize {
    let mut offset = 0;
    for _ in 0..index {
        let len = u32::from_be_bytes(log[offset..offset + 4].try_into().unwrap()) as usize;
        offset += len + RECORD_OVERHEAD;
    }
    offset + 4
}

#[test]
fn ledger_flipped_byte_is_named_by_serve_and_by_verify() {
    let mut app = running();
    traffic(&app, 10);
    let key = get(&app, "/v1/ledger/key").trim().to_owned();
    app.stop_server(false);
    let data = app.data_dir();
    let verify = || zonevault(&["ledger", "verify", "--data-dir", s(&data), "--key", &key]);
    let out = verify();
    assert!(out.status.success(), "{}", text(&out));

    let log_path = data.join("ledger/entries.log");
    let mut log = std::fs::read(&log_path).unwrap();
    let at = entry_offset(&log, 3) + 20;
    log[at] ^= 0x01;
    std::fs::write(&log_path, &log).unwrap();

    let out = app
        .start_server()
        .expect_err("serve must refuse a tampered ledger");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("entry 3 "), "serve names the entry: {err}");
    let out = verify();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("entry 3 does not match"),
        "{}",
        text(&out)
    );
}
