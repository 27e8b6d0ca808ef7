//! Reading the selected columns of a dataset file's `rows` table, in
//! insertion order, under a parameterized `WHERE` clause and a row limit.
//! Identifiers are double-quoted; values are only ever bound parameters.

use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;

use super::ExtractError;

/// `name` as an SQL identifier: double-quoted, inner quotes doubled.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A `WHERE` clause body with `?N` placeholders and the values to bind.
pub type WhereClause = (String, Vec<Value>);

/// What to read: columns, an optional `WHERE` body with its `?N`
/// parameters (numbered from 1), and a row limit.
#[derive(Debug, Clone)]
pub struct Selection {
    /// Dataset columns to read, in output order.
    pub columns: Vec<String>,
    /// A `WHERE` clause body and its parameters, from `crate::filter`.
    pub filter: Option<WhereClause>,
    /// Most rows to read.
    pub row_limit: u64,
}

/// Inclusive bounds of a run of rowids.
pub type RowidRange = (i64, i64);

impl Selection {
    /// The filter's `WHERE` body and parameters, `TRUE` without a filter.
    fn clause(&self) -> (String, Vec<Value>) {
        match &self.filter {
            Some((sql, params)) => (format!("({sql})"), params.clone()),
            None => ("1".to_owned(), Vec::new()),
        }
    }

    /// The rowid range that holds exactly the selected rows: from the
    /// table's first row to its last, or to the `row_limit`-th row that
    /// matches the filter when the limit binds. `None` for no rows.
    pub(super) fn span(&self, conn: &Connection) -> Result<Option<RowidRange>, ExtractError> {
        if self.row_limit == 0 {
            return Ok(None);
        }
        // Two subqueries: each is one seek, where `min(rowid), max(rowid)`
        // in one SELECT scans the whole table.
        let bounds: (Option<i64>, Option<i64>) = conn.query_row(
            "SELECT (SELECT min(rowid) FROM rows), (SELECT max(rowid) FROM rows)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let (Some(first), Some(last)) = bounds else {
            return Ok(None);
        };
        let width = u64::try_from(i128::from(last) - i128::from(first) + 1).unwrap_or(u64::MAX);
        if width <= self.row_limit {
            return Ok(Some((first, last)));
        }
        let (clause, mut params) = self.clause();
        params.push(Value::Integer(
            i64::try_from(self.row_limit - 1).unwrap_or(i64::MAX),
        ));
        let sql = format!(
            "SELECT rowid FROM rows WHERE {clause} ORDER BY rowid LIMIT 1 OFFSET ?{}",
            params.len()
        );
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        let cut = match rows.next()? {
            Some(row) => row.get(0)?,
            None => last,
        };
        Ok(Some((first, cut)))
    }

    /// The same rows, only the columns at `indices` (into `columns`).
    pub(super) fn narrowed(&self, indices: &[usize]) -> Selection {
        Selection {
            columns: indices.iter().map(|&i| self.columns[i].clone()).collect(),
            filter: self.filter.clone(),
            row_limit: self.row_limit,
        }
    }

    /// The `SELECT` of the selected columns of rows in a rowid range
    /// (its bounds the last two parameters) that match the filter.
    fn statement(&self) -> (String, Vec<Value>) {
        let columns: Vec<String> = self.columns.iter().map(|c| quoted(c)).collect();
        let (clause, params) = self.clause();
        let sql = format!(
            "SELECT {} FROM rows WHERE rowid >= ?{} AND rowid <= ?{} AND {clause} ORDER BY rowid",
            columns.join(", "),
            params.len() + 1,
            params.len() + 2,
        );
        (sql, params)
    }

    /// Calls `f` with the cells of each selected row in `range`, in rowid
    /// order (NULL reads as empty; a value that is not UTF-8 text reads as
    /// empty too, fail closed).
    pub(super) fn for_each_row_in(
        &self,
        conn: &Connection,
        range: RowidRange,
        mut f: impl FnMut(&[&str]) -> Result<(), ExtractError>,
    ) -> Result<(), ExtractError> {
        let (sql, mut params) = self.statement();
        params.extend([Value::Integer(range.0), Value::Integer(range.1)]);
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        let n = self.columns.len();
        let mut numbers: Vec<String> = vec![String::new(); n];
        while let Some(row) = rows.next()? {
            let values = (0..n)
                .map(|i| row.get_ref(i))
                .collect::<Result<Vec<ValueRef<'_>>, _>>()?;
            for (value, buf) in values.iter().zip(numbers.iter_mut()) {
                buf.clear();
                match value {
                    ValueRef::Integer(v) => buf.push_str(&v.to_string()),
                    ValueRef::Real(v) => buf.push_str(&v.to_string()),
                    _ => {}
                }
            }
            let cells: Vec<&str> = (values.iter().zip(&numbers))
                .map(|(value, number)| match value {
                    ValueRef::Text(t) => std::str::from_utf8(t).unwrap_or(""),
                    ValueRef::Integer(_) | ValueRef::Real(_) => number,
                    ValueRef::Null | ValueRef::Blob(_) => "",
                })
                .collect();
            f(&cells)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_quotes_identifiers_and_binds_the_range_after_the_filter() {
        let s = Selection {
            columns: vec!["a".into(), "we\"ird".into()],
            filter: Some(("\"a\" = ?1".into(), vec![Value::Text("x".into())])),
            row_limit: 5,
        };
        let (sql, params) = s.statement();
        assert_eq!(
            sql,
            "SELECT \"a\", \"we\"\"ird\" FROM rows WHERE rowid >= ?2 AND rowid <= ?3 \
             AND (\"a\" = ?1) ORDER BY rowid"
        );
        assert_eq!(params.len(), 1);
    }

    fn table(rows: i64) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE rows (a TEXT)").unwrap();
        for i in 1..=rows {
            let a = if i % 3 == 0 { "x" } else { "y" };
            conn.execute("INSERT INTO rows VALUES (?1)", [a]).unwrap();
        }
        conn
    }

    fn selection(filter: Option<&str>, row_limit: u64) -> Selection {
        Selection {
            columns: vec!["a".into()],
            filter: filter.map(|v| ("\"a\" = ?1".into(), vec![Value::Text(v.into())])),
            row_limit,
        }
    }

    #[test]
    fn span_ends_at_the_row_limit_th_matching_row() {
        let conn = table(30);
        assert_eq!(selection(None, 100).span(&conn).unwrap(), Some((1, 30)));
        assert_eq!(selection(None, 7).span(&conn).unwrap(), Some((1, 7)));
        // Rows 3, 6, 9, 12 match: the 4th is row 12.
        assert_eq!(selection(Some("x"), 4).span(&conn).unwrap(), Some((1, 12)));
        assert_eq!(selection(Some("x"), 25).span(&conn).unwrap(), Some((1, 30)));
        assert_eq!(selection(None, 0).span(&conn).unwrap(), None);
        assert_eq!(selection(None, 5).span(&table(0)).unwrap(), None);
    }

    #[test]
    fn rows_in_a_range_are_read_in_order_under_the_filter() {
        let conn = table(30);
        let mut seen = 0;
        selection(Some("x"), 100)
            .for_each_row_in(&conn, (4, 13), |cells| {
                assert_eq!(cells, ["x"]);
                seen += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, 3);
    }
}
