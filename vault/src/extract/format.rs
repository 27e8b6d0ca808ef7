//! The body formats of an extract: CSV (RFC 4180, UTF-8, optional BOM,
//! formula-safe cells), JSON Lines and Parquet; and the writer that hashes and
//! counts every byte it passes on, so the manifest's digest is that of the
//! body as delivered.

use std::io::{self, BufWriter, Write};
use std::sync::Mutex;

use ring::digest::{Context, SHA256};

use super::parquet::ParquetRows;
use crate::desensitize::csv_safe;

/// Buffer between the row writer and the sink (one chunk of the stream).
const BUFFER: usize = 64 * 1024;

/// The UTF-8 byte order mark, for Excel.
const BOM: &[u8] = "\u{feff}".as_bytes();

/// How an extract's body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// RFC 4180 CSV with a header line and CRLF line ends; `bom` puts a
    /// UTF-8 byte order mark first (Excel reads the file as UTF-8 then).
    Csv {
        /// Whether to start with a UTF-8 BOM.
        bom: bool,
    },
    /// One JSON object per line, keys in column order; empty cells are
    /// `null`.
    Jsonl,
    /// Apache Parquet, every column an optional UTF-8 string (see
    /// [`super::parquet`]).
    Parquet,
}

impl Format {
    /// The media type of the body.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv { .. } => "text/csv; charset=utf-8",
            Format::Jsonl => "application/x-ndjson",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }
}

/// Passes bytes to `inner`, hashing and counting them.
struct Digesting<W: Write> {
    inner: W,
    digest: Context,
    bytes: u64,
}

impl<W: Write> Write for Digesting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digest.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Where rows go: text lines, or a Parquet writer (which owns the buffer).
enum Sink<W: Write + Send> {
    Text(Box<BufWriter<Digesting<W>>>),
    Parquet(Box<ParquetRows<BufWriter<Digesting<W>>>>),
}

/// One chunk's rows, encoded off the writer's thread: text formats as their
/// bytes, Parquet as the cells (its writer encodes column by column).
pub(super) enum Encoded {
    /// CSV or JSON Lines, ready to write.
    Text(Vec<u8>),
    /// Every cell of every row, row after row.
    Cells(Vec<String>),
}

/// Chunk buffers kept for reuse: a few per reader, so a long extract does
/// not allocate (and hand the allocator) a large buffer per chunk.
const SPARE_BUFFERS: usize = 16;

/// Encodes rows of already desensitized cells in one format.
pub(super) struct Encoder {
    format: Format,
    /// JSON keys, each already encoded with its quotes and colon.
    keys: Vec<String>,
    /// Emptied text buffers of written chunks, for the next chunks.
    spare: Mutex<Vec<Vec<u8>>>,
}

impl Encoder {
    /// An encoder for columns `names`.
    pub(super) fn new(format: Format, names: &[String]) -> Self {
        let keys = names
            .iter()
            .map(|n| format!("{}:", json_string(n)))
            .collect();
        Self {
            format,
            keys,
            spare: Mutex::new(Vec::new()),
        }
    }

    /// An empty chunk (a reused buffer when one is spare).
    pub(super) fn chunk(&self) -> Encoded {
        if self.format == Format::Parquet {
            return Encoded::Cells(Vec::new());
        }
        let spare = self.spare.lock().ok().and_then(|mut s| s.pop());
        Encoded::Text(
            spare.unwrap_or_else(|| Vec::with_capacity(super::chunks::CHUNK_ROWS as usize * 128)),
        )
    }

    /// Takes back a written chunk's buffer for a later chunk.
    pub(super) fn recycle(&self, chunk: Encoded) {
        if let (Encoded::Text(mut buffer), Ok(mut spare)) = (chunk, self.spare.lock()) {
            if spare.len() < SPARE_BUFFERS {
                buffer.clear();
                spare.push(buffer);
            }
        }
    }

    /// Appends one row (one cell per column) to `chunk`.
    pub(super) fn row(&self, chunk: &mut Encoded, cells: &[String]) {
        match chunk {
            // Writing to a Vec cannot fail.
            Encoded::Text(out) if matches!(self.format, Format::Csv { .. }) => {
                let _ = csv_line(out, cells);
            }
            Encoded::Text(out) => {
                let _ = json_line(out, &self.keys, cells);
            }
            Encoded::Cells(all) => all.extend_from_slice(cells),
        }
    }
}

/// Writes encoded chunks in one format, hashing and counting the body.
pub(super) struct RowWriter<W: Write + Send> {
    out: Sink<W>,
    columns: usize,
}

