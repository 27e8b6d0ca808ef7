//! The streaming import engine: CSV (RFC 4180, with a header row) or JSON
//! Lines into a dataset's encrypted file, in one transaction, profiling
//! every value of every column on the way.
//!
//! All or nothing: the rows go into the table `rows` (one `TEXT` column per
//! header column, in header order) inside a single transaction. Any error
//! rolls it back, so a failed import leaves no trace of its rows; a
//! successful one replaces any earlier rows atomically. After a row error
//! the input is still scanned to the end, so the caller learns how many
//! rows are bad ([`ImportError::Rows`]), but nothing is written.
//!
//! Memory stays flat: the input is read through a fixed window, decoded
//! on the fly, and a record is held only while it is checked, profiled and
//! inserted. A field larger than [`ImportOptions::max_field_bytes`] is
//! refused as soon as the limit is passed; the rest of it is skipped
//! without being buffered.
//!
//! What it refuses: an empty input, binary data, a header with empty,
//! duplicate (ASCII case-insensitively, as SQLite compares identifiers) or
//! formula-like names (`=`, `+`, `-`, `@`, tab or CR first: spreadsheet
//! formula injection), ragged rows, invalid UTF-8 (or GB18030).
//!
//! Data values that look like formulas are stored as they are: they are
//! data. Anything that writes them into a spreadsheet-bound file (CSV
//! extracts) must neutralize them there.

use std::io::Read;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::dataset_file::DatasetFile;
use crate::detect::ColumnProfiler;
use crate::schema::ColumnSchema;

mod csv;
mod header;
mod input;
mod jsonl;
mod profile;
mod table;
#[cfg(test)]
mod tests;

use input::{Input, Sniffed};
use profile::Profiling;

/// The input format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// RFC 4180 CSV with a header row.
    #[default]
    Csv,
    /// One JSON object per line; the first object's keys, in order, are
    /// the columns, and every later object has the same keys.
    #[serde(rename = "jsonl")]
    JsonLines,
}

/// The text encoding of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TextEncoding {
    /// UTF-8 (a leading byte-order mark is skipped).
    #[default]
    #[serde(rename = "utf-8")]
    Utf8,
    /// GB18030, which includes GBK and GB2312.
    #[serde(rename = "gb18030")]
    Gb18030,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "csv" => Ok(Self::Csv),
            "jsonl" | "ndjson" | "json-lines" => Ok(Self::JsonLines),
            _ => Err(format!("unknown format {s:?}; expected csv or jsonl")),
        }
    }
}

impl FromStr for TextEncoding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Ok(Self::Utf8),
            "gb18030" | "gbk" | "gb2312" => Ok(Self::Gb18030),
            _ => Err(format!("unknown encoding {s:?}; expected utf-8 or gb18030")),
        }
    }
}

/// How to import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// CSV or JSON Lines.
    pub format: Format,
    /// UTF-8 or GB18030.
    pub encoding: TextEncoding,
    /// The largest field accepted, in bytes of UTF-8 (default 1 MiB).
    pub max_field_bytes: usize,
    /// How many row errors [`ImportError::Rows`] lists (default 100); the
    /// total is always counted.
    pub max_reported_errors: usize,
    /// Header names that must be present, flagged as quasi-identifiers in
    /// the report (a missing one is an [`ImportError::Header`], before any
    /// row is written).
    pub quasi_identifiers: Vec<String>,
    /// When set, the only header names allowed (the fields a sharing
    /// application approved); any other column is an
    /// [`ImportError::Header`], before any row is written.
    pub allowed_columns: Option<Vec<String>>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            format: Format::Csv,
            encoding: TextEncoding::Utf8,
            max_field_bytes: 1024 * 1024,
            max_reported_errors: 100,
            quasi_identifiers: Vec::new(),
            allowed_columns: None,
        }
    }
}

/// One bad row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    /// The 1-based line of the input where the row starts (the CSV header
    /// is line 1).
    pub line: u64,
    /// The column, by header name, when the problem is in one field.
    pub column: Option<String>,
    /// What is wrong.
    pub problem: String,
}

