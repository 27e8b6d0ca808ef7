//! End to end: abnormal data-flow alerts, against the real binary, a real
//! swtpm and real mTLS. Small thresholds make each alert kind reachable in
//! a few requests; each kind is provoked by one identity (or address) and
//! a normal workload of the same size by another stays silent. Each alert
//! is a `security.alert` ledger event, an item of `GET /v1/alerts` whose
//! evidence indexes are the provoking entries, and a count in `/metrics`.
//! Working hours are configured around the current hour (or away from it),
//! so nothing depends on when the test runs and nothing sleeps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use e2e::appliance::{create_dataset_args, issue_client_cert, Appliance, Reply};
use serde_json::{json, Value};

const TD: &str = "spiffe://test.zonevault";

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// The local (UTC+8) hour now.
fn local_hour() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    (secs / 3600 + 8).rem_euclid(24)
}

/// `[monitoring]` with small thresholds and working hours `from..to`
/// (local hours relative to now).
fn monitoring(from: i64, to: i64) -> String {
    let h = local_hour();
    format!(
        "[monitoring]\nrows_multiple = 5.0\nrows_min = 100\nrows_min_history = 3\n\
         denied_burst = 5\ndatasets_per_identity = 3\nnear_limit_fraction = 0.9\n\
         near_limit_repeats = 3\nhandshake_failures = 5\nutc_offset_hours = 8\n\
         work_start_hour = {}\nwork_end_hour = {}\n",
        (h + from).rem_euclid(24),
        (h + to).rem_euclid(24)
    )
}

struct Vault {
    app: Appliance,
}

impl Vault {
    /// The graded `residents` dataset (2000 rows), two more datasets, and
    /// analysts dan, erin and frank of partner-a besides carol.
    fn start() -> Vault {
        let (app, _) = Appliance::serving_graded_dataset();
        for person in ["dan", "erin", "frank"] {
            issue_client_cert(
                &app.path("pki/ca"),
                "analyst",
                "partner-a",
                person,
                &app.path(&format!("pki/{person}")),
            );
        }
        for id in ["branches", "loans"] {
            app.operator_ok(&create_dataset_args(id));
        }
        Vault { app }
    }

    fn call(&self, role: &str, method: &str, path: &str, body: Value) -> Reply {
        let body = (!body.is_null()).then(|| body.to_string());
        self.app.curl_full(role, method, path, body.as_deref())
    }

    fn grant(&self, person: &str, row_limit: u64) -> String {
        let body = json!({"recipient": format!("{TD}/analyst/partner-a/{person}"),
            "dataset": "residents", "columns": ["id", "amount"], "purpose": "credit model",
            "row_limit": row_limit, "max_extracts": 50, "expires": "2030-01-01T00:00:00Z",
            "filing": self.app.filing_id()});
        let r = self.call("operator", "POST", "/v1/grants", body);
        assert_eq!(r.status, 201, "{}", r.body);
        json_of(&r.body)["id"].as_str().unwrap().to_owned()
    }

    /// An extract as `role` (a pki directory); its row count.
    fn extract(&self, role: &str, grant: &str, filter: Option<&str>) -> usize {
        let mut body = json!({"grant": grant, "columns": ["id", "amount"], "format": "jsonl"});
        if let Some(f) = filter {
            body["filter"] = json!(f);
        }
        let r = self.call(role, "POST", "/v1/extracts", body);
        assert_eq!(r.status, 200, "{}", r.body);
        r.body.lines().filter(|l| !l.trim().is_empty()).count()
    }

    fn alerts(&self) -> Vec<Value> {
        let r = self.call("regulator", "GET", "/v1/alerts", Value::Null);
        assert_eq!(r.status, 200, "{}", r.body);
        json_of(&r.body)["alerts"].as_array().unwrap().clone()
    }
}

