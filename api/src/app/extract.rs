//! Request extractors whose rejections are [`ApiError`]s, so a malformed
//! query or path answers with the same JSON error body, naming the field,
//! as every other refusal (axum's own rejections are plain text).

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A query string parsed into `T`; a bad one is a 400 naming the field.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection| ApiError::bad_request("query", problem(&rejection.body_text())))
    }
}

/// Path parameters parsed into `T`; a bad one is a 400 naming the field.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(|rejection| ApiError::bad_request("path", problem(&rejection.body_text())))
    }
}

/// axum's text minus its generic prefix, e.g. `start: invalid digit found in string`.
fn problem(text: &str) -> String {
    text.strip_prefix("Failed to deserialize query string: ")
        .or_else(|| text.strip_prefix("Invalid URL: "))
        .unwrap_or(text)
        .to_owned()
}
