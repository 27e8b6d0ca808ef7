//! Durability, group commit, crash recovery and tamper detection of the
//! on-disk ledger, with failures injected through `LogFile` (into
//! `entries.log` or `entries.idx`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::fs::{self, File};
use std::io;
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use vault::ledger::merkle::{leaf_hash, verify_inclusion};
use vault::ledger::record_index::INDEX_RECORD_LEN;
use vault::ledger::store::{LedgerPaths, LogFile, PREALLOCATE, RECORD_OVERHEAD};
use vault::ledger::verify::{parse_entries_log, verify_export, Export};
use vault::ledger::{
    Decision, EntryKind, Ledger, LedgerEntry, LedgerError, LedgerFile, LedgerOptions,
};
use zeroize::Zeroizing;

const ID: &str = "appliance-test";

fn seed() -> Zeroizing<[u8; 32]> {
    Zeroizing::new([9u8; 32])
}

fn every_batch() -> LedgerOptions {
    LedgerOptions {
        checkpoint_interval: Duration::ZERO,
    }
}

fn rarely() -> LedgerOptions {
    LedgerOptions {
        checkpoint_interval: Duration::from_secs(3600),
    }
}

fn tempdir() -> tempfile::TempDir {
    // Under the target dir, on a real disk: tmpfs would make fsync free.
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

fn open(dir: &Path, options: LedgerOptions) -> Result<Ledger, LedgerError> {
    Ledger::open(dir, ID, seed(), options).map(|(l, _)| l)
}

fn entry(i: u64) -> LedgerEntry {
    let mut e = LedgerEntry::new(
        EntryKind::Request,
        "spiffe://td/operator/org/p",
        "GET",
        "/v1/health",
        Decision::Allow,
    );
    e.resources = vec![format!("res-{i}")];
    e.status = Some(200);
    e
}

fn append_n(ledger: &Ledger, n: u64) {
    for i in 0..n {
        ledger.append(&entry(i)).unwrap();
    }
}

fn record_offset(dir: &Path, index: usize) -> usize {
    let log = fs::read(LedgerPaths::new(dir).entries).unwrap();
    parse_entries_log(&log).unwrap()[..index]
        .iter()
        .map(|(e, _)| e.len() + RECORD_OVERHEAD)
        .sum()
}

fn edit_log(dir: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let path = LedgerPaths::new(dir).entries;
    let mut bytes = fs::read(&path).unwrap();
    f(&mut bytes);
    fs::write(&path, bytes).unwrap();
}

#[test]
fn ledger_reopen_after_append_verifies_against_the_checkpoint() {
    let dir = tempdir();
    let ledger = open(dir.path(), rarely()).unwrap();
    append_n(&ledger, 10);
    let note = ledger.checkpoint().unwrap();
    let entries = ledger.entries(0, 10).unwrap();
    let vkey = ledger.verifier_key();
    drop(ledger);

    let (ledger, report) = Ledger::open(dir.path(), ID, seed(), rarely()).unwrap();
    assert_eq!(
        (
            report.entries,
            report.verified_checkpoint_size,
            report.torn_tail
        ),
        (10, Some(10), None)
    );
    assert_eq!(ledger.entries(0, 10).unwrap(), entries);
    assert_eq!(ledger.checkpoint().unwrap(), note);
    assert_eq!(ledger.verifier_key(), vkey);
    let export = Export {
        entries: entries.iter().map(Vec::as_slice).collect(),
        stored_hashes: None,
    };
    assert_eq!(
        verify_export(&export, &note, None, &vkey).unwrap().size(),
        10
    );
    assert_eq!(
        LedgerEntry::from_leaf_bytes(&ledger.entry(3).unwrap())
            .unwrap()
            .resources,
        ["res-3"]
    );
}

#[test]
fn ledger_torn_tail_is_cut_off_and_earlier_entries_remain() {
    let dir = tempdir();
    let ledger = open(dir.path(), rarely()).unwrap();
    append_n(&ledger, 5); // the checkpoint covers only the first batch
    let first_four = ledger.entries(0, 4).unwrap();
    drop(ledger);
    edit_log(dir.path(), |b| b.truncate(b.len() - 10));

    let (ledger, report) = Ledger::open(dir.path(), ID, seed(), rarely()).unwrap();
    let torn = report.torn_tail.unwrap();
    assert_eq!((report.entries, torn.index), (4, 4));
    assert_eq!(torn.offset as usize, record_offset(dir.path(), 4));
    assert_eq!(ledger.entries(0, 4).unwrap(), first_four);
    assert_eq!(ledger.append(&entry(99)).unwrap(), 4);
    drop(ledger);
    let (_, report) = Ledger::open(dir.path(), ID, seed(), rarely()).unwrap();
    assert_eq!((report.entries, report.torn_tail), (5, None));
}

#[test]
fn ledger_preallocated_zeros_left_by_a_crash_are_not_entries() {
    let dir = tempdir();
    let path = LedgerPaths::new(dir.path()).entries;
    let ledger = open(dir.path(), rarely()).unwrap();
    append_n(&ledger, 3);
    assert_eq!(fs::metadata(&path).unwrap().len(), PREALLOCATE);
    // A crash: the writer never trims, the zeros stay on disk.
    std::mem::forget(ledger);
    let log = fs::read(&path).unwrap();
    assert_eq!(parse_entries_log(&log).unwrap().len(), 3);

    let (ledger, report) = Ledger::open(dir.path(), ID, seed(), rarely()).unwrap();
    assert_eq!((report.entries, report.torn_tail), (3, None));
    assert_eq!(ledger.append(&entry(3)).unwrap(), 3);
    drop(ledger);
    // A clean close leaves exactly the records.
    let log = fs::read(&path).unwrap();
    let records = parse_entries_log(&log).unwrap();
    let framed: usize = records.iter().map(|(e, _)| e.len() + RECORD_OVERHEAD).sum();
    assert_eq!((records.len(), log.len()), (4, framed));
}

#[test]
fn ledger_flipped_byte_in_the_middle_is_tampered_naming_the_entry() {
    let dir = tempdir();
    append_n(&open(dir.path(), rarely()).unwrap(), 10);
    let at = record_offset(dir.path(), 3) + 4 + 10;
    edit_log(dir.path(), |b| b[at] ^= 0x20);
    match open(dir.path(), rarely()) {
        Err(LedgerError::Tampered { index, .. }) => assert_eq!(index, 3),
        other => panic!("expected Tampered at 3, got {:?}", other.err()),
    }
}

#[test]
fn ledger_rewritten_entry_with_recomputed_hash_is_caught_by_the_checkpoints() {
    let dir = tempdir();
    append_n(&open(dir.path(), every_batch()).unwrap(), 10);
    let start = record_offset(dir.path(), 6);
    edit_log(dir.path(), |b| {
        let n = u32::from_be_bytes(b[start..start + 4].try_into().unwrap()) as usize;
        b[start + 4 + 12] ^= 0x01;
        let hash = leaf_hash(&b[start + 4..start + 4 + n]);
        b[start + 4 + n..start + 4 + n + 32].copy_from_slice(&hash);
    });
    match open(dir.path(), every_batch()) {
        Err(LedgerError::Tampered { index, reason }) => {
            assert_eq!(index, 6, "{reason}");
            assert!(reason.contains("[6, 7)"), "{reason}");
        }
        other => panic!("expected Tampered, got {:?}", other.err()),
    }
}

#[test]
fn ledger_dropped_entries_and_forged_checkpoints_refuse_to_open() {
    let dir = tempdir();
    let ledger = open(dir.path(), rarely()).unwrap();
    append_n(&ledger, 4);
    ledger.checkpoint().unwrap();
    drop(ledger);
    let cut = record_offset(dir.path(), 3);
    edit_log(dir.path(), |b| b.truncate(cut));
    assert!(matches!(
        open(dir.path(), rarely()),
        Err(LedgerError::Tampered { index: 3, .. })
    ));

    let path = LedgerPaths::new(dir.path()).checkpoint;
    let note = fs::read_to_string(&path)
        .unwrap()
        .replacen("\n4\n", "\n3\n", 1);
    fs::write(&path, note).unwrap();
    assert!(matches!(
        open(dir.path(), rarely()),
        Err(LedgerError::BadCheckpoint { .. })
    ));
}

#[test]
fn ledger_concurrent_appends_share_fsyncs() {
    let dir = tempdir();
    let ledger = Arc::new(open(dir.path(), LedgerOptions::default()).unwrap());
    let threads: Vec<_> = (0..16u64)
        .map(|t| {
            let ledger = Arc::clone(&ledger);
            std::thread::spawn(move || {
                (0..200)
                    .map(|i| (ledger.append(&entry(t * 1000 + i)).unwrap(), t * 1000 + i))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut got: Vec<(u64, u64)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    got.sort();
    assert_eq!(ledger.size(), 3200);
    assert!(
        got.iter().map(|g| g.0).eq(0..3200),
        "indexes are unique and dense"
    );
    let fsyncs = ledger.fsync_count();
    assert!(fsyncs < 3200 / 2, "{fsyncs} fsyncs for 3200 appends");
    eprintln!("{fsyncs} fsyncs for 3200 appends");
    let hist = ledger.fsync_histogram();
    assert_eq!(
        (hist.count, hist.counts.iter().sum::<u64>()),
        (fsyncs, fsyncs)
    );
    // One batch per fsync; together they hold every entry.
    let batches = ledger.batch_histogram();
    assert_eq!((batches.count, batches.sum), (fsyncs, 3200.0));
    assert!(
        batches.counts[1..].iter().sum::<u64>() > 0,
        "some batch held two or more"
    );
    let root = ledger.root(3200).unwrap();
    for &(index, tag) in got.iter().step_by(97) {
        let bytes = ledger.entry(index).unwrap();
        assert_eq!(
            LedgerEntry::from_leaf_bytes(&bytes).unwrap().resources,
            [format!("res-{tag}")]
        );
        let proof = ledger.inclusion_proof(index, 3200).unwrap();
        assert!(verify_inclusion(
            index,
            3200,
            &leaf_hash(&bytes),
            &proof,
            &root
        ));
    }
    drop(Arc::try_unwrap(ledger).ok().unwrap());
    let (_, report) = Ledger::open(dir.path(), ID, seed(), rarely()).unwrap();
    assert_eq!(report.entries, 3200);
}

/// Lets `budget` bytes of records through, then fails writes (after
/// writing part of the buffer, like a full disk) and optionally syncs.
/// Preallocation is not counted against the budget.
struct FailingLog {
    inner: File,
    budget: usize,
    fail_sync: bool,
}

impl LogFile for FailingLog {
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        if buf.len() <= self.budget {
            self.budget -= buf.len();
            return self.inner.write_all_at(buf, offset);
        }
        self.inner.write_all_at(&buf[..self.budget], offset)?;
        self.budget = 0;
        Err(io::Error::new(
            io::ErrorKind::StorageFull,
            "injected: no space left",
        ))
    }
    fn sync_data(&mut self) -> io::Result<()> {
        if self.fail_sync {
            return Err(io::Error::other("injected: fsync failed"));
        }
        self.inner.sync_data()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn preallocate(&mut self, from: u64, to: u64) -> io::Result<()> {
        self.inner.preallocate(from, to)
    }
}

/// A ledger whose writes to `failing` go through a [`FailingLog`].
fn open_failing_file(dir: &Path, failing: LedgerFile, budget: usize, fail_sync: bool) -> Ledger {
    let wrap = move |file, inner| -> Box<dyn LogFile> {
        if file != failing {
            return Box::new(inner);
        }
        Box::new(FailingLog {
            inner,
            budget,
            fail_sync,
        })
    };
    Ledger::open_with(dir, ID, seed(), rarely(), wrap)
        .unwrap()
        .0
}

fn open_failing(dir: &Path, budget: usize, fail_sync: bool) -> Ledger {
    open_failing_file(dir, LedgerFile::Entries, budget, fail_sync)
}

#[test]
fn ledger_index_write_error_fails_the_append_and_leaves_the_log_untouched() {
    let dir = tempdir();
    let one = INDEX_RECORD_LEN as usize;
    let ledger = open_failing_file(dir.path(), LedgerFile::Index, 2 * one + one / 2, false);
    append_n(&ledger, 2);
    let log_before = fs::read(LedgerPaths::new(dir.path()).entries).unwrap();
    let err = ledger.append(&entry(2)).unwrap_err();
    let LedgerError::Io { path, source } = &err else {
        panic!("expected an I/O error, got {err:?}");
    };
    assert_eq!(path, &LedgerPaths::new(dir.path()).index);
    assert_eq!(source.kind(), io::ErrorKind::StorageFull);
    assert!(err.to_string().contains("entries.idx"), "{err}");
    assert!(ledger.is_failed());
    assert!(matches!(ledger.append(&entry(3)), Err(LedgerError::Failed)));
    assert_eq!(ledger.size(), 2);
    drop(ledger);
    let log_after = fs::read(LedgerPaths::new(dir.path()).entries).unwrap();
    let records = |log: &[u8]| parse_entries_log(log).unwrap().len();
    assert_eq!((records(&log_before), records(&log_after)), (2, 2));
    let (ledger, report) = Ledger::open(dir.path(), ID, seed(), rarely()).unwrap();
    assert_eq!(
        (report.entries, report.torn_tail, report.index_repaired_from),
        (2, None, Some(2))
    );
    assert_eq!(ledger.append(&entry(4)).unwrap(), 2);
    let appended = LedgerEntry::from_leaf_bytes(&ledger.entry(2).unwrap()).unwrap();
    assert_eq!(appended.resources, ["res-4"]);
}

#[test]
fn ledger_injected_write_error_fails_the_append_and_every_later_one() {
    let dir = tempdir();
    let one = entry(0).to_leaf_bytes().unwrap().len() + RECORD_OVERHEAD;
    let ledger = open_failing(dir.path(), 2 * one + one / 2, false);
    append_n(&ledger, 2);
    assert!(matches!(
        ledger.append(&entry(2)),
        Err(LedgerError::Io { .. })
    ));
    assert!(ledger.is_failed());
    assert!(matches!(ledger.append(&entry(3)), Err(LedgerError::Failed)));
    assert_eq!(ledger.size(), 2);
    drop(ledger);
    let (ledger, report) = Ledger::open(dir.path(), ID, seed(), rarely()).unwrap();
    assert_eq!(
        (report.entries, report.torn_tail.map(|t| t.index)),
        (2, Some(2))
    );
    assert_eq!(ledger.append(&entry(4)).unwrap(), 2);
}

#[test]
fn ledger_injected_fsync_error_fails_the_append() {
    let dir = tempdir();
    let ledger = open_failing(dir.path(), usize::MAX, true);
    assert!(matches!(
        ledger.append(&entry(0)),
        Err(LedgerError::Io { .. })
    ));
    assert!(matches!(ledger.append(&entry(1)), Err(LedgerError::Failed)));
    assert_eq!(ledger.size(), 0);
}

#[test]
fn ledger_append_then_reports_the_index_from_the_writer() {
    let dir = tempdir();
    let ledger = open(dir.path(), rarely()).unwrap();
    let (tx, rx) = mpsc::channel();
    for i in 0..3 {
        let tx = tx.clone();
        ledger.append_then(&entry(i), Box::new(move |r| tx.send(r.unwrap()).unwrap()));
    }
    let mut got: Vec<u64> = rx.iter().take(3).collect();
    got.sort();
    assert_eq!(got, [0, 1, 2]);
}
