//! The web crate's error type, and how handler errors become responses:
//! JSON `{"error": {"status", "message"}}` for the API, an HTML page for the
//! UI. Internal failures (database, I/O) are logged with their detail and
//! shown to users as a plain "internal error", never with internals.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad configuration (bind address, missing token, busy port).
    #[error("{0}")]
    Config(String),
}

/// Result with the web crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failed request: a status and a message meant for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong, in words a user can act on.
    pub message: String,
}

impl Failure {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::NOT_FOUND, message)
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::BAD_REQUEST, message)
    }

    /// An internal failure: logged in full, shown without detail.
    pub(crate) fn internal(what: &str, e: &dyn std::fmt::Display) -> Failure {
        tracing::error!(error = %e, "{what}");
        Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error while {what}; the server log has the details"),
        )
    }
}

impl From<scheduler::Error> for Failure {
    fn from(e: scheduler::Error) -> Failure {
        use scheduler::Error as E;
        match &e {
            E::DagNotFound { .. } | E::RunNotFound { .. } | E::TaskNotFound { .. } => {
                Failure::not_found(e.to_string())
            }
            E::RunExists { .. } => Failure::new(StatusCode::CONFLICT, e.to_string()),
            E::InvalidConf { .. } | E::Invalid(_) | E::IllegalTransition(_) | E::InvalidDag(_) => {
                Failure::invalid(e.to_string())
            }
            E::Io { .. } | E::Database(_) | E::Migrate(_) => {
                Failure::internal("reading the metadata database", &e)
            }
        }
    }
}

/// An API error: rendered as JSON.
#[derive(Debug)]
pub(crate) struct ApiError(pub Failure);

impl From<Failure> for ApiError {
    fn from(e: Failure) -> ApiError {
        ApiError(e)
    }
}

impl From<scheduler::Error> for ApiError {
    fn from(e: scheduler::Error) -> ApiError {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let f = self.0;
        (
            f.status,
            Json(json!({"error": {"status": f.status.as_u16(), "message": f.message}})),
        )
            .into_response()
    }
}
