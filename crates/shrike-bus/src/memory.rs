//! The in-memory bus of `shrike up`: one log per topic, consumer groups with committed offsets.
//!
//! Records stay in memory until every group has committed past them. A topic holds at most
//! `capacity` uncommitted records; beyond that `send` fails with [`BusError::QueueFull`] so ingest can
//! answer 503 instead of buffering without bound. A consumer that is dropped without committing
//! leaves its records to the next consumer of the same group, exactly like a Kafka consumer that
//! crashed. This bus does not survive a process restart.

use crate::{BusError, Consumer, Producer, Record, Topic};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

#[derive(Default)]
struct Log {
    /// Offset of `records[0]`.
    base: u64,
    records: VecDeque<Record>,
    /// Committed offset (next offset to read) per consumer group.
    groups: HashMap<String, u64>,
}

impl Log {
    fn end(&self) -> u64 {
        self.base + self.records.len() as u64
    }

    /// Drops records every group has committed.
    fn trim(&mut self) {
        let Some(low) = self.groups.values().min().copied() else {
            return;
        };
        while self.base < low && self.records.pop_front().is_some() {
            self.base += 1;
        }
    }
}

struct TopicState {
    log: Mutex<Log>,
    notify: Notify,
}

/// An in-process bus. Clones share the same topics.
#[derive(Clone)]
pub struct MemoryBus {
    topics: Arc<HashMap<Topic, TopicState>>,
    capacity: usize,
}

impl MemoryBus {
    /// A bus whose topics each hold at most `capacity` uncommitted records.
    pub fn new(capacity: usize) -> Self {
        let topics = Topic::ALL
            .iter()
            .map(|t| {
                (
                    *t,
                    TopicState {
                        log: Mutex::new(Log::default()),
                        notify: Notify::new(),
                    },
                )
            })
            .collect();
        MemoryBus {
            topics: Arc::new(topics),
            capacity: capacity.max(1),
        }
    }

    fn state(&self, topic: Topic) -> &TopicState {
        // Every topic is created in `new`.
        &self.topics[&topic]
    }

    /// Joins `group` on `topic`: the consumer starts at the group's committed offset, or at the
    /// oldest retained record for a new group.
    pub fn consumer(&self, topic: Topic, group: &str) -> MemoryConsumer {
        let mut log = lock(&self.state(topic).log);
        let base = log.base;
        let position = *log.groups.entry(group.to_owned()).or_insert(base);
        MemoryConsumer {
            bus: self.clone(),
            topic,
            group: group.to_owned(),
            position,
        }
    }

    /// Records not yet committed by the slowest group of `topic`.
    pub fn lag(&self, topic: Topic) -> usize {
        lock(&self.state(topic).log).records.len()
    }
}

fn lock(log: &Mutex<Log>) -> MutexGuard<'_, Log> {
    // A panic while holding the lock leaves the log consistent (every mutation is one step).
    log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Producer for MemoryBus {
    async fn send(&self, topic: Topic, key: &[u8], payload: Bytes) -> Result<(), BusError> {
        let state = self.state(topic);
        {
            let mut log = lock(&state.log);
            log.trim();
            if log.records.len() >= self.capacity {
                metrics::counter!("shrike_bus_queue_full_total", "topic" => topic.name())
                    .increment(1);
                return Err(BusError::QueueFull(topic.name()));
            }
            let offset = log.end();
            log.records.push_back(Record {
                topic,
                offset,
                key: Bytes::copy_from_slice(key),
                payload,
            });
        }
        state.notify.notify_waiters();
        Ok(())
    }
}

/// A member of a consumer group on the in-memory bus.
pub struct MemoryConsumer {
    bus: MemoryBus,
    topic: Topic,
    group: String,
    /// Next offset to deliver.
    position: u64,
}

impl MemoryConsumer {
    fn try_next(&mut self) -> Option<Record> {
        let log = lock(&self.bus.state(self.topic).log);
        let index = self.position.checked_sub(log.base)?;
        let record = log.records.get(usize::try_from(index).ok()?)?.clone();
        self.position += 1;
        Some(record)
    }
}

impl Consumer for MemoryConsumer {
    async fn recv(&mut self) -> Result<Record, BusError> {
        let bus = self.bus.clone();
        let state = bus.state(self.topic);
        loop {
            let notified = state.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(record) = self.try_next() {
                return Ok(record);
            }
            notified.await;
        }
    }

    fn commit(&mut self, record: &Record) -> Result<(), BusError> {
        let mut log = lock(&self.bus.state(self.topic).log);
        let committed = log.groups.entry(self.group.clone()).or_default();
        *committed = (*committed).max(record.offset + 1);
        log.trim();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn recv(c: &mut MemoryConsumer) -> Record {
        tokio::time::timeout(Duration::from_secs(5), c.recv())
            .await
            .expect("record within 5s")
            .expect("open")
    }

    #[tokio::test]
    async fn delivers_in_order_to_every_group() {
        let bus = MemoryBus::new(10);
        let mut a = bus.consumer(Topic::RawEvents, "a");
        let mut b = bus.consumer(Topic::RawEvents, "b");
        for i in 0..3u8 {
            bus.send(Topic::RawEvents, b"k", Bytes::from(vec![i]))
                .await
                .expect("sent");
        }
        for i in 0..3u8 {
            assert_eq!(recv(&mut a).await.payload[..], [i]);
            assert_eq!(recv(&mut b).await.payload[..], [i]);
        }
    }

    #[tokio::test]
    async fn redelivers_uncommitted_records_to_the_next_consumer() {
        let bus = MemoryBus::new(10);
        let mut first = bus.consumer(Topic::RawEvents, "g");
        for i in 0..4u8 {
            bus.send(Topic::RawEvents, b"k", Bytes::from(vec![i]))
                .await
                .expect("sent");
        }
        let r0 = recv(&mut first).await;
        first.commit(&r0).expect("commit");
        let _r1 = recv(&mut first).await; // read, never committed: the consumer "crashes"
        drop(first);
        let mut second = bus.consumer(Topic::RawEvents, "g");
        assert_eq!(recv(&mut second).await.payload[..], [1]);
        assert_eq!(bus.lag(Topic::RawEvents), 3);
    }

    #[tokio::test]
    async fn refuses_records_beyond_capacity_until_committed() {
        let bus = MemoryBus::new(2);
        let mut c = bus.consumer(Topic::RawEvents, "g");
        bus.send(Topic::RawEvents, b"k", Bytes::from_static(b"1"))
            .await
            .expect("sent");
        bus.send(Topic::RawEvents, b"k", Bytes::from_static(b"2"))
            .await
            .expect("sent");
        assert_eq!(
            bus.send(Topic::RawEvents, b"k", Bytes::from_static(b"3"))
                .await,
            Err(BusError::QueueFull("events-raw"))
        );
        let r = recv(&mut c).await;
        c.commit(&r).expect("commit");
        bus.send(Topic::RawEvents, b"k", Bytes::from_static(b"3"))
            .await
            .expect("room after commit");
    }

    #[tokio::test]
    async fn recv_wakes_when_a_record_arrives() {
        let bus = MemoryBus::new(10);
        let mut c = bus.consumer(Topic::NormalizedEvents, "g");
        let producer = bus.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            producer
                .send(Topic::NormalizedEvents, b"k", Bytes::from_static(b"x"))
                .await
        });
        assert_eq!(&recv(&mut c).await.payload[..], b"x");
    }
}
