//! Reading a suspected leaked Parquet file (an extract issued as
//! `"format": "parquet"`, or one re-written by pandas) into the same
//! [`Leak`] the CSV and JSON Lines readers build, so scoring is unchanged.
//!
//! Parquet keeps its schema and row-group index in a footer at the end of
//! the file, so a Parquet file cannot be streamed: it is held whole in
//! memory, at most [`PARQUET_MAX_BYTES`] (the caller's own body limit may
//! be lower), and refused beyond with [`LeakError::TooLarge`]. What it
//! decodes is bounded apart from that: one page and one batch of
//! [`BATCH`] values of one column at a time, fed cell by cell into the
//! bounded [`Leak`].
//!
//! Every leaf column is read, by its dotted path; a null is an empty cell
//! (which tracing skips), strings are read as they are and other physical
//! types (integers, floats, booleans, legacy INT96 timestamps) as their
//! text. Pages may be uncompressed or compressed with any codec pyarrow
//! and polars write: Snappy (pandas' default), gzip, Brotli, zstd (polars'
//! default) or LZ4. LZO (which neither writes), a value that is not UTF-8,
//! a truncated file or a corrupt footer is a [`LeakError::Format`] naming
//! the column or the problem. Built on
//! the `parquet` crate's low-level reader (no arrow).

use std::borrow::Cow;

use bytes::Bytes;
use parquet::basic::Compression;
use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::data_type::{ByteArray, DataType, Int96};
use parquet::errors::ParquetError;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::{FileReader, SerializedFileReader};

use super::leak::{Leak, LeakError, MAX_COLUMNS};

/// The magic that starts and ends every Parquet file.
pub const PARQUET_MAGIC: &[u8; 4] = b"PAR1";
/// Largest Parquet file read (it is held whole in memory): 512 MiB.
pub const PARQUET_MAX_BYTES: u64 = 512 << 20;
/// Values decoded at a time from one column.
const BATCH: usize = 4096;
/// The smallest well-formed file: magic, footer length, magic.
const MIN_LEN: usize = 12;

fn format(problem: impl Into<String>) -> LeakError {
    LeakError::Format(problem.into())
}

fn corrupt(e: ParquetError) -> LeakError {
    format(format!("the Parquet file cannot be read: {e}"))
}

/// Reads a whole Parquet file into a [`Leak`] (rows counted, cells
/// observed; the caller finishes it).
pub(super) fn read(file: Vec<u8>) -> Result<Leak, LeakError> {
    check_magic(&file)?;
    let reader = SerializedFileReader::new(Bytes::from(file)).map_err(corrupt)?;
    let metadata = reader.metadata();
    check_codecs(metadata)?;
    let names = column_names(metadata);
    if names.len() > MAX_COLUMNS {
        return Err(format("too many columns"));
    }
    let mut leak = Leak::new(names.clone());
    for g in 0..reader.num_row_groups() {
        let group = reader.get_row_group(g).map_err(corrupt)?;
        let rows = group.metadata().num_rows();
        let rows = u64::try_from(rows).map_err(|_| format("a row group has negative rows"))?;
        leak.rows = leak.rows.saturating_add(rows);
        for (c, name) in names.iter().enumerate() {
            let column = group.get_column_reader(c).map_err(corrupt)?;
            read_column(&mut leak, c, name, column)?;
        }
    }
    Ok(leak)
}

/// `PAR1` first and last: a file cut short loses its footer and its end.
fn check_magic(file: &[u8]) -> Result<(), LeakError> {
    if !file.starts_with(PARQUET_MAGIC) {
        return Err(format("not a Parquet file: it does not start with PAR1"));
    }
    if file.len() < MIN_LEN || !file.ends_with(PARQUET_MAGIC) {
        return Err(format(
            "the Parquet file is truncated or corrupt: it does not end with PAR1 (no footer)",
        ));
    }
    Ok(())
}

/// Every column chunk must use a codec this build decodes.
fn check_codecs(metadata: &ParquetMetaData) -> Result<(), LeakError> {
    for group in metadata.row_groups() {
        for chunk in group.columns() {
            let codec = chunk.compression();
            if matches!(codec, Compression::LZO) {
                return Err(format(format!(
                    "column {} is compressed with LZO; tracing reads uncompressed, Snappy, \
                     gzip, Brotli, zstd or LZ4 Parquet (re-write it with compression='zstd')",
                    chunk.column_path().string()
                )));
            }
        }
    }
    Ok(())
}

fn column_names(metadata: &ParquetMetaData) -> Vec<String> {
    let schema = metadata.file_metadata().schema_descr();
    schema.columns().iter().map(|c| c.path().string()).collect()
}

