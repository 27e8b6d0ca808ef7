//! Reading a suspected leaked file (CSV with a header, JSON Lines, or
//! Parquet) into what tracing needs: a level sample of its pseudonym
//! tokens ([`TokenSketch`]) and, per column, the distinct ranges
//! (`[lo,hi)`) and bands (`lo-hi`) it shows. CSV and JSON Lines are read
//! in one streaming pass with bounded memory; a Parquet file (recognized
//! by its leading `PAR1`) must be held whole, up to a bound
//! ([`super::parquet`]).

use std::collections::{HashMap, HashSet};
use std::io::{self, BufRead, Read};

use csv_core::{ReadRecordResult, Reader};
use serde::{Deserialize, Serialize};

use super::parquet::{self, PARQUET_MAGIC, PARQUET_MAX_BYTES};
use super::sketch::TokenSketch;

/// Most tokens sampled from a leaked file (8 MiB or so).
pub const LEAK_CAPACITY: usize = 1 << 20;
/// Most distinct ranges or bands kept per column.
const MAX_CELLS: usize = 1 << 16;
/// Longest field accepted (bytes).
const MAX_FIELD: usize = 1 << 20;
/// Most columns accepted.
pub(super) const MAX_COLUMNS: usize = 4096;

/// Why a file could not be read for tracing; the text names the problem.
#[derive(Debug, thiserror::Error)]
pub enum LeakError {
    /// Reading failed.
    #[error("reading the file failed: {0}")]
    Io(#[from] io::Error),
    /// The content is not CSV, JSON Lines or Parquet as extracts are
    /// written.
    #[error("{0}")]
    Format(String),
    /// A Parquet file larger than can be held in memory to be read.
    #[error("the Parquet file is larger than {limit} bytes")]
    TooLarge {
        /// The bound, in bytes.
        limit: u64,
    },
}

/// One column of a leaked file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LeakColumn {
    /// Its header (CSV) or key (JSON Lines).
    pub name: String,
    /// Distinct `[lo,hi)` ranges.
    pub ranges: HashSet<(i64, i64)>,
    /// Distinct `lo-hi` bands.
    pub bands: HashSet<(i64, i64)>,
}

impl LeakColumn {
    fn observe(&mut self, cell: &str) {
        if let Some(r) = parse_range(cell) {
            if self.ranges.len() < MAX_CELLS {
                self.ranges.insert(r);
            }
        } else if let Some(b) = parse_band(cell) {
            if self.bands.len() < MAX_CELLS {
                self.bands.insert(b);
            }
        }
    }
}

/// What tracing keeps of a leaked file. It serializes, so a file can be
/// read in a process of its own and its `Leak` handed back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Leak {
    /// The sampled pseudonym tokens.
    pub tokens: TokenSketch,
    /// Every column, in file order.
    pub columns: Vec<LeakColumn>,
    /// Data rows read.
    pub rows: u64,
    /// Sampled tokens by number of trailing zero bits (0 to 64).
    levels: Vec<u64>,
}

impl Leak {
    pub(super) fn new(names: Vec<String>) -> Self {
        let columns = names
            .into_iter()
            .map(|name| LeakColumn {
                name,
                ..LeakColumn::default()
            })
            .collect();
        Self {
            tokens: TokenSketch::new(LEAK_CAPACITY),
            columns,
            rows: 0,
            levels: vec![0; 65],
        }
    }

    /// Sampled tokens at `level` or above.
    pub fn tokens_at(&self, level: u32) -> u64 {
        let from = usize::try_from(level).unwrap_or(usize::MAX);
        self.levels.iter().skip(from).sum()
    }

    fn count_levels(&mut self) {
        self.levels = vec![0; 65];
        for t in self.tokens.at(0) {
            self.levels[t.trailing_zeros() as usize] += 1;
        }
    }

    pub(super) fn observe(&mut self, column: usize, cell: &str) {
        let cell = cell.strip_prefix('\'').unwrap_or(cell).trim();
        if cell.is_empty() || self.tokens.observe(cell) {
            return;
        }
        if let Some(c) = self.columns.get_mut(column) {
            c.observe(cell);
        }
    }

    /// Reads a leaked file: Parquet if it starts with `PAR1` (held whole,
    /// at most [`PARQUET_MAX_BYTES`]), JSON Lines if its first character
    /// is `{`, else CSV whose first record is the header. A UTF-8 BOM and
    /// leading whitespace are skipped.
    pub fn read(input: impl BufRead) -> Result<Leak, LeakError> {
        Self::read_bounded(input, PARQUET_MAX_BYTES)
    }

    /// [`Leak::read`], holding at most `parquet_limit` bytes of a Parquet
    /// file ([`LeakError::TooLarge`] beyond).
    pub fn read_bounded(input: impl BufRead, parquet_limit: u64) -> Result<Leak, LeakError> {
        Self::read_bounded_with(input, parquet_limit, Self::read_parquet)
    }

