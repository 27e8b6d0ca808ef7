//! The append-only audit ledger: durable entries, an RFC 6962 Merkle tree
//! over them, and signed checkpoints.
//!
//! Every entry is durably on disk (`fdatasync`) before [`Ledger::append`]
//! returns its index; concurrent appends share one sync (group commit: the
//! appenders fill one batch, `queue`, which the `writer` thread takes). The
//! ledger never opens a socket: the API serves what the read methods
//! return. Formats: leaf bytes in [`entry`], file layout in
//! [`store`], checkpoints and notes in [`checkpoint`], hashing and proofs in
//! [`merkle`], offline verification in [`verify`].
//!
//! Memory stays bounded as the ledger grows: the running tree ([`tiles`])
//! keeps two hashes per 256 entries (about 0.25 byte per entry) and one
//! tile of leaf hashes, and record offsets and the other leaf hashes are
//! read from `entries.idx` ([`record_index`]), a cache of `entries.log`
//! rebuilt at open wherever it does not match.

pub mod checkpoint;
pub mod entry;
pub mod merkle;
mod queue;
pub mod record_index;
pub mod store;
pub mod tiles;
pub mod verify;
mod writer;

use std::cell::RefCell;
use std::fs::File;
use std::future::Future;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

pub use checkpoint::{Checkpoint, CheckpointSigner, NoteError, NoteVerifier};
pub use entry::{Decision, EntryKind, LedgerEntry, LedgerHmac, Phase};
pub use merkle::{Hash, MerkleError};
pub use store::{LedgerFile, LedgerPaths, LogFile, TornTail};
pub use verify::{verify_export, VerifiedLedger, VerifyError};
pub use writer::{Completion, Histogram};

use queue::{Queue, Waiter};

