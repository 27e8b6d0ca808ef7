//! Import tests against real, keyed dataset files.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::*;
use crate::keys::DatasetKey;
use crate::sample;
use crate::schema::SemanticType;

struct Fixture {
    dir: tempfile::TempDir,
    path: PathBuf,
    key: DatasetKey,
    file: DatasetFile,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ds.db");
    let key = DatasetKey::generate().unwrap();
    let file = DatasetFile::create(&path, &key).unwrap();
    Fixture {
        dir,
        path,
        key,
        file,
    }
}

impl Fixture {
    fn import(
        &mut self,
        input: impl Read,
        opts: &ImportOptions,
    ) -> Result<ImportReport, ImportError> {
        import_rows(input, &mut self.file, opts, &mut |_, _| {})
    }

    fn csv(&mut self, text: &[u8]) -> Result<ImportReport, ImportError> {
        self.import(text, &ImportOptions::default())
    }

    /// Rows in the file, read through a fresh connection (0 if no table).
    fn stored_rows(&self) -> i64 {
        let f = DatasetFile::open(&self.path, &self.key).unwrap();
        let has: i64 = f
            .connection()
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'rows'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        if has == 0 {
            return 0;
        }
        f.connection()
            .query_row("SELECT count(*) FROM rows", [], |r| r.get(0))
            .unwrap()
    }

    fn value(&self, column: &str, rowid: i64) -> Option<String> {
        let sql = format!("SELECT \"{column}\" FROM rows WHERE rowid = ?1");
        self.file
            .connection()
            .query_row(&sql, [rowid], |r| r.get(0))
            .unwrap()
    }
}

fn sample_csv(rows: u64) -> Vec<u8> {
    let mut out = Vec::new();
    sample::write_csv(rows, 42, &mut out).unwrap();
    out
}

fn assert_sample_types(report: &ImportReport) {
    let got: Vec<(&str, SemanticType)> = report
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.semantic_type))
        .collect();
    assert_eq!(got, sample::COLUMNS.to_vec());
}

#[test]
fn sample_csv_imports_and_profiles() {
    let mut f = fixture();
    let csv = sample_csv(1000);
    let mut calls = 0;
    let report = import_rows(
        csv.as_slice(),
        &mut f.file,
        &ImportOptions::default(),
        &mut |_, _| calls += 1,
    )
    .unwrap();
    assert_eq!(report.rows, 1000);
    assert_eq!(report.bytes, csv.len() as u64);
    assert!(calls >= 1);
    assert_sample_types(&report);
    assert_eq!(f.stored_rows(), 1000);
    let first_line = String::from_utf8(csv)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_owned();
    let name = first_line.split(',').nth(1).unwrap();
    assert_eq!(f.value("name", 1).as_deref(), Some(name));
}

#[test]
fn json_lines_import_the_same_data() {
    let mut f = fixture();
    let mut jsonl = Vec::new();
    sample::write_jsonl(1000, 42, &mut jsonl).unwrap();
    let opts = ImportOptions {
        format: Format::JsonLines,
        ..ImportOptions::default()
    };
    let report = f.import(jsonl.as_slice(), &opts).unwrap();
    assert_eq!(report.rows, 1000);
    assert_sample_types(&report);
    assert_eq!(f.stored_rows(), 1000);
    assert_eq!(f.value("id", 1000).as_deref(), Some("1000"));
}

#[test]
fn gb18030_round_trips_chinese_text() {
    let mut f = fixture();
    let text = String::from_utf8(sample_csv(300)).unwrap();
    let encoded = sample::to_gb18030(&text);
    assert_ne!(encoded, text.as_bytes());
    let opts = ImportOptions {
        encoding: TextEncoding::Gb18030,
        ..ImportOptions::default()
    };
    let report = f.import(encoded.as_slice(), &opts).unwrap();
    assert_eq!(report.rows, 300);
    assert_eq!(report.bytes, encoded.len() as u64);
    assert_sample_types(&report);
    let third: Vec<&str> = text.lines().nth(3).unwrap().split(',').collect();
    assert_eq!(f.value("address", 3).as_deref(), Some(third[5]));
    assert_eq!(f.value("name", 3).as_deref(), Some(third[1]));
}

