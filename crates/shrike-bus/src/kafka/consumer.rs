//! A consumer group member: a `BaseConsumer` polled on a dedicated thread that hands records to
//! the async side over a bounded channel, so polling never blocks the runtime and a slow consumer
//! applies back-pressure instead of buffering. Offsets are stored explicitly after the downstream
//! effect (`enable.auto.offset.store=false`) and committed in the background and on
//! [`Consumer::flush`]. Each assignment bumps a generation number so callers can drop records
//! fetched before a rebalance.
//!
//! A group's committed offset that is no longer on the broker is never skipped silently: the
//! consumer stops with [`BusError::OffsetsLost`] or, with [`OffsetReset::Earliest`], logs and counts
//! the loss and goes on from the oldest record left. A group's first start reads its topics from
//! the beginning.

use super::admin::read_topic;
use super::lag::{LagBoard, STATISTICS_INTERVAL_MS};
use super::{KafkaConfig, KafkaProducer, OffsetReset, setup};
use crate::{BusError, Consumer, FencedConsumer, Outgoing, Record, TopicName};
use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// Counts assignments so records fetched before a rebalance can be recognised, and holds
/// revocation back while a fenced commit is in flight.
struct Context {
    generation: Arc<AtomicU64>,
    fence: Arc<tokio::sync::Mutex<()>>,
    offset_reset: OffsetReset,
    group: String,
    lag: LagBoard,
}

impl ClientContext for Context {
    fn stats(&self, statistics: Statistics) {
        self.lag.update(&self.group, &statistics);
    }
}

impl ConsumerContext for Context {
    /// Assigns as librdkafka would (eager rebalancing: every partition is revoked, then the new
    /// assignment given; `KafkaConfig::validate` refuses cooperative settings), but partitions
    /// this group never committed start at the beginning (with `auto.offset.reset=error`, only an
    /// offset that was committed and is gone is an error), and so do those whose committed offset
    /// is gone under [`OffsetReset::Earliest`].
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                set_starts(consumer, partitions, self.offset_reset);
                let result = consumer.assign(partitions);
                // librdkafka keeps a partition's pause across assignments: one this member
                // paused under an earlier assignment would never be fetched again.
                if let Err(error) = consumer.resume(partitions) {
                    tracing::warn!(%error, "cannot resume the new assignment");
                }
                self.post_rebalance(consumer, &Rebalance::Assign(partitions));
                result
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.pre_rebalance(consumer, &Rebalance::Revoke(partitions));
                consumer.unassign()
            }
            other => {
                // As librdkafka's own handler does: give everything up; records fetched so far
                // belong to an old generation.
                let code: RDKafkaErrorCode = other.into();
                tracing::error!(%code, "rebalance failed; unassigning");
                self.pre_rebalance(consumer, &Rebalance::Revoke(partitions));
                consumer.unassign()
            }
        };
        if let Err(error) = result {
            tracing::error!(%error, "cannot apply the assignment");
        }
    }

    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            // Wait for an in-flight `produce_and_commit` to finish, then invalidate every record
            // fetched so far: the partitions' next owner must not race with this member.
            // This callback may run on any thread (also while a consumer is dropped inside the
            // runtime), so spin on try_lock rather than blocking on the async mutex.
            let _fence = loop {
                match self.fence.try_lock() {
                    Ok(guard) => break guard,
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            };
            let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
            tracing::info!(
                generation,
                partitions = partitions.count(),
                "partitions revoked"
            );
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
            tracing::info!(
                generation,
                partitions = partitions.count(),
                "partitions assigned"
            );
        }
    }
}

/// A consumer group member reading some topics.
pub struct KafkaConsumer {
    consumer: Arc<BaseConsumer<Context>>,
    records: mpsc::Receiver<Result<Record, BusError>>,
    generation: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    poller: Option<std::thread::JoinHandle<()>>,
    config: Arc<KafkaConfig>,
    fence: Arc<tokio::sync::Mutex<()>>,
    producer: Option<KafkaProducer>,
}