/// Ledger failures. Any of them on `append` means: answer 503, release no data.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// Reading or writing a ledger file failed.
    #[error("ledger I/O on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// An earlier write failed; the ledger accepts no appends until reopened.
    #[error("ledger is failed after an earlier write error; reopen to recover")]
    Failed,
    /// The stored history does not match its own hashes or the signed checkpoint.
    #[error("ledger entry {index} was altered: {reason}")]
    Tampered {
        /// The first bad entry (or the start of the range holding it).
        index: u64,
        /// What did not match.
        reason: String,
    },
    /// The stored checkpoint is unreadable or its signature does not verify.
    #[error("stored checkpoint {path} rejected: {source}")]
    BadCheckpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// Why.
        source: NoteError,
    },
    /// A size or index outside the tree.
    #[error(transparent)]
    Range(#[from] MerkleError),
    /// The entry could not be serialized.
    #[error("ledger entry is not serializable: {0}")]
    Encode(#[from] serde_json::Error),
    /// The entry exceeds [`store::MAX_ENTRY_LEN`].
    #[error("ledger entry of {0} bytes exceeds the maximum")]
    TooLarge(usize),
    /// The origin or signing key is unusable.
    #[error("ledger key: {0}")]
    Key(#[from] NoteError),
    /// The writer thread is gone.
    #[error("ledger writer has stopped")]
    Closed,
}

/// Tuning for [`Ledger::open`].
#[derive(Debug, Clone)]
pub struct LedgerOptions {
    /// Sign and persist a checkpoint after a batch when the last one is at
    /// least this old. `Duration::ZERO` checkpoints after every batch.
    pub checkpoint_interval: Duration,
}

impl Default for LedgerOptions {
    fn default() -> Self {
        Self {
            checkpoint_interval: Duration::from_millis(250),
        }
    }
}

/// What [`Ledger::open`] found; the caller logs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// Entries in the ledger.
    pub entries: u64,
    /// A torn final record that was cut off.
    pub torn_tail: Option<TornTail>,
    /// Size of the signed checkpoint the tree was verified against.
    pub verified_checkpoint_size: Option<u64>,
    /// The first entry from which `entries.idx` was rewritten or cut because
    /// it did not match `entries.log` (it is a cache); `None` if it matched.
    pub index_repaired_from: Option<u64>,
}

/// Tree and log end of committed entries; their offsets and leaf hashes are
/// in [`Shared::records`].
struct Index {
    tree: tiles::TiledTree,
    end: u64,
}

struct Latest {
    size: Option<u64>,
    note: String,
    written: Instant,
}

/// State shared by the ledger handle and its writer thread.
struct Shared {
    paths: LedgerPaths,
    index: RwLock<Index>,
    /// `entries.idx`: holds the records of entries below the published size.
    records: record_index::RecordIndex,
    reader: File,
    failed: AtomicBool,
    stats: Mutex<writer::WriterStats>,
    signer: CheckpointSigner,
    latest: Mutex<Latest>,
    interval: Duration,
}

/// The durable, verifiable audit ledger. Share it with `Arc`.
pub struct Ledger {
    shared: Arc<Shared>,
    queue: Arc<Queue>,
    thread: Option<JoinHandle<()>>,
}

impl Ledger {
    /// Opens (or creates) `<data_dir>/ledger` for `zonevault/<appliance_id>`.
    ///
    /// Cuts a torn tail, verifies every record's hash and the tree against the
    /// last signed checkpoint, and refuses with [`LedgerError::Tampered`] or
    /// [`LedgerError::BadCheckpoint`] if history was altered.
    pub fn open(
        data_dir: &Path,
        appliance_id: &str,
        signing_seed: Zeroizing<[u8; 32]>,
        options: LedgerOptions,
    ) -> Result<(Self, OpenReport), LedgerError> {
        Self::open_with(data_dir, appliance_id, signing_seed, options, |_, f| {
            Box::new(f)
        })
    }

    /// Like [`Ledger::open`], with the writer's handle on each file wrapped
    /// by `wrap` (tests inject failures).
    pub fn open_with(
        data_dir: &Path,
        appliance_id: &str,
        signing_seed: Zeroizing<[u8; 32]>,
        options: LedgerOptions,
        mut wrap: impl FnMut(LedgerFile, File) -> Box<dyn LogFile>,
    ) -> Result<(Self, OpenReport), LedgerError> {
        let signer = CheckpointSigner::new(&format!("zonevault/{appliance_id}"), &signing_seed)?;
        let verifier = NoteVerifier::parse(&signer.verifier_key())?;
        let paths = LedgerPaths::new(data_dir);
        let rec = store::recover(&paths, &verifier)?;
        let reader = rec.file.try_clone().map_err(|source| LedgerError::Io {
            path: paths.entries.clone(),
            source,
        })?;
        let index_file = rec
            .records
            .try_clone_file()
            .map_err(|source| LedgerError::Io {
                path: paths.index.clone(),
                source,
            })?;
        let report = OpenReport {
            entries: rec.tree.size(),
            torn_tail: rec.torn,
            verified_checkpoint_size: rec.checkpoint.as_ref().map(|(c, _)| c.size),
            index_repaired_from: rec.index_repaired_from,
        };
        let (size, note) = rec
            .checkpoint
            .map_or((None, String::new()), |(c, n)| (Some(c.size), n));
        let shared = Arc::new(Shared {
            paths,
            index: RwLock::new(Index {
                tree: rec.tree,
                end: rec.end,
            }),
            records: rec.records,
            reader,
            failed: AtomicBool::new(false),
            stats: Mutex::default(),
            signer,
            latest: Mutex::new(Latest {
                size,
                note,
                written: Instant::now(),
            }),
            interval: options.checkpoint_interval,
        });
        let queue = Arc::new(Queue::new());
        let files = writer::Files {
            log: wrap(LedgerFile::Entries, rec.file),
            index: wrap(LedgerFile::Index, index_file),
        };
        let (for_writer, queue_for_writer) = (Arc::clone(&shared), Arc::clone(&queue));
        let thread = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || writer::run(queue_for_writer, files, for_writer))
            .map_err(|source| LedgerError::Io {
                path: shared.paths.dir.clone(),
                source,
            })?;
        Ok((
            Self {
                shared,
                queue,
                thread: Some(thread),
            },
            report,
        ))
    }

    /// Appends `entry` and returns its index once it is durably on disk.
    pub fn append(&self, entry: &LedgerEntry) -> Result<u64, LedgerError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit_entry(entry, Waiter::Blocking(tx));
        rx.recv().unwrap_or(Err(LedgerError::Closed))
    }

    /// Non-blocking append: `done` runs on the writer thread after the batch
    /// holding this entry was synced (or failed).
    pub fn append_then(&self, entry: &LedgerEntry, done: Completion) {
        self.submit_entry(entry, Waiter::Callback(done));
    }

    /// Queues `entry` now and resolves to its index once it is durably on
    /// disk: for async callers, which must not block a runtime thread.
    pub fn append_async(
        &self,
        entry: &LedgerEntry,
    ) -> impl Future<Output = Result<u64, LedgerError>> + Send + 'static {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit_entry(entry, Waiter::Async(tx));
        async move { rx.await.unwrap_or(Err(LedgerError::Closed)) }
    }

    /// Serializes `entry` into this thread's scratch buffer and queues it.
    fn submit_entry(&self, entry: &LedgerEntry, waiter: Waiter) {
        let refused = SCRATCH.with_borrow_mut(|buf| {
            buf.clear();
            let queued = match entry.write_leaf_bytes(buf) {
                Ok(()) => self.enqueue(buf, waiter),
                Err(e) => Err((waiter, e.into())),
            };
            if buf.capacity() > SCRATCH_KEEP {
                *buf = Vec::with_capacity(SCRATCH_KEEP);
            }
            queued
        });
        // Outside the borrow: a callback may append again.
        if let Err((waiter, err)) = refused {
            waiter.finish(Err(err));
        }
    }

    /// Queues raw leaf bytes for the writer, or tells the waiter why not
    /// (tests that write entries of their own).
    #[cfg(test)]
    fn submit(&self, bytes: &[u8], waiter: Waiter) {
        if let Err((waiter, err)) = self.enqueue(bytes, waiter) {
            waiter.finish(Err(err));
        }
    }

    fn enqueue(&self, bytes: &[u8], waiter: Waiter) -> Result<(), (Waiter, LedgerError)> {
        if bytes.len() > store::MAX_ENTRY_LEN {
            return Err((waiter, LedgerError::TooLarge(bytes.len())));
        }
        if self.shared.failed.load(Ordering::SeqCst) {
            return Err((waiter, LedgerError::Failed));
        }
        self.queue
            .push(bytes, waiter)
            .map_err(|waiter| (waiter, LedgerError::Closed))
    }

    /// Whether an earlier write failed (appends are refused).
    pub fn is_failed(&self) -> bool {
        self.shared.failed.load(Ordering::SeqCst)
    }

    /// Number of committed entries.
    pub fn size(&self) -> u64 {
        self.shared.read_index().tree.size()
    }

    /// The leaf bytes of entry `index`.
    pub fn entry(&self, index: u64) -> Result<Vec<u8>, LedgerError> {
        let mut one = self.entries(index, index + 1)?;
        one.pop()
            .ok_or(LedgerError::Range(MerkleError::IndexOutOfRange {
                index,
                size: self.size(),
            }))
    }

    /// Leaf bytes of entries `[start, end)`, for serving as JSON lines verbatim.
    pub fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, LedgerError> {
        let (size, log_end) = {
            let index = self.shared.read_index();
            (index.tree.size(), index.end)
        };
        if start > end || end > size {
            return Err(MerkleError::IndexOutOfRange {
                index: end.max(start),
                size,
            }
            .into());
        }
        if start == end {
            return Ok(Vec::new());
        }
        // Records below the published size never change while open.
        let from = self.shared.records.offset(start)?;
        let to = if end < size {
            self.shared.records.offset(end)?
        } else {
            log_end
        };
        let mut buf = vec![0u8; to.saturating_sub(from) as usize];
        let path = &self.shared.paths.entries;
        self.shared
            .reader
            .read_exact_at(&mut buf, from)
            .map_err(|source| LedgerError::Io {
                path: path.clone(),
                source,
            })?;
        split_records(&buf, start, end)
    }

    /// The stored leaf hash of entry `index`.
    pub fn leaf_hash(&self, index: u64) -> Result<Hash, LedgerError> {
        let index_guard = self.shared.read_index();
        index_guard.tree.leaf(index, &self.shared.records)
    }

    /// The root over the first `size` entries.
    pub fn root(&self, size: u64) -> Result<Hash, LedgerError> {
        let records = &self.shared.records;
        self.shared.read_index().tree.root(size, records)
    }

    /// Inclusion proof of entry `index` in the tree of `size` entries.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, LedgerError> {
        let records = &self.shared.records;
        let index_guard = self.shared.read_index();
        index_guard.tree.inclusion_proof(index, size, records)
    }

    /// Consistency proof between tree sizes `first <= second`.
    pub fn consistency_proof(&self, first: u64, second: u64) -> Result<Vec<Hash>, LedgerError> {
        let records = &self.shared.records;
        let index_guard = self.shared.read_index();
        index_guard.tree.consistency_proof(first, second, records)
    }

    /// The signed checkpoint note for the current size, signing and persisting one if stale.
    pub fn checkpoint(&self) -> Result<String, LedgerError> {
        self.shared.checkpoint_now()
    }

    /// The signed-note verifier key string of the checkpoint key.
    pub fn verifier_key(&self) -> String {
        self.shared.signer.verifier_key()
    }

    /// The origin (`zonevault/<appliance-id>`), also the key name.
    pub fn origin(&self) -> &str {
        self.shared.signer.name()
    }

    /// Number of `fdatasync` calls on `entries.log` since open.
    pub fn fsync_count(&self) -> u64 {
        self.shared.stats().fsync_seconds.count
    }

    /// A snapshot of fsync latencies (seconds) since open.
    pub fn fsync_histogram(&self) -> Histogram {
        self.shared.stats().fsync_seconds.clone()
    }

    /// A snapshot of the entries each group commit (one `fdatasync`) made
    /// durable since open.
    pub fn batch_histogram(&self) -> Histogram {
        self.shared.stats().batch_entries.clone()
    }
}

