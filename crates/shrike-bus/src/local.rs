//! The bus of `shrike up`: in this process, one single-partition log per topic with consumer
//! groups and committed offsets, the semantics of a one-partition Kafka topic. In memory only
//! ([`LocalBus::in_memory`]) or journaled to disk ([`LocalBus::journaled`]): a journaled bus writes
//! every record before `send` returns, keeps at most `cache_bytes` of payloads per topic in memory,
//! saves offsets every 100 ms, and redelivers what was not committed after a crash.
//!
//! A full topic makes `send` fail with [`BusError::QueueFull`] (back-pressure) after the optional
//! send wait; a topic nobody subscribes to drops its oldest records instead. Why it is built this
//! way: `docs/architecture.md`.

use crate::journal::{Journal, Location};
use crate::{BusError, Consumer, Delivery, FencedConsumer, Outgoing, Producer, Record, TopicName};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::sync::Notify;

/// `[bus]`: the bus of `shrike up`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalBusConfig {
    /// Journal every record to disk before `send` returns, so that what ingest accepted survives
    /// a crash and a backlog costs disk rather than memory.
    pub durable: bool,
    /// Most uncommitted records per topic; beyond it a send fails (ingest answers 503).
    pub memory_capacity: usize,
    /// Without `durable`: most MiB of uncommitted records per topic; beyond it a send fails.
    /// Either way, what a topic nobody consumes keeps.
    pub memory_max_mib: usize,
    /// With `durable`: MiB of payloads per topic kept in memory; records that arrive while they
    /// fill it are read back from the journal when consumed.
    pub cache_mib: usize,
    /// With `durable`: most MiB of uncommitted records per topic in the journal.
    pub disk_max_mib: usize,
    /// How long a send to a full topic waits for room before it fails, milliseconds.
    pub memory_send_wait_ms: u64,
}

impl Default for LocalBusConfig {
    fn default() -> Self {
        LocalBusConfig {
            durable: true,
            memory_capacity: 1_000_000,
            memory_max_mib: 32,
            cache_mib: 16,
            disk_max_mib: 4096,
            memory_send_wait_ms: 1000,
        }
    }
}

impl LocalBusConfig {
    /// `memory_max_mib` in bytes.
    pub fn memory_topic_bytes(&self) -> usize {
        self.memory_max_mib.saturating_mul(1 << 20)
    }

    /// Checks the settings, naming the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        for (key, value) in [
            ("memory_capacity", self.memory_capacity),
            ("memory_max_mib", self.memory_max_mib),
            ("cache_mib", self.cache_mib),
            ("disk_max_mib", self.disk_max_mib),
        ] {
            if value == 0 {
                return Err(format!("bus.{key} must be at least 1"));
            }
        }
        Ok(())
    }
}

/// Size of a segment of the bus journal: a consumed segment's disk space is freed whole.
const SEGMENT_BYTES: u64 = 64 << 20;

/// How often a durable bus saves its groups' committed offsets.
const SAVE_EVERY: Duration = Duration::from_millis(100);

#[derive(Default)]
struct Group {
    /// Next offset to read after a restart.
    committed: i64,
    /// Generation of the member that owns the partition (0: none since the bus was opened).
    owner: u64,
}

/// A record's key and payload: in memory, or only in the journal. 32 bytes, so that a backlog of a
/// million records held on disk costs 32 MB of memory.
#[derive(Clone)]
enum Payload {
    Memory(Box<(Bytes, Bytes)>),
    Journal(Location),
}

impl Payload {
    /// The key and the payload.
    fn load(self) -> Result<(Bytes, Bytes), BusError> {
        match self {
            Payload::Memory(held) => Ok(*held),
            Payload::Journal(location) => location
                .read()
                .map_err(|e| BusError::Unavailable(format!("reading the bus journal: {e}"))),
        }
    }

    /// The record at `offset` of `topic`, as read by a member of `generation`.
    fn into_record(
        self,
        topic: TopicName,
        offset: i64,
        generation: u64,
    ) -> Result<Record, BusError> {
        let (key, payload) = self.load()?;
        Ok(Record {
            topic,
            partition: 0,
            offset,
            generation,
            key,
            payload,
        })
    }

