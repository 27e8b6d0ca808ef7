//! End to end: retention and two-person destruction by cryptographic
//! erase, against the real binary, a real swtpm and real TLS. Neither the
//! operator nor a foreign regulator can destroy alone; after the zone's
//! regulator approves, the dataset is gone (410 naming the certificate),
//! nothing of its file remains in the data directory, and the certificate
//! verifies offline with its ledger inclusion proof (a tampered one fails).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

use e2e::appliance::{files_containing, issue_client_cert, s, zonevault_ok, Appliance};
use serde_json::{json, Value};

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

struct Vault {
    app: Appliance,
}

impl Vault {
    /// A serving appliance with zone `finance` (supervised by `bjeit`) and
    /// a second regulator certificate from another organization.
    fn start() -> Vault {
        let mut app = Appliance::new();
        issue_client_cert(
            &app.path("pki/ca"),
            "regulator",
            "haidian-gov",
            "eve",
            &app.path("pki/other-regulator"),
        );
        app.init("0,2,4,7");
        app.start_server().expect("server starts");
        let v = Vault { app };
        let (code, body) = v.call(
            "operator",
            "POST",
            "/v1/zones",
            json!({
            "id": "finance", "name": "金融专区", "kind": "sectoral", "domain": "finance"}),
        );
        assert_eq!(code, 201, "{body}");
        v
    }

    fn call(&self, role: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
        let body = (!body.is_null()).then(|| body.to_string());
        let (code, text) = self.app.curl(role, method, path, body.as_deref());
        (code, parse(&text))
    }

    fn cli(&self, role: &str, args: &[&str]) -> Output {
        self.app.zonevault_as(role, args)
    }