    /// [`Leak::read_bounded`], with a held Parquet file read by `parquet`
    /// (the server reads it in a process of its own, since the `parquet`
    /// crate can panic on malformed input).
    pub fn read_bounded_with(
        mut input: impl BufRead,
        parquet_limit: u64,
        parquet: impl FnOnce(Vec<u8>) -> Result<Leak, LeakError>,
    ) -> Result<Leak, LeakError> {
        let mut head = [0u8; 4];
        let n = read_prefix(&mut input, &mut head)?;
        let input = (&head[..n]).chain(input);
        if head[..n] == PARQUET_MAGIC[..] {
            return parquet(hold(input, parquet_limit)?);
        }
        Self::read_text(input)
    }

    /// Reads a whole Parquet file (see [`super::parquet`]).
    pub fn read_parquet(file: Vec<u8>) -> Result<Leak, LeakError> {
        parquet::read(file)?.finish()
    }

    fn read_text(mut input: impl BufRead) -> Result<Leak, LeakError> {
        if input.fill_buf()?.starts_with("\u{feff}".as_bytes()) {
            input.consume(3);
        }
        let leak = match skip_whitespace(&mut input)? {
            None => return Err(LeakError::Format("the file is empty".into())),
            Some(b'{') => read_jsonl(input)?,
            Some(_) => read_csv(input)?,
        };
        leak.finish()
    }

    /// Refuses a file without rows; counts the sampled tokens' levels.
    fn finish(mut self) -> Result<Leak, LeakError> {
        if self.rows == 0 {
            return Err(LeakError::Format("the file has no data rows".into()));
        }
        self.count_levels();
        Ok(self)
    }
}

/// Reads up to `head.len()` bytes (fewer only at the end of the input).
fn read_prefix(input: &mut impl Read, head: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < head.len() {
        match input.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Consumes leading ASCII whitespace; the first other byte, if any.
fn skip_whitespace(input: &mut impl BufRead) -> io::Result<Option<u8>> {
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Ok(None);
        }
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => {
                let first = buf[i];
                input.consume(i);
                return Ok(Some(first));
            }
            None => {
                let all = buf.len();
                input.consume(all);
            }
        }
    }
}

/// The whole of `input`, refused beyond `limit` bytes.
fn hold(input: impl Read, limit: u64) -> Result<Vec<u8>, LeakError> {
    let mut file = Vec::new();
    input.take(limit.saturating_add(1)).read_to_end(&mut file)?;
    if file.len() as u64 > limit {
        return Err(LeakError::TooLarge { limit });
    }
    Ok(file)
}

fn read_jsonl(input: impl BufRead) -> Result<Leak, LeakError> {
    let mut leak = Leak::new(Vec::new());
    let mut index: HashMap<String, usize> = HashMap::new();
    for (n, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&line)
            .map_err(|e| LeakError::Format(format!("line {}: not a JSON object: {e}", n + 1)))?;
        for (key, value) in object {
            let Some(text) = value.as_str() else { continue };
            let next = index.len();
            let column = *index.entry(key.clone()).or_insert(next);
            if column == leak.columns.len() {
                if column >= MAX_COLUMNS {
                    return Err(LeakError::Format("too many distinct keys".into()));
                }
                leak.columns.push(LeakColumn {
                    name: key,
                    ..LeakColumn::default()
                });
            }
            leak.observe(column, text);
        }
        leak.rows += 1;
    }
    Ok(leak)
}

/// Streams CSV records through `csv_core`; the first is the header.
fn read_csv(mut input: impl BufRead) -> Result<Leak, LeakError> {
    let mut reader = Reader::new();
    let (mut field, mut ends) = (vec![0u8; 4096], vec![0usize; 64]);
    let (mut out_len, mut ends_len) = (0, 0);
    let mut leak: Option<Leak> = None;
    let mut line = 1u64;
    loop {
        let chunk = input.fill_buf()?;
        let (result, read, written, ended) =
            reader.read_record(chunk, &mut field[out_len..], &mut ends[ends_len..]);
        input.consume(read);
        out_len += written;
        ends_len += ended;
        match result {
            ReadRecordResult::InputEmpty => {}
            ReadRecordResult::OutputFull => {
                grow(&mut field, MAX_FIELD * 4, "a record is too long")?
            }
            ReadRecordResult::OutputEndsFull => grow(&mut ends, MAX_COLUMNS, "too many columns")?,
            ReadRecordResult::Record => {
                let record = cells(&field[..out_len], &ends[..ends_len], line)?;
                take_record(&mut leak, record);
                (out_len, ends_len) = (0, 0);
                line += 1;
            }
            ReadRecordResult::End => break,
        }
    }
    leak.ok_or_else(|| LeakError::Format("the file is empty".into()))
}