    /// Bytes of key and payload.
    fn size(&self) -> usize {
        match self {
            Payload::Memory(held) => held.0.len() + held.1.len(),
            Payload::Journal(location) => location.len(),
        }
    }
}

const _: () = assert!(std::mem::size_of::<Payload>() <= 32);

#[derive(Default)]
struct Log {
    /// Offset of `entries[0]`.
    base: i64,
    entries: VecDeque<Payload>,
    /// Bytes of keys and payloads in `entries`.
    bytes: usize,
    /// Bytes of the payloads held in memory.
    cached: usize,
    groups: HashMap<String, Group>,
    generations: u64,
    journal: Option<Journal>,
}

impl Log {
    fn end(&self) -> i64 {
        self.base + self.entries.len() as i64
    }

    /// Drops records every group has committed.
    fn trim(&mut self) {
        let Some(low) = self.groups.values().map(|g| g.committed).min() else {
            return;
        };
        while self.base < low && self.pop_oldest() {}
    }

    fn pop_oldest(&mut self) -> bool {
        let Some(entry) = self.entries.pop_front() else {
            return false;
        };
        self.base += 1;
        self.bytes -= entry.size();
        if let Payload::Memory(held) = &entry {
            self.cached -= held.1.len();
        }
        // Give back what a backlog grew the queue to once it has drained.
        if self.entries.capacity() > 4096 && self.entries.len() < self.entries.capacity() / 8 {
            self.entries.shrink_to(self.entries.capacity() / 2);
        }
        true
    }

    /// Groups saved by an earlier process that no consumer has joined since.
    fn drop_dormant_groups(&mut self) -> bool {
        let before = self.groups.len();
        self.groups.retain(|_, g| g.owner != 0);
        self.groups.len() < before
    }

    /// Appends a record, first to the journal if there is one; its payload stays in memory while
    /// the cached payloads are under `cache_bytes`.
    fn append(&mut self, key: Bytes, payload: Bytes, cache_bytes: usize) -> Result<(), BusError> {
        let size = key.len() + payload.len();
        let payload = match &mut self.journal {
            Some(journal) => {
                let location = journal
                    .append(&key, &payload)
                    .map_err(|e| BusError::Unavailable(format!("writing the bus journal: {e}")))?;
                if self.cached + payload.len() <= cache_bytes {
                    self.cached += payload.len();
                    Payload::Memory(Box::new((key, payload)))
                } else {
                    Payload::Journal(location)
                }
            }
            None => {
                self.cached += payload.len();
                Payload::Memory(Box::new((key, payload)))
            }
        };
        self.bytes += size;
        self.entries.push_back(payload);
        Ok(())
    }