/// Observes every value of one column chunk, rendered as text.
fn read_column(
    leak: &mut Leak,
    index: usize,
    name: &str,
    column: ColumnReader,
) -> Result<(), LeakError> {
    match column {
        ColumnReader::ByteArrayColumnReader(r) => each(r, leak, index, |v| utf8(v, name)),
        ColumnReader::FixedLenByteArrayColumnReader(r) => each(r, leak, index, |v| utf8(v, name)),
        ColumnReader::BoolColumnReader(r) => each(r, leak, index, |v| text(v)),
        ColumnReader::Int32ColumnReader(r) => each(r, leak, index, |v| text(v)),
        ColumnReader::Int64ColumnReader(r) => each(r, leak, index, |v| text(v)),
        ColumnReader::FloatColumnReader(r) => each(r, leak, index, |v| text(v)),
        ColumnReader::DoubleColumnReader(r) => each(r, leak, index, |v| text(v)),
        ColumnReader::Int96ColumnReader(r) => each(r, leak, index, |v: &Int96| {
            Ok(Cow::Owned(v.to_nanos().to_string()))
        }),
    }
}

fn text(value: &dyn std::fmt::Display) -> Result<Cow<'static, str>, LeakError> {
    Ok(Cow::Owned(value.to_string()))
}

fn utf8<'a>(value: &'a ByteArray, column: &str) -> Result<Cow<'a, str>, LeakError> {
    value
        .as_utf8()
        .map(Cow::Borrowed)
        .map_err(|_| format(format!("column {column} holds a value that is not UTF-8")))
}

