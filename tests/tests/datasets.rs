//! End to end: zones, datasets, streaming imports and schema confirmation
//! against the real binary, a real swtpm and real TLS. Bad input must be
//! refused with a message that names the problem, and change nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::appliance::{files_containing, issue_client_cert, s, zonevault, zonevault_ok, Appliance};
use serde_json::{json, Value};

/// A value that must never appear in clear anywhere in the data directory.
const MARKER: &str = "zv-marker-3b7e91c0-plaintext";

struct Zoned {
    app: Appliance,
    port: u16,
}

impl Zoned {
    /// An initialized, serving appliance with zone `finance` (operator
    /// org `zone-op`, supervised by the bureau `bjeit`).
    fn start() -> Zoned {
        let mut app = Appliance::new();
        app.init("0,2,4,7");
        let port = app.start_server().expect("server starts");
        let z = Zoned { app, port };
        let (code, body) = z.json(
            "operator",
            "POST",
            "/v1/zones",
            json!({"id": "finance", "name": "金融专区", "kind": "sectoral", "domain": "finance"}),
        );
        assert_eq!(code, 201, "{body}");
        assert_eq!(body["supervisor"], "bjeit", "{body}");
        z
    }

    /// A request with a JSON body; (status, parsed body).
    fn json(&self, role: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
        let (code, text) = self.app.curl(role, method, path, Some(&body.to_string()));
        (code, parse(&text))
    }

    fn get(&self, role: &str, path: &str) -> (u16, Value) {
        let (code, text) = self.app.curl(role, "GET", path, None);
        (code, parse(&text))
    }

    /// Creates dataset `id` in `zone` as the operator.
    fn dataset(&self, zone: &str, id: &str) {
        let (code, body) = self.json(
            "operator",
            "POST",
            &format!("/v1/zones/{zone}/datasets"),
            json!({"id": id, "title": "t", "provider": "bureau-x",
                   "source": "operator-own", "retention": "365d"}),
        );
        assert_eq!(code, 201, "{body}");
    }

    /// A sharing application for the sample's fields from `bureau-x`,
    /// assessed by the zone's regulator and approved by the provider: what
    /// a `government-share` dataset must name. Its id.
    fn approved_application(&self) -> String {
        let fields = [
            "id",
            "name",
            "resident_id",
            "mobile",
            "bank_card",
            "address",
            "amount",
            "registered",
        ];
        let (code, a) = self.json(
            "operator",
            "POST",
            "/v1/share-applications",
            json!({"zone": "finance", "scenario": "credit", "provider": "bureau-x",
                   "items": [{"name": "residents", "fields": fields}], "purpose": "p",
                   "period": {"from": "2020-01-01T00:00:00Z", "to": "2099-01-01T00:00:00Z"}}),
        );
        assert_eq!(code, 201, "{a}");
        let id = a["id"].as_str().unwrap().to_owned();
        for (role, step) in [("regulator", "assessment"), ("provider", "decision")] {
            let path = format!("/v1/share-applications/{id}/{step}");
            let (code, r) = self.json(
                role,
                "POST",
                &path,
                json!({"approve": true, "reason": "ok"}),
            );
            assert_eq!(code, 200, "{r}");
        }
        id
    }

