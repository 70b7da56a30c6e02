//! JSON request bodies, refused with the API's own errors ([`ApiError::ContentType`],
//! [`ApiError::MalformedJson`]) instead of axum's plain-text rejections, so the page always
//! gets `{"error", "message"}` back.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body of type `T`, sent as `application/json`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<ApiJson<T>, Response> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/json"));
        if !json {
            return Err(ApiError::ContentType.into_response());
        }
        // A body too large or unreadable keeps axum's own answer (413/400).
        let body = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        serde_json::from_slice(&body)
            .map(ApiJson)
            .map_err(|e| ApiError::from(e).into_response())
    }
}
