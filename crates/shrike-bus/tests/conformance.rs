//! One conformance suite, run against every bus implementation: the in-memory bus, the same bus
//! journaled to disk (with a cache so small that payloads are read back from the journal), and
//! Kafka (librdkafka's mock cluster, a real Kafka-protocol broker). Same assertions, same semantics:
//! ordering per key, consumer groups, redelivery of uncommitted records after a crash, and
//! atomic produce-and-commit.

use bytes::Bytes;
use shrike_bus::kafka::mock::MockKafka;
use shrike_bus::kafka::{KafkaConfig, KafkaConsumer, KafkaProducer, LagBoard, Linger};
use shrike_bus::{Consumer, FencedConsumer, LocalBus, Outgoing, Producer, Record, TopicName};

// The transport knows topics by name only; these are the test's own.
const RAW: TopicName = "raw";
const NORMALIZED: TopicName = "normalized";
const ACTIVITY: TopicName = "activity";
const OUTCOMES: TopicName = "outcomes";
const DEAD: TopicName = "dead";
const TOPICS: [TopicName; 5] = [RAW, NORMALIZED, ACTIVITY, OUTCOMES, DEAD];
use std::time::Duration;

trait Harness {
    type P: Producer;
    type C: FencedConsumer;
    fn producer(&self) -> Self::P;
    fn consumer(&self, topic: TopicName, group: &str) -> Self::C;
}

struct Memory(LocalBus);

impl Harness for Memory {
    type P = LocalBus;
    type C = shrike_bus::local::LocalConsumer;
    fn producer(&self) -> LocalBus {
        self.0.clone()
    }
    fn consumer(&self, topic: TopicName, group: &str) -> Self::C {
        self.0.consumer(topic, group)
    }
}

struct Kafka {
    _mock: MockKafka,
    config: KafkaConfig,
}

impl Harness for Kafka {
    type P = KafkaProducer;
    type C = KafkaConsumer;
    fn producer(&self) -> KafkaProducer {
        KafkaProducer::new(&self.config, Linger::Short).expect("producer")
    }
    fn consumer(&self, topic: TopicName, group: &str) -> KafkaConsumer {
        KafkaConsumer::new(
            &self.config,
            group,
            &[topic],
            Some(self.producer()),
            &LagBoard::default(),
        )
        .expect("consumer")
    }
}

fn memory() -> Memory {
    Memory(LocalBus::in_memory(&TOPICS, 10_000))
}

/// A durable bus and the directory it lives in (deleted when dropped).
struct Durable {
    bus: LocalBus,
    _dir: tempfile::TempDir,
}

impl Harness for Durable {
    type P = LocalBus;
    type C = shrike_bus::local::LocalConsumer;
    fn producer(&self) -> LocalBus {
        self.bus.clone()
    }
    fn consumer(&self, topic: TopicName, group: &str) -> Self::C {
        self.bus.consumer(topic, group)
    }
}

fn open(dir: &std::path::Path) -> LocalBus {
    LocalBus::journaled(dir, &TOPICS, 10_000, 256).expect("durable bus")
}

fn durable() -> Durable {
    let dir = tempfile::tempdir().expect("temp dir");
    Durable {
        bus: open(dir.path()).with_cache_bytes(16),
        _dir: dir,
    }
}

fn kafka() -> Kafka {
    let mock = MockKafka::start(1).expect("mock cluster");
    let config = KafkaConfig {
        bootstrap_servers: mock.bootstrap_servers(),
        topic_prefix: "test-".into(),
        producer_queue_messages: 10_000,
        send_timeout_ms: 10_000,
        ..KafkaConfig::default()
    };
    mock.create_topics(&config, &TOPICS, 4).expect("topics");
    Kafka {
        _mock: mock,
        config,
    }
}

async fn recv<C: Consumer>(consumer: &mut C) -> Record {
    tokio::time::timeout(Duration::from_secs(30), consumer.recv())
        .await
        .expect("a record within 30 s")
        .expect("open")
}

async fn nothing_within<C: Consumer>(consumer: &mut C, wait: Duration) {
    if let Ok(Ok(record)) = tokio::time::timeout(wait, consumer.recv()).await {
        panic!("unexpected record {record:?}");
    }
}