/// Decodes a column chunk [`BATCH`] records at a time; nulls are skipped
/// (only the non-null values are decoded), every value is observed.
fn each<T: DataType>(
    mut reader: ColumnReaderImpl<T>,
    leak: &mut Leak,
    index: usize,
    render: impl for<'a> Fn(&'a T::T) -> Result<Cow<'a, str>, LeakError>,
) -> Result<(), LeakError> {
    let (mut defs, mut reps) = (Vec::with_capacity(BATCH), Vec::with_capacity(BATCH));
    let mut values = Vec::with_capacity(BATCH);
    loop {
        let (records, _, levels) = reader
            .read_records(BATCH, Some(&mut defs), Some(&mut reps), &mut values)
            .map_err(corrupt)?;
        for value in &values {
            leak.observe(index, &render(value)?);
        }
        if records == 0 && levels == 0 {
            return Ok(());
        }
        defs.clear();
        reps.clear();
        values.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;

    use parquet::data_type::{ByteArrayType, DoubleType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    use super::*;
    use crate::dataset_file::DatasetFile;
    use crate::desensitize::{grant_key, Desensitizer, FingerprintKey, Policy, Tier};
    use crate::extract::{self, Format, Selection};
    use crate::keys::{DatasetKey, MasterKey};
    use crate::sample;
    use crate::schema::ColumnSchema;

    const COLUMNS: [&str; 5] = ["id", "name", "resident_id", "address", "amount"];

    /// A keyed dataset file of `rows` sample rows (seed 7), its key.
    fn dataset(dir: &std::path::Path, rows: u64) -> (std::path::PathBuf, DatasetKey) {
        let (path, key) = (dir.join("d.db"), DatasetKey::generate().unwrap());
        sample::dataset_file(&path, &key, rows, 7);
        (path, key)
    }

    /// One extract of [`COLUMNS`] under grant `g-1`, as `format`.
    fn extract_body(path: &std::path::Path, key: &DatasetKey, format: Format) -> Vec<u8> {
        let columns: Vec<ColumnSchema> = sample::column_schemas()
            .into_iter()
            .filter(|c| COLUMNS.contains(&c.name.as_str()))
            .collect();
        let root = MasterKey::from_bytes(&[3; 32]).unwrap().pseudonym_root();
        let gk = grant_key(&root, "g-1");
        let policy = Policy::default_v1();
        let mut d = Desensitizer::new(&columns, Tier::Two, &policy, &gk)
            .unwrap()
            .with_fingerprint(FingerprintKey::new(&gk, "spiffe://td/analyst/a/b"));
        let selection = Selection {
            columns: COLUMNS.iter().map(|s| s.to_string()).collect(),
            filter: None,
            row_limit: 100_000,
        };
        let mut file = DatasetFile::open_readers(path, key, 2).unwrap();
        let rows = AtomicU64::new(0);
        let (body, _) = extract::run(
            file.connections_mut(),
            &selection,
            &mut d,
            policy.k(),
            format,
            Vec::new(),
            &rows,
        )
        .unwrap();
        body
    }

    fn assert_same(a: &Leak, b: &Leak) {
        assert_eq!(a.rows, b.rows);
        let names = |l: &Leak| l.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(a), names(b));
        for (x, y) in a.columns.iter().zip(&b.columns) {
            assert_eq!((&x.ranges, &x.bands), (&y.ranges, &y.bands), "{}", x.name);
        }
        let tokens = |l: &Leak| {
            let mut t: Vec<u64> = l.tokens.at(0).collect();
            t.sort_unstable();
            t
        };
        assert_eq!(tokens(a), tokens(b));
        assert_eq!(a.tokens.level(), b.tokens.level());
        for level in 0..=64 {
            assert_eq!(a.tokens_at(level), b.tokens_at(level));
        }
    }

    #[test]
    fn a_parquet_extract_reads_as_the_csv_of_the_same_rows() {
        let dir = tempfile::tempdir().unwrap();
        let (path, key) = dataset(dir.path(), 3000);
        let csv = extract_body(&path, &key, Format::Csv { bom: true });
        let pq = extract_body(&path, &key, Format::Parquet);
        assert!(pq.starts_with(PARQUET_MAGIC) && pq.ends_with(PARQUET_MAGIC));
        let from_csv = Leak::read(csv.as_slice()).unwrap();
        let from_pq = Leak::read(pq.as_slice()).unwrap();
        assert_same(&from_csv, &from_pq);
        assert_same(&from_pq, &Leak::read_parquet(pq.clone()).unwrap());
        assert_eq!(from_pq.rows, 3000);
        let names: Vec<&str> = from_pq.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, COLUMNS);
        // The pseudonymized names and the generalized amounts were seen.
        assert!(from_pq.tokens.len() > 1000, "{}", from_pq.tokens.len());
        assert!(!from_pq.columns[4].ranges.is_empty());
    }

    #[test]
    fn truncated_and_corrupt_parquet_files_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let (path, key) = dataset(dir.path(), 200);
        let pq = extract_body(&path, &key, Format::Parquet);
        let problem = |bytes: &[u8]| match Leak::read(bytes) {
            Err(LeakError::Format(p)) => p,
            other => panic!("{:?}", other.map(|l| l.rows)),
        };
        let cut = problem(&pq[..pq.len() / 2]);
        assert!(cut.contains("truncated") && cut.contains("PAR1"), "{cut}");
        assert!(problem(b"PAR1").contains("truncated"));
        // The footer's length points before the file's start.
        let mut footer = pq.clone();
        let at = footer.len() - 8;
        footer[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let bad = problem(&footer);
        assert!(bad.starts_with("the Parquet file cannot be read"), "{bad}");
        assert!(bad.contains("too small"), "{bad}");
        // A footer of garbage.
        let mut garbage = pq.clone();
        let len = u32::from_le_bytes(garbage[at..at + 4].try_into().unwrap()) as usize;
        garbage[at - len..at].fill(0xff);
        let bad = problem(&garbage);
        assert!(bad.starts_with("the Parquet file cannot be read"), "{bad}");
        assert!(bad.contains("metadata"), "{bad}");
        // Held whole, so bounded.
        let limit = pq.len() as u64 - 1;
        assert!(matches!(
            Leak::read_bounded(pq.as_slice(), limit),
            Err(LeakError::TooLarge { limit: l }) if l == limit
        ));
        assert_eq!(
            Leak::read_bounded(pq.as_slice(), pq.len() as u64)
                .unwrap()
                .rows,
            200
        );
    }

    /// What pandas may write: an INT64 index column, a DOUBLE column,
    /// required and optional strings, nulls.
    fn pandas_like(codec: Compression) -> Vec<u8> {
        let schema = parse_message_type(
            "message schema { optional binary name (STRING); optional double score;
             required int64 __index_level_0__; }",
        )
        .unwrap();
        let props = WriterProperties::builder().set_compression(codec).build();
        let mut w =
            SerializedFileWriter::new(Vec::new(), Arc::new(schema), Arc::new(props)).unwrap();
        let mut group = w.next_row_group().unwrap();
        let mut col = group.next_column().unwrap().unwrap();
        let names: Vec<ByteArray> = ["NAME-aaaaaaaaaaaaaaab", "[0,1000)"]
            .iter()
            .map(|s| ByteArray::from(*s))
            .collect();
        col.typed::<ByteArrayType>()
            .write_batch(&names, Some(&[1, 0, 1]), None)
            .unwrap();
        col.close().unwrap();
        let mut col = group.next_column().unwrap().unwrap();
        col.typed::<DoubleType>()
            .write_batch(&[1.5], Some(&[0, 1, 0]), None)
            .unwrap();
        col.close().unwrap();
        let mut col = group.next_column().unwrap().unwrap();
        col.typed::<Int64Type>()
            .write_batch(&[17, 3, 42], None, None)
            .unwrap();
        col.close().unwrap();
        group.close().unwrap();
        w.into_inner().unwrap()
    }

    /// Two ranges in a column `amount`, as pyarrow 26 writes them with
    /// `compression="zstd"`.
    const ZSTD_FILE: &str = "UEFSMRUEFTYVSEwVBBUAEgAAKLUv/SAb2QAACAAAAFswLDEwMDApCwAAAFsxMDAwLDIwMDApFQA\
        VEhUkLBUEFRAVBhUGHAAAACi1L/0gCUkAAAIAAAAEAQEDAhUEGSw1ABgGc2NoZW1hFQIAFQwlAhgGYW1vdW50JQBMHAAA\
        ABYEGRwZHCYAHBUMGTUABhAZGAZhbW91bnQVDBYEFooBFq4BJmwmCCksFQQVABUCABUAFRAVAgA8FiYZBhkmAAQAAAAWig\
        EWBCYIFq4BACggcGFycXVldC1jcHAtYXJyb3cgdmVyc2lvbiAyNi4wLjEZHBwAAACaAAAAUEFSMQ==";

    fn zstd_file() -> Vec<u8> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(ZSTD_FILE)
            .unwrap()
    }

    #[test]
    fn a_zstd_file_from_pyarrow_is_read() {
        let leak = Leak::read(zstd_file().as_slice()).unwrap();
        assert_eq!(leak.rows, 2);
        assert_eq!(leak.columns[0].name, "amount");
        assert!(leak.columns[0].ranges.contains(&(0, 1000)));
        assert!(leak.columns[0].ranges.contains(&(1000, 2000)));
    }

    #[test]
    fn every_codec_reads_as_the_uncompressed_file() {
        let plain = Leak::read(pandas_like(Compression::UNCOMPRESSED).as_slice()).unwrap();
        for codec in [
            Compression::SNAPPY,
            Compression::GZIP(Default::default()),
            Compression::BROTLI(Default::default()),
            Compression::LZ4,
            Compression::LZ4_RAW,
            Compression::ZSTD(Default::default()),
        ] {
            let file = pandas_like(codec);
            let leak = Leak::read(file.as_slice()).unwrap_or_else(|e| panic!("{codec}: {e}"));
            assert_same(&plain, &leak);
        }
        assert_eq!(plain.rows, 3);
    }

    #[test]
    fn lzo_is_refused_naming_the_column() {
        // The footer's codec of column `amount`: ZSTD (6) becomes LZO (3),
        // zigzag-encoded in Thrift's compact protocol.
        let mut file = zstd_file();
        let at = file
            .windows(8)
            .position(|w| w == b"amount\x15\x0c")
            .expect("the column metadata's codec");
        file[at + 7] = 0x06;
        match Leak::read(file.as_slice()) {
            Err(LeakError::Format(p)) => assert_eq!(
                p,
                "column amount is compressed with LZO; tracing reads uncompressed, Snappy, \
                 gzip, Brotli, zstd or LZ4 Parquet (re-write it with compression='zstd')"
            ),
            other => panic!("{:?}", other.map(|l| l.rows)),
        }
    }

    #[test]
    fn other_types_are_read_as_text_and_nulls_as_empty_cells() {
        let leak = Leak::read(pandas_like(Compression::UNCOMPRESSED).as_slice()).unwrap();
        assert_eq!(leak.rows, 3);
        let names: Vec<&str> = leak.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["name", "score", "__index_level_0__"]);
        assert_eq!(leak.tokens.len(), 1);
        assert!(leak.columns[0].ranges.contains(&(0, 1000)));
        assert!(leak.columns[1].ranges.is_empty() && leak.columns[2].bands.is_empty());

        let mut latin1 = pandas_like(Compression::UNCOMPRESSED);
        let at = latin1
            .windows(8)
            .position(|w| w == b"[0,1000)")
            .expect("plain-encoded");
        latin1[at + 1] = 0xff;
        match Leak::read(latin1.as_slice()) {
            Err(LeakError::Format(p)) => {
                assert_eq!(p, "column name holds a value that is not UTF-8")
            }
            other => panic!("{:?}", other.map(|l| l.rows)),
        }
    }
}
