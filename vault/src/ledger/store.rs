//! The on-disk ledger: `<data-dir>/ledger/`.
//!
//! `entries.log` is a sequence of records, each
//! `[u32 big-endian length n][n entry bytes][32-byte leaf hash SHA-256(0x00 ‖ entry)]`,
//! nothing else (no header). A record whose bytes stop before its end is a
//! torn write; a record whose stored hash does not match its bytes is
//! damaged. `checkpoints` holds the latest signed checkpoint note, replaced
//! atomically (temp file, fsync, rename, directory fsync).
//! `checkpoints.log` is an append-only history of notes, each framed as
//! `[u32 big-endian length][note bytes]`; it is only used to locate which
//! entries changed when the tree no longer matches the latest checkpoint.
//! `entries.idx` is a rebuildable cache of each record's offset and leaf
//! hash (see [`super::record_index`]); the scan at open brings it in line.
//!
//! At open, a damaged or torn *final* record (or a tail of zeros) that lies
//! beyond the last signed checkpoint is cut off: nothing acknowledged can be
//! there, because acknowledgement waits for fdatasync. Anything else is
//! tampering and the ledger refuses to open.
//!
//! **Preallocation.** The writer extends `entries.log` with written zeros
//! [`PREALLOCATE`] bytes at a time and then overwrites them with records in
//! place. An `fdatasync` after an in-place overwrite has no file size or
//! block allocation to commit, so it skips the filesystem journal and costs
//! about one device flush instead of two. The zero region past the last
//! record is not a record: a zero length prefix followed by zeros only is
//! where the log ends ([`scan`] and [`super::verify::parse_entries_log`]
//! stop there), and it is trimmed at open and on a clean close.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use super::checkpoint::{Checkpoint, NoteVerifier};
use super::merkle::{leaf_hash, Hash};
use super::record_index::{IndexSync, RecordIndex};
use super::tiles::TiledTree;
use super::LedgerError;

/// The largest entry the ledger accepts (16 MiB).
pub const MAX_ENTRY_LEN: usize = 16 << 20;
/// Bytes of framing around each entry: length prefix and leaf hash.
pub const RECORD_OVERHEAD: usize = 4 + 32;
/// Bytes of zeros the writer adds to `entries.log` when records would pass
/// its end (see the module documentation).
pub const PREALLOCATE: u64 = 4 << 20;

/// The files the writer writes, each through its own [`LogFile`] handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerFile {
    /// `entries.log`: records, preallocated, synced per batch.
    Entries,
    /// `entries.idx`: the derived index, never synced.
    Index,
}

/// File operations the writer needs, so tests can inject failures.
pub trait LogFile: Send {
    /// Writes all of `buf` at `offset`.
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// `fdatasync`.
    fn sync_data(&mut self) -> io::Result<()>;
    /// Truncates or extends the file.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// Writes zeros over `from..to` and makes them durable, so that later
    /// records overwrite allocated blocks.
    fn preallocate(&mut self, from: u64, to: u64) -> io::Result<()> {
        let zeros = vec![0u8; 1 << 20];
        let mut at = from;
        while at < to {
            let n = (to - at).min(zeros.len() as u64) as usize;
            self.write_all_at(&zeros[..n], at)?;
            at += n as u64;
        }
        self.sync_data()
    }
}

impl LogFile for File {
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(self, buf, offset)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        File::sync_data(self)
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
}

/// Appends the framed record for `entry` to `out` and returns its leaf hash.
pub fn encode_record(entry: &[u8], out: &mut Vec<u8>) -> Hash {
    let hash = leaf_hash(entry);
    // Callers reject entries over MAX_ENTRY_LEN, so the length fits in u32.
    out.extend_from_slice(&(entry.len() as u32).to_be_bytes());
    out.extend_from_slice(entry);
    out.extend_from_slice(&hash);
    hash
}

/// The file paths of a ledger directory.
#[derive(Debug, Clone)]
pub struct LedgerPaths {
    /// `<data-dir>/ledger`.
    pub dir: PathBuf,
    /// `entries.log`.
    pub entries: PathBuf,
    /// `entries.idx` (offset and leaf hash per entry; a cache of `entries.log`).
    pub index: PathBuf,
    /// `checkpoints` (latest signed note).
    pub checkpoint: PathBuf,
    /// `checkpoints.log` (history of notes).
    pub history: PathBuf,
}

impl LedgerPaths {
    /// Paths under `<data_dir>/ledger`.
    pub fn new(data_dir: &Path) -> Self {
        let dir = data_dir.join("ledger");
        Self {
            entries: dir.join("entries.log"),
            index: dir.join("entries.idx"),
            checkpoint: dir.join("checkpoints"),
            history: dir.join("checkpoints.log"),
            dir,
        }
    }
}

