//! The transform window on Kafka (librdkafka's mock cluster, the one broker whose brokers a test
//! can take down one at a time): while the broker that leads the output topic is down, nothing
//! is committed and only a window's worth of records is taken; once it is back, every record
//! arrives and the group catches up.

use bytes::Bytes;
use shrike_bus::kafka::mock::MockKafka;
use shrike_bus::kafka::{KafkaConfig, KafkaConsumer, KafkaProducer, LagBoard, Linger};
use shrike_bus::{BusError, Consumer, Outgoing, Producer, Record};
use shrike_consumer::{WindowLimits, transform};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const IN: &str = "in";
const OUT: &str = "out";
const RECORDS: usize = 2_000;
const WINDOW: usize = 100;

/// The Kafka consumer, counting the records the transform takes from it.
struct Counted {
    inner: KafkaConsumer,
    taken: Arc<AtomicUsize>,
}

impl Consumer for Counted {
    async fn recv(&mut self) -> Result<Record, BusError> {
        let record = self.inner.recv().await?;
        self.taken.fetch_add(1, Ordering::SeqCst);
        Ok(record)
    }
    fn commit(&mut self, record: &Record) -> Result<(), BusError> {
        self.inner.commit(record)
    }
    async fn flush(&mut self) -> Result<(), BusError> {
        self.inner.flush().await
    }
    fn generation(&self) -> u64 {
        self.inner.generation()
    }
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_output_broker_holds_commits_back_and_nothing_is_lost() {
    let mock = MockKafka::start(2).expect("mock cluster");
    let config = KafkaConfig {
        bootstrap_servers: mock.bootstrap_servers(),
        ..KafkaConfig::default()
    };
    mock.create_topics(&config, &[IN, OUT, "dead-letter"], 1)
        .expect("topics");
    mock.set_leader(&config, IN, 0, 1).expect("leader");
    mock.set_leader(&config, OUT, 0, 2).expect("leader");
    let producer = KafkaProducer::new(&config, Linger::Short).expect("producer");
    for i in 0..RECORDS {
        producer
            .send(IN, b"", Bytes::from(format!("record {i}")))
            .await
            .expect("sent");
    }

    // The output topic's broker goes away; the transform starts.
    mock.set_broker_down(2, true).expect("down");
    let lag = LagBoard::default();
    let taken = Arc::new(AtomicUsize::new(0));
    let consumer = Counted {
        inner: KafkaConsumer::new(&config, "g", &[IN], None, &lag).expect("consumer"),
        taken: taken.clone(),
    };
    let output = KafkaProducer::new(&config, Linger::Batch).expect("producer");
    let shutdown = CancellationToken::new();
    let limits = WindowLimits {
        records: WINDOW,
        bytes: 1 << 20,
        drain: Duration::from_secs(30),
    };
    let task = tokio::spawn(transform(
        consumer,
        output,
        limits,
        "g",
        |record: &Record| {
            Ok(Outgoing {
                topic: OUT,
                key: record.key.clone(),
                payload: record.payload.clone(),
            })
        },
        shutdown.clone(),
    ));
    // librdkafka reports lag every 5 s: the group has committed nothing.
    wait_for("a lag report", Duration::from_secs(20), || {
        lag.total("g").is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        lag.total("g"),
        Some(RECORDS as i64),
        "nothing committed while no output was acknowledged"
    );
    assert_eq!(
        taken.load(Ordering::SeqCst),
        WINDOW,
        "a full window stops the taking"
    );

    // The broker returns: every output is delivered and the group catches up.
    mock.set_broker_down(2, false).expect("up");
    wait_for("the group caught up", Duration::from_secs(60), || {
        lag.total("g") == Some(0)
    })
    .await;
    shutdown.cancel();
    task.await.expect("joins").expect("clean stop");

    let mut reader =
        KafkaConsumer::new(&config, "reader", &[OUT], None, &LagBoard::default()).expect("reader");
    let mut seen = HashSet::new();
    while seen.len() < RECORDS {
        let record = tokio::time::timeout(Duration::from_secs(30), reader.recv())
            .await
            .expect("every output arrives")
            .expect("open");
        seen.insert(record.payload);
    }
    for i in 0..RECORDS {
        assert!(
            seen.contains(format!("record {i}").as_bytes()),
            "record {i}"
        );
    }
}
