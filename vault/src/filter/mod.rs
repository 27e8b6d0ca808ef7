//! The row-filter language analysts and grants use: a small, typed
//! expression such as `district = '海淀区' AND amount >= 1000`.
//!
//! ```text
//! expr    := or
//! or      := and ('OR' and)*
//! and     := not ('AND' not)*
//! not     := 'NOT' not | cmp | '(' expr ')'
//! cmp     := ident op literal
//!          | ident 'IN' '(' literal (',' literal)* ')'
//!          | ident 'IS' ['NOT'] 'NULL'
//!          | ident 'LIKE' string
//!          | ident 'BETWEEN' literal 'AND' literal
//! op      := '=' | '!=' | '<>' | '<' | '<=' | '>' | '>='
//! literal := string | number
//! ```
//!
//! Keywords are case-insensitive. Identifiers are `[A-Za-z_\p{Han}]
//! [A-Za-z0-9_\p{Han}]*` or double-quoted (`"a ""b"""`); strings are
//! single-quoted with `''` as the escape; numbers are decimal with an
//! optional sign, fraction and exponent.
//!
//! [`parse`] turns text into an [`Expr`] once; [`Expr::to_sql`] renders it
//! as the body of a `WHERE` clause. What this module never does: splice a
//! value into SQL (every literal becomes a `?N` parameter), reference a
//! column the caller did not list (every identifier is checked and
//! double-quoted), or panic on input (length, nesting and size are bounded
//! before recursion can grow).
//!
//! Dataset values are stored as TEXT. A comparison with a number literal is
//! numeric (`CAST("col" AS REAL) >= ?1`, SQLite's conversion rules: text
//! that is not a number compares as its numeric prefix, often 0); a
//! comparison with a string literal is a text comparison. An `IN` list or a
//! `BETWEEN` range must not mix the two.

use std::collections::BTreeSet;
use std::fmt;

mod lex;
mod parse;
mod sql;

pub use parse::parse;

/// Longest accepted filter, in bytes of UTF-8.
pub const MAX_INPUT_BYTES: usize = 4096;
/// Deepest accepted nesting of parentheses and `NOT`.
pub const MAX_DEPTH: usize = 32;
/// Most predicates (comparisons, `IN`, `IS NULL`, `LIKE`, `BETWEEN`) and
/// most values in one `IN` list.
pub const MAX_TERMS: usize = 256;

/// A filter that does not parse, or does not fit the dataset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at position {position}: {message}")]
pub struct FilterError {
    /// Offset of the offending token, in characters (not bytes) from the
    /// start of the filter text.
    pub position: usize,
    /// What is wrong, for the analyst.
    pub message: String,
}

impl FilterError {
    fn new(position: usize, message: impl Into<String>) -> Self {
        Self {
            position,
            message: message.into(),
        }
    }
}

/// A column reference, with where it appeared in the filter text (for
/// error messages). Two references are equal when their names are.
#[derive(Debug, Clone, Eq)]
pub struct Column {
    name: String,
    position: usize,
}

