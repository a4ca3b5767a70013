//! The bus between Shrike's services: typed topics, a producer and a consumer abstraction, and the
//! message types every topic carries.
//!
//! Delivery is at-least-once: a consumer commits a record only after its downstream effect is
//! durable, and a consumer that restarts in the same group resumes at the last commit, so records
//! may be redelivered and every sink must be idempotent. The in-memory implementation (used by
//! `shrike up`) keeps these semantics within one process; it must never grow without bound, so a
//! full topic refuses new records instead of buffering them.

pub mod memory;
pub mod messages;

use bytes::Bytes;
use std::future::Future;

pub use memory::MemoryBus;

/// The topics of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Events as accepted by ingest, before normalization.
    RawEvents,
    /// Normalized events, ready for grouping and storage.
    NormalizedEvents,
}

impl Topic {
    /// Every topic, in pipeline order.
    pub const ALL: [Topic; 2] = [Topic::RawEvents, Topic::NormalizedEvents];

    /// The topic's name without any prefix.
    pub fn name(self) -> &'static str {
        match self {
            Topic::RawEvents => "events-raw",
            Topic::NormalizedEvents => "events-normalized",
        }
    }
}

/// A record read from a topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The topic it was read from.
    pub topic: Topic,
    /// Its position in the topic; commits are by offset.
    pub offset: u64,
    /// The ordering key it was produced with.
    pub key: Bytes,
    /// The encoded message.
    pub payload: Bytes,
}

/// Errors of the bus.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    /// The topic holds as many uncommitted records as it may; the producer should retry later.
    #[error("topic {0} is full")]
    QueueFull(&'static str),
    /// The bus was shut down.
    #[error("bus is closed")]
    Closed,
}

/// Sends records to topics. Cheap to clone; one per process.
pub trait Producer: Clone + Send + Sync + 'static {
    /// Sends one record; resolves once the bus has accepted it (for Kafka: acknowledged by the broker).
    fn send(
        &self,
        topic: Topic,
        key: &[u8],
        payload: Bytes,
    ) -> impl Future<Output = Result<(), BusError>> + Send;
}

/// Reads one topic as a member of a consumer group.
pub trait Consumer: Send + 'static {
    /// Waits for the next record. Cancel-safe: a cancelled call loses no record.
    fn recv(&mut self) -> impl Future<Output = Result<Record, BusError>> + Send;
    /// Marks every record up to and including `record` as processed for this group.
    fn commit(&mut self, record: &Record) -> Result<(), BusError>;
}
