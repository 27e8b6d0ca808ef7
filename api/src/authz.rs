//! Who may call what: deny-by-default authorization as one table.
//!
//! [`RULES`] is the whole policy at route level. A request is allowed only if
//! a row names its method, its matched axum route pattern and the caller's
//! role; everything else, unknown routes included, is denied. Finer checks
//! that need the request's data (grants, "analyst only for its own entries")
//! live in the handlers and are marked in the table's comments and in
//! [`ANALYST_OWN_ENTRIES_ONLY`].

use axum::http::Method;

use crate::identity::Role;
use Role::{Analyst, Operator, Provider, Regulator};

const ALL: &[Role] = &[Operator, Regulator, Provider, Analyst];
const SUPERVISORS: &[Role] = &[Operator, Regulator];
const SUPERVISORS_AND_ANALYST: &[Role] = &[Operator, Regulator, Analyst];
const SUPERVISORS_AND_PROVIDER: &[Role] = &[Operator, Regulator, Provider];
const OPERATOR: &[Role] = &[Operator];
const REGULATOR: &[Role] = &[Regulator];
const ANALYST: &[Role] = &[Analyst];
const PROVIDER: &[Role] = &[Provider];

/// The authorization table: (method, axum route pattern, roles allowed).
#[rustfmt::skip]
pub const RULES: &[(Method, &str, &[Role])] = &[
    (Method::GET,  "/v1/health",                   ALL),
    (Method::GET,  "/metrics",                     SUPERVISORS),
    (Method::GET,  "/v1/openapi.json",             ALL),
    (Method::GET,  "/v1/ledger/checkpoint",        SUPERVISORS),
    (Method::GET,  "/v1/ledger/entries",           SUPERVISORS),
    (Method::GET,  "/v1/ledger/proof/inclusion",   SUPERVISORS_AND_ANALYST), // analyst: own entries only, checked in handler
    (Method::GET,  "/v1/ledger/proof/consistency", SUPERVISORS_AND_ANALYST), // analyst: own entries only, checked in handler
    (Method::GET,  "/v1/ledger/key",               SUPERVISORS),
    (Method::POST, "/v1/ledger/hash",              SUPERVISORS),
    (Method::GET,  "/v1/attestation",              SUPERVISORS),
    (Method::GET,  "/v1/attestation/enrollment",   SUPERVISORS),
    (Method::POST, "/v1/attestation/challenge",    SUPERVISORS),
    (Method::POST, "/v1/zones",                    OPERATOR),
    (Method::GET,  "/v1/zones",                    SUPERVISORS),   // each sees own zones, checked in handler
    (Method::GET,  "/v1/zones/{id}",               SUPERVISORS),   // zone's operator org or supervisor, in handler
    (Method::POST, "/v1/zones/{id}/supervision",   REGULATOR),     // current supervisor only, in handler
    (Method::POST, "/v1/zones/{id}/exit",          SUPERVISORS),   // zone's operator org or supervisor, in handler
    (Method::GET,  "/v1/zones/{id}/exit",          SUPERVISORS),   // as GET /v1/zones/{id}
    (Method::GET,  "/v1/alerts",                   SUPERVISORS),
    (Method::GET,  "/v1/trace",                    SUPERVISORS),
    (Method::POST, "/v1/zones/{zone}/datasets",    OPERATOR),      // zone's operator org, in handler
    (Method::GET,  "/v1/zones/{zone}/datasets",    SUPERVISORS),   // as GET /v1/zones/{id}
    (Method::GET,  "/v1/datasets/{id}",            SUPERVISORS),   // as GET /v1/zones/{id}, for its zone
    (Method::PUT,  "/v1/datasets/{id}/rows",       OPERATOR),      // zone's operator org, in handler
    (Method::PATCH,"/v1/datasets/{id}/schema",     OPERATOR),      // zone's operator org, in handler
    (Method::POST, "/v1/destructions",             OPERATOR),      // zone's operator org, in handler
    (Method::GET,  "/v1/destructions/due",         SUPERVISORS),   // visible zones only, in handler
    (Method::GET,  "/v1/destructions/{id}",        SUPERVISORS),   // zone's operator org or supervisor, in handler
    (Method::POST, "/v1/destructions/{id}/approval", REGULATOR),   // zone's supervisor only, in handler
    (Method::GET,  "/v1/destructions/{id}/certificate", SUPERVISORS), // as GET /v1/destructions/{id}
    (Method::PUT,  "/v1/partners/{org}",           OPERATOR),
    (Method::GET,  "/v1/partners",                 SUPERVISORS),
    (Method::POST, "/v1/grants",                   OPERATOR),      // dataset's zone operator org, in handler
    (Method::GET,  "/v1/grants",                   SUPERVISORS_AND_ANALYST), // visible datasets / own grants, in handler
    (Method::DELETE,"/v1/grants/{id}",             OPERATOR),      // dataset's zone operator org, in handler
    (Method::POST, "/v1/extracts",                 ANALYST),       // grant checks in handler
    (Method::POST, "/v1/aggregates",              ANALYST),       // grant checks and ε budget in handler
    (Method::GET,  "/v1/extracts/{id}/manifest",   SUPERVISORS_AND_ANALYST), // recipient, zone operator or regulator, in handler
    (Method::POST, "/v1/leak-trace",               SUPERVISORS),   // candidates: extracts of visible datasets, in handler
    (Method::GET,  "/v1/policy",                   SUPERVISORS),
    (Method::PUT,  "/v1/policy",                   OPERATOR),      // validated strictly, versioned, in handler
    (Method::POST, "/v1/share-applications",       OPERATOR),      // zone's operator org, in handler
    (Method::GET,  "/v1/share-applications",       SUPERVISORS_AND_PROVIDER), // zone's operator or regulator, or the named provider, in handler
    (Method::GET,  "/v1/share-applications/{id}",  SUPERVISORS_AND_PROVIDER), // as the list
    (Method::POST, "/v1/share-applications/{id}/assessment", REGULATOR), // zone's supervisor only, in handler
    (Method::POST, "/v1/share-applications/{id}/decision",   PROVIDER),  // the named provider org only, in handler
    (Method::POST, "/v1/filings",                  OPERATOR),      // datasets' zone operator org, in handler
    (Method::GET,  "/v1/filings",                  SUPERVISORS),   // visible zones only, in handler
    (Method::GET,  "/v1/filings/{id}",             SUPERVISORS),   // zone's operator org or supervisor, in handler
    (Method::POST, "/v1/filings/{id}/acknowledgement", REGULATOR), // zone's supervisor only, in handler
    (Method::GET,  "/v1/filings/{id}/usage-report", SUPERVISORS),  // zone's operator org or supervisor, in handler
    (Method::POST, "/v1/quality-tickets",          ALL),           // a dataset the caller can see, in handler
    (Method::GET,  "/v1/quality-tickets",          ALL),           // own, provider org's, zone's; in handler
    (Method::GET,  "/v1/quality-tickets/{id}",     ALL),           // as the list
    (Method::POST, "/v1/quality-tickets/{id}/response", PROVIDER), // the dataset's provider org only, in handler
    (Method::POST, "/v1/quality-tickets/{id}/dispute",  ALL),      // the opener only, in handler
    (Method::POST, "/v1/quality-tickets/{id}/resolution", ALL),    // the opener or the zone's supervisor, in handler
    (Method::POST, "/v1/feedback",                 OPERATOR),      // dataset's zone operator org, in handler
    (Method::GET,  "/v1/feedback",                 SUPERVISORS_AND_PROVIDER), // zone's operator or supervisor; providers: available ones
    (Method::GET,  "/v1/feedback/{id}",            SUPERVISORS_AND_PROVIDER), // as the list
    (Method::POST, "/v1/feedback/{id}/approval",   REGULATOR),     // zone's supervisor only, in handler
    (Method::POST, "/v1/feedback/{id}/applications", PROVIDER),    // available feedback only, in handler
    (Method::POST, "/v1/feedback-applications/{id}/review", SUPERVISORS), // zone's supervisor or operator org, in handler
    (Method::POST, "/v1/assessments",              REGULATOR),     // the Bureau's regulators only, in handler
    (Method::GET,  "/v1/assessments",              SUPERVISORS),   // Bureau: all; others: own / supervised; in handler
];