impl Column {
    /// The column's name, as written (unquoted).
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl PartialEq for Column {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

/// A constant in a filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A single-quoted string: compared as text.
    Text(String),
    /// A finite number: compared numerically.
    Number(f64),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `!=` or `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    fn sql(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Every operand holds (at least two).
    And(Vec<Expr>),
    /// Some operand holds (at least two).
    Or(Vec<Expr>),
    /// The operand does not hold.
    Not(Box<Expr>),
    /// `column op literal`
    Compare {
        /// The column compared.
        column: Column,
        /// The operator.
        op: CmpOp,
        /// The constant.
        value: Literal,
    },
    /// `column IN (v, ...)`: all values of one kind.
    In {
        /// The column tested.
        column: Column,
        /// The candidates.
        values: Vec<Literal>,
    },
    /// `column IS NULL` or, when `negated`, `column IS NOT NULL`.
    IsNull {
        /// The column tested.
        column: Column,
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// `column LIKE 'pattern'` (`%` and `_` wildcards).
    Like {
        /// The column matched.
        column: Column,
        /// The pattern.
        pattern: String,
    },
    /// `column BETWEEN low AND high`, both of one kind.
    Between {
        /// The column tested.
        column: Column,
        /// Inclusive lower bound.
        low: Literal,
        /// Inclusive upper bound.
        high: Literal,
    },
}

impl Expr {
    /// Both `self` and `other` must hold: how a grant's filter narrows an
    /// analyst's (neither can widen the other).
    pub fn and(self, other: Expr) -> Expr {
        let mut operands = match self {
            Expr::And(v) => v,
            e => vec![e],
        };
        match other {
            Expr::And(v) => operands.extend(v),
            e => operands.push(e),
        }
        Expr::And(operands)
    }

    /// The names of every column the filter references.
    pub fn columns(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        self.visit_columns(&mut |c| {
            out.insert(c.name.clone());
        });
        out
    }

    fn visit_columns(&self, f: &mut dyn FnMut(&Column)) {
        match self {
            Expr::And(v) | Expr::Or(v) => v.iter().for_each(|e| e.visit_columns(f)),
            Expr::Not(e) => e.visit_columns(f),
            Expr::Compare { column, .. }
            | Expr::In { column, .. }
            | Expr::IsNull { column, .. }
            | Expr::Like { column, .. }
            | Expr::Between { column, .. } => f(column),
        }
    }
}

/// The canonical text of a filter; [`parse`] reads it back to an equal
/// [`Expr`].
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::And(v) => join(f, v, " AND ", |e| matches!(e, Expr::And(_) | Expr::Or(_))),
            Expr::Or(v) => join(f, v, " OR ", |e| matches!(e, Expr::Or(_))),
            Expr::Not(e) if matches!(**e, Expr::And(_) | Expr::Or(_)) => write!(f, "NOT ({e})"),
            Expr::Not(e) => write!(f, "NOT {e}"),
            Expr::Compare { column, op, value } => {
                let op = if *op == CmpOp::Ne { "!=" } else { op.sql() };
                write!(f, "{column} {op} {value}")
            }
            Expr::In { column, values } => {
                write!(f, "{column} IN (")?;
                for (i, v) in values.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}{v}")?;
                }
                f.write_str(")")
            }
            Expr::IsNull { column, negated } => {
                let not = if *negated { "NOT " } else { "" };
                write!(f, "{column} IS {not}NULL")
            }
            Expr::Like { column, pattern } => {
                write!(f, "{column} LIKE {}", Literal::Text(pattern.clone()))
            }
            Expr::Between { column, low, high } => {
                write!(f, "{column} BETWEEN {low} AND {high}")
            }
        }
    }
}

/// Operands joined by `sep`, parenthesized only where precedence needs it,
/// so the text nests no deeper than the filter it came from.
fn join(
    f: &mut fmt::Formatter<'_>,
    operands: &[Expr],
    sep: &str,
    needs_parens: fn(&Expr) -> bool,
) -> fmt::Result {
    for (i, e) in operands.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        if needs_parens(e) {
            write!(f, "({e})")?;
        } else {
            write!(f, "{e}")?;
        }
    }
    Ok(())
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if lex::is_bare_identifier(&self.name) {
            f.write_str(&self.name)
        } else {
            write!(f, "\"{}\"", self.name.replace('"', "\"\""))
        }
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Text(s) => write!(f, "'{}'", s.replace('\'', "''")),
            Literal::Number(n) => write!(f, "{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn and_flattens_and_keeps_both_sides() {
        let grant = parse("a = 1 AND b = 2").unwrap();
        let mine = parse("c = 3 OR d = 4").unwrap();
        let both = grant.and(mine);
        match &both {
            Expr::And(v) => assert_eq!(v.len(), 3),
            other => panic!("not an AND: {other:?}"),
        }
        let cols: Vec<_> = both.columns().into_iter().collect();
        assert_eq!(cols, ["a", "b", "c", "d"]);
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "district = '海淀区' AND amount >= 1000",
            "a = 1 OR b = 2 AND c = 3",
            "NOT (a = 'x' OR b <> 'y')",
            "x IN (1, 2.5, -3e2) AND y IN ('o''neil')",
            "\"weird \"\"col\"\"\" IS NOT NULL OR \"and\" IS NULL",
            "name LIKE '张%' AND d BETWEEN '2020-01' AND '2020-12'",
            "v BETWEEN -1 AND 1e300",
            "NOT NOT a = 1",
        ] {
            let e = parse(text).unwrap();
            let shown = e.to_string();
            assert_eq!(parse(&shown).unwrap(), e, "{text} -> {shown}");
        }
    }

    #[test]
    fn error_display_names_the_position() {
        let e = parse("a = 'x").unwrap_err();
        assert_eq!(e.to_string(), "at position 4: unterminated string");
    }
}
