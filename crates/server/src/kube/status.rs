//! Errors as Kubernetes `Status` objects: the one place a failure becomes a code and a reason.
//!
//! Clients branch on `reason` (client-go's `IsResourceExpired` reads nothing else), and decode a
//! failure only when it is `kind: Status` with `status: Failure` and a JSON content type.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::backend::StoreError;
use crate::http::BodyError;

/// What the apiserver says when a continued list's revision has been compacted.
const EXPIRED_CONTINUE: &str = "The provided continue parameter is too old to display a \
    consistent list result. You can start a new list without the continue parameter, or use \
    the continue token in this response to retrieve the remainder of the results. Continuing \
    with the provided token results in an inconsistent list - objects that were created, \
    modified, or deleted between the time the first chunk was returned and now may show up in \
    the list.";

/// A failed Kubernetes request.
#[derive(Debug)]
pub struct ApiError {
    code: StatusCode,
    reason: &'static str,
    message: String,
    /// The inconsistent-continue token of an expired list.
    continue_token: Option<String>,
    details: Option<Value>,
    retry_after_seconds: Option<u64>,
}

impl ApiError {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            continue_token: None,
            details: None,
            retry_after_seconds: None,
        }
    }

    fn about(mut self, plural: &str, name: &str) -> Self {
        self.details = Some(json!({ "name": name, "kind": plural }));
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// An option combination the apiserver's validation refuses (`422 Invalid`).
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message)
    }

    /// A request option (a query parameter, or a field of a `DeleteOptions` body) with a value
    /// the apiserver's option validation refuses: 422 on the options kind of `meta.k8s.io`.
    pub fn unsupported_option(options: &str, field: &str, value: &str, supported: &str) -> Self {
        let cause = format!("Unsupported value: {value}: supported values: {supported}");
        let mut error = ApiError::invalid(format!(
            "{options}.meta.k8s.io \"\" is invalid: {field}: {cause}"
        ));
        error.details = Some(json!({
            "group": "meta.k8s.io",
            "kind": options,
            "causes": [{"reason": "FieldValueNotSupported", "message": cause, "field": field}],
        }));
        error
    }

    pub fn not_found(plural: &str, name: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{plural} \"{name}\" not found"),
        )
        .about(plural, name)
    }

    pub fn no_route(path: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    pub fn already_exists(plural: &str, name: &str) -> Self {
        ApiError::new(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{plural} \"{name}\" already exists"),
        )
        .about(plural, name)
    }

    pub fn conflict(plural: &str, name: &str) -> Self {
        ApiError::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {plural} \"{name}\": the object has been \
                 modified; please apply your changes to the latest version and try again"
            ),
        )
        .about(plural, name)
    }

    pub fn unauthorized() -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", message)
    }

    pub fn not_acceptable(accept: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "NotAcceptable",
            format!("only application/json and Table are served, not {accept:?}"),
        )
    }

    pub fn unsupported_media_type(content_type: &str, served: &str) -> Self {
        ApiError::undecodable(format!("the body must be {served}, not {content_type:?}"))
    }

    /// A body in a served media type that holds something this server does not decode.
    pub fn undecodable(message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            message,
        )
    }

    /// A resourceVersion the store has not reached: 504 `Timeout`, with the cause client-go's
    /// reflector looks for, and a hint to retry in a second.
    pub fn too_large_resource_version(requested: u64, current: u64) -> Self {
        let mut error = ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "Timeout",
            format!("Timeout: Too large resource version: {requested}, current: {current}"),
        );
        error.details = Some(json!({
            "causes": [{
                "reason": "ResourceVersionTooLarge",
                "message": "Too large resource version",
            }],
            "retryAfterSeconds": 1,
        }));
        error.retry_after_seconds = Some(1);
        error
    }

    pub fn request_timeout() -> Self {
        ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "Timeout",
            "Timeout: request did not complete within the allowed duration",
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }

    fn expired(message: &str, continue_token: Option<String>) -> Self {
        let mut error = ApiError::new(StatusCode::GONE, "Expired", message);
        error.continue_token = continue_token;
        error
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Expired {
                continue_token: Some(token),
                ..
            } => ApiError::expired(EXPIRED_CONTINUE, Some(token)),
            StoreError::Expired { .. } => ApiError::expired(
                "The resourceVersion for the provided list is too old.",
                None,
            ),
            StoreError::FutureRevision { requested, current } => {
                ApiError::too_large_resource_version(requested.get(), current.get())
            }
            StoreError::InvalidContinueToken(reason) => ApiError::bad_request(reason),
            StoreError::InvalidRequest(reason) => ApiError::invalid(reason),
            StoreError::TooLarge(reason) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                reason,
            ),
            StoreError::Unavailable(reason) => ApiError::internal(reason),
        }
    }
}

impl From<BodyError> for ApiError {
    fn from(error: BodyError) -> Self {
        match error {
            BodyError::TooLarge { limit } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                format!("Request entity too large: limit is {limit} bytes"),
            ),
            BodyError::Failed(reason) => {
                ApiError::bad_request(format!("the request body could not be read: {reason}"))
            }
        }
    }
}

impl ApiError {
    /// A watch whose start has been compacted: sent as an `ERROR` event, not as an HTTP error,
    /// because the Python client retries only on that path.
    pub fn expired_watch(requested: u64, compacted: u64) -> Self {
        ApiError::expired(
            &format!("too old resource version: {requested} ({compacted})"),
            None,
        )
    }

    /// The `Status` object of this error.
    pub fn status(&self) -> Value {
        let mut metadata = json!({});
        if let Some(token) = &self.continue_token {
            metadata["continue"] = Value::String(token.clone());
        }
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": metadata,
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.code.as_u16(),
            self.reason,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.code, axum::Json(self.status())).into_response();
        if let Some(seconds) = self.retry_after_seconds {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
