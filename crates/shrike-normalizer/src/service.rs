//! The normalizer service: reads raw events, normalizes them, and produces normalized events.
//!
//! A raw record is committed only after its normalized event was accepted by the bus, so a crash
//! redelivers it. A record that cannot be decoded is logged, counted and skipped: it would fail
//! the same way every time and must not block the topic.

use crate::normalize;
use shrike_bus::messages::{self, RawEvent};
use shrike_bus::{BusError, Consumer, Producer, Topic};
use shrike_protocol::Event;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs until `shutdown` fires or the bus closes.
pub async fn run<C: Consumer, P: Producer>(
    mut consumer: C,
    producer: P,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    loop {
        let record = tokio::select! {
            record = consumer.recv() => record?,
            () = shutdown.cancelled() => return Ok(()),
        };
        let raw: RawEvent = match messages::decode(&record.payload) {
            Ok(raw) => raw,
            Err(error) => {
                tracing::warn!(offset = record.offset, %error, "dropping undecodable raw event");
                metrics::counter!("shrike_normalizer_invalid_total").increment(1);
                consumer.commit(&record)?;
                continue;
            }
        };
        let event = match Event::parse(raw.payload.get().as_bytes()) {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(project_id = raw.project_id, event_id = %raw.event_id, %error, "dropping invalid event");
                metrics::counter!("shrike_normalizer_invalid_total").increment(1);
                consumer.commit(&record)?;
                continue;
            }
        };
        let normalized = normalize(raw.project_id, raw.event_id, raw.received_ms, event);
        let payload = messages::encode(&normalized);
        send_with_backoff(&producer, Topic::NormalizedEvents, &record.key, payload).await?;
        consumer.commit(&record)?;
        metrics::counter!("shrike_normalizer_events_total").increment(1);
    }
}

/// Sends, waiting while the topic is full; fails only when the bus is closed.
pub async fn send_with_backoff<P: Producer>(
    producer: &P,
    topic: Topic,
    key: &[u8],
    payload: bytes::Bytes,
) -> Result<(), BusError> {
    let mut delay = Duration::from_millis(5);
    loop {
        match producer.send(topic, key, payload.clone()).await {
            Err(BusError::QueueFull(_)) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(500));
            }
            other => return other,
        }
    }
}
