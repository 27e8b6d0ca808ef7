//! `GET /v1/openapi.json`: an OpenAPI 3.0 document generated from the
//! authorization table ([`crate::authz::RULES`]), which lists every route the
//! API serves. Each route's summary comes from [`SUMMARIES`]; a test fails
//! when a route has no summary, so the document cannot fall behind the table.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Map, Value};

use super::AppState;
use crate::authz::RULES;

/// One line per route: (method, path pattern, summary).
#[rustfmt::skip]
pub const SUMMARIES: &[(&str, &str, &str)] = &[
    ("GET",  "/v1/health",                   "Sealed state, version and ledger size"),
    ("GET",  "/metrics",                     "Prometheus metrics"),
    ("GET",  "/v1/openapi.json",             "This document"),
    ("GET",  "/v1/ledger/checkpoint",        "Latest signed checkpoint (C2SP signed note)"),
    ("GET",  "/v1/ledger/entries",           "Ledger entries as JSON lines, in their leaf bytes"),
    ("GET",  "/v1/ledger/proof/inclusion",   "RFC 9162 inclusion proof of one entry"),
    ("GET",  "/v1/ledger/proof/consistency", "RFC 9162 consistency proof between two tree sizes"),
    ("GET",  "/v1/ledger/key",               "Signed-note verifier key of the checkpoints"),
    ("POST", "/v1/ledger/hash",              "HMAC under which the ledger records a value"),
    ("GET",  "/v1/attestation",              "TPM quote binding a nonce and the ledger checkpoint"),
    ("GET",  "/v1/attestation/enrollment",   "EK certificate and AK (public area, PEM, TPM name) for enrollment"),
    ("POST", "/v1/attestation/challenge",    "TPM2_ActivateCredential of a verifier's credential; the recovered secret"),
    ("POST", "/v1/zones",                    "Create a zone"),
    ("GET",  "/v1/zones",                    "List zones"),
    ("GET",  "/v1/zones/{id}",               "One zone"),
    ("POST", "/v1/zones/{id}/supervision",   "Hand supervision of a zone to another regulator"),
    ("POST", "/v1/zones/{id}/exit",          "Start a zone's exit: revoke its grants, refuse its use, request its zone-wide destruction"),
    ("GET",  "/v1/zones/{id}/exit",          "A zone's exit procedure and its state"),
    ("GET",  "/v1/alerts",                   "Security-monitoring alerts with their evidence as ledger indexes (?kind=)"),
    ("GET",  "/v1/trace",                    "Incident trace: every ledger entry of an identity, dataset or extract, with inclusion proofs"),
    ("POST", "/v1/zones/{zone}/datasets",    "Create a dataset in a zone"),
    ("GET",  "/v1/zones/{zone}/datasets",    "List a zone's datasets"),
    ("PUT",  "/v1/datasets/{id}/rows",       "Stream a dataset's rows in (CSV or JSON Lines)"),
    ("PATCH","/v1/datasets/{id}/schema",     "Override and confirm a dataset's detected schema"),
    ("GET",  "/v1/datasets/{id}",            "A dataset's metadata and schema"),
    ("POST", "/v1/destructions",             "Request the destruction of a dataset or zone (operator)"),
    ("GET",  "/v1/destructions/due",         "Datasets past retention, due for destruction"),
    ("GET",  "/v1/destructions/{id}",        "One destruction request and its state"),
    ("POST", "/v1/destructions/{id}/approval", "Approve (and execute) or reject a destruction (zone regulator)"),
    ("GET",  "/v1/destructions/{id}/certificate", "Signed destruction certificate (C2SP signed note)"),
    ("PUT",  "/v1/partners/{org}",           "Set a partner organization's tier and permission flags"),
    ("GET",  "/v1/partners",                 "List partner organizations"),
    ("POST", "/v1/grants",                   "Grant an analyst or partner extracts of a dataset's columns"),
    ("GET",  "/v1/grants",                   "List grants (?recipient=)"),
    ("DELETE","/v1/grants/{id}",             "Revoke a grant at once"),
    ("POST", "/v1/extracts",                 "Stream a desensitized extract (CSV, JSON Lines or Parquet) under a grant"),
    ("GET",  "/v1/extracts/{id}/manifest",   "The signed manifest of an extract"),
    ("POST", "/v1/leak-trace",               "Trace a leaked file to the extract and recipient it came from (p-value)"),
    ("GET",  "/v1/policy",                   "The desensitization policy in force (TOML, version, SHA-256)"),
    ("PUT",  "/v1/policy",                   "Replace the desensitization policy (TOML, validated, next version)"),
    ("POST", "/v1/aggregates",               "Small-cell-suppressed counts, sums and averages under a grant, optional DP noise"),
    ("POST", "/v1/share-applications",       "File a government data-sharing application (operator)"),
    ("GET",  "/v1/share-applications",       "List sharing applications"),
    ("GET",  "/v1/share-applications/{id}",  "One sharing application and its state"),
    ("POST", "/v1/share-applications/{id}/assessment", "Assess a sharing application (zone regulator)"),
    ("POST", "/v1/share-applications/{id}/decision",   "Approve or decline a sharing application (the provider)"),
    ("POST", "/v1/filings",                  "File a data-use filing: scenario, scope, method, recipients, period (operator)"),
    ("GET",  "/v1/filings",                  "List data-use filings"),
    ("GET",  "/v1/filings/{id}",             "One filing, its state and its grants"),
    ("POST", "/v1/filings/{id}/acknowledgement", "Acknowledge or reject a filing (zone regulator)"),
    ("GET",  "/v1/filings/{id}/usage-report", "Usage under a filing from the ledger (?from=&to=&format=json|csv|markdown)"),
    ("POST", "/v1/quality-tickets",          "Open a data quality ticket on a dataset (any role)"),
    ("GET",  "/v1/quality-tickets",          "List quality tickets (?overdue=true&dataset=)"),
    ("GET",  "/v1/quality-tickets/{id}",     "One quality ticket, its deadline and response time"),
    ("POST", "/v1/quality-tickets/{id}/response", "Respond to a quality ticket (the dataset's provider)"),
    ("POST", "/v1/quality-tickets/{id}/dispute",  "Dispute the provider's response (the opener)"),
    ("POST", "/v1/quality-tickets/{id}/resolution", "Resolve a quality ticket (the opener or the zone regulator)"),
    ("POST", "/v1/feedback",                 "Submit a derived dataset as feedback data, with its detection findings (operator)"),
    ("GET",  "/v1/feedback",                 "List feedback data and its applications"),
    ("GET",  "/v1/feedback/{id}",            "One feedback record, its findings and applications"),
    ("POST", "/v1/feedback/{id}/approval",   "Approve or reject feedback data (zone regulator)"),
    ("POST", "/v1/feedback/{id}/applications", "Apply for available feedback data (a provider department)"),
    ("POST", "/v1/feedback-applications/{id}/review", "Review a department's application (zone regulator and operator)"),
    ("POST", "/v1/assessments",              "Record an operator assessment with computed indicators (Bureau regulator)"),
    ("GET",  "/v1/assessments",              "List operator assessments"),
];

