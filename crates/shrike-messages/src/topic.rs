//! The topics of the pipeline and the message each carries, keyed in one place.

use crate::{encode, pb};
use bytes::Bytes;

/// The topics of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// [`pb::RawEvent`]: events as accepted by ingest, without a key (spread over partitions
    /// batch by batch).
    RawEvents,
    /// [`pb::NormalizedEvent`]: keyed by `{project_id}:{primary_hash}`, so one issue's events
    /// share a partition and one grouper decides about the issue.
    NormalizedEvents,
    /// [`pb::IssueActivity`]: new and regressed issues, keyed like normalized events; compacted
    /// (one record per issue, kept).
    IssueActivity,
    /// [`pb::CheckIn`]: cron monitor check-ins, keyed by `{project_id}:{monitor_slug}`.
    CheckIns,
    /// [`pb::AttachmentChunk`]: keyed by event id.
    Attachments,
    /// [`pb::Outcome`]: what happened to received items, keyed by project.
    Outcomes,
    /// [`pb::DeadLetter`]: messages no consumer could process, with the reason, keyed like the
    /// message.
    DeadLetter,
}

impl Topic {
    /// Every topic.
    pub const ALL: [Topic; 7] = [
        Topic::RawEvents,
        Topic::NormalizedEvents,
        Topic::IssueActivity,
        Topic::CheckIns,
        Topic::Attachments,
        Topic::Outcomes,
        Topic::DeadLetter,
    ];

    /// Every topic's name.
    pub const NAMES: [&'static str; 7] = [
        Topic::RawEvents.name(),
        Topic::NormalizedEvents.name(),
        Topic::IssueActivity.name(),
        Topic::CheckIns.name(),
        Topic::Attachments.name(),
        Topic::Outcomes.name(),
        Topic::DeadLetter.name(),
    ];

    /// The topic's name (without the deployment's prefix).
    pub const fn name(self) -> &'static str {
        match self {
            Topic::RawEvents => "events-raw",
            Topic::NormalizedEvents => "events-normalized",
            Topic::IssueActivity => "issue-activity",
            Topic::CheckIns => "check-ins",
            Topic::Attachments => "attachments",
            Topic::Outcomes => "outcomes",
            Topic::DeadLetter => "dead-letter",
        }
    }

    /// The topic named `name`.
    pub fn named(name: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Whether the topic keeps only the newest record per key (Kafka's `cleanup.policy=compact`).
    pub const fn compacted(self) -> bool {
        matches!(self, Topic::IssueActivity)
    }
}

/// A message of the bus: the topic that carries it and the key it is produced with.
pub trait BusMessage: prost::Message + Default {
    /// The topic that carries it.
    const TOPIC: Topic;

    /// The ordering key.
    fn key(&self) -> Bytes;

    /// What to produce: the topic's name, the key and the encoded message.
    fn record(&self) -> (&'static str, Bytes, Bytes) {
        (Self::TOPIC.name(), self.key(), encode(self))
    }
}

/// The ordering key of everything about one issue: `{project_id}:{primary_hash}`.
pub fn issue_key(project_id: u64, primary_hash: &str) -> Bytes {
    Bytes::from(format!("{project_id}:{primary_hash}"))
}

fn event_id_key(meta: Option<&pb::Meta>) -> Bytes {
    Bytes::copy_from_slice(meta.map_or(&[][..], |m| &m.event_id))
}

fn project(meta: Option<&pb::Meta>) -> u64 {
    meta.map_or(0, |m| m.project_id)
}

impl BusMessage for pb::RawEvent {
    const TOPIC: Topic = Topic::RawEvents;
    /// None: nothing downstream needs raw events of one kind together (the normalizer keys its
    /// output by issue), and keyless records let the producer fill one partition's batch at a
    /// time (sticky partitioning) instead of scattering every event into a batch of its own.
    fn key(&self) -> Bytes {
        Bytes::new()
    }
}

impl BusMessage for pb::NormalizedEvent {
    const TOPIC: Topic = Topic::NormalizedEvents;
    fn key(&self) -> Bytes {
        issue_key(project(self.meta.as_ref()), &self.primary_hash)
    }
}

impl BusMessage for pb::IssueActivity {
    const TOPIC: Topic = Topic::IssueActivity;
    fn key(&self) -> Bytes {
        issue_key(project(self.meta.as_ref()), &self.primary_hash)
    }
}

impl BusMessage for pb::CheckIn {
    const TOPIC: Topic = Topic::CheckIns;
    fn key(&self) -> Bytes {
        Bytes::from(format!(
            "{}:{}",
            project(self.meta.as_ref()),
            self.monitor_slug
        ))
    }
}

impl BusMessage for pb::AttachmentChunk {
    const TOPIC: Topic = Topic::Attachments;
    fn key(&self) -> Bytes {
        event_id_key(self.meta.as_ref())
    }
}

impl BusMessage for pb::Outcome {
    const TOPIC: Topic = Topic::Outcomes;
    fn key(&self) -> Bytes {
        Bytes::from(self.project_id.to_string())
    }
}

impl BusMessage for pb::DeadLetter {
    const TOPIC: Topic = Topic::DeadLetter;
    fn key(&self) -> Bytes {
        Bytes::copy_from_slice(&self.key)
    }
}

/// The dead letter of a record of `source_topic` that consumer `group` could not process.
#[allow(clippy::too_many_arguments)]
pub fn dead_letter(
    source_topic: &str,
    partition: i32,
    offset: i64,
    key: &[u8],
    payload: &[u8],
    group: &str,
    reason: &str,
    failed_at_ms: i64,
) -> pb::DeadLetter {
    pb::DeadLetter {
        source_topic: source_topic.to_owned(),
        partition,
        offset,
        reason: reason.to_owned(),
        key: key.to_vec(),
        payload: payload.to_vec(),
        failed_at_ms,
        consumer_group: group.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta;
    use uuid::Uuid;

    #[test]
    fn each_message_goes_to_its_topic_with_its_key() {
        let id = Uuid::new_v4();
        let raw = pb::RawEvent {
            meta: Some(meta(7, id, 0)),
            payload: Bytes::from_static(b"{}"),
        };
        let (topic, key, payload) = raw.record();
        assert_eq!(
            (topic, &key[..]),
            ("events-raw", &b""[..]),
            "raw events go batch by batch"
        );
        assert_eq!(
            crate::decode::<pb::RawEvent>(&payload).expect("decodes"),
            raw
        );
        let normalized = pb::NormalizedEvent {
            meta: Some(meta(7, id, 0)),
            primary_hash: "abc".into(),
            ..Default::default()
        };
        assert_eq!(normalized.record().0, "events-normalized");
        assert_eq!(normalized.key(), Bytes::from_static(b"7:abc"));
        let activity = pb::IssueActivity {
            meta: Some(meta(7, id, 0)),
            primary_hash: "abc".into(),
            ..Default::default()
        };
        assert_eq!(activity.key(), normalized.key(), "one issue, one partition");
        let check_in = pb::CheckIn {
            meta: Some(meta(7, id, 0)),
            monitor_slug: "nightly".into(),
            ..Default::default()
        };
        assert_eq!(check_in.key(), Bytes::from_static(b"7:nightly"));
        let outcome = pb::Outcome {
            project_id: 7,
            ..Default::default()
        };
        assert_eq!(outcome.record().0, "outcomes");
        assert_eq!(outcome.key(), Bytes::from_static(b"7"));
        for topic in Topic::ALL {
            assert_eq!(Topic::named(topic.name()), Some(topic));
            assert!(Topic::NAMES.contains(&topic.name()));
        }
    }
}
