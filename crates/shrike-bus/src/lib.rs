//! The bus between Shrike's services: producer and consumer abstractions over named topics, with
//! two transports — [`local`] (in this process, in memory or journaled to disk: what `shrike up`
//! uses) and [`kafka`] (rdkafka; the `kafka` feature).
//!
//! Transport only: a topic is a name, a record a key and bytes. Which message goes on which topic
//! is `shrike-messages`' business. Delivery is at-least-once: a consumer commits a record only
//! after its downstream effect is durable, and a consumer that restarts in the same group resumes
//! at the last commit, so records may be redelivered and every sink must be idempotent.
//! [`FencedConsumer`] adds a fenced "produce these, then commit those" for effects that must
//! happen exactly once (issue activity). No implementation may buffer without bound: a full
//! producer refuses with [`BusError::QueueFull`] so ingest can answer 503.

mod journal;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod local;

use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pub use local::LocalBus;

/// A topic's name (for Kafka, without the deployment's prefix).
pub type TopicName = &'static str;

/// A record read from a topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The topic it was read from.
    pub topic: TopicName,
    /// The partition it was read from.
    pub partition: i32,
    /// Its position in the partition.
    pub offset: i64,
    /// The consumer's assignment generation when the record was fetched; a record from an older
    /// generation than [`Consumer::generation`] belongs to a partition that may have moved.
    pub generation: u64,
    /// The ordering key it was produced with.
    pub key: Bytes,
    /// The encoded message.
    pub payload: Bytes,
}

/// A record to produce.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// Destination topic.
    pub topic: TopicName,
    /// Ordering key.
    pub key: Bytes,
    /// Encoded message.
    pub payload: Bytes,
}

/// Errors of the bus.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    /// The producer holds as many undelivered records as it may; retry later.
    #[error("topic {0} is full")]
    QueueFull(&'static str),
    /// The record is larger than the broker accepts; retrying cannot help.
    #[error("record too large for topic {0}")]
    TooLarge(&'static str),
    /// The broker did not acknowledge in time or refused the record.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// The records were fetched before a rebalance; the partition may belong to another member
    /// now, so nothing was produced or committed.
    #[error("partition ownership changed; batch refused")]
    Fenced,
    /// Configuration or set-up failed.
    #[error("bus setup: {0}")]
    Setup(String),
    /// A consumer group's committed offset is no longer on the broker: records it never
    /// processed are gone. Restarting cannot help; an operator must decide (see
    /// `kafka.offset_reset`).
    #[error(
        "committed offsets are no longer on the broker ({0}); to go on from the oldest records \
         set kafka.offset_reset = \"earliest\" or reset the group's offsets"
    )]
    OffsetsLost(String),
    /// The bus was shut down.
    #[error("bus is closed")]
    Closed,
}

/// An error after which restarting a consumer cannot help: the service must stop.
pub trait Fatal {
    /// Whether retrying cannot help.
    fn is_fatal(&self) -> bool;
}

impl Fatal for BusError {
    fn is_fatal(&self) -> bool {
        matches!(self, BusError::OffsetsLost(_))
    }
}

/// Sends records to topics. Cheap to clone; one per process.
pub trait Producer: Clone + Send + Sync + 'static {
    /// Sends one record; resolves once the bus has accepted it (for Kafka: acknowledged by all
    /// in-sync replicas).
    fn send(
        &self,
        topic: TopicName,
        key: &[u8],
        payload: Bytes,
    ) -> impl Future<Output = Result<(), BusError>> + Send;

    /// Hands one record to the bus without waiting for its acknowledgement, which the returned
    /// [`Delivery`] brings. Fails at once, without waiting for room, when the bus cannot take the
    /// record now ([`BusError::QueueFull`]). Records handed over keep their order per topic and
    /// key, so a consumer may have many in flight.
    fn enqueue(&self, topic: TopicName, key: &[u8], payload: Bytes) -> Result<Delivery, BusError>;
}

/// The acknowledgement of a record handed to [`Producer::enqueue`]: resolves once the bus has
/// the record durably (for Kafka: acknowledged by all in-sync replicas), or with why it does not.
#[must_use = "a record's acknowledgement must be awaited before its input is committed"]
pub struct Delivery(Pending);

enum Pending {
    Done(Option<Result<(), BusError>>),
    Waiting(Pin<Box<dyn Future<Output = Result<(), BusError>> + Send>>),
}

impl Delivery {
    /// A delivery that is already decided (the bus took the record durably, or refused it).
    pub fn done(result: Result<(), BusError>) -> Self {
        Delivery(Pending::Done(Some(result)))
    }

    /// A delivery decided when `acknowledgement` resolves.
    pub fn waiting(
        acknowledgement: impl Future<Output = Result<(), BusError>> + Send + 'static,
    ) -> Self {
        Delivery(Pending::Waiting(Box::pin(acknowledgement)))
    }
}

impl Future for Delivery {
    type Output = Result<(), BusError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            Pending::Done(result) => Poll::Ready(result.take().unwrap_or(Err(BusError::Closed))),
            Pending::Waiting(future) => future.as_mut().poll(cx),
        }
    }
}

/// Reads topics as a member of a consumer group.
pub trait Consumer: Send + 'static {
    /// Waits for the next record. Cancel-safe: a cancelled call loses no record.
    fn recv(&mut self) -> impl Future<Output = Result<Record, BusError>> + Send;
    /// Marks `record` and everything before it in its partition as processed.
    fn commit(&mut self, record: &Record) -> Result<(), BusError>;
    /// Makes every commit so far durable (called on shutdown).
    fn flush(&mut self) -> impl Future<Output = Result<(), BusError>> + Send;
    /// The current assignment generation (see [`Record::generation`]).
    fn generation(&self) -> u64;
}

/// A consumer that produces records and commits its position as one fenced step.
pub trait FencedConsumer: Consumer {
    /// Produces `records` (each acknowledged) and then commits every record in `processed`, while
    /// no rebalance can move the partitions away. Fails with [`BusError::Fenced`] and does nothing
    /// when `processed` was fetched before the current assignment. After any other failure, some
    /// records may have been produced but nothing was committed.
    fn produce_and_commit(
        &mut self,
        records: Vec<Outgoing>,
        processed: &[Record],
    ) -> impl Future<Output = Result<(), BusError>> + Send;

    /// Reads `topic` from the beginning up to its current end (committed records only).
    fn read_to_end(
        &mut self,
        topic: TopicName,
    ) -> impl Future<Output = Result<Vec<Record>, BusError>> + Send;
}