    /// Creates dataset `id` with `retention` and imports `rows` sample rows.
    fn dataset(&self, id: &str, retention: &str, rows: u32) {
        let (code, body) = self.call(
            "operator",
            "POST",
            "/v1/zones/finance/datasets",
            json!({
            "id": id, "title": "t", "provider": "bureau-x",
            "source": "operator-own", "retention": retention}),
        );
        assert_eq!(code, 201, "{body}");
        if rows == 0 {
            return;
        }
        let csv = self.app.path(&format!("{id}.csv"));
        zonevault_ok(&[
            "sample",
            "--rows",
            &rows.to_string(),
            "--seed",
            "3",
            "--format",
            "csv",
            "--out",
            s(&csv),
        ]);
        let out = self.cli(
            "operator",
            &[
                "dataset",
                "import",
                "--zone",
                "finance",
                "--id",
                id,
                "--file",
                s(&csv),
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
    }

    fn put_rows(&self, id: &str) -> (u16, Value) {
        let (code, text) = self.app.curl(
            "operator",
            "PUT",
            &format!("/v1/datasets/{id}/rows"),
            Some("a,b\n1,2\n"),
        );
        (code, parse(&text))
    }
}

#[test]
fn two_person_destruction_erases_and_certifies() {
    let v = Vault::start();
    v.dataset("loans", "365d", 50);
    v.dataset("keep", "365d", 10);
    let file = v.app.data_dir().join("datasets/loans.db");
    let saved = std::fs::read(&file).expect("dataset file before destruction");

    let out = v.cli(
        "operator",
        &[
            "destruction",
            "request",
            "--dataset",
            "loans",
            "--basis",
            "contract ended (合同终止)",
            "--reason",
            "partner left",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(id.starts_with("dx-"), "{id}");

    // Neither the operator, nor a regulator of another organization, can
    // approve; the operator cannot file a second request either.
    let approve = json!({"approve": true});
    let path = format!("/v1/destructions/{id}/approval");
    assert_eq!(v.call("operator", "POST", &path, approve.clone()).0, 403);
    assert_eq!(
        v.call("other-regulator", "POST", &path, approve.clone()).0,
        403
    );
    let again = json!({"dataset": "loans", "basis": "b", "reason": "r"});
    assert_eq!(v.call("operator", "POST", "/v1/destructions", again).0, 409);
    assert!(file.exists(), "nothing happens before the approval");
    let (code, d) = v.call(
        "regulator",
        "GET",
        &format!("/v1/destructions/{id}"),
        Value::Null,
    );
    assert_eq!((code, d["state"].as_str()), (200, Some("requested")), "{d}");

    let (code, d) = v.call("regulator", "POST", &path, approve.clone());
    assert_eq!(code, 200, "{d}");
    assert_eq!(d["state"], "executed", "{d}");
    let cert_id = d["certificate_id"]
        .as_str()
        .expect("certificate id")
        .to_owned();
    assert_eq!(
        v.call("regulator", "POST", &path, approve).0,
        409,
        "executes once"
    );

    // Gone: metadata and imports answer 410 naming the certificate.
    let (code, body) = v.call("operator", "GET", "/v1/datasets/loans", Value::Null);
    assert_eq!(
        (code, body["certificate"].as_str()),
        (410, Some(cert_id.as_str())),
        "{body}"
    );
    let (code, body) = v.put_rows("loans");
    assert_eq!(
        (code, body["certificate"].as_str()),
        (410, Some(cert_id.as_str())),
        "{body}"
    );
    assert_eq!(
        v.call("operator", "GET", "/v1/datasets/keep", Value::Null)
            .0,
        200
    );

    check_files_gone(&v, &saved);
    check_certificate(&v, &id, &cert_id);
}

/// The file and its sidecars are gone, and no part of the saved copy's
/// encrypted header (its salt) remains anywhere in the data directory.
fn check_files_gone(v: &Vault, saved: &[u8]) {
    let dir = v.app.data_dir().join("datasets");
    for suffix in ["", "-wal", "-shm", "-journal"] {
        assert!(
            !dir.join(format!("loans.db{suffix}")).exists(),
            "loans.db{suffix}"
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        !leftovers
            .iter()
            .any(|n| n.to_string_lossy().contains("loans")),
        "{leftovers:?}"
    );
    assert!(files_containing(&v.app.data_dir(), &saved[..32]).is_empty());
}

fn check_certificate(v: &Vault, id: &str, cert_id: &str) {
    let out_file = v.app.path("cert.txt");
    let out = v.cli(
        "regulator",
        &[
            "destruction",
            "certificate",
            "--id",
            id,
            "--out",
            s(&out_file),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let note = std::fs::read_to_string(&out_file).unwrap();
    let json_line = note.lines().nth(1).unwrap();
    let cert: Value = serde_json::from_str(json_line).unwrap();
    assert_eq!(cert["certificate_id"], cert_id);
    assert_eq!(cert["method"], "cryptographic-erase");
    assert_eq!(cert["datasets"][0]["row_count"], 50);
    assert_eq!(cert["verification"]["wrapped_keys_absent"], true);
    assert_eq!(cert["verification"]["files_absent"], true);
    assert_eq!(cert["verification"]["copy_opened_before"], true);
    assert_eq!(cert["verification"]["remaining_keys_opened"], 0);
    assert!(
        cert["verification"]["remaining_keys_tried"].as_u64() >= Some(1),
        "{cert}"
    );
    assert!(cert["requested_by"]
        .as_str()
        .unwrap()
        .contains("/operator/zone-op/alice"));
    assert!(cert["approved_by"]
        .as_str()
        .unwrap()
        .contains("/regulator/bjeit/bob"));

    let (_, key) = v.app.curl("regulator", "GET", "/v1/ledger/key", None);
    let key = key.trim().to_owned();
    let out = zonevault_ok(&[
        "verify",
        "certificate",
        "--certificate",
        s(&out_file),
        "--key",
        &key,
    ]);
    assert!(out.contains("PASS") && out.contains("included"), "{out}");

    let tampered = v.app.path("tampered.txt");
    std::fs::write(
        &tampered,
        note.replacen("\"row_count\":50", "\"row_count\":5", 1),
    )
    .unwrap();
    let out = e2e::appliance::zonevault(&[
        "verify",
        "certificate",
        "--certificate",
        s(&tampered),
        "--key",
        &key,
    ]);
    assert!(
        !out.status.success(),
        "a tampered certificate must fail: {}",
        text(&out)
    );
}

#[test]
fn past_retention_becomes_due_and_is_refused() {
    let v = Vault::start();
    v.dataset("old", "2020-01-01", 0);
    v.dataset("fresh", "365d", 0);
    let (code, due) = v.call("regulator", "GET", "/v1/destructions/due", Value::Null);
    assert_eq!(code, 200, "{due}");
    let ids: Vec<&str> = due["due"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["dataset"].as_str())
        .collect();
    assert_eq!(ids, ["old"], "{due}");
    let (code, body) = v.put_rows("old");
    assert_eq!(
        (code, body["error"].as_str()),
        (409, Some("due_for_destruction")),
        "{body}"
    );
    let (code, ds) = v.call("operator", "GET", "/v1/datasets/old", Value::Null);
    assert_eq!(
        (code, ds["state"].as_str()),
        (200, Some("due-for-destruction")),
        "{ds}"
    );
    let out = v.cli("operator", &["destruction", "due"]);
    assert!(text(&out).contains("old"), "{}", text(&out));
    // The regulator can reject; the operator can then ask again.
    let (code, d) = v.call(
        "operator",
        "POST",
        "/v1/destructions",
        json!({"dataset": "old", "basis": "retention ended", "reason": "due"}),
    );
    assert_eq!(code, 201, "{d}");
    let path = format!("/v1/destructions/{}/approval", d["id"].as_str().unwrap());
    let (code, d) = v.call("regulator", "POST", &path, json!({"approve": false}));
    assert_eq!((code, d["state"].as_str()), (200, Some("rejected")), "{d}");
    assert!(v.app.data_dir().join("datasets/old.db").exists());
}