    /// `PUT /v1/datasets/{id}/rows?query` streaming `file` with curl.
    fn upload(&self, role: &str, id: &str, query: &str, file: &Path) -> (u16, Value) {
        let url = format!(
            "https://127.0.0.1:{}/v1/datasets/{id}/rows?{query}",
            self.port
        );
        let pki = |f: &str| self.app.path(&format!("pki/{role}/{f}"));
        let out = Command::new("curl")
            .args(["-sS", "-o", "-", "-w", "\n%{http_code}", "-X", "PUT"])
            .args(["--cacert", s(&self.app.path("pki/ca/cert.pem"))])
            .args(["--cert", s(&pki("cert.pem")), "--key", s(&pki("key.pem"))])
            .args(["-H", "content-type: application/octet-stream"])
            .args(["--data-binary", &format!("@{}", s(file))])
            .arg(url)
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
        (code.trim().parse().unwrap_or(0), parse(body))
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.app.path(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// `zonevault sample` into a file of the appliance's directory.
    fn sample(&self, name: &str, rows: u32, format: &str, encoding: &str) -> PathBuf {
        let path = self.app.path(name);
        zonevault_ok(&[
            "sample",
            "--rows",
            &rows.to_string(),
            "--seed",
            "7",
            "--format",
            format,
            "--encoding",
            encoding,
            "--out",
            s(&path),
        ]);
        path
    }

    /// Issues a client certificate into `pki/<dir>`.
    fn issue(&self, dir: &str, role: &str, org: &str) {
        let ca = self.app.path("pki/ca");
        let out = self.app.path(&format!("pki/{dir}"));
        issue_client_cert(&ca, role, org, "eve", &out);
    }

    /// A client subcommand as `role`, with the `ZONEVAULT_*` variables set.
    fn cli(&self, role: &str, args: &[&str]) -> std::process::Output {
        let pki = |f: &str| self.app.path(&format!("pki/{role}/{f}"));
        Command::new(e2e::appliance::zonevault_bin())
            .args(args)
            .env("ZONEVAULT_ADDR", format!("https://127.0.0.1:{}", self.port))
            .env("ZONEVAULT_CACERT", self.app.path("pki/ca/cert.pem"))
            .env("ZONEVAULT_CLIENT_CERT", pki("cert.pem"))
            .env("ZONEVAULT_CLIENT_KEY", pki("key.pem"))
            .output()
            .expect("run zonevault")
    }

    /// Ledger entries for `route` with `decision`.
    fn ledger_count(&self, method: &str, route: &str, decision: &str) -> usize {
        self.app
            .ledger_entries()
            .iter()
            .filter(|e| e["method"] == method && e["route"] == route && e["decision"] == decision)
            .count()
    }

    /// The dataset must exist with no rows and still be `created`.
    fn assert_untouched(&self, id: &str) {
        let (code, d) = self.get("operator", &format!("/v1/datasets/{id}"));
        assert_eq!(code, 200, "{d}");
        assert_eq!(d["row_count"], 0, "{d}");
        assert_eq!(d["state"], "created", "{d}");
        assert_eq!(d["columns"], json!([]), "{d}");
    }
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

fn column<'a>(d: &'a Value, name: &str) -> &'a Value {
    d["columns"]
        .as_array()
        .and_then(|cols| cols.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no column {name} in {d}"))
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn zone_dataset_import_detect_and_confirm() {
    let z = Zoned::start();

    // CSV through the CLI, which streams the file and prints the schema.
    let csv = z.sample("sample.csv", 2000, "csv", "utf-8");
    let application = z.approved_application();
    let out = z.cli(
        "operator",
        &[
            "dataset",
            "create",
            "--zone",
            "finance",
            "--id",
            "people",
            "--title",
            "居民",
            "--provider",
            "bureau-x",
            "--source",
            "government-share",
            "--application",
            &application,
            "--retention",
            "365d",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = z.cli(
        "operator",
        &[
            "dataset",
            "import",
            "--zone",
            "finance",
            "--id",
            "people",
            "--file",
            s(&csv),
        ],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let printed = stdout(&out);
    assert!(printed.contains("imported 2000 rows"), "{printed}");
    assert!(
        printed.contains("resident_id"),
        "prints the schema: {printed}"
    );

    let (code, d) = z.get("operator", "/v1/datasets/people");
    assert_eq!(code, 200, "{d}");
    assert_eq!(d["row_count"], 2000, "{d}");
    assert_eq!(d["state"], "imported", "{d}");
    assert_eq!(d["grade"], "general-4", "{d}");
    let rid = column(&d, "resident_id");
    assert_eq!(rid["type"], "resident_id", "{d}");
    assert_eq!(rid["grade"], "general-4", "{d}");

    // JSON Lines and GB18030 CSV through the API.
    let jsonl = z.sample("sample.jsonl", 2000, "jsonl", "utf-8");
    z.dataset("finance", "people-jsonl");
    let (code, r) = z.upload("operator", "people-jsonl", "format=jsonl", &jsonl);
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["rows"], 2000, "{r}");
    let gb = z.sample("sample-gb.csv", 2000, "csv", "gb18030");
    z.dataset("finance", "people-gb");
    let (code, r) = z.upload("operator", "people-gb", "encoding=gb18030", &gb);
    assert_eq!(code, 200, "{r}");
    let (_, d) = z.get("operator", "/v1/datasets/people-gb");
    assert_eq!(d["row_count"], 2000, "{d}");
    assert_eq!(column(&d, "name")["type"], "person_name", "{d}");
    assert_eq!(column(&d, "resident_id")["type"], "resident_id", "{d}");

    // Re-import over imported rows is a conflict.
    let (code, r) = z.upload("operator", "people", "", &csv);
    assert_eq!(code, 409, "{r}");

    // Confirm with an override; the change is in the ledger.
    let (code, d) = z.json(
        "operator",
        "PATCH",
        "/v1/datasets/people/schema",
        json!({"columns": [{"name": "amount", "grade": "general-3", "quasi_identifier": true}],
               "confirm": true}),
    );
    assert_eq!(code, 200, "{d}");
    assert_eq!(d["state"], "confirmed", "{d}");
    assert_eq!(d["schema_confirmed"], true, "{d}");
    assert_eq!(column(&d, "amount")["grade"], "general-3", "{d}");
    let confirm = z
        .app
        .ledger_entries()
        .into_iter()
        .find(|e| e["details"]["event"] == "dataset.schema.confirm")
        .expect("a ledger entry for the confirmation");
    let changes = &confirm["details"]["changes"];
    assert_eq!(changes[0]["column"], "amount", "{confirm}");
    assert_eq!(changes[0]["grade"]["to"], "general-3", "{confirm}");

    // The CLI confirms too, and shows the dataset.
    let out = z.cli(
        "operator",
        &[
            "dataset",
            "confirm",
            "--id",
            "people-gb",
            "--column",
            "amount::general-2",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("confirmed"), "{}", stdout(&out));

    // The regulator of the zone reads it; the zone list shows it.
    let (code, d) = z.get("regulator", "/v1/datasets/people");
    assert_eq!(code, 200, "{d}");
    let (code, l) = z.get("regulator", "/v1/zones");
    assert_eq!(code, 200, "{l}");
    assert_eq!(l["zones"][0]["id"], "finance", "{l}");
    let out = z.cli("operator", &["zone", "list"]);
    assert!(stdout(&out).contains("finance"), "{}", stderr(&out));

    // A marker value imported is nowhere in clear on disk.
    let marked = format!("id,name,note\n1,王伟,{MARKER}\n2,李娜,plain\n");
    let file = z.write("marked.csv", marked.as_bytes());
    z.dataset("finance", "marked");
    let (code, r) = z.upload("operator", "marked", "", &file);
    assert_eq!(code, 200, "{r}");
    let found = files_containing(&z.app.data_dir(), MARKER.as_bytes());
    assert!(found.is_empty(), "marker in clear in {found:?}");
}

#[test]
fn bad_input_is_refused_by_name_and_changes_nothing() {
    let z = Zoned::start();
    let mb50 = {
        let mut v = b"id,note\n1,".to_vec();
        v.resize(v.len() + 50 * 1024 * 1024, b'x');
        v.extend_from_slice(b"\n");
        v
    };
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    // (dataset, body, query, field the answer names, a word of its problem)
    let cases: Vec<(&str, Vec<u8>, &str, &str, &str)> = vec![
        ("ragged", b"a,b\n1,2\n3\n4,5\n".to_vec(), "", "rows", ""),
        ("bad-utf8", b"a,b\n1,\xff\xfe\n".to_vec(), "", "rows", ""),
        ("empty", Vec::new(), "", "body", "empty"),
        (
            "dup-header",
            b"a,a\n1,2\n".to_vec(),
            "",
            "header",
            "duplicates",
        ),
        (
            "empty-header",
            b"a,,c\n1,2,3\n".to_vec(),
            "",
            "header",
            "empty name",
        ),
        ("huge-field", mb50, "", "rows", ""),
        ("garbage", garbage, "", "body", "binary"),
        (
            "formula",
            b"=cmd|' /C calc'!A0,b\n1,2\n".to_vec(),
            "",
            "header",
            "formula",
        ),
        (
            "bad-jsonl",
            b"{\"a\":1}\n{\"a\":\n".to_vec(),
            "format=jsonl",
            "rows",
            "",
        ),
    ];
    for (id, bytes, query, field, word) in &cases {
        z.dataset("finance", id);
        let file = z.write(&format!("{id}.in"), bytes);
        let (code, r) = z.upload("operator", id, query, &file);
        assert!((400..500).contains(&code), "{id}: {code} {r}");
        assert!(r["message"].is_string(), "{id}: {r}");
        if !field.is_empty() {
            assert_eq!(r["field"], *field, "{id}: {r}");
        }
        if !word.is_empty() {
            assert!(
                r["problem"].as_str().unwrap_or("").contains(word),
                "{id}: {r}"
            );
        }
        z.assert_untouched(id);
    }
    let (_, r) = z.upload(
        "operator",
        "ragged",
        "",
        &z.write("ragged2.in", b"a,b\n1,2\n3\n"),
    );
    assert_eq!(r["total"], 1, "{r}");
    assert_eq!(r["errors"][0]["line"], 3, "names the line: {r}");
    let file = z.write("utf8-2.in", b"a,b\n1,2\n3,\xff\n");
    let (_, r) = z.upload("operator", "bad-utf8", "", &file);
    assert_eq!(r["errors"][0]["line"], 3, "{r}");
    assert_eq!(r["errors"][0]["column"], "b", "names the column: {r}");
    let errors = z.ledger_count("PUT", "/v1/datasets/{id}/rows", "error");
    assert!(errors >= cases.len(), "{errors} error entries");

    // Duplicate dataset id, ids with path characters, unknown zone.
    let body = json!({"id": "ragged", "title": "t", "provider": "p",
                      "source": "operator-own", "retention": "30d"});
    let (code, r) = z.json("operator", "POST", "/v1/zones/finance/datasets", body);
    assert_eq!(code, 409, "{r}");
    let body = json!({"id": "../etc", "title": "t", "provider": "p",
                      "source": "operator-own", "retention": "30d"});
    let (code, r) = z.json("operator", "POST", "/v1/zones/finance/datasets", body);
    assert_eq!((code, r["field"].as_str()), (400, Some("id")), "{r}");
    let zone = json!({"id": "../x", "name": "n", "kind": "regional", "domain": "d"});
    let (code, r) = z.json("operator", "POST", "/v1/zones", zone);
    assert_eq!((code, r["field"].as_str()), (400, Some("id")), "{r}");
    let (code, r) = z.get("operator", "/v1/datasets/..%2F..%2Fcatalog");
    assert_eq!((code, r["field"].as_str()), (400, Some("id")), "{r}");
    let body = json!({"id": "x", "title": "t", "provider": "p",
                      "source": "government-share", "retention": "30d"});
    let (code, r) = z.json("operator", "POST", "/v1/zones/finance/datasets", body);
    assert_eq!(
        (code, r["field"].as_str()),
        (400, Some("application")),
        "{r}"
    );
    let body = json!({"id": "x", "title": "t", "provider": "p",
                      "source": "operator-own", "retention": "2030-12-31"});
    let (code, r) = z.json(
        "operator",
        "POST",
        "/v1/zones/nowhere/datasets",
        body.clone(),
    );
    assert_eq!(code, 404, "{r}");
    let mut body = body;
    body["retention"] = json!("soon");
    let (code, r) = z.json("operator", "POST", "/v1/zones/finance/datasets", body);
    assert_eq!((code, r["field"].as_str()), (400, Some("retention")), "{r}");
    let (code, _) = z.get("operator", "/v1/datasets/x");
    assert_eq!(code, 404);

    // Another operator organization cannot touch this zone.
    z.issue("operator2", "operator", "other-op");
    z.dataset("finance", "owned");
    let ok_csv = z.write("ok.csv", b"a,b\n1,2\n");
    let (code, r) = z.upload("operator2", "owned", "", &ok_csv);
    assert_eq!(code, 403, "{r}");
    z.assert_untouched("owned");
    let body = json!({"id": "intruder", "title": "t", "provider": "p",
                      "source": "operator-own", "retention": "30d"});
    let (code, _) = z.json("operator2", "POST", "/v1/zones/finance/datasets", body);
    assert_eq!(code, 403);
    let (code, _) = z.get("operator2", "/v1/zones/finance");
    assert_eq!(code, 404);
    assert!(z.ledger_count("PUT", "/v1/datasets/{id}/rows", "deny") >= 1);
}

#[test]
fn regulators_see_their_zones_and_hand_supervision_over() {
    let z = Zoned::start();
    z.issue("regulator2", "regulator", "district-reg");
    let (code, _) = z.get("regulator2", "/v1/zones/finance");
    assert!(code == 403 || code == 404, "{code}");
    let (code, l) = z.get("regulator2", "/v1/zones");
    assert_eq!((code, &l["zones"]), (200, &json!([])), "{l}");
    // Only the current supervisor hands over; the operator cannot.
    let to = json!({"supervisor": "district-reg"});
    let path = "/v1/zones/finance/supervision";
    let (code, _) = z.json("operator", "POST", path, to.clone());
    assert_eq!(code, 403);
    let (code, _) = z.json("regulator2", "POST", path, to.clone());
    assert!(code == 403 || code == 404, "{code}");
    let (code, r) = z.json("regulator", "POST", path, to.clone());
    assert_eq!(code, 200, "{r}");
    let (code, zone) = z.get("regulator2", "/v1/zones/finance");
    assert_eq!(
        (code, zone["supervisor"].as_str()),
        (200, Some("district-reg"))
    );
    let (code, _) = z.get("regulator", "/v1/zones/finance");
    assert_eq!(code, 404);
    let entry = z
        .app
        .ledger_entries()
        .into_iter()
        .find(|e| e["details"]["event"] == "zone.supervision")
        .expect("handover entry");
    assert_eq!(entry["details"]["from"], "bjeit", "{entry}");
    assert_eq!(entry["details"]["to"], "district-reg", "{entry}");
    assert_eq!(entry["decision"], "allow", "{entry}");
    // The CLI runs without a server for sample data.
    let out = zonevault(&["sample", "--rows", "3", "--out", s(&z.app.path("s.csv"))]);
    assert!(out.status.success());
}