impl<W: Write + Send> RowWriter<W> {
    /// A writer for columns `names`; writes the BOM and the CSV header.
    pub(super) fn new(sink: W, format: Format, names: &[String]) -> io::Result<Self> {
        let digesting = Digesting {
            inner: sink,
            digest: Context::new(&SHA256),
            bytes: 0,
        };
        let buffered = BufWriter::with_capacity(BUFFER, digesting);
        let out = match format {
            Format::Parquet => Sink::Parquet(Box::new(ParquetRows::new(buffered, names)?)),
            _ => Sink::Text(Box::new(buffered)),
        };
        let mut w = RowWriter {
            out,
            columns: names.len(),
        };
        if let (Format::Csv { bom }, Sink::Text(out)) = (format, &mut w.out) {
            if bom {
                out.write_all(BOM)?;
            }
            csv_line(out, names)?;
        }
        Ok(w)
    }

    /// Writes one chunk of an [`Encoder`] of the same format; returns it,
    /// written, for [`Encoder::recycle`].
    pub(super) fn chunk(&mut self, chunk: Encoded) -> io::Result<Encoded> {
        match (&mut self.out, &chunk) {
            (Sink::Text(out), Encoded::Text(bytes)) => out.write_all(bytes)?,
            (Sink::Parquet(rows), Encoded::Cells(cells)) => cells
                .chunks(self.columns.max(1))
                .try_for_each(|row| rows.row(row))?,
            _ => return Err(io::Error::other("an extract chunk of another format")),
        }
        Ok(chunk)
    }

    /// Flushes everything to the sink; returns it with the body's size and
    /// SHA-256 (lowercase hex).
    pub(super) fn finish(self) -> io::Result<(W, u64, String)> {
        let buffered = match self.out {
            Sink::Text(out) => *out,
            Sink::Parquet(rows) => rows.finish()?,
        };
        let mut digesting = buffered.into_inner().map_err(|e| e.into_error())?;
        digesting.flush()?;
        let hex = hex::encode(digesting.digest.finish());
        Ok((digesting.inner, digesting.bytes, hex))
    }
}

fn csv_line(out: &mut impl Write, cells: &[String]) -> io::Result<()> {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        write_csv_cell(out, &csv_safe(cell))?;
    }
    out.write_all(b"\r\n")
}

fn json_line(out: &mut impl Write, keys: &[String], cells: &[String]) -> io::Result<()> {
    out.write_all(b"{")?;
    for (i, (key, cell)) in keys.iter().zip(cells).enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        out.write_all(key.as_bytes())?;
        if cell.is_empty() {
            out.write_all(b"null")?;
        } else {
            out.write_all(json_string(cell).as_bytes())?;
        }
    }
    out.write_all(b"}\n")
}

/// A cell per RFC 4180: quoted (inner quotes doubled) when it holds a
/// comma, a quote, CR or LF; as is otherwise.
fn write_csv_cell(out: &mut impl Write, cell: &str) -> io::Result<()> {
    if !cell.contains([',', '"', '\r', '\n']) {
        return out.write_all(cell.as_bytes());
    }
    out.write_all(b"\"")?;
    out.write_all(cell.replace('"', "\"\"").as_bytes())?;
    out.write_all(b"\"")
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    // Serializing a str cannot fail.
    serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(format: Format, rows: &[&[&str]]) -> (String, u64, String) {
        let names = vec!["a".to_owned(), "b \"x\"".to_owned()];
        let mut w = RowWriter::new(Vec::new(), format, &names).unwrap();
        let encoder = Encoder::new(format, &names);
        for r in rows {
            let mut chunk = encoder.chunk();
            let cells: Vec<String> = r.iter().map(|s| s.to_string()).collect();
            encoder.row(&mut chunk, &cells);
            encoder.recycle(w.chunk(chunk).unwrap());
        }
        let (body, n, digest) = w.finish().unwrap();
        assert_eq!(n, body.len() as u64);
        assert_eq!(digest, hex::encode(ring::digest::digest(&SHA256, &body)));
        (String::from_utf8(body).unwrap(), n, digest)
    }

    #[test]
    fn csv_quotes_and_neutralizes_formulas() {
        let (text, ..) = write(
            Format::Csv { bom: false },
            &[
                &["1,2", "=SUM(A1)"],
                &["say \"hi\"", "line\nbreak"],
                &["", "张*"],
            ],
        );
        assert_eq!(
            text,
            "a,\"b \"\"x\"\"\"\r\n\"1,2\",'=SUM(A1)\r\n\"say \"\"hi\"\"\",\"line\nbreak\"\r\n,张*\r\n"
        );
        let (bom, ..) = write(Format::Csv { bom: true }, &[]);
        assert!(bom.starts_with('\u{feff}'));
    }

    #[test]
    fn jsonl_escapes_and_nulls() {
        let (text, ..) = write(Format::Jsonl, &[&["x\"\n", ""]]);
        assert_eq!(text, "{\"a\":\"x\\\"\\n\",\"b \\\"x\\\"\":null}\n");
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["a"], "x\"\n");
    }
}
