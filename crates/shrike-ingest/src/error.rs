//! Why ingest refuses a request: each reason maps to the status Relay answers with, a
//! `{"detail": ...}` body, and (when the refusal is about the request's content or credentials)
//! the reason recorded in its `invalid` outcome.

use crate::quotas::Limited;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use shrike_bus::BusError;
use shrike_protocol::AuthError;
use shrike_protocol::checkin::CheckInError;
use shrike_protocol::encoding::EncodingError;
use shrike_protocol::envelope::EnvelopeError;

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The project id in the path is not a number.
    #[error("invalid project id")]
    BadProjectId,
    /// Credentials missing, malformed or conflicting.
    #[error("{0}")]
    Auth(#[from] AuthError),
    /// The key is unknown or disabled.
    #[error("unknown or disabled project key")]
    UnknownKey,
    /// The key belongs to another project.
    #[error("project key does not belong to project {0}")]
    ProjectMismatch(u64),
    /// Too many requests from this address failed authentication lately.
    #[error("too many failed authentication attempts")]
    TooManyAuthFailures,
    /// The key is not in the cache and the store cannot be asked now.
    #[error("project keys cannot be loaded right now")]
    KeysUnavailable,
    /// The body is larger than allowed.
    #[error("request body exceeds {0} bytes")]
    BodyTooLarge(usize),
    /// The body could not be read (the client went away mid-body).
    #[error("cannot read the request body")]
    Payload,
    /// The body could not be decompressed.
    #[error("{0}")]
    Body(#[from] EncodingError),
    /// Every request's share of memory is taken; retry shortly.
    #[error("too busy to take this request now")]
    Busy,
    /// The request needs more memory than all requests together may hold.
    #[error("the request needs more memory than ingest.request_memory_mib ({0} MiB) allows")]
    OverBudget(usize),
    /// The envelope is malformed.
    #[error("invalid envelope: {0}")]
    Envelope(#[from] EnvelopeError),
    /// An event payload is not a JSON object.
    #[error("invalid event payload: {0}")]
    Event(String),
    /// An envelope carries more than one event (Sentry allows one per envelope).
    #[error("envelope contains more than one event item")]
    DuplicateEvent,
    /// A check-in is malformed.
    #[error("{0}")]
    CheckIn(#[from] CheckInError),
    /// An attachment is larger than allowed.
    #[error("attachment exceeds {0} bytes")]
    AttachmentTooLarge(usize),
    /// Attachments without an event id in the envelope header cannot be stored.
    #[error("attachments need the envelope header's event_id")]
    AttachmentWithoutEvent,
    /// A check-in payload is larger than allowed.
    #[error("check-in exceeds {0} bytes")]
    CheckInTooLarge(usize),
    /// An event payload is larger than allowed.
    #[error("event exceeds {0} bytes")]
    EventTooLarge(usize),
    /// Every item of the request exceeded a quota.
    #[error("rate limited")]
    RateLimited(Vec<Limited>),
    /// The bus did not accept the event.
    #[error("temporarily unable to accept events")]
    Unavailable(#[from] BusError),
}

impl IngestError {
    /// The status Relay answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            IngestError::BadProjectId
            | IngestError::Envelope(_)
            | IngestError::Event(_)
            | IngestError::DuplicateEvent
            | IngestError::CheckIn(_)
            | IngestError::AttachmentWithoutEvent
            | IngestError::Payload
            | IngestError::Auth(AuthError::BadKey)
            | IngestError::Body(EncodingError::Corrupt) => StatusCode::BAD_REQUEST,
            IngestError::Auth(_) => StatusCode::UNAUTHORIZED,
            IngestError::UnknownKey | IngestError::ProjectMismatch(_) => StatusCode::FORBIDDEN,
            IngestError::BodyTooLarge(_)
            | IngestError::Body(EncodingError::TooLarge(_))
            | IngestError::OverBudget(_)
            | IngestError::EventTooLarge(_)
            | IngestError::CheckInTooLarge(_)
            | IngestError::AttachmentTooLarge(_)
            | IngestError::Unavailable(BusError::TooLarge(_)) => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::Body(EncodingError::Unsupported(_)) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IngestError::RateLimited(_) | IngestError::TooManyAuthFailures => {
                StatusCode::TOO_MANY_REQUESTS
            }
            IngestError::KeysUnavailable | IngestError::Busy | IngestError::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// Whether the refusal is about the request's credentials.
    pub fn is_auth_failure(&self) -> bool {
        matches!(
            self,
            IngestError::Auth(_)
                | IngestError::UnknownKey
                | IngestError::ProjectMismatch(_)
                | IngestError::TooManyAuthFailures
        )
    }

    /// The reason recorded in the `invalid` outcome of a refused request (Relay's names where it
    /// has one); `None` for refusals that are not about the request (busy, rate limited).
    pub fn outcome_reason(&self) -> Option<&'static str> {
        Some(match self {
            IngestError::BodyTooLarge(_)
            | IngestError::Body(EncodingError::TooLarge(_))
            | IngestError::OverBudget(_)
            | IngestError::EventTooLarge(_)
            | IngestError::CheckInTooLarge(_)
            | IngestError::AttachmentTooLarge(_) => "too_large",
            IngestError::Body(_) => "invalid_compression",
            IngestError::Payload => "payload",
            IngestError::Envelope(_) => "invalid_envelope",
            IngestError::Event(_) => "invalid_json",
            IngestError::DuplicateEvent => "duplicate_item",
            IngestError::AttachmentWithoutEvent => "missing_event_id",
            IngestError::CheckIn(_) => "invalid_check_in",
            IngestError::Auth(_) => "auth_client",
            IngestError::UnknownKey
            | IngestError::ProjectMismatch(_)
            | IngestError::TooManyAuthFailures => "project_id",
            IngestError::BadProjectId
            | IngestError::KeysUnavailable
            | IngestError::Busy
            | IngestError::RateLimited(_)
            | IngestError::Unavailable(_) => return None,
        })
    }
}

/// Marks a response that refused a request for its credentials; the server closes such a
/// connection when other clients wait for one.
#[derive(Debug, Clone, Copy)]
pub struct AuthRejected;

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let status = self.status();
        metrics::counter!("shrike_ingest_rejected_total", "status" => status.as_str().to_owned())
            .increment(1);
        let mut response = detail(status, &self.to_string());
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.is_auth_failure() {
            response.extensions_mut().insert(AuthRejected);
        }
        match &self {
            IngestError::RateLimited(limits) => add_rate_limit_headers(&mut response, limits),
            IngestError::TooManyAuthFailures => {
                let headers = response.headers_mut();
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

/// Adds `Retry-After` and `X-Sentry-Rate-Limits` for `limits`.
pub fn add_rate_limit_headers(response: &mut Response, limits: &[Limited]) {
    let retry_after = limits.iter().map(|l| l.retry_after).max().unwrap_or(1);
    let header_value = limits
        .iter()
        .map(Limited::header_entry)
        .collect::<Vec<_>>()
        .join(", ");
    if let Ok(value) = HeaderValue::from_str(&header_value) {
        response.headers_mut().insert("x-sentry-rate-limits", value);
    }
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
}

/// A `{"detail": ...}` response, the shape of every refusal.
pub fn detail(status: StatusCode, detail: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "detail": detail }))).into_response()
}
