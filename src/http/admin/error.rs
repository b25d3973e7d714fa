//! The admin API's one error shape, `{"error": {"code", "message",
//! "field"}}`, and the JSON body extractor that produces it for bad input.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;
use utoipa::ToSchema;

use crate::catalog::StoreError;

/// The body of every admin error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// One error: a stable code, a message for people, and the culprit field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `invalid`, `malformed_json`, `not_found`,
    /// `unauthorized`, `conflict`, `unknown_reference`, `too_large`,
    /// `bad_body`, `method_not_allowed`, `corrupt_entity`, `unavailable`,
    /// `invalid_transition`, `not_yet_shipped`, `nothing_owed`,
    /// `already_paid`, `internal`.
    pub code: String,
    /// What was wrong, lower-case.
    pub message: String,
    /// The JSON field, query parameter or path segment at fault, if one is.
    pub field: Option<String>,
}

/// An error answer of the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// A 4xx (bad request) or 5xx (this node cannot serve it now).
    pub status: StatusCode,
    /// The body.
    pub detail: ErrorDetail,
}

impl ApiError {
    /// An error with `status`, `code` and `message`, naming `field`.
    pub fn new(
        status: StatusCode,
        code: &str,
        message: impl Into<String>,
        field: Option<&str>,
    ) -> ApiError {
        ApiError {
            status,
            detail: ErrorDetail {
                code: code.to_string(),
                message: message.into(),
                field: field.map(str::to_string),
            },
        }
    }

    /// `400 invalid`, naming `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid", message, Some(field))
    }

    /// `404 not_found`.
    pub fn not_found(message: impl Into<String>, field: Option<&str>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message, field)
    }

    /// `401 unauthorized`.
    pub fn unauthorized(message: &str) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message, None)
    }

    /// `503 unavailable`.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            message,
            None,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let unauthorized = self.status == StatusCode::UNAUTHORIZED;
        let mut r = (self.status, Json(ErrorBody { error: self.detail })).into_response();
        if unauthorized {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let msg = e.to_string();
        match e {
            StoreError::Unavailable(_) => ApiError::unavailable(msg),
            StoreError::NotFound(_) => ApiError::not_found(msg, None),
            StoreError::Invalid(f) => ApiError::invalid(&f.field, f.message),
            StoreError::UnknownReference(f) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_reference",
                f.message,
                Some(&f.field),
            ),
            StoreError::Conflict(f) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", f.message, Some(&f.field))
            }
            StoreError::Move(_) => ApiError::new(
                StatusCode::CONFLICT,
                "invalid_transition",
                msg,
                Some("status"),
            ),
            // Not the caller's fault, and not passing: the message names the
            // key an operator must repair.
            StoreError::Corrupt { .. } => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "corrupt_entity",
                msg,
                None,
            ),
        }
    }
}

/// A JSON request body, parsed into `T`. Unlike axum's `Json` it takes any
/// content type (`curl -d` sends a form type), and its errors are the API's
/// shape, naming the offending field; the size limit is the router's
/// `DefaultBodyLimit` (`http.max_body_bytes`), answered `413`.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let body = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    "request body is larger than the limit (http.max_body_bytes)",
                    None,
                )
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    format!("could not read the body: {}", e.body_text()),
                    None,
                )
            }
        })?;
        parse(&body).map(ApiJson)
    }
}

/// Parses a JSON body, naming the offending field on error.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", message, None);
        }
        let field = if path != "." && path != "?" && !path.is_empty() {
            Some(path)
        } else {
            // "missing field `name`" and "unknown field `x`" name the field
            // only in the message.
            message
                .split('`')
                .nth(1)
                .filter(|_| message.contains("field `"))
                .map(str::to_string)
        };
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            message,
            field.as_deref(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NewPartner;

    fn check(body: &str, expected: (&str, Option<&str>)) {
        let e = parse::<NewPartner>(body.as_bytes()).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            (e.detail.code.as_str(), e.detail.field.as_deref()),
            expected,
            "{body}"
        );
    }

    #[test]
    fn json_errors_name_the_field() {
        check("{", ("malformed_json", None));
        check("not json", ("malformed_json", None));
        check(r#"{"kind":"affiliate"}"#, ("invalid", Some("name")));
        check(r#"{"name":"a","kind":"vendor"}"#, ("invalid", Some("kind")));
        check(
            r#"{"name":"a","kind":"affiliate","extra":1}"#,
            ("invalid", Some("extra")),
        );
        check(
            r#"{"name":5,"kind":"affiliate"}"#,
            ("invalid", Some("name")),
        );
    }
}
