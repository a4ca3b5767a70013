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

/// The schema version written by this build. Version 2 normalized events carry
/// [`pb::EventFields`] instead of the event as JSON; version 1 ones are still read.
pub const VERSION: u32 = 2;

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

/// Decodes a protobuf message whose `Bytes` fields then share `payload` rather than copy it.
pub fn decode_shared<M: prost::Message + Default>(payload: &Bytes) -> Result<M, DecodeError> {
    Ok(M::decode(payload.clone())?)
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
    event: NormalizedEvent,
    primary_hash: &str,
    variant: &str,
) -> pb::NormalizedEvent {
    pb::NormalizedEvent {
        meta: Some(meta(event.project_id, event.event_id, event.received_ms)),
        primary_hash: primary_hash.to_owned(),
        grouping_variant: variant.to_owned(),
        event_json: Vec::new(),
        fields: Some(event_fields(event)),
    }
}

/// The fields Shrike stores about a normalized event: the main (last) exception and its frames,
/// or the event's own stack trace when that exception has none.
pub fn event_fields(event: NormalizedEvent) -> pb::EventFields {
    let mut exceptions = event.exceptions;
    let (exception_type, exception_value, trace) = match exceptions.pop() {
        Some(main) => (
            main.ty.unwrap_or_default(),
            main.value.unwrap_or_default(),
            main.stacktrace.or(event.stacktrace),
        ),
        None => (String::new(), String::new(), event.stacktrace),
    };
    let frames = trace.map(|s| s.frames).unwrap_or_default();
    let mut fields = pb::EventFields {
        timestamp_ms: event.timestamp_ms,
        platform: event.platform,
        level: event.level,
        logger: event.logger,
        transaction: event.transaction,
        server_name: event.server_name,
        release: event.release,
        environment: event.environment,
        message: event.message,
        title: event.title,
        culprit: event.culprit,
        exception_type,
        exception_value,
        frame_filenames: Vec::with_capacity(frames.len()),
        frame_functions: Vec::with_capacity(frames.len()),
        frame_modules: Vec::with_capacity(frames.len()),
        frame_linenos: Vec::with_capacity(frames.len()),
        frame_in_app: Vec::with_capacity(frames.len()),
        tag_keys: Vec::with_capacity(event.tags.len()),
        tag_values: Vec::with_capacity(event.tags.len()),
        user_id: event.user_id,
        user_email: event.user_email,
        user_username: event.user_username,
        user_ip: event.user_ip,
        request_url: event.request_url,
        request_method: event.request_method,
        sdk_name: event.sdk_name,
        sdk_version: event.sdk_version,
    };
    for frame in frames {
        let filename = frame.filename.or(frame.abs_path);
        fields.frame_filenames.push(filename.unwrap_or_default());
        fields
            .frame_functions
            .push(frame.function.unwrap_or_default());
        fields.frame_modules.push(frame.module.unwrap_or_default());
        fields.frame_linenos.push(frame.lineno.unwrap_or(0));
        fields.frame_in_app.push(frame.in_app == Some(true));
    }
    for (key, value) in event.tags {
        fields.tag_keys.push(key);
        fields.tag_values.push(value);
    }
    fields
}

/// The fields of `fields` that describe an issue.
pub fn event_summary(fields: &pb::EventFields) -> pb::EventSummary {
    pb::EventSummary {
        platform: fields.platform.clone(),
        level: fields.level.clone(),
        release: fields.release.clone(),
        message: fields.message.clone(),
        title: fields.title.clone(),
        culprit: fields.culprit.clone(),
        exception_type: fields.exception_type.clone(),
        exception_value: fields.exception_value.clone(),
    }
}

/// Reads the event JSON out of a version 1 [`pb::NormalizedEvent`].
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
    use shrike_protocol::event::Frame;

    #[test]
    fn normalized_events_round_trip() {
        let event = NormalizedEvent {
            project_id: 3,
            event_id: Uuid::new_v4(),
            title: "t".into(),
            ..Default::default()
        };
        let bytes = encode(&normalized_message(event.clone(), "abc", "app"));
        let message: pb::NormalizedEvent = decode(&bytes).expect("decodes");
        assert_eq!(message.primary_hash, "abc");
        assert_eq!(message.meta.expect("meta").version, VERSION);
        assert!(message.event_json.is_empty());
        assert_eq!(message.fields, Some(event_fields(event)));
    }

    #[test]
    fn version_1_bodies_are_still_read() {
        let event = NormalizedEvent {
            project_id: 3,
            event_id: Uuid::new_v4(),
            title: "t".into(),
            ..Default::default()
        };
        let mut m = meta(3, event.event_id, 0);
        m.version = 1;
        let message = pb::NormalizedEvent {
            meta: Some(m),
            event_json: serde_json::to_vec(&event).expect("json"),
            ..Default::default()
        };
        let bytes = encode(&message);
        let decoded: pb::NormalizedEvent = decode(&bytes).expect("decodes");
        assert_eq!(decoded.fields, None);
        assert_eq!(read_normalized(&decoded).expect("body"), event);
    }

    #[test]
    fn fields_flatten_the_main_exception_and_tags() {
        let frame = |path: &str, line: u32, in_app: Option<bool>| Frame {
            abs_path: Some(path.into()),
            function: Some(format!("f{line}")),
            lineno: Some(line),
            in_app,
            ..Default::default()
        };
        let event = NormalizedEvent {
            exceptions: vec![
                Exception {
                    ty: Some("Cause".into()),
                    stacktrace: Some(Stacktrace {
                        frames: vec![frame("/cause.py", 1, Some(true))],
                    }),
                    ..Default::default()
                },
                Exception {
                    ty: Some("Main".into()),
                    value: Some("v".into()),
                    stacktrace: Some(Stacktrace {
                        frames: vec![
                            frame("/a.py", 4, Some(true)),
                            Frame {
                                filename: Some("b.py".into()),
                                ..frame("/abs/b.py", 0, None)
                            },
                        ],
                    }),
                    ..Default::default()
                },
            ],
            tags: vec![("a".into(), "1".into()), ("b".into(), "2".into())],
            ..Default::default()
        };
        let fields = event_fields(event.clone());
        assert_eq!(fields.exception_type, "Main");
        assert_eq!(fields.exception_value, "v");
        assert_eq!(fields.frame_filenames, vec!["/a.py", "b.py"]);
        assert_eq!(fields.frame_functions, vec!["f4", "f0"]);
        assert_eq!(fields.frame_linenos, vec![4, 0]);
        assert_eq!(fields.frame_in_app, vec![true, false]);
        assert_eq!(fields.tag_keys, vec!["a", "b"]);
        assert_eq!(fields.tag_values, vec!["1", "2"]);

        // Without exceptions, the event's own stack trace is the one stored.
        let bare = NormalizedEvent {
            stacktrace: Some(Stacktrace {
                frames: vec![frame("/t.py", 9, Some(false))],
            }),
            ..Default::default()
        };
        let fields = event_fields(bare);
        assert_eq!(fields.exception_type, "");
        assert_eq!(fields.frame_filenames, vec!["/t.py"]);
        assert_eq!(fields.frame_in_app, vec![false]);
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
