//! An [`Expr`] as the body of a parameterized `WHERE` clause.

use std::fmt::Write as _;

use rusqlite::types::Value;

use super::{Column, Expr, FilterError, Literal};

impl Expr {
    /// The filter as a `WHERE` body with `?1`, `?2`, … placeholders, and
    /// the values to bind to them in order. Every column must be one of
    /// `columns` (an unknown one is an error naming it, at its position in
    /// the filter text); identifiers are double-quoted; no value is ever
    /// part of the SQL text.
    pub fn to_sql(&self, columns: &[String]) -> Result<(String, Vec<Value>), FilterError> {
        self.to_sql_numbered_from(columns, 1)
    }

    /// As [`Expr::to_sql`], with placeholders numbered from `first` (for a
    /// statement that binds other parameters before the filter's).
    pub fn to_sql_numbered_from(
        &self,
        columns: &[String],
        first: usize,
    ) -> Result<(String, Vec<Value>), FilterError> {
        let mut w = SqlWriter {
            sql: String::new(),
            params: Vec::new(),
            first,
            columns,
        };
        w.expr(self)?;
        Ok((w.sql, w.params))
    }
}

struct SqlWriter<'a> {
    sql: String,
    params: Vec<Value>,
    first: usize,
    columns: &'a [String],
}

