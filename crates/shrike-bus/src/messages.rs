//! The messages each topic carries: the protobuf types generated from `proto/shrike/bus/v1`, plus
//! the JSON schema of the normalized event body, and helpers to encode, decode and key them.
//!
//! Every event-derived message carries a [`pb::Meta`] with `project_id`, `event_id` and the receive
//! time. A message written by a newer schema version than this build knows is refused with
//! [`DecodeError::Version`] (it goes to the dead-letter topic instead of being misread).

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use shrike_protocol::event::{Exception, Stacktrace};
use uuid::Uuid;

pub use shrike_proto::bus as pb;

/// The schema version written by this build.
pub const VERSION: u32 = 1;

/// Why a record could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not a valid protobuf message of the expected type.
    #[error("undecodable protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// The normalized event body is not valid JSON of the expected shape.
    #[error("undecodable event body: {0}")]
    Json(#[from] serde_json::Error),
    /// The message has no `meta` or a malformed event id.
    #[error("message lacks a valid meta header")]
    Meta,
    /// Written by a newer schema version.
    #[error("schema version {0} is newer than this build's {VERSION}")]
    Version(u32),
}

/// Builds the header of an event-derived message.
pub fn meta(project_id: u64, event_id: Uuid, received_ms: i64) -> pb::Meta {
    pb::Meta {
        version: VERSION,
        project_id,
        event_id: event_id.as_bytes().to_vec(),
        received_ms,
    }
}

/// Checks a header and returns its event id.
pub fn check_meta(meta: Option<&pb::Meta>) -> Result<(&pb::Meta, Uuid), DecodeError> {
    let meta = meta.ok_or(DecodeError::Meta)?;
    if meta.version > VERSION {
        return Err(DecodeError::Version(meta.version));
    }
    let event_id = Uuid::from_slice(&meta.event_id).map_err(|_| DecodeError::Meta)?;
    Ok((meta, event_id))
}

/// Encodes a protobuf message.
pub fn encode(message: &impl prost::Message) -> Bytes {
    Bytes::from(message.encode_to_vec())
}

/// Decodes a protobuf message.
pub fn decode<M: prost::Message + Default>(payload: &[u8]) -> Result<M, DecodeError> {
    Ok(M::decode(payload)?)
}

/// The ordering key of everything about one issue: `{project_id}:{primary_hash}`.
pub fn issue_key(project_id: u64, primary_hash: &str) -> Bytes {
    Bytes::from(format!("{project_id}:{primary_hash}"))
}

/// The normalized event (the JSON body of [`pb::NormalizedEvent`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct NormalizedEvent {
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
    /// User id.
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

/// Wraps a normalized event and its grouping hash for the bus.
pub fn normalized_message(
    event: &NormalizedEvent,
    primary_hash: &str,
    variant: &str,
) -> pb::NormalizedEvent {
    pb::NormalizedEvent {
        meta: Some(meta(event.project_id, event.event_id, event.received_ms)),
        primary_hash: primary_hash.to_owned(),
        grouping_variant: variant.to_owned(),
        // Serializing this type cannot fail: it holds only strings, numbers and vectors.
        event_json: serde_json::to_vec(event).unwrap_or_default(),
    }
}

/// Reads the event out of a [`pb::NormalizedEvent`].
pub fn read_normalized(message: &pb::NormalizedEvent) -> Result<NormalizedEvent, DecodeError> {
    check_meta(message.meta.as_ref())?;
    Ok(serde_json::from_slice(&message.event_json)?)
}

/// A dead-letter record for `record`, which consumer `group` could not process because of `reason`.
pub fn dead_letter(record: &crate::Record, group: &str, reason: &str) -> crate::Outgoing {
    let letter = pb::DeadLetter {
        source_topic: record.topic.name().to_owned(),
        partition: record.partition,
        offset: record.offset,
        reason: reason.to_owned(),
        key: record.key.to_vec(),
        payload: record.payload.to_vec(),
        failed_at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
        consumer_group: group.to_owned(),
    };
    crate::Outgoing {
        topic: crate::Topic::DeadLetter,
        key: record.key.clone(),
        payload: encode(&letter),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_events_round_trip() {
        let event = NormalizedEvent {
            project_id: 3,
            event_id: Uuid::new_v4(),
            title: "t".into(),
            ..Default::default()
        };
        let bytes = encode(&normalized_message(&event, "abc", "app"));
        let message: pb::NormalizedEvent = decode(&bytes).expect("decodes");
        assert_eq!(message.primary_hash, "abc");
        assert_eq!(read_normalized(&message).expect("body"), event);
    }

    #[test]
    fn refuses_newer_versions_and_garbage() {
        let mut m = meta(1, Uuid::nil(), 0);
        m.version = VERSION + 1;
        assert!(matches!(check_meta(Some(&m)), Err(DecodeError::Version(_))));
        assert!(matches!(check_meta(None), Err(DecodeError::Meta)));
        assert!(decode::<pb::RawEvent>(b"\xff\xff\xff").is_err());
    }
}
