//! The group-commit writer thread.
//!
//! Appenders queue framed records (see [`super::queue`]). The writer takes
//! everything queued, writes its `entries.idx` records with one positioned
//! write (a cache, never synced, see [`super::record_index`]), then its log
//! records with one positioned write into preallocated space (see
//! [`super::store`]), calls one `fdatasync`, and only then adds the leaves
//! to the tree and tells each waiter its index. If a write or the sync
//! fails, every waiter in the batch gets [`LedgerError::Io`] and the ledger
//! stays failed: later appends get [`LedgerError::Failed`], because bytes of
//! unknown state may now sit at the end of the log. Reopening cuts them off.

use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use super::queue::{Batch, Queue};
use super::record_index::{self, INDEX_RECORD_LEN};
use super::store::{LogFile, PREALLOCATE, RECORD_OVERHEAD};
use super::{LedgerError, Shared};

/// Upper bounds (seconds) of the fsync latency buckets; a last bucket is `+Inf`.
pub const FSYNC_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Upper bounds of the entries-per-batch buckets; a last bucket is `+Inf`.
pub const BATCH_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0];

/// A snapshot of a histogram the writer keeps: fsync latencies (seconds)
/// or entries per batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Upper bounds, ascending.
    pub bounds: Vec<f64>,
    /// Per-bucket (not cumulative) counts; one more than `bounds`, the last is `+Inf`.
    pub counts: Vec<u64>,
    /// Sum of the observed values.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

