//! RFC 4180 CSV records, read with `csv-core` into buffers this module
//! owns, so a field's size is checked while it is read: a field past the
//! limit is refused and the rest of its record is skipped through a small
//! scratch buffer, never held. Blank lines are skipped; line numbers count
//! `\n`, so a quoted field spanning lines moves the next record's line on.

use std::io::{self, Read};

use csv_core::{ReadRecordResult, Reader};

use super::header::{shown, MAX_COLUMNS};
use super::input::Input;
use super::{ImportError, Next, Record, Records, RowError};

/// Initial record buffer.
const MIN_BUF: usize = 16 * 1024;

/// How a record ended up.
enum Raw {
    /// A record with this many fields, in the record buffer.
    Record { fields: usize },
    /// Field `column` (0-based) passed the size limit.
    TooLarge { column: usize },
    /// More fields than allowed; this many in all.
    TooMany { fields: usize },
    /// No more records.
    End,
}

/// The CSV parser.
pub(super) struct CsvRecords {
    core: Reader,
    max_field: usize,
    columns: Vec<String>,
    ends: Vec<usize>,
    scratch: Vec<u8>,
    scratch_ends: Vec<usize>,
}

impl CsvRecords {
    pub(super) fn new(max_field: usize) -> Self {
        CsvRecords {
            core: Reader::new(),
            max_field,
            columns: Vec::new(),
            ends: Vec::new(),
            scratch: vec![0; 8 * 1024],
            scratch_ends: vec![0; 64],
        }
    }

    /// Consumes blank lines (and the `\n` of a previous CRLF) so that the
    /// parser's line count is the record's first line.
    fn skip_blank_lines<R: Read>(&mut self, input: &mut Input<R>) -> io::Result<()> {
        loop {
            let chunk = input.fill()?;
            let skip = chunk
                .iter()
                .position(|&b| b != b'\n' && b != b'\r')
                .unwrap_or(chunk.len());
            let newlines = chunk[..skip].iter().filter(|&&b| b == b'\n').count() as u64;
            let all = skip == chunk.len() && skip > 0;
            input.consume(skip);
            self.core.set_line(self.core.line() + newlines);
            if !all {
                return Ok(());
            }
        }
    }

    /// Reads one record of at most `max_fields` fields into `rec.buf` and
    /// `self.ends`.
    fn raw_record<R: Read>(
        &mut self,
        input: &mut Input<R>,
        rec: &mut Record,
        max_fields: usize,
    ) -> io::Result<Raw> {
        self.skip_blank_lines(input)?;
        rec.line = self.core.line();
        if rec.buf.len() < MIN_BUF {
            rec.buf.resize(MIN_BUF, 0);
        }
        self.ends.resize(max_fields + 1, 0);
        let (mut out, mut nends) = (0, 0);
        let mut overflow = None;
        loop {
            let chunk = input.fill()?;
            let (res, nin, nout, nend) = match overflow {
                None => self
                    .core
                    .read_record(chunk, &mut rec.buf[out..], &mut self.ends[nends..]),
                Some(_) => self
                    .core
                    .read_record(chunk, &mut self.scratch, &mut self.scratch_ends),
            };
            input.consume(nin);
            match &mut overflow {
                None => (out, nends) = (out + nout, nends + nend),
                Some(Raw::TooMany { fields }) => *fields += nend,
                Some(_) => {}
            }
            match res {
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull if overflow.is_none() => {
                    overflow = self.grow(rec, out, nends);
                }
                ReadRecordResult::OutputEndsFull if overflow.is_none() => {
                    overflow = Some(Raw::TooMany { fields: nends });
                }
                ReadRecordResult::OutputFull | ReadRecordResult::OutputEndsFull => {}
                ReadRecordResult::Record => {
                    rec.used = out;
                    return Ok(overflow.unwrap_or(Raw::Record { fields: nends }));
                }
                ReadRecordResult::End => return Ok(Raw::End),
            }
        }
    }

    /// Grows the record buffer, unless the field being read is already
    /// past the limit.
    fn grow(&self, rec: &mut Record, out: usize, nends: usize) -> Option<Raw> {
        let start = nends.checked_sub(1).map_or(0, |i| self.ends[i]);
        let field = out - start;
        if field > self.max_field {
            return Some(Raw::TooLarge { column: nends });
        }
        let wanted = out + (self.max_field - field) + 1;
        rec.buf
            .resize((rec.buf.len() * 2).min(wanted).max(out + 1), 0);
        None
    }

    /// Fills `rec.fields` from `self.ends`; the first oversized field, if
    /// any (one can fit a buffer grown for an earlier record).
    fn locate(&self, rec: &mut Record, fields: usize) -> Option<usize> {
        rec.fields.clear();
        let mut start = 0;
        let mut too_large = None;
        for (i, &end) in self.ends[..fields].iter().enumerate() {
            if end - start > self.max_field && too_large.is_none() {
                too_large = Some(i);
            }
            rec.fields.push(Some((start, end)));
            start = end;
        }
        too_large
    }

