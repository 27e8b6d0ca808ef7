//! Tracing against extracts made by the real desensitizer: 20 recipients
//! of one dataset, leaks that are subsets, shuffled, with columns dropped,
//! and files no one was issued.

use super::*;
use crate::desensitize::{grant_key, Desensitizer, Policy, Tier};
use crate::keys::{MasterKey, PseudonymRoot};
use crate::sample;
use crate::schema::ColumnSchema;

const RECIPIENTS: usize = 20;

fn root(seed: u8) -> PseudonymRoot {
    MasterKey::from_bytes(&[seed; 32]).unwrap().pseudonym_root()
}

fn columns() -> Vec<ColumnSchema> {
    sample::column_schemas()
}

fn raw_rows() -> Vec<Vec<String>> {
    let mut csv = Vec::new();
    sample::write_csv(2000, 7, &mut csv).unwrap();
    String::from_utf8(csv)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

fn recipient(i: usize) -> String {
    format!("spiffe://td/analyst/partner-a/p{i:02}")
}

fn desensitizer(root: &PseudonymRoot, grant: &str, who: &str) -> Desensitizer {
    let key = grant_key(root, grant);
    Desensitizer::new(&columns(), Tier::Two, &Policy::default_v1(), &key)
        .unwrap()
        .with_fingerprint(FingerprintKey::new(&key, who))
}

/// One extract's output rows and its sketch.
fn extract(d: &Desensitizer, rows: &[Vec<String>]) -> (Vec<Vec<String>>, TokenSketch) {
    let mut sketch = TokenSketch::new(EXTRACT_CAPACITY);
    let out: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let cells: Vec<&str> = r.iter().map(String::as_str).collect();
            let mut out = Vec::new();
            d.apply_row(&cells, &mut out);
            out.iter().for_each(|c| {
                sketch.observe(c);
            });
            out
        })
        .collect();
    (out, sketch)
}

fn candidate(root: &PseudonymRoot, i: usize, sketch: TokenSketch) -> Candidate {
    let (grant, who) = (format!("g-{i}"), recipient(i));
    let d = desensitizer(root, &grant, &who);
    Candidate {
        extract: format!("x-{i}"),
        grant: grant.clone(),
        recipient: who.clone(),
        columns: d.plan().to_vec(),
        sketch: Some(sketch),
        key: FingerprintKey::new(&grant_key(root, &grant), &who),
    }
}

/// Every fifth row, in a scrambled order, keeping only `keep` columns, as
/// CSV with quoted cells.
fn leak_csv(rows: &[Vec<String>], keep: &[usize]) -> String {
    let names: Vec<&str> = keep.iter().map(|&i| sample::COLUMNS[i].0).collect();
    let mut subset: Vec<&Vec<String>> = rows.iter().step_by(5).collect();
    let n = subset.len();
    for i in 0..n {
        subset.swap(i, (i * 7919 + 13) % n);
    }
    let mut csv = names.join(",") + "\r\n";
    for row in subset {
        let cells: Vec<String> = keep.iter().map(|&i| format!("\"{}\"", row[i])).collect();
        csv.push_str(&(cells.join(",") + "\r\n"));
    }
    csv
}

fn trace(csv: &str, candidates: &[Candidate]) -> Verdict {
    let leak = Leak::read(csv.as_bytes()).unwrap();
    let scores = candidates.iter().map(|c| score(&leak, c)).collect();
    verdict(&leak, scores)
}

struct World {
    root: PseudonymRoot,
    outputs: Vec<Vec<Vec<String>>>,
    candidates: Vec<Candidate>,
}

fn world() -> World {
    let root = root(9);
    let rows = raw_rows();
    let mut outputs = Vec::new();
    let mut candidates = Vec::new();
    for i in 0..RECIPIENTS {
        let d = desensitizer(&root, &format!("g-{i}"), &recipient(i));
        let (out, sketch) = extract(&d, &rows);
        outputs.push(out);
        candidates.push(candidate(&root, i, sketch));
    }
    World {
        root,
        outputs,
        candidates,
    }
}

#[test]
fn a_shuffled_subset_with_a_column_dropped_names_its_recipient() {
    let w = world();
    // name, resident_id dropped, address, amount, registered.
    let v = trace(&leak_csv(&w.outputs[7], &[1, 5, 6, 7]), &w.candidates);
    assert!(v.matched, "{v:?}");
    assert_eq!(v.recipient.as_deref(), Some(recipient(7).as_str()));
    assert_eq!(v.extract.as_deref(), Some("x-7"));
    assert_eq!(v.leaked_rows, 400);
    let best = &v.ranked[0];
    let tokens = best.tokens.unwrap();
    assert_eq!(tokens.hits, tokens.checks);
    assert!(best.log10_p < -100.0, "{best:?}");
    // Every other candidate is far from significant.
    assert!(v.ranked[1].log10_p > -3.0, "{:?}", v.ranked[1]);
}

#[test]
fn generalized_amounts_alone_name_the_recipient() {
    let w = world();
    let v = trace(&leak_csv(&w.outputs[3], &[6]), &w.candidates);
    assert!(v.matched, "{v:?}");
    assert_eq!(v.recipient.as_deref(), Some(recipient(3).as_str()));
    let cells = v.ranked[0].cells.clone().unwrap();
    assert_eq!(
        (cells.leaked_column.as_str(), cells.column.as_str()),
        ("amount", "amount")
    );
    assert_eq!(cells.evidence.hits, cells.evidence.checks);
    assert!(cells.evidence.checks >= 40, "{cells:?}");
    assert!(v.ranked[0].tokens.is_none());
}

#[test]
fn files_never_issued_name_no_one() {
    let w = world();
    // The same dataset desensitized under a key no grant has.
    let stranger = root(10);
    let d = desensitizer(&stranger, "g-7", &recipient(7));
    let (out, _) = extract(&d, &raw_rows());
    let v = trace(&leak_csv(&out, &[1, 2, 5, 6]), &w.candidates);
    assert!(!v.matched, "{v:?}");
    assert_eq!(v.recipient, None);
    assert!(v.best_log10_p_adjusted > ALPHA.log10());
    assert_eq!(v.candidates, RECIPIENTS);
    assert!(v
        .ranked
        .iter()
        .all(|s| s.tokens.is_none_or(|t| t.hits == 0)));

    // Random tokens and plain, unfingerprinted ranges.
    let mut csv = String::from("name,amount\n");
    for i in 0..400u64 {
        let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5555;
        let token: String = (0..16)
            .map(|k| char::from(b'a' + ((x >> (60 - 4 * k)) & 15) as u8))
            .collect();
        let lo = (i * 250) % 100_000 / 1000 * 1000;
        csv.push_str(&format!("NAME-{token},\"[{lo},{})\"\n", lo + 1000));
    }
    let v = trace(&csv, &w.candidates);
    assert!(!v.matched, "{v:?}");
    let _ = &w.root;
}

#[test]
fn an_extract_of_another_grant_of_the_same_recipient_does_not_match() {
    let w = world();
    let d = desensitizer(&w.root, "g-other", &recipient(7));
    let (out, _) = extract(&d, &raw_rows());
    let v = trace(&leak_csv(&out, &[1, 2]), &w.candidates);
    assert!(!v.matched, "{v:?}");
}