fn kinds(alerts: &[Value]) -> BTreeSet<(String, String)> {
    alerts
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap().to_owned(),
                a["subject"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn set(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(k, s)| (k.to_string(), s.to_string()))
        .collect()
}

/// Normal workloads: carol's six full extracts (40 % of her limit),
/// five allowed requests, the operator reading one dataset three times,
/// five good handshakes. Nothing is raised.
fn normal(v: &Vault, carol: &str) {
    for _ in 0..6 {
        assert_eq!(v.extract("analyst", carol, None), 2000);
    }
    for _ in 0..5 {
        assert_eq!(
            v.call("analyst", "GET", "/v1/grants", Value::Null).status,
            200
        );
    }
    for _ in 0..3 {
        let r = v.call("operator", "GET", "/v1/datasets/residents", Value::Null);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    for _ in 0..5 {
        assert_eq!(
            v.call("operator", "GET", "/v1/health", Value::Null).status,
            200
        );
    }
    assert_eq!(v.alerts(), Vec::<Value>::new());
}

/// The same sizes, abnormal: dan jumps from single rows to the whole
/// dataset; erin takes ≥ 90 % of her limit three times; frank is denied
/// five times; the regulator reads three datasets; five handshakes come
/// without a certificate.
fn provoke(v: &Vault, dan: &str, erin: &str) {
    for i in 1..=5 {
        let filter = format!("id = '{i}'");
        assert_eq!(v.extract("dan", dan, Some(&filter)), 1);
    }
    assert_eq!(v.extract("dan", dan, None), 2000);
    for _ in 0..3 {
        assert_eq!(v.extract("erin", erin, None), 2000);
    }
    for _ in 0..5 {
        assert_eq!(v.call("frank", "GET", "/v1/zones", Value::Null).status, 403);
    }
    for id in ["residents", "branches", "loans"] {
        let r = v.call(
            "regulator",
            "GET",
            &format!("/v1/datasets/{id}"),
            Value::Null,
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    for _ in 0..5 {
        let (code, _) = v.app.curl("none", "GET", "/v1/health", None);
        assert_eq!(code, 0, "no client certificate: the handshake fails");
    }
}

#[test]
fn each_alert_kind_fires_when_provoked_and_not_on_normal_work() {
    let mut v = Vault::start();
    let carol = v.grant("carol", 5000);
    let dan = v.grant("dan", 5000);
    let erin = v.grant("erin", 2100);
    v.app.stop_server(false);
    v.app
        .start_server_with(&monitoring(-1, 2))
        .expect("server restarts");
    normal(&v, &carol);
    provoke(&v, &dan, &erin);
    let alerts = v.alerts();
    let who = |p: &str| format!("identity:{TD}/analyst/partner-a/{p}");
    let bob = format!("identity:{TD}/regulator/bjeit/bob");
    assert_eq!(
        kinds(&alerts),
        set(&[
            ("row-volume", &who("dan")),
            ("near-grant-limit", &format!("grant:{erin}")),
            ("denied-burst", &who("frank")),
            ("many-datasets", &bob),
            ("handshake-failures", "addr:127.0.0.1"),
        ]),
        "{alerts:#?}"
    );
    check_evidence(&v, &alerts);
    check_metrics(&v);
    off_hours(&mut v, &carol);
}

/// Every alert is a `security.alert` event, and its evidence entries are
/// the subject's own.
fn check_evidence(v: &Vault, alerts: &[Value]) {
    let ledger = v.app.ledger_entries();
    for a in alerts {
        let event = &ledger[a["ledger_index"].as_u64().unwrap() as usize];
        assert_eq!(event["route"], "security.alert", "{event}");
        assert_eq!(event["details"]["kind"], a["kind"], "{event}");
        let evidence: Vec<u64> = a["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap())
            .collect();
        assert!(!evidence.is_empty(), "{a}");
        let subject = a["subject"].as_str().unwrap();
        for i in evidence {
            let e = &ledger[i as usize];
            match subject.split_once(':').unwrap() {
                ("identity", id) => assert_eq!(e["identity"], id, "{a} {e}"),
                ("grant", g) => {
                    assert!(e["resources"].to_string().contains(g), "{a} {e}");
                    assert_eq!(e["rows"], 2000, "{a} {e}");
                }
                ("addr", ip) => {
                    assert_eq!(e["route"], "tls.handshake-failures", "{e}");
                    assert_eq!(e["details"]["addr"], ip, "{e}");
                    assert_eq!(e["details"]["count"], 5, "{e}");
                }
                other => panic!("unexpected subject {other:?}"),
            }
        }
    }
}

fn check_metrics(v: &Vault) {
    let (code, text) = v.app.curl("regulator", "GET", "/metrics", None);
    assert_eq!(code, 200);
    for (kind, n) in [
        ("row-volume", 1),
        ("off-hours", 0),
        ("denied-burst", 1),
        ("many-datasets", 1),
        ("near-grant-limit", 1),
        ("handshake-failures", 1),
    ] {
        let line = format!("zonevault_alerts_total{{kind=\"{kind}\"}} {n}");
        assert!(text.contains(&line), "{line} in\n{text}");
    }
}

/// Working hours away from now: one extract is an off-hours alert.
fn off_hours(v: &mut Vault, carol: &str) {
    v.app.stop_server(false);
    v.app
        .start_server_with(&monitoring(3, 6))
        .expect("server restarts");
    assert_eq!(v.extract("analyst", carol, Some("id = '9'")), 1);
    let r = v.call("regulator", "GET", "/v1/alerts?kind=off-hours", Value::Null);
    let alerts = json_of(&r.body)["alerts"].as_array().unwrap().clone();
    let carol_id = format!("identity:{TD}/analyst/partner-a/carol");
    assert_eq!(
        kinds(&alerts),
        set(&[("off-hours", &carol_id)]),
        "{alerts:#?}"
    );
    let r = v.call("regulator", "GET", "/v1/alerts?kind=bogus", Value::Null);
    assert_eq!(
        (r.status, json_of(&r.body)["field"].as_str()),
        (400, Some("kind")),
        "{}",
        r.body
    );
    assert_eq!(
        v.call("analyst", "GET", "/v1/alerts", Value::Null).status,
        403
    );
}
