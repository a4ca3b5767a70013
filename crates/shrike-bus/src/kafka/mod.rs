//! The Kafka transport of the bus (rdkafka, librdkafka bundled): [`KafkaProducer`],
//! [`KafkaConsumer`], topic administration ([`admin`]) and, for development and fault-injection
//! tests, librdkafka's mock cluster ([`mock`], feature `kafka-mock`).
//!
//! Fenced produce-and-commit ([`crate::FencedConsumer`]): records are produced and acknowledged,
//! then offsets committed synchronously, while a fence holds back the revocation of this member's
//! partitions; a batch fetched before a rebalance is refused. Kafka transactions would add
//! atomicity, but librdkafka's mock cluster does not store transactional offset commits and tansu
//! (the persistent broker the tests run against) has no transactions, so Shrike's exactly-once
//! effects rest on idempotent producers, co-partitioned keys and state rebuilt from the output
//! topic instead (see the grouper).

pub mod admin;
mod consumer;
mod lag;
#[cfg(feature = "kafka-mock")]
pub mod mock;
mod producer;

pub use admin::{create_topics, read_all, validate_topics};
pub use consumer::KafkaConsumer;
pub use lag::LagBoard;
pub use producer::{KafkaProducer, Linger};

use crate::{BusError, TopicName};
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

/// `[kafka]`: the brokers and how every Kafka client of a process talks to them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// `bootstrap.servers`; required by the per-service commands and `shrike topics create`.
    pub bootstrap_servers: String,
    /// Prefix put before every topic name.
    pub topic_prefix: String,
    /// Partitions of the topics `shrike topics create` makes (the unit of scaling out).
    pub partitions: i32,
    /// Replication factor of the topics `shrike topics create` makes.
    pub replication: i32,
    /// Most records the producer holds undelivered before refusing (`queue.buffering.max.messages`).
    pub producer_queue_messages: usize,
    /// How long a send waits for the broker's acknowledgement before answering "unavailable",
    /// milliseconds.
    pub send_timeout_ms: u64,
    /// Create missing topics at service start instead of refusing to start.
    pub create_topics: bool,
    /// Extra librdkafka properties for every client (`security.protocol`, `sasl.*`, ...).
    pub properties: HashMap<String, String>,
    /// What a consumer does when its group's committed offset is no longer on the broker.
    pub offset_reset: OffsetReset,
    /// A consumer whose lag stayed above this many records for a minute without shrinking
    /// answers `/readyz` with 503: it is not keeping up.
    pub ready_max_lag: u64,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            bootstrap_servers: String::new(),
            topic_prefix: "shrike-".into(),
            partitions: 8,
            replication: 1,
            producer_queue_messages: 100_000,
            send_timeout_ms: 5_000,
            create_topics: false,
            properties: HashMap::new(),
            offset_reset: OffsetReset::Fail,
            ready_max_lag: 100_000,
        }
    }
}

/// What a consumer does when its committed offset is no longer on the broker (retention deleted
/// records the group never processed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OffsetReset {
    /// Stop with [`BusError::OffsetsLost`], naming the partition and how many offsets are gone
    /// (what `auto.offset.reset=none` does in Kafka's own clients): an operator decides.
    #[default]
    Fail,
    /// Log the loss, count it in `shrike_kafka_offsets_lost_total`, and go on from the oldest
    /// record still there.
    Earliest,
}

impl KafkaConfig {
    /// Checks what must be set for a client to start.
    pub fn validate(&self) -> Result<(), String> {
        if self.bootstrap_servers.trim().is_empty() {
            return Err(
                "kafka.bootstrap_servers is empty: set it in shrike.toml, with \
                 SHRIKE__KAFKA__BOOTSTRAP_SERVERS or --kafka"
                    .into(),
            );
        }
        if self.partitions < 1 || self.replication < 1 {
            return Err("kafka.partitions and kafka.replication must be at least 1".into());
        }
        // The grouper's fence rests on eager rebalancing (every partition revoked, then
        // reassigned): with cooperative rebalancing a kept partition's fetched records would be
        // dropped as stale and never fetched again.
        let property = |key: &str| self.properties.get(key).map(|v| v.to_ascii_lowercase());
        if property("partition.assignment.strategy").is_some_and(|s| s.contains("cooperative"))
            || property("group.protocol").is_some_and(|p| p == "consumer")
        {
            return Err(
                "kafka.properties: cooperative rebalancing (cooperative-sticky, \
                 group.protocol=consumer) is not supported; use the default eager assignors"
                    .into(),
            );
        }
        Ok(())
    }

    /// The full name of a topic.
    pub fn topic_name(&self, topic: TopicName) -> String {
        format!("{}{}", self.topic_prefix, topic)
    }

    /// The topic of `topics` whose full name is `name`.
    fn topic_named(&self, topics: &[TopicName], name: &str) -> Option<TopicName> {
        let bare = name.strip_prefix(self.topic_prefix.as_str())?;
        topics.iter().copied().find(|t| *t == bare)
    }

    fn send_timeout(&self) -> Duration {
        Duration::from_millis(self.send_timeout_ms.max(1))
    }

    fn client(&self) -> ClientConfig {
        self.client_over(ClientConfig::new())
    }

    /// `defaults`, then the brokers and `kafka.properties` over them.
    fn client_over(&self, mut defaults: ClientConfig) -> ClientConfig {
        defaults.set("bootstrap.servers", &self.bootstrap_servers);
        for (key, value) in &self.properties {
            defaults.set(key, value);
        }
        defaults
    }
}

fn setup(error: KafkaError) -> BusError {
    BusError::Setup(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brokers_are_required_and_cooperative_rebalancing_is_refused() {
        assert!(KafkaConfig::default().validate().is_err());
        let mut config = KafkaConfig {
            bootstrap_servers: "127.0.0.1:9092".into(),
            ..KafkaConfig::default()
        };
        assert_eq!(config.validate(), Ok(()));
        config.properties.insert(
            "partition.assignment.strategy".into(),
            "cooperative-sticky".into(),
        );
        assert!(config.validate().is_err_and(|e| e.contains("cooperative")));
        config.properties.clear();
        config
            .properties
            .insert("group.protocol".into(), "consumer".into());
        assert!(config.validate().is_err());
        assert_eq!(config.topic_name("events-raw"), "shrike-events-raw");
        assert_eq!(
            config.topic_named(&["events-raw"], "shrike-events-raw"),
            Some("events-raw")
        );
        assert_eq!(
            config.topic_named(&["events-raw"], "other-events-raw"),
            None
        );
    }
}