/// A successful import.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportReport {
    /// Rows written.
    pub rows: u64,
    /// Bytes of input read (before decoding).
    pub bytes: u64,
    /// The profiled schema of each column, in header order.
    pub columns: Vec<ColumnSchema>,
    /// SHA-256 (hex) of the rows written, as
    /// [`crate::lifecycle::erase::content_digest`] computes it from the file.
    pub content_sha256: String,
}

/// Why an import failed. In every case nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The input holds no header (or no JSON object).
    #[error("the input is empty")]
    Empty,
    /// The header is unusable; `problem` names the column.
    #[error("bad header: {problem}")]
    Header {
        /// What is wrong, naming the column.
        problem: String,
    },
    /// Some rows are bad: the first few and the total.
    #[error("{total} bad rows; first at line {}: {}",
        first.first().map_or(0, |e| e.line),
        first.first().map_or("", |e| e.problem.as_str()))]
    Rows {
        /// How many rows are bad.
        total: u64,
        /// The first [`ImportOptions::max_reported_errors`] of them.
        first: Vec<RowError>,
    },
    /// The input is binary, not text (NUL bytes or many control
    /// characters), first seen at this line.
    #[error("binary data at line {line}; expected CSV or JSON Lines text")]
    Binary {
        /// The 1-based line.
        line: u64,
    },
    /// The dataset file failed.
    #[error("dataset file: {0}")]
    Store(#[from] rusqlite::Error),
    /// Reading the input failed.
    #[error("reading the input: {0}")]
    Io(#[from] std::io::Error),
}

/// One record: its fields' bytes in `buf`, located by `fields`.
#[derive(Debug, Default)]
struct Record {
    /// Field bytes; only `buf[..used]` belongs to this record.
    buf: Vec<u8>,
    used: usize,
    fields: Vec<Field>,
    /// The line the record starts on.
    line: u64,
}

/// Where one field's bytes are in [`Record::buf`]; `None` for JSON null.
type Field = Option<(usize, usize)>;

impl Record {
    fn field(&self, i: usize) -> Option<&[u8]> {
        self.fields
            .get(i)
            .copied()
            .flatten()
            .map(|(s, e)| &self.buf[s..e])
    }
}

/// What a parser found next.
enum Next {
    /// A record with as many fields as the header, in [`Record`].
    Row,
    /// A bad row (wrong field count, oversized field, bad JSON).
    Bad(RowError),
    /// The end of the input.
    End,
}

/// A parser of one format.
trait Records<R: Read> {
    /// Reads the header (for JSON Lines, the first object's keys).
    fn header(&mut self, input: &mut Input<R>) -> Result<Vec<String>, ImportError>;
    /// Reads the next record into `rec`.
    fn next(&mut self, input: &mut Input<R>, rec: &mut Record) -> Result<Next, ImportError>;
}

/// Imports `input` into `dataset`'s table `rows` in one transaction,
/// calling `progress(rows, bytes)` as it goes. See the module docs.
pub fn import_rows(
    input: impl Read,
    dataset: &mut DatasetFile,
    opts: &ImportOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ImportReport, ImportError> {
    let mut input = Input::new(input, opts.encoding);
    match input.sniff()? {
        Sniffed::Empty => return Err(ImportError::Empty),
        Sniffed::Binary(line) => return Err(ImportError::Binary { line }),
        Sniffed::Text => {}
    }
    let max = opts.max_field_bytes.max(1);
    let mut records: Box<dyn Records<_>> = match opts.format {
        Format::Csv => Box::new(csv::CsvRecords::new(max)),
        Format::JsonLines => Box::new(jsonl::JsonRecords::new(max)),
    };
    let names = records.header(&mut input)?;
    header::check(&names, &opts.quasi_identifiers)?;
    if let Some(allowed) = &opts.allowed_columns {
        let excess: Vec<&str> = names
            .iter()
            .filter(|n| !allowed.contains(n))
            .map(String::as_str)
            .collect();
        if !excess.is_empty() {
            return Err(ImportError::Header {
                problem: format!(
                    "columns {excess:?} exceed the fields approved in the sharing application"
                ),
            });
        }
    }
    let mut copy = Copy {
        input,
        records: records.as_mut(),
        names: &names,
        opts,
        progress,
    };
    let ((rows, profilers), content_sha256) =
        table::in_transaction(dataset.connection_mut(), &names, |t| copy.run(t))?;
    let columns = header::schemas(&names, profilers, &opts.quasi_identifiers);
    let bytes = copy.input.raw_bytes();
    (copy.progress)(rows, bytes);
    Ok(ImportReport {
        rows,
        bytes,
        columns,
        content_sha256,
    })
}

/// Rows between two progress calls.
const PROGRESS_EVERY: u64 = 16 * 1024;

/// The copy loop's state.
struct Copy<'a, R> {
    input: Input<R>,
    records: &'a mut dyn Records<R>,
    names: &'a [String],
    opts: &'a ImportOptions,
    progress: &'a mut dyn FnMut(u64, u64),
}

impl<R: Read> Copy<'_, R> {
    /// Reads every record: checks, profiles and inserts each while no row
    /// has failed, only checks after that. Returns the row count and the
    /// column profiles, or every row error.
    fn run(
        &mut self,
        table: &mut table::Table<'_>,
    ) -> Result<(u64, Vec<ColumnProfiler>), ImportError> {
        std::thread::scope(|scope| {
            let mut profiling = Profiling::start(scope, self.names.len());
            let copied = self.copy_rows(table, &mut profiling);
            let profilers = profiling.finish()?;
            Ok((copied?, profilers))
        })
    }

    fn copy_rows(
        &mut self,
        table: &mut table::Table<'_>,
        profiling: &mut Profiling<'_>,
    ) -> Result<u64, ImportError> {
        let mut errors = Errors::new(self.opts.max_reported_errors);
        let mut rec = Record::default();
        let mut rows = 0u64;
        loop {
            match self.records.next(&mut self.input, &mut rec)? {
                Next::End => break,
                Next::Bad(e) => errors.push(e),
                Next::Row => {
                    let clean = errors.total == 0;
                    match self.store(&rec, table, profiling, clean)? {
                        Some(e) => errors.push(e),
                        None if clean => table.insert()?,
                        None => {}
                    }
                }
            }
            rows += 1;
            if rows.is_multiple_of(PROGRESS_EVERY) {
                (self.progress)(rows, self.input.raw_bytes());
            }
        }
        errors.into_result()?;
        Ok(rows)
    }

    /// Checks one record's fields (UTF-8, no NUL); when `bind`, binds them
    /// and queues them for profiling (a row that turns out bad leaves a
    /// partial row in the profiles, which a failed import discards).
    /// Returns the row's first problem.
    fn store(
        &self,
        rec: &Record,
        table: &mut table::Table<'_>,
        profiling: &mut Profiling<'_>,
        bind: bool,
    ) -> Result<Option<RowError>, ImportError> {
        if rec.buf[..rec.used].contains(&0) {
            return Err(ImportError::Binary { line: rec.line });
        }
        for i in 0..self.names.len() {
            let Some(bytes) = rec.field(i) else {
                if bind {
                    table.bind_null(i)?;
                    profiling.value("");
                }
                continue;
            };
            let value = match std::str::from_utf8(bytes) {
                Ok(v) => v,
                Err(e) => return Ok(Some(self.encoding_error(rec.line, i, e))),
            };
            if bind {
                table.bind(i, value)?;
                profiling.value(value);
            }
        }
        if bind {
            profiling.end_row();
        }
        Ok(None)
    }

    fn encoding_error(&self, line: u64, column: usize, e: std::str::Utf8Error) -> RowError {
        let encoding = match self.opts.encoding {
            TextEncoding::Utf8 => "UTF-8",
            TextEncoding::Gb18030 => "GB18030",
        };
        RowError {
            line,
            column: Some(self.names[column].clone()),
            problem: format!(
                "not valid {encoding} (at byte {} of the field)",
                e.valid_up_to()
            ),
        }
    }
}

/// Row errors: the first `cap` and the total.
struct Errors {
    cap: usize,
    total: u64,
    first: Vec<RowError>,
}

impl Errors {
    fn new(cap: usize) -> Self {
        Errors {
            cap,
            total: 0,
            first: Vec::new(),
        }
    }

    fn push(&mut self, e: RowError) {
        self.total += 1;
        if self.first.len() < self.cap {
            self.first.push(e);
        }
    }

    fn into_result(self) -> Result<(), ImportError> {
        if self.total == 0 {
            return Ok(());
        }
        Err(ImportError::Rows {
            total: self.total,
            first: self.first,
        })
    }
}
