//! The document stays true: operations are exactly [`RULES`], and the
//! document is well formed by our checks and by an independent parser.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::*;

fn json() -> Value {
    serde_json::to_value(document()).unwrap()
}

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

/// (method, path) of every operation in `doc`.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut set = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(*method).is_some() {
                set.insert((method.to_string(), path.clone()));
            }
        }
    }
    set
}

fn rules() -> BTreeSet<(String, String)> {
    RULES
        .iter()
        .map(|(m, p, _)| (m.as_str().to_lowercase(), p.to_string()))
        .collect()
}

#[test]
fn operations_are_exactly_the_authorization_table() {
    let doc = operations(&json());
    let table = rules();
    assert_eq!(table.len(), RULES.len(), "RULES has a duplicate row");
    let undocumented: Vec<_> = table.difference(&doc).collect();
    let unrouted: Vec<_> = doc.difference(&table).collect();
    assert!(
        undocumented.is_empty(),
        "routes without #[utoipa::path]: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "annotations without a RULES row: {unrouted:?}"
    );
}

#[test]
fn every_operation_has_the_roles_of_its_rule() {
    let doc = json();
    for (method, path, roles) in RULES {
        let op = &doc["paths"][*path][method.as_str().to_lowercase()];
        let want: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        assert_eq!(op["x-roles"], serde_json::json!(want), "{method} {path}");
    }
}

#[test]
fn every_operation_has_a_summary_and_a_unique_id() {
    let doc = json();
    let mut ids = BTreeSet::new();
    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][&method];
        let summary = op["summary"].as_str().unwrap_or("");
        assert!(!summary.trim().is_empty(), "{method} {path} has no summary");
        let id = op["operationId"].as_str().unwrap().to_owned();
        assert!(ids.insert(id.clone()), "operationId {id} is used twice");
        assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
    }
}

#[test]
fn path_parameters_are_exactly_the_path_segments() {
    let doc = json();
    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][&method];
        let in_path: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        let declared: BTreeSet<&str> = params
            .iter()
            .filter(|p| p["in"] == "path")
            .inspect(|p| assert_eq!(p["required"], true, "{method} {path}: {p}"))
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(declared, in_path, "{method} {path}");
    }
}

/// Every `"$ref"` string anywhere under `value`.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r);
            }
            map.values().for_each(|v| refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_ref_resolves() {
    let doc = json();
    let mut found = Vec::new();
    refs(&doc, &mut found);
    for r in &found {
        let pointer = r.strip_prefix('#').expect("a local reference");
        assert!(pointer.starts_with("/components/"), "{r}");
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }
    // Not vacuous: request bodies and error responses are references.
    assert!(found.contains(&"#/components/schemas/ErrorBody"));
    assert!(found.contains(&"#/components/schemas/GrantRequest"));
    assert!(found.contains(&"#/components/responses/Forbidden"));
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "ShareItem",
        "MetricFn",
        "Mechanism",
        "Bundle",
        "ChallengeRequest",
    ] {
        assert!(
            schemas.contains_key(name),
            "{name} is not in components.schemas"
        );
    }
}