/// The document.
pub async fn openapi(State(_): State<Arc<AppState>>) -> Json<Value> {
    Json(document())
}

/// Builds the OpenAPI document from [`RULES`] and [`SUMMARIES`].
pub fn document() -> Value {
    let mut paths = Map::new();
    for (method, path, roles) in RULES {
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        let roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        entry[method.as_str().to_lowercase()] = operation(method.as_str(), path, &roles);
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "zonevault",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Mutual-TLS API of the zonevault data vault appliance. Every \
                request is recorded in the audit ledger before it is answered; the \
                `zonevault-ledger-index` response header is the caller's receipt.",
        },
        "components": { "securitySchemes": { "mtls": { "type": "mutualTLS" } } },
        "security": [ { "mtls": [] } ],
        "paths": paths,
    })
}

fn operation(method: &str, path: &str, roles: &[&str]) -> Value {
    let summary = summary(method, path).unwrap_or("");
    let params: Vec<Value> = path
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    json!({
        "summary": summary,
        "x-roles": roles,
        "parameters": params,
        "responses": {
            "200": { "description": "OK" },
            "400": { "description": "Invalid input; the body names the field and the problem" },
            "403": { "description": "The caller's role or identity is not allowed" },
            "503": { "description": "The audit ledger is unavailable; no data was released" },
        },
    })
}

/// The summary of a route, if documented.
pub fn summary(method: &str, path: &str) -> Option<&'static str> {
    SUMMARIES
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map(|(_, _, s)| *s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_of_the_authorization_table_is_documented() {
        for (method, path, _) in RULES {
            assert!(
                summary(method.as_str(), path).is_some(),
                "{method} {path} has no summary in SUMMARIES"
            );
        }
        let doc = document();
        for (method, path, _) in RULES {
            let op = &doc["paths"][*path][method.as_str().to_lowercase()];
            assert!(op.is_object(), "{method} {path} missing from the document");
        }
    }

    #[test]
    fn path_parameters_are_declared() {
        let doc = document();
        for (method, path, _) in RULES {
            let op = &doc["paths"][*path][method.as_str().to_lowercase()];
            let declared = op["parameters"].as_array().map_or(0, Vec::len);
            assert_eq!(declared, path.matches('{').count(), "{method} {path}");
        }
    }
}
