//! `GET /v1/openapi.json`: the OpenAPI 3.1 document, generated from the
//! handlers' `#[utoipa::path]` annotations (method, path, summary,
//! parameters, request and response bodies) by [`ApiDoc`]. Who may call an
//! operation is defined only in [`crate::authz::RULES`]; [`document`] merges
//! it in as each operation's `x-roles`. The tests keep the document true:
//! its operations are exactly the table's rows, every path parameter is
//! declared, every `$ref` resolves, the error schema reads what
//! [`crate::error::ApiError`] writes, and an independent parser accepts it.

use std::sync::Arc;

use axum::extract::State;
use axum::http::Method;
use axum::Json;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::SecurityScheme;
use utoipa::openapi::{InfoBuilder, OpenApi as Document};
use utoipa::{Modify, OpenApi};

use super::AppState;
use crate::authz::RULES;

mod responses;
#[cfg(test)]
mod tests;

pub use responses::{
    BadRequest, BodyErrors, BodyLookupErrors, Conflict, CreateErrors, DatasetLookupErrors,
    DatasetUseErrors, ErrorBody, ErrorCode, ErrorResponse, Forbidden, Gone, LedgerUnavailable,
    LookupErrors, NotFound, PayloadTooLarge, QueryErrors, ReadErrors, StateChangeErrors,
};

/// What the document says of the API as a whole.
const DESCRIPTION: &str = "Mutual-TLS API of the zonevault data vault appliance. Every \
    request is recorded in the audit ledger before it is answered; the \
    `zonevault-ledger-index` response header is the caller's receipt. Each \
    operation's `x-roles` lists the client-certificate roles allowed to call it.";

/// The name of the security scheme: the client certificate of mutual TLS.
pub const SECURITY_SCHEME: &str = "mtls";

/// Every operation the router serves, one line per handler.
#[derive(OpenApi)]
#[openapi(
    paths(
        super::health::health,
        super::metrics::render,
        openapi,
        super::ledger_routes::checkpoint,
        super::ledger_routes::entries,
        super::ledger_routes::inclusion,
        super::ledger_routes::consistency,
        super::ledger_routes::key,
        super::ledger_routes::hash,
        super::attestation::attestation,
        super::attestation::enrollment::enrollment,
        super::attestation::enrollment::challenge,
        super::zones::create,
        super::zones::list,
        super::zones::show,
        super::zones::hand_over,
        super::exit::start,
        super::exit::show,
        super::alerts::list,
        super::incident::trace,
        super::datasets::create,
        super::datasets::list,
        super::datasets::show,
        super::import_stream::import,
        super::datasets::confirm_schema,
        super::destructions::request,
        super::destructions::due,
        super::destructions::show,
        super::destructions::approval,
        super::destructions::certificate,
        super::grants::put_partner,
        super::grants::list_partners,
        super::grants::create,
        super::grants::list,
        super::grants::revoke,
        super::extracts::create,
        super::aggregates::create,
        super::extracts::manifest,
        super::leak_trace::trace,
        super::policy::show,
        super::policy::replace,
        super::share_applications::file,
        super::share_applications::list,
        super::share_applications::show,
        super::share_applications::assess,
        super::share_applications::decide,
        super::filings::file,
        super::filings::list,
        super::filings::show,
        super::filings::acknowledge,
        super::filings::usage_report,
        super::quality::open,
        super::quality::list,
        super::quality::show,
        super::quality::respond,
        super::quality::dispute,
        super::quality::resolve,
        super::feedback::submit,
        super::feedback::list,
        super::feedback::show,
        super::feedback::approval,
        super::feedback::apply,
        super::feedback::review,
        super::assessments::record,
        super::assessments::list,
    ),
    components(
        schemas(ErrorBody),
        responses(
            BadRequest, Forbidden, NotFound, Conflict, Gone, PayloadTooLarge, LedgerUnavailable
        )
    ),
    modifiers(&MutualTls),
    security(("mtls" = []))
)]
pub struct ApiDoc;

/// Adds the `mutualTLS` security scheme that `security` names.
struct MutualTls;

impl Modify for MutualTls {
    fn modify(&self, doc: &mut Document) {
        let scheme = SecurityScheme::MutualTls {
            description: Some(
                "A client certificate chaining to the configured CA, whose URI SAN \
                spiffe://<trust-domain>/<role>/<org>/<person> names the caller's role"
                    .into(),
            ),
            extensions: None,
        };
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(SECURITY_SCHEME, scheme);
    }
}

/// `GET /v1/openapi.json`: the [`document`].
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    operation_id = "openapi",
    tag = "health",
    summary = "This document",
    responses(
        (status = 200, description = "The OpenAPI document", body = Object),
        ReadErrors,
    )
)]
pub async fn openapi(State(_): State<Arc<AppState>>) -> Json<Document> {
    Json(document())
}

/// The document: [`ApiDoc`] with this crate's info and, on every
/// operation, the roles [`RULES`] allows as `x-roles`.
pub fn document() -> Document {
    let mut doc = ApiDoc::openapi();
    doc.info = InfoBuilder::new()
        .title("zonevault")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(DESCRIPTION))
        .license(doc.info.license.take())
        .build();
    for (method, path, roles) in RULES {
        let item = doc.paths.paths.get_mut(*path);
        if let Some(operation) = item.and_then(|item| operation_mut(item, method)) {
            let roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            let extensions = operation.extensions.get_or_insert_with(Default::default);
            extensions.insert("x-roles".into(), roles.into());
        }
    }
    doc
}

/// The operation of `item` for `method`, if it has one.
fn operation_mut<'a>(item: &'a mut PathItem, method: &Method) -> Option<&'a mut Operation> {
    let slot = match *method {
        Method::GET => &mut item.get,
        Method::PUT => &mut item.put,
        Method::POST => &mut item.post,
        Method::DELETE => &mut item.delete,
        Method::PATCH => &mut item.patch,
        Method::HEAD => &mut item.head,
        Method::OPTIONS => &mut item.options,
        Method::TRACE => &mut item.trace,
        _ => return None,
    };
    slot.as_mut()
}