impl SqlWriter<'_> {
    fn expr(&mut self, e: &Expr) -> Result<(), FilterError> {
        match e {
            Expr::And(v) => self.join(v, " AND "),
            Expr::Or(v) => self.join(v, " OR "),
            Expr::Not(inner) => {
                self.sql.push_str("NOT (");
                self.expr(inner)?;
                self.sql.push(')');
                Ok(())
            }
            Expr::Compare { column, op, value } => {
                self.operand(column, value)?;
                let _ = write!(self.sql, " {} ", op.sql());
                self.param(value);
                Ok(())
            }
            Expr::In { column, values } => self.in_list(column, values),
            Expr::IsNull { column, negated } => {
                self.column(column)?;
                self.sql
                    .push_str(if *negated { " IS NOT NULL" } else { " IS NULL" });
                Ok(())
            }
            Expr::Like { column, pattern } => {
                self.column(column)?;
                self.sql.push_str(" LIKE ");
                self.param(&Literal::Text(pattern.clone()));
                Ok(())
            }
            Expr::Between { column, low, high } => {
                self.operand(column, low)?;
                self.sql.push_str(" BETWEEN ");
                self.param(low);
                self.sql.push_str(" AND ");
                self.param(high);
                Ok(())
            }
        }
    }

    fn join(&mut self, operands: &[Expr], sep: &str) -> Result<(), FilterError> {
        for (i, e) in operands.iter().enumerate() {
            if i > 0 {
                self.sql.push_str(sep);
            }
            self.sql.push('(');
            self.expr(e)?;
            self.sql.push(')');
        }
        Ok(())
    }

    fn in_list(&mut self, column: &Column, values: &[Literal]) -> Result<(), FilterError> {
        let Some(first) = values.first() else {
            // The parser never builds an empty list; an empty IN is false.
            self.sql.push('0');
            return Ok(());
        };
        self.operand(column, first)?;
        self.sql.push_str(" IN (");
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.param(v);
        }
        self.sql.push(')');
        Ok(())
    }

    /// The column as compared with `like`: numerically for a number.
    fn operand(&mut self, column: &Column, like: &Literal) -> Result<(), FilterError> {
        match like {
            Literal::Number(_) => {
                self.sql.push_str("CAST(");
                self.column(column)?;
                self.sql.push_str(" AS REAL)");
            }
            Literal::Text(_) => self.column(column)?,
        }
        Ok(())
    }

    fn column(&mut self, column: &Column) -> Result<(), FilterError> {
        if !self.columns.contains(&column.name) {
            let msg = format!("unknown column {:?}", column.name);
            return Err(FilterError::new(column.position, msg));
        }
        let _ = write!(self.sql, "\"{}\"", column.name.replace('"', "\"\""));
        Ok(())
    }

    fn param(&mut self, value: &Literal) {
        let _ = write!(self.sql, "?{}", self.first + self.params.len());
        self.params.push(match value {
            Literal::Text(s) => Value::Text(s.clone()),
            Literal::Number(n) => Value::Real(*n),
        });
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use crate::filter::parse;

    fn cols() -> Vec<String> {
        ["name", "district", "amount", "金额", "note"]
            .map(String::from)
            .into()
    }

    fn table() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (name TEXT, district TEXT, amount TEXT, 金额 TEXT, note TEXT);
             INSERT INTO t VALUES ('alice', '海淀区', '1500', NULL, 'x');
             INSERT INTO t VALUES ('bob', '朝阳区', '900', '10', NULL);
             INSERT INTO t VALUES ('carol', '海淀区', '20000', '5', 'y');",
        )
        .unwrap();
        conn
    }

    fn count(filter: &str) -> i64 {
        let (sql, params) = parse(filter).unwrap().to_sql(&cols()).unwrap();
        table()
            .query_row(
                &format!("SELECT count(*) FROM t WHERE {sql}"),
                rusqlite::params_from_iter(params),
                |r| r.get(0),
            )
            .unwrap()
    }

    #[test]
    fn renders_parameters_and_quoted_identifiers() {
        let e = parse("district = '海淀区' AND amount >= 1000").unwrap();
        let (sql, params) = e.to_sql(&cols()).unwrap();
        assert_eq!(
            sql,
            "(\"district\" = ?1) AND (CAST(\"amount\" AS REAL) >= ?2)"
        );
        assert_eq!(
            params,
            [
                rusqlite::types::Value::Text("海淀区".into()),
                rusqlite::types::Value::Real(1000.0)
            ]
        );
        let (sql, _) = e.to_sql_numbered_from(&cols(), 3).unwrap();
        assert!(sql.contains("?3") && sql.contains("?4") && !sql.contains("?1"));
    }

    #[test]
    fn unknown_column_is_named_with_its_position() {
        let e = parse("name = 'a' OR \"secret\" > 1")
            .unwrap()
            .to_sql(&cols())
            .unwrap_err();
        assert_eq!(e.position, 14);
        assert_eq!(e.message, "unknown column \"secret\"");
        // Exact names only: no case folding onto a listed column.
        assert!(parse("NAME = 'a'").unwrap().to_sql(&cols()).is_err());
    }

    #[test]
    fn injection_strings_stay_parameters() {
        assert_eq!(count("name = ''' OR 1=1 --'"), 0);
        assert_eq!(count("name = 'x'' OR ''1''=''1'"), 0);
        assert_eq!(count("name IN ('''); DROP TABLE t; --')"), 0);
        assert_eq!(count("name LIKE '%'' OR ''a''=''a'"), 0);
    }

    #[test]
    fn quoted_identifier_cannot_break_out() {
        let evil = vec!["name\" = name OR \"name".to_string()];
        let (sql, _) = parse("\"name\"\" = name OR \"\"name\" = 'a'")
            .unwrap()
            .to_sql(&evil)
            .unwrap();
        assert_eq!(sql, "\"name\"\" = name OR \"\"name\" = ?1");
    }

    #[test]
    fn numeric_and_text_comparisons_differ() {
        assert_eq!(count("amount >= 1000"), 2);
        assert_eq!(count("amount >= '1000'"), 3, "text: '900' > '1000'");
        assert_eq!(count("amount = 1500.0"), 1);
        assert_eq!(count("amount <> 900"), 2);
    }

    #[test]
    fn chinese_columns_and_values() {
        assert_eq!(count("district = '海淀区' AND amount >= 1000"), 2);
        assert_eq!(count("金额 < 8"), 1);
        assert_eq!(count("district != '海淀区'"), 1);
    }

    #[test]
    fn in_between_like_is_null_not() {
        assert_eq!(count("name IN ('alice', 'bob', 'dave')"), 2);
        assert_eq!(count("amount IN (900, 20000)"), 2);
        assert_eq!(count("amount BETWEEN 900 AND 1500"), 2);
        assert_eq!(count("name BETWEEN 'b' AND 'c'"), 1);
        assert_eq!(count("district LIKE '海%'"), 2);
        assert_eq!(count("note IS NULL"), 1);
        assert_eq!(count("金额 IS NOT NULL"), 2);
        assert_eq!(count("NOT (name = 'alice' OR name = 'bob')"), 1);
        assert_eq!(count("name = 'alice' OR name = 'bob' AND amount > 1000"), 1);
    }

    /// Bytes that matter to the filter language.
    const FILTER_SYNTAX: &[u8] = b"'\"()=<>!,. -+eE0\n\t";

    /// Malformed filters from an analyst are parsed or refused, never a
    /// panic; an accepted one renders SQL that SQLite runs, with no
    /// literal in its text (values are parameters, always).
    #[test]
    fn mutated_filters_are_refused_or_run_as_parameterized_sql() {
        let seeds = [
            "district = '海淀区' AND amount >= 1000",
            "NOT (name LIKE 'a%' OR note IS NOT NULL) AND 金额 BETWEEN 1 AND 10",
            "\"amount\" IN (1, 2.5, -3e2) OR district <> 'x''y'",
            "(name = 'alice' OR name != 'bob') AND (note IS NULL OR amount < 0.5)",
        ];
        let conn = table();
        let (mut accepted, mut refused) = (0, 0);
        for seed in seeds {
            let inputs = crate::mutate::mutations_with(seed.as_bytes(), 4000, FILTER_SYNTAX);
            for input in inputs {
                let Ok(text) = String::from_utf8(input) else {
                    continue;
                };
                let sql = match parse(&text).and_then(|e| e.to_sql(&cols())) {
                    Ok(sql) => sql,
                    Err(e) => {
                        assert!(e.position <= text.chars().count(), "{text}: {e}");
                        refused += 1;
                        continue;
                    }
                };
                let (body, params) = sql;
                assert!(!body.contains('\''), "{text} rendered a literal: {body}");
                let query = format!("SELECT count(*) FROM t WHERE {body}");
                let run = conn.query_row(&query, rusqlite::params_from_iter(params), |r| {
                    r.get::<_, i64>(0)
                });
                assert!(run.is_ok(), "{text} -> {query}: {run:?}");
                accepted += 1;
            }
        }
        assert!(
            accepted > 300 && refused > 3000,
            "{accepted} accepted, {refused} refused"
        );
    }
}
