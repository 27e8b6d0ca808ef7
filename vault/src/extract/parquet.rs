//! Parquet bodies: every column an optional UTF-8 string (`BYTE_ARRAY`,
//! logical type `STRING`; an empty cell is null), Snappy-compressed pages,
//! written in row groups of [`ROW_GROUP`] rows, so memory holds one row
//! group, never the extract. pandas reads it with `pd.read_parquet`.
//!
//! Built on the `parquet` crate's low-level writer (no arrow: it compiles
//! in seconds, not minutes).

use std::io::{self, Write};
use std::sync::Arc;

use parquet::basic::{Compression, LogicalType, Repetition, Type as Physical};
use parquet::data_type::{ByteArray, ByteArrayType};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

/// Rows buffered per row group.
pub const ROW_GROUP: usize = 16 * 1024;

fn io_error(e: ParquetError) -> io::Error {
    io::Error::other(format!("parquet: {e}"))
}

/// Buffers one row group at a time and writes it to `W`.
pub(super) struct ParquetRows<W: Write + Send> {
    writer: SerializedFileWriter<W>,
    values: Vec<Vec<ByteArray>>,
    levels: Vec<Vec<i16>>,
    buffered: usize,
}

impl<W: Write + Send> ParquetRows<W> {
    /// A writer of columns `names` into `sink`.
    pub(super) fn new(sink: W, names: &[String]) -> io::Result<Self> {
        let fields = names
            .iter()
            .map(|n| {
                Type::primitive_type_builder(n, Physical::BYTE_ARRAY)
                    .with_repetition(Repetition::OPTIONAL)
                    .with_logical_type(Some(LogicalType::String))
                    .build()
                    .map(Arc::new)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(io_error)?;
        let schema = Type::group_type_builder("extract")
            .with_fields(fields)
            .build()
            .map_err(io_error)?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by("zonevault".to_owned())
            .build();
        let writer =
            SerializedFileWriter::new(sink, Arc::new(schema), Arc::new(props)).map_err(io_error)?;
        Ok(Self {
            writer,
            values: vec![Vec::new(); names.len()],
            levels: vec![Vec::new(); names.len()],
            buffered: 0,
        })
    }

    /// Buffers one row; writes the row group when it is full.
    pub(super) fn row(&mut self, cells: &[String]) -> io::Result<()> {
        for ((values, levels), cell) in self.values.iter_mut().zip(&mut self.levels).zip(cells) {
            if cell.is_empty() {
                levels.push(0);
            } else {
                levels.push(1);
                values.push(ByteArray::from(cell.as_bytes().to_vec()));
            }
        }
        self.buffered += 1;
        if self.buffered >= ROW_GROUP {
            self.flush_group()?;
        }
        Ok(())
    }

    fn flush_group(&mut self) -> io::Result<()> {
        let mut group = self.writer.next_row_group().map_err(io_error)?;
        for (values, levels) in self.values.iter_mut().zip(&mut self.levels) {
            let Some(mut column) = group.next_column().map_err(io_error)? else {
                break;
            };
            column
                .typed::<ByteArrayType>()
                .write_batch(values, Some(levels), None)
                .map_err(io_error)?;
            column.close().map_err(io_error)?;
            values.clear();
            levels.clear();
        }
        group.close().map_err(io_error)?;
        self.buffered = 0;
        Ok(())
    }

    /// Writes the last row group and the footer; returns the sink.
    pub(super) fn finish(mut self) -> io::Result<W> {
        if self.buffered > 0 {
            self.flush_group()?;
        }
        self.writer.into_inner().map_err(io_error)
    }
}

#[cfg(test)]
mod tests {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    use super::*;

    #[test]
    fn rows_round_trip_with_nulls_across_row_groups() {
        let names = vec!["name".to_owned(), "amount".to_owned()];
        let mut w = ParquetRows::new(Vec::new(), &names).unwrap();
        let n = ROW_GROUP + 3;
        for i in 0..n {
            let amount = if i % 2 == 0 {
                String::new()
            } else {
                format!("[{i},{})", i + 1)
            };
            w.row(&[format!("NAME-{i}"), amount]).unwrap();
        }
        let body = w.finish().unwrap();
        assert!(body.starts_with(b"PAR1") && body.ends_with(b"PAR1"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.parquet");
        std::fs::write(&path, &body).unwrap();
        let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
        assert_eq!(reader.metadata().num_row_groups(), 2);
        let rows: Vec<_> = reader
            .get_row_iter(None)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(rows.len(), n);
        let cells: Vec<(String, Field)> = rows[3]
            .get_column_iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(cells[0], ("name".into(), Field::Str("NAME-3".into())));
        assert_eq!(cells[1], ("amount".into(), Field::Str("[3,4)".into())));
        assert_eq!(rows[2].get_column_iter().nth(1).unwrap().1, &Field::Null);
    }
}
