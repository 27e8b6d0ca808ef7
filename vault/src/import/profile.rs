//! Column profiling on a second thread, so detection overlaps parsing
//! and SQLCipher writes instead of adding to them.
//!
//! Values travel in batches of [`BATCH_ROWS`] rows (their bytes copied
//! into one buffer) over a channel [`IN_FLIGHT`] batches deep; spent
//! batches come back for reuse. Memory is bounded by those batches.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::{Scope, ScopedJoinHandle};

use crate::detect::ColumnProfiler;

use super::ImportError;

/// Rows per batch.
const BATCH_ROWS: usize = 2048;

/// Batches queued for the profiler at most.
const IN_FLIGHT: usize = 4;

/// Rows of values, column after column: `ends[k]` is where value `k` ends.
#[derive(Default)]
struct Batch {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

/// The sending side: feeds values to the profiler thread.
pub(super) struct Profiling<'scope> {
    columns: usize,
    batch: Batch,
    to_worker: Option<SyncSender<Batch>>,
    spent: Receiver<Batch>,
    worker: ScopedJoinHandle<'scope, Vec<ColumnProfiler>>,
}

impl<'scope> Profiling<'scope> {
    /// Starts the profiler thread for `columns` columns in `scope`.
    pub(super) fn start<'env>(scope: &'scope Scope<'scope, 'env>, columns: usize) -> Self {
        let (to_worker, batches) = sync_channel::<Batch>(IN_FLIGHT);
        let (give_back, spent) = sync_channel::<Batch>(IN_FLIGHT + 2);
        let worker = scope.spawn(move || profile(columns, &batches, &give_back));
        Profiling {
            columns,
            batch: Batch::default(),
            to_worker: Some(to_worker),
            spent,
            worker,
        }
    }

    /// Queues one value of the current row (`""` for a null).
    pub(super) fn value(&mut self, value: &str) {
        self.batch.buf.extend_from_slice(value.as_bytes());
        self.batch.ends.push(self.batch.buf.len());
    }

    /// Ends the current row; sends the batch when it is full.
    pub(super) fn end_row(&mut self) {
        if self.batch.ends.len() >= BATCH_ROWS * self.columns {
            self.send();
        }
    }

    fn send(&mut self) {
        let mut next = self.spent.try_recv().unwrap_or_default();
        next.buf.clear();
        next.ends.clear();
        let full = std::mem::replace(&mut self.batch, next);
        if let Some(tx) = &self.to_worker {
            // A send fails only if the worker is gone; `finish` reports it.
            let _ = tx.send(full);
        }
    }

    /// Sends the last values and waits for the profiles.
    pub(super) fn finish(mut self) -> Result<Vec<ColumnProfiler>, ImportError> {
        if !self.batch.ends.is_empty() {
            self.send();
        }
        self.to_worker = None;
        self.worker
            .join()
            .map_err(|_| ImportError::Io(std::io::Error::other("the profiler thread panicked")))
    }
}

/// The profiler thread: observes every value of every batch.
fn profile(
    columns: usize,
    batches: &Receiver<Batch>,
    give_back: &SyncSender<Batch>,
) -> Vec<ColumnProfiler> {
    let mut profilers = vec![ColumnProfiler::new(); columns];
    while let Ok(batch) = batches.recv() {
        let mut start = 0;
        for (k, &end) in batch.ends.iter().enumerate() {
            // Values were checked as UTF-8 before they were queued.
            if let Ok(v) = std::str::from_utf8(&batch.buf[start..end]) {
                profilers[k % columns].observe(v);
            }
            start = end;
        }
        let _ = give_back.try_send(batch);
    }
    profilers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_match_a_direct_profile() {
        let rows: Vec<[String; 2]> = (0..5000)
            .map(|i| [format!("{i}"), format!("1381234{:04}", i % 10_000)])
            .collect();
        let threaded = std::thread::scope(|s| {
            let mut p = Profiling::start(s, 2);
            for row in &rows {
                row.iter().for_each(|v| p.value(v));
                p.end_row();
            }
            p.finish().unwrap()
        });
        let mut direct = vec![ColumnProfiler::new(); 2];
        for row in &rows {
            direct[0].observe(&row[0]);
            direct[1].observe(&row[1]);
        }
        for (t, d) in threaded.into_iter().zip(direct) {
            assert_eq!(t.finish("c"), d.finish("c"));
        }
    }
}