/// The entry bytes of records `start..end`, which fill `buf` exactly
/// (hash-checked at open or write; framing that no longer fits means the
/// file changed under us).
fn split_records(buf: &[u8], start: u64, end: u64) -> Result<Vec<Vec<u8>>, LedgerError> {
    let mut rest = buf;
    let mut out = Vec::with_capacity((end - start) as usize);
    for index in start..end {
        let entry = split_record(rest, index)?;
        rest = &rest[entry.len() + store::RECORD_OVERHEAD..];
        out.push(entry);
    }
    if !rest.is_empty() {
        return Err(framing_changed(end - 1));
    }
    Ok(out)
}

fn framing_changed(index: u64) -> LedgerError {
    LedgerError::Tampered {
        index,
        reason: "record framing changed on disk while open".into(),
    }
}

/// The entry bytes of record `index` at the start of `rec`.
fn split_record(rec: &[u8], index: u64) -> Result<Vec<u8>, LedgerError> {
    let len = rec.get(..4).ok_or_else(|| framing_changed(index))?;
    let n = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    rec.get(..n + store::RECORD_OVERHEAD)
        .map(|r| r[4..4 + n].to_vec())
        .ok_or_else(|| framing_changed(index))
}

thread_local! {
    /// Where [`Ledger::submit_entry`] serializes, so that an append
    /// allocates no buffer of its own.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(SCRATCH_KEEP));
}

