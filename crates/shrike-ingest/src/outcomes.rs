//! Outcomes: what happened to every item ingest received — accepted, rate limited, invalid, or
//! discarded by the SDK itself (client reports) — counted per project, category, outcome, reason
//! and minute, and flushed to the outcomes topic every second (Relay aggregates the same way).
//! Counting is in memory; a record that the bus refuses is kept and retried, never dropped.

use shrike_bus::Producer;
use shrike_messages::{BusMessage, pb};
use shrike_protocol::category::Outcome;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// One counter's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OutcomeKey {
    /// Project.
    pub project_id: u64,
    /// Data category (`error`, `session`, ...).
    pub category: String,
    /// What happened.
    pub outcome: Outcome,
    /// Why, for anything but `accepted`.
    pub reason: String,
    /// Start of the minute, Unix milliseconds.
    pub minute_ms: i64,
}

/// Shared outcome counters. Cheap to clone.
#[derive(Clone, Default)]
pub struct Outcomes {
    counts: Arc<Mutex<HashMap<OutcomeKey, u64>>>,
}

fn minute(now_ms: i64) -> i64 {
    now_ms - now_ms.rem_euclid(60_000)
}

impl Outcomes {
    /// Counts `quantity` items.
    pub fn record(
        &self,
        project_id: u64,
        category: impl AsRef<str>,
        outcome: Outcome,
        reason: &str,
        quantity: u64,
    ) {
        if quantity == 0 {
            return;
        }
        let key = OutcomeKey {
            project_id,
            category: category.as_ref().to_owned(),
            outcome,
            reason: reason.to_owned(),
            minute_ms: minute(chrono::Utc::now().timestamp_millis()),
        };
        *self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default() += quantity;
    }

    fn take(&self) -> HashMap<OutcomeKey, u64> {
        std::mem::take(&mut *self.counts.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn put_back(&self, key: OutcomeKey, quantity: u64) {
        *self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default() += quantity;
    }

    /// Produces the counters gathered so far; what the bus refuses stays for the next flush.
    pub async fn flush<P: Producer>(&self, producer: &P) {
        for (key, quantity) in self.take() {
            let message = pb::Outcome {
                project_id: key.project_id,
                category: key.category.clone(),
                outcome: key.outcome.as_str().to_owned(),
                reason: key.reason.clone(),
                quantity,
                timestamp_ms: key.minute_ms,
                id: Uuid::new_v4().as_bytes().to_vec(),
            };
            let (topic, routing, payload) = message.record();
            if let Err(error) = producer.send(topic, &routing, payload).await {
                tracing::debug!(%error, "outcome not produced yet; keeping it");
                self.put_back(key, quantity);
            }
        }
    }

    /// Flushes every `interval` until `shutdown`, then once more.
    pub fn spawn_flusher<P: Producer>(
        &self,
        producer: P,
        interval: Duration,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let outcomes = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            loop {
                tokio::select! {
                    _ = ticker.tick() => outcomes.flush(&producer).await,
                    () = shutdown.cancelled() => {
                        outcomes.flush(&producer).await;
                        return;
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shrike_bus::{Consumer, LocalBus};
    use shrike_messages::Topic;
    use shrike_protocol::category::DataCategory;

    #[tokio::test]
    async fn aggregates_and_flushes_per_key() {
        let bus = LocalBus::in_memory(&Topic::NAMES, 100);
        let mut consumer = bus.consumer(Topic::Outcomes.name(), "test");
        let outcomes = Outcomes::default();
        outcomes.record(1, DataCategory::Error, Outcome::Accepted, "", 1);
        outcomes.record(1, DataCategory::Error, Outcome::Accepted, "", 2);
        outcomes.record(1, DataCategory::Error, Outcome::RateLimited, "key_quota", 1);
        outcomes.flush(&bus).await;
        let mut seen = Vec::new();
        for _ in 0..2 {
            let record = consumer.recv().await.expect("record");
            let outcome: pb::Outcome = shrike_messages::decode(&record.payload).expect("decodes");
            seen.push((outcome.outcome, outcome.reason, outcome.quantity));
        }
        seen.sort();
        assert_eq!(
            seen,
            vec![
                ("accepted".into(), "".into(), 3),
                ("rate_limited".into(), "key_quota".into(), 1)
            ]
        );
        assert!(outcomes.take().is_empty());
    }
}
