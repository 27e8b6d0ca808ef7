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

impl Selection {
    /// The `SELECT` statement and its parameters (the limit is the last).
    fn statement(&self) -> (String, Vec<Value>) {
        let columns: Vec<String> = self.columns.iter().map(|c| quoted(c)).collect();
        let (clause, mut params) = match &self.filter {
            Some((sql, params)) => (format!(" WHERE ({sql})"), params.clone()),
            None => (String::new(), Vec::new()),
        };
        let limit = i64::try_from(self.row_limit).unwrap_or(i64::MAX);
        params.push(Value::Integer(limit));
        let sql = format!(
            "SELECT {} FROM rows{clause} ORDER BY rowid LIMIT ?{}",
            columns.join(", "),
            params.len()
        );
        (sql, params)
    }

    /// Calls `f` with each selected row's cells (NULL reads as empty; a
    /// value that is not UTF-8 text reads as empty too, fail closed).
    pub(super) fn for_each_row(
        &self,
        conn: &Connection,
        mut f: impl FnMut(&[&str]) -> Result<(), ExtractError>,
    ) -> Result<(), ExtractError> {
        let (sql, params) = self.statement();
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        let n = self.columns.len();
        let mut numbers: Vec<String> = vec![String::new(); n];
        while let Some(row) = rows.next()? {
            let mut cells: Vec<&str> = Vec::with_capacity(n);
            for (i, buf) in numbers.iter_mut().enumerate() {
                buf.clear();
                match row.get_ref(i)? {
                    ValueRef::Integer(v) => buf.push_str(&v.to_string()),
                    ValueRef::Real(v) => buf.push_str(&v.to_string()),
                    _ => {}
                }
            }
            for (i, number) in numbers.iter().enumerate() {
                cells.push(match row.get_ref(i)? {
                    ValueRef::Text(t) => std::str::from_utf8(t).unwrap_or(""),
                    ValueRef::Integer(_) | ValueRef::Real(_) => number,
                    ValueRef::Null | ValueRef::Blob(_) => "",
                });
            }
            f(&cells)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_quotes_identifiers_and_binds_the_limit() {
        let s = Selection {
            columns: vec!["a".into(), "we\"ird".into()],
            filter: Some(("\"a\" = ?1".into(), vec![Value::Text("x".into())])),
            row_limit: 5,
        };
        let (sql, params) = s.statement();
        assert_eq!(
            sql,
            "SELECT \"a\", \"we\"\"ird\" FROM rows WHERE (\"a\" = ?1) ORDER BY rowid LIMIT ?2"
        );
        assert_eq!(params.len(), 2);
    }
}