fn payload(key: usize, seq: usize) -> Bytes {
    Bytes::from(format!("{key}:{seq}"))
}

async fn ordering_per_key<H: Harness>(h: H) {
    let producer = h.producer();
    let mut consumer = h.consumer(RAW, "order");
    for seq in 0..40 {
        for key in 0..5 {
            producer
                .send(RAW, format!("k{key}").as_bytes(), payload(key, seq))
                .await
                .expect("sent");
        }
    }
    let mut next = [0usize; 5];
    for _ in 0..200 {
        let record = recv(&mut consumer).await;
        let text = String::from_utf8(record.payload.to_vec()).expect("utf8");
        let (key, seq) = text.split_once(':').expect("key:seq");
        let (key, seq): (usize, usize) = (key.parse().expect("key"), seq.parse().expect("seq"));
        assert_eq!(seq, next[key], "key {key} out of order");
        assert_eq!(record.key, Bytes::from(format!("k{key}")));
        next[key] += 1;
    }
    assert_eq!(next, [40; 5]);
}

async fn every_group_sees_every_record<H: Harness>(h: H) {
    let producer = h.producer();
    let mut a = h.consumer(RAW, "group-a");
    let mut b = h.consumer(RAW, "group-b");
    for i in 0..20 {
        producer.send(RAW, b"k", payload(0, i)).await.expect("sent");
    }
    for consumer in [&mut a, &mut b] {
        let mut seen: Vec<Bytes> = Vec::new();
        for _ in 0..20 {
            seen.push(recv(consumer).await.payload);
        }
        assert_eq!(seen, (0..20).map(|i| payload(0, i)).collect::<Vec<_>>());
    }
}

async fn uncommitted_records_are_redelivered<H: Harness>(h: H) {
    let producer = h.producer();
    for i in 0..10 {
        producer
            .send(RAW, b"one-key", payload(0, i))
            .await
            .expect("sent");
    }
    let mut first = h.consumer(RAW, "crashy");
    let mut got = Vec::new();
    for _ in 0..10 {
        got.push(recv(&mut first).await);
    }
    first.commit(&got[3]).expect("commit");
    first.flush().await.expect("flush");
    drop(first); // a crash: records 4..9 were read but never committed

    let mut second = h.consumer(RAW, "crashy");
    for i in 4..10 {
        assert_eq!(recv(&mut second).await.payload, payload(0, i));
    }
    nothing_within(&mut second, Duration::from_millis(500)).await;
}

async fn produce_and_commit_is_atomic<H: Harness>(h: H) {
    let producer = h.producer();
    for i in 0..3 {
        producer
            .send(NORMALIZED, b"k", payload(0, i))
            .await
            .expect("sent");
    }
    let mut consumer = h.consumer(NORMALIZED, "txn");
    let mut reader = h.consumer(ACTIVITY, "activity-reader");
    let r0 = recv(&mut consumer).await;
    let out = Outgoing {
        topic: ACTIVITY,
        key: Bytes::from_static(b"k"),
        payload: Bytes::from_static(b"new"),
    };
    consumer
        .produce_and_commit(vec![out], &[r0])
        .await
        .expect("transaction");
    assert_eq!(recv(&mut reader).await.payload, Bytes::from_static(b"new"));
    let everything = consumer.read_to_end(ACTIVITY).await.expect("read");
    assert_eq!(
        everything
            .iter()
            .filter(|r| r.payload == Bytes::from_static(b"new"))
            .count(),
        1
    );
    drop(consumer);
    // The committed position survives the consumer: the next member starts after record 0.
    let mut next = h.consumer(NORMALIZED, "txn");
    assert_eq!(recv(&mut next).await.payload, payload(0, 1));
}

