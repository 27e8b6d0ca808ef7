//! The append-only audit ledger: durable entries, an RFC 6962 Merkle tree
//! over them, and signed checkpoints.
//!
//! Every entry is durably on disk (`fdatasync`) before [`Ledger::append`]
//! returns its index; concurrent appends share one sync (group commit, see
//! `writer`). The ledger never opens a socket: the API serves what the read
//! methods return. Formats: leaf bytes in [`entry`], file layout in
//! [`store`], checkpoints and notes in [`checkpoint`], hashing and proofs in
//! [`merkle`], offline verification in [`verify`].

pub mod checkpoint;
pub mod entry;
pub mod merkle;
pub mod store;
pub mod verify;
mod writer;

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

pub use checkpoint::{Checkpoint, CheckpointSigner, NoteError, NoteVerifier};
pub use entry::{Decision, EntryKind, LedgerEntry, LedgerHmac, Phase};
pub use merkle::{Hash, MerkleError};
pub use store::{LedgerPaths, LogFile, TornTail};
pub use verify::{verify_export, VerifiedLedger, VerifyError};
pub use writer::{Completion, FsyncHistogram};

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
}

/// Offsets and tree of committed entries.
struct Index {
    tree: merkle::MerkleTree,
    offsets: Vec<u64>,
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
    reader: File,
    failed: AtomicBool,
    fsyncs: AtomicU64,
    histogram: Mutex<FsyncHistogram>,
    signer: CheckpointSigner,
    latest: Mutex<Latest>,
    interval: Duration,
}