impl KafkaConsumer {
    /// Joins `group` on `topics`. `producer` is what [`FencedConsumer::produce_and_commit`]
    /// produces with (consumers that never call it may pass `None`); the group's lag is reported
    /// to `lag`.
    pub fn new(
        config: &KafkaConfig,
        group: &str,
        topics: &[TopicName],
        producer: Option<KafkaProducer>,
        lag: &LagBoard,
    ) -> Result<Self, BusError> {
        let generation = Arc::new(AtomicU64::new(0));
        let fence = Arc::new(tokio::sync::Mutex::new(()));
        let mut client = config.client();
        client
            .set("group.id", group)
            .set("enable.auto.offset.store", "false")
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            // Out-of-range offsets come back as errors, handled in `reset_offsets`.
            .set("auto.offset.reset", "error")
            .set("isolation.level", "read_committed")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500")
            .set("queued.max.messages.kbytes", "16384")
            // librdkafka waits this long before fetching again once its queue was over the
            // limit (default 1 s: a stall every time a burst fills the queue).
            .set("fetch.queue.backoff.ms", "10")
            .set("statistics.interval.ms", STATISTICS_INTERVAL_MS.to_string());
        let consumer: BaseConsumer<Context> = client
            .create_with_context(Context {
                generation: generation.clone(),
                fence: fence.clone(),
                offset_reset: config.offset_reset,
                group: group.to_owned(),
                lag: lag.clone(),
            })
            .map_err(setup)?;
        let names: Vec<String> = topics.iter().map(|t| config.topic_name(t)).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        consumer.subscribe(&refs).map_err(setup)?;
        let consumer = Arc::new(consumer);
        let (tx, rx) = mpsc::channel(1000);
        let stop = Arc::new(AtomicBool::new(false));
        let config = Arc::new(config.clone());
        let poller = {
            let (consumer, stop, generation, config) = (
                consumer.clone(),
                stop.clone(),
                generation.clone(),
                config.clone(),
            );
            let topics = topics.to_vec();
            std::thread::Builder::new()
                .name(format!("kafka-poll-{group}"))
                .spawn(move || poll_loop(&consumer, &tx, &stop, &generation, &config, &topics))
                .map_err(|e| BusError::Setup(e.to_string()))?
        };
        Ok(KafkaConsumer {
            consumer,
            records: rx,
            generation,
            stop,
            poller: Some(poller),
            config,
            fence,
            producer,
        })
    }

    fn offsets(&self, processed: &[Record]) -> Result<TopicPartitionList, BusError> {
        let mut last: HashMap<(TopicName, i32), i64> = HashMap::new();
        for record in processed {
            let entry = last
                .entry((record.topic, record.partition))
                .or_insert(record.offset);
            *entry = (*entry).max(record.offset);
        }
        let mut list = TopicPartitionList::new();
        for ((topic, partition), offset) in last {
            list.add_partition_offset(
                &self.config.topic_name(topic),
                partition,
                Offset::Offset(offset + 1),
            )
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        }
        Ok(list)
    }
}

fn poll_loop(
    consumer: &BaseConsumer<Context>,
    tx: &mpsc::Sender<Result<Record, BusError>>,
    stop: &AtomicBool,
    generation: &AtomicU64,
    config: &KafkaConfig,
    topics: &[TopicName],
) {
    // Records polled but not yet taken by the async side. A full channel is waited on for up to
    // `HAND_OVER_WAIT` (the consumer usually makes room within moments); only then is the
    // assignment paused, while polling goes on, so heartbeats, rebalances and
    // `max.poll.interval.ms` keep working however long the consumer takes. Pausing is the
    // exception because librdkafka drops what it prefetched for a paused partition and fetches
    // it again on resume.
    let mut pending: std::collections::VecDeque<Record> = std::collections::VecDeque::new();
    // The generation whose assignment is paused: a new assignment starts unpaused.
    let mut paused_in: Option<u64> = None;
    while !stop.load(Ordering::Relaxed) {
        let paused = paused_in == Some(generation.load(Ordering::SeqCst));
        let mut waited = Duration::ZERO;
        while let Some(record) = pending.pop_front() {
            match tx.try_send(Ok(record)) {
                Ok(()) => waited = Duration::ZERO,
                Err(mpsc::error::TrySendError::Full(Ok(record))) => {
                    pending.push_front(record);
                    if paused || waited >= HAND_OVER_WAIT || stop.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(HAND_OVER_STEP);
                    waited += HAND_OVER_STEP;
                }
                Err(_) => return,
            }
        }
        let want_pause = !pending.is_empty();
        if want_pause != paused
            && let Ok(assignment) = consumer.assignment()
        {
            let result = if want_pause {
                consumer.pause(&assignment)
            } else {
                consumer.resume(&assignment)
            };
            match result {
                Ok(()) => {
                    paused_in = want_pause.then(|| generation.load(Ordering::SeqCst));
                }
                Err(error) => tracing::warn!(%error, "cannot pause or resume the assignment"),
            }
        }
        let wait = if pending.is_empty() { 100 } else { 5 };
        match consumer.poll(Duration::from_millis(wait)) {
            None => {}
            Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset))) => {
                if let Err(error) = reset_offsets(consumer, config) {
                    tracing::error!(%error, "stopping the consumer");
                    // Records already fetched are handed over first; then the error.
                    for record in pending.drain(..) {
                        if tx.blocking_send(Ok(record)).is_err() {
                            return;
                        }
                    }
                    let _ = tx.blocking_send(Err(error));
                    return;
                }
            }
            Some(Err(error)) => tracing::warn!(%error, "kafka consumer error"),
            Some(Ok(message)) => {
                let Some(topic) = config.topic_named(topics, message.topic()) else {
                    continue;
                };
                pending.push_back(Record {
                    topic,
                    partition: message.partition(),
                    offset: message.offset(),
                    generation: generation.load(Ordering::SeqCst),
                    key: Bytes::copy_from_slice(message.key().unwrap_or_default()),
                    payload: Bytes::copy_from_slice(message.payload().unwrap_or_default()),
                });
            }
        }
    }
}

