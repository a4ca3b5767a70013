//! Topic administration: creating and checking topics, and reading a whole topic (for state
//! rebuilds, operators and tests).

use super::{KafkaConfig, setup};
use crate::{BusError, Record, TopicName};
use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::time::Duration;

/// Reads every record of a topic currently in the log (for operators, tests and state rebuilds).
pub async fn read_all(config: &KafkaConfig, topic: TopicName) -> Result<Vec<Record>, BusError> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || read_topic(&config, topic))
        .await
        .map_err(|_| BusError::Closed)?
}

/// Reads every committed record of a topic with a throw-away, group-less consumer.
pub(super) fn read_topic(config: &KafkaConfig, topic: TopicName) -> Result<Vec<Record>, BusError> {
    let name = config.topic_name(topic);
    let consumer: BaseConsumer = config
        .client()
        .set("group.id", "shrike-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .map_err(setup)?;
    let metadata = consumer
        .fetch_metadata(Some(&name), Duration::from_secs(10))
        .map_err(setup)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut ends = HashMap::new();
    let mut list = TopicPartitionList::new();
    for partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(&name, partition, Duration::from_secs(10))
            .map_err(setup)?;
        if high > low {
            ends.insert(partition, high);
            list.add_partition_offset(&name, partition, Offset::Beginning)
                .map_err(setup)?;
        }
    }
    let mut records = Vec::new();
    if ends.is_empty() {
        return Ok(records);
    }
    consumer.assign(&list).map_err(setup)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    while !ends.is_empty() {
        if std::time::Instant::now() > deadline {
            return Err(BusError::Unavailable(format!("timed out reading {name}")));
        }
        // Transaction markers occupy offsets too: a partition is done once the position reaches
        // the high watermark, whether or not a record was returned for the last offsets.
        if let Ok(positions) = consumer.position() {
            for element in positions.elements() {
                if let Offset::Offset(position) = element.offset()
                    && ends
                        .get(&element.partition())
                        .is_some_and(|end| position >= *end)
                {
                    ends.remove(&element.partition());
                }
            }
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => records.push(Record {
                topic,
                partition: message.partition(),
                offset: message.offset(),
                generation: 0,
                key: Bytes::copy_from_slice(message.key().unwrap_or_default()),
                payload: Bytes::copy_from_slice(message.payload().unwrap_or_default()),
            }),
            Some(Err(error)) => tracing::warn!(%error, "error reading topic"),
            None => {}
        }
    }
    Ok(records)
}

/// Creates `topics` through the admin API with `config.partitions` and `config.replication`
/// (those of `compacted` compacted); topics that exist already are left as they are. Returns the
/// topics created.
pub async fn create_topics(
    config: &KafkaConfig,
    topics: &[TopicName],
    compacted: &[TopicName],
) -> Result<Vec<String>, BusError> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        config.client().create().map_err(setup)?;
    let names: Vec<(String, bool)> = topics
        .iter()
        .map(|t| (config.topic_name(t), compacted.contains(t)))
        .collect();
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|(name, compacted)| {
            let topic = NewTopic::new(
                name,
                config.partitions,
                TopicReplication::Fixed(config.replication),
            );
            // A compacted topic keeps the newest record per key forever.
            if *compacted {
                topic.set("cleanup.policy", "compact")
            } else {
                topic
            }
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&topics, &options)
        .await
        .map_err(setup)?;
    let mut created = Vec::new();
    for result in results {
        match result {
            Ok(name) => created.push(name),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(BusError::Setup(format!("creating topic {name}: {code}")));
            }
        }
    }
    Ok(created)
}

/// Checks that every topic of `topics` exists, so a misconfigured service fails at start-up.
pub fn validate_topics(config: &KafkaConfig, topics: &[TopicName]) -> Result<(), BusError> {
    let consumer: BaseConsumer = config.client().create().map_err(setup)?;
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .map_err(setup)?;
    for topic in topics {
        let name = config.topic_name(topic);
        let found = metadata
            .topics()
            .iter()
            .any(|t| t.name() == name && t.error().is_none() && !t.partitions().is_empty());
        if !found {
            return Err(BusError::Setup(format!(
                "topic {name} does not exist (run `shrike topics create`)"
            )));
        }
    }
    Ok(())
}
