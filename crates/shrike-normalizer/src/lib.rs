//! The normalizer service: reads raw events, normalizes and groups them
//! (`shrike-normalization`), and produces normalized events keyed by issue, so that one issue's
//! events share a partition and one grouper decides about each issue.
//!
//! Many records are in flight at once ([`shrike_consumer::transform`]): each normalized event is
//! handed to the bus without waiting for its acknowledgement, and a raw record is committed only
//! once its output (or its dead letter) and every output before it in its partition was
//! acknowledged, so a crash redelivers it. A record that fails deterministically (undecodable,
//! not an event) goes to the dead-letter topic with the reason: it must not block the partition.

use serde::{Deserialize, Serialize};
use shrike_bus::{BusError, Consumer, Producer, Record};
use shrike_consumer::{ProcessError, WindowLimits, outgoing};
use shrike_grouping::ProjectConfigs;
use shrike_messages::pb;
use shrike_normalization::Scrubbers;
use shrike_protocol::Event;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The consumer group of the normalizer.
pub const GROUP: &str = "shrike-normalizer";

/// `[normalizer]`: how much may be in flight, taken from the raw topic and not yet acknowledged
/// on the normalized one (this bounds the normalizer's memory; when it is full, fetching pauses),
/// and whether whole events are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NormalizerConfig {
    /// Most records in flight.
    pub window_records: usize,
    /// Most MiB of raw and normalized payloads in flight.
    pub window_mib: usize,
    /// Keep each whole event (scrubbed, trimmed, with `_meta`) in `events.body`, beside the
    /// searchable columns. Off by default for now: on 2 vCPUs it halves the pipeline's
    /// sustained rate, mostly in ClickHouse (BENCHMARKS.md); the work to bring that down is
    /// open.
    pub keep_whole_event: bool,
}

impl Default for NormalizerConfig {
    fn default() -> Self {
        NormalizerConfig {
            window_records: 10_000,
            window_mib: 32,
            keep_whole_event: false,
        }
    }
}

impl NormalizerConfig {
    /// The window's limits.
    pub fn limits(&self) -> WindowLimits {
        WindowLimits {
            records: self.window_records.max(1),
            bytes: self.window_mib.max(1) << 20,
            drain: std::time::Duration::from_secs(30),
        }
    }
}

/// What the normalizer needs to know about each project: its grouping rules and how its events
/// are scrubbed.
#[derive(Debug, Default)]
pub struct Projects {
    /// Grouping settings per project.
    pub grouping: ProjectConfigs,
    /// Scrubbing settings per project.
    pub scrubbing: Scrubbers,
}

/// The projects' settings as they apply now, replaced whole when they change (the `shrike`
/// binary reads the settings set through the API again now and then).
pub type SharedProjects = Arc<std::sync::RwLock<Arc<Projects>>>;

/// The normalized message of one raw record, with its project's settings: its fields and its
/// grouping, and with `whole`, the whole event, scrubbed and trimmed.
pub fn process(
    record: &Record,
    projects: &Projects,
    whole: bool,
) -> Result<pb::NormalizedEvent, ProcessError> {
    let raw: pb::RawEvent = shrike_messages::decode_shared(&record.payload)?;
    shrike_messages::check_meta(raw.meta.as_ref())?;
    let meta = raw.meta.unwrap_or_default();
    let project = meta.project_id;
    let grouping = projects.grouping.get(project);
    if whole {
        let scrubber = projects.scrubbing.get(project);
        shrike_normalization::normalize_body(meta, &raw.payload, grouping, scrubber)
            .map_err(ProcessError::invalid)
    } else {
        let event = Event::parse(&raw.payload).map_err(ProcessError::invalid)?;
        Ok(shrike_normalization::normalize(meta, event, grouping))
    }
}

/// Runs until `shutdown` fires or the bus fails; what is in flight is awaited and the commits
/// flushed before returning.
pub async fn run<C: Consumer, P: Producer>(
    consumer: C,
    producer: P,
    projects: SharedProjects,
    config: NormalizerConfig,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    let events = metrics::counter!("shrike_normalizer_events_total");
    shrike_consumer::transform(
        consumer,
        producer,
        config.limits(),
        GROUP,
        move |record| {
            let current = projects
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone();
            let message = process(record, &current, config.keep_whole_event)?;
            events.increment(1);
            Ok(outgoing(&message))
        },
        shutdown,
    )
    .await
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
            Arc::new(std::sync::RwLock::new(Arc::new(Projects {
                grouping,
                ..Projects::default()
            }))),
            NormalizerConfig {
                keep_whole_event: true,
                ..NormalizerConfig::default()
            },
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
        let body: serde_json::Value = serde_json::from_slice(&message.body).expect("whole event");
        assert_eq!(body["title"], "E: v");

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