fn grow<T: Default + Clone>(buf: &mut Vec<T>, max: usize, problem: &str) -> Result<(), LeakError> {
    if buf.len() >= max {
        return Err(LeakError::Format(problem.into()));
    }
    buf.resize(buf.len() * 2, T::default());
    Ok(())
}

fn cells<'a>(data: &'a [u8], ends: &[usize], line: u64) -> Result<Vec<&'a str>, LeakError> {
    let text = std::str::from_utf8(data)
        .map_err(|_| LeakError::Format(format!("record {line} is not UTF-8")))?;
    let mut start = 0;
    Ok(ends
        .iter()
        .map(|&end| {
            let cell = text.get(start..end).unwrap_or("");
            start = end;
            cell
        })
        .collect())
}

fn take_record(leak: &mut Option<Leak>, record: Vec<&str>) {
    match leak {
        None => *leak = Some(Leak::new(record.iter().map(|s| (*s).to_owned()).collect())),
        Some(l) => {
            for (i, cell) in record.iter().enumerate() {
                l.observe(i, cell);
            }
            l.rows += 1;
        }
    }
}

/// `[lo,hi)` with integer bounds, `lo < hi`.
pub fn parse_range(cell: &str) -> Option<(i64, i64)> {
    let (lo, hi) = cell.strip_prefix('[')?.strip_suffix(')')?.split_once(',')?;
    let (lo, hi): (i64, i64) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
    (lo < hi).then_some((lo, hi))
}

/// `lo-hi` with non-negative integer bounds, `lo <= hi`.
pub fn parse_band(cell: &str) -> Option<(i64, i64)> {
    let (lo, hi) = cell.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(lo) || !digits(hi) {
        return None;
    }
    let (lo, hi): (i64, i64) = (lo.parse().ok()?, hi.parse().ok()?);
    (lo <= hi).then_some((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Malformed CSV and JSON Lines (mutations of valid files) are read
    /// or refused, never a panic: the server reads them, and release
    /// builds abort on panic.
    #[test]
    fn mutated_leaks_are_read_or_refused() {
        let (mut csv, mut jsonl) = (Vec::new(), Vec::new());
        crate::sample::write_csv(30, 3, &mut csv).unwrap();
        crate::sample::write_jsonl(30, 3, &mut jsonl).unwrap();
        for (name, seed) in [("csv", csv), ("jsonl", jsonl)] {
            let (mut read, mut refused) = (0, 0);
            for file in crate::mutate::mutations(&seed, 3000) {
                match Leak::read(file.as_slice()) {
                    Ok(leak) => {
                        read += 1;
                        assert!(leak.rows > 0, "{name}");
                    }
                    Err(LeakError::Format(_)) => refused += 1,
                    // Invalid UTF-8 in a JSON line (a 400 naming `file` too).
                    Err(LeakError::Io(e)) if e.kind() == io::ErrorKind::InvalidData => refused += 1,
                    Err(other) => panic!("{name}: {other:?}"),
                }
            }
            assert!(
                read >= 100 && refused >= 20,
                "{name}: {read} read, {refused} refused"
            );
        }
    }

    #[test]
    fn csv_and_jsonl_leaks_are_read_by_column() {
        let csv = "\u{feff}name,amount,age\r\nNAME-aaaaaaaaaaaaaaab,\"[1000,2000)\",30-39\r\n\
                   NAME-aaaaaaaaaaaaaaac,\"[0,2000)\",20-39\r\n,,\r\n";
        let leak = Leak::read(csv.as_bytes()).unwrap();
        assert_eq!(leak.rows, 3);
        assert_eq!(leak.tokens.len(), 2);
        let names: Vec<&str> = leak.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["name", "amount", "age"]);
        assert_eq!(leak.columns[1].ranges.len(), 2);
        assert!(leak.columns[2].bands.contains(&(20, 39)));

        let jsonl = "{\"amount\":\"[1000,2000)\",\"id\":7,\"name\":\"NAME-aaaaaaaaaaaaaaab\"}\n";
        let leak = Leak::read(jsonl.as_bytes()).unwrap();
        assert_eq!((leak.rows, leak.tokens.len()), (1, 1));
        assert!(leak.columns[0].ranges.contains(&(1000, 2000)));
    }

    #[test]
    fn empty_and_malformed_files_are_refused() {
        for bad in ["", "  \n", "a,b\r\n"] {
            assert!(
                matches!(Leak::read(bad.as_bytes()), Err(LeakError::Format(_))),
                "{bad:?}"
            );
        }
        let err = Leak::read("{\"a\":1}\nnot json\n".as_bytes()).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        assert_eq!(parse_range("[5,1)"), None);
        assert_eq!(parse_band("2024-03"), None);
    }
}