/// `input` fails as `check` says, and leaves zero rows in a file that
/// still opens.
fn refused(input: impl Read, opts: &ImportOptions, check: impl Fn(&ImportError) -> bool) {
    let mut f = fixture();
    let err = f.import(input, opts).unwrap_err();
    assert!(check(&err), "unexpected error: {err:?}");
    assert_eq!(f.stored_rows(), 0, "rows left after {err:?}");
}

fn rows_error(err: &ImportError) -> (u64, &[RowError]) {
    match err {
        ImportError::Rows { total, first } => (*total, first),
        other => panic!("expected row errors, got {other:?}"),
    }
}

fn header_problem(err: &ImportError) -> &str {
    match err {
        ImportError::Header { problem } => problem,
        other => panic!("expected a header error, got {other:?}"),
    }
}

#[test]
fn bad_inputs_are_refused_and_leave_no_rows() {
    let csv = ImportOptions::default();
    refused(&b"a,b\n1,2\n3\n4,5\n"[..], &csv, |e| {
        let (total, first) = rows_error(e);
        total == 1 && first[0].line == 3 && first[0].problem.contains("expected 2 fields, found 1")
    });
    refused(&b"a,b\n1,2\n3,\xff\xfe\n"[..], &csv, |e| {
        let (_, first) = rows_error(e);
        first[0].line == 3
            && first[0].column.as_deref() == Some("b")
            && first[0].problem.contains("not valid UTF-8")
    });
    refused(&b""[..], &csv, |e| matches!(e, ImportError::Empty));
    refused(&b"\n\n  \n"[..], &csv, |e| matches!(e, ImportError::Empty));
    refused(&b"id,name,name\n1,2,3\n"[..], &csv, |e| {
        header_problem(e).contains("column 3 name \"name\" duplicates column 2")
    });
    refused(&b"id,,x\n1,2,3\n"[..], &csv, |e| {
        header_problem(e).contains("column 2 has an empty name")
    });
    refused(&b"id,=cmd|' /C calc'!A0\n1,2\n"[..], &csv, |e| {
        let p = header_problem(e);
        p.contains("column 2") && p.contains("=cmd") && p.contains("formula")
    });
    let mut noise = Vec::with_capacity(4096);
    let mut x: u32 = 12345;
    for _ in 0..4096 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        noise.push((x >> 16) as u8);
    }
    refused(noise.as_slice(), &csv, |e| {
        matches!(e, ImportError::Binary { .. })
    });
    refused(&b"a,b\n1,2\n3,4\x00\n"[..], &csv, |e| {
        matches!(e, ImportError::Binary { line: 3 })
    });
    let qi = ImportOptions {
        quasi_identifiers: vec!["zip".into()],
        ..ImportOptions::default()
    };
    refused(&b"a,b\n1,2\n"[..], &qi, |e| {
        header_problem(e).contains("\"zip\"")
    });
    let approved = ImportOptions {
        allowed_columns: Some(vec!["a".into()]),
        ..ImportOptions::default()
    };
    refused(&b"a,b\n1,2\n"[..], &approved, |e| {
        header_problem(e).contains("[\"b\"] exceed the fields approved")
    });
}

#[test]
fn a_50_mib_field_is_refused_without_holding_it() {
    let input = (&b"a,b\n1,"[..])
        .chain(std::io::repeat(b'x').take(50 << 20))
        .chain(&b"\n2,3\n"[..]);
    refused(input, &ImportOptions::default(), |e| {
        let (total, first) = rows_error(e);
        total == 1
            && first[0].line == 2
            && first[0].column.as_deref() == Some("b")
            && first[0].problem.contains("larger than 1048576 bytes")
    });
}

#[test]
fn a_bad_row_midway_is_reported_by_line_and_nothing_is_kept() {
    let mut text = String::from_utf8(sample_csv(9999)).unwrap();
    let at = text.match_indices('\n').nth(4998).unwrap().0 + 1;
    text.insert_str(at, "ragged,row\n");
    assert_eq!(text.lines().nth(4999), Some("ragged,row"));
    refused(text.as_bytes(), &ImportOptions::default(), |e| {
        let (total, first) = rows_error(e);
        total == 1 && first[0].line == 5000
    });
}