/// What went wrong at the first bad record during a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Defect {
    /// The file ends inside the record.
    Truncated,
    /// The stored hash does not match the bytes.
    HashMismatch,
    /// The length prefix exceeds [`MAX_ENTRY_LEN`].
    Oversized,
}

/// The first bad record found by [`scan`].
#[derive(Debug, Clone, Copy)]
struct Problem {
    index: u64,
    offset: u64,
    defect: Defect,
    /// Everything from the record's end (or the whole rest) is zero or absent.
    tail_is_empty: bool,
}

/// The valid prefix of `entries.log`.
pub(crate) struct Scan {
    problem: Option<Problem>,
    /// Where the last valid record ends.
    pub end: u64,
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Whether the rest of the reader holds only zero bytes.
fn rest_is_zero(r: &mut impl Read) -> io::Result<bool> {
    let mut buf = [0u8; 8192];
    loop {
        let n = read_full(r, &mut buf)?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        if n < buf.len() {
            return Ok(true);
        }
    }
}

/// Reads records until EOF or the first bad one, handing each valid
/// record's offset and leaf hash to `record`.
fn scan(r: &mut impl Read, record: &mut impl FnMut(u64, Hash)) -> io::Result<Scan> {
    let (mut count, mut offset) = (0u64, 0u64);
    let mut entry = Vec::new();
    loop {
        let stop = |problem| Scan {
            problem,
            end: offset,
        };
        let bad = |defect, tail_is_empty| Problem {
            index: count,
            offset,
            defect,
            tail_is_empty,
        };
        let mut len = [0u8; 4];
        let got = read_full(r, &mut len)?;
        if got == 0 {
            return Ok(stop(None));
        }
        let n = u32::from_be_bytes(len) as usize;
        if got == 4 && n == 0 {
            // Entries are never empty: zeros from here on are preallocated
            // space, where the log ends; anything else is damage.
            let zero = rest_is_zero(r)?;
            return Ok(stop((!zero).then(|| bad(Defect::HashMismatch, false))));
        }
        if got < 4 {
            return Ok(stop(Some(bad(Defect::Truncated, true))));
        }
        if n > MAX_ENTRY_LEN {
            let zero = len == [0; 4] && rest_is_zero(r)?;
            return Ok(stop(Some(bad(Defect::Oversized, zero))));
        }
        entry.resize(n + 32, 0);
        if read_full(r, &mut entry)? < n + 32 {
            return Ok(stop(Some(bad(Defect::Truncated, true))));
        }
        let hash = leaf_hash(&entry[..n]);
        if hash[..] != entry[n..] {
            let empty = rest_is_zero(r)?;
            return Ok(stop(Some(bad(Defect::HashMismatch, empty))));
        }
        record(offset, hash);
        count += 1;
        offset += (n + RECORD_OVERHEAD) as u64;
    }
}

/// A torn tail that was cut off at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// Index the torn record would have had.
    pub index: u64,
    /// File offset it started at; the file is now this long.
    pub offset: u64,
    /// Bytes removed.
    pub bytes_removed: u64,
}

/// The state recovered from disk.
pub(crate) struct Recovered {
    pub file: File,
    pub records: RecordIndex,
    /// The first entry from which `entries.idx` was rewritten or cut.
    pub index_repaired_from: Option<u64>,
    pub tree: TiledTree,
    pub end: u64,
    pub torn: Option<TornTail>,
    pub checkpoint: Option<(Checkpoint, String)>,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LedgerError + '_ {
    move |source| LedgerError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads and verifies the latest signed checkpoint, if any.
fn load_checkpoint(
    paths: &LedgerPaths,
    verifier: &NoteVerifier,
) -> Result<Option<(Checkpoint, String)>, LedgerError> {
    let note = match fs::read_to_string(&paths.checkpoint) {
        Ok(note) => note,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&paths.checkpoint)(e)),
    };
    let checkpoint = verifier
        .verify(&note)
        .map_err(|source| LedgerError::BadCheckpoint {
            path: paths.checkpoint.clone(),
            source,
        })?;
    Ok(Some((checkpoint, note)))
}

