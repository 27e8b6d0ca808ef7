//! Working a selection's rowid span in chunks on several reader
//! connections at once, and handing the results over in chunk order.
//!
//! The span is cut into runs of [`CHUNK_ROWS`] rowids. Reader `i` of `W`
//! works chunks `i`, `i + W`, `i + 2W`, … on its own connection and queues
//! each result (at most [`QUEUED`] waiting per reader); the calling thread
//! takes chunk 0 from reader 0, chunk 1 from reader 1, and so on, so the
//! results arrive in rowid order while the readers run ahead. Memory is
//! bounded by `W × (QUEUED + 1)` chunk results, whatever the span.
//!
//! When the caller stops (an error, or the client went away), it drops
//! the queues; each reader's next hand-over fails and the reader stops.

use std::sync::mpsc::{sync_channel, Receiver};

use rusqlite::Connection;

use super::query::RowidRange;
use super::ExtractError;

/// Rowids per chunk.
pub const CHUNK_ROWS: i64 = 4096;

/// Finished chunk results each reader may queue ahead of the caller.
const QUEUED: usize = 2;

/// Readers worth running here: the machine's cores, at most four.
pub fn readers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// How many chunks `span` is cut into.
fn count(span: RowidRange) -> usize {
    let width = i128::from(span.1) - i128::from(span.0) + 1;
    usize::try_from((width + i128::from(CHUNK_ROWS) - 1) / i128::from(CHUNK_ROWS)).unwrap_or(0)
}

/// The rowids of chunk `i` of `span`.
fn chunk(span: RowidRange, i: usize) -> RowidRange {
    let first = span.0.saturating_add(CHUNK_ROWS.saturating_mul(i as i64));
    (first, first.saturating_add(CHUNK_ROWS - 1).min(span.1))
}

/// Runs `work` on every chunk of `span`, spread over `conns` (one reader
/// thread each, fewer for a short span), and calls `take` with each result
/// in chunk order on the calling thread. The first error of either stops
/// everything and is returned.
pub fn in_order<T: Send>(
    conns: &mut [Connection],
    span: RowidRange,
    work: impl Fn(&Connection, RowidRange) -> Result<T, ExtractError> + Sync,
    mut take: impl FnMut(T) -> Result<(), ExtractError>,
) -> Result<(), ExtractError> {
    let chunks = count(span);
    let readers = conns.len().min(chunks);
    if readers == 0 {
        return Ok(());
    }
    std::thread::scope(|scope| {
        let mut queues: Vec<Receiver<Result<T, ExtractError>>> = Vec::with_capacity(readers);
        for (first, conn) in conns.iter_mut().take(readers).enumerate() {
            let (tx, rx) = sync_channel(QUEUED);
            queues.push(rx);
            let work = &work;
            scope.spawn(move || {
                for i in (first..chunks).step_by(readers) {
                    let result = work(conn, chunk(span, i));
                    let failed = result.is_err();
                    if tx.send(result).is_err() || failed {
                        break;
                    }
                }
            });
        }
        let result = (0..chunks).try_for_each(|i| {
            let next = queues[i % readers].recv().map_err(|_| reader_lost())?;
            take(next?)
        });
        drop(queues);
        result
    })
}

fn reader_lost() -> ExtractError {
    ExtractError::Io(std::io::Error::other("a reader of the dataset stopped"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conns(n: usize) -> Vec<Connection> {
        (0..n)
            .map(|_| Connection::open_in_memory().unwrap())
            .collect()
    }

    #[test]
    fn chunks_cover_the_span_exactly() {
        let span = (5, 5 + 3 * CHUNK_ROWS);
        assert_eq!(count(span), 4);
        assert_eq!(chunk(span, 0), (5, 4 + CHUNK_ROWS));
        assert_eq!(chunk(span, 3), (5 + 3 * CHUNK_ROWS, 5 + 3 * CHUNK_ROWS));
        assert_eq!(count((1, 1)), 1);
    }

    #[test]
    fn results_arrive_in_chunk_order_from_every_reader() {
        let span = (1, 10 * CHUNK_ROWS + 7);
        let mut seen = Vec::new();
        in_order(
            &mut conns(3),
            span,
            |_, range| Ok(range),
            |range| {
                seen.push(range);
                Ok(())
            },
        )
        .unwrap();
        let expected: Vec<RowidRange> = (0..11).map(|i| chunk(span, i)).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn the_first_error_stops_the_run() {
        let span = (1, 50 * CHUNK_ROWS);
        let mut taken = 0;
        let err = in_order(
            &mut conns(2),
            span,
            |_, range| match range.0 > 5 * CHUNK_ROWS {
                true => Err(reader_lost()),
                false => Ok(()),
            },
            |()| {
                taken += 1;
                Ok(())
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("stopped"), "{err}");
        assert_eq!(taken, 5);
        let stopped = in_order(&mut conns(2), span, |_, _| Ok(()), |()| Err(reader_lost()));
        assert!(stopped.is_err());
    }
}