#[test]
fn only_the_first_errors_are_listed_but_all_are_counted() {
    let mut text = String::from("a,b\n");
    for i in 0..300 {
        text.push_str(if i % 2 == 0 { "1,2\n" } else { "1\n" });
    }
    refused(text.as_bytes(), &ImportOptions::default(), |e| {
        let (total, first) = rows_error(e);
        total == 150 && first.len() == 100 && first[0].line == 3 && first[99].line == 201
    });
}

#[test]
fn a_failed_reimport_keeps_the_earlier_rows() {
    let mut f = fixture();
    f.csv(b"a,b\n1,2\n3,4\n").unwrap();
    assert!(f.csv(b"a,b\n5,6\n7\n").is_err());
    assert_eq!(f.stored_rows(), 2);
    let report = f.csv(b"x\n=1+1\n").unwrap();
    assert_eq!(report.rows, 1);
    assert_eq!(f.value("x", 1).as_deref(), Some("=1+1"));
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn imported_values_never_reach_disk_in_clear() {
    const MARKER: &str = "zv-import-marker-4c1d 海淀区保密路";
    let mut f = fixture();
    let text = format!("id,note\n1,{MARKER}\n2,{MARKER}\n");
    f.csv(text.as_bytes()).unwrap();
    let files = files_under(f.dir.path());
    assert!(!files.is_empty());
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let hit = bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes());
        assert!(!hit, "{} holds the marker in clear", path.display());
    }
    f.file.checkpoint().unwrap();
    assert_eq!(f.stored_rows(), 2);
}

#[test]
fn the_import_digest_equals_the_digest_read_back_from_the_file() {
    let mut f = fixture();
    let csv = f.csv(&sample_csv(500)).unwrap();
    let read_back = |f: &Fixture| {
        let file = DatasetFile::open(&f.path, &f.key).unwrap();
        let (rows, ctx) = crate::lifecycle::erase::content_digest(file.connection()).unwrap();
        (rows, hex::encode(ctx.finish()))
    };
    assert_eq!(read_back(&f), (500, csv.content_sha256.clone()));
    // JSON lines with a null (stored as NULL) digest the same way.
    let jsonl = b"{\"a\": \"1\", \"b\": \"x\"}\n{\"a\": \"2\", \"b\": null}\n";
    let opts = ImportOptions {
        format: Format::JsonLines,
        ..ImportOptions::default()
    };
    let report = f.import(&jsonl[..], &opts).unwrap();
    assert_eq!(read_back(&f), (2, report.content_sha256.clone()));
    assert_ne!(report.content_sha256, csv.content_sha256);
}

/// Malformed CSV and JSON Lines (mutations of valid files) are imported
/// or refused, never a panic (release builds abort on one), and a refused
/// import leaves the rows of the last accepted one.
#[test]
fn mutated_inputs_are_imported_or_refused_and_a_refusal_keeps_the_last_rows() {
    let mut f = fixture();
    let (mut csv, mut jsonl) = (Vec::new(), Vec::new());
    sample::write_csv(20, 7, &mut csv).unwrap();
    sample::write_jsonl(20, 7, &mut jsonl).unwrap();
    let mut last_rows = 0;
    for (format, seed) in [(Format::Csv, csv), (Format::JsonLines, jsonl)] {
        let opts = ImportOptions {
            format,
            ..ImportOptions::default()
        };
        let (mut accepted, mut refused) = (0, 0);
        for (i, input) in crate::mutate::mutations(&seed, 600).enumerate() {
            match f.import(input.as_slice(), &opts) {
                Ok(report) => {
                    accepted += 1;
                    last_rows = report.rows;
                }
                Err(_) => refused += 1,
            }
            if i % 100 == 0 {
                assert_eq!(f.stored_rows(), last_rows as i64, "{format:?} mutation {i}");
            }
        }
        assert!(
            accepted >= 20 && refused >= 20,
            "{format:?}: {accepted} accepted, {refused} refused"
        );
    }
}