/// How long the poll thread waits for room in the channel before pausing the assignment.
const HAND_OVER_WAIT: Duration = Duration::from_secs(1);
/// How often it looks for room meanwhile.
const HAND_OVER_STEP: Duration = Duration::from_millis(1);

/// Sets where each partition of a new assignment starts: the beginning when the group never
/// committed it, and (under [`OffsetReset::Earliest`]) when its committed offset is gone, which is
/// logged and counted; otherwise the committed offset.
fn set_starts(
    consumer: &BaseConsumer<Context>,
    partitions: &mut TopicPartitionList,
    policy: OffsetReset,
) {
    let committed = match consumer.committed_offsets(partitions.clone(), OFFSETS_TIMEOUT) {
        Ok(committed) => committed,
        Err(error) => {
            // The partitions then start from their committed offsets, or fail in `reset_offsets`.
            tracing::warn!(%error, "cannot read the group's committed offsets");
            return;
        }
    };
    for element in committed.elements() {
        let (topic, partition) = (element.topic(), element.partition());
        let from_start = match element.offset() {
            Offset::Offset(at) if policy == OffsetReset::Earliest => {
                match consumer.fetch_watermarks(topic, partition, OFFSETS_TIMEOUT) {
                    Ok((low, high)) if !(low..=high).contains(&at) => {
                        report_lost(topic, partition, at, low, high);
                        tracing::warn!(
                            topic,
                            partition,
                            "kafka.offset_reset = \"earliest\": going on from the oldest record"
                        );
                        true
                    }
                    _ => false,
                }
            }
            Offset::Offset(_) => false,
            _ => true,
        };
        if from_start {
            let _ = partitions.set_partition_offset(topic, partition, Offset::Beginning);
        }
    }
}

/// How long a consumer waits for the broker's answer about offsets.
const OFFSETS_TIMEOUT: Duration = Duration::from_secs(10);

/// Logs and counts a committed offset that is no longer on the broker; describes it.
fn report_lost(topic: &str, partition: i32, at: i64, low: i64, high: i64) -> String {
    // Below the oldest record: those between are gone. Past the end: the partition was
    // emptied or recreated, and how much is gone cannot be told.
    let gone = if at < low { low - at } else { 0 };
    metrics::counter!(
        "shrike_kafka_offsets_lost_total",
        "topic" => topic.to_owned(),
        "partition" => partition.to_string()
    )
    .increment(gone.max(0) as u64);
    tracing::error!(
        topic,
        partition,
        committed = at,
        earliest = low,
        latest = high,
        lost = gone,
        "the committed offset is no longer on the broker"
    );
    format!(
        "{topic} partition {partition}: committed offset {at}, the broker holds {low}..{high} ({})",
        if at < low {
            format!("{gone} offsets lost")
        } else {
            "past the end".to_owned()
        }
    )
}