macro_rules! conformance {
    ($($name:ident),*) => {
        mod on_memory {
            $(#[tokio::test] async fn $name() { super::$name(super::memory()).await })*
        }
        mod on_durable_memory {
            $(#[tokio::test] async fn $name() { super::$name(super::durable()).await })*
        }
        mod on_kafka {
            $(#[tokio::test(flavor = "multi_thread")] async fn $name() {
                tokio::time::timeout(std::time::Duration::from_secs(120), super::$name(super::kafka()))
                    .await
                    .expect("test finished within 120 s")
            })*
        }
    };
}

conformance!(
    ordering_per_key,
    every_group_sees_every_record,
    uncommitted_records_are_redelivered,
    produce_and_commit_is_atomic
);

#[tokio::test]
async fn memory_bus_refuses_records_beyond_capacity() {
    let bus = LocalBus::in_memory(&TOPICS, 2);
    let mut c = bus.consumer(RAW, "g");
    bus.send(RAW, b"k", Bytes::from_static(b"1"))
        .await
        .expect("sent");
    bus.send(RAW, b"k", Bytes::from_static(b"2"))
        .await
        .expect("sent");
    assert!(bus.send(RAW, b"k", Bytes::from_static(b"3")).await.is_err());
    let r = recv(&mut c).await;
    c.commit(&r).expect("commit");
    bus.send(RAW, b"k", Bytes::from_static(b"3"))
        .await
        .expect("room after commit");
}

#[tokio::test]
async fn memory_bus_refuses_bytes_beyond_its_limit_but_takes_one_large_record() {
    // 1 byte of key plus 10 of payload per record: two fit in 25 bytes, a third does not.
    let bus = LocalBus::in_memory(&TOPICS, 100).with_max_bytes(25);
    let mut c = bus.consumer(RAW, "g");
    let ten = || Bytes::from_static(b"0123456789");
    bus.send(RAW, b"k", ten()).await.expect("sent");
    bus.send(RAW, b"k", ten()).await.expect("sent");
    assert_eq!(bus.held(RAW), (2, 22, 20));
    assert!(matches!(
        bus.send(RAW, b"k", ten()).await,
        Err(shrike_bus::BusError::QueueFull(_))
    ));
    for _ in 0..2 {
        let r = recv(&mut c).await;
        c.commit(&r).expect("commit");
    }
    // Empty again: a record larger than the limit is taken rather than refused forever, and its
    // consumer can still commit it.
    let big = Bytes::from(vec![b'x'; 100]);
    bus.send(RAW, b"k", big).await.expect("large record");
    assert_eq!(bus.held(RAW), (1, 101, 100));
    assert!(bus.send(RAW, b"k", ten()).await.is_err());
    let r = recv(&mut c).await;
    assert_eq!(r.payload.len(), 100);
    c.commit(&r).expect("commit");
    bus.send(RAW, b"k", ten()).await.expect("room after commit");
    assert_eq!(bus.held(RAW), (1, 11, 10));
}

#[tokio::test]
async fn a_send_to_a_full_memory_topic_waits_for_a_commit() {
    let bus = LocalBus::in_memory(&TOPICS, 1).with_send_wait(Duration::from_secs(5));
    let mut c = bus.consumer(RAW, "g");
    bus.send(RAW, b"k", Bytes::from_static(b"1"))
        .await
        .expect("sent");
    let sender = {
        let bus = bus.clone();
        tokio::spawn(async move { bus.send(RAW, b"k", Bytes::from_static(b"2")).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!sender.is_finished(), "the second send waits for room");
    let first = recv(&mut c).await;
    c.commit(&first).expect("commit");
    sender
        .await
        .expect("joins")
        .expect("sent once room was made");
    assert_eq!(recv(&mut c).await.payload, Bytes::from_static(b"2"));

    // Nobody commits: the wait ends in QueueFull.
    let short = LocalBus::in_memory(&TOPICS, 1).with_send_wait(Duration::from_millis(50));
    let _c = short.consumer(RAW, "g");
    short
        .send(RAW, b"k", Bytes::from_static(b"1"))
        .await
        .expect("sent");
    assert!(matches!(
        short.send(RAW, b"k", Bytes::from_static(b"2")).await,
        Err(shrike_bus::BusError::QueueFull(_))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_producer_reports_an_unavailable_broker() {
    let h = kafka();
    let producer = h.producer();
    producer
        .send(RAW, b"k", Bytes::from_static(b"up"))
        .await
        .expect("sent while up");
    h._mock.set_down(true).expect("down");
    let config = KafkaConfig {
        send_timeout_ms: 500,
        ..h.config.clone()
    };
    let impatient = KafkaProducer::new(&config, Linger::Short).expect("producer");
    assert!(
        impatient
            .send(RAW, b"k", Bytes::from_static(b"down"))
            .await
            .is_err()
    );
    h._mock.set_down(false).expect("up");
    let recovered = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if impatient
                .send(RAW, b"k", Bytes::from_static(b"again"))
                .await
                .is_ok()
            {
                return;
            }
        }
    })
    .await;
    assert!(
        recovered.is_ok(),
        "producer did not recover after the broker came back"
    );
}

/// Segment files in use (consumed ones are deleted or kept as `spare-*`).
fn segments(dir: &std::path::Path, topic: TopicName) -> usize {
    std::fs::read_dir(dir.join(topic))
        .expect("topic directory")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".log"))
        })
        .count()
}

