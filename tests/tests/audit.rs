//! End to end: every request through the mTLS API, allowed or denied, is
//! exactly one ledger entry, recorded with the caller's identity; receipts
//! survive `kill -9` under concurrent load; analysts see proofs only for
//! their own entries. Real binary, real swtpm, real TLS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use e2e::appliance::{s, Appliance, Reply, TRUST_DOMAIN};
use serde_json::Value;
use vault::ledger::merkle::{leaf_hash, verify_inclusion};

fn running() -> Appliance {
    let mut app = Appliance::new();
    app.init("0,2,4,7");
    app.start_server().expect("server starts");
    app
}

fn identity(role: &str) -> String {
    let (org, person) = match role {
        "operator" => ("zone-op", "alice"),
        "regulator" => ("bjeit", "bob"),
        "provider" => ("bureau-x", "dave"),
        _ => ("partner-a", "carol"),
    };
    format!("spiffe://{TRUST_DOMAIN}/{role}/{org}/{person}")
}

fn receipt(reply: &Reply) -> u64 {
    reply
        .ledger_index()
        .unwrap_or_else(|| panic!("no ledger receipt: {reply:?}"))
}

#[test]
fn audit_wrong_role_is_refused_with_403_and_recorded_as_a_deny_with_its_identity() {
    let app = running();
    let metrics = app.curl_full("analyst", "GET", "/metrics", None);
    let entries = app.curl_full("analyst", "GET", "/v1/ledger/entries", None);
    let hash = app.curl_full(
        "provider",
        "POST",
        "/v1/ledger/hash",
        Some(r#"{"value":"x"}"#),
    );
    for (reply, route, role) in [
        (&metrics, "/metrics", "analyst"),
        (&entries, "/v1/ledger/entries", "analyst"),
        (&hash, "/v1/ledger/hash", "provider"),
    ] {
        assert_eq!(reply.status, 403, "{reply:?}");
        assert!(
            !reply.body.contains("role"),
            "reason leaked: {}",
            reply.body
        );
        let all = app.ledger_entries();
        let e = &all[receipt(reply) as usize];
        assert_eq!(e["decision"], "deny", "{e}");
        assert_eq!(e["status"], 403, "{e}");
        assert_eq!(e["route"], route, "{e}");
        assert_eq!(e["identity"], identity(role).as_str(), "{e}");
        assert_eq!(e["role"], role, "{e}");
        assert_eq!(e["cert_sha256"].as_str().unwrap().len(), 64, "{e}");
        let reason = format!("role {role} not allowed on route");
        assert!(e["reason"].as_str().unwrap().contains(&reason), "{e}");
    }
}

#[test]
fn audit_n_mixed_requests_make_exactly_n_entries() {
    let app = running();
    let before = receipt(&app.curl_full("operator", "GET", "/v1/health", None));
    let requests: [(&str, &str, &str, u16); 8] = [
        ("operator", "GET", "/v1/health", 200),
        ("analyst", "GET", "/v1/health", 200),
        ("analyst", "GET", "/metrics", 403),
        ("operator", "GET", "/v1/no-such-route", 404),
        ("regulator", "GET", "/v1/ledger/entries?start=abc", 400),
        (
            "regulator",
            "GET",
            "/v1/ledger/proof/inclusion?index=5",
            400,
        ),
        ("operator", "DELETE", "/v1/health", 403),
        ("regulator", "GET", "/metrics", 200),
    ];
    let mut receipts = Vec::new();
    for (role, method, path, want) in requests {
        let reply = app.curl_full(role, method, path, None);
        assert_eq!(reply.status, want, "{method} {path}: {}", reply.body);
        receipts.push(receipt(&reply));
    }
    // A handshake without a client certificate never reaches HTTP: no entry.
    let (code, _) = app.curl("none", "GET", "/v1/health", None);
    assert_eq!(code, 0);
    let after = receipt(&app.curl_full("operator", "GET", "/v1/health", None));

    let n = requests.len() as u64;
    assert_eq!(after - before, n + 1, "exactly one entry per request");
    assert_eq!(receipts, (before + 1..=before + n).collect::<Vec<_>>());
    let all = app.ledger_entries();
    for ((role, method, path, status), index) in requests.iter().zip(&receipts) {
        let e = &all[*index as usize];
        assert_eq!(e["method"], *method, "{e}");
        assert_eq!(e["status"], *status, "{e}");
        assert_eq!(e["identity"], identity(role).as_str(), "{e}");
        let route = if path.contains("no-such") {
            "<unmatched>"
        } else {
            path.split('?').next().unwrap()
        };
        assert_eq!(e["route"], route, "{e}");
    }
}

/// The value of an unlabelled metric in Prometheus text.
fn metric(text: &str, name: &str) -> f64 {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '));
    let value = line.unwrap_or_else(|| panic!("no {name} in:\n{text}"));
    value.trim().parse().unwrap()
}

#[test]
fn audit_metrics_count_every_entry_each_group_commit_made_durable() {
    let app = running();
    let scrape = || {
        let (status, text) = app.curl("regulator", "GET", "/metrics", None);
        assert_eq!(status, 200, "{text}");
        text
    };
    let first = scrape();
    for role in ["operator", "analyst", "provider", "regulator", "analyst"] {
        app.curl(role, "GET", "/v1/health", None);
    }
    let second = scrape();
    // Between the two renderings: the first scrape's entry and five more,
    // each made durable by exactly one batch, one fsync per batch.
    let delta = |name: &str| metric(&second, name) - metric(&first, name);
    assert_eq!(delta("zonevault_ledger_size"), 6.0);
    assert_eq!(delta("zonevault_ledger_batch_entries_sum"), 6.0);
    assert_eq!(
        delta("zonevault_ledger_batch_entries_count"),
        delta("zonevault_ledger_fsyncs_total")
    );
    assert!(second.contains("# TYPE zonevault_ledger_batch_entries histogram"));
    let inf = "zonevault_ledger_batch_entries_bucket{le=\"+Inf\"}";
    assert_eq!(
        metric(&second, inf),
        metric(&second, "zonevault_ledger_batch_entries_count")
    );
}

#[test]
fn audit_analyst_proves_its_own_entry_but_not_an_operators() {
    let app = running();
    let mine = receipt(&app.curl_full("analyst", "GET", "/v1/health", None));
    let theirs = receipt(&app.curl_full("operator", "GET", "/v1/health", None));
    let size = theirs + 1;

    let path = format!("/v1/ledger/proof/inclusion?index={mine}&tree_size={size}");
    let reply = app.curl_full("analyst", "GET", &path, None);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let proof: Value = serde_json::from_str(&reply.body).unwrap();
    let decode =
        |v: &Value| -> [u8; 32] { B64.decode(v.as_str().unwrap()).unwrap().try_into().unwrap() };
    let hashes: Vec<[u8; 32]> = proof["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(decode)
        .collect();
    let entries = app.curl_full(
        "regulator",
        "GET",
        &format!("/v1/ledger/entries?start={mine}&end={}", mine + 1),
        None,
    );
    let leaf = leaf_hash(entries.body.trim_end_matches('\n').as_bytes());
    assert_eq!(leaf, decode(&proof["leaf_hash"]));
    assert!(verify_inclusion(
        mine,
        size,
        &leaf,
        &hashes,
        &decode(&proof["root_hash"])
    ));

    let path = format!("/v1/ledger/proof/inclusion?index={theirs}&tree_size={size}");
    let reply = app.curl_full("analyst", "GET", &path, None);
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(!reply.body.contains("hashes"), "{}", reply.body);
    let denied = &app.ledger_entries()[receipt(&reply) as usize];
    assert_eq!(denied["decision"], "deny", "{denied}");
    assert_eq!(denied["identity"], identity("analyst").as_str());
}

#[test]
fn audit_ledger_hash_is_a_deterministic_hmac_for_supervisors_only() {
    let app = running();
    let hmac = |role: &str, value: &str| {
        let body = serde_json::json!({ "value": value }).to_string();
        app.curl_full(role, "POST", "/v1/ledger/hash", Some(&body))
    };
    let a = hmac("regulator", "110101199003077777");
    let b = hmac("operator", "110101199003077777");
    let c = hmac("regulator", "110101199003077778");
    for r in [&a, &b, &c] {
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let value = |r: &Reply| -> String {
        let v: Value = serde_json::from_str(&r.body).unwrap();
        v["hmac"].as_str().unwrap().to_owned()
    };
    let h = value(&a);
    assert_eq!(h.len(), 64);
    assert!(h
        .bytes()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_eq!(h, value(&b), "same value, same HMAC");
    assert_ne!(h, value(&c));
    // The value itself is not written to the ledger.
    assert!(e2e::appliance::files_containing(&app.data_dir(), b"110101199003077777").is_empty());
    assert_eq!(hmac("analyst", "x").status, 403);
    let bad = app.curl_full(
        "regulator",
        "POST",
        "/v1/ledger/hash",
        Some(r#"{"valu":"x"}"#),
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
}

/// Runs `threads` curl loops on /v1/health until the server dies after at
/// least `min` answers, killing it with SIGKILL; returns (role, receipt).
fn load_then_kill9(app: &mut Appliance, min: usize) -> Vec<(String, u64)> {
    let roles = ["operator", "regulator", "provider", "analyst"];
    let answered = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let receipts = Mutex::new(Vec::new());
    let callers: Vec<_> = (0..8)
        .map(|i| (roles[i % 4], app.curl_as(roles[i % 4])))
        .collect();
    std::thread::scope(|scope| {
        for (role, curl) in &callers {
            let (answered, stop, receipts) = (&answered, &stop, &receipts);
            scope.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let reply = curl.send("GET", "/v1/health", None);
                    if let Some(index) = reply.ledger_index() {
                        assert_eq!(reply.status, 200, "{reply:?}");
                        receipts.lock().unwrap().push((role.to_string(), index));
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
        // A hang guard, not a timing assertion.
        let deadline = Instant::now() + Duration::from_secs(120);
        while answered.load(Ordering::SeqCst) < min {
            assert!(Instant::now() < deadline, "load never got going");
            std::thread::sleep(Duration::from_millis(5));
        }
        app.stop_server(true);
        stop.store(true, Ordering::SeqCst);
    });
    receipts.into_inner().unwrap()
}

#[test]
fn audit_kill9_under_load_loses_no_acknowledged_entry_and_the_ledger_verifies() {
    let mut app = Appliance::new();
    app.init("0,2,4,7");
    let mut receipts = Vec::new();
    for _round in 0..3 {
        app.start_server().expect("server restarts after kill -9");
        receipts.extend(load_then_kill9(&mut app, 40));
    }
    app.start_server().expect("server restarts after kill -9");
    let all = app.ledger_entries();
    assert!(receipts.len() >= 120);
    for (role, index) in &receipts {
        let e = all
            .get(*index as usize)
            .unwrap_or_else(|| panic!("receipt {index} lost: ledger has {}", all.len()));
        assert_eq!(e["route"], "/v1/health", "{index}: {e}");
        assert_eq!(e["method"], "GET", "{index}: {e}");
        assert_eq!(e["status"], 200, "{index}: {e}");
        assert_eq!(e["identity"], identity(role).as_str(), "{index}: {e}");
    }
    let mut unique: Vec<u64> = receipts.iter().map(|(_, i)| *i).collect();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(
        unique.len(),
        receipts.len(),
        "a receipt was handed out twice"
    );

    let key = app
        .curl_full("regulator", "GET", "/v1/ledger/key", None)
        .body;
    let out = app.zonevault_as("regulator", &["ledger", "verify", "--key", key.trim()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("OK"), "{stdout}");

    app.stop_server(false);
    let out = e2e::appliance::zonevault(&[
        "ledger",
        "verify",
        "--data-dir",
        s(&app.data_dir()),
        "--key",
        key.trim(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn audit_a_server_whose_log_cannot_be_written_keeps_answering_and_recording() {
    let mut app = Appliance::new();
    app.init("0,2,4,7");
    // Once the server serves, nobody reads its stderr: every log write
    // from here on fails (EPIPE), as when the log's disk is full.
    drop(app.start_server_stderr_piped());
    let before = app.ledger_entries().len();
    // A refusal and an unknown route are both logged; each is answered.
    let (status, body) = app.curl("analyst", "GET", "/metrics", None);
    assert_eq!(status, 403, "{body}");
    let (status, body) = app.curl("operator", "GET", "/v1/no-such-route", None);
    assert_eq!(status, 404, "{body}");
    let (status, body) = app.curl("operator", "GET", "/v1/health", None);
    assert_eq!(status, 200, "{body}");
    let entries = app.ledger_entries();
    let new: Vec<(&str, &str, &str)> = entries[before..]
        .iter()
        .map(|e| {
            let field = |k: &str| e[k].as_str().unwrap_or("");
            (field("route"), field("decision"), field("role"))
        })
        .collect();
    // The first listing is recorded after it was answered, so it is in
    // the second one.
    assert_eq!(
        new,
        [
            ("/v1/ledger/entries", "allow", "regulator"),
            ("/metrics", "deny", "analyst"),
            ("<unmatched>", "error", "operator"),
            ("/v1/health", "allow", "operator"),
        ]
    );
}
