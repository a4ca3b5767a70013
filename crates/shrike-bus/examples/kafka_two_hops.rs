//! The Kafka-mode benchmark's yardstick: how fast a plain Kafka client moves events through a
//! broker over the two hops Shrike's events take (raw, then normalized), with nothing done to
//! them in between. Shrike's own producer and consumer settings, fresh topics per run.
//!
//! ```sh
//! cargo run --release -p shrike-bus --features kafka --example kafka_two_hops -- \
//!     BOOTSTRAP EVENTS PARTITIONS PAYLOAD_FILE [NORMALIZED_BYTES [PREFIX]]
//! ```
//!
//! `PAYLOAD_FILE` holds `shrike-load sample` output; every third line (an event) is a raw
//! payload. The second hop forwards the first `NORMALIZED_BYTES` (default 1,850: the size of a
//! normalized message of those events) of each. With `PREFIX`, the topics `PREFIX`events-raw and
//! `PREFIX`events-normalized must exist and be empty (for brokers without the admin API, such as
//! librdkafka's mock); otherwise fresh topics are created. Prints one line of JSON.

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use shrike_bus::kafka::{
    KafkaConfig, KafkaConsumer, KafkaProducer, LagBoard, Linger, create_topics,
};
use shrike_bus::{BusError, Consumer, Producer};
use std::time::{Duration, Instant};

const RAW: &str = "events-raw";
const NORMALIZED: &str = "events-normalized";

/// Acknowledgements awaited at once per hop (Shrike's normalizer window holds 10,000 records).
const IN_FLIGHT: usize = 10_000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, events, partitions, file, rest @ ..] = args.as_slice() else {
        return Err(
            "usage: BOOTSTRAP EVENTS PARTITIONS PAYLOAD_FILE [NORMALIZED_BYTES [PREFIX]]".into(),
        );
    };
    let events: usize = events.parse()?;
    let normalized_bytes: usize = rest.first().map_or(Ok(1_850), |n| n.parse())?;
    let text = std::fs::read_to_string(file)?;
    let payloads: Vec<Bytes> = text
        .lines()
        .skip(2)
        .step_by(3)
        .map(|line| Bytes::copy_from_slice(line.as_bytes()))
        .collect();
    if payloads.is_empty() {
        return Err("no payloads in the file".into());
    }
    let existing = rest.get(1);
    let config = KafkaConfig {
        bootstrap_servers: bootstrap.clone(),
        topic_prefix: match existing {
            Some(prefix) => prefix.clone(),
            None => format!("probe-{}-", std::process::id()),
        },
        partitions: partitions.parse()?,
        ..KafkaConfig::default()
    };
    if existing.is_none() {
        create_topics(&config, &[RAW, NORMALIZED], &[]).await?;
    }
    let producer = KafkaProducer::new(&config, Linger::Batch)?;
    let lag = LagBoard::default();
    let mut sink = KafkaConsumer::new(&config, "probe-sink", &[NORMALIZED], None, &lag)?;
    let mut relay = KafkaConsumer::new(&config, "probe-relay", &[RAW], None, &lag)?;

    let started = Instant::now();
    let relayed = {
        let producer = producer.clone();
        tokio::spawn(async move {
            let mut acks = FuturesUnordered::new();
            for _ in 0..events {
                if acks.len() >= IN_FLIGHT {
                    acks.next().await.transpose()?;
                }
                let record = relay.recv().await?;
                let cut = record.payload.len().min(normalized_bytes);
                let delivery = send(
                    &producer,
                    NORMALIZED,
                    &record.key,
                    record.payload.slice(..cut),
                )
                .await?;
                acks.push(delivery);
                relay.commit(&record)?;
            }
            while acks.next().await.transpose()?.is_some() {}
            relay.flush().await?;
            Ok::<Instant, BusError>(Instant::now())
        })
    };
    let received = tokio::spawn(async move {
        for _ in 0..events {
            let record = sink.recv().await?;
            sink.commit(&record)?;
        }
        sink.flush().await?;
        Ok::<Instant, BusError>(Instant::now())
    });
    let mut acks = FuturesUnordered::new();
    for i in 0..events {
        if acks.len() >= IN_FLIGHT {
            acks.next().await.transpose()?;
        }
        let key = format!("{i:032x}");
        let delivery = send(
            &producer,
            RAW,
            key.as_bytes(),
            payloads[i % payloads.len()].clone(),
        )
        .await?;
        acks.push(delivery);
    }
    while acks.next().await.transpose()?.is_some() {}
    let produced = started.elapsed();
    let relayed = relayed.await??.duration_since(started);
    let done = received.await??.duration_since(started);
    println!(
        "{{\"events\": {events}, \"produce_secs\": {:.2}, \"first_hop_secs\": {:.2}, \
         \"two_hops_secs\": {:.2}, \"produce_per_sec\": {:.0}, \"two_hops_per_sec\": {:.0}}}",
        produced.as_secs_f64(),
        relayed.as_secs_f64(),
        done.as_secs_f64(),
        events as f64 / produced.as_secs_f64(),
        events as f64 / done.as_secs_f64(),
    );
    Ok(())
}

/// Hands a record to the producer, waiting while its queue is full.
async fn send(
    producer: &KafkaProducer,
    topic: &'static str,
    key: &[u8],
    payload: Bytes,
) -> Result<shrike_bus::Delivery, BusError> {
    loop {
        match producer.enqueue(topic, key, payload.clone()) {
            Err(BusError::QueueFull(_)) => tokio::time::sleep(Duration::from_millis(1)).await,
            other => return other,
        }
    }
}