    /// The record at `offset` (still to be loaded).
    fn get(&self, offset: i64) -> Option<Payload> {
        let index = usize::try_from(offset - self.base).ok()?;
        self.entries.get(index).cloned()
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
pub struct LocalBus {
    topics: Arc<HashMap<TopicName, TopicState>>,
    capacity: usize,
    max_bytes: usize,
    retention_bytes: usize,
    cache_bytes: usize,
    send_wait: Duration,
    /// Where a durable bus keeps its journals and offsets.
    durable: Option<Arc<Durable>>,
}

struct Durable {
    dir: PathBuf,
    /// Set when a committed offset changed since the last save.
    dirty: AtomicBool,
    /// Serializes saves.
    saving: Mutex<()>,
    /// Holds the directory's lock while the bus lives.
    _lock: std::fs::File,
}

fn lock(log: &Mutex<Log>) -> MutexGuard<'_, Log> {
    // Every mutation is a single step, so a poisoned log is still consistent.
    log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn setup(what: &str, path: &Path, error: io::Error) -> BusError {
    BusError::Setup(format!("{what} {}: {error}", path.display()))
}

impl LocalBus {
    /// A bus of `topics` in memory, each holding at most `capacity` uncommitted records (and no
    /// byte limit).
    pub fn in_memory(topics: &[TopicName], capacity: usize) -> Self {
        Self::with_logs(topics, capacity, |_| Log::default(), None)
    }

    fn with_logs(
        topics: &[TopicName],
        capacity: usize,
        mut log: impl FnMut(TopicName) -> Log,
        durable: Option<Arc<Durable>>,
    ) -> Self {
        let topics = topics
            .iter()
            .map(|t| {
                (
                    *t,
                    TopicState {
                        log: Mutex::new(log(t)),
                        notify: Notify::new(),
                        room: Notify::new(),
                    },
                )
            })
            .collect();
        LocalBus {
            topics: Arc::new(topics),
            capacity: capacity.max(1),
            max_bytes: usize::MAX,
            retention_bytes: usize::MAX,
            cache_bytes: usize::MAX,
            send_wait: Duration::ZERO,
            durable,
        }
    }

    /// A bus of `topics` journaled under `dir` (created if missing, mode 0700), reopened with
    /// every record no group had committed and the groups' saved offsets. Each topic's journal is
    /// split into segments of about `segment_bytes`. Fails when another bus (in this or another
    /// process) has the directory open.
    pub fn journaled(
        dir: &Path,
        topics: &[TopicName],
        capacity: usize,
        segment_bytes: u64,
    ) -> Result<Self, BusError> {
        crate::journal::private_dir(dir).map_err(|e| setup("cannot create", dir, e))?;
        let lock_path = dir.join("lock");
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| setup("cannot open", &lock_path, e))?;
        // Two writers would write over each other's records. A bus just dropped in this process
        // may hold the lock for a moment longer (its offsets saver finishing a save).
        let mut attempts = 0;
        while lock_file.try_lock().is_err() {
            attempts += 1;
            if attempts == 50 {
                return Err(BusError::Setup(format!(
                    "the bus journal in {} is in use by another shrike process",
                    dir.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let offsets_path = dir.join("offsets");
        let saved = match std::fs::read_to_string(&offsets_path) {
            Ok(text) => parse_offsets(&text).map_err(|line| {
                BusError::Setup(format!(
                    "{}: unreadable line {line:?}",
                    offsets_path.display()
                ))
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(setup("cannot read", &offsets_path, e)),
        };
        let mut logs = HashMap::new();
        for &topic in topics {
            let start = saved
                .iter()
                .filter(|(t, _, _)| t == topic)
                .map(|(_, _, c)| *c)
                .max()
                .unwrap_or(0);
            let topic_dir = dir.join(topic);
            let (journal, recovered) = Journal::open(&topic_dir, start, segment_bytes)
                .map_err(|e| setup("cannot open the bus journal", &topic_dir, e))?;
            let end = journal.end();
            let mut log = Log {
                base: recovered.first().map_or(end, |r| r.offset),
                journal: Some(journal),
                ..Log::default()
            };
            for (_, group, committed) in saved.iter().filter(|(t, _, _)| t == topic) {
                // An offset past the journal's end (the system lost the journal's last pages but
                // kept `offsets`) would make the group skip the records sent from now on.
                log.groups.insert(
                    group.clone(),
                    Group {
                        committed: (*committed).min(end),
                        owner: 0,
                    },
                );
            }
            for record in recovered {
                log.bytes += record.location.len();
                log.entries.push_back(Payload::Journal(record.location));
            }
            log.trim();
            logs.insert(topic, log);
        }
        let durable = Arc::new(Durable {
            dir: dir.to_owned(),
            dirty: AtomicBool::new(false),
            saving: Mutex::new(()),
            _lock: lock_file,
        });
        let bus = Self::with_logs(
            topics,
            capacity,
            |topic| logs.remove(&topic).unwrap_or_default(),
            Some(durable),
        );
        bus.spawn_saver();
        Ok(bus)
    }

    /// The bus `config` describes, of `topics`: journaled under `dir` (reopened with whatever a
    /// previous run left unprocessed) when `config.durable`, in memory otherwise.
    pub fn open(
        config: &LocalBusConfig,
        dir: &Path,
        topics: &[TopicName],
    ) -> Result<Self, BusError> {
        let bus = if config.durable {
            Self::journaled(dir, topics, config.memory_capacity, SEGMENT_BYTES)?
                .with_cache_bytes(config.cache_mib.saturating_mul(1 << 20))
        } else {
            Self::in_memory(topics, config.memory_capacity)
        };
        let max_bytes = if config.durable {
            config.disk_max_mib.saturating_mul(1 << 20)
        } else {
            config.memory_topic_bytes()
        };
        // A topic nobody consumes (dead letters, issue activity) keeps what the in-memory bus would.
        Ok(bus
            .with_max_bytes(max_bytes)
            .with_retention_bytes(config.memory_topic_bytes())
            .with_send_wait(Duration::from_millis(config.memory_send_wait_ms)))
    }

    /// The same bus with sends to a full topic waiting up to `wait` for room before failing.
    pub fn with_send_wait(mut self, wait: Duration) -> Self {
        self.send_wait = wait;
        self
    }

    /// The same bus keeping at most `retention_bytes` of a topic no group subscribes to (the
    /// oldest records are dropped first).
    pub fn with_retention_bytes(mut self, retention_bytes: usize) -> Self {
        self.retention_bytes = retention_bytes;
        self
    }

    /// The same bus with topics that also hold at most `max_bytes` bytes of keys and payloads.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes.max(1);
        self
    }

    /// The same durable bus holding at most `cache_bytes` of payloads per topic in memory; the
    /// others are read back from the journal. (A bus that is not durable holds them all.)
    pub fn with_cache_bytes(mut self, cache_bytes: usize) -> Self {
        self.cache_bytes = cache_bytes;
        self
    }

    /// Saves the offsets every [`SAVE_EVERY`] while the bus is in use, on a thread of its own
    /// (the save writes a file).
    fn spawn_saver(&self) {
        let topics: Weak<HashMap<TopicName, TopicState>> = Arc::downgrade(&self.topics);
        // Weak too: the directory's lock is released as soon as the bus is dropped.
        let Some(durable) = self.durable.as_ref().map(Arc::downgrade) else {
            return;
        };
        let spawned = std::thread::Builder::new()
            .name("bus-offsets".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(SAVE_EVERY);
                    let (Some(topics), Some(durable)) = (topics.upgrade(), durable.upgrade())
                    else {
                        return;
                    };
                    if !durable.dirty.swap(false, Ordering::AcqRel) {
                        continue;
                    }
                    if let Err(error) = save(&topics, &durable) {
                        durable.dirty.store(true, Ordering::Release);
                        tracing::warn!(%error, "cannot save the bus offsets");
                    }
                }
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start the bus offsets saver; offsets are saved on flush only");
        }
    }

    /// Saves the committed offsets and forces the journals to disk (a durable bus; otherwise
    /// nothing to do).
    pub fn sync(&self) -> Result<(), BusError> {
        let Some(durable) = &self.durable else {
            return Ok(());
        };
        durable.dirty.store(false, Ordering::Release);
        save(&self.topics, durable).map_err(|e| {
            durable.dirty.store(true, Ordering::Release);
            BusError::Unavailable(format!("saving the bus offsets: {e}"))
        })?;
        for state in self.topics.values() {
            if let Some(journal) = &lock(&state.log).journal {
                journal
                    .sync()
                    .map_err(|e| BusError::Unavailable(format!("syncing the bus journal: {e}")))?;
            }
        }
        Ok(())
    }

    fn state(&self, topic: TopicName) -> &TopicState {
        // Every topic is created in `new`.
        &self.topics[&topic]
    }

    /// Joins `group` on `topic`: the consumer starts at the group's committed offset, or at the
    /// oldest retained record for a new group, and takes the partition over from any previous
    /// member of the group.
    pub fn consumer(&self, topic: TopicName, group: &str) -> LocalConsumer {
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
        self.changed();
        self.state(topic).notify.notify_waiters();
        LocalConsumer {
            bus: self.clone(),
            topic,
            group: group.to_owned(),
            position,
            generation,
        }
    }

    /// Marks the offsets as changed, for the next save.
    fn changed(&self) {
        if let Some(durable) = &self.durable {
            durable.dirty.store(true, Ordering::Release);
        }
    }

    /// Records of `topic` not yet committed by the slowest group that has a consumer (a group
    /// only saved by an earlier process does not count; without consumers, 0).
    pub fn lag(&self, topic: TopicName) -> usize {
        let log = lock(&self.state(topic).log);
        let end = log.end();
        log.groups
            .values()
            .filter(|g| g.owner != 0)
            .map(|g| usize::try_from(end - g.committed.max(log.base)).unwrap_or(0))
            .max()
            .unwrap_or(0)
    }

    /// What `topic` holds — the records not yet committed by every subscribed group (or, without
    /// subscribers, those retention keeps) — as (records, bytes of keys and payloads, bytes of
    /// payloads in memory).
    pub fn held(&self, topic: TopicName) -> (usize, usize, usize) {
        let log = lock(&self.state(topic).log);
        (log.entries.len(), log.bytes, log.cached)
    }

    /// Makes room for `extra` records of `extra_bytes`, or says the topic is full.
    fn check_room(
        &self,
        log: &mut Log,
        topic: TopicName,
        extra: usize,
        extra_bytes: usize,
    ) -> Result<(), BusError> {
        let full = |log: &Log| {
            extra > 0
                && (log.entries.len() + extra > self.capacity
                    || (!log.entries.is_empty() && log.bytes + extra_bytes > self.max_bytes))
        };
        log.trim();
        if full(log) && log.drop_dormant_groups() {
            log.trim();
        }
        if log.groups.is_empty() {
            let over = |log: &Log| full(log) || log.bytes + extra_bytes > self.retention_bytes;
            while over(log) && log.pop_oldest() {}
        }
        if full(log) {
            return Err(BusError::QueueFull(topic));
        }
        Ok(())
    }
}

impl LocalBus {
    /// Appends a record when its topic has room; the payload comes back when it has none.
    fn try_append(
        &self,
        topic: TopicName,
        key: &[u8],
        payload: Bytes,
    ) -> Result<(), (BusError, Bytes)> {
        let state = self.state(topic);
        {
            let mut log = lock(&state.log);
            if let Err(full) = self.check_room(&mut log, topic, 1, key.len() + payload.len()) {
                return Err((full, payload));
            }
            if let Err(error) = log.append(Bytes::copy_from_slice(key), payload, self.cache_bytes) {
                return Err((error, Bytes::new()));
            }
        }
        state.notify.notify_waiters();
        Ok(())
    }
}

impl Producer for LocalBus {
    async fn send(&self, topic: TopicName, key: &[u8], mut payload: Bytes) -> Result<(), BusError> {
        let state = self.state(topic);
        let deadline = tokio::time::Instant::now() + self.send_wait;
        loop {
            // Registered before the check, so a commit between the check and the wait wakes it.
            let room = state.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            let full = match self.try_append(topic, key, payload) {
                Ok(()) => return Ok(()),
                Err((full @ BusError::QueueFull(_), back)) => {
                    payload = back;
                    full
                }
                Err((error, _)) => return Err(error),
            };
            if tokio::time::timeout_at(deadline, room).await.is_err() {
                metrics::counter!("shrike_bus_queue_full_total", "topic" => topic).increment(1);
                return Err(full);
            }
        }
    }

    /// Appends at once (to the journal, when the bus has one): the delivery is decided before
    /// this returns.
    fn enqueue(&self, topic: TopicName, key: &[u8], payload: Bytes) -> Result<Delivery, BusError> {
        match self.try_append(topic, key, payload) {
            Ok(()) => Ok(Delivery::done(Ok(()))),
            Err((error, _)) => Err(error),
        }
    }
}

/// A member of a consumer group on the in-memory bus.
pub struct LocalConsumer {
    bus: LocalBus,
    topic: TopicName,
    group: String,
    /// Next offset to deliver.
    position: i64,
    generation: u64,
}

impl LocalConsumer {
    fn try_next(&mut self) -> Result<Option<Record>, BusError> {
        let (offset, held) = {
            let log = lock(&self.bus.state(self.topic).log);
            if log.groups.get(&self.group).map(|g| g.owner) != Some(self.generation) {
                return Ok(None); // another member owns the partition now
            }
            self.position = self.position.max(log.base);
            let Some(held) = log.get(self.position) else {
                return Ok(None);
            };
            (self.position, held)
        };
        // Read from the journal (if it must be) without holding the topic.
        let record = held.into_record(self.topic, offset, self.generation)?;
        self.position = offset + 1;
        Ok(Some(record))
    }

    fn commit_locked(&self, log: &mut Log, offset: i64) -> Result<(), BusError> {
        let group = log.groups.get_mut(&self.group).ok_or(BusError::Closed)?;
        if group.owner != self.generation {
            return Err(BusError::Fenced);
        }
        group.committed = group.committed.max(offset + 1);
        log.trim();
        self.bus.changed();
        Ok(())
    }
}

impl Consumer for LocalConsumer {
    async fn recv(&mut self) -> Result<Record, BusError> {
        let bus = self.bus.clone();
        let state = bus.state(self.topic);
        loop {
            let notified = state.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(record) = self.try_next()? {
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
        self.bus.sync()
    }

    fn generation(&self) -> u64 {
        self.generation
    }
}

impl FencedConsumer for LocalConsumer {
    async fn produce_and_commit(
        &mut self,
        records: Vec<Outgoing>,
        processed: &[Record],
    ) -> Result<(), BusError> {
        // Lock every topic involved in a fixed order, check everything, then apply everything.
        let mut topics: Vec<TopicName> = records
            .iter()
            .map(|r| r.topic)
            .chain([self.topic])
            .collect();
        topics.sort();
        topics.dedup();
        let bus = self.bus.clone();
        let mut logs: Vec<(TopicName, MutexGuard<'_, Log>)> = topics
            .iter()
            .map(|t| (*t, lock(&bus.state(t).log)))
            .collect();
        for (topic, log) in logs.iter_mut() {
            let (extra, extra_bytes) = records
                .iter()
                .filter(|r| r.topic == *topic)
                .fold((0, 0), |(n, b), r| {
                    (n + 1, b + r.key.len() + r.payload.len())
                });
            bus.check_room(log, topic, extra, extra_bytes)
                .inspect_err(|_| {
                    metrics::counter!("shrike_bus_queue_full_total", "topic" => *topic)
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
                log.append(record.key, record.payload, bus.cache_bytes)?;
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

    async fn read_to_end(&mut self, topic: TopicName) -> Result<Vec<Record>, BusError> {
        let held: Vec<(i64, Payload)> = {
            let log = lock(&self.bus.state(topic).log);
            (log.base..log.end())
                .filter_map(|offset| log.get(offset).map(|held| (offset, held)))
                .collect()
        };
        held.into_iter()
            .map(|(offset, held)| held.into_record(topic, offset, 0))
            .collect()
    }
}

/// Parses `offsets`: one `topic<TAB>group<TAB>committed` line per group. Returns the bad line.
fn parse_offsets(text: &str) -> Result<Vec<(String, String, i64)>, String> {
    text.lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            let mut fields = line.split('\t');
            match (fields.next(), fields.next(), fields.next(), fields.next()) {
                (Some(topic), Some(group), Some(committed), None) => committed
                    .parse()
                    .map(|c| (topic.to_owned(), group.to_owned(), c))
                    .map_err(|_| line.to_owned()),
                _ => Err(line.to_owned()),
            }
        })
        .collect()
}

/// Writes every group's committed offset to `offsets` (a new file renamed over the old one), as
/// one snapshot taken with every topic locked, then deletes the journal segments the snapshot
/// shows every group past.
fn save(topics: &HashMap<TopicName, TopicState>, durable: &Durable) -> io::Result<()> {
    let _saving = durable
        .saving
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut order: Vec<TopicName> = topics.keys().copied().collect();
    order.sort();
    let mut text = String::new();
    let mut bases = Vec::new();
    {
        // The same lock order as `produce_and_commit`: a snapshot in which a batch's output and
        // its input's commit are both present or both absent.
        let logs: Vec<(TopicName, MutexGuard<'_, Log>)> =
            order.iter().map(|t| (*t, lock(&topics[t].log))).collect();
        for (topic, log) in &logs {
            let mut groups: Vec<(&String, &Group)> = log.groups.iter().collect();
            groups.sort_by(|a, b| a.0.cmp(b.0));
            for (name, group) in groups {
                text.push_str(&format!("{}\t{name}\t{}\n", topic, group.committed));
            }
            bases.push((*topic, log.base));
        }
    }
    let path = durable.dir.join("offsets");
    let temporary = durable.dir.join("offsets.new");
    crate::journal::write_private(&temporary, text.as_bytes())?;
    std::fs::rename(&temporary, &path)?;
    for (topic, base) in bases {
        if let Some(journal) = &mut lock(&topics[&topic].log).journal {
            journal.remove_below(base);
        }
    }
    Ok(())
}
