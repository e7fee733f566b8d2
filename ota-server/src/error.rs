//! The API's one error shape: `{"code": "INVALID_ARGUMENT", "message": "..."}` with the
//! matching HTTP status. The message names the field.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ota_core::Status;
use serde::Serialize;

/// A status code of the API, after gRPC's canonical codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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
    /// A concurrent request wrote the same thing first: sending it again succeeds or says why
    /// not (409).
    Aborted,
    /// The state does not allow it.
    FailedPrecondition,
    /// The body is too large, or a limit is reached.
    ResourceExhausted,
    /// The request's body paused for longer than the server's read timeout (408).
    DeadlineExceeded,
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
            Code::Aborted => StatusCode::CONFLICT,
            Code::FailedPrecondition => StatusCode::CONFLICT,
            Code::ResourceExhausted => StatusCode::PAYLOAD_TOO_LARGE,
            Code::DeadlineExceeded => StatusCode::REQUEST_TIMEOUT,
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

/// An API error (the document's `Error`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error, utoipa::ToSchema)]
#[error("{code:?}: {message}")]
#[schema(as = Error)]
pub struct ApiError {
    /// `INVALID_ARGUMENT` (400), `UNAUTHENTICATED` (401), `PERMISSION_DENIED` (403),
    /// `NOT_FOUND` (404), `DEADLINE_EXCEEDED` (408: a body that paused past the read
    /// timeout), `ALREADY_EXISTS`, `ABORTED` (a concurrent request wrote the same row first:
    /// send it again) and `FAILED_PRECONDITION` (409), `RESOURCE_EXHAUSTED` (413),
    /// `INTERNAL` (500), `UNIMPLEMENTED` (501), `UNAVAILABLE` (503: the database, or another
    /// replica drives the rollout; send it again).
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
    /// A unique violation is two requests writing the same row at once (two first
    /// registrations of a device, two uploads of a package): the one that lost is `ABORTED`,
    /// and its retry finds the row the other wrote. Every other database error is
    /// `UNAVAILABLE`.
    fn from(e: sqlx::Error) -> Self {
        if let Some(d) = e.as_database_error().filter(|d| d.is_unique_violation()) {
            let what = d.constraint().or(d.table()).unwrap_or("a unique key");
            tracing::info!(error = %e, "concurrent write");
            return ApiError::new(
                Code::Aborted,
                format!(
                    "database: a concurrent request wrote the same row first ({what}); send the request again"
                ),
            );
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::{Connection, Executor};

    #[tokio::test]
    async fn a_unique_violation_is_aborted_and_other_database_errors_unavailable() {
        sqlx::any::install_default_drivers();
        let mut db = sqlx::AnyConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        db.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
            .await
            .unwrap();
        db.execute("INSERT INTO t (k) VALUES ('a')").await.unwrap();
        let e = ApiError::from(
            db.execute("INSERT INTO t (k) VALUES ('a')")
                .await
                .unwrap_err(),
        );
        assert_eq!(e.code, Code::Aborted, "{e}");
        assert_eq!(e.code.http(), StatusCode::CONFLICT);
        assert!(e.message.contains("send the request again"), "{e}");
        let e = ApiError::from(db.execute("SELECT * FROM missing").await.unwrap_err());
        assert_eq!(e.code, Code::Unavailable, "{e}");
    }
}