impl Histogram {
    /// An empty histogram with these upper bounds.
    pub fn new(bounds: &[f64]) -> Self {
        Self {
            bounds: bounds.to_vec(),
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    pub(crate) fn observe(&mut self, value: f64) {
        let bucket = self
            .bounds
            .iter()
            .position(|&b| value <= b)
            .unwrap_or(self.bounds.len());
        self.counts[bucket] += 1;
        self.sum += value;
        self.count += 1;
    }
}

/// What the writer has measured since open (behind one mutex in `Shared`).
#[derive(Debug, Clone)]
pub(crate) struct WriterStats {
    /// `fdatasync` latencies of `entries.log`, seconds; its count is the
    /// number of fsyncs.
    pub fsync_seconds: Histogram,
    /// Entries each successful group commit made durable.
    pub batch_entries: Histogram,
}

impl Default for WriterStats {
    fn default() -> Self {
        Self {
            fsync_seconds: Histogram::new(&FSYNC_BUCKETS),
            batch_entries: Histogram::new(&BATCH_BUCKETS),
        }
    }
}

/// The index buffer keeps up to this many bytes between batches (a burst's
/// larger buffer is given back).
const KEEP_INDEX_BYTES: usize = 64 << 10;

/// Called once with the append's outcome.
pub type Completion = Box<dyn FnOnce(Result<u64, LedgerError>) + Send>;

/// The writer's handles on the two files it appends to.
pub(crate) struct Files {
    /// `entries.log`.
    pub log: Box<dyn LogFile>,
    /// `entries.idx`.
    pub index: Box<dyn LogFile>,
}

/// The writer's files, how far the log is allocated, and the buffer a
/// batch's index records are encoded into.
struct Log {
    file: Box<dyn LogFile>,
    /// File length: records end at the index's `end`, zeros follow.
    allocated: u64,
    index: Box<dyn LogFile>,
    index_records: Vec<u8>,
}

/// Runs until the queue is closed and drained, then trims the unused
/// preallocation.
pub(crate) fn run(queue: Arc<Queue>, files: Files, shared: Arc<Shared>) {
    let mut log = Log {
        file: files.log,
        allocated: shared.read_index().end,
        index: files.index,
        index_records: Vec::new(),
    };
    let mut batch = Batch::default();
    while queue.take(&mut batch) {
        commit(&mut log, &shared, &mut batch);
        batch.clear();
        if !shared.failed.load(Ordering::SeqCst) {
            // A failed periodic checkpoint is retried by the next batch or by
            // `Ledger::checkpoint`, which reports the error.
            let _ = shared.checkpoint_if_due();
        }
    }
    if !shared.failed.load(Ordering::SeqCst) {
        // A clean close leaves the file exactly as long as its records; if
        // this fails, the next open trims the zeros instead.
        let end = shared.read_index().end;
        if log.file.set_len(end).is_ok() {
            let _ = log.file.sync_data();
        }
    }
}

/// Writes and syncs `batch`, then publishes its leaves and answers its
/// waiters in order.
fn commit(log: &mut Log, shared: &Shared, batch: &mut Batch) {
    if shared.failed.load(Ordering::SeqCst) {
        batch
            .waiters
            .drain(..)
            .for_each(|w| w.finish(Err(LedgerError::Failed)));
        return;
    }
    let (size, offset) = {
        let index = shared.read_index();
        (index.tree.size(), index.end)
    };
    // Index first: if it cannot be written, the log is left untouched.
    if let Err(e) = write_index(log, size, offset, batch) {
        return fail_batch(shared, batch, &shared.paths.index, &e);
    }
    if let Err(e) = write_and_sync(log, shared, &batch.records, offset) {
        return fail_batch(shared, batch, &shared.paths.entries, &e);
    }
    shared
        .stats()
        .batch_entries
        .observe(batch.waiters.len() as f64);
    let first = {
        let mut index = shared.index.write().unwrap_or_else(PoisonError::into_inner);
        let first = index.tree.size();
        for (len, hash) in batch.lens.iter().zip(&batch.hashes) {
            index.tree.push(*hash);
            index.end += record_len(*len);
        }
        first
    };
    for (i, waiter) in batch.waiters.drain(..).enumerate() {
        waiter.finish(Ok(first + i as u64));
    }
}

/// Bytes a record of an entry of `len` bytes takes in `entries.log`.
fn record_len(len: u32) -> u64 {
    u64::from(len) + RECORD_OVERHEAD as u64
}

/// Answers every waiter of a failed batch and fails the ledger.
fn fail_batch(shared: &Shared, batch: &mut Batch, path: &Path, e: &io::Error) {
    shared.failed.store(true, Ordering::SeqCst);
    for waiter in batch.waiters.drain(..) {
        let source = io::Error::new(e.kind(), e.to_string());
        waiter.finish(Err(LedgerError::Io {
            path: path.to_owned(),
            source,
        }));
    }
}

/// Writes the `entries.idx` records of a batch whose log records start at
/// `offset` and whose first entry is `first`.
fn write_index(log: &mut Log, first: u64, offset: u64, batch: &Batch) -> io::Result<()> {
    let buf = &mut log.index_records;
    buf.clear();
    buf.shrink_to(KEEP_INDEX_BYTES);
    let mut at = offset;
    for (len, hash) in batch.lens.iter().zip(&batch.hashes) {
        buf.extend_from_slice(&record_index::encode(at, hash));
        at += record_len(*len);
    }
    log.index.write_all_at(buf, first * INDEX_RECORD_LEN)
}

fn write_and_sync(log: &mut Log, shared: &Shared, buf: &[u8], offset: u64) -> io::Result<()> {
    let needed = offset + buf.len() as u64;
    if needed > log.allocated {
        let to = needed.div_ceil(PREALLOCATE) * PREALLOCATE;
        log.file.preallocate(log.allocated, to)?;
        log.allocated = to;
    }
    log.file.write_all_at(buf, offset)?;
    let started = Instant::now();
    let synced = log.file.sync_data();
    let seconds = started.elapsed().as_secs_f64();
    shared.stats().fsync_seconds.observe(seconds);
    synced
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets() {
        let mut h = Histogram::new(&FSYNC_BUCKETS);
        h.observe(0.00005);
        h.observe(0.003);
        h.observe(5.0);
        assert_eq!(h.counts[0], 1);
        assert_eq!(h.counts[5], 1);
        assert_eq!(h.counts[12], 1);
        assert_eq!(h.count, 3);
        let mut b = Histogram::new(&BATCH_BUCKETS);
        for entries in [1.0, 1.0, 3.0, 64.0, 65.0, 5000.0] {
            b.observe(entries);
        }
        assert_eq!(b.counts, [2, 0, 1, 0, 0, 0, 1, 1, 0, 0, 1]);
        assert_eq!(b.sum, 5134.0);
    }
}
