//! Unit tests of the extract pipeline against a real (keyed) dataset file.

use std::collections::HashMap;

use super::*;
use crate::dataset_file::DatasetFile;
use crate::desensitize::{grant_key, Policy, Tier};
use crate::detect::{is_bank_card, is_mobile, is_resident_id, is_uscc};
use crate::keys::{DatasetKey, MasterKey};
use crate::sample;
use crate::schema::ColumnSchema;

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    key: DatasetKey,
    columns: Vec<ColumnSchema>,
    /// Reader connections of each extract.
    readers: usize,
    /// The selection's filter and row limit.
    filter: Option<WhereClause>,
    row_limit: u64,
}

fn fixture(rows: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.db");
    let key = DatasetKey::generate().unwrap();
    sample::dataset_file(&path, &key, rows, 42);
    Fixture {
        _dir: dir,
        path,
        key,
        columns: sample::column_schemas(),
        readers: 2,
        filter: None,
        row_limit: 100_000,
    }
}

fn root() -> PseudonymRoot {
    MasterKey::from_bytes(&[9; 32]).unwrap().pseudonym_root()
}

impl Fixture {
    fn extract(&self, names: &[&str], grant: &str, format: Format) -> (String, Outcome) {
        let cols: Vec<ColumnSchema> = names
            .iter()
            .map(|n| self.columns.iter().find(|c| c.name == *n).unwrap().clone())
            .collect();
        let policy = Policy::default_v1();
        let mut d =
            Desensitizer::new(&cols, Tier::Two, &policy, &grant_key(&root(), grant)).unwrap();
        let selection = Selection {
            columns: names.iter().map(|s| s.to_string()).collect(),
            filter: self.filter.clone(),
            row_limit: self.row_limit,
        };
        let counter = AtomicU64::new(0);
        let mut file = DatasetFile::open_readers(&self.path, &self.key, self.readers).unwrap();
        let (body, outcome) = run(
            file.connections_mut(),
            &selection,
            &mut d,
            policy.k(),
            format,
            Vec::new(),
            &counter,
        )
        .unwrap();
        assert_eq!(counter.load(Ordering::SeqCst), outcome.rows);
        (String::from_utf8(body).unwrap(), outcome)
    }
}

const ALL: [&str; 8] = [
    "id",
    "name",
    "resident_id",
    "mobile",
    "bank_card",
    "address",
    "amount",
    "registered",
];

#[test]
fn no_raw_identifiers_and_k_anonymous_output() {
    let f = fixture(2000);
    let (body, outcome) = f.extract(&ALL, "g-1", Format::Csv { bom: false });
    assert_eq!(outcome.rows + outcome.rows_suppressed, 2000);
    assert_eq!(
        outcome.body_sha256,
        ExtractManifestDigest::of(body.as_bytes())
    );
    let mut classes: HashMap<String, usize> = HashMap::new();
    for line in body.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        for cell in &cells {
            let raw = is_resident_id(cell) || is_mobile(cell) || is_bank_card(cell);
            assert!(!(raw || is_uscc(cell)), "raw identifier in {line}");
            assert!(crate::detect::scan_text(cell).is_empty(), "{cell}");
        }
        *classes.entry(cells[5].to_owned()).or_default() += 1;
    }
    assert!(classes.values().all(|&n| n >= 5), "{classes:?}");
}

struct ExtractManifestDigest;

impl ExtractManifestDigest {
    fn of(body: &[u8]) -> String {
        crate::desensitize::ExtractManifest::body_digest(body)
    }
}