    fn column(&self, i: usize) -> String {
        self.columns
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("field {}", i + 1))
    }

    fn too_large(&self, line: u64, column: usize) -> RowError {
        RowError {
            line,
            column: Some(self.column(column)),
            problem: format!("field is larger than {} bytes", self.max_field),
        }
    }

    fn field_count(&self, line: u64, found: usize) -> RowError {
        RowError {
            line,
            column: None,
            problem: format!("expected {} fields, found {found}", self.columns.len()),
        }
    }
}

impl<R: Read> Records<R> for CsvRecords {
    fn header(&mut self, input: &mut Input<R>) -> Result<Vec<String>, ImportError> {
        let mut rec = Record::default();
        let problem = match self.raw_record(input, &mut rec, MAX_COLUMNS)? {
            Raw::End => return Err(ImportError::Empty),
            Raw::TooLarge { column } => format!("column {} name is too long", column + 1),
            Raw::TooMany { fields } => {
                format!("{fields} columns; at most {MAX_COLUMNS} are allowed")
            }
            Raw::Record { fields } => {
                let oversized = self.locate(&mut rec, fields);
                if let Some(column) = oversized {
                    format!("column {} name is too long", column + 1)
                } else {
                    return self.names(&rec, fields);
                }
            }
        };
        Err(ImportError::Header { problem })
    }

    fn next(&mut self, input: &mut Input<R>, rec: &mut Record) -> Result<Next, ImportError> {
        let expected = self.columns.len();
        Ok(match self.raw_record(input, rec, expected)? {
            Raw::End => Next::End,
            Raw::TooLarge { column } => Next::Bad(self.too_large(rec.line, column)),
            Raw::TooMany { fields } => Next::Bad(self.field_count(rec.line, fields)),
            Raw::Record { fields } if fields != expected => {
                Next::Bad(self.field_count(rec.line, fields))
            }
            Raw::Record { fields } => match self.locate(rec, fields) {
                Some(column) => Next::Bad(self.too_large(rec.line, column)),
                None => Next::Row,
            },
        })
    }
}

impl CsvRecords {
    /// The header names, remembered for error messages.
    fn names(&mut self, rec: &Record, fields: usize) -> Result<Vec<String>, ImportError> {
        let mut names = Vec::with_capacity(fields);
        for i in 0..fields {
            let bytes = rec.field(i).unwrap_or_default();
            let name = std::str::from_utf8(bytes).map_err(|_| ImportError::Header {
                problem: format!(
                    "column {} name {:?} is not valid text in the declared encoding",
                    i + 1,
                    shown(&String::from_utf8_lossy(bytes))
                ),
            })?;
            names.push(name.to_owned());
        }
        self.columns.clone_from(&names);
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::TextEncoding;

    /// (line, fields) of every record, or the error/bad-row line.
    fn lines(text: &str) -> Vec<(u64, Vec<String>)> {
        let mut input = Input::new(text.as_bytes(), TextEncoding::Utf8);
        let mut csv = CsvRecords::new(1024);
        let header = csv.header(&mut input).unwrap();
        let mut out = vec![(1, header)];
        let mut rec = Record::default();
        loop {
            match csv.next(&mut input, &mut rec).unwrap() {
                Next::End => return out,
                Next::Bad(e) => out.push((e.line, vec![e.problem])),
                Next::Row => {
                    let fields = (0..rec.fields.len())
                        .map(|i| String::from_utf8(rec.field(i).unwrap().to_vec()).unwrap())
                        .collect();
                    out.push((rec.line, fields));
                }
            }
        }
    }

    #[test]
    fn line_numbers_survive_crlf_blank_lines_and_quoted_newlines() {
        let got = lines("a,b\r\n1,2\r\n\r\n\"x\ny\",3\n4,5");
        let want: Vec<(u64, Vec<String>)> = vec![
            (1, vec!["a".into(), "b".into()]),
            (2, vec!["1".into(), "2".into()]),
            (4, vec!["x\ny".into(), "3".into()]),
            (6, vec!["4".into(), "5".into()]),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn ragged_rows_and_big_fields_are_bad_rows() {
        let big = "x".repeat(5000);
        let got = lines(&format!("a,b\n1\n1,2,3,4\n{big},2\n5,6\n"));
        assert_eq!(got[1], (2, vec!["expected 2 fields, found 1".into()]));
        assert_eq!(got[2], (3, vec!["expected 2 fields, found 4".into()]));
        assert_eq!(got[3], (4, vec!["field is larger than 1024 bytes".into()]));
        assert_eq!(got[4], (5, vec!["5".into(), "6".into()]));
    }
}