/// The scratch buffer goes back to this capacity after a larger entry.
const SCRATCH_KEEP: usize = 4096;

impl Drop for Ledger {
    fn drop(&mut self) {
        self.queue.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Shared {
    fn read_index(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The writer's measurements, locked.
    fn stats(&self) -> std::sync::MutexGuard<'_, writer::WriterStats> {
        self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Signs and persists a checkpoint if the interval has passed.
    fn checkpoint_if_due(&self) -> Result<(), LedgerError> {
        let due = {
            let latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
            latest.size.is_none() || latest.written.elapsed() >= self.interval
        };
        if due {
            self.checkpoint_now()?;
        }
        Ok(())
    }

    fn checkpoint_now(&self) -> Result<String, LedgerError> {
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        let (size, root) = {
            let index = self.read_index();
            let size = index.tree.size();
            (size, index.tree.root(size, &self.records)?)
        };
        if latest.size == Some(size) {
            return Ok(latest.note.clone());
        }
        let cp = Checkpoint {
            origin: self.signer.name().to_owned(),
            size,
            root,
        };
        let note = self.signer.sign(&cp);
        store::persist_checkpoint(&self.paths, &note)?;
        *latest = Latest {
            size: Some(size),
            note: note.clone(),
            written: Instant::now(),
        };
        Ok(note)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// This process's resident and peak resident set size, in KiB.
    fn rss_kib() -> (u64, u64) {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let field = |name: &str| -> u64 {
            let line = status.lines().find(|l| l.starts_with(name)).unwrap();
            line.split_whitespace().nth(1).unwrap().parse().unwrap()
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// A measurement, not a timed test: the process RSS after opening, after
    /// 10,000 small appends (allocator warmed up) and after a million. Run it with `cargo test --release -p vault
    /// --lib ledger_memory_after_a_million_appends -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement: run in release with --ignored --nocapture"]
    fn ledger_memory_after_a_million_appends() {
        let dir = tempfile::tempdir().unwrap();
        let options = LedgerOptions {
            checkpoint_interval: Duration::from_secs(3600),
        };
        let seed = Zeroizing::new([3u8; 32]);
        let (ledger, _) = Ledger::open(dir.path(), "rss", seed, options).unwrap();
        let (before, mut warm) = (rss_kib(), (0, 0));
        for wave in 0..100u64 {
            if wave == 1 {
                warm = rss_kib();
            }
            let (tx, rx) = mpsc::channel();
            for i in wave * 10_000..(wave + 1) * 10_000 {
                let tx = tx.clone();
                let bytes = format!("{{\"n\":{i}}}").into_bytes();
                let done = Box::new(move |r| tx.send(r).unwrap());
                ledger.submit(&bytes, Waiter::Callback(done));
            }
            drop(tx);
            rx.into_iter().for_each(|r| assert!(r.is_ok(), "{r:?}"));
        }
        let (size, index) = (1_000_000, 123_456);
        assert_eq!(ledger.size(), size);
        let proof = ledger.inclusion_proof(index, size).unwrap();
        let (leaf, root) = (ledger.leaf_hash(index).unwrap(), ledger.root(size).unwrap());
        assert!(merkle::verify_inclusion(index, size, &leaf, &proof, &root));
        let after = rss_kib();
        println!(
            "ledger RSS KiB: opened {}, after 10k entries {}, after 1M {} \
             (+{} over the last 990k), peak {}",
            before.0,
            warm.0,
            after.0,
            after.0 - warm.0,
            after.1
        );
    }
}
