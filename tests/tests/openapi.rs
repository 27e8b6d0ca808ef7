//! End to end: `GET /v1/openapi.json` from the real server over mutual TLS
//! is the document generated from the handlers, and what it says of who may
//! call what is what the server enforces: for every operation, a role
//! outside its `x-roles` is refused with 403. Real binary, swtpm and TLS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use e2e::appliance::Appliance;
use serde_json::Value;

const ROLES: &[&str] = &["operator", "regulator", "provider", "analyst"];

fn running() -> Appliance {
    let mut app = Appliance::new();
    app.init("0,2,4,7");
    app.start_server().expect("server starts");
    app
}

/// `path` with each `{param}` segment replaced by a well-formed value.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { "x1" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn openapi_document_is_served_and_its_roles_are_enforced() {
    let app = running();
    let (status, body) = app.curl("analyst", "GET", "/v1/openapi.json", None);
    assert_eq!(status, 200, "{body}");
    let served: Value = serde_json::from_str(&body).unwrap();
    let generated = serde_json::to_value(api::app::openapi::document()).unwrap();
    assert_eq!(served, generated);

    let mut checked = 0;
    for (path, item) in served["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let allowed: Vec<&str> = op["x-roles"]
                .as_array()
                .unwrap_or_else(|| panic!("{method} {path} has no x-roles"))
                .iter()
                .map(|r| r.as_str().unwrap())
                .collect();
            let Some(outsider) = ROLES.iter().find(|r| !allowed.contains(r)) else {
                continue;
            };
            let method = method.to_uppercase();
            let (status, reply) = app.curl(outsider, &method, &concrete(path), None);
            assert_eq!(status, 403, "{outsider} {method} {path}: {reply}");
            let reply: Value = serde_json::from_str(&reply).unwrap();
            assert_eq!(reply["error"], "forbidden");
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} operations restrict roles");
}
