//! Header checks, and the column schemas built from the profiles.
//!
//! A header name becomes an SQL column name and, later, a spreadsheet
//! cell in extracts, so it must be non-empty, unique the way SQLite
//! compares identifiers (ASCII case-insensitively), free of control
//! characters, and must not start like a spreadsheet formula.

use crate::detect::ColumnProfiler;
use crate::schema::ColumnSchema;

use super::ImportError;

/// Most columns accepted (SQLite's default limit).
pub(super) const MAX_COLUMNS: usize = 2000;

/// Longest header name accepted, in bytes.
const MAX_NAME_BYTES: usize = 256;

/// First characters that make a spreadsheet read a cell as a formula.
const FORMULA_LEADS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// At most 64 characters of `name`, for messages.
pub(super) fn shown(name: &str) -> String {
    let mut s: String = name.chars().take(64).collect();
    if s.len() < name.len() {
        s.push('…');
    }
    s
}

fn refuse(problem: String) -> ImportError {
    ImportError::Header { problem }
}

/// Checks the header names and that every quasi-identifier is among them.
pub(super) fn check(names: &[String], quasi_identifiers: &[String]) -> Result<(), ImportError> {
    if names.len() > MAX_COLUMNS {
        let n = names.len();
        return Err(refuse(format!(
            "{n} columns; at most {MAX_COLUMNS} are allowed"
        )));
    }
    for (i, name) in names.iter().enumerate() {
        check_name(i + 1, name)?;
        let earlier = names[..i].iter().position(|n| n.eq_ignore_ascii_case(name));
        if let Some(j) = earlier {
            return Err(refuse(format!(
                "column {} name {:?} duplicates column {} ({:?})",
                i + 1,
                shown(name),
                j + 1,
                shown(&names[j])
            )));
        }
    }
    match quasi_identifiers.iter().find(|q| !names.contains(q)) {
        Some(q) => Err(refuse(format!(
            "quasi-identifier {:?} is not a column",
            shown(q)
        ))),
        None => Ok(()),
    }
}

fn check_name(position: usize, name: &str) -> Result<(), ImportError> {
    if name.trim().is_empty() {
        return Err(refuse(format!("column {position} has an empty name")));
    }
    if let Some(lead) = name.chars().next().filter(|c| FORMULA_LEADS.contains(c)) {
        return Err(refuse(format!(
            "column {position} name {:?} starts with {lead:?}, which spreadsheets run as a formula",
            shown(name)
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(refuse(format!(
            "column {position} name {:?} contains a control character",
            shown(name)
        )));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(refuse(format!(
            "column {position} name {:?} is {} bytes long; at most {MAX_NAME_BYTES} are allowed",
            shown(name),
            name.len()
        )));
    }
    Ok(())
}

/// The schema of each column from its profile, with the requested
/// quasi-identifiers flagged.
pub(super) fn schemas(
    names: &[String],
    profilers: Vec<ColumnProfiler>,
    quasi_identifiers: &[String],
) -> Vec<ColumnSchema> {
    names
        .iter()
        .zip(profilers)
        .map(|(name, p)| {
            let mut c = p.finish(name);
            c.quasi_identifier |= quasi_identifiers.contains(name);
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(names: &[&str], qis: &[&str]) -> String {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let qis: Vec<String> = qis.iter().map(|s| s.to_string()).collect();
        match check(&names, &qis) {
            Err(ImportError::Header { problem }) => problem,
            other => panic!("expected a header error, got {other:?}"),
        }
    }

    #[test]
    fn names_the_bad_column() {
        assert!(problem(&["a", " ", "c"], &[]).contains("column 2 has an empty name"));
        let dup = problem(&["id", "name", "Name"], &[]);
        assert!(dup.contains("column 3") && dup.contains("\"Name\"") && dup.contains("column 2"));
        for lead in ["=cmd|' /C calc'!A0", "+1", "-2", "@SUM(A1)", "\tx"] {
            let p = problem(&["ok", lead], &[]);
            assert!(p.contains("column 2") && p.contains("formula"), "{p}");
        }
        assert!(problem(&["a\nb"], &[]).contains("control character"));
        assert!(problem(&["a"], &["b"]).contains("quasi-identifier \"b\""));
        let wide: Vec<String> = (0..=MAX_COLUMNS).map(|i| format!("c{i}")).collect();
        assert!(check(&wide, &[]).is_err());
        assert!(check(&["a".into(), "身份证号".into()], &["a".into()]).is_ok());
    }
}