/// Handles partitions whose fetch position is not on the broker (`auto.offset.reset=error`): a
/// committed offset that is gone stops the consumer under [`OffsetReset::Fail`]; under
/// [`OffsetReset::Earliest`] the consumer is restarted, and its new assignment starts such
/// partitions at the beginning (see [`set_starts`]).
fn reset_offsets(consumer: &BaseConsumer<Context>, config: &KafkaConfig) -> Result<(), BusError> {
    let unavailable = |e: KafkaError| BusError::Unavailable(e.to_string());
    if config.offset_reset == OffsetReset::Earliest {
        return Err(BusError::Unavailable(
            "a fetch position is no longer on the broker: restarting from the oldest records"
                .into(),
        ));
    }
    let assignment = consumer.assignment().map_err(unavailable)?;
    let committed = consumer
        .committed_offsets(assignment, OFFSETS_TIMEOUT)
        .map_err(unavailable)?;
    let mut lost = Vec::new();
    for element in committed.elements() {
        let (topic, partition) = (element.topic(), element.partition());
        if let Offset::Offset(at) = element.offset() {
            let (low, high) = consumer
                .fetch_watermarks(topic, partition, OFFSETS_TIMEOUT)
                .map_err(unavailable)?;
            if !(low..=high).contains(&at) {
                lost.push(report_lost(topic, partition, at, low, high));
            }
        }
    }
    if lost.is_empty() {
        // A partition without a committed offset the assignment could not start at the
        // beginning (its committed offsets were unreadable then): a fresh consumer tries again.
        return Err(BusError::Unavailable(
            "a partition has no offset to start from".into(),
        ));
    }
    Err(BusError::OffsetsLost(lost.join("; ")))
}

impl Drop for KafkaConsumer {
    fn drop(&mut self) {
        // The poll thread holds the other reference to the consumer and drops it last, so the
        // (blocking) close of the consumer happens there, not on the async runtime.
        self.stop.store(true, Ordering::Relaxed);
        self.records.close();
        drop(self.poller.take());
    }
}

impl Consumer for KafkaConsumer {
    async fn recv(&mut self) -> Result<Record, BusError> {
        self.records.recv().await.ok_or(BusError::Closed)?
    }

    fn commit(&mut self, record: &Record) -> Result<(), BusError> {
        let name = self.config.topic_name(record.topic);
        match self
            .consumer
            .store_offset(&name, record.partition, record.offset)
        {
            Ok(()) => Ok(()),
            // The partition was revoked; its next owner processes the record again.
            Err(error) => {
                tracing::debug!(%error, partition = record.partition, "offset not stored (partition revoked)");
                Ok(())
            }
        }
    }

    async fn flush(&mut self) -> Result<(), BusError> {
        let consumer = self.consumer.clone();
        tokio::task::spawn_blocking(move || {
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
                Err(error) => Err(BusError::Unavailable(error.to_string())),
            }
        })
        .await
        .map_err(|_| BusError::Closed)?
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }
}

impl FencedConsumer for KafkaConsumer {
    async fn produce_and_commit(
        &mut self,
        records: Vec<Outgoing>,
        processed: &[Record],
    ) -> Result<(), BusError> {
        let producer = self
            .producer
            .clone()
            .ok_or(BusError::Setup("consumer has no producer".into()))?;
        // Holding the fence keeps a rebalance from revoking our partitions until we are done, so
        // the next owner only starts after these records are acknowledged and committed.
        let fence = self.fence.clone();
        let _fence = fence.lock().await;
        let current = self.generation();
        if processed.iter().any(|r| r.generation != current) {
            return Err(BusError::Fenced);
        }
        // All sends at once, each awaited without a deadline: a record given up on could still
        // arrive after the next owner re-read the topic.
        producer.send_all_and_wait(records).await?;
        let offsets = self.offsets(processed)?;
        let consumer = self.consumer.clone();
        tokio::task::spawn_blocking(move || consumer.commit(&offsets, CommitMode::Sync))
            .await
            .map_err(|_| BusError::Closed)?
            .map_err(|e| BusError::Unavailable(e.to_string()))
    }

    async fn read_to_end(&mut self, topic: TopicName) -> Result<Vec<Record>, BusError> {
        let config = self.config.clone();
        tokio::task::spawn_blocking(move || read_topic(&config, topic))
            .await
            .map_err(|_| BusError::Closed)?
    }
}
