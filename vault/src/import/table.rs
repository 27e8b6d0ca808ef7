//! The table `rows` inside a dataset file: created (replacing any earlier
//! one) and filled inside one transaction through one prepared statement.

use ring::digest::{Context, SHA256};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Statement};

use super::ImportError;
use crate::lifecycle::erase::encode_value;

/// Page cache for the bulk load, in KiB (SQLite's negative form). Flat:
/// SQLite spills dirty pages to the WAL when it is full.
const BULK_CACHE_KIB: i64 = 64 * 1024;

/// The insert statement of the table being filled, and the content digest
/// of the rows inserted so far (as [`crate::lifecycle::erase::content_digest`]
/// would compute it from the file: every column is TEXT, so values stay as
/// bound, and rows are read back in insertion order).
pub(super) struct Table<'c> {
    stmt: Statement<'c>,
    /// The encoding of the row being bound.
    row: Vec<u8>,
    digest: Context,
}

impl Table<'_> {
    /// Binds `value` to column `i` (0-based) of the next row; columns are
    /// bound in order, so column 0 starts a new row.
    pub(super) fn bind(&mut self, i: usize, value: &str) -> Result<(), ImportError> {
        self.encode(i, ValueRef::Text(value.as_bytes()));
        Ok(self.stmt.raw_bind_parameter(i + 1, value)?)
    }

    /// Binds NULL to column `i` (0-based) of the next row.
    pub(super) fn bind_null(&mut self, i: usize) -> Result<(), ImportError> {
        self.encode(i, ValueRef::Null);
        Ok(self.stmt.raw_bind_parameter(i + 1, rusqlite::types::Null)?)
    }

    fn encode(&mut self, i: usize, value: ValueRef<'_>) {
        if i == 0 {
            self.row.clear();
        }
        encode_value(&mut self.row, value);
    }

    /// Inserts the bound row.
    pub(super) fn insert(&mut self) -> Result<(), ImportError> {
        self.stmt.raw_execute()?;
        self.digest.update(&self.row);
        self.row.clear();
        Ok(())
    }
}

/// `name` as an SQL identifier: double-quoted, inner quotes doubled.
pub(super) fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Runs `fill` on a fresh table `rows` with one TEXT column per name, in
/// one transaction that commits only if `fill` succeeds; `fill`'s result
/// and the hex content digest of the rows. The page cache is enlarged for
/// the load and restored after.
pub(super) fn in_transaction<T>(
    conn: &mut Connection,
    names: &[String],
    fill: impl FnOnce(&mut Table<'_>) -> Result<T, ImportError>,
) -> Result<(T, String), ImportError> {
    let cache: i64 = conn.query_row("PRAGMA cache_size", [], |r| r.get(0))?;
    conn.execute_batch(&format!("PRAGMA cache_size = -{BULK_CACHE_KIB}"))?;
    let result = load(conn, names, fill);
    let restored = conn.execute_batch(&format!("PRAGMA cache_size = {cache}"));
    let out = result?;
    restored?;
    Ok(out)
}

fn load<T>(
    conn: &mut Connection,
    names: &[String],
    fill: impl FnOnce(&mut Table<'_>) -> Result<T, ImportError>,
) -> Result<(T, String), ImportError> {
    let columns: Vec<String> = names
        .iter()
        .map(|n| format!("{} TEXT", quoted(n)))
        .collect();
    let params = vec!["?"; names.len()].join(", ");
    let tx = conn.transaction()?;
    tx.execute_batch(&format!(
        "DROP TABLE IF EXISTS rows; CREATE TABLE rows ({});",
        columns.join(", ")
    ))?;
    let out = {
        let stmt = tx.prepare(&format!("INSERT INTO rows VALUES ({params})"))?;
        let mut table = Table {
            stmt,
            row: Vec::new(),
            digest: Context::new(&SHA256),
        };
        let out = fill(&mut table)?;
        (out, hex::encode(table.digest.finish()))
    };
    tx.commit()?;
    Ok(out)
}
