//! End to end: the versioned desensitization policy. The shipped TOML is
//! in force until an operator replaces it; a bad file is a 400 naming the
//! row and field and changes nothing; an accepted one becomes the next
//! version, is a ledger entry with the SHA-256 of its TOML, and governs
//! the extracts that follow (header, manifest and cells), including its k:
//! quasi-identifiers are generalized further before any row is suppressed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use e2e::appliance::{s, Appliance, Reply};
use serde_json::{json, Value};

const CAROL: &str = "spiffe://test.zonevault/analyst/partner-a/carol";

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

fn ledger_entry(app: &Appliance, reply: &Reply) -> Value {
    let index = reply.ledger_index().expect("a ledger receipt") as usize;
    let r = app.curl_full("regulator", "GET", "/v1/ledger/entries", None);
    json_of(r.body.lines().nth(index).unwrap())
}

fn put(app: &Appliance, role: &str, toml: &str) -> Reply {
    app.curl_full(role, "PUT", "/v1/policy", Some(toml))
}

fn current(app: &Appliance) -> Value {
    let r = app.curl_full("regulator", "GET", "/v1/policy", None);
    assert_eq!(r.status, 200, "{}", r.body);
    json_of(&r.body)
}

/// The shipped policy with amounts up to general-3 in ranges of 5000 for
/// tier 2, mobiles suppressed for tier 2, and k = 200 (so the ~166 rows
/// per district of the sample force addresses up to the city).
fn replacement(default: &str) -> String {
    let amount = "tier2 = { technique = \"generalize\", to = \"amount_range\", width = 1000 }";
    let mobile = "tier1 = { technique = \"mask\", keep_first = 3, keep_last = 4 }\n\
                  tier2 = { technique = \"mask\", keep_first = 3, keep_last = 4 }";
    assert_eq!(default.matches(amount).count(), 2);
    assert_eq!(default.matches(mobile).count(), 1);
    default
        .replacen("k = 5", "k = 200", 1)
        .replacen(amount, &amount.replace("1000", "5000"), 1)
        .replace(
            mobile,
            "tier1 = { technique = \"mask\", keep_first = 3, keep_last = 4 }\n\
             tier2 = { technique = \"suppress\" }",
        )
}

#[test]
fn policies_are_validated_versioned_recorded_and_used() {
    let (app, _) = Appliance::serving_graded_dataset();
    let shipped = current(&app);
    assert_eq!(
        (shipped["version"].clone(), shipped["builtin"].clone()),
        (json!("v1"), json!(true))
    );
    let default = shipped["toml"].as_str().unwrap().to_owned();
    assert!(default.contains("GB/T 35273-2020") && default.contains("JR/T 0171-2020"));

    // Refusals: wrong roles, then bad files naming row and field.
    for role in ["analyst", "regulator"] {
        let r = put(&app, role, &default);
        assert_eq!(r.status, 403, "{role}: {}", r.body);
    }
    let bad = [
        (
            default.replacen("technique = \"pseudonymize\"", "technique = \"encrypt\"", 1),
            "rule[1].tier1",
        ),
        (default.replacen("keep_first = 6, ", "", 1), "rule[3].tier1"),
        (
            default.replacen("\"general-4\"]", "\"general-7\"]", 1),
            "rule[1].grades",
        ),
        (default.replacen("k = 5", "k = 1", 1), "k"),
    ];
    for (text, field) in &bad {
        let r = put(&app, "operator", text);
        assert_eq!(r.status, 400, "{field}: {}", r.body);
        assert_eq!(json_of(&r.body)["field"], *field, "{}", r.body);
        let entry = ledger_entry(&app, &r);
        assert_eq!(
            (entry["route"].clone(), entry["status"].clone()),
            (json!("/v1/policy"), json!(400))
        );
    }
    assert_eq!(
        current(&app)["version"],
        "v1",
        "a refused policy changed nothing"
    );
    let file = app.path("bad-policy.toml");
    std::fs::write(&file, &bad[0].0).unwrap();
    let out = app.zonevault_as("operator", &["policy", "put", "--file", s(&file)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("field: rule[1].tier1"));

    // An accepted policy: v2, recorded with its SHA-256.
    let text = replacement(&default);
    let file = app.path("policy.toml");
    std::fs::write(&file, &text).unwrap();
    let out = app.zonevault_as("operator", &["policy", "put", "--file", s(&file)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sha = sha256sum(&file);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("policy v2 in force (sha256 {sha})")
    );
    let now = current(&app);
    assert_eq!(
        (now["version"].clone(), now["sha256"].clone()),
        (json!("v2"), json!(sha))
    );
    assert_eq!(now["toml"], text.as_str());
    let entries = app
        .curl_full("regulator", "GET", "/v1/ledger/entries", None)
        .body;
    let put_entry = entries
        .lines()
        .map(json_of)
        .find(|e| e["details"]["event"] == "policy.put")
        .unwrap();
    assert_eq!(put_entry["details"]["sha256"], sha.as_str());
    assert_eq!(put_entry["details"]["version"], "v2");

    extract_uses(&app);
}

fn sha256sum(file: &std::path::Path) -> String {
    let out = Command::new("sha256sum").arg(file).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// An extract after the replacement carries v2 and follows it.
fn extract_uses(app: &Appliance) {
    let grant = app.curl_full(
        "operator",
        "POST",
        "/v1/grants",
        Some(
            &json!({"recipient": CAROL, "dataset": "residents", "columns": ["id", "mobile", "address", "amount"],
                    "purpose": "credit risk model", "row_limit": 5000, "max_extracts": 2,
                    "expires": "2099-01-01T00:00:00Z", "filing": app.filing_id()})
            .to_string(),
        ),
    );
    assert_eq!(grant.status, 201, "{}", grant.body);
    let id = json_of(&grant.body)["id"].as_str().unwrap().to_owned();
    let x = app.curl_full(
        "analyst",
        "POST",
        "/v1/extracts",
        Some(&json!({"grant": id, "format": "jsonl"}).to_string()),
    );
    assert_eq!(x.status, 200, "{}", x.body);
    assert_eq!(x.headers["zonevault-policy-version"], "v2");
    let mut rows = 0;
    for row in x.body.lines().map(json_of) {
        assert_eq!(row["mobile"], Value::Null, "{row}");
        assert_eq!(row["address"], "北京市", "{row}");
        let amount = row["amount"].as_str().unwrap();
        let (lo, hi) = amount[1..amount.len() - 1].split_once(',').unwrap();
        let (lo, hi): (i64, i64) = (lo.parse().unwrap(), hi.parse().unwrap());
        assert_eq!(lo % 5000, 0, "{amount}");
        assert!(hi - lo == 5000 || hi - lo == 10_000, "{amount}");
        rows += 1;
    }
    assert!(rows > 1000, "{rows}");
    let xid = &x.headers["zonevault-extract-id"];
    let m = app.curl_full(
        "analyst",
        "GET",
        &format!("/v1/extracts/{xid}/manifest"),
        None,
    );
    let manifest = &json_of(&m.body)["manifest"];
    assert_eq!(manifest["policy_version"], "v2", "{manifest}");
    // k-anonymity by generalizing first: districts to the city, no row lost.
    assert_eq!(manifest["generalization_level"], 1, "{manifest}");
    assert_eq!(manifest["rows_suppressed"], 0, "{manifest}");
    assert_eq!(manifest["row_count"], rows, "{manifest}");
    let address = manifest["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "address")
        .unwrap();
    assert_eq!(address["to"], "address_to_city", "{manifest}");
}
