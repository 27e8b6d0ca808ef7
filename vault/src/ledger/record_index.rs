//! `entries.idx`: the derived index of `entries.log`.
//!
//! One [`INDEX_RECORD_LEN`]-byte record per entry, entry `i` at byte
//! `40·i`: the byte offset of its record in `entries.log` (u64 big-endian)
//! and its 32-byte leaf hash. With it the ledger finds any entry's bytes and
//! any tile's leaf hashes with one positioned read, and keeps neither in
//! memory (see [`super::tiles`]).
//!
//! It is a cache of `entries.log`, never the truth. The writer writes a
//! batch's index records with one positioned write just before the batch's
//! log records (a failed index write leaves the log untouched), publishes
//! the new size only after both, and never syncs the index: at open,
//! `IndexSync` compares it with the scan of `entries.log` (which
//! hash-checks every record), rewrites it from the first record that is
//! missing or differs, and cuts it to the log's length (which also drops
//! the records of a batch whose log write failed).

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, ErrorKind, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::merkle::Hash;
use super::tiles::{LeafSource, Tile, TILE_WIDTH};
use super::LedgerError;

/// Bytes per entry in `entries.idx`: an 8-byte offset and a 32-byte leaf hash.
pub const INDEX_RECORD_LEN: u64 = 40;

/// Bytes buffered by [`IndexSync`] before one positioned write.
const SYNC_WRITE_CHUNK: usize = 1 << 20;

/// The index record of an entry at `offset` with leaf hash `hash`.
pub(crate) fn encode(offset: u64, hash: &Hash) -> [u8; INDEX_RECORD_LEN as usize] {
    let mut rec = [0u8; INDEX_RECORD_LEN as usize];
    rec[..8].copy_from_slice(&offset.to_be_bytes());
    rec[8..].copy_from_slice(hash);
    rec
}

/// An open `entries.idx` whose records match `entries.log`.
pub(crate) struct RecordIndex {
    file: File,
    path: PathBuf,
}

impl RecordIndex {
    /// A second handle on the file, for the writer's appends.
    pub(crate) fn try_clone_file(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    /// The raw records of entries `[first, first + count)`.
    fn read(&self, first: u64, count: usize) -> Result<Vec<u8>, LedgerError> {
        let mut buf = vec![0u8; count * INDEX_RECORD_LEN as usize];
        self.file
            .read_exact_at(&mut buf, first * INDEX_RECORD_LEN)
            .map_err(|source| LedgerError::Io {
                path: self.path.clone(),
                source,
            })?;
        Ok(buf)
    }

    /// The byte offset in `entries.log` of entry `index` (below the size).
    pub(crate) fn offset(&self, index: u64) -> Result<u64, LedgerError> {
        let rec = self.read(index, 1)?;
        let mut offset = [0u8; 8];
        offset.copy_from_slice(&rec[..8]);
        Ok(u64::from_be_bytes(offset))
    }
}

impl LeafSource for RecordIndex {
    fn tile(&self, tile: u64) -> Result<Box<Tile>, LedgerError> {
        let buf = self.read(tile * TILE_WIDTH, TILE_WIDTH as usize)?;
        let mut leaves = Box::new([[0u8; 32]; TILE_WIDTH as usize]);
        for (leaf, rec) in leaves
            .iter_mut()
            .zip(buf.chunks_exact(INDEX_RECORD_LEN as usize))
        {
            leaf.copy_from_slice(&rec[8..]);
        }
        Ok(leaves)
    }

