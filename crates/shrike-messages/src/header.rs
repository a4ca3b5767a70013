//! The header of every event-derived message, schema versions, and encoding.
//!
//! A message written by a newer schema version than this build knows is refused with
//! [`DecodeError::Version`] (its consumer sends it to the dead-letter topic instead of misreading
//! it).

use crate::pb;
use bytes::Bytes;
use uuid::Uuid;

/// The schema version written by this build.
pub const VERSION: u32 = 2;

/// Why a record could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not a valid protobuf message of the expected type.
    #[error("undecodable protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
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

/// Decodes a protobuf message whose `Bytes` fields then share `payload` rather than copy it.
pub fn decode_shared<M: prost::Message + Default>(payload: &Bytes) -> Result<M, DecodeError> {
    Ok(M::decode(payload.clone())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_events_round_trip() {
        let message = pb::NormalizedEvent {
            meta: Some(meta(3, Uuid::new_v4(), 0)),
            primary_hash: "abc".into(),
            grouping_variant: "app".into(),
            fields: Some(pb::EventFields {
                title: "t".into(),
                ..Default::default()
            }),
            body: br#"{"message":"t"}"#.to_vec(),
        };
        let decoded: pb::NormalizedEvent = decode(&encode(&message)).expect("decodes");
        assert_eq!(decoded, message);
        assert_eq!(decoded.meta.expect("meta").version, VERSION);
        // The summary view reads the same bytes, skipping what it does not need.
        let summary: pb::NormalizedEventSummary = decode(&encode(&message)).expect("decodes");
        assert_eq!(summary.fields.expect("fields").title, "t");
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
