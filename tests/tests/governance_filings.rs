//! End to end, through mTLS with certificates of the real roles: the
//! government data-sharing application (operator files, the zone's
//! regulator assesses, the provider decides; only then may government data
//! come in, and only its approved fields), the data-use filing that every
//! grant is made under (the regulator acknowledges; grants must lie inside
//! it; partner permission flags apply), and the filing's usage report,
//! whose counts equal what the test did. Every refused step is a 403 or
//! 409 and a ledger entry with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

use e2e::appliance::{issue_client_cert, s, Appliance, Reply};
use serde_json::{json, Value};

const CAROL: &str = "spiffe://test.zonevault/analyst/partner-a/carol";
const FROM: &str = "2020-01-01T00:00:00Z";
const UNTIL: &str = "2099-01-01T00:00:00Z";

struct Gov {
    app: Appliance,
    sample: std::path::PathBuf,
}

impl Gov {
    /// The graded appliance, plus a regulator and a provider of other
    /// organizations and a second analyst of partner-a.
    fn start() -> Gov {
        let (app, sample) = Appliance::serving_graded_dataset();
        let ca = app.path("pki/ca");
        for (dir, role, org, person) in [
            ("other-regulator", "regulator", "other-bureau", "erin"),
            ("other-provider", "provider", "bureau-y", "fay"),
            ("dan", "analyst", "partner-a", "dan"),
        ] {
            let out = app.path(&format!("pki/{dir}"));
            issue_client_cert(&ca, role, org, person, &out);
        }
        Gov { app, sample }
    }

    fn call(&self, role: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
        let body = body.map(|b| b.to_string());
        self.app.curl_full(role, method, path, body.as_deref())
    }