/// The durable, verifiable audit ledger. Share it with `Arc`.
pub struct Ledger {
    shared: Arc<Shared>,
    tx: Option<Sender<writer::Job>>,
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
        Self::open_with(data_dir, appliance_id, signing_seed, options, |f| {
            Box::new(f)
        })
    }

    /// Like [`Ledger::open`], with the append handle wrapped by `wrap` (tests inject failures).
    pub fn open_with(
        data_dir: &Path,
        appliance_id: &str,
        signing_seed: Zeroizing<[u8; 32]>,
        options: LedgerOptions,
        wrap: impl FnOnce(File) -> Box<dyn LogFile>,
    ) -> Result<(Self, OpenReport), LedgerError> {
        let signer = CheckpointSigner::new(&format!("zonevault/{appliance_id}"), &signing_seed)?;
        let verifier = NoteVerifier::parse(&signer.verifier_key())?;
        let paths = LedgerPaths::new(data_dir);
        let rec = store::recover(&paths, &verifier)?;
        let reader = rec.file.try_clone().map_err(|source| LedgerError::Io {
            path: paths.entries.clone(),
            source,
        })?;
        let report = OpenReport {
            entries: rec.tree.size(),
            torn_tail: rec.torn,
            verified_checkpoint_size: rec.checkpoint.as_ref().map(|(c, _)| c.size),
        };
        let (size, note) = rec
            .checkpoint
            .map_or((None, String::new()), |(c, n)| (Some(c.size), n));
        let shared = Arc::new(Shared {
            paths,
            index: RwLock::new(Index {
                tree: rec.tree,
                offsets: rec.offsets,
                end: rec.end,
            }),
            reader,
            failed: AtomicBool::new(false),
            fsyncs: AtomicU64::new(0),
            histogram: Mutex::new(FsyncHistogram::default()),
            signer,
            latest: Mutex::new(Latest {
                size,
                note,
                written: Instant::now(),
            }),
            interval: options.checkpoint_interval,
        });
        let (tx, rx) = mpsc::channel();
        let log = wrap(rec.file);
        let for_writer = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || writer::run(rx, log, for_writer))
            .map_err(|source| LedgerError::Io {
                path: shared.paths.dir.clone(),
                source,
            })?;
        Ok((
            Self {
                shared,
                tx: Some(tx),
                thread: Some(thread),
            },
            report,
        ))
    }

    /// Appends `entry` and returns its index once it is durably on disk.
    pub fn append(&self, entry: &LedgerEntry) -> Result<u64, LedgerError> {
        self.append_bytes(entry.to_leaf_bytes()?)
    }

    /// Appends raw leaf bytes (one JSON line, no newline) and waits for durability.
    pub fn append_bytes(&self, bytes: Vec<u8>) -> Result<u64, LedgerError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(
            bytes,
            Box::new(move |r| {
                // The receiver waits below, so this send only fails if it is gone.
                let _ = tx.send(r);
            }),
        );
        rx.recv().unwrap_or(Err(LedgerError::Closed))
    }

    /// Non-blocking append: `done` runs on the writer thread after the batch
    /// holding this entry was synced (or failed). Async callers complete a
    /// oneshot channel from it.
    pub fn append_then(&self, entry: &LedgerEntry, done: Completion) {
        match entry.to_leaf_bytes() {
            Ok(bytes) => self.submit(bytes, done),
            Err(e) => done(Err(e.into())),
        }
    }

    fn submit(&self, bytes: Vec<u8>, done: Completion) {
        if bytes.len() > store::MAX_ENTRY_LEN {
            return done(Err(LedgerError::TooLarge(bytes.len())));
        }
        if self.shared.failed.load(Ordering::SeqCst) {
            return done(Err(LedgerError::Failed));
        }
        let Some(tx) = &self.tx else {
            return done(Err(LedgerError::Closed));
        };
        if let Err(mpsc::SendError(job)) = tx.send(writer::Job { bytes, done }) {
            (job.done)(Err(LedgerError::Closed));
        }
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
        let (from, to, offsets) = {
            let index = self.shared.read_index();
            let size = index.tree.size();
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
            let to = index
                .offsets
                .get(end as usize)
                .copied()
                .unwrap_or(index.end);
            (
                index.offsets[start as usize],
                to,
                index.offsets[start as usize..end as usize].to_vec(),
            )
        };
        let mut buf = vec![0u8; (to - from) as usize];
        let path = &self.shared.paths.entries;
        self.shared
            .reader
            .read_exact_at(&mut buf, from)
            .map_err(|source| LedgerError::Io {
                path: path.clone(),
                source,
            })?;
        offsets
            .iter()
            .zip(start..)
            .map(|(&o, i)| split_record(&buf[(o - from) as usize..], i))
            .collect()
    }

    /// The stored leaf hash of entry `index`.
    pub fn leaf_hash(&self, index: u64) -> Result<Hash, LedgerError> {
        let index_guard = self.shared.read_index();
        let size = index_guard.tree.size();
        index_guard
            .tree
            .leaf(index)
            .ok_or(LedgerError::Range(MerkleError::IndexOutOfRange {
                index,
                size,
            }))
    }

    /// The root over the first `size` entries.
    pub fn root(&self, size: u64) -> Result<Hash, LedgerError> {
        Ok(self.shared.read_index().tree.root(size)?)
    }

    /// Inclusion proof of entry `index` in the tree of `size` entries.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, LedgerError> {
        Ok(self.shared.read_index().tree.inclusion_proof(index, size)?)
    }

    /// Consistency proof between tree sizes `first <= second`.
    pub fn consistency_proof(&self, first: u64, second: u64) -> Result<Vec<Hash>, LedgerError> {
        Ok(self
            .shared
            .read_index()
            .tree
            .consistency_proof(first, second)?)
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
        self.shared.fsyncs.load(Ordering::Relaxed)
    }

    /// A snapshot of fsync latencies since open.
    pub fn fsync_histogram(&self) -> FsyncHistogram {
        self.shared
            .histogram
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The entry bytes of record `index` starting at `rec` (hash-checked at open
/// or write; a length that no longer fits means the file changed under us).
fn split_record(rec: &[u8], index: u64) -> Result<Vec<u8>, LedgerError> {
    let tampered = || LedgerError::Tampered {
        index,
        reason: "record framing changed on disk while open".into(),
    };
    let len = rec.get(..4).ok_or_else(tampered)?;
    let n = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    rec.get(4..4 + n).map(<[u8]>::to_vec).ok_or_else(tampered)
}

impl Drop for Ledger {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Shared {
    fn read_index(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
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
            (size, index.tree.root(size)?)
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
