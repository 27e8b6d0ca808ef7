//! The append queue between appenders and the group-commit writer.
//!
//! An appender serializes its entry into a buffer of its own thread, then,
//! under one mutex, frames the record (length, entry, leaf hash) onto the
//! end of the shared [`Batch`] and adds whoever waits for it. The writer
//! swaps the whole batch for the empty one it kept from the last round and
//! writes it with one positioned write. So no per-entry buffer is allocated
//! on one thread and freed on another, and the writer is woken only when it
//! is actually waiting.

use std::sync::mpsc::SyncSender;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use super::merkle::{leaf_hash, Hash};
use super::writer::Completion;
use super::LedgerError;

/// Who is told the outcome of one append, once its batch was synced.
pub(crate) enum Waiter {
    /// A callback, run on the writer thread.
    Callback(Completion),
    /// A thread blocked in [`super::Ledger::append`].
    Blocking(SyncSender<Result<u64, LedgerError>>),
    /// A task awaiting [`super::Ledger::append_async`].
    Async(tokio::sync::oneshot::Sender<Result<u64, LedgerError>>),
}

impl Waiter {
    /// Delivers the outcome; a waiter that went away is not an error.
    pub(crate) fn finish(self, result: Result<u64, LedgerError>) {
        match self {
            Waiter::Callback(done) => done(result),
            Waiter::Blocking(tx) => {
                let _ = tx.send(result);
            }
            Waiter::Async(tx) => {
                let _ = tx.send(result);
            }
        }
    }
}

/// A batch keeps up to this many bytes of record space between rounds.
const KEEP_BYTES: usize = 1 << 20;

/// Records waiting to be written, in order, with one waiter each.
#[derive(Default)]
pub(crate) struct Batch {
    /// The framed records, back to back, as they go into `entries.log`.
    pub records: Vec<u8>,
    /// Each record's entry length.
    pub lens: Vec<u32>,
    /// Each record's leaf hash.
    pub hashes: Vec<Hash>,
    /// Each record's waiter.
    pub waiters: Vec<Waiter>,
}

impl Batch {
    /// Empties the batch, keeping its allocations for the next round
    /// unless a burst made them larger than [`KEEP_BYTES`] of records.
    pub(crate) fn clear(&mut self) {
        if self.records.capacity() > KEEP_BYTES {
            *self = Batch::default();
        }
        self.records.clear();
        self.lens.clear();
        self.hashes.clear();
        self.waiters.clear();
    }

    fn push(&mut self, entry: &[u8], hash: Hash, waiter: Waiter) {
        // Appenders reject entries over MAX_ENTRY_LEN, so the length fits in u32.
        let len = entry.len() as u32;
        self.records.extend_from_slice(&len.to_be_bytes());
        self.records.extend_from_slice(entry);
        self.records.extend_from_slice(&hash);
        self.lens.push(len);
        self.hashes.push(hash);
        self.waiters.push(waiter);
    }
}

struct State {
    batch: Batch,
    writer_waiting: bool,
    closed: bool,
}

/// The shared batch and the writer's wake-up.
pub(crate) struct Queue {
    state: Mutex<State>,
    ready: Condvar,
}

impl Queue {
    pub(crate) fn new() -> Queue {
        Queue {
            state: Mutex::new(State {
                batch: Batch::default(),
                writer_waiting: false,
                closed: false,
            }),
            ready: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hashes `entry` and adds its record; hands the waiter back if the
    /// writer has stopped.
    pub(crate) fn push(&self, entry: &[u8], waiter: Waiter) -> Result<(), Waiter> {
        let hash = leaf_hash(entry);
        let mut state = self.lock();
        if state.closed {
            return Err(waiter);
        }
        state.batch.push(entry, hash, waiter);
        if state.writer_waiting {
            state.writer_waiting = false;
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Waits until records are queued and swaps them into `spare` (which
    /// must be empty); false once the queue is closed and drained.
    pub(crate) fn take(&self, spare: &mut Batch) -> bool {
        let mut state = self.lock();
        while state.batch.waiters.is_empty() {
            if state.closed {
                return false;
            }
            state.writer_waiting = true;
            state = self
                .ready
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.writer_waiting = false;
        std::mem::swap(&mut state.batch, spare);
        true
    }

    /// Refuses further records and lets the writer finish what is queued.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        self.ready.notify_one();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::store::encode_record;
    use super::*;

    #[test]
    fn batch_frames_records_exactly_as_the_log_does() {
        let queue = Queue::new();
        let mut expected = Vec::new();
        let mut hashes = Vec::new();
        for entry in [&b"{\"a\":1}"[..], b"", b"{\"b\":\"x\"}"] {
            hashes.push(encode_record(entry, &mut expected));
            let noop = Waiter::Callback(Box::new(|_| {}));
            assert!(queue.push(entry, noop).is_ok());
        }
        let mut batch = Batch::default();
        assert!(queue.take(&mut batch));
        assert_eq!(batch.records, expected);
        assert_eq!(batch.hashes, hashes);
        assert_eq!(batch.lens, vec![7, 0, 9]);
    }

    #[test]
    fn clear_keeps_small_buffers_and_drops_large_ones() {
        let mut batch = Batch::default();
        batch.push(b"x", leaf_hash(b"x"), Waiter::Callback(Box::new(|_| {})));
        let kept = batch.records.capacity();
        batch.clear();
        assert!(batch.waiters.is_empty() && batch.records.is_empty());
        assert_eq!(batch.records.capacity(), kept);
        let big = vec![b'a'; KEEP_BYTES + 1];
        batch.push(&big, leaf_hash(&big), Waiter::Callback(Box::new(|_| {})));
        batch.clear();
        assert_eq!(batch.records.capacity(), 0);
    }

    #[test]
    fn take_swaps_the_batch_drains_after_close_then_stops() {
        let queue = Queue::new();
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        assert!(queue.push(b"x", Waiter::Blocking(tx.clone())).is_ok());
        queue.close();
        let mut spare = Batch::default();
        assert!(
            queue.take(&mut spare),
            "what was queued before close is written"
        );
        assert_eq!(spare.waiters.len(), 1);
        spare.waiters.pop().unwrap().finish(Ok(4));
        assert_eq!(rx.recv().unwrap().unwrap(), 4);
        spare.clear();
        assert!(!queue.take(&mut spare));
        let refused = queue.push(b"y", Waiter::Blocking(tx));
        assert!(refused.is_err(), "a closed queue takes no records");
    }
}
