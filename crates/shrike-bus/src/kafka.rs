//! The Kafka implementation of the bus (rdkafka, librdkafka bundled).
//!
//! Producer: idempotent, `acks=all`, a bounded queue; `send` resolves when the broker acknowledged
//! the record and fails fast with [`BusError::QueueFull`] when the queue is full, or with
//! [`BusError::Unavailable`] when no acknowledgement comes within the send timeout.
//!
//! Consumer: a `BaseConsumer` polled on a dedicated thread that hands records to the async side
//! over a bounded channel, so polling never blocks the runtime and a slow consumer applies
//! back-pressure instead of buffering. Offsets are stored explicitly after the downstream effect
//! (`enable.auto.offset.store=false`) and committed in the background and on [`Consumer::flush`].
//! Each assignment bumps a generation number so callers can drop records fetched before a rebalance.
//!
//! A group's committed offset that is no longer on the broker (retention deleted the records before
//! they were consumed) is never skipped silently: by default the consumer stops with
//! [`BusError::OffsetsLost`], naming the partition and how many offsets are gone; with
//! [`OffsetReset::Earliest`] it logs the loss, counts it in `shrike_kafka_offsets_lost_total` and
//! goes on from the oldest record left. A group's first start reads its topics from the beginning.
//!
//! Fenced produce-and-commit ([`FencedConsumer`]): records are produced and acknowledged,
//! then offsets committed synchronously, while a fence holds back the revocation of this member's
//! partitions; a batch fetched before a rebalance is refused. Kafka transactions would add
//! atomicity, but librdkafka's mock cluster (the broker available for tests here) does not store
//! transactional offset commits, so Shrike's exactly-once effects rest on idempotent producers,
//! co-partitioned keys and state rebuilt from the output topic instead (see the grouper).

use crate::{BusError, Consumer, FencedConsumer, Outgoing, Producer, Record, Topic};
use bytes::Bytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance, RebalanceProtocol,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// Settings shared by every Kafka client of a process.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub bootstrap_servers: String,
    /// Prefix put before every topic name (e.g. `shrike-`).
    pub topic_prefix: String,
    /// Most records the producer holds undelivered before refusing (`queue.buffering.max.messages`).
    pub producer_queue_messages: usize,
    /// How long `send` waits for the acknowledgement before answering "unavailable".
    pub send_timeout: Duration,
    /// Extra librdkafka properties for every client (`security.protocol`, `sasl.*`, ...).
    pub extra: HashMap<String, String>,
    /// What a consumer does when its group's committed offset is no longer on the broker.
    pub offset_reset: OffsetReset,
}

/// What a consumer does when its committed offset is no longer on the broker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OffsetReset {
    /// Stop with [`BusError::OffsetsLost`] (what `auto.offset.reset=none` does in Kafka's own
    /// clients): an operator decides.
    #[default]
    Fail,
    /// Log the loss, count it, and go on from the oldest record still there.
    Earliest,
}

impl KafkaConfig {
    /// The full name of a topic.
    pub fn topic_name(&self, topic: Topic) -> String {
        format!("{}{}", self.topic_prefix, topic.name())
    }

    fn topic_for_name(&self, name: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| self.topic_name(*t) == name)
    }

    fn client(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        for (key, value) in &self.extra {
            config.set(key, value);
        }
        config
    }
}

fn setup(error: KafkaError) -> BusError {
    BusError::Setup(error.to_string())
}

/// The process's producer.
#[derive(Clone)]
pub struct KafkaProducer {
    producer: FutureProducer,
    config: Arc<KafkaConfig>,
}

impl KafkaProducer {
    /// Creates the idempotent producer.
    pub fn new(config: &KafkaConfig) -> Result<Self, BusError> {
        let producer: FutureProducer = config
            .client()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set(
                "queue.buffering.max.messages",
                config.producer_queue_messages.max(1).to_string(),
            )
            .set("message.timeout.ms", "300000")
            .create()
            .map_err(setup)?;
        Ok(KafkaProducer {
            producer,
            config: Arc::new(config.clone()),
        })
    }

