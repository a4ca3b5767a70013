//! The messages each topic carries, encoded as versioned JSON.
//!
//! Every message carries `project_id`, `event_id` and the time ingest received the event, so any
//! consumer can account for it without looking elsewhere. Payloads keep the SDK's own JSON verbatim
//! (no re-encoding) until the normalizer has parsed it.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use shrike_protocol::event::{Exception, Stacktrace};
use uuid::Uuid;

/// The schema version written by this build.
pub const VERSION: u32 = 1;

/// Why a record could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("undecodable message: {0}")]
pub struct DecodeError(#[from] serde_json::Error);

/// An event as accepted by ingest (topic [`crate::Topic::RawEvents`]).
#[derive(Debug, Serialize, Deserialize)]
pub struct RawEvent {
    /// Schema version.
    pub v: u32,
    /// The project the event was sent to.
    pub project_id: u64,
    /// The event id (from the SDK, or assigned by ingest).
    pub event_id: Uuid,
    /// When ingest received the event, Unix milliseconds.
    pub received_ms: i64,
    /// The event JSON exactly as the SDK sent it.
    pub payload: Box<RawValue>,
}

/// An event after normalization (topic [`crate::Topic::NormalizedEvents`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct NormalizedEvent {
    /// Schema version.
    pub v: u32,
    /// The project the event belongs to.
    pub project_id: u64,
    /// The event id.
    pub event_id: Uuid,
    /// When ingest received the event, Unix milliseconds.
    pub received_ms: i64,
    /// When the event happened (clamped to a sane range around `received_ms`), Unix milliseconds.
    pub timestamp_ms: i64,
    /// Platform, defaulted to `other`.
    pub platform: String,
    /// Level, defaulted to `error`.
    pub level: String,
    /// Logger name.
    pub logger: String,
    /// Transaction (route or view) name.
    pub transaction: String,
    /// Server host name.
    pub server_name: String,
    /// Release.
    pub release: String,
    /// Environment.
    pub environment: String,
    /// The log message, formatted.
    pub message: String,
    /// The issue title derived from the event.
    pub title: String,
    /// Where the error happened, derived from the event.
    pub culprit: String,
    /// Exceptions, innermost last.
    pub exceptions: Vec<Exception>,
    /// A stack trace outside any exception.
    pub stacktrace: Option<Stacktrace>,
    /// Tags.
    pub tags: Vec<(String, String)>,
    /// User id, e-mail, user name and IP as sent.
    pub user_id: String,
    /// User e-mail.
    pub user_email: String,
    /// User name.
    pub user_username: String,
    /// User IP address.
    pub user_ip: String,
    /// Request URL.
    pub request_url: String,
    /// Request method.
    pub request_method: String,
    /// SDK name.
    pub sdk_name: String,
    /// SDK version.
    pub sdk_version: String,
    /// A custom fingerprint from the SDK.
    pub fingerprint: Option<Vec<String>>,
}

/// Encodes a message for the bus.
pub fn encode<T: Serialize>(message: &T) -> bytes::Bytes {
    // Serializing these types cannot fail: they hold only strings, numbers and raw JSON.
    bytes::Bytes::from(serde_json::to_vec(message).unwrap_or_default())
}

/// Decodes a message from the bus.
pub fn decode<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Result<T, DecodeError> {
    Ok(serde_json::from_slice(payload)?)
}
