//! The one error type. Every failure a client can see is one of these variants; [`Error::code`]
//! and [`Error::status`] are the single place that maps them to the protocol codes and HTTP
//! statuses of PROTOCOL.md §4, and [`ErrorBody`] is the one rendering, shared by REST answers
//! (`{"error": {...}}`) and WebSocket `error` frames (`"data": {...}`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A write to an archived conversation, which is read-only until restored.
    #[error("{0}")]
    Archived(String),
    /// A byte range past the end of a file of `size` bytes.
    #[error("the range asked for is not within the file's {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    /// An upload would take its uploader over PARLEY_ATTACHMENT_QUOTA_BYTES.
    #[error("{0}")]
    QuotaExceeded(String),
    /// A file of a type not accepted (decided from its bytes).
    #[error("{0}")]
    UnsupportedType(String),
    #[error("too many requests: retry in {retry_after_ms} ms")]
    RateLimited { retry_after_ms: u64 },
    /// A dependency (the database, a busy actor) cannot serve now; retrying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// A send shed because it would have waited longer than `PARLEY_SEND_DEADLINE_MS` to commit:
    /// it was not stored, and the client may send it again with the same `client_id`.
    #[error("the server is overloaded: retry with the same client_id")]
    Overloaded,
    /// The actor that was to handle a request stopped before it did (it retired, or restarts
    /// after a fault); nothing was done, and the request may be sent again.
    #[error("the conversation restarted: try again")]
    ActorStopped,
    /// A bug or an unexpected state. The detail is logged, never sent to the client.
    #[error("internal error")]
    Internal(String),
}

impl Error {
    /// The protocol code (PROTOCOL.md §4): for programs.
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "bad_request",
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::Archived(_) => "archived",
            Error::PayloadTooLarge(_) => "payload_too_large",
            Error::QuotaExceeded(_) => "quota_exceeded",
            Error::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            Error::UnsupportedType(_) => "unsupported_type",
            Error::RateLimited { .. } => "rate_limited",
            Error::Unavailable(_) | Error::Overloaded | Error::ActorStopped => "unavailable",
            Error::Internal(_) => "internal",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) | Error::Archived(_) => StatusCode::CONFLICT,
            Error::PayloadTooLarge(_) | Error::QuotaExceeded(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Unavailable(_) | Error::Overloaded | Error::ActorStopped => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The same 404 for "does not exist" and "not yours" (PROTOCOL.md §2), so that probing ids
    /// tells an outsider nothing.
    pub fn no_conversation() -> Self {
        Error::NotFound("no such conversation".into())
    }

    /// The conversation is archived: read-only until it is restored.
    pub fn archived() -> Self {
        Error::Archived("the conversation is archived".into())
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Error::BadRequest(message.into())
    }

    /// The database cannot be reached (connection lost, pool exhausted), or could not be read.
    pub fn database_unavailable() -> Self {
        Error::Unavailable("the database is unavailable".into())
    }

    /// The node's Presence actor did not answer: it is being restarted.
    pub fn presence_restarting() -> Self {
        Error::Unavailable("presence is restarting".into())
    }

    /// The error as a client sees it; also counts it by code and logs an internal one (its
    /// detail stays in the log). REST answers and WebSocket error frames both come here.
    pub fn report(&self) -> ErrorBody {
        if let Error::Internal(detail) = self {
            log::error!("internal error: {detail}");
        }
        metrics::counter!(crate::metrics::ERRORS, "code" => self.code()).increment(1);
        self.body()
    }

    fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code(),
            message: self.to_string(),
            retry_after_ms: match self {
                Error::RateLimited { retry_after_ms } => Some(*retry_after_ms),
                _ => None,
            },
        }
    }
}

/// `{code, message, retry_after_ms?}`: the `error` object of REST and the `data` of an `error` frame.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

#[derive(Serialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status());
        match self {
            Error::RateLimited { retry_after_ms } => {
                response.insert_header(("Retry-After", retry_after_ms.div_ceil(1000).to_string()));
            }
            Error::RangeNotSatisfiable { size } => {
                response.insert_header(("Content-Range", format!("bytes */{size}")));
            }
            _ => {}
        }
        response.json(ErrorEnvelope { error: self.report() })
    }
}

impl From<diesel::result::Error> for Error {
    fn from(err: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error as D};
        match &err {
            D::NotFound => Error::NotFound("not found".into()),
            D::DatabaseError(DatabaseErrorKind::ClosedConnection, _)
            | D::DatabaseError(DatabaseErrorKind::UnableToSendCommand, _) => {
                log::warn!("database connection lost: {err}");
                Error::database_unavailable()
            }
            // SQLite's writer lock still held after the busy timeout: too busy, not broken.
            D::DatabaseError(_, info) if info.message().contains("database is locked") => {
                log::warn!("database busy: {err}");
                Error::Unavailable("the database is busy: retry shortly".into())
            }
            _ => Error::Internal(format!("database: {err}")),
        }
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for Error {
    fn from(err: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        log::warn!("database pool: {err}");
        Error::database_unavailable()
    }
}
