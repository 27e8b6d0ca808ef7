//! The one error type every handler returns.
//!
//! Each [`ApiError`] variant maps to a fixed HTTP status and a fixed public
//! message. Internal detail (why access was denied, which I/O call failed)
//! goes to `tracing` and, through [`ApiError::detail`], to the audit ledger;
//! it never reaches the response body. The only caller-visible specifics are
//! those of [`ApiError::BadRequest`], which describe the caller's own input.

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::authz::DenyReason;
use crate::identity::IdentityError;

/// An error answered to an API caller.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No usable client certificate reached the handler (401).
    #[error("unauthenticated")]
    Unauthenticated,
    /// The caller is known but not allowed (403). `reason` is internal.
    #[error("forbidden: {reason}")]
    Forbidden {
        /// Why, for the log and the ledger only.
        reason: String,
    },
    /// No such resource or route (404).
    #[error("not found")]
    NotFound,
    /// The caller's input is wrong (400); `field` and `problem` are public.
    #[error("bad request: {field}: {problem}")]
    BadRequest {
        /// The offending field, e.g. `tree_size`.
        field: String,
        /// What is wrong with it, in words meant for the caller.
        problem: String,
    },
    /// The request body exceeds the limit (413).
    #[error("payload too large")]
    PayloadTooLarge,
    /// The request conflicts with the current state (409). `reason` is internal.
    #[error("conflict: {reason}")]
    Conflict {
        /// Why, for the log and the ledger only.
        reason: String,
    },
    /// The dataset was destroyed (410). The certificate id is public: it
    /// names the signed record of the destruction, nothing sensitive.
    #[error("gone: destroyed, certificate {}", certificate.as_deref().unwrap_or("pending"))]
    Gone {
        /// The destruction certificate's id.
        certificate: Option<String>,
    },
    /// The dataset's retention has ended; it awaits destruction (409).
    #[error("dataset {dataset} is due for destruction")]
    DueForDestruction {
        /// The dataset, for the log and the ledger.
        dataset: String,
    },
    /// The zone is in its exit procedure (or has exited): nothing new may
    /// enter or leave it (409). The zone id is public: the caller named it.
    #[error("zone {zone} is {state} (exit procedure)")]
    ZoneExiting {
        /// The zone.
        zone: String,
        /// `exiting` or `exited`.
        state: String,
    },
    /// The operator's operating authorization was terminated after two
    /// consecutive poor assessments: no grant or extract in its zones (403).
    #[error("the operating authorization of {operator} was terminated by assessment {assessment}")]
    AuthorizationTerminated {
        /// The operator organization.
        operator: String,
        /// The assessment that terminated it.
        assessment: String,
    },
    /// The audit ledger could not record the request, so no data is
    /// released (503). `detail` is internal.
    #[error("ledger unavailable: {detail}")]
    LedgerUnavailable {
        /// What failed, for the log only.
        detail: String,
    },
    /// Anything else (500). `detail` is internal.
    #[error("internal error: {detail}")]
    Internal {
        /// What failed, for the log only.
        detail: String,
    },
}

/// The JSON body of every error response.
#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    error: &'static str,
    message: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    zone: Option<&'a str>,
}

impl ApiError {
    /// A 500 carrying internal detail for the log.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        ApiError::Internal {
            detail: detail.to_string(),
        }
    }

    /// A 503 because the ledger could not be written.
    pub fn ledger_unavailable(detail: impl std::fmt::Display) -> Self {
        ApiError::LedgerUnavailable {
            detail: detail.to_string(),
        }
    }

    /// A 400 naming the caller's field and what is wrong with it.
    pub fn bad_request(field: impl Into<String>, problem: impl Into<String>) -> Self {
        ApiError::BadRequest {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// The fixed HTTP status of this variant.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Gone { .. } => StatusCode::GONE,
            ApiError::DueForDestruction { .. } => StatusCode::CONFLICT,
            ApiError::ZoneExiting { .. } => StatusCode::CONFLICT,
            ApiError::AuthorizationTerminated { .. } => StatusCode::FORBIDDEN,
            ApiError::LedgerUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The fixed machine-readable code of this variant.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::NotFound => "not_found",
            ApiError::BadRequest { .. } => "bad_request",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::Conflict { .. } => "conflict",
            ApiError::Gone { .. } => "gone",
            ApiError::DueForDestruction { .. } => "due_for_destruction",
            ApiError::ZoneExiting { .. } => "zone_exiting",
            ApiError::AuthorizationTerminated { .. } => "authorization_terminated",
            ApiError::LedgerUnavailable { .. } => "ledger_unavailable",
            ApiError::Internal { .. } => "internal",
        }
    }

    /// The fixed public message of this variant.
    pub fn public_message(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated => "a valid client certificate is required",
            ApiError::Forbidden { .. } => "the caller is not allowed to do this",
            ApiError::NotFound => "no such resource",
            ApiError::BadRequest { .. } => "the request is invalid",
            ApiError::PayloadTooLarge => "the request body is too large",
            ApiError::Conflict { .. } => "the request conflicts with the current state",
            ApiError::Gone { .. } => {
                "the dataset was destroyed; the destruction certificate records how"
            }
            ApiError::DueForDestruction { .. } => {
                "the dataset's retention has ended; it awaits destruction"
            }
            ApiError::ZoneExiting { .. } => {
                "the zone is in its exit procedure; its data can no longer be used"
            }
            ApiError::AuthorizationTerminated { .. } => {
                "the operating authorization was terminated after two consecutive poor assessments"
            }
            ApiError::LedgerUnavailable { .. } => {
                "the audit ledger is unavailable; no data was released"
            }
            ApiError::Internal { .. } => "internal error",
        }
    }

    /// The full internal description, for the log and the audit ledger.
    pub fn detail(&self) -> String {
        self.to_string()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(code = self.code(), detail = %self, "request failed");
        } else {
            tracing::info!(code = self.code(), detail = %self, "request refused");
        }
        let (field, problem) = match &self {
            ApiError::BadRequest { field, problem } => {
                (Some(field.as_str()), Some(problem.as_str()))
            }
            _ => (None, None),
        };
        let body = ErrorBody {
            error: self.code(),
            message: self.public_message(),
            field,
            problem,
            certificate: match &self {
                ApiError::Gone { certificate } => certificate.as_deref(),
                _ => None,
            },
            zone: match &self {
                ApiError::ZoneExiting { zone, .. } => Some(zone.as_str()),
                _ => None,
            },
        };
        let mut response = (status, Json(body)).into_response();
        response
            .extensions_mut()
            .insert(crate::app::audit::AuditReason(self.detail()));
        response
    }
}

