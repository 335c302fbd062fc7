//! The crate's error type and its one mapping to an HTTP status and a JSON body.
//!
//! Outcomes of deliveries (a receiver's 500, a timeout) are data, not errors:
//! they live in [`crate::event::Attempt`]. This type is for faults of our own
//! and for requests we refuse.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    TooLarge(String),
    /// Too many wrong admin tokens from one address.
    #[error("{0}")]
    TooManyGuesses(String),
    /// A request relayed by this very process came back to it (`Via`).
    #[error("{0}")]
    Loop(String),
    #[error("store error: {0}")]
    Store(#[from] rocksdb::Error),
    /// The store is up but cannot make a write durable now.
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::TooManyGuesses(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::Loop(_) => StatusCode::LOOP_DETECTED,
            // A store that cannot write (disk full, I/O error) must never turn
            // into a success; 503 tells senders to come back later.
            Error::Store(_) | Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message shown to the caller. Internal detail is logged, not echoed.
    pub fn public_message(&self) -> String {
        match self {
            Error::Store(_) => {
                "storage unavailable (the disk is full or failing): nothing was stored".to_string()
            }
            Error::Internal(_) => "internal error".to_string(),
            other => other.to_string(),
        }
    }

    /// The JSON body `{"error": "..."}` every error response carries.
    pub fn body(&self) -> String {
        serde_json::json!({ "error": self.public_message() }).to_string()
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if matches!(self, Error::Store(_) | Error::Internal(_)) {
            tracing::error!(error = %self, "request failed");
        }
        (
            self.status(),
            Json(serde_json::json!({ "error": self.public_message() })),
        )
            .into_response()
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(e: tokio::task::JoinError) -> Self {
        Error::Internal(e.to_string())
    }
}
