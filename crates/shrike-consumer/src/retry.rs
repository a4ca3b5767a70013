//! Retrying with exponential backoff: sends the bus refuses for now (full, broker away), and
//! writes the store refuses for now.

use crate::outgoing;
use shrike_bus::{BusError, Producer, TopicName};
use shrike_messages::BusMessage;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Delays that double from `initial` up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// Starts at `initial`, never above `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff { next: initial, max }
    }

    /// The delay before the next attempt.
    pub fn delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// Sleeps for the next delay.
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.delay()).await;
    }
}

/// Sends, waiting while the bus is full or the broker unavailable; fails when the bus is closed
/// or the record can never fit.
pub async fn send_with_backoff<P: Producer>(
    producer: &P,
    topic: TopicName,
    key: &[u8],
    payload: bytes::Bytes,
) -> Result<(), BusError> {
    let backoff = Backoff::new(Duration::from_millis(5), Duration::from_secs(1));
    while_refused(backoff, || producer.send(topic, key, payload.clone())).await
}

/// Runs `attempt` until the bus stops refusing it for now (full, broker away), waiting with
/// `backoff` in between; any other outcome is returned.
pub(crate) async fn while_refused<T, Fut>(
    mut backoff: Backoff,
    mut attempt: impl FnMut() -> Fut,
) -> Result<T, BusError>
where
    Fut: Future<Output = Result<T, BusError>>,
{
    loop {
        match attempt().await {
            Err(error @ (BusError::QueueFull(_) | BusError::Unavailable(_))) => {
                tracing::debug!(%error, "bus refused a record; retrying");
                backoff.wait().await;
            }
            other => return other,
        }
    }
}

/// Produces `message` on its topic with its key, once (the caller decides about failures).
pub async fn publish<P: Producer, M: BusMessage>(
    producer: &P,
    message: &M,
) -> Result<(), BusError> {
    let record = outgoing(message);
    producer
        .send(record.topic, &record.key, record.payload)
        .await
}

/// Runs `attempt` until it succeeds, with backoff from 100 ms to 5 s; `None` once `shutdown` has
/// fired and attempts kept failing for 10 seconds (the work stays uncommitted, for the next run).
pub async fn retry<T, E, F, Fut>(
    what: &str,
    shutdown: &CancellationToken,
    mut attempt: F,
) -> Option<T>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        match attempt().await {
            Ok(value) => return Some(value),
            Err(error) => {
                tracing::warn!(what, %error, "request failed, retrying");
                metrics::counter!("shrike_retries_total", "what" => what.to_owned()).increment(1);
                if shutdown.is_cancelled() && Instant::now() > give_up {
                    return None;
                }
                backoff.wait().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_maximum() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let delays: Vec<u128> = (0..4).map(|_| backoff.delay().as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 350, 350]);
    }

    #[tokio::test]
    async fn retries_until_success_and_gives_up_only_after_shutdown() {
        let shutdown = CancellationToken::new();
        let mut failures = 2;
        let value = retry("test", &shutdown, || {
            let fail = failures > 0;
            failures -= 1;
            async move { if fail { Err("not yet") } else { Ok(7) } }
        })
        .await;
        assert_eq!(value, Some(7));
        shutdown.cancel();
        let started = Instant::now();
        let never: Option<()> = retry("test", &shutdown, || async { Err("down") }).await;
        assert_eq!(never, None);
        assert!(started.elapsed() >= Duration::from_secs(10));
    }
}
