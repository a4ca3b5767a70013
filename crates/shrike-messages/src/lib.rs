//! The messages of Shrike's bus: the protobuf types generated from `proto/shrike/bus/v1` ([`pb`]),
//! the topics ([`Topic`]), which message each topic carries and how it is keyed ([`BusMessage`]),
//! and the header every event-derived message carries ([`pb::Meta`]).
//!
//! Pure: no I/O. The bus (`shrike-bus`) moves bytes between topics by name and knows nothing of
//! these types; producing a message through [`BusMessage::record`] is what keeps a message on its
//! topic with its key.

mod header;
mod topic;

pub use header::{DecodeError, VERSION, check_meta, decode, decode_shared, encode, meta};
pub use topic::{BusMessage, Topic, dead_letter, issue_key};

/// The generated types of `shrike.bus.v1`.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/shrike.bus.v1.rs"));
}

/// The fields of `fields` that describe an issue, and its time.
pub fn event_summary(fields: &pb::EventFields) -> pb::EventSummary {
    pb::EventSummary {
        timestamp_ms: fields.timestamp_ms,
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
