//! The process's producer: idempotent, `acks=all`, a bounded queue; `send` resolves when the
//! broker acknowledged the record and fails fast with [`BusError::QueueFull`] when the queue is
//! full, or with [`BusError::Unavailable`] when no acknowledgement comes within the send timeout;
//! `enqueue` hands a record over and lets the caller await its acknowledgement.
//!
//! How long records wait to share a batch ([`Linger`]) depends on who waits for them: ingest's
//! requests each wait for their own acknowledgement, so its producer lingers 0.5 ms (under load
//! batches fill while the previous request is in flight anyway; measured on the Kafka-mode
//! benchmark, 1 ms cost a quarter of the requests per second and 0 ms half again as much CPU),
//! and sends a batch as soon as it holds 64 KiB (`batch.size`; about twelve 5 KB events) instead of
//! waiting out the linger: librdkafka waits in whole milliseconds, so 0.5 ms is really up to 1 ms,
//! and under load a full batch is ready sooner (measured with ingest alone on the mock broker, 32
//! connections: 19,100 requests/s at the default 1 MB, 24,200/s at 64 KiB, 18,900/s at 16 KiB,
//! whose many small requests cost more CPU). A consumer hands many records over at once, so its
//! producer lingers 5 ms, with the default batch size, for larger batches and fewer requests. Batches are compressed with lz4 (5 KB event JSON shrinks several times
//! at little CPU). `kafka.properties` may change these, but not `acks` or idempotence, on which
//! "a 200 means durable" rests.

use super::{KafkaConfig, setup};
use crate::{BusError, Delivery, Outgoing, Producer, TopicName};
use bytes::Bytes;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use std::sync::Arc;
use std::time::Duration;

/// How long a producer lets records wait to share a batch (`linger.ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linger {
    /// 0.5 ms, or 64 KiB: each record's sender waits for its acknowledgement (ingest).
    Short,
    /// 5 ms: records are handed over many at a time (the consumers' outputs).
    Batch,
}

/// The process's producer.
#[derive(Clone)]
pub struct KafkaProducer {
    producer: FutureProducer,
    config: Arc<KafkaConfig>,
}

impl KafkaProducer {
    /// Creates the idempotent producer.
    pub fn new(config: &KafkaConfig, linger: Linger) -> Result<Self, BusError> {
        let mut client = rdkafka::ClientConfig::new();
        client
            .set(
                "linger.ms",
                match linger {
                    Linger::Short => "0.5",
                    Linger::Batch => "5",
                },
            )
            .set("compression.type", "lz4")
            .set("message.timeout.ms", "300000");
        if linger == Linger::Short {
            client.set("batch.size", "65536");
        }
        let producer: FutureProducer = config
            .client_over(client)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set(
                "queue.buffering.max.messages",
                config.producer_queue_messages.max(1).to_string(),
            )
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
        for record in records {
            let delivery = loop {
                match self.enqueue(record.topic, &record.key, record.payload.clone()) {
                    Err(BusError::QueueFull(_)) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    other => break other?,
                }
            };
            deliveries.push(delivery);
        }
        let mut first_error = None;
        for delivery in deliveries {
            if let (Err(error), None) = (delivery.await, &first_error) {
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

fn send_error(topic: TopicName, error: KafkaError) -> BusError {
    match error {
        KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) => BusError::QueueFull(topic),
        KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge) => {
            BusError::TooLarge(topic)
        }
        other => BusError::Unavailable(other.to_string()),
    }
}

impl Producer for KafkaProducer {
    fn enqueue(&self, topic: TopicName, key: &[u8], payload: Bytes) -> Result<Delivery, BusError> {
        let name = self.config.topic_name(topic);
        let record = FutureRecord::to(&name).key(key).payload(payload.as_ref());
        // A zero queue timeout: a full queue is refused at once instead of waiting.
        let delivery = self
            .producer
            .send_result(record)
            .map_err(|(error, _)| send_error(topic, error))?;
        // No deadline: librdkafka retries until `message.timeout.ms`, and a record given up on
        // here could still be delivered after its input was handed to someone else.
        Ok(Delivery::waiting(async move {
            match delivery.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((error, _))) => Err(send_error(topic, error)),
                Err(_cancelled) => Err(BusError::Closed),
            }
        }))
    }

    async fn send(&self, topic: TopicName, key: &[u8], payload: Bytes) -> Result<(), BusError> {
        let delivery = self.enqueue(topic, key, payload)?;
        match tokio::time::timeout(self.config.send_timeout(), delivery).await {
            Ok(result) => result,
            // The record stays queued and may still be delivered; a retry is deduplicated downstream.
            Err(_elapsed) => Err(BusError::Unavailable(format!(
                "no acknowledgement within {:?}",
                self.config.send_timeout()
            ))),
        }
    }
}