/// Routes where [`RULES`] admits an analyst but the handler must further
/// restrict the answer to ledger entries recorded for that analyst.
pub const ANALYST_OWN_ENTRIES_ONLY: &[&str] =
    &["/v1/ledger/proof/inclusion", "/v1/ledger/proof/consistency"];

/// The outcome of [`authorize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A rule admits the caller.
    Allow,
    /// No rule admits the caller.
    Deny(DenyReason),
}

/// Why a request was denied; recorded in the ledger, never sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// No rule exists for this method and route.
    NoRule,
    /// A rule exists but does not list the caller's role.
    RoleNotAllowed(Role),
}

impl std::fmt::Display for DenyReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DenyReason::NoRule => f.write_str("no authorization rule for method and route"),
            DenyReason::RoleNotAllowed(role) => write!(f, "role {role} not allowed on route"),
        }
    }
}

/// Decides whether `role` may call `method` on `matched_route` (the axum
/// route pattern, e.g. from `MatchedPath`, not the raw request path).
pub fn authorize(method: &Method, matched_route: &str, role: Role) -> Decision {
    let rule = RULES
        .iter()
        .find(|(m, route, _)| m == method && *route == matched_route);
    match rule {
        None => Decision::Deny(DenyReason::NoRule),
        Some((_, _, roles)) if roles.contains(&role) => Decision::Allow,
        Some(_) => Decision::Deny(DenyReason::RoleNotAllowed(role)),
    }
}

