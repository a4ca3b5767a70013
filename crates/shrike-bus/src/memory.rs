//! The in-memory bus of `shrike up`: one single-partition log per topic, consumer groups with
//! committed offsets.
//!
//! Records stay in memory until every group subscribed to the topic has committed past them. A
//! topic holds at most `capacity` records and `max_bytes` bytes of keys and payloads (a single
//! record larger than that is still taken when the topic is empty): with subscribers, `send` then
//! fails with [`BusError::QueueFull`] (back-pressure); without any, the oldest record is dropped
//! (retention), as Kafka would eventually delete records nobody reads. A bus built
//! [`with_send_wait`](MemoryBus::with_send_wait) first waits that long for consumers to make room,
//! like a Kafka producer whose queue is full. A consumer dropped without committing
//! leaves its records to the next consumer of its group, like a Kafka consumer that crashed; a new
//! member of a group takes the partition over from the previous one (one partition, one owner).
//! This bus does not survive a process restart.

use crate::{BusError, Consumer, FencedConsumer, Outgoing, Producer, Record, Topic};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

#[derive(Default)]
struct Group {
    /// Next offset to read after a restart.
    committed: i64,
    /// Generation of the member that owns the partition.
    owner: u64,
}

#[derive(Default)]
struct Log {
    /// Offset of `records[0]`.
    base: i64,
    records: VecDeque<Record>,
    /// Bytes of keys and payloads in `records`.
    bytes: usize,
    groups: HashMap<String, Group>,
    generations: u64,
}

impl Log {
    fn end(&self) -> i64 {
        self.base + self.records.len() as i64
    }

    /// Drops records every group has committed.
    fn trim(&mut self) {
        let Some(low) = self.groups.values().map(|g| g.committed).min() else {
            return;
        };
        while self.base < low && self.pop_oldest() {}
    }

    fn pop_oldest(&mut self) -> bool {
        let Some(record) = self.records.pop_front() else {
            return false;
        };
        self.base += 1;
        self.bytes -= record.key.len() + record.payload.len();
        true
    }

    fn append(&mut self, topic: Topic, key: Bytes, payload: Bytes) {
        let offset = self.end();
        self.bytes += key.len() + payload.len();
        self.records.push_back(Record {
            topic,
            partition: 0,
            offset,
            generation: 0,
            key,
            payload,
        });
    }
}

struct TopicState {
    log: Mutex<Log>,
    /// Woken when records are appended.
    notify: Notify,
    /// Woken when records are committed (room may have been made).
    room: Notify,
}

/// An in-process bus. Clones share the same topics.
#[derive(Clone)]
pub struct MemoryBus {
    topics: Arc<HashMap<Topic, TopicState>>,
    capacity: usize,
    max_bytes: usize,
    send_wait: std::time::Duration,
}

fn lock(log: &Mutex<Log>) -> MutexGuard<'_, Log> {
    // Every mutation is a single step, so a poisoned log is still consistent.
    log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MemoryBus {
    /// A bus whose topics each hold at most `capacity` uncommitted records (and no byte limit).
    pub fn new(capacity: usize) -> Self {
        let topics = Topic::ALL
            .iter()
            .map(|t| {
                (
                    *t,
                    TopicState {
                        log: Mutex::new(Log::default()),
                        notify: Notify::new(),
                        room: Notify::new(),
                    },
                )
            })
            .collect();
        MemoryBus {
            topics: Arc::new(topics),
            capacity: capacity.max(1),
            max_bytes: usize::MAX,
            send_wait: std::time::Duration::ZERO,
        }
    }

    /// The same bus with sends to a full topic waiting up to `wait` for room before failing.
    pub fn with_send_wait(mut self, wait: std::time::Duration) -> Self {
        self.send_wait = wait;
        self
    }

    /// The same bus with topics that also hold at most `max_bytes` bytes of keys and payloads.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes.max(1);
        self
    }

    fn state(&self, topic: Topic) -> &TopicState {
        // Every topic is created in `new`.
        &self.topics[&topic]
    }

    /// Joins `group` on `topic`: the consumer starts at the group's committed offset, or at the
    /// oldest retained record for a new group, and takes the partition over from any previous
    /// member of the group.
    pub fn consumer(&self, topic: Topic, group: &str) -> MemoryConsumer {
        let mut log = lock(&self.state(topic).log);
        log.generations += 1;
        let generation = log.generations;
        let base = log.base;
        let entry = log.groups.entry(group.to_owned()).or_insert(Group {
            committed: base,
            owner: 0,
        });
        entry.owner = generation;
        let position = entry.committed;
        drop(log);
        self.state(topic).notify.notify_waiters();
        MemoryConsumer {
            bus: self.clone(),
            topic,
            group: group.to_owned(),
            position,
            generation,
        }
    }

    /// Records not yet committed by the slowest group of `topic`.
    pub fn lag(&self, topic: Topic) -> usize {
        lock(&self.state(topic).log).records.len()
    }

    /// Records `topic` holds and their bytes: those not yet committed by every subscribed group
    /// (or, without subscribers, those retention keeps).
    pub fn held(&self, topic: Topic) -> (usize, usize) {
        let log = lock(&self.state(topic).log);
        (log.records.len(), log.bytes)
    }

    /// Makes room for `extra` records of `extra_bytes`, or says the topic is full.
    fn check_room(
        &self,
        log: &mut Log,
        topic: Topic,
        extra: usize,
        extra_bytes: usize,
    ) -> Result<(), BusError> {
        let full = |log: &Log| {
            extra > 0
                && (log.records.len() + extra > self.capacity
                    || (!log.records.is_empty() && log.bytes + extra_bytes > self.max_bytes))
        };
        log.trim();
        if log.groups.is_empty() {
            while full(log) && log.pop_oldest() {}
        }
        if full(log) {
            return Err(BusError::QueueFull(topic.name()));
        }
        Ok(())
    }
}