/// Maps axum's JSON extractor rejection: an oversized body is 413, anything
/// else is a 400 naming what the caller sent wrong.
pub fn json_rejection(rejection: JsonRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::PayloadTooLarge;
    }
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::bad_request("content-type", "must be application/json")
        }
        JsonRejection::JsonDataError(e) => ApiError::bad_request("body", e.body_text()),
        JsonRejection::JsonSyntaxError(e) => ApiError::bad_request("body", e.body_text()),
        other => ApiError::bad_request("body", format!("could not be read ({})", other.status())),
    }
}

impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> Self {
        ApiError::Forbidden {
            reason: e.to_string(),
        }
    }
}

impl From<DenyReason> for ApiError {
    fn from(r: DenyReason) -> Self {
        ApiError::Forbidden {
            reason: r.to_string(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn render(e: ApiError) -> (StatusCode, serde_json::Value, String) {
        let resp = e.into_response();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        (status, serde_json::from_str(&text).unwrap(), text)
    }

    const SECRET: &str = "sk_live_5f3c9a0d key=/data/sealed/master.blob";

    #[tokio::test]
    async fn internal_detail_never_reaches_the_body() {
        let cases = [
            ApiError::Forbidden {
                reason: SECRET.into(),
            },
            ApiError::Conflict {
                reason: SECRET.into(),
            },
            ApiError::ledger_unavailable(SECRET),
            ApiError::internal(SECRET),
        ];
        for e in cases {
            let expected_status = e.status();
            let (status, json, text) = render(e).await;
            assert_eq!(status, expected_status);
            assert!(!text.contains("sk_live"), "{text}");
            assert!(!text.contains("master.blob"), "{text}");
            assert!(json.get("field").is_none());
        }
    }

    #[tokio::test]
    async fn statuses_and_codes_are_fixed() {
        let (s, json, _) = render(ApiError::Unauthenticated).await;
        assert_eq!(
            (s, json["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("unauthenticated"))
        );
        let (s, _, _) = render(ApiError::NotFound).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _, _) = render(ApiError::PayloadTooLarge).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
        let (s, json, _) = render(ApiError::ledger_unavailable("disk full")).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            json["message"],
            "the audit ledger is unavailable; no data was released"
        );
    }

    #[tokio::test]
    async fn gone_names_the_certificate_and_due_is_a_conflict() {
        let gone = ApiError::Gone {
            certificate: Some("dc-0123".into()),
        };
        let (s, json, _) = render(gone).await;
        assert_eq!(
            (s, json["error"].as_str()),
            (StatusCode::GONE, Some("gone"))
        );
        assert_eq!(json["certificate"], "dc-0123");
        let due = ApiError::DueForDestruction {
            dataset: "loans".into(),
        };
        let (s, json, _) = render(due).await;
        assert_eq!(s, StatusCode::CONFLICT);
        assert_eq!(json["error"], "due_for_destruction");
        assert!(json.get("certificate").is_none());
    }

    #[tokio::test]
    async fn bad_request_names_field_and_problem() {
        let (s, json, _) = render(ApiError::bad_request("tree_size", "must be >= index + 1")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(json["field"], "tree_size");
        assert_eq!(json["problem"], "must be >= index + 1");
        assert_eq!(json["error"], "bad_request");
    }

    #[tokio::test]
    async fn json_rejections_name_the_body() {
        use axum::extract::FromRequest;
        #[derive(serde::Deserialize, Debug)]
        struct Req {
            #[allow(dead_code)]
            value: String,
        }
        let req = axum::http::Request::builder()
            .method("POST")
            .header("content-type", "application/json")
            .body(axum::body::Body::from("{\"valu\": 1}"))
            .unwrap();
        let rejection = Json::<Req>::from_request(req, &()).await.unwrap_err();
        let (s, json, _) = render(json_rejection(rejection)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(json["field"], "body");
        assert!(
            json["problem"].as_str().unwrap().contains("value"),
            "{json}"
        );
        let req = axum::http::Request::builder()
            .method("POST")
            .body(axum::body::Body::from("{}"))
            .unwrap();
        let rejection = Json::<Req>::from_request(req, &()).await.unwrap_err();
        let (_, json, _) = render(json_rejection(rejection)).await;
        assert_eq!(json["field"], "content-type");
    }

    #[test]
    fn identity_errors_become_403_with_internal_reason() {
        let e = ApiError::from(IdentityError::NoUriSan);
        assert_eq!(e.status(), StatusCode::FORBIDDEN);
        assert!(e.detail().contains("no URI SAN"));
    }
}
