//! End to end: partner tiers, grants and desensitized extracts against the
//! real binary, a real swtpm and real TLS. Refusals are 403s whose reason
//! is in the ledger, not the body; extracts carry no raw identifiers, are
//! k-anonymous on their quasi-identifiers, and verify offline against the
//! appliance's key, while a tampered body or manifest does not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::process::Output;

use e2e::appliance::{issue_client_cert, s, Appliance, Reply};
use serde_json::{json, Value};
use vault::detect::{is_bank_card, is_mobile, is_resident_id, is_uscc, scan_text};

const CAROL: &str = "spiffe://test.zonevault/analyst/partner-a/carol";
const GRANTED: [&str; 7] = [
    "id",
    "name",
    "resident_id",
    "mobile",
    "bank_card",
    "address",
    "amount",
];

struct Setup {
    app: Appliance,
}

impl Setup {
    /// See [`Appliance::serving_graded_dataset`].
    fn start() -> Setup {
        let (app, _) = Appliance::serving_graded_dataset();
        Setup { app }
    }

    fn cli(&self, role: &str, args: &[&str]) -> Output {
        self.app.zonevault_as(role, args)
    }

    /// A client command as the operator that must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        self.app.operator_ok(args)
    }

    fn call(&self, role: &str, method: &str, path: &str, body: Value) -> Reply {
        self.app
            .curl_full(role, method, path, Some(&body.to_string()))
    }

    /// A grant to `recipient` of `columns`; its id.
    fn grant(&self, recipient: &str, columns: &[&str], expires: &str) -> String {
        let r = self.call(
            "operator",
            "POST",
            "/v1/grants",
            json!({"recipient": recipient, "dataset": "residents", "columns": columns,
                   "purpose": "credit risk model", "row_limit": 5000, "max_extracts": 10,
                   "expires": expires, "filing": self.app.filing_id()}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        json(&r.body)["id"].as_str().unwrap().to_owned()
    }

    fn extract(&self, role: &str, body: Value) -> Reply {
        self.call(role, "POST", "/v1/extracts", body)
    }

    /// The ledger entries, parsed.
    fn ledger(&self) -> Vec<Value> {
        let r = self
            .app
            .curl_full("regulator", "GET", "/v1/ledger/entries", None);
        assert_eq!(r.status, 200, "{}", r.body);
        r.body.lines().map(json).collect()
    }

    /// A refusal: 403, its reason only in its ledger entry.
    fn assert_refused(&self, reply: &Reply, reason: &str) {
        assert_eq!(reply.status, 403, "{}", reply.body);
        assert!(!reply.body.contains(reason), "{}", reply.body);
        let index = reply.ledger_index().expect("a ledger receipt") as usize;
        let entry = &self.ledger()[index];
        assert_eq!(entry["decision"], "deny", "{entry}");
        let recorded = entry["reason"].as_str().unwrap_or("");
        assert!(recorded.contains(reason), "{reason:?} not in {entry}");
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The time `seconds` from now in RFC 3339, UTC, whole seconds.
fn from_now(seconds: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::seconds(seconds);
    let t = t.replace_nanosecond(0).unwrap();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Rows of a CSV body without quoted fields (sample data has none),
/// header first.
fn csv_rows(body: &str) -> Vec<Vec<String>> {
    body.lines()
        .map(|l| {
            l.trim_end_matches('\r')
                .split(',')
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

#[test]
fn grants_extracts_manifests_and_refusals() {
    let st = Setup::start();
    let expires = from_now(30 * 86_400);
    let a = st.grant(CAROL, &GRANTED, &expires);

    refusals(&st, &a, &expires);
    let (body, manifest) = cli_extract_and_verify(&st, &a);
    check_body(&body, &manifest);
    check_ledger(&st, &manifest);
    pseudonyms(&st, &a, &expires);
    filter_values_are_data(&st, &a);
}

fn refusals(st: &Setup, a: &str, expires: &str) {
    // No grant, a column outside it, a core column in it.
    st.assert_refused(
        &st.extract("analyst", json!({"grant": "g-nope"})),
        "no such grant",
    );
    let outside = st.extract("analyst", json!({"grant": a, "columns": ["registered"]}));
    st.assert_refused(&outside, "outside the grant");
    let core = st.call(
        "operator",
        "POST",
        "/v1/grants",
        json!({"recipient": CAROL, "dataset": "residents", "columns": ["id", "registered"],
               "purpose": "p", "row_limit": 10, "expires": expires,
               "filing": st.app.filing_id()}),
    );
    assert_eq!(core.status, 403, "{}", core.body);
    assert!(core.body.contains("registered"), "{}", core.body);

    // Another analyst's grant.
    let ca = st.app.path("pki/ca");
    let dan = st.app.path("pki/dan");
    issue_client_cert(&ca, "analyst", "partner-a", "dan", &dan);
    st.assert_refused(&st.extract("dan", json!({"grant": a})), "another recipient");

    // Revoked, then expired.
    let b = st.grant(CAROL, &["id"], expires);
    assert!(st.ok(&["grant", "revoke", "--id", &b]).contains("revoked"));
    st.assert_refused(&st.extract("analyst", json!({"grant": b})), "revoked");
    let soon = from_now(2);
    let c = st.grant(CAROL, &["id"], &soon);
    std::thread::sleep(std::time::Duration::from_secs(3));
    st.assert_refused(&st.extract("analyst", json!({"grant": c})), "expired");

    // Bad requests name the field.
    let bad = st.call(
        "operator",
        "POST",
        "/v1/grants",
        json!({"recipient": "nobody-org", "dataset": "residents", "columns": ["id"],
               "purpose": "p", "row_limit": 10, "expires": expires}),
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(json(&bad.body)["field"], "recipient", "{}", bad.body);
}

/// `zonevault extract` to a file, then `zonevault verify extract`; a
/// tampered body and a tampered manifest fail.
fn cli_extract_and_verify(st: &Setup, grant: &str) -> (String, Value) {
    let out_file = st.app.path("extract.csv");
    let out = st.cli(
        "analyst",
        &["extract", "--grant", grant, "--out", s(&out_file)],
    );
    assert!(out.status.success(), "{}", text(&out));
    let manifest_file = st.app.path("extract.csv.manifest");
    let note = std::fs::read_to_string(&manifest_file).unwrap();
    let key = st.ok(&["ledger", "key"]).trim().to_owned();
    let verify = |manifest: &std::path::Path, body: &std::path::Path| {
        st.cli(
            "analyst",
            &[
                "verify",
                "extract",
                "--manifest",
                s(manifest),
                "--body",
                s(body),
                "--key",
                &key,
            ],
        )
    };
    let good = verify(&manifest_file, &out_file);
    assert!(good.status.success(), "{}", text(&good));

    let body = std::fs::read_to_string(&out_file).unwrap();
    let tampered_body = st.app.path("tampered.csv");
    std::fs::write(&tampered_body, body.replacen("北京市", "天津市", 1)).unwrap();
    let bad = verify(&manifest_file, &tampered_body);
    assert!(!bad.status.success(), "{}", text(&bad));
    assert!(text(&bad).contains("does not match"), "{}", text(&bad));

    let tampered_note = st.app.path("tampered.manifest");
    let more = note.replacen("\"rows_suppressed\":", "\"rows_suppressed\":1", 1);
    std::fs::write(&tampered_note, more).unwrap();
    let bad = verify(&tampered_note, &out_file);
    assert!(!bad.status.success(), "{}", text(&bad));
    assert!(text(&bad).contains("does not verify"), "{}", text(&bad));

    let manifest: Value = json(note.lines().nth(1).unwrap());
    (body, manifest)
}

/// No raw identifier anywhere; k-anonymity on the quasi-identifier
/// (address) holds; the manifest describes the body.
fn check_body(body: &str, manifest: &Value) {
    let rows = csv_rows(body);
    assert_eq!(rows[0], GRANTED, "{:?}", rows[0]);
    let data = &rows[1..];
    assert_eq!(data.len() as u64, manifest["row_count"].as_u64().unwrap());
    let suppressed = manifest["rows_suppressed"].as_u64().unwrap();
    assert_eq!(data.len() as u64 + suppressed, 2000, "{manifest}");
    let mut classes: HashMap<&str, usize> = HashMap::new();
    for row in data {
        for cell in row {
            let raw = is_resident_id(cell) || is_mobile(cell) || is_bank_card(cell);
            assert!(!(raw || is_uscc(cell)), "raw identifier in {row:?}");
            assert!(scan_text(cell).is_empty(), "identifier in {cell:?}");
        }
        *classes.entry(row[5].as_str()).or_default() += 1;
    }
    assert!(classes.values().all(|&n| n >= 5), "{classes:?}");
    assert!(data[0][2].starts_with("RID-"), "{:?}", data[0]);
    assert_eq!(manifest["recipient"], CAROL);
    assert_eq!(manifest["policy_version"], "v1");
    assert_eq!(
        manifest["recipient_fingerprint"].as_str().unwrap().len(),
        64
    );
}

/// The start and completion entries of the extract, with rows and digest.
fn check_ledger(st: &Setup, manifest: &Value) {
    let resource = format!("extract:{}", manifest["extract_id"].as_str().unwrap());
    let ledger = st.ledger();
    let mine: Vec<&Value> = ledger
        .iter()
        .filter(|e| {
            e["resources"]
                .as_array()
                .is_some_and(|r| r.contains(&json!(resource)))
        })
        .collect();
    let start = mine
        .iter()
        .find(|e| e["phase"]["step"] == "start")
        .expect("start entry");
    let done = mine
        .iter()
        .find(|e| e["phase"]["step"] == "complete")
        .expect("completion entry");
    let start_index = manifest["ledger_index"].as_u64().unwrap();
    assert_eq!(&ledger[start_index as usize], *start);
    assert_eq!(done["phase"]["start_index"], start_index, "{done}");
    assert_eq!(done["decision"], "allow", "{done}");
    assert_eq!(done["rows"], manifest["row_count"], "{done}");
    assert_eq!(done["body_sha256"], manifest["body_sha256"], "{done}");
    assert_eq!(start["purpose"], "credit risk model", "{start}");
}

/// The `resident_id` pseudonyms of one JSONL extract, by row id.
fn pseudonyms_of(st: &Setup, grant: &str) -> HashMap<String, String> {
    let r = st.extract(
        "analyst",
        json!({"grant": grant, "columns": ["id", "resident_id"], "format": "jsonl"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.headers.contains_key("zonevault-extract-id"),
        "{:?}",
        r.headers
    );
    assert_eq!(
        r.headers
            .get("zonevault-policy-version")
            .map(String::as_str),
        Some("v1")
    );
    assert!(r.ledger_index().is_some());
    r.body
        .lines()
        .map(json)
        .map(|v| {
            (
                v["id"].as_str().unwrap().to_owned(),
                v["resident_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pseudonyms(st: &Setup, a: &str, expires: &str) {
    let b = st.grant(CAROL, &["id", "resident_id"], expires);
    let (a1, a2, b1) = (
        pseudonyms_of(st, a),
        pseudonyms_of(st, a),
        pseudonyms_of(st, &b),
    );
    assert_eq!(a1.len(), 2000);
    assert_eq!(a1, a2);
    let differ = a1.iter().filter(|(id, p)| b1.get(*id) != Some(p)).count();
    assert_eq!(differ, a1.len());
}

fn filter_values_are_data(st: &Setup, a: &str) {
    let r = st.extract(
        "analyst",
        json!({"grant": a, "columns": ["id", "amount"], "filter": "id = ''' OR 1=1 --'"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body.lines().count(), 1, "only the header: {}", r.body);
    let one = st.extract(
        "analyst",
        json!({"grant": a, "columns": ["id", "amount"], "filter": "id = '7'"}),
    );
    assert_eq!(one.body.lines().count(), 2, "{}", one.body);
    let syntax = st.extract("analyst", json!({"grant": a, "filter": "id = = 3"}));
    assert_eq!(syntax.status, 400, "{}", syntax.body);
    assert!(json(&syntax.body)["problem"]
        .as_str()
        .unwrap_or("")
        .contains("position"));
    let hidden = st.extract(
        "analyst",
        json!({"grant": a, "filter": "mobile = '13812345678'"}),
    );
    assert_eq!(hidden.status, 400, "{}", hidden.body);
}
