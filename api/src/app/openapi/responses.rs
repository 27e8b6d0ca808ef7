//! The error responses of the API, each one entry of `components.responses`
//! with the status it is always sent with ([`Forbidden`], …); the sets of
//! them that the handlers' `#[utoipa::path]` annotations list after their
//! success response ([`LookupErrors`], …), one set for each kind of
//! operation; and [`ErrorBody`], the schema of the JSON body that
//! [`crate::error::ApiError`] renders. A test renders every `ApiError`
//! variant and checks it against the schema in the document, so the schema
//! cannot drift from the wire format.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use utoipa::openapi::{Content, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{IntoResponses, ToResponse, ToSchema};

/// The JSON body of every error response (`crate::error::ApiError`). Only
/// `field` and `problem` describe the caller's own request; a few
/// refusals add fields of their own (a refused `column`, an exhausted
/// ε budget's `reason`, an import's row `errors`). Absent fields are
/// omitted, never `null`.
#[derive(ToSchema)]
#[allow(dead_code)] // a schema only: `ApiError` renders the body
pub struct ErrorBody {
    /// The fixed machine-readable code of the refusal.
    error: ErrorCode,
    /// The fixed public message of that code.
    message: String,
    /// The request field at fault (400 and some 403s).
    #[schema(nullable = false)]
    field: Option<String>,
    /// What is wrong with that field, for the caller.
    #[schema(nullable = false)]
    problem: Option<String>,
    /// The destruction certificate of a destroyed dataset (410).
    #[schema(nullable = false)]
    certificate: Option<String>,
    /// The zone in its exit procedure (409 `zone_exiting`).
    #[schema(nullable = false)]
    zone: Option<String>,
}

/// The codes of [`crate::error::ApiError::code`].
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // a schema only
pub enum ErrorCode {
    /// 401.
    Unauthenticated,
    /// 403.
    Forbidden,
    /// 404.
    NotFound,
    /// 400.
    BadRequest,
    /// 413.
    PayloadTooLarge,
    /// 409.
    Conflict,
    /// 410.
    Gone,
    /// 409: the dataset's retention has ended.
    DueForDestruction,
    /// 409: the zone is in its exit procedure.
    ZoneExiting,
    /// 403: the operator's authorization was terminated.
    AuthorizationTerminated,
    /// 503.
    LedgerUnavailable,
    /// 500.
    Internal,
}

/// A response whose body is an [`ErrorBody`].
fn error_response(description: &str) -> RefOr<Response> {
    let schema = Ref::from_schema_name("ErrorBody");
    ResponseBuilder::new()
        .description(description)
        .content("application/json", Content::new(Some(schema)))
        .build()
        .into()
}

/// An error response of `components.responses`, always sent with [`Self::STATUS`].
pub trait ErrorResponse: for<'r> ToResponse<'r> {
    /// The status the response is sent with.
    const STATUS: StatusCode;
}

macro_rules! error_responses {
    ($($name:ident = $status:ident: $description:literal;)*) => {$(
        #[doc = $description]
        pub struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($name), error_response($description))
            }
        }

        impl ErrorResponse for $name {
            const STATUS: StatusCode = StatusCode::$status;
        }
    )*};
}

error_responses! {
    BadRequest = BAD_REQUEST: "Invalid input; the body names the field and the problem";
    Forbidden = FORBIDDEN: "The caller's role or identity is not allowed to do this";
    NotFound = NOT_FOUND: "No such resource, or one the caller may not see";
    Conflict = CONFLICT: "The request conflicts with the current state";
    Gone = GONE: "The dataset was destroyed; the body names the destruction certificate";
    PayloadTooLarge = PAYLOAD_TOO_LARGE: "The request body exceeds the limit";
    LedgerUnavailable = SERVICE_UNAVAILABLE:
        "The audit ledger is unavailable; no data was released";
}

/// `R` under its status, as a `$ref` to its `components.responses` entry:
/// what `(status = …, response = R)` in `#[utoipa::path]` writes.
fn entry<R: ErrorResponse>() -> (String, RefOr<Response>) {
    let (name, _) = R::response();
    let status = R::STATUS.as_str().to_owned();
    (status, Ref::from_response_name(name).into())
}

macro_rules! error_sets {
    ($($(#[$doc:meta])+ $name:ident: $($response:ident),+;)*) => {$(
        $(#[$doc])+
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                BTreeMap::from([$(entry::<$response>()),+])
            }
        }
    )*};
}

// Every operation may be refused for the caller's role (403) and answers
// 503 when the ledger cannot record it, so every set has both.
error_sets! {
    /// The errors of a read that takes no input.
    ReadErrors: Forbidden, LedgerUnavailable;
    /// The errors of a read whose query parameters are checked (400).
    QueryErrors: BadRequest, Forbidden, LedgerUnavailable;
    /// The errors of an operation without a body on one resource named in
    /// its path: a malformed id (400), an unknown one or one the caller may
    /// not see (404).
    LookupErrors: BadRequest, Forbidden, NotFound, LedgerUnavailable;
    /// [`LookupErrors`] and 410: those of a read of a dataset, which may have
    /// been destroyed.
    DatasetLookupErrors: BadRequest, Forbidden, NotFound, Gone, LedgerUnavailable;
    /// The errors of a request whose body is checked (400, 413) and names no
    /// stored resource.
    BodyErrors: BadRequest, Forbidden, PayloadTooLarge, LedgerUnavailable;
    /// [`BodyErrors`] and 404: those of a request about resources that must
    /// exist.
    BodyLookupErrors: BadRequest, Forbidden, NotFound, PayloadTooLarge, LedgerUnavailable;
    /// [`BodyErrors`] and 409: those of a creation whose key may be taken.
    CreateErrors: BadRequest, Forbidden, Conflict, PayloadTooLarge, LedgerUnavailable;
    /// [`BodyErrors`], 404 and 409: those of a request acting on resources
    /// that must exist and be in a state that allows it.
    StateChangeErrors:
        BadRequest, Forbidden, NotFound, Conflict, PayloadTooLarge, LedgerUnavailable;
    /// [`StateChangeErrors`] and 410: those of a request using a dataset's
    /// data, which may have been destroyed.
    DatasetUseErrors:
        BadRequest, Forbidden, NotFound, Conflict, Gone, PayloadTooLarge, LedgerUnavailable;
}
