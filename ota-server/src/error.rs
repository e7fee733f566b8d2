//! The API's one error shape: `{"code": "INVALID_ARGUMENT", "message": "..."}` with the
//! matching HTTP status. The message names the field.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ota_core::Status;
use serde::Serialize;

/// A status code of the API, after gRPC's canonical codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Code {
    /// The request is malformed or names a bad value.
    InvalidArgument,
    /// No or bad credentials.
    Unauthenticated,
    /// The caller may not do this.
    PermissionDenied,
    /// The thing is not there (or belongs to another tenant).
    NotFound,
    /// It exists already.
    AlreadyExists,
    /// The state does not allow it.
    FailedPrecondition,
    /// The body is too large, or a limit is reached.
    ResourceExhausted,
    /// Not built yet.
    Unimplemented,
    /// The database or the store failed.
    Unavailable,
    /// A bug.
    Internal,
}

impl Code {
    /// The HTTP status of the code.
    pub fn http(self) -> StatusCode {
        match self {
            Code::InvalidArgument => StatusCode::BAD_REQUEST,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::AlreadyExists => StatusCode::CONFLICT,
            Code::FailedPrecondition => StatusCode::CONFLICT,
            Code::ResourceExhausted => StatusCode::PAYLOAD_TOO_LARGE,
            Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The code of a library status.
    pub fn of(status: Status) -> Code {
        match status {
            Status::PermissionDenied => Code::PermissionDenied,
            Status::PackageNotFound | Status::RolloutNotFound => Code::NotFound,
            Status::PackageNotAvailable
            | Status::RolloutState
            | Status::WrongState
            | Status::NotCompatible
            | Status::AlreadyInstalled => Code::FailedPrecondition,
            Status::TooLarge => Code::ResourceExhausted,
            Status::Io | Status::Panic | Status::AuditBroken | Status::ReplayMismatch => {
                Code::Internal
            }
            _ => Code::InvalidArgument,
        }
    }
}

/// An API error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    /// The code.
    pub code: Code,
    /// One line, naming the field.
    pub message: String,
}

impl ApiError {
    /// An error with this code and message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }

    /// `INVALID_ARGUMENT`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }

    /// `NOT_FOUND`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    /// `PERMISSION_DENIED`.
    pub fn denied(message: impl Into<String>) -> Self {
        Self::new(Code::PermissionDenied, message)
    }

    /// `FAILED_PRECONDITION`.
    pub fn precondition(message: impl Into<String>) -> Self {
        Self::new(Code::FailedPrecondition, message)
    }

    /// `UNAUTHENTICATED`.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(Code::Unauthenticated, message)
    }

    /// `INTERNAL`, logged.
    pub fn internal(message: impl Into<String>) -> Self {
        let message = message.into();
        tracing::error!(%message, "internal error");
        Self::new(Code::Internal, message)
    }

    /// A library error with its status, the message prefixed by the field it concerns.
    pub fn from_status(status: Status, field: &str, e: impl std::fmt::Display) -> Self {
        let message = if field.is_empty() {
            e.to_string()
        } else {
            format!("{field}: {e}")
        };
        Self::new(Code::of(status), message)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "database error");
        ApiError::new(Code::Unavailable, format!("database: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.code.http(), axum::Json(self)).into_response()
    }
}

/// What handlers return.
pub type ApiResult<T> = Result<T, ApiError>;