#[tokio::test]
async fn a_durable_bus_reopens_with_uncommitted_records_and_saved_offsets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bus = open(dir.path());
    let mut c = bus.consumer(RAW, "g");
    for seq in 0..5 {
        bus.send(RAW, b"k", payload(0, seq)).await.expect("sent");
    }
    for _ in 0..2 {
        let r = recv(&mut c).await;
        c.commit(&r).expect("commit");
    }
    c.flush().await.expect("offsets saved");
    // A crash: nothing else is saved, nothing shut down.
    drop((c, bus));
    let bus = open(dir.path());
    let mut c = bus.consumer(RAW, "g");
    for seq in 2..5 {
        let r = recv(&mut c).await;
        assert_eq!((r.offset, r.payload), (seq as i64, payload(0, seq)));
    }
    bus.send(RAW, b"k", payload(0, 5)).await.expect("sent");
    let r = recv(&mut c).await;
    assert_eq!((r.offset, &r.payload), (5, &payload(0, 5)));
    // Without a flush, the saver thread saves the commit within its interval.
    c.commit(&r).expect("commit");
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop((c, bus));
    let bus = open(dir.path());
    let mut c = bus.consumer(RAW, "g");
    nothing_within(&mut c, Duration::from_millis(200)).await;
    assert_eq!(bus.held(RAW).0, 0);
}

#[tokio::test]
async fn a_durable_bus_keeps_only_its_cache_in_memory_and_retires_consumed_segments() {
    let dir = tempfile::tempdir().expect("temp dir");
    // 256-byte segments; room for one 10-byte payload in memory.
    let bus = open(dir.path()).with_cache_bytes(15);
    let mut c = bus.consumer(RAW, "g");
    for seq in 0..40 {
        bus.send(RAW, b"k", Bytes::from(format!("{seq:010}")))
            .await
            .expect("sent");
    }
    assert_eq!(bus.held(RAW), (40, 440, 10));
    assert!(segments(dir.path(), RAW) > 1);
    for seq in 0..40 {
        let r = recv(&mut c).await;
        assert_eq!(r.payload, Bytes::from(format!("{seq:010}")));
        c.commit(&r).expect("commit");
    }
    assert_eq!(bus.held(RAW), (0, 0, 0));
    bus.sync().expect("sync");
    assert_eq!(segments(dir.path(), RAW), 1);
}

#[tokio::test]
async fn a_group_no_consumer_rejoins_gives_way_when_its_topic_is_full() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ten = || Bytes::from_static(b"0123456789");
    let bus = open(dir.path());
    let _old = bus.consumer(OUTCOMES, "old");
    for _ in 0..2 {
        bus.send(OUTCOMES, b"k", ten()).await.expect("sent");
    }
    bus.sync().expect("sync");
    drop((_old, bus));
    // Reopened with room for two records; group "old" is saved but never joins again.
    let bus = open(dir.path()).with_max_bytes(25);
    let mut new = bus.consumer(OUTCOMES, "new");
    for _ in 0..2 {
        let r = recv(&mut new).await;
        new.commit(&r).expect("commit");
    }
    bus.send(OUTCOMES, b"k", ten())
        .await
        .expect("the dormant group's records made room");
    assert_eq!(bus.held(OUTCOMES).0, 1);
}

#[tokio::test]
async fn one_durable_bus_at_a_time_per_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bus = open(dir.path());
    let second = LocalBus::journaled(dir.path(), &TOPICS, 10, 256)
        .err()
        .expect("refused");
    assert!(second.to_string().contains("in use"), "{second}");
    drop(bus);
    open(dir.path());
}

