//! The error responses the handlers' `#[utoipa::path]` annotations refer to
//! (`response = Forbidden`, …), and [`ErrorBody`], the schema of the JSON
//! body that [`crate::error::ApiError`] renders. Each response is one entry
//! of `components.responses`; a test renders every `ApiError` variant and
//! checks it against the schema in the document, so the schema cannot drift
//! from the wire format.

use utoipa::openapi::{Content, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{ToResponse, ToSchema};

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

macro_rules! error_responses {
    ($($name:ident: $description:literal;)*) => {$(
        #[doc = $description]
        pub struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($name), error_response($description))
            }
        }
    )*};
}

error_responses! {
    BadRequest: "Invalid input; the body names the field and the problem";
    Forbidden: "The caller's role or identity is not allowed to do this";
    NotFound: "No such resource, or one the caller may not see";
    Conflict: "The request conflicts with the current state";
    Gone: "The dataset was destroyed; the body names the destruction certificate";
    PayloadTooLarge: "The request body exceeds the limit";
    LedgerUnavailable: "The audit ledger is unavailable; no data was released";
}