    /// Sends every record and waits for all acknowledgements, however long the producer retries
    /// (bounded by `message.timeout.ms`): unlike [`Producer::send`] it never gives up on a record
    /// that may still be delivered.
    pub async fn send_all_and_wait(&self, records: Vec<Outgoing>) -> Result<(), BusError> {
        let mut deliveries = Vec::with_capacity(records.len());
        for record in &records {
            let name = self.config.topic_name(record.topic);
            let delivery = loop {
                let future = FutureRecord::to(&name)
                    .key(record.key.as_ref())
                    .payload(record.payload.as_ref());
                match self.producer.send_result(future) {
                    Ok(delivery) => break delivery,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err((error, _)) => return Err(send_error(record.topic, error)),
                }
            };
            deliveries.push((record.topic, delivery));
        }
        let mut first_error = None;
        for (topic, delivery) in deliveries {
            let result = match delivery.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((error, _))) => Err(send_error(topic, error)),
                Err(_cancelled) => Err(BusError::Closed),
            };
            if let (Err(error), None) = (result, &first_error) {
                first_error = Some(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Waits until every queued record is delivered or `timeout` passes.
    pub fn flush(&self, timeout: Duration) -> Result<(), BusError> {
        self.producer
            .flush(timeout)
            .map_err(|e| BusError::Unavailable(e.to_string()))
    }
}

fn send_error(topic: Topic, error: KafkaError) -> BusError {
    match error {
        KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) => {
            BusError::QueueFull(topic.name())
        }
        KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge) => {
            BusError::TooLarge(topic.name())
        }
        other => BusError::Unavailable(other.to_string()),
    }
}

impl Producer for KafkaProducer {
    async fn send(&self, topic: Topic, key: &[u8], payload: Bytes) -> Result<(), BusError> {
        let name = self.config.topic_name(topic);
        let record = FutureRecord::to(&name).key(key).payload(payload.as_ref());
        // A zero queue timeout: a full queue is refused at once instead of waiting.
        let delivery = match self.producer.send_result(record) {
            Ok(delivery) => delivery,
            Err((error, _)) => return Err(send_error(topic, error)),
        };
        match tokio::time::timeout(self.config.send_timeout, delivery).await {
            Ok(Ok(Ok(_))) => Ok(()),
            Ok(Ok(Err((error, _)))) => Err(send_error(topic, error)),
            Ok(Err(_cancelled)) => Err(BusError::Closed),
            // The record stays queued and may still be delivered; a retry is deduplicated downstream.
            Err(_elapsed) => Err(BusError::Unavailable(format!(
                "no acknowledgement within {:?}",
                self.config.send_timeout
            ))),
        }
    }
}

/// Counts assignments so records fetched before a rebalance can be recognised, and holds
/// revocation back while a fenced commit is in flight.
struct Context {
    generation: Arc<AtomicU64>,
    fence: Arc<tokio::sync::Mutex<()>>,
    offset_reset: OffsetReset,
}

impl ClientContext for Context {}