    fn cli(&self, role: &str, args: &[&str]) -> String {
        let out = self.app.zonevault_as(role, args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The ledger entry that is `reply`'s receipt.
    fn entry(&self, reply: &Reply) -> Value {
        let index = reply.ledger_index().expect("a ledger receipt") as usize;
        let r = self.call("regulator", "GET", "/v1/ledger/entries", None);
        assert_eq!(r.status, 200, "{}", r.body);
        json(r.body.lines().nth(index).expect("the entry"))
    }

    /// A 403 recorded as a denied entry whose reason contains `reason`.
    fn assert_forbidden(&self, reply: &Reply, reason: &str) {
        assert_eq!(reply.status, 403, "{}", reply.body);
        let entry = self.entry(reply);
        assert_eq!(entry["decision"], "deny", "{entry}");
        let recorded = entry["reason"].as_str().unwrap_or("");
        assert!(recorded.contains(reason), "{reason:?} not in {entry}");
    }

    /// A 409 whose body and ledger entry both name `problem`.
    fn assert_conflict(&self, reply: &Reply, problem: &str) {
        assert_eq!(reply.status, 409, "{}", reply.body);
        let body = json(&reply.body);
        let shown = body["problem"].as_str().unwrap_or("");
        assert!(shown.contains(problem), "{problem:?} not in {body}");
        let entry = self.entry(reply);
        assert_eq!(entry["status"], 409, "{entry}");
        assert_ne!(entry["decision"], "allow", "{entry}");
        let recorded = entry["reason"].as_str().unwrap_or("");
        assert!(recorded.contains(problem), "{problem:?} not in {entry}");
    }

    fn review(&self, role: &str, path: &str, key: &str, approve: bool) -> Reply {
        let body = json!({ key: approve, "reason": "checked against the guidance" });
        self.call(role, "POST", path, Some(body))
    }

    fn create_dataset(&self, id: &str, provider: &str, application: &str) -> Reply {
        let body = json!({"id": id, "title": "共享数据", "provider": provider,
            "source": "government-share", "application": application, "retention": "365d"});
        self.call("operator", "POST", "/v1/zones/finance/datasets", Some(body))
    }

    fn grant(&self, recipient: &str, columns: &[&str], filing: Option<&str>) -> Reply {
        let mut body = json!({"recipient": recipient, "dataset": "residents",
            "columns": columns, "purpose": "credit risk model", "row_limit": 5000,
            "max_extracts": 10, "expires": "2098-01-01T00:00:00Z"});
        if let Some(f) = filing {
            body["filing"] = json!(f);
        }
        self.call("operator", "POST", "/v1/grants", Some(body))
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

#[test]
fn sharing_application_gates_government_data() {
    let g = Gov::start();
    let sa = g.cli(
        "operator",
        &[
            "share-application",
            "file",
            "--zone",
            "finance",
            "--scenario",
            "small-business credit",
            "--provider",
            "bureau-x",
            "--item",
            "residents:id,name,amount",
            "--purpose",
            "credit risk model",
            "--from",
            FROM,
            "--to",
            UNTIL,
        ],
    );
    assert!(sa.starts_with("sa-"), "{sa}");
    let assess = format!("/v1/share-applications/{sa}/assessment");
    let decide = format!("/v1/share-applications/{sa}/decision");

    // Wrong role, wrong organization, wrong state: refused and recorded.
    g.assert_forbidden(
        &g.review("analyst", &assess, "approve", true),
        "role analyst not allowed",
    );
    g.assert_forbidden(
        &g.review("operator", &decide, "approve", true),
        "role operator not allowed",
    );
    g.assert_forbidden(
        &g.review("other-regulator", &assess, "approve", true),
        "is not the regulator of zone finance",
    );
    g.assert_conflict(
        &g.review("provider", &decide, "approve", true),
        &format!("share application {sa} is filed; cannot decide on it"),
    );
    g.assert_conflict(
        &g.create_dataset("shared", "bureau-x", &sa),
        "awaits the regulator's assessment",
    );

    let out = g.cli(
        "regulator",
        &[
            "share-application",
            "assess",
            "--id",
            &sa,
            "--approve",
            "--reason",
            "needed",
        ],
    );
    assert_eq!(out, format!("{sa} assessed"));
    g.assert_conflict(
        &g.review("regulator", &assess, "approve", false),
        &format!("share application {sa} is assessed; cannot assess it"),
    );
    g.assert_conflict(
        &g.create_dataset("shared", "bureau-x", &sa),
        "awaits the provider's decision",
    );
    g.assert_forbidden(
        &g.review("other-provider", &decide, "approve", true),
        "is not of provider bureau-x",
    );
    let out = g.cli(
        "provider",
        &[
            "share-application",
            "decide",
            "--id",
            &sa,
            "--approve",
            "--reason",
            "ok",
        ],
    );
    assert_eq!(out, format!("{sa} approved"));

    // Approved by both: the step entries say what happened.
    let shown = g.call(
        "provider",
        "GET",
        &format!("/v1/share-applications/{sa}"),
        None,
    );
    assert_eq!(shown.status, 200, "{}", shown.body);
    let a = json(&shown.body);
    assert_eq!(
        (a["state"].as_str(), a["assessment"]["approve"].as_bool()),
        (Some("approved"), Some(true))
    );
    assert!(g.entry(&shown)["resources"].to_string().contains(&sa));
    let none = g.call("other-provider", "GET", "/v1/share-applications", None);
    assert_eq!(json(&none.body)["applications"], json!([]), "{}", none.body);

    // A dataset from another provider is still refused; the right one is created.
    g.assert_conflict(
        &g.create_dataset("shared", "bureau-y", &sa),
        "is for provider bureau-x",
    );
    let created = g.create_dataset("shared", "bureau-x", &sa);
    assert_eq!(created.status, 201, "{}", created.body);

    // Columns beyond the approved fields: refused, nothing imported.
    let full = g.app.zonevault_as(
        "operator",
        &[
            "dataset",
            "import",
            "--zone",
            "finance",
            "--id",
            "shared",
            "--file",
            s(&g.sample),
        ],
    );
    assert!(!full.status.success());
    assert!(
        text(&full).contains(r#"["resident_id", "mobile", "bank_card", "address", "registered"] exceed the fields approved"#),
        "{}",
        text(&full)
    );
    let ds = json(&g.call("operator", "GET", "/v1/datasets/shared", None).body);
    assert_eq!(
        (ds["row_count"].as_u64(), ds["state"].as_str()),
        (Some(0), Some("created")),
        "{ds}"
    );

    // Only the approved fields: imported.
    let narrow = g.app.path("narrow.csv");
    let rows: Vec<String> = std::fs::read_to_string(&g.sample)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            format!("{},{},{}", f[0], f[1], f[6])
        })
        .collect();
    std::fs::write(&narrow, rows.join("\n") + "\n").unwrap();
    let out = g.cli(
        "operator",
        &[
            "dataset",
            "import",
            "--zone",
            "finance",
            "--id",
            "shared",
            "--file",
            s(&narrow),
        ],
    );
    assert!(out.contains("imported 2000 rows"), "{out}");

    // A rejected application is final and admits nothing.
    let body = json!({"zone": "finance", "scenario": "s", "provider": "bureau-x",
        "items": [{"name": "i", "fields": ["id"]}], "purpose": "p",
        "period": {"from": FROM, "to": UNTIL}});
    let r = g.call("operator", "POST", "/v1/share-applications", Some(body));
    assert_eq!(r.status, 201, "{}", r.body);
    let sa2 = json(&r.body)["id"].as_str().unwrap().to_owned();
    let rejected = g.review(
        "regulator",
        &format!("/v1/share-applications/{sa2}/assessment"),
        "approve",
        false,
    );
    assert_eq!(
        json(&rejected.body)["state"],
        "rejected",
        "{}",
        rejected.body
    );
    assert!(g.entry(&rejected)["reason"]
        .as_str()
        .unwrap()
        .contains("now rejected"));
    g.assert_conflict(
        &g.review(
            "provider",
            &format!("/v1/share-applications/{sa2}/decision"),
            "approve",
            true,
        ),
        "is rejected; cannot decide on it",
    );
    g.assert_conflict(
        &g.create_dataset("shared2", "bureau-x", &sa2),
        "it was refused",
    );
    let list = g.cli("provider", &["share-application", "list"]);
    assert!(list.contains(&sa) && list.contains(&sa2), "{list}");
}

/// Sets a partner's flags through the CLI.
fn partner(g: &Gov, org: &str, flags: &[&str]) {
    let mut args = vec!["partner", "set", "--org", org, "--tier", "2"];
    args.extend_from_slice(flags);
    g.cli("operator", &args);
}

#[test]
fn filings_gate_grants_and_report_usage() {
    let g = Gov::start();
    partner(&g, "partner-b", &["--data-access"]);
    partner(
        &g,
        "partner-c",
        &["--data-access", "--scenario-authorization"],
    );
    partner(&g, "partner-n", &["--scenario-authorization"]);
    let filing = |method: &str, recipients: &[&str]| {
        json!({"scenario": "credit risk", "method": method, "recipients": recipients,
            "scope": [{"dataset": "residents", "columns": ["id", "amount", "address"]}],
            "period": {"from": FROM, "to": UNTIL}})
    };
    // Partner flags bound the recipients.
    let r = g.call(
        "operator",
        "POST",
        "/v1/filings",
        Some(filing("extract", &["partner-b"])),
    );
    g.assert_forbidden(&r, "partner-b has no scenario authorization");
    assert_eq!(json(&r.body)["field"], "recipients");
    let r = g.call(
        "operator",
        "POST",
        "/v1/filings",
        Some(filing("aggregate", &["partner-c"])),
    );
    g.assert_forbidden(&r, "partner-c has no product authorization");

    let f1 = g.cli(
        "operator",
        &[
            "filing",
            "create",
            "--scenario",
            "credit risk",
            "--scope",
            "residents:id,amount,address",
            "--method",
            "extract",
            "--recipients",
            "partner-a,partner-c,partner-n",
            "--from",
            FROM,
            "--to",
            UNTIL,
        ],
    );
    let ack = format!("/v1/filings/{f1}/acknowledgement");
    g.assert_conflict(
        &g.grant(CAROL, &["id", "amount"], Some(&f1)),
        "is filed, not acknowledged",
    );
    g.assert_forbidden(
        &g.review("operator", &ack, "acknowledge", true),
        "role operator not allowed",
    );
    g.assert_forbidden(
        &g.review("other-regulator", &ack, "acknowledge", true),
        "is not the regulator of zone finance",
    );
    let out = g.cli(
        "regulator",
        &[
            "filing",
            "acknowledge",
            "--id",
            &f1,
            "--approve",
            "--reason",
            "minimal",
        ],
    );
    assert_eq!(out, format!("{f1} acknowledged"));
    g.assert_conflict(
        &g.review("regulator", &ack, "acknowledge", false),
        &format!("filing {f1} is acknowledged; cannot acknowledge or reject it"),
    );

    // Grants: a filing is required, and the grant must lie inside it.
    let none = g.grant(CAROL, &["id"], None);
    assert_eq!(
        (none.status, json(&none.body)["field"].as_str()),
        (400, Some("filing")),
        "{}",
        none.body
    );
    let outside = g.grant(CAROL, &["id", "mobile"], Some(&f1));
    g.assert_forbidden(
        &outside,
        "column \"mobile\" of dataset residents is outside filing",
    );
    g.assert_forbidden(
        &g.grant(
            "spiffe://test.zonevault/analyst/partner-b/bea",
            &["id"],
            Some(&f1),
        ),
        &format!("organization partner-b is not a recipient of filing {f1}"),
    );
    g.assert_forbidden(
        &g.grant(
            "spiffe://test.zonevault/analyst/partner-n/nia",
            &["id"],
            Some(&f1),
        ),
        "partner partner-n has no data access",
    );
    g.assert_forbidden(
        &g.grant("partner-c", &["id"], Some(&f1)),
        "partner partner-c has no ownership control",
    );
    let r = g.grant(CAROL, &["id", "amount"], Some(&f1));
    assert_eq!(r.status, 201, "{}", r.body);
    let g1 = json(&r.body)["id"].as_str().unwrap().to_owned();
    assert_eq!(json(&r.body)["grant"]["filing"], f1.as_str());

    // What the analysts do under f1: 2 extracts (10 + 25 rows), 3 refusals.
    let extract = |role: &str, body: Value| g.call(role, "POST", "/v1/extracts", Some(body));
    for (max, rows) in [(10, 10), (25, 25)] {
        let r = extract(
            "analyst",
            json!({"grant": g1, "columns": ["id", "amount"], "filter": format!("id <= {max}")}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body.lines().count(), rows + 1, "{}", r.body);
    }
    let agg = g.call(
        "analyst",
        "POST",
        "/v1/aggregates",
        Some(json!({"grant": g1, "metrics": [{"fn": "count"}]})),
    );
    g.assert_forbidden(
        &agg,
        &format!("filing {f1} covers extract only, not aggregates"),
    );
    g.assert_forbidden(&extract("dan", json!({"grant": g1})), "another recipient");
    g.assert_forbidden(
        &extract(
            "analyst",
            json!({"grant": g1, "columns": ["address", "name"]}),
        ),
        "outside the grant",
    );
    // Not under f1: an aggregate under the harness's filing.
    let other = g.grant(CAROL, &["id", "address"], Some(&g.app.filing_id()));
    let g0 = json(&other.body)["id"].as_str().unwrap().to_owned();
    let r = g.call(
        "analyst",
        "POST",
        "/v1/aggregates",
        Some(json!({"grant": g0, "group_by": ["address"], "metrics": [{"fn": "count"}]})),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // The usage report equals what happened, in every rendering.
    let path = format!("/v1/filings/{f1}/usage-report");
    let report = g.call("regulator", "GET", &path, None);
    assert_eq!(report.status, 200, "{}", report.body);
    let rep = json(&report.body);
    let a = &rep["recipients"]["partner-a"];
    assert_eq!(
        [&a["extracts"], &a["rows"], &a["aggregates"], &a["denied"]],
        [&json!(2), &json!(35), &json!(0), &json!(3)],
        "{rep}"
    );
    assert_eq!(a["datasets"], json!(["residents"]), "{rep}");
    assert_eq!(
        a["analysts"],
        json!([
            "spiffe://test.zonevault/analyst/partner-a/carol",
            "spiffe://test.zonevault/analyst/partner-a/dan"
        ]),
        "{rep}"
    );
    assert_eq!(rep["recipients"].as_object().unwrap().len(), 1, "{rep}");
    assert_eq!(rep["grants"], json!([g1]), "{rep}");
    assert_eq!(rep["total"]["rows"], 35, "{rep}");
    let csv = g.cli(
        "operator",
        &["filing", "usage-report", "--id", &f1, "--format", "csv"],
    );
    assert!(
        csv.contains(&format!(
            "{f1},{FROM},{UNTIL},partner-a,2,35,0,0,3,residents"
        )),
        "{csv}"
    );
    let md = g.cli(
        "operator",
        &[
            "filing",
            "usage-report",
            "--id",
            &f1,
            "--format",
            "markdown",
        ],
    );
    assert!(
        md.contains("| partner-a | 2 | 35 | 0 | 0 | 3 | residents |"),
        "{md}"
    );
    let early = g.call(
        "operator",
        "GET",
        &format!("{path}?from={FROM}&to=2021-01-01T00:00:00Z"),
        None,
    );
    assert_eq!(json(&early.body)["total"]["extracts"], 0, "{}", early.body);
    g.assert_forbidden(
        &g.call("analyst", "GET", &path, None),
        "role analyst not allowed",
    );
    g.assert_forbidden(
        &g.call("provider", "GET", &path, None),
        "role provider not allowed",
    );
    let bad = g.call("operator", "GET", &format!("{path}?format=xml"), None);
    assert_eq!(
        (bad.status, json(&bad.body)["field"].as_str()),
        (400, Some("format"))
    );

    // A rejected filing admits no grant.
    let r = g.call(
        "operator",
        "POST",
        "/v1/filings",
        Some(filing("both", &["partner-a"])),
    );
    let f2 = json(&r.body)["id"].as_str().unwrap().to_owned();
    let rejected = g.review(
        "regulator",
        &format!("/v1/filings/{f2}/acknowledgement"),
        "acknowledge",
        false,
    );
    assert_eq!(
        json(&rejected.body)["state"],
        "rejected",
        "{}",
        rejected.body
    );
    g.assert_conflict(
        &g.grant(CAROL, &["id"], Some(&f2)),
        &format!("filing {f2} is rejected"),
    );
    let list = g.cli("regulator", &["filing", "list"]);
    assert!(list.contains(&f1) && list.contains(&f2), "{list}");
}
