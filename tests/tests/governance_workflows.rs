//! End to end: data quality tickets with their SLA, feedback data (反哺)
//! from submission to the department's grant, and the operator assessment
//! whose second poor rating terminates the authorization, against the real
//! binary, a real swtpm and real TLS with certificates of the real roles.
//! Every refused step is checked in its ledger entry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

use e2e::appliance::{issue_client_cert, s, Appliance, Reply};
use serde_json::{json, Value};

const CAROL: &str = "spiffe://test.zonevault/analyst/partner-a/carol";

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

struct Zone {
    app: Appliance,
}

impl Zone {
    fn call(&self, role: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
        let body = body.map(|b| b.to_string());
        self.app.curl_full(role, method, path, body.as_deref())
    }

    /// A successful call; its JSON body.
    fn ok(&self, role: &str, method: &str, path: &str, body: Option<Value>) -> Value {
        let r = self.call(role, method, path, body);
        assert!(
            (200..300).contains(&r.status),
            "{method} {path}: {} {}",
            r.status,
            r.body
        );
        json(&r.body)
    }

    fn cli(&self, role: &str, args: &[&str]) -> String {
        stdout(&self.app.zonevault_as(role, args))
    }

    /// `reply` has `status`, and its ledger entry records `decision` with a
    /// reason containing `reason`.
    fn assert_recorded(&self, reply: &Reply, status: u16, decision: &str, reason: &str) {
        assert_eq!(reply.status, status, "{}", reply.body);
        let index = reply.ledger_index().expect("a ledger receipt") as usize;
        let entry = &self.app.ledger_entries()[index];
        assert_eq!(entry["decision"], decision, "{entry}");
        let recorded = entry["reason"].as_str().unwrap_or("");
        assert!(recorded.contains(reason), "{reason:?} not in {entry}");
    }

    /// A 400 naming `field`, recorded.
    fn assert_bad(&self, reply: &Reply, field: &str) {
        assert_eq!(reply.status, 400, "{}", reply.body);
        assert_eq!(json(&reply.body)["field"], field, "{}", reply.body);
        self.assert_recorded(reply, 400, "error", field);
    }

    /// Creates (and imports the sample into) dataset `id` of `provider`
    /// with `source`.
    fn dataset(&self, id: &str, provider: &str, source: &str, sample: &std::path::Path) {
        for args in [
            &[
                "dataset",
                "create",
                "--zone",
                "finance",
                "--id",
                id,
                "--title",
                "t",
                "--provider",
                provider,
                "--source",
                source,
                "--retention",
                "365d",
            ][..],
            &[
                "dataset",
                "import",
                "--zone",
                "finance",
                "--id",
                id,
                "--file",
                s(sample),
            ][..],
        ] {
            self.app.operator_ok(args);
        }
    }

    fn ticket(&self, role: &str, id: &str) -> Value {
        self.ok(role, "GET", &format!("/v1/quality-tickets/{id}"), None)
    }
}

/// A serving appliance whose timeliness SLA is 0 working days (overdue as
/// soon as opened), with dataset `loans` provided by bureau-x.
fn quality_zone() -> (Zone, std::path::PathBuf) {
    let (mut app, sample) = Appliance::serving_graded_dataset();
    app.stop_server(false);
    app.start_server_with("[quality_sla]\ntimeliness = 0\n")
        .expect("server restarts");
    let zone = Zone { app };
    zone.dataset("loans", "bureau-x", "operator-own", &sample);
    (zone, sample)
}

#[test]
fn quality_tickets_and_feedback_data() {
    let (z, sample) = quality_zone();
    quality_tickets(&z);
    feedback_data(&z, &sample);
}

