//! End to end: incident trace. `GET /v1/trace` returns exactly the ledger
//! entries of one identity, dataset or extract (within a time range), each
//! with its inclusion proof against a signed checkpoint it returns;
//! `zonevault trace-incident` verifies them with the pinned key and prints
//! a timeline, online or from a saved trace, and refuses a tampered one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use e2e::appliance::{s, Appliance, Reply};
use serde_json::{json, Value};

const CAROL: &str = "spiffe://test.zonevault/analyst/partner-a/carol";

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

struct Traced {
    app: Appliance,
    extract: String,
}

fn call(app: &Appliance, role: &str, method: &str, path: &str, body: Value) -> Reply {
    let body = (!body.is_null()).then(|| body.to_string());
    app.curl_full(role, method, path, body.as_deref())
}

/// A grant to carol, two extracts and one refused, an operator read.
fn setup() -> Traced {
    let (app, _) = Appliance::serving_graded_dataset();
    let body = json!({"recipient": CAROL, "dataset": "residents", "columns": ["id", "amount"],
        "purpose": "credit model", "row_limit": 5000, "max_extracts": 10,
        "expires": "2030-01-01T00:00:00Z", "filing": app.filing_id()});
    let r = call(&app, "operator", "POST", "/v1/grants", body);
    assert_eq!(r.status, 201, "{}", r.body);
    let grant = json_of(&r.body)["id"].as_str().unwrap().to_owned();
    let mut extract = String::new();
    for _ in 0..2 {
        let r = call(
            &app,
            "analyst",
            "POST",
            "/v1/extracts",
            json!({"grant": grant}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        extract = r
            .headers
            .get("zonevault-extract-id")
            .cloned()
            .unwrap_or_default();
    }
    let r = call(
        &app,
        "analyst",
        "POST",
        "/v1/extracts",
        json!({"grant": "g-nope"}),
    );
    assert_eq!(r.status, 403);
    let r = call(
        &app,
        "operator",
        "GET",
        "/v1/datasets/residents",
        Value::Null,
    );
    assert_eq!(r.status, 200);
    Traced { app, extract }
}

fn ledger(app: &Appliance) -> Vec<Value> {
    let r = call(app, "regulator", "GET", "/v1/ledger/entries", Value::Null);
    r.body.lines().map(json_of).collect()
}

fn trace(app: &Appliance, query: &str) -> (u16, Value) {
    let r = call(
        app,
        "regulator",
        "GET",
        &format!("/v1/trace?{query}"),
        Value::Null,
    );
    (r.status, json_of(&r.body))
}

fn indexes(body: &Value) -> Vec<u64> {
    body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect()
}

#[test]
fn trace_returns_exactly_the_involved_entries_with_proofs() {
    let t = setup();
    let app = &t.app;
    let all = ledger(app);
    let (code, body) = trace(app, &format!("identity={}", urlencode(CAROL)));
    assert_eq!(code, 200, "{body}");
    let expected: Vec<u64> = all
        .iter()
        .enumerate()
        .filter(|(_, e)| e["identity"] == CAROL)
        .map(|(i, _)| i as u64)
        .collect();
    assert_eq!(indexes(&body), expected);
    assert!(
        expected.len() >= 5,
        "2 extracts × (start, complete) + 1 refusal"
    );
    let decisions: Vec<&str> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            json_of(e["leaf"].as_str().unwrap())["decision"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .map(|d| if d == "deny" { "deny" } else { "other" })
        .collect();
    assert!(decisions.contains(&"deny"), "the refused extract is traced");

    let (_, by_dataset) = trace(app, "dataset=residents");
    let idx = indexes(&by_dataset);
    for i in &idx {
        assert!(
            all[*i as usize]["resources"]
                .to_string()
                .contains("dataset:residents"),
            "{}",
            all[*i as usize]
        );
    }
    let named = all
        .iter()
        .filter(|e| {
            e["resources"]
                .as_array()
                .is_some_and(|r| r.contains(&json!("dataset:residents")))
        })
        .count();
    assert_eq!(idx.len(), named);

    assert!(
        t.extract.starts_with("x-") || !t.extract.is_empty(),
        "{}",
        t.extract
    );
    let (_, by_extract) = trace(app, &format!("extract={}", t.extract));
    let start_and_complete: Vec<u64> = all
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            e["resources"]
                .to_string()
                .contains(&format!("extract:{}", t.extract))
        })
        .map(|(i, _)| i as u64)
        .collect();
    assert_eq!(indexes(&by_extract), start_and_complete);
    assert_eq!(start_and_complete.len(), 2, "{by_extract}");
    let (_, later) = trace(app, "dataset=residents&from=2100-01-01T00:00:00Z");
    assert_eq!(indexes(&later), Vec::<u64>::new());
    refusals(app);
    cli(app);
}

fn refusals(app: &Appliance) {
    for (query, field) in [
        ("", "identity"),
        ("identity=a&dataset=b", "identity"),
        ("dataset=residents&from=yesterday", "from"),
        (
            "dataset=residents&from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            "to",
        ),
    ] {
        let (code, body) = trace(app, query);
        assert_eq!(
            (code, body["field"].as_str()),
            (400, Some(field)),
            "{query}: {body}"
        );
    }
    let r = call(
        app,
        "analyst",
        "GET",
        "/v1/trace?dataset=residents",
        Value::Null,
    );
    assert_eq!(r.status, 403);
}

fn cli(app: &Appliance) {
    let (_, key) = app.curl("regulator", "GET", "/v1/ledger/key", None);
    let key = key.trim();
    let saved = app.path("trace.json");
    let out = app.zonevault_as(
        "regulator",
        &[
            "trace-incident",
            "--identity",
            CAROL,
            "--key",
            key,
            "--save",
            s(&saved),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("included in the signed checkpoint") && stderr.contains("OK"),
        "{stderr}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("/v1/extracts") && l.contains("deny")),
        "{stdout}"
    );
    assert!(stdout.lines().all(|l| l.contains(CAROL)), "{stdout}");

    let out = app.zonevault_as(
        "operator",
        &["trace-incident", "--dataset", "residents", "--key", key],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let timeline = String::from_utf8_lossy(&out.stdout);
    assert!(
        timeline.lines().all(|l| l.contains("dataset:residents")),
        "{timeline}"
    );
    let out = app.zonevault_as("regulator", &["trace-incident", "--key", key]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--identity"));
    let offline = e2e::appliance::zonevault(&["trace-incident", "--file", s(&saved), "--key", key]);
    assert!(
        offline.status.success(),
        "{}",
        String::from_utf8_lossy(&offline.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&offline.stdout), stdout);

    let text = std::fs::read_to_string(&saved).unwrap();
    let tampered = app.path("tampered.json");
    std::fs::write(
        &tampered,
        text.replacen(
            "\\\"decision\\\":\\\"deny\\\"",
            "\\\"decision\\\":\\\"allow\\\"",
            1,
        ),
    )
    .unwrap();
    assert_ne!(
        std::fs::read_to_string(&tampered).unwrap(),
        text,
        "the tamper applied"
    );
    let out = e2e::appliance::zonevault(&["trace-incident", "--file", s(&tampered), "--key", key]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not included"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn urlencode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