/// Opens `entries.log`, cuts a torn tail, brings `entries.idx` in line, and
/// checks the tree against the checkpoint.
pub(crate) fn recover(
    paths: &LedgerPaths,
    verifier: &NoteVerifier,
) -> Result<Recovered, LedgerError> {
    fs::create_dir_all(&paths.dir).map_err(io_err(&paths.dir))?;
    let checkpoint = load_checkpoint(paths, verifier)?;
    let signed = checkpoint.as_ref().map_or(0, |(c, _)| c.size);
    let path = &paths.entries;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_err(path))?;
    let (mut tree, mut sync) = (TiledTree::new(), IndexSync::open(&paths.index)?);
    let scan = scan(
        &mut BufReader::with_capacity(1 << 20, &file),
        &mut |offset, hash| {
            tree.push(hash);
            sync.push(offset, &hash);
        },
    )
    .map_err(io_err(path))?;
    let (end, torn) = cut_after_scan(&mut file, &scan, signed, path)?;
    let (records, index_repaired_from) = sync.finish()?;
    if let Some((cp, _)) = &checkpoint {
        check_against_checkpoint(paths, verifier, &tree, &records, cp)?;
    }
    Ok(Recovered {
        file,
        records,
        index_repaired_from,
        tree,
        end,
        torn,
        checkpoint,
    })
}

/// Cuts a torn tail or unused preallocated zeros after the last valid
/// record; returns where the records end and the torn tail cut.
fn cut_after_scan(
    file: &mut File,
    scan: &Scan,
    signed: u64,
    path: &Path,
) -> Result<(u64, Option<TornTail>), LedgerError> {
    let file_len = file.metadata().map_err(io_err(path))?.len();
    let torn = match scan.problem {
        None => None,
        Some(p) => Some(
            cut_torn_tail(file, p, signed, file_len).map_err(|e| match e {
                CutError::Io(source) => LedgerError::Io {
                    path: path.to_owned(),
                    source,
                },
                CutError::Tampered(reason) => LedgerError::Tampered {
                    index: p.index,
                    reason,
                },
            })?,
        ),
    };
    let end = torn.as_ref().map_or(scan.end, |t| t.offset);
    if torn.is_none() && end < file_len {
        // Unused preallocated zeros.
        file.set_len(end).map_err(io_err(path))?;
        file.sync_all().map_err(io_err(path))?;
    }
    Ok((end, torn))
}

enum CutError {
    Io(io::Error),
    Tampered(String),
}

/// Cuts the bad tail if it can only be an unacknowledged torn write.
fn cut_torn_tail(
    file: &mut File,
    p: Problem,
    signed: u64,
    file_len: u64,
) -> Result<TornTail, CutError> {
    let what = match p.defect {
        Defect::Truncated => "record runs past the end of the file",
        Defect::HashMismatch => "stored leaf hash does not match the entry bytes",
        Defect::Oversized => "length prefix exceeds the maximum entry size",
    };
    if p.index < signed {
        return Err(CutError::Tampered(format!(
            "{what} (covered by the signed checkpoint of size {signed})"
        )));
    }
    if !p.tail_is_empty {
        return Err(CutError::Tampered(format!("{what}, and records follow it")));
    }
    file.set_len(p.offset).map_err(CutError::Io)?;
    file.sync_all().map_err(CutError::Io)?;
    Ok(TornTail {
        index: p.index,
        offset: p.offset,
        bytes_removed: file_len - p.offset,
    })
}

/// The tree must hold the checkpoint's size and match its root.
fn check_against_checkpoint(
    paths: &LedgerPaths,
    verifier: &NoteVerifier,
    tree: &TiledTree,
    records: &RecordIndex,
    cp: &Checkpoint,
) -> Result<(), LedgerError> {
    if cp.size > tree.size() {
        return Err(LedgerError::Tampered {
            index: tree.size(),
            reason: format!(
                "log holds {} entries but the signed checkpoint covers {}",
                tree.size(),
                cp.size
            ),
        });
    }
    if tree.root(cp.size, records)? == cp.root {
        return Ok(());
    }
    let (lo, hi) = locate_change(paths, verifier, tree, records, cp.size);
    Err(LedgerError::Tampered {
        index: lo,
        reason: format!(
            "root over {} entries differs from the signed checkpoint; the first altered entry is in [{lo}, {hi})",
            cp.size
        ),
    })
}

/// Narrows where history changed using the checkpoint history: the largest
/// historic size whose root still matches, and the smallest that does not.
fn locate_change(
    paths: &LedgerPaths,
    verifier: &NoteVerifier,
    tree: &TiledTree,
    records: &RecordIndex,
    size: u64,
) -> (u64, u64) {
    let mut sizes: Vec<Checkpoint> = read_history(&paths.history)
        .into_iter()
        .filter_map(|note| verifier.verify(&note).ok())
        .filter(|c| c.size <= size)
        .collect();
    sizes.sort_by_key(|c| c.size);
    let matches = |c: &Checkpoint| tree.root(c.size, records).is_ok_and(|r| r == c.root);
    // Roots of prefixes that contain a changed entry never match again.
    let first_bad = sizes.partition_point(matches);
    let lo = first_bad.checked_sub(1).map_or(0, |i| sizes[i].size);
    let hi = sizes.get(first_bad).map_or(size, |c| c.size);
    (lo, hi)
}

