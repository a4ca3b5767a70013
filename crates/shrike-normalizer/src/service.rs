//! The normalizer service: reads raw events, normalizes and fingerprints them, and produces
//! normalized events keyed by issue, so that one issue's events share a partition and one grouper
//! decides about each issue.
//!
//! A raw record is committed only after its normalized event (or its dead letter) was accepted by
//! the bus, so a crash redelivers it. A record that fails deterministically (undecodable, not an
//! event) goes to the dead-letter topic with the reason and is committed: it must not block the
//! partition.

use crate::normalize;
use shrike_bus::messages::{self, pb};
use shrike_bus::{BusError, Consumer, Producer, Record, Topic};
use shrike_grouping::ProjectConfigs;
use shrike_protocol::Event;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The consumer group of the normalizer.
pub const GROUP: &str = "shrike-normalizer";

/// Turns one raw record into the normalized message and its key, or the reason it cannot be.
/// The event is grouped with its project's settings before normalization, on the event as sent.
pub fn process(
    record: &Record,
    grouping: &ProjectConfigs,
) -> Result<(bytes::Bytes, bytes::Bytes), String> {
    let raw: pb::RawEvent = messages::decode_shared(&record.payload).map_err(|e| e.to_string())?;
    let (meta, event_id) = messages::check_meta(raw.meta.as_ref()).map_err(|e| e.to_string())?;
    let event = Event::parse(&raw.payload).map_err(|e| e.to_string())?;
    let grouped = shrike_grouping::group(&event, grouping.get(meta.project_id));
    let normalized = normalize(meta.project_id, event_id, meta.received_ms, event);
    let message = messages::normalized_message(normalized, grouped.hash(), grouped.primary().name);
    Ok((
        messages::issue_key(meta.project_id, grouped.hash()),
        messages::encode(&message),
    ))
}

/// Runs until `shutdown` fires or the bus closes; commits are flushed before returning.
pub async fn run<C: Consumer, P: Producer>(
    mut consumer: C,
    producer: P,
    grouping: Arc<ProjectConfigs>,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    loop {
        let record = tokio::select! {
            record = consumer.recv() => record?,
            () = shutdown.cancelled() => return consumer.flush().await,
        };
        match process(&record, &grouping) {
            Ok((key, payload)) => {
                match send_with_backoff(&producer, Topic::NormalizedEvents, &key, payload).await {
                    Ok(()) => metrics::counter!("shrike_normalizer_events_total").increment(1),
                    Err(BusError::TooLarge(_)) => {
                        dead_letter(&producer, &record, "normalized event too large").await?
                    }
                    Err(error) => return Err(error),
                }
            }
            Err(reason) => dead_letter(&producer, &record, &reason).await?,
        }
        consumer.commit(&record)?;
    }
}

async fn dead_letter<P: Producer>(
    producer: &P,
    record: &Record,
    reason: &str,
) -> Result<(), BusError> {
    tracing::warn!(
        partition = record.partition,
        offset = record.offset,
        reason,
        "dead-lettering raw event"
    );
    metrics::counter!("shrike_normalizer_dead_letters_total").increment(1);
    let letter = messages::dead_letter(record, GROUP, reason);
    match send_with_backoff(producer, letter.topic, &letter.key, letter.payload).await {
        Err(BusError::TooLarge(_)) => {
            tracing::error!(
                offset = record.offset,
                "dead letter too large for its topic; record skipped"
            );
            Ok(())
        }
        other => other,
    }
}

/// Sends, waiting while the bus is full or the broker unavailable; fails when the bus is closed
/// or the record can never fit.
pub async fn send_with_backoff<P: Producer>(
    producer: &P,
    topic: Topic,
    key: &[u8],
    payload: bytes::Bytes,
) -> Result<(), BusError> {
    let mut delay = Duration::from_millis(5);
    loop {
        match producer.send(topic, key, payload.clone()).await {
            Err(error @ (BusError::QueueFull(_) | BusError::Unavailable(_))) => {
                tracing::debug!(%error, "bus refused a record; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(1000));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use shrike_bus::{MemoryBus, Topic};
    use uuid::Uuid;

    fn raw(payload: &[u8]) -> Bytes {
        messages::encode(&pb::RawEvent {
            meta: Some(messages::meta(7, Uuid::from_u128(1), 1_795_514_400_000)),
            payload: Bytes::copy_from_slice(payload),
        })
    }

    async fn recv(c: &mut impl Consumer) -> Record {
        tokio::time::timeout(Duration::from_secs(5), c.recv())
            .await
            .expect("record")
            .expect("open")
    }

    #[tokio::test]
    async fn normalizes_and_dead_letters_then_commits() {
        let bus = MemoryBus::new(100);
        let mut normalized = bus.consumer(Topic::NormalizedEvents, "check");
        let mut dead = bus.consumer(Topic::DeadLetter, "check");
        bus.send(
            Topic::RawEvents,
            b"a",
            raw(br#"{"exception":[{"type":"E","value":"v"}]}"#),
        )
        .await
        .expect("sent");
        bus.send(
            Topic::RawEvents,
            b"b",
            Bytes::from_static(b"\xff\x01garbage"),
        )
        .await
        .expect("sent");
        bus.send(Topic::RawEvents, b"c", raw(b"[1]"))
            .await
            .expect("sent");
        let shutdown = CancellationToken::new();
        // Project 7 has a server-side fingerprint rule of its own.
        let mut grouping = ProjectConfigs::default();
        grouping.insert(
            7,
            shrike_grouping::GroupingConfig::with_project_rules("", "type:E -> all-e-errors")
                .expect("rules"),
        );
        let task = tokio::spawn(run(
            bus.consumer(Topic::RawEvents, GROUP),
            bus.clone(),
            Arc::new(grouping),
            shutdown.clone(),
        ));

        let record = recv(&mut normalized).await;
        let message: pb::NormalizedEvent = messages::decode(&record.payload).expect("decodes");
        let project = message.meta.as_ref().expect("meta").project_id;
        let fields = message.fields.as_ref().expect("fields");
        assert_eq!((project, fields.title.as_str()), (7, "E: v"));
        assert_eq!(record.key, messages::issue_key(7, &message.primary_hash));
        assert_eq!(
            message.primary_hash,
            shrike_grouping::hash_values(["all-e-errors"])
        );
        assert_eq!(message.grouping_variant, "custom_fingerprint");

        for expected_offset in [1, 2] {
            let letter: pb::DeadLetter =
                messages::decode(&recv(&mut dead).await.payload).expect("letter");
            assert_eq!(
                (letter.source_topic.as_str(), letter.offset),
                ("events-raw", expected_offset)
            );
            assert!(!letter.reason.is_empty());
        }
        shutdown.cancel();
        task.await.expect("joins").expect("clean stop");
        // Everything was committed: a new member of the group has nothing to redo.
        let mut again = bus.consumer(Topic::RawEvents, GROUP);
        assert!(
            tokio::time::timeout(Duration::from_millis(200), again.recv())
                .await
                .is_err()
        );
    }
}