#[tokio::test]
async fn a_saved_offset_past_the_journal_end_does_not_skip_new_records() {
    let dir = tempfile::tempdir().expect("temp dir");
    drop(open(dir.path()));
    // `offsets` survived a system crash that the journal's last pages did not.
    std::fs::write(dir.path().join("offsets"), "events-raw\tg\t1000\n").expect("offsets");
    let bus = open(dir.path());
    let mut c = bus.consumer(RAW, "g");
    bus.send(RAW, b"k", payload(0, 0)).await.expect("sent");
    assert_eq!(recv(&mut c).await.payload, payload(0, 0));
}

#[tokio::test]
async fn a_topic_nobody_consumes_keeps_only_its_retention() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bus = open(dir.path()).with_retention_bytes(25);
    for seq in 0..5 {
        bus.send(DEAD, b"k", Bytes::from(format!("{seq:010}")))
            .await
            .expect("sent");
    }
    assert_eq!(bus.held(DEAD).0, 2);
    assert_eq!(bus.lag(DEAD), 0, "no consumer, nothing to wait for");
}

/// librdkafka's mock keeps only 5 MiB per partition: a group further behind finds its committed
/// offset gone, which only the mock lets a test arrange at will.
#[tokio::test(flavor = "multi_thread")]
async fn a_committed_offset_the_broker_no_longer_has_is_never_skipped_silently() {
    let h = kafka();
    let producer = h.producer();
    producer
        .send(RAW, b"k", Bytes::from_static(b"first"))
        .await
        .expect("sent");
    let mut consumer = h.consumer(RAW, "lagging");
    let first = recv(&mut consumer).await;
    consumer.commit(&first).expect("commit");
    consumer.flush().await.expect("flush");
    drop(consumer);
    // 7 MiB more on the same partition (same key): the records after the commit are dropped.
    // Random bytes, so that the producer's compression cannot shrink them under the mock's 5 MiB.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let big: Bytes = (0..100 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect::<Vec<u8>>()
        .into();
    for _ in 0..70 {
        producer.send(RAW, b"k", big.clone()).await.expect("sent");
    }

    let mut consumer = h.consumer(RAW, "lagging");
    let stopped = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
        .await
        .expect("an answer within 30 s");
    match stopped {
        Err(shrike_bus::BusError::OffsetsLost(what)) => {
            assert!(
                what.contains(&format!("partition {}", first.partition))
                    && what.contains("offsets lost"),
                "{what}"
            );
        }
        other => panic!("expected OffsetsLost, got {other:?}"),
    }
    drop(consumer);

    // Told to, it goes on from the oldest record left.
    let config = KafkaConfig {
        offset_reset: shrike_bus::kafka::OffsetReset::Earliest,
        ..h.config.clone()
    };
    let mut consumer = KafkaConsumer::new(&config, "lagging", &[RAW], None, &LagBoard::default())
        .expect("consumer");
    let next = recv(&mut consumer).await;
    assert!(next.offset > first.offset + 1, "{next:?}");
    assert_eq!(next.payload.len(), big.len());
}

/// The fence for real: a batch fetched before a rebalance is refused whole, nothing produced.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_fetched_before_a_rebalance_is_fenced() {
    let h = kafka();
    h.producer()
        .send(NORMALIZED, b"k", Bytes::from_static(b"x"))
        .await
        .expect("sent");
    let mut first = h.consumer(NORMALIZED, "fenced");
    let record = recv(&mut first).await;
    // A second member joins: the rebalance revokes the first one's partitions.
    let _second = h.consumer(NORMALIZED, "fenced");
    tokio::time::timeout(Duration::from_secs(30), async {
        while first.generation() == record.generation {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a rebalance within 30 s");
    let out = Outgoing {
        topic: ACTIVITY,
        key: Bytes::from_static(b"k"),
        payload: Bytes::from_static(b"announced"),
    };
    assert_eq!(
        first.produce_and_commit(vec![out], &[record]).await,
        Err(shrike_bus::BusError::Fenced)
    );
    let mut reader = h.consumer(ACTIVITY, "reader");
    nothing_within(&mut reader, Duration::from_secs(2)).await;
}