#[test]
fn request_bodies_and_queries_are_typed() {
    let doc = json();
    let grant = &doc["paths"]["/v1/grants"]["post"]["requestBody"]["content"]["application/json"];
    assert_eq!(grant["schema"]["$ref"], "#/components/schemas/GrantRequest");
    let schema = &doc["components"]["schemas"]["GrantRequest"];
    assert_eq!(schema["additionalProperties"], false);
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for field in [
        "recipient",
        "dataset",
        "columns",
        "purpose",
        "row_limit",
        "expires",
    ] {
        assert!(
            required.contains(&field),
            "{field} not required: {required:?}"
        );
    }
    let params = doc["paths"]["/v1/ledger/proof/inclusion"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let index = params.iter().find(|p| p["name"] == "index").unwrap();
    assert_eq!(index["in"], "query");
    assert_eq!(index["required"], true);
    assert_eq!(index["schema"]["type"], "integer");
}

#[test]
fn info_security_and_version() {
    let doc = json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(doc["info"]["title"], "zonevault");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(doc["info"]["description"]
        .as_str()
        .unwrap()
        .contains("audit ledger"));
    let scheme = &doc["components"]["securitySchemes"][SECURITY_SCHEME];
    assert_eq!(scheme["type"], "mutualTLS");
    assert_eq!(
        doc["security"],
        serde_json::json!([{ SECURITY_SCHEME: [] }])
    );
}

#[test]
fn an_independent_parser_accepts_the_document() {
    let text = serde_json::to_string(&document()).unwrap();
    let spec = oas3::from_json(&text).expect("oas3 parses the document");
    assert!(spec.openapi.starts_with("3.1"), "{}", spec.openapi);
    assert_eq!(spec.operations().count(), RULES.len());
    for (path, method, op) in spec.operations() {
        assert!(op.summary.is_some(), "{method} {path}");
        for param in &op.parameters {
            param.resolve(&spec).expect("a parameter resolves");
        }
        if let Some(body) = &op.request_body {
            body.resolve(&spec).expect("a request body resolves");
        }
    }
    // The parser is not blind: a document without `info` is refused.
    let mut broken = json();
    broken.as_object_mut().unwrap().remove("info");
    assert!(oas3::from_json(broken.to_string()).is_err());
}

/// Every [`crate::error::ApiError`] variant; the match makes a new variant a
/// compile error here until it is added.
fn every_error() -> Vec<crate::error::ApiError> {
    use crate::error::ApiError as E;
    let all = vec![
        E::Unauthenticated,
        E::Forbidden { reason: "r".into() },
        E::NotFound,
        E::bad_request("tree_size", "too big"),
        E::PayloadTooLarge,
        E::Conflict { reason: "r".into() },
        E::Gone {
            certificate: Some("dc-1".into()),
        },
        E::DueForDestruction {
            dataset: "d".into(),
        },
        E::ZoneExiting {
            zone: "z".into(),
            state: "exiting".into(),
        },
        E::AuthorizationTerminated {
            operator: "o".into(),
            assessment: "a".into(),
        },
        E::ledger_unavailable("disk full"),
        E::internal("boom"),
    ];
    for e in &all {
        match e {
            E::Unauthenticated
            | E::Forbidden { .. }
            | E::NotFound
            | E::BadRequest { .. }
            | E::PayloadTooLarge
            | E::Conflict { .. }
            | E::Gone { .. }
            | E::DueForDestruction { .. }
            | E::ZoneExiting { .. }
            | E::AuthorizationTerminated { .. }
            | E::LedgerUnavailable { .. }
            | E::Internal { .. } => {}
        }
    }
    all
}

/// `value` is an object whose keys are among `schema`'s properties, with
/// every required one, and whose `error` is one of the codes.
fn conforms(value: &Value, schema: &Value, codes: &Value) -> Result<(), String> {
    let object = value.as_object().ok_or("not an object")?;
    let props = schema["properties"].as_object().ok_or("no properties")?;
    if let Some(key) = object.keys().find(|k| !props.contains_key(*k)) {
        return Err(format!("{key} is not in the schema"));
    }
    for required in schema["required"].as_array().ok_or("no required")? {
        let key = required.as_str().unwrap_or_default();
        if !object.contains_key(key) {
            return Err(format!("{key} is missing"));
        }
    }
    for (key, v) in object {
        if key != "error" && !v.is_string() {
            return Err(format!("{key} is not a string"));
        }
    }
    let known = codes["enum"].as_array().ok_or("no codes")?;
    if !known.contains(&value["error"]) {
        return Err(format!("{} is not a documented code", value["error"]));
    }
    Ok(())
}

#[tokio::test]
async fn the_error_schema_matches_every_error_the_api_writes() {
    use axum::response::IntoResponse;
    use http_body_util::BodyExt;
    let doc = json();
    let schema = &doc["components"]["schemas"]["ErrorBody"];
    let codes = &doc["components"]["schemas"]["ErrorCode"];
    assert_eq!(
        schema["properties"]["error"]["$ref"],
        "#/components/schemas/ErrorCode"
    );
    // Absent fields are omitted, not null; refusals may add their own.
    assert_eq!(schema["properties"]["field"]["type"], "string");
    assert!(schema.get("additionalProperties").is_none(), "{schema}");
    let mut seen = BTreeSet::new();
    for e in every_error() {
        let code = e.code();
        let bytes = e
            .into_response()
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes();
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value["error"], code);
        conforms(&value, schema, codes).unwrap_or_else(|why| panic!("{code}: {why}: {value}"));
        seen.insert(code);
    }
    // Every documented code is one the API writes.
    assert_eq!(seen.len(), codes["enum"].as_array().unwrap().len());
}

