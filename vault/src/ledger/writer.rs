//! The group-commit writer thread.
//!
//! Appenders send jobs over a channel. The writer takes every job waiting,
//! writes their `entries.idx` records with one positioned write (a cache,
//! never synced, see [`super::record_index`]), then their log records with
//! one positioned write into preallocated space (see [`super::store`]),
//! calls one `fdatasync`, and only then adds the leaves to the tree and
//! answers each job with its index. If
//! a write or the sync fails, every job in the batch gets
//! [`LedgerError::Io`] and the ledger stays failed: later jobs get
//! [`LedgerError::Failed`], because bytes of unknown state may now sit at the
//! end of the log. Reopening cuts them off.

use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use super::merkle::Hash;
use super::store::{encode_record, LogFile, PREALLOCATE};
use super::{LedgerError, Shared};

/// Upper bounds (seconds) of the fsync latency buckets; a last bucket is `+Inf`.
pub const FSYNC_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// A snapshot of fsync latencies.
#[derive(Debug, Clone, PartialEq)]
pub struct FsyncHistogram {
    /// Upper bounds in seconds, ascending.
    pub bounds: Vec<f64>,
    /// Per-bucket (not cumulative) counts; one more than `bounds`, the last is `+Inf`.
    pub counts: Vec<u64>,
    /// Total seconds spent in fsync.
    pub sum_seconds: f64,
    /// Number of fsyncs observed.
    pub count: u64,
}

impl Default for FsyncHistogram {
    fn default() -> Self {
        Self {
            bounds: FSYNC_BUCKETS.to_vec(),
            counts: vec![0; FSYNC_BUCKETS.len() + 1],
            sum_seconds: 0.0,
            count: 0,
        }
    }
}

impl FsyncHistogram {
    fn observe(&mut self, seconds: f64) {
        let bucket = self
            .bounds
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(self.bounds.len());
        self.counts[bucket] += 1;
        self.sum_seconds += seconds;
        self.count += 1;
    }
}

/// Called once with the append's outcome.
pub type Completion = Box<dyn FnOnce(Result<u64, LedgerError>) + Send>;

/// One append waiting to be committed.
pub(crate) struct Job {
    pub bytes: Vec<u8>,
    pub done: Completion,
}

/// Most jobs committed in one batch.
const MAX_BATCH: usize = 4096;

/// The log file and how far it is allocated.
struct Log {
    file: Box<dyn LogFile>,
    /// File length: records end at the index's `end`, zeros follow.
    allocated: u64,
}

/// Runs until every sender is gone, then trims the unused preallocation.
pub(crate) fn run(rx: Receiver<Job>, file: Box<dyn LogFile>, shared: Arc<Shared>) {
    let allocated = shared.read_index().end;
    let mut log = Log { file, allocated };
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit(&mut log, &shared, batch);
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

fn commit(log: &mut Log, shared: &Shared, batch: Vec<Job>) {
    if shared.failed.load(Ordering::SeqCst) {
        batch
            .into_iter()
            .for_each(|job| (job.done)(Err(LedgerError::Failed)));
        return;
    }
    let mut buf = Vec::with_capacity(batch.iter().map(|j| j.bytes.len() + 36).sum());
    let hashes: Vec<_> = batch
        .iter()
        .map(|j| encode_record(&j.bytes, &mut buf))
        .collect();
    let (size, offset) = {
        let index = shared.read_index();
        (index.tree.size(), index.end)
    };
    // Index first: if it cannot be written, the log is left untouched.
    if let Err(e) = write_index(shared, size, offset, &batch, &hashes) {
        return fail_batch(shared, batch, &shared.paths.index, &e);
    }
    if let Err(e) = write_and_sync(log, shared, &buf, offset) {
        return fail_batch(shared, batch, &shared.paths.entries, &e);
    }
    let first = {
        let mut index = shared.index.write().unwrap_or_else(PoisonError::into_inner);
        let first = index.tree.size();
        for (job, hash) in batch.iter().zip(&hashes) {
            index.tree.push(*hash);
            index.end += (job.bytes.len() + 36) as u64;
        }
        first
    };
    for (i, job) in batch.into_iter().enumerate() {
        (job.done)(Ok(first + i as u64));
    }
}

/// Answers every job of a failed batch and fails the ledger.
fn fail_batch(shared: &Shared, batch: Vec<Job>, path: &Path, e: &io::Error) {
    shared.failed.store(true, Ordering::SeqCst);
    for job in batch {
        let source = io::Error::new(e.kind(), e.to_string());
        (job.done)(Err(LedgerError::Io {
            path: path.to_owned(),
            source,
        }));
    }
}

/// Writes the `entries.idx` records of a batch whose log records start at
/// `offset` and whose first entry is `first`.
fn write_index(
    shared: &Shared,
    first: u64,
    offset: u64,
    batch: &[Job],
    hashes: &[Hash],
) -> io::Result<()> {
    let mut at = offset;
    let records: Vec<_> = batch
        .iter()
        .zip(hashes)
        .map(|(job, hash)| {
            let record = (at, *hash);
            at += (job.bytes.len() + 36) as u64;
            record
        })
        .collect();
    shared.records.write(first, &records)
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
    shared.fsyncs.fetch_add(1, Ordering::Relaxed);
    shared
        .histogram
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .observe(seconds);
    synced
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets() {
        let mut h = FsyncHistogram::default();
        h.observe(0.00005);
        h.observe(0.003);
        h.observe(5.0);
        assert_eq!(h.counts[0], 1);
        assert_eq!(h.counts[5], 1);
        assert_eq!(h.counts[12], 1);
        assert_eq!(h.count, 3);
    }
}
