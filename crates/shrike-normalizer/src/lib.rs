//! The normalizer service: reads raw events, normalizes and groups them
//! (`shrike-normalization`), and produces normalized events keyed by issue, so that one issue's
//! events share a partition and one grouper decides about each issue.
//!
//! A raw record is committed only after its normalized event (or its dead letter) was accepted by
//! the bus, so a crash redelivers it. A record that fails deterministically (undecodable, not an
//! event) goes to the dead-letter topic with the reason and is committed: it must not block the
//! partition.

use shrike_bus::{BusError, Consumer, Producer, Record};
use shrike_consumer::{ProcessError, dead_letter, send_with_backoff};
use shrike_grouping::ProjectConfigs;
use shrike_messages::{BusMessage, pb};
use shrike_protocol::Event;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The consumer group of the normalizer.
pub const GROUP: &str = "shrike-normalizer";

/// The normalized message of one raw record, grouped with its project's settings.
pub fn process(
    record: &Record,
    grouping: &ProjectConfigs,
) -> Result<pb::NormalizedEvent, ProcessError> {
    let raw: pb::RawEvent = shrike_messages::decode_shared(&record.payload)?;
    shrike_messages::check_meta(raw.meta.as_ref())?;
    let meta = raw.meta.unwrap_or_default();
    let event = Event::parse(&raw.payload).map_err(ProcessError::invalid)?;
    let grouping = grouping.get(meta.project_id);
    Ok(shrike_normalization::normalize(meta, event, grouping))
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
        let sent = match process(&record, &grouping) {
            Ok(message) => {
                let (topic, key, payload) = message.record();
                match send_with_backoff(&producer, topic, &key, payload).await {
                    Ok(()) => {
                        metrics::counter!("shrike_normalizer_events_total").increment(1);
                        Ok(())
                    }
                    Err(BusError::TooLarge(topic)) => Err(ProcessError::TooLarge(topic)),
                    Err(error) => return Err(error),
                }
            }
            Err(error) => Err(error),
        };
        if let Err(error) = sent {
            let letter = dead_letter(&record, GROUP, &error);
            match send_with_backoff(&producer, letter.topic, &letter.key, letter.payload).await {
                Err(BusError::TooLarge(_)) => tracing::error!(
                    offset = record.offset,
                    "dead letter too large for its topic; record skipped"
                ),
                other => other?,
            }
        }
        consumer.commit(&record)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use shrike_bus::LocalBus;
    use shrike_messages::{Topic, issue_key};
    use std::time::Duration;
    use uuid::Uuid;

    fn raw(payload: &[u8]) -> Bytes {
        shrike_messages::encode(&pb::RawEvent {
            meta: Some(shrike_messages::meta(
                7,
                Uuid::from_u128(1),
                1_795_514_400_000,
            )),
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
        let bus = LocalBus::in_memory(&Topic::NAMES, 100);
        let mut normalized = bus.consumer(Topic::NormalizedEvents.name(), "check");
        let mut dead = bus.consumer(Topic::DeadLetter.name(), "check");
        bus.send(
            Topic::RawEvents.name(),
            b"a",
            raw(br#"{"exception":[{"type":"E","value":"v"}]}"#),
        )
        .await
        .expect("sent");
        bus.send(
            Topic::RawEvents.name(),
            b"b",
            Bytes::from_static(b"\xff\x01garbage"),
        )
        .await
        .expect("sent");
        bus.send(Topic::RawEvents.name(), b"c", raw(b"[1]"))
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
            bus.consumer(Topic::RawEvents.name(), GROUP),
            bus.clone(),
            Arc::new(grouping),
            shutdown.clone(),
        ));

        let record = recv(&mut normalized).await;
        let message: pb::NormalizedEvent =
            shrike_messages::decode(&record.payload).expect("decodes");
        let project = message.meta.as_ref().expect("meta").project_id;
        let fields = message.fields.as_ref().expect("fields");
        assert_eq!((project, fields.title.as_str()), (7, "E: v"));
        assert_eq!(record.key, issue_key(7, &message.primary_hash));
        assert_eq!(
            message.primary_hash,
            shrike_grouping::hash_values(["all-e-errors"])
        );
        assert_eq!(message.grouping_variant, "custom_fingerprint");

        for expected_offset in [1, 2] {
            let letter: pb::DeadLetter =
                shrike_messages::decode(&recv(&mut dead).await.payload).expect("letter");
            assert_eq!(
                (letter.source_topic.as_str(), letter.offset),
                ("events-raw", expected_offset)
            );
            assert!(!letter.reason.is_empty());
        }
        shutdown.cancel();
        task.await.expect("joins").expect("clean stop");
        // Everything was committed: a new member of the group has nothing to redo.
        let mut again = bus.consumer(Topic::RawEvents.name(), GROUP);
        assert!(
            tokio::time::timeout(Duration::from_millis(200), again.recv())
                .await
                .is_err()
        );
    }
}