#[test]
fn the_error_check_refuses_what_the_schema_does_not_say() {
    let doc = json();
    let schema = &doc["components"]["schemas"]["ErrorBody"];
    let codes = &doc["components"]["schemas"]["ErrorCode"];
    let ok = serde_json::json!({"error": "not_found", "message": "no such resource"});
    assert_eq!(conforms(&ok, schema, codes), Ok(()));
    let unknown = serde_json::json!({"error": "not_found", "message": "m", "secret": "x"});
    assert_eq!(
        conforms(&unknown, schema, codes),
        Err("secret is not in the schema".into())
    );
    let code = serde_json::json!({"error": "teapot", "message": "m"});
    assert!(conforms(&code, schema, codes).is_err());
    let missing = serde_json::json!({"error": "not_found"});
    assert_eq!(
        conforms(&missing, schema, codes),
        Err("message is missing".into())
    );
}

/// The `$ref` of each error response of `components.responses`, by the
/// status it is sent with.
fn error_refs() -> BTreeMap<String, String> {
    fn entry<R: ErrorResponse>() -> (String, String) {
        let (name, _) = R::response();
        let target = format!("#/components/responses/{name}");
        (R::STATUS.as_str().to_owned(), target)
    }
    BTreeMap::from([
        entry::<BadRequest>(),
        entry::<Forbidden>(),
        entry::<NotFound>(),
        entry::<Conflict>(),
        entry::<Gone>(),
        entry::<PayloadTooLarge>(),
        entry::<LedgerUnavailable>(),
    ])
}

#[test]
fn every_error_response_is_the_shared_one_of_its_status() {
    let doc = json();
    let refs = error_refs();
    for (method, path) in operations(&doc) {
        let responses = doc["paths"][&path][&method]["responses"]
            .as_object()
            .unwrap();
        let errors = responses
            .iter()
            .filter(|(status, _)| !status.starts_with('2'));
        for (status, response) in errors {
            let target = response["$ref"].as_str();
            assert_eq!(
                target,
                refs.get(status).map(String::as_str),
                "{method} {path} {status}"
            );
        }
        // Any caller may be refused its role, and no call goes unrecorded.
        for status in ["403", "503"] {
            assert!(
                responses.contains_key(status),
                "{method} {path} lacks {status}"
            );
        }
    }
}

/// One operation of each kind, with the statuses it documents: its success
/// and the error set of its kind.
const KINDS: &[(&str, &str, &str)] = &[
    ("get", "/v1/health", "200 403 503"),             // ReadErrors
    ("get", "/v1/alerts", "200 400 403 503"),         // QueryErrors
    ("get", "/v1/zones/{id}", "200 400 403 404 503"), // LookupErrors
    ("get", "/v1/datasets/{id}", "200 400 403 404 410 503"), // DatasetLookupErrors
    ("post", "/v1/ledger/hash", "200 400 403 413 503"), // BodyErrors
    ("post", "/v1/filings", "201 400 403 404 413 503"), // BodyLookupErrors
    ("post", "/v1/zones", "201 400 403 409 413 503"), // CreateErrors
    ("post", "/v1/zones/{id}/exit", "201 400 403 404 409 413 503"), // StateChangeErrors
    ("post", "/v1/grants", "201 400 403 404 409 410 413 503"), // DatasetUseErrors
];

#[test]
fn each_kind_of_operation_lists_its_error_set() {
    let doc = json();
    for (method, path, want) in KINDS {
        let responses = doc["paths"][path][method]["responses"].as_object();
        let statuses: Vec<&str> = responses.unwrap().keys().map(String::as_str).collect();
        assert_eq!(statuses.join(" "), *want, "{method} {path}");
    }
}
