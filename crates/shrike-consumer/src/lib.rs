//! What every consumer of the bus shares: typed publishing ([`publish`]), batches bounded by count,
//! bytes and time ([`Batch`]), record-by-record transformation with many outputs in flight
//! ([`transform`], [`Window`]), backoff ([`Backoff`], [`retry`]), dead letters ([`dead_letter`]), a
//! processing error with a reason ([`ProcessError`]), and restarting a consumer after a failure
//! ([`supervise`]).
//!
//! The services (normalizer, grouper, table writers) decide what a record means; this crate only
//! moves records through those decisions the same way everywhere.

mod batch;
mod error;
mod retry;
mod supervise;
mod transform;
mod window;

pub use batch::{Batch, BatchLimits, Next, next};
pub use error::ProcessError;
pub use retry::{Backoff, publish, retry, send_with_backoff};
pub use supervise::supervise;
pub use transform::transform;
pub use window::{Slot, Window, WindowLimits};

use shrike_bus::{Outgoing, Record};
use shrike_messages::BusMessage;

/// The record to produce for `message`: its topic and key come from its type.
pub fn outgoing<M: BusMessage>(message: &M) -> Outgoing {
    let (topic, key, payload) = message.record();
    Outgoing {
        topic,
        key,
        payload,
    }
}

/// The dead letter of `record`, which consumer `group` could not process because of `error`.
pub fn dead_letter(record: &Record, group: &str, error: &ProcessError) -> Outgoing {
    tracing::warn!(
        group,
        topic = record.topic,
        partition = record.partition,
        offset = record.offset,
        %error,
        "dead-lettering a record"
    );
    metrics::counter!("shrike_dead_letters_total", "group" => group.to_owned(), "reason" => error.reason())
        .increment(1);
    let failed_at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    outgoing(&shrike_messages::dead_letter(
        record.topic,
        record.partition,
        record.offset,
        &record.key,
        &record.payload,
        group,
        &error.to_string(),
        failed_at_ms,
    ))
}