/// Notes in `checkpoints.log`, stopping at the first torn record.
fn read_history(path: &Path) -> Vec<String> {
    let Ok(bytes) = fs::read(path) else {
        return Vec::new();
    };
    let (mut notes, mut rest) = (Vec::new(), &bytes[..]);
    while rest.len() >= 4 {
        let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let Some(note) = rest.get(4..4 + n) else {
            break;
        };
        notes.extend(std::str::from_utf8(note).ok().map(str::to_owned));
        rest = &rest[4 + n..];
    }
    notes
}

/// Durably replaces `checkpoints` with `note` and appends it to the history.
pub(crate) fn persist_checkpoint(paths: &LedgerPaths, note: &str) -> Result<(), LedgerError> {
    let tmp = paths.dir.join("checkpoints.tmp");
    let write_tmp = || -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        Write::write_all(&mut f, note.as_bytes())?;
        f.sync_all()
    };
    write_tmp().map_err(io_err(&tmp))?;
    fs::rename(&tmp, &paths.checkpoint).map_err(io_err(&paths.checkpoint))?;
    File::open(&paths.dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(&paths.dir))?;
    let mut framed = (note.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(note.as_bytes());
    let mut history = OpenOptions::new()
        .append(true)
        .create(true)
        .open(&paths.history)
        .map_err(io_err(&paths.history))?;
    Write::write_all(&mut history, &framed).map_err(io_err(&paths.history))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn log_of(entries: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for e in entries {
            encode_record(e, &mut out);
        }
        out
    }

    #[test]
    fn record_layout_is_len_entry_hash() {
        let bytes = log_of(&[b"ab"]);
        assert_eq!(&bytes[..4], &[0, 0, 0, 2]);
        assert_eq!(&bytes[4..6], b"ab");
        assert_eq!(&bytes[6..], &leaf_hash(b"ab"));
    }

    /// Scans `bytes`, returning the scan and how many valid records it handed out.
    fn scan_counting(bytes: &[u8]) -> (Scan, u64) {
        let mut count = 0;
        let s = scan(&mut &bytes[..], &mut |_, _| count += 1).unwrap();
        (s, count)
    }

    #[test]
    fn scan_classifies_truncation_and_damage() {
        let bytes = log_of(&[b"one", b"two", b"three"]);
        let (s, count) = scan_counting(&bytes[..bytes.len() - 5]);
        let p = s.problem.unwrap();
        assert_eq!(
            (count, p.index, p.defect, p.tail_is_empty),
            (2, 2, Defect::Truncated, true)
        );
        let mut flipped = bytes.clone();
        flipped[4 + 3 + 32 + 4] ^= 1; // first byte of "two"
        let p = scan(&mut &flipped[..], &mut |_, _| {})
            .unwrap()
            .problem
            .unwrap();
        assert_eq!(
            (p.index, p.defect, p.tail_is_empty),
            (1, Defect::HashMismatch, false)
        );
        let mut zeros = bytes.clone();
        zeros.extend_from_slice(&[0; 100]);
        let (s, count) = scan_counting(&zeros);
        assert!(s.problem.is_none(), "a zero tail is preallocated space");
        assert_eq!((count, s.end), (3, bytes.len() as u64));
        let mut torn_into_zeros = bytes[..bytes.len() - 5].to_vec();
        torn_into_zeros.extend_from_slice(&[0; 100]);
        let p = scan(&mut &torn_into_zeros[..], &mut |_, _| {})
            .unwrap()
            .problem
            .unwrap();
        assert_eq!(
            (p.index, p.defect, p.tail_is_empty),
            (2, Defect::HashMismatch, true)
        );
        let mut zeros_then_data = zeros.clone();
        zeros_then_data.push(1);
        let p = scan(&mut &zeros_then_data[..], &mut |_, _| {})
            .unwrap()
            .problem
            .unwrap();
        assert_eq!((p.index, p.tail_is_empty), (3, false));
        let s = scan(&mut &bytes[..], &mut |_, _| {}).unwrap();
        assert!(s.problem.is_none());
        assert_eq!(s.end, bytes.len() as u64);
    }
}