/// Ids of the body's rows (the first column), in order.
fn ids(body: &str) -> Vec<u64> {
    let rows = body.lines().skip(1);
    rows.map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn readers_and_chunks_change_nothing_and_the_limit_cuts_exactly() {
    let rows = 3 * chunks::CHUNK_ROWS as u64 + 100;
    let mut f = fixture(rows);
    let csv = Format::Csv { bom: false };
    f.readers = 1;
    let (one, a) = f.extract(&ALL, "g-1", csv);
    f.readers = 3;
    let (three, b) = f.extract(&ALL, "g-1", csv);
    assert_eq!(one, three);
    assert_eq!(a, b);
    assert_eq!(a.rows + a.rows_suppressed, rows);
    assert!(a.rows > rows * 9 / 10, "{a:?}");
    let released = ids(&one);
    assert!(released.windows(2).all(|w| w[0] < w[1]), "rowid order");

    // A filter and a limit that cuts the third chunk: exactly the first
    // 9000 matching rows, the same on one reader and on three.
    f.filter = Some(("\"id\" NOT LIKE ?1".into(), vec!["%3".to_owned().into()]));
    f.row_limit = 9000;
    let (three, b) = f.extract(&ALL, "g-1", csv);
    f.readers = 1;
    let (one, a) = f.extract(&ALL, "g-1", csv);
    assert_eq!((one, a.clone()), (three.clone(), b));
    assert_eq!(a.rows + a.rows_suppressed, 9000);
    let expected: Vec<u64> = (1..=rows).filter(|n| n % 10 != 3).take(9000).collect();
    let released = ids(&three);
    assert!(released.iter().all(|id| expected.binary_search(id).is_ok()));
    assert!(*released.last().unwrap() <= *expected.last().unwrap());
}

#[test]
fn quasi_identifiers_are_generalized_before_rows_are_suppressed() {
    // 60 rows over 12 districts: some districts have fewer than 5 rows,
    // more than 1% of the rows; cities (北京市) hold all 60.
    let f = fixture(60);
    let (body, outcome) = f.extract(&["id", "address"], "g-1", Format::Jsonl);
    assert_eq!(outcome.generalization_level, 1, "{outcome:?}");
    assert_eq!((outcome.rows, outcome.rows_suppressed), (60, 0));
    assert!(
        body.lines().all(|l| l.contains("\"address\":\"北京市\"")),
        "{body}"
    );
}

#[test]
fn classes_no_generalization_can_merge_are_suppressed() {
    let mut f = fixture(60);
    // A quasi-identifier released as stored (each id is its own class).
    f.columns[0].quasi_identifier = true;
    let (body, outcome) = f.extract(&["id", "address"], "g-1", Format::Jsonl);
    assert_eq!((outcome.rows, outcome.rows_suppressed), (0, 60));
    assert_eq!(outcome.generalization_level, 0);
    assert!(body.is_empty(), "{body}");
}

#[test]
fn pseudonyms_stable_within_a_grant_and_differ_across() {
    let f = fixture(50);
    let (a, _) = f.extract(&["id", "resident_id"], "g-1", Format::Jsonl);
    let (b, _) = f.extract(&["id", "resident_id"], "g-1", Format::Jsonl);
    let (c, _) = f.extract(&["id", "resident_id"], "g-2", Format::Jsonl);
    assert_eq!(a, b);
    let first =
        |s: &str| -> serde_json::Value { serde_json::from_str(s.lines().next().unwrap()).unwrap() };
    assert!(first(&a)["resident_id"]
        .as_str()
        .unwrap()
        .starts_with("RID-"));
    assert_ne!(first(&a)["resident_id"], first(&c)["resident_id"]);
}

#[test]
fn fingerprints_depend_on_grant_and_recipient() {
    let r = root();
    let a = recipient_fingerprint(&r, "g-1", "spiffe://t/analyst/p/carol");
    assert_eq!(a.len(), 64);
    assert_eq!(
        a,
        recipient_fingerprint(&r, "g-1", "spiffe://t/analyst/p/carol")
    );
    assert_ne!(
        a,
        recipient_fingerprint(&r, "g-2", "spiffe://t/analyst/p/carol")
    );
    assert_ne!(
        a,
        recipient_fingerprint(&r, "g-1", "spiffe://t/analyst/p/dan")
    );
}