    fn leaf(&self, index: u64) -> Result<Hash, LedgerError> {
        let rec = self.read(index, 1)?;
        let mut leaf = [0u8; 32];
        leaf.copy_from_slice(&rec[8..]);
        Ok(leaf)
    }
}

/// Brings `entries.idx` in line with the records of a scan of `entries.log`,
/// fed to it in order with [`IndexSync::push`].
pub(crate) struct IndexSync {
    file: File,
    path: PathBuf,
    /// The existing index, read in step until the first difference.
    old: Option<BufReader<File>>,
    /// Records pushed so far.
    count: u64,
    /// The first record rewritten, once one differed.
    rewritten_from: Option<u64>,
    /// Rewritten records not yet written, the last of them record `count - 1`.
    pending: Vec<u8>,
    /// The first I/O error; later records are ignored.
    error: Option<io::Error>,
}

impl IndexSync {
    /// Opens (or creates) `entries.idx` at `path`.
    pub(crate) fn open(path: &Path) -> Result<Self, LedgerError> {
        let io_err = |source| LedgerError::Io {
            path: path.to_owned(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_err)?;
        let old = file.try_clone().map_err(io_err)?;
        Ok(Self {
            file,
            path: path.to_owned(),
            old: Some(BufReader::with_capacity(SYNC_WRITE_CHUNK, old)),
            count: 0,
            rewritten_from: None,
            pending: Vec::new(),
            error: None,
        })
    }

    /// The next entry of `entries.log`: its record offset and leaf hash.
    pub(crate) fn push(&mut self, offset: u64, hash: &Hash) {
        let index = self.count;
        self.count += 1;
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.compare_or_write(index, &encode(offset, hash)) {
            self.error = Some(e);
        }
    }

    fn compare_or_write(&mut self, index: u64, rec: &[u8]) -> io::Result<()> {
        if let Some(old) = &mut self.old {
            let mut have = [0u8; INDEX_RECORD_LEN as usize];
            if read_record(old, &mut have)? && have[..] == *rec {
                return Ok(());
            }
            self.old = None;
            self.rewritten_from = Some(index);
        }
        self.pending.extend_from_slice(rec);
        if self.pending.len() >= SYNC_WRITE_CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the pending records, the last of which is record `count - 1`.
    fn flush(&mut self) -> io::Result<()> {
        let first = self.count - self.pending.len() as u64 / INDEX_RECORD_LEN;
        self.file
            .write_all_at(&self.pending, first * INDEX_RECORD_LEN)?;
        self.pending.clear();
        Ok(())
    }

    /// Writes what is pending and cuts the index after the last record.
    ///
    /// Returns the index and the first entry from which it was rewritten
    /// or cut (`None` when it already matched the log exactly).
    pub(crate) fn finish(mut self) -> Result<(RecordIndex, Option<u64>), LedgerError> {
        let path = self.path.clone();
        let io_err = |source| LedgerError::Io {
            path: path.clone(),
            source,
        };
        if let Some(e) = self.error.take() {
            return Err(io_err(e));
        }
        self.flush().map_err(io_err)?;
        let want = self.count * INDEX_RECORD_LEN;
        let len = self.file.metadata().map_err(io_err)?.len();
        let mut repaired = self.rewritten_from;
        if len != want {
            self.file.set_len(want).map_err(io_err)?;
            repaired = repaired.or(Some(self.count));
        }
        Ok((
            RecordIndex {
                file: self.file,
                path: self.path,
            },
            repaired,
        ))
    }
}

/// Reads one whole record; `false` at the end of the file or in a torn one.
fn read_record(r: &mut impl Read, rec: &mut [u8]) -> io::Result<bool> {
    let mut got = 0;
    while got < rec.len() {
        match r.read(&mut rec[got..]) {
            Ok(0) => return Ok(false),
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::fs::{self, OpenOptions};
    use std::path::Path;
    use std::sync::mpsc;
    use std::time::Duration;

    use zeroize::Zeroizing;

    use super::super::merkle::{leaf_hash, MerkleTree};
    use super::super::{Ledger, LedgerOptions, LedgerPaths, OpenReport};
    use super::*;

    /// Checkpoints only after the first batch, so later entries may be cut.
    fn open(dir: &Path) -> (Ledger, OpenReport) {
        let options = LedgerOptions {
            checkpoint_interval: Duration::from_secs(3600),
        };
        Ledger::open(dir, "appliance-test", Zeroizing::new([7u8; 32]), options).unwrap()
    }

    fn bodies(tag: &str, n: u64) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("{{\"{tag}\":{i}}}").into_bytes())
            .collect()
    }

    /// Appends `entries` concurrently, so that they share batches.
    fn fill(ledger: &Ledger, entries: &[Vec<u8>]) {
        let (tx, rx) = mpsc::channel();
        for e in entries {
            let tx = tx.clone();
            let done = Box::new(move |r| tx.send(r).unwrap());
            ledger.submit(e, super::super::queue::Waiter::Callback(done));
        }
        for _ in entries {
            rx.recv().unwrap().unwrap();
        }
    }

    /// Every answer of `ledger` equals that of a full tree over `want`.
    fn assert_answers(ledger: &Ledger, want: &[Vec<u8>]) {
        let n = want.len() as u64;
        assert_eq!(ledger.size(), n);
        assert_eq!(ledger.entries(0, n).unwrap(), want);
        let mut full = MerkleTree::new();
        want.iter().for_each(|e| full.push(leaf_hash(e)));
        for i in 0..n {
            assert_eq!(
                ledger.leaf_hash(i).unwrap(),
                full.leaf(i).unwrap(),
                "leaf {i}"
            );
        }
        for size in 0..=n {
            assert_eq!(
                ledger.root(size).unwrap(),
                full.root(size).unwrap(),
                "size {size}"
            );
        }
        for size in [1, 255, 256, 257, 511, 512, 513, n]
            .into_iter()
            .filter(|&s| s <= n)
        {
            for i in (0..size).step_by(7) {
                let proof = ledger.inclusion_proof(i, size).unwrap();
                assert_eq!(
                    proof,
                    full.inclusion_proof(i, size).unwrap(),
                    "{i} in {size}"
                );
            }
            for first in (0..=size).step_by(5) {
                let proof = ledger.consistency_proof(first, size).unwrap();
                assert_eq!(proof, full.consistency_proof(first, size).unwrap());
            }
        }
        let ranges = [(250, 260), (255, 513), (n - 1, n), (n, n)];
        for (a, b) in ranges.into_iter().filter(|&(_, b)| b <= n) {
            let got = ledger.entries(a, b).unwrap();
            assert_eq!(got, want[a as usize..b as usize], "entries({a}, {b})");
        }
        assert!(ledger.entries(0, n + 1).is_err());
    }

    /// What is done to `entries.idx`, and the entry it must be repaired from.
    type Damage = (&'static str, fn(&mut Vec<u8>), Option<u64>);

    #[test]
    fn ledger_index_missing_short_long_or_garbage_is_rebuilt_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let want = bodies("entry", 700);
        let (ledger, report) = open(dir.path());
        assert_eq!(report.index_repaired_from, None);
        fill(&ledger, &want[..1]);
        fill(&ledger, &want[1..]);
        drop(ledger);
        let path = LedgerPaths::new(dir.path()).index;
        let good = fs::read(&path).unwrap();
        assert_eq!(good.len() as u64, 700 * INDEX_RECORD_LEN);

        fs::remove_file(&path).unwrap();
        let (ledger, report) = open(dir.path());
        assert_eq!((report.entries, report.index_repaired_from), (700, Some(0)));
        assert_answers(&ledger, &want);
        drop(ledger);
        assert!(fs::read(&path).unwrap() == good, "deleted: rebuilt exactly");

        let damage: [Damage; 6] = [
            ("intact", |_| {}, None),
            (
                "cut inside record 300",
                |b| b.truncate(300 * 40 + 7),
                Some(300),
            ),
            (
                "hash of record 520 changed",
                |b| b[520 * 40 + 20] ^= 0xff,
                Some(520),
            ),
            (
                "offset of record 10 changed",
                |b| b[10 * 40 + 7] ^= 1,
                Some(10),
            ),
            ("all garbage", |b| b.fill(0xa5), Some(0)),
            (
                "longer than the log",
                |b| b.extend_from_slice(&[0x5a; 100]),
                Some(700),
            ),
        ];
        for (what, edit, repaired) in damage {
            let mut bytes = good.clone();
            edit(&mut bytes);
            fs::write(&path, &bytes).unwrap();
            let (ledger, report) = open(dir.path());
            assert_eq!(report.index_repaired_from, repaired, "{what}");
            assert_answers(&ledger, &want);
            drop(ledger);
            assert!(fs::read(&path).unwrap() == good, "{what}: rebuilt exactly");
        }
    }

    #[test]
    fn ledger_torn_log_tail_cut_at_open_also_shortens_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut want = bodies("entry", 300);
        let (ledger, _) = open(dir.path());
        fill(&ledger, &want[..1]);
        fill(&ledger, &want[1..]);
        drop(ledger);
        let paths = LedgerPaths::new(dir.path());
        let log = OpenOptions::new().write(true).open(&paths.entries).unwrap();
        log.set_len(log.metadata().unwrap().len() - 5).unwrap();

        let (ledger, report) = open(dir.path());
        assert_eq!(report.torn_tail.map(|t| t.index), Some(299));
        assert_eq!(
            (report.entries, report.index_repaired_from),
            (299, Some(299))
        );
        assert_eq!(
            fs::metadata(&paths.index).unwrap().len(),
            299 * INDEX_RECORD_LEN
        );
        want.truncate(299);
        let later = bodies("a longer entry appended after the cut", 2);
        fill(&ledger, &later);
        want.extend(later);
        assert_answers(&ledger, &want);
        drop(ledger);
        let (ledger, report) = open(dir.path());
        assert_eq!((report.entries, report.index_repaired_from), (301, None));
        assert_answers(&ledger, &want);
    }

    #[test]
    fn ledger_index_cut_while_open_is_an_io_error_naming_it_and_rebuilt_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let want = bodies("entry", 600);
        let (ledger, _) = open(dir.path());
        fill(&ledger, &want);
        let path = LedgerPaths::new(dir.path()).index;
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        let names_index =
            |e: LedgerError| matches!(e, LedgerError::Io { path: p, .. } if p == path);
        assert!(names_index(ledger.inclusion_proof(3, 600).unwrap_err()));
        assert!(names_index(ledger.entries(0, 1).unwrap_err()));
        assert!(names_index(ledger.leaf_hash(0).unwrap_err()));
        // The root over the current size and the last tile need no reads.
        assert!(ledger.root(600).is_ok());
        assert_eq!(ledger.leaf_hash(599).unwrap(), leaf_hash(&want[599]));
        drop(ledger);
        let (ledger, report) = open(dir.path());
        assert_eq!(report.index_repaired_from, Some(0));
        assert_answers(&ledger, &want);
    }
}
