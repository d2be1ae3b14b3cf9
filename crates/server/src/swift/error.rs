//! Swift's errors: a status and a short plain-text body, as its proxy answers.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::backend::StoreError;
use crate::http::BodyError;

#[derive(Debug)]
pub struct SwiftError {
    code: StatusCode,
    message: String,
}

impl SwiftError {
    pub fn new(code: StatusCode, message: impl Into<String>) -> Self {
        SwiftError {
            code,
            message: message.into(),
        }
    }

    pub fn not_found() -> Self {
        SwiftError::new(StatusCode::NOT_FOUND, "Not Found")
    }

    pub fn unauthorized() -> Self {
        SwiftError::new(StatusCode::UNAUTHORIZED, "Unauthorized")
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        SwiftError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<StoreError> for SwiftError {
    fn from(error: StoreError) -> Self {
        let code = match &error {
            StoreError::InvalidContinueToken(_) | StoreError::InvalidRequest(_) => {
                StatusCode::BAD_REQUEST
            }
            StoreError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            // A listing reads the newest revision; these mean the store is in trouble.
            StoreError::Expired { .. }
            | StoreError::FutureRevision { .. }
            | StoreError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        SwiftError::new(code, error.to_string())
    }
}

impl From<BodyError> for SwiftError {
    fn from(error: BodyError) -> Self {
        match error {
            BodyError::TooLarge { limit } => SwiftError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("objects are limited to {limit} bytes"),
            ),
            BodyError::Failed(reason) => SwiftError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!("the request body could not be read: {reason}"),
            ),
        }
    }
}

impl IntoResponse for SwiftError {
    fn into_response(self) -> Response {
        let mut body = self.message;
        body.push('\n');
        (
            self.code,
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            )],
            body,
        )
            .into_response()
    }
}
