//! End to end: `POST /v1/aggregates` against the real binary, a real swtpm
//! and real TLS. Cells are keyed by desensitized values and agree with a
//! computation from the sample file; small cells are suppressed; a core
//! column is refused by name; filter values are data; noisy counts are
//! plausible and charged to the grant's ε budget until it is exhausted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use e2e::appliance::{issue_client_cert, Appliance, Reply};
use serde_json::{json, Value};

const CAROL: &str = "spiffe://test.zonevault/analyst/partner-a/carol";

struct Setup {
    app: Appliance,
}

impl Setup {
    /// See [`Appliance::serving_graded_dataset`]; also the sample's text.
    fn start() -> (Setup, String) {
        let (app, sample) = Appliance::serving_graded_dataset();
        let text = std::fs::read_to_string(&sample).unwrap();
        (Setup { app }, text)
    }

    fn call(&self, role: &str, method: &str, path: &str, body: Value) -> Reply {
        self.app
            .curl_full(role, method, path, Some(&body.to_string()))
    }

    fn grant(&self, columns: &[&str]) -> String {
        let r = self.call(
            "operator",
            "POST",
            "/v1/grants",
            json!({"recipient": CAROL, "dataset": "residents", "columns": columns,
                   "purpose": "district statistics", "row_limit": 5000, "max_extracts": 1,
                   "expires": "2099-01-01T00:00:00Z", "filing": self.app.filing_id()}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        json(&r.body)["id"].as_str().unwrap().to_owned()
    }

    fn aggregate(&self, role: &str, body: Value) -> Reply {
        self.call(role, "POST", "/v1/aggregates", body)
    }

    /// A 403 whose reason is only in its ledger entry.
    fn assert_refused(&self, reply: &Reply, reason: &str) {
        assert_eq!(reply.status, 403, "{}", reply.body);
        assert!(!reply.body.contains(reason), "{}", reply.body);
        let index = reply.ledger_index().expect("a ledger receipt") as usize;
        let r = self
            .app
            .curl_full("regulator", "GET", "/v1/ledger/entries", None);
        let entry = json(r.body.lines().nth(index).unwrap());
        assert_eq!(entry["decision"], "deny", "{entry}");
        let recorded = entry["reason"].as_str().unwrap_or("");
        assert!(recorded.contains(reason), "{reason:?} not in {entry}");
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// Per district (`北京市X区`): rows and amount sum of sample rows with
/// `id <= max_id`.
fn expected(sample: &str, max_id: u64) -> BTreeMap<String, (u64, f64)> {
    let mut out: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    for line in sample.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f[0].parse::<u64>().unwrap() > max_id {
            continue;
        }
        let end = f[5].find('区').unwrap() + '区'.len_utf8();
        let cell = out.entry(f[5][..end].to_owned()).or_default();
        cell.0 += 1;
        cell.1 += f[6].parse::<f64>().unwrap();
    }
    out
}

#[test]
fn aggregates_suppress_refuse_and_spend_epsilon() {
    let (st, sample) = Setup::start();
    let g = st.grant(&["id", "name", "address", "amount"]);
    cells_match_the_sample(&st, &g, &sample);
    refusals(&st, &g);
    filter_values_are_data(&st, &g);
    noise_and_budget(&st, &g);
}

fn cells_match_the_sample(st: &Setup, g: &str, sample: &str) {
    // Few rows, so some districts fall below k = 5.
    let r = st.aggregate(
        "analyst",
        json!({"grant": g, "group_by": ["address"], "filter": "id <= 60",
               "metrics": [{"fn": "count"}, {"fn": "sum", "column": "amount"},
                           {"fn": "avg", "column": "amount"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let body = json(&r.body);
    let result = &body["result"];
    assert_eq!(result["k"], 5, "{body}");
    assert_eq!(body["group_keys"][0]["to"], "address_to_district", "{body}");
    let want = expected(sample, 60);
    let small = want.values().filter(|(n, _)| *n < 5).count();
    assert!(small > 0, "the test needs a small cell: {want:?}");
    assert_eq!(result["suppressed_cells"], small, "{body}");
    let cells = result["cells"].as_array().unwrap();
    assert_eq!(cells.len(), want.len() - small, "{body}");
    for cell in cells {
        let key = cell["key"][0].as_str().unwrap();
        let (n, sum) = want[key];
        let v = &cell["values"];
        assert_eq!(v[0].as_f64().unwrap(), n as f64, "{key}");
        assert!((v[1].as_f64().unwrap() - sum).abs() < 1e-6, "{key}: {v}");
        assert!(
            (v[2].as_f64().unwrap() - sum / n as f64).abs() < 1e-6,
            "{key}: {v}"
        );
    }
    assert!(!r.body.contains("号"), "no raw address leaves: {}", r.body);
}

fn refusals(st: &Setup, g: &str) {
    let core = st.aggregate(
        "analyst",
        json!({"grant": g, "metrics": [{"fn": "count", "column": "registered"}]}),
    );
    assert_eq!(core.status, 403, "{}", core.body);
    assert_eq!(json(&core.body)["column"], "registered", "{}", core.body);

    let outside = st.aggregate(
        "analyst",
        json!({"grant": g, "group_by": ["mobile"], "metrics": [{"fn": "count"}]}),
    );
    st.assert_refused(&outside, "outside the grant");
    let nope = st.aggregate(
        "analyst",
        json!({"grant": "g-nope", "metrics": [{"fn": "count"}]}),
    );
    st.assert_refused(&nope, "no such grant");

    let ca = st.app.path("pki/ca");
    let dan = st.app.path("pki/dan");
    issue_client_cert(&ca, "analyst", "partner-a", "dan", &dan);
    let other = st.aggregate("dan", json!({"grant": g, "metrics": [{"fn": "count"}]}));
    st.assert_refused(&other, "another recipient");

    let masked = st.aggregate(
        "analyst",
        json!({"grant": g, "filter": "name = '张三'", "metrics": [{"fn": "count"}]}),
    );
    assert_eq!(masked.status, 400, "{}", masked.body);
    assert_eq!(json(&masked.body)["field"], "filter", "{}", masked.body);
    let syntax = st.aggregate(
        "analyst",
        json!({"grant": g, "filter": "id = 'x", "metrics": [{"fn": "count"}]}),
    );
    assert_eq!(syntax.status, 400, "{}", syntax.body);
    assert!(syntax.body.contains("position 5"), "{}", syntax.body);
}

fn filter_values_are_data(st: &Setup, g: &str) {
    for filter in ["id = ''' OR 1=1 --'", "id IN ('1); DROP TABLE rows; --')"] {
        let r = st.aggregate(
            "analyst",
            json!({"grant": g, "filter": filter, "metrics": [{"fn": "count"}]}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let result = &json(&r.body)["result"];
        assert_eq!(result["cells"], json!([]), "{filter}: {result}");
        assert_eq!(result["suppressed_cells"], 0, "{filter}: {result}");
    }
    let all = st.aggregate("analyst", json!({"grant": g, "metrics": [{"fn": "count"}]}));
    assert_eq!(
        json(&all.body)["result"]["cells"][0]["values"][0],
        2000.0,
        "{}",
        all.body
    );
}

fn noise_and_budget(st: &Setup, g: &str) {
    let noisy_sum = st.aggregate(
        "analyst",
        json!({"grant": g, "metrics": [{"fn": "sum", "column": "amount"}],
               "noise": {"mechanism": "laplace", "epsilon": 0.1}}),
    );
    assert_eq!(noisy_sum.status, 400, "{}", noisy_sum.body);
    assert_eq!(json(&noisy_sum.body)["field"], "metrics[0].fn");

    let noisy = json!({"grant": g, "metrics": [{"fn": "count"}],
                       "noise": {"mechanism": "discrete-laplace", "epsilon": 0.4}});
    for spent in [0.4, 0.8] {
        let r = st.aggregate("analyst", noisy.clone());
        assert_eq!(r.status, 200, "{}", r.body);
        let body = json(&r.body);
        assert!(
            (body["epsilon_spent"].as_f64().unwrap() - spent).abs() < 1e-9,
            "{body}"
        );
        let count = body["result"]["cells"][0]["values"][0].as_f64().unwrap();
        assert!(
            (count - 2000.0).abs() < 100.0,
            "implausible noisy count {count}"
        );
        assert_eq!(body["result"]["noise"]["mechanism"], "discrete-laplace");
    }
    let exhausted = st.aggregate("analyst", noisy);
    assert_eq!(exhausted.status, 403, "{}", exhausted.body);
    let body = json(&exhausted.body);
    assert_eq!(body["reason"], "epsilon_budget_exhausted", "{body}");
    assert!(
        body["problem"].as_str().unwrap().contains("exhausted"),
        "{body}"
    );
    // Exact aggregates spend no ε and still answer.
    let exact = st.aggregate("analyst", json!({"grant": g, "metrics": [{"fn": "count"}]}));
    assert_eq!(exact.status, 200, "{}", exact.body);
}