impl ConsumerContext for Context {
    /// Assigns as librdkafka would, but partitions this group never committed start at the
    /// beginning (with `auto.offset.reset=error`, only an offset that was committed and is gone
    /// is an error), and so do those whose committed offset is gone under
    /// [`OffsetReset::Earliest`].
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                set_starts(consumer, partitions, self.offset_reset);
                let result = if cooperative {
                    consumer.incremental_assign(partitions)
                } else {
                    consumer.assign(partitions)
                };
                self.post_rebalance(consumer, &Rebalance::Assign(partitions));
                result
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.pre_rebalance(consumer, &Rebalance::Revoke(partitions));
                if cooperative {
                    consumer.incremental_unassign(partitions)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                let code: RDKafkaErrorCode = other.into();
                tracing::error!(%code, "rebalance failed");
                Ok(())
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
    /// produces with (consumers that never call it may pass `None`).
    pub fn new(
        config: &KafkaConfig,
        group: &str,
        topics: &[Topic],
        producer: Option<KafkaProducer>,
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
            .set("queued.max.messages.kbytes", "16384");
        let consumer: BaseConsumer<Context> = client
            .create_with_context(Context {
                generation: generation.clone(),
                fence: fence.clone(),
                offset_reset: config.offset_reset,
            })
            .map_err(setup)?;
        let names: Vec<String> = topics.iter().map(|t| config.topic_name(*t)).collect();
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
            std::thread::Builder::new()
                .name(format!("kafka-poll-{group}"))
                .spawn(move || poll_loop(&consumer, &tx, &stop, &generation, &config))
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
        let mut last: HashMap<(Topic, i32), i64> = HashMap::new();
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
) {
    // Records polled but not yet taken by the async side. When the channel is full the
    // assignment is paused (no more fetching) while polling goes on, so heartbeats, rebalances
    // and `max.poll.interval.ms` keep working however long the consumer takes.
    let mut pending: std::collections::VecDeque<Record> = std::collections::VecDeque::new();
    let mut paused = false;
    while !stop.load(Ordering::Relaxed) {
        while let Some(record) = pending.pop_front() {
            match tx.try_send(Ok(record)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(Ok(record))) => {
                    pending.push_front(record);
                    break;
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
                Ok(()) => paused = want_pause,
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
                let Some(topic) = config.topic_for_name(message.topic()) else {
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

    async fn read_to_end(&mut self, topic: Topic) -> Result<Vec<Record>, BusError> {
        let config = self.config.clone();
        tokio::task::spawn_blocking(move || read_topic(&config, topic))
            .await
            .map_err(|_| BusError::Closed)?
    }
}

/// Reads every record of a topic currently in the log (for operators, tests and state rebuilds).
pub async fn read_all(config: &KafkaConfig, topic: Topic) -> Result<Vec<Record>, BusError> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || read_topic(&config, topic))
        .await
        .map_err(|_| BusError::Closed)?
}

/// Reads every committed record of a topic with a throw-away, group-less consumer.
fn read_topic(config: &KafkaConfig, topic: Topic) -> Result<Vec<Record>, BusError> {
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

/// Creates the topics on a real cluster through the admin API (validates existing ones).
pub async fn create_topics(
    config: &KafkaConfig,
    partitions: i32,
    replication: i32,
) -> Result<Vec<String>, BusError> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        config.client().create().map_err(setup)?;
    let names: Vec<String> = Topic::ALL.iter().map(|t| config.topic_name(*t)).collect();
    let activity = config.topic_name(Topic::IssueActivity);
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| {
            let topic = NewTopic::new(n, partitions, TopicReplication::Fixed(replication));
            // The grouper's record of announced issues: one record per issue key, kept forever.
            if *n == activity {
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

/// Checks that every topic exists, so a misconfigured service fails at start-up.
pub fn validate_topics(config: &KafkaConfig) -> Result<(), BusError> {
    let consumer: BaseConsumer = config.client().create().map_err(setup)?;
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .map_err(setup)?;
    for topic in Topic::ALL {
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

/// librdkafka's in-process mock cluster: a real Kafka-protocol broker, reachable by other
/// processes on its loopback bootstrap address. For tests and `shrike dev kafka`; never for data
/// anyone needs (it lives in memory and dies with the process).
pub mod mock {
    use super::{KafkaConfig, Topic};
    use crate::BusError;
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{BaseProducer, Producer as _};

    /// A running mock cluster; stops when dropped.
    pub struct MockKafka {
        owner: BaseProducer,
        brokers: i32,
    }

    impl MockKafka {
        /// Starts a cluster of `brokers` brokers.
        pub fn start(brokers: i32) -> Result<Self, BusError> {
            let owner: BaseProducer = ClientConfig::new()
                .set("test.mock.num.brokers", brokers.to_string())
                .create()
                .map_err(|e| BusError::Setup(e.to_string()))?;
            let mock = MockKafka { owner, brokers };
            mock.disable_initial_rebalance_delay();
            Ok(mock)
        }

        #[allow(unsafe_code)]
        fn disable_initial_rebalance_delay(&self) {
            // The mock delays a new group's first rebalance by 3 s; tests join groups often.
            // SAFETY: `native_ptr` is the live client that owns the mock cluster, and the mock
            // cluster pointer is checked for null before use; both outlive this call.
            unsafe {
                let cluster =
                    rdkafka_sys::rd_kafka_handle_mock_cluster(self.owner.client().native_ptr());
                if !cluster.is_null() {
                    rdkafka_sys::rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, 0);
                }
            }
        }

        /// The bootstrap address clients connect to.
        pub fn bootstrap_servers(&self) -> String {
            self.owner
                .client()
                .mock_cluster()
                .map(|m| m.bootstrap_servers())
                .unwrap_or_default()
        }

        /// Creates every topic of `config`'s prefix with `partitions` partitions (the mock's
        /// admin API is not usable, so topics are created through the mock interface).
        pub fn create_topics(&self, config: &KafkaConfig, partitions: i32) -> Result<(), BusError> {
            let mock = self
                .owner
                .client()
                .mock_cluster()
                .ok_or(BusError::Setup("no mock cluster".into()))?;
            for topic in Topic::ALL {
                mock.create_topic(&config.topic_name(topic), partitions, self.brokers.min(3))
                    .map_err(|e| BusError::Setup(e.to_string()))?;
            }
            Ok(())
        }

        /// Takes every broker down (true) or brings them back (false).
        pub fn set_down(&self, down: bool) -> Result<(), BusError> {
            let mock = self
                .owner
                .client()
                .mock_cluster()
                .ok_or(BusError::Setup("no mock cluster".into()))?;
            for broker in 1..=self.brokers {
                let result = if down {
                    mock.broker_down(broker)
                } else {
                    mock.broker_up(broker)
                };
                result.map_err(|e| BusError::Setup(e.to_string()))?;
            }
            Ok(())
        }
    }
}