impl Producer for MemoryBus {
    async fn send(&self, topic: Topic, key: &[u8], payload: Bytes) -> Result<(), BusError> {
        let state = self.state(topic);
        let deadline = tokio::time::Instant::now() + self.send_wait;
        loop {
            // Registered before the check, so a commit between the check and the wait wakes it.
            let room = state.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            let full = {
                let mut log = lock(&state.log);
                match self.check_room(&mut log, topic, 1, key.len() + payload.len()) {
                    Ok(()) => {
                        log.append(topic, Bytes::copy_from_slice(key), payload);
                        break;
                    }
                    Err(full) => full,
                }
            };
            if tokio::time::timeout_at(deadline, room).await.is_err() {
                metrics::counter!("shrike_bus_queue_full_total", "topic" => topic.name())
                    .increment(1);
                return Err(full);
            }
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
    position: i64,
    generation: u64,
}

impl MemoryConsumer {
    fn try_next(&mut self) -> Option<Record> {
        let log = lock(&self.bus.state(self.topic).log);
        if log.groups.get(&self.group).map(|g| g.owner) != Some(self.generation) {
            return None; // another member owns the partition now
        }
        self.position = self.position.max(log.base);
        let index = usize::try_from(self.position - log.base).ok()?;
        let mut record = log.records.get(index)?.clone();
        record.generation = self.generation;
        self.position += 1;
        Some(record)
    }

    fn commit_locked(&self, log: &mut Log, offset: i64) -> Result<(), BusError> {
        let group = log.groups.get_mut(&self.group).ok_or(BusError::Closed)?;
        if group.owner != self.generation {
            return Err(BusError::Fenced);
        }
        group.committed = group.committed.max(offset + 1);
        log.trim();
        Ok(())
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
        let state = self.bus.state(self.topic);
        self.commit_locked(&mut lock(&state.log), record.offset)?;
        // One record's room wakes one waiting sender, not all of them (hundreds may wait when
        // ingest is overloaded, and the normalizer commits record by record).
        state.room.notify_one();
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), BusError> {
        Ok(())
    }

    fn generation(&self) -> u64 {
        self.generation
    }
}

impl FencedConsumer for MemoryConsumer {
    async fn produce_and_commit(
        &mut self,
        records: Vec<Outgoing>,
        processed: &[Record],
    ) -> Result<(), BusError> {
        // Lock every topic involved in a fixed order, check everything, then apply everything.
        let mut topics: Vec<Topic> = records
            .iter()
            .map(|r| r.topic)
            .chain([self.topic])
            .collect();
        topics.sort();
        topics.dedup();
        let bus = self.bus.clone();
        let mut logs: Vec<(Topic, MutexGuard<'_, Log>)> = topics
            .iter()
            .map(|t| (*t, lock(&bus.state(*t).log)))
            .collect();
        for (topic, log) in logs.iter_mut() {
            let (extra, extra_bytes) = records
                .iter()
                .filter(|r| r.topic == *topic)
                .fold((0, 0), |(n, b), r| {
                    (n + 1, b + r.key.len() + r.payload.len())
                });
            bus.check_room(log, *topic, extra, extra_bytes)
                .inspect_err(|_| {
                    metrics::counter!("shrike_bus_queue_full_total", "topic" => topic.name())
                        .increment(1);
                })?;
        }
        let own = logs
            .iter()
            .position(|(t, _)| *t == self.topic)
            .ok_or(BusError::Closed)?;
        if logs[own].1.groups.get(&self.group).map(|g| g.owner) != Some(self.generation) {
            return Err(BusError::Fenced);
        }
        for record in records {
            if let Some((_, log)) = logs.iter_mut().find(|(t, _)| *t == record.topic) {
                log.append(record.topic, record.key, record.payload);
            }
        }
        if let Some(last) = processed
            .iter()
            .filter(|r| r.topic == self.topic)
            .map(|r| r.offset)
            .max()
        {
            self.commit_locked(&mut logs[own].1, last)?;
        }
        drop(logs);
        for topic in topics {
            bus.state(topic).notify.notify_waiters();
        }
        // A batch frees room for many.
        bus.state(self.topic).room.notify_waiters();
        Ok(())
    }

    async fn read_to_end(&mut self, topic: Topic) -> Result<Vec<Record>, BusError> {
        Ok(lock(&self.bus.state(topic).log)
            .records
            .iter()
            .cloned()
            .collect())
    }
}