fn quality_tickets(z: &Zone) {
    let open = |role: &str, body: Value| z.call(role, "POST", "/v1/quality-tickets", Some(body));
    let ticket = |dimension: &str, fields: Value| {
        json!({"dataset": "loans", "dimension": dimension, "fields": fields,
               "description": "amounts look like fen"})
    };
    // Bad input names the field; a dataset the caller cannot see is unknown.
    z.assert_bad(
        &open("operator", ticket("speed", json!(["amount"]))),
        "dimension",
    );
    z.assert_bad(
        &open("operator", ticket("accuracy", json!(["nope"]))),
        "fields",
    );
    z.assert_bad(&open("operator", ticket("accuracy", json!([]))), "fields");
    z.assert_bad(
        &open("analyst", ticket("accuracy", json!(["amount"]))),
        "dataset",
    );
    let all = z.ok("regulator", "GET", "/v1/quality-tickets", None);
    assert_eq!(all["tickets"], json!([]), "refusals created nothing");

    // The operator opens a timeliness ticket (SLA 0: overdue at once) with
    // the CLI, the regulator an accuracy one (SLA 5 working days).
    let t1 = z.cli(
        "operator",
        &[
            "quality-ticket",
            "open",
            "--dataset",
            "loans",
            "--dimension",
            "timeliness",
            "--fields",
            "amount",
            "--description",
            "amounts are a month old",
        ],
    );
    let t2 = z.ok(
        "regulator",
        "POST",
        "/v1/quality-tickets",
        Some(json!({
        "dataset": "loans", "dimension": "accuracy", "rows": [3, 9],
        "description": "row 3 has a negative amount"})),
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(z.ticket("operator", &t1)["sla_days"], 0);
    assert_eq!(z.ticket("regulator", &t2)["sla_days"], 5);
    let overdue = z.ok("operator", "GET", "/v1/quality-tickets?overdue=true", None);
    let ids: Vec<&str> = overdue["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![t1.as_str()]);
    let listed = z.cli("operator", &["quality-ticket", "list", "--overdue"]);
    assert!(listed.starts_with(&t1) && !listed.contains(&t2), "{listed}");

    // Wrong role, wrong party, wrong state: refused, recorded, nothing changes.
    let step = |role: &str, id: &str, step: &str| {
        let path = format!("/v1/quality-tickets/{id}/{step}");
        z.call(role, "POST", &path, Some(json!({"text": "see attached"})))
    };
    z.assert_recorded(
        &step("analyst", &t1, "response"),
        403,
        "deny",
        "role analyst not allowed",
    );
    z.assert_recorded(
        &step("operator", &t1, "resolution"),
        409,
        "error",
        "is open; cannot resolve",
    );
    z.assert_recorded(
        &step("operator", &t2, "dispute"),
        403,
        "deny",
        "only the opener disputes",
    );
    assert_eq!(z.ticket("operator", &t1)["state"], "open");

    // The provider organization responds; the ticket is no longer overdue.
    let responded = z.cli(
        "provider",
        &[
            "quality-ticket",
            "respond",
            "--id",
            &t1,
            "--text",
            "refreshed the feed",
        ],
    );
    assert!(responded.contains("responded"), "{responded}");
    let overdue = z.ok("operator", "GET", "/v1/quality-tickets?overdue=true", None);
    assert_eq!(overdue["tickets"], json!([]));
    z.assert_recorded(
        &step("regulator", &t1, "dispute"),
        403,
        "deny",
        "only the opener disputes",
    );
    z.assert_recorded(
        &step("provider", &t1, "resolution"),
        403,
        "deny",
        "only the opener or the zone's regulator",
    );
    // The opener disputes, the provider answers again, the opener resolves.
    z.ok(
        "operator",
        "POST",
        &format!("/v1/quality-tickets/{t1}/dispute"),
        Some(json!({"text": "still stale"})),
    );
    z.assert_recorded(
        &step("operator", &t1, "dispute"),
        409,
        "error",
        "is disputed; cannot dispute",
    );
    z.ok(
        "provider",
        "POST",
        &format!("/v1/quality-tickets/{t1}/response"),
        Some(json!({"text": "daily now"})),
    );
    let done = z.cli(
        "operator",
        &["quality-ticket", "resolve", "--id", &t1, "--text", "ok"],
    );
    assert!(done.contains("resolved"), "{done}");
    let t = z.ticket("provider", &t1);
    assert_eq!(t["state"], "resolved");
    assert_eq!(t["responses"].as_array().unwrap().len(), 2);
    assert_eq!(t["disputes"].as_array().unwrap().len(), 1);
    z.assert_recorded(
        &step("operator", &t1, "resolution"),
        409,
        "error",
        "is resolved",
    );
    // The analyst cannot see either ticket.
    assert_eq!(
        z.call("analyst", "GET", &format!("/v1/quality-tickets/{t2}"), None)
            .status,
        404
    );
    let mine = z.ok("analyst", "GET", "/v1/quality-tickets", None);
    assert_eq!(mine["tickets"], json!([]));
}

/// Partner bureau-x with every flag, and an acknowledged filing of
/// `derived`'s id and amount for it.
fn file_for_department(z: &Zone) -> String {
    z.app.operator_ok(&[
        "partner",
        "set",
        "--org",
        "bureau-x",
        "--tier",
        "2",
        "--data-access",
        "--product-authorization",
        "--scenario-authorization",
        "--ownership-control",
    ]);
    let filing = z.app.operator_ok(&[
        "filing",
        "create",
        "--scenario",
        "feedback to the bureau",
        "--scope",
        "derived:id,amount",
        "--method",
        "extract",
        "--recipients",
        "bureau-x",
        "--from",
        "2020-01-01T00:00:00Z",
        "--to",
        "2100-01-01T00:00:00Z",
    ]);
    let filing = filing.trim().to_owned();
    z.cli(
        "regulator",
        &[
            "filing",
            "acknowledge",
            "--id",
            &filing,
            "--approve",
            "--reason",
            "minimal",
        ],
    );
    filing
}

fn feedback_data(z: &Zone, sample: &std::path::Path) {
    z.dataset("derived", "zone-op", "feedback", sample);
    z.app.operator_ok(&[
        "dataset",
        "confirm",
        "--id",
        "derived",
        "--column",
        "registered::core",
    ]);
    let submit = |dataset: &str| {
        let body = json!({"dataset": dataset, "description": "scores by district"});
        z.call("operator", "POST", "/v1/feedback", Some(body))
    };
    z.assert_bad(&submit("loans"), "dataset");
    z.assert_recorded(&submit("derived"), 201, "allow", "feedback submitted");
    let records = z.ok("regulator", "GET", "/v1/feedback", None);
    let f = &records["feedback"][0];
    let id = f["id"].as_str().unwrap().to_owned();
    assert_eq!(f["state"], "submitted");
    assert_eq!(f["findings"]["rows_scanned"], 2000);
    let sensitive = f["findings"]["sensitive_columns"].as_array().unwrap();
    assert!(sensitive.contains(&json!("resident_id")), "{f}");
    assert!(!sensitive.contains(&json!("amount")), "{f}");
    z.assert_recorded(&submit("derived"), 409, "error", "already has feedback");

    let filing = file_for_department(z);
    let grant = |columns: Value| {
        z.call(
            "operator",
            "POST",
            "/v1/grants",
            Some(json!({
            "recipient": "bureau-x", "dataset": "derived", "columns": columns,
            "purpose": "policy evaluation", "row_limit": 100, "expires": "2099-01-01T00:00:00Z",
            "filing": filing})),
        )
    };
    z.assert_recorded(
        &grant(json!(["id", "amount"])),
        403,
        "deny",
        "not been approved by the regulator",
    );

    // Before the regulator's approval nobody can apply; only the zone's
    // regulator approves.
    let apply = |cols: Value| {
        let body = json!({"purpose": "policy evaluation", "columns": cols});
        z.call(
            "provider",
            "POST",
            &format!("/v1/feedback/{id}/applications"),
            Some(body),
        )
    };
    z.assert_recorded(
        &apply(json!(["id"])),
        409,
        "error",
        "is submitted; cannot apply",
    );
    let approve = json!({"approve": true, "reason": "no direct identifiers released"});
    let approval = format!("/v1/feedback/{id}/approval");
    z.assert_recorded(
        &z.call("operator", "POST", &approval, Some(approve.clone())),
        403,
        "deny",
        "role operator",
    );
    let state = z.cli(
        "regulator",
        &[
            "feedback",
            "approve",
            "--id",
            &id,
            "--reason",
            "checked findings",
        ],
    );
    assert!(state.ends_with("available"), "{state}");
    z.assert_recorded(
        &z.call("regulator", "POST", &approval, Some(approve)),
        409,
        "error",
        "is available; cannot review",
    );

    // The department applies; both approvals are needed before a grant.
    let app_id = z.cli(
        "provider",
        &[
            "feedback",
            "apply",
            "--id",
            &id,
            "--purpose",
            "policy evaluation",
            "--columns",
            "id,amount,address",
        ],
    );
    z.assert_recorded(&apply(json!(["id"])), 409, "error", "already applied");
    z.assert_recorded(
        &grant(json!(["id", "amount"])),
        403,
        "deny",
        "holds no application approved",
    );
    let review = format!("/v1/feedback-applications/{app_id}/review");
    let yes = json!({"approve": true, "reason": "needed for the evaluation"});
    z.assert_recorded(
        &z.call("provider", "POST", &review, Some(yes.clone())),
        403,
        "deny",
        "role provider",
    );
    let after_regulator = z.ok("regulator", "POST", &review, Some(yes.clone()));
    assert_eq!(after_regulator["state"], "regulator-approved");
    z.assert_recorded(
        &z.call("regulator", "POST", &review, Some(yes)),
        409,
        "error",
        "cannot review it again",
    );
    z.assert_recorded(
        &grant(json!(["id", "amount"])),
        403,
        "deny",
        "holds no application approved",
    );
    let state = z.cli(
        "operator",
        &[
            "feedback",
            "review",
            "--id",
            &app_id,
            "--reason",
            "capacity ok",
        ],
    );
    assert!(state.ends_with("\tapproved"), "{state}");

    // Only now: a grant inside the approved columns, none outside them.
    let granted = grant(json!(["id", "amount"]));
    assert_eq!(granted.status, 201, "{}", granted.body);
    z.assert_recorded(
        &grant(json!(["id", "name"])),
        403,
        "deny",
        "holds no application approved",
    );
}

/// The time `hours` from now in RFC 3339, UTC, whole seconds.
fn in_hours(hours: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::hours(hours);
    let t = t.replace_nanosecond(0).unwrap();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A regulator certificate of another organization than the Bureau.
fn other_regulator(app: &Appliance) {
    issue_client_cert(
        &app.path("pki/ca"),
        "regulator",
        "district-reg",
        "eve",
        &app.path("pki/other-regulator"),
    );
}

#[test]
fn two_poor_assessments_terminate_the_operator() {
    let (app, _) = Appliance::serving_graded_dataset();
    other_regulator(&app);
    let z = Zone { app };
    let grant = z.ok(
        "operator",
        "POST",
        "/v1/grants",
        Some(json!({
        "recipient": CAROL, "dataset": "residents", "columns": ["id", "amount"],
        "purpose": "credit risk model", "row_limit": 100, "expires": "2099-01-01T00:00:00Z",
        "filing": z.app.filing_id()})),
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let extract = || {
        z.call(
            "analyst",
            "POST",
            "/v1/extracts",
            Some(json!({"grant": grant})),
        )
    };
    assert_eq!(extract().status, 200);

    let (q1_from, q1_to, q2_to) = (
        "2020-01-01T00:00:00Z".to_owned(),
        in_hours(-1),
        in_hours(24),
    );
    let assess = |role: &str, operator: &str, from: &str, to: &str, rating: &str| {
        z.call(
            role,
            "POST",
            "/v1/assessments",
            Some(json!({
            "operator": operator, "period": {"from": from, "to": to}, "rating": rating,
            "notes": "quarterly review"})),
        )
    };
    // The first poor rating (CLI, a Bureau regulator) changes nothing.
    let first = z.cli(
        "regulator",
        &[
            "assessment",
            "record",
            "--operator",
            "zone-op",
            "--from",
            &q1_from,
            "--to",
            &q1_to,
            "--rating",
            "poor",
            "--notes",
            "tickets unanswered",
        ],
    );
    assert!(first.starts_with("as-"), "{first}");
    assert_eq!(extract().status, 200);

    // Wrong role, another regulator organization, bad input, a period that
    // goes back: refused and recorded, nothing recorded.
    let q2_from = q1_to.clone();
    z.assert_recorded(
        &assess("operator", "zone-op", &q2_from, &q2_to, "poor"),
        403,
        "deny",
        "role operator",
    );
    z.assert_recorded(
        &assess("other-regulator", "zone-op", &q2_from, &q2_to, "poor"),
        403,
        "deny",
        "is not a regulator of the Bureau (bjeit)",
    );
    z.assert_bad(
        &assess("regulator", "zone-op", &q2_from, &q2_to, "awful"),
        "rating",
    );
    z.assert_bad(
        &assess("regulator", "nobody", &q2_from, &q2_to, "poor"),
        "operator",
    );
    z.assert_bad(
        &assess("regulator", "zone-op", &q2_to, &q2_from, "poor"),
        "period",
    );
    z.assert_recorded(
        &assess(
            "regulator",
            "zone-op",
            "2020-06-01T00:00:00Z",
            &q2_to,
            "poor",
        ),
        409,
        "error",
        "assess a period starting before the last one ended",
    );
    let listed = z.ok("regulator", "GET", "/v1/assessments", None);
    assert_eq!(listed["assessments"].as_array().unwrap().len(), 1);
    assert_eq!(
        z.call("other-regulator", "GET", "/v1/assessments", None)
            .status,
        200
    );

    // A ticket the provider has not answered yet counts in the period.
    let ticket = json!({"dataset": "residents", "dimension": "completeness", "rows": [1],
                        "description": "row 1 lacks an address"});
    z.ok("operator", "POST", "/v1/quality-tickets", Some(ticket));

    // The second poor rating in a row terminates the authorization.
    let second = assess("regulator", "zone-op", &q2_from, &q2_to, "poor");
    z.assert_recorded(&second, 201, "allow", "terminated by assessment");
    let body = json(&second.body);
    let a = &body["assessment"];
    assert_eq!(a["terminates"], true);
    assert_eq!(a["indicators"]["filings_current"], 1, "{a}");
    assert_eq!(a["indicators"]["ledger"]["filings_filed"], 1, "{a}");
    let tickets = &a["indicators"]["quality_tickets"];
    assert_eq!(
        (
            &tickets["opened"],
            &tickets["answered"],
            &tickets["overdue"]
        ),
        (&json!(1), &json!(0), &json!(0)),
        "{a}"
    );
    let t = &body["termination"];
    assert_eq!(t["revoked_grants"], json!([grant]), "{t}");
    assert_eq!(t["zones"], json!(["finance"]));
    let exit = z.ok("regulator", "GET", "/v1/zones/finance/exit", None);
    assert_eq!(exit["cause"], "authorization-terminated", "{exit}");

    // The analyst's next extract and any new grant are refused, naming it.
    let refused = extract();
    z.assert_recorded(&refused, 403, "deny", "terminated by assessment");
    assert_eq!(json(&refused.body)["error"], "authorization_terminated");
    let counts = json!({"grant": grant, "metrics": [{"fn": "count"}]});
    let aggregate = z.call("analyst", "POST", "/v1/aggregates", Some(counts));
    z.assert_recorded(&aggregate, 403, "deny", "terminated by assessment");
    let new_grant = z.call(
        "operator",
        "POST",
        "/v1/grants",
        Some(json!({
        "recipient": CAROL, "dataset": "residents", "columns": ["id"],
        "purpose": "credit risk model", "row_limit": 100, "expires": "2099-01-01T00:00:00Z",
        "filing": z.app.filing_id()})),
    );
    z.assert_recorded(&new_grant, 403, "deny", "terminated by assessment");
    assert_eq!(json(&new_grant.body)["error"], "authorization_terminated");
    let grants = z.ok("operator", "GET", "/v1/grants", None);
    let revoked = grants["grants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == grant.as_str())
        .map(|g| g["revoked_at"].is_string());
    assert_eq!(revoked, Some(true), "{grants}");
    // A terminated operator is assessed no more.
    let third = assess(
        "regulator",
        "zone-op",
        &q2_to,
        "2100-01-01T00:00:00Z",
        "good",
    );
    z.assert_recorded(&third, 409, "error", "assessed no more");
}