/// The route pattern in [`RULES`] that `path` (a raw request path) falls
/// under, if any. A `{param}` segment matches one non-empty segment.
pub fn match_route(path: &str) -> Option<&'static str> {
    RULES
        .iter()
        .map(|(_, route, _)| *route)
        .find(|route| pattern_matches(route, path))
}

fn pattern_matches(pattern: &str, path: &str) -> bool {
    let mut want = pattern.split('/');
    let mut have = path.split('/');
    loop {
        match (want.next(), have.next()) {
            (None, None) => return true,
            (Some(w), Some(h)) if w.starts_with('{') && w.ends_with('}') => {
                if h.is_empty() {
                    return false;
                }
            }
            (Some(w), Some(h)) if w == h => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_is_open_to_every_role() {
        for role in Role::ALL {
            assert_eq!(authorize(&Method::GET, "/v1/health", role), Decision::Allow);
        }
    }

    #[test]
    fn metrics_only_for_supervisors() {
        assert_eq!(
            authorize(&Method::GET, "/metrics", Regulator),
            Decision::Allow
        );
        assert_eq!(
            authorize(&Method::GET, "/metrics", Analyst),
            Decision::Deny(DenyReason::RoleNotAllowed(Analyst))
        );
        assert!(matches!(
            authorize(&Method::GET, "/metrics", Provider),
            Decision::Deny(_)
        ));
    }

    #[test]
    fn ledger_routes() {
        let proof = "/v1/ledger/proof/inclusion";
        assert_eq!(authorize(&Method::GET, proof, Analyst), Decision::Allow);
        assert!(matches!(
            authorize(&Method::GET, proof, Provider),
            Decision::Deny(_)
        ));
        let entries = "/v1/ledger/entries";
        assert!(matches!(
            authorize(&Method::GET, entries, Analyst),
            Decision::Deny(_)
        ));
        assert_eq!(
            authorize(&Method::POST, "/v1/ledger/hash", Regulator),
            Decision::Allow
        );
    }

    #[test]
    fn unknown_route_and_wrong_method_are_denied() {
        let deny = Decision::Deny(DenyReason::NoRule);
        assert_eq!(authorize(&Method::GET, "/v1/nope", Operator), deny);
        assert_eq!(authorize(&Method::DELETE, "/v1/health", Operator), deny);
        assert_eq!(authorize(&Method::GET, "/v1/ledger/hash", Regulator), deny);
        assert_eq!(authorize(&Method::GET, "/v1/health/", Operator), deny);
    }

    #[test]
    fn raw_paths_map_to_route_patterns() {
        assert_eq!(match_route("/v1/health"), Some("/v1/health"));
        assert_eq!(
            match_route("/v1/ledger/proof/inclusion"),
            Some("/v1/ledger/proof/inclusion")
        );
        for unknown in [
            "/v1/health/",
            "/v1/nope",
            "/",
            "",
            "/v1//health",
            "/V1/health",
        ] {
            assert_eq!(match_route(unknown), None, "{unknown:?}");
        }
        assert!(pattern_matches("/v1/datasets/{id}", "/v1/datasets/d1"));
        assert!(!pattern_matches("/v1/datasets/{id}", "/v1/datasets/"));
        assert!(!pattern_matches(
            "/v1/datasets/{id}",
            "/v1/datasets/d1/rows"
        ));
    }

    #[test]
    fn table_is_consistent() {
        for (i, (m, route, roles)) in RULES.iter().enumerate() {
            assert!(!roles.is_empty(), "{route}: a rule with no roles is dead");
            let dup = RULES[i + 1..]
                .iter()
                .any(|(m2, r2, _)| m2 == m && r2 == route);
            assert!(!dup, "{m} {route} appears twice");
        }
        for route in ANALYST_OWN_ENTRIES_ONLY {
            assert_eq!(authorize(&Method::GET, route, Analyst), Decision::Allow);
        }
    }
}
