//! A consumer that turns each record into one output record: taken, processed and handed to the
//! bus without waiting for the acknowledgement, many at once within a [`Window`]; committed per
//! partition once every output up to it is acknowledged. A record that cannot be processed
//! becomes a dead letter in its place. It never waits on one delivery before taking the next
//! record, and never takes more than the window holds.

use crate::retry::while_refused;
use crate::window::{Slot, Window, WindowLimits};
use crate::{Backoff, ProcessError, dead_letter};
use shrike_bus::{BusError, Consumer, Delivery, Outgoing, Producer, Record};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs until `shutdown` fires (then waits for what is in flight and flushes the commits) or the
/// bus fails. `process` turns a record into the record to produce; consumer `group` names the
/// dead letters and the metrics.
pub async fn transform<C, P, F>(
    mut consumer: C,
    producer: P,
    limits: WindowLimits,
    group: &'static str,
    mut process: F,
    shutdown: CancellationToken,
) -> Result<(), BusError>
where
    C: Consumer,
    P: Producer,
    F: FnMut(&Record) -> Result<Outgoing, ProcessError> + Send,
{
    let mut window = Window::new(limits);
    let gauges = Gauges::new(group);
    loop {
        gauges.set(&window);
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some((slot, result)) = window.next_delivery(), if !window.is_empty() => {
                delivered(&mut consumer, &producer, &mut window, group, slot, result).await?;
            }
            record = consumer.recv(), if !window.is_full() => {
                let record = record?;
                let output = process(&record).unwrap_or_else(|error| dead_letter(&record, group, &error));
                let (output, delivery) = hand_over_or_dead_letter(&producer, &record, output, group).await?;
                window.push(record, output, delivery);
            }
        }
    }
    let drained = tokio::time::timeout(limits.drain, async {
        while let Some((slot, result)) = window.next_delivery().await {
            delivered(&mut consumer, &producer, &mut window, group, slot, result).await?;
        }
        Ok::<_, BusError>(())
    })
    .await;
    if let Ok(Err(error)) = drained {
        return Err(error);
    }
    if drained.is_err() {
        let (records, _) = window.size();
        tracing::warn!(
            group,
            records,
            "stopping with unacknowledged records; they are redelivered after the restart"
        );
    }
    gauges.set(&window);
    consumer.flush().await
}

/// Acts on a decided delivery: commits what it completes, or hands the record over again.
async fn delivered<C: Consumer, P: Producer>(
    consumer: &mut C,
    producer: &P,
    window: &mut Window,
    group: &'static str,
    slot: Slot,
    result: Result<(), BusError>,
) -> Result<(), BusError> {
    match result {
        Ok(()) => {
            if let Some(upto) = window.acknowledge(slot) {
                consumer.commit(&upto)?;
            }
            metrics::counter!("shrike_consumer_delivered_total", "group" => group).increment(1);
            Ok(())
        }
        Err(BusError::Closed) => Err(BusError::Closed),
        Err(error) => {
            let Some((record, output)) = window.entry(slot) else {
                return Ok(());
            };
            let (record, output) = (record.clone(), output.clone());
            let output = if let BusError::TooLarge(topic) = error {
                // The broker refused the output for its size: the input goes to the dead
                // letters instead.
                dead_letter(&record, group, &ProcessError::TooLarge(topic))
            } else {
                tracing::warn!(group, %error, "delivery failed; handing the record over again");
                metrics::counter!("shrike_consumer_redeliveries_total", "group" => group)
                    .increment(1);
                output
            };
            let (output, delivery) =
                hand_over_or_dead_letter(producer, &record, output, group).await?;
            window.resend(slot, output, delivery);
            Ok(())
        }
    }
}

/// Hands `output` over; an output too large for its topic is replaced by the input's dead
/// letter, and a dead letter too large for its topic is dropped with an error logged.
async fn hand_over_or_dead_letter<P: Producer>(
    producer: &P,
    record: &Record,
    output: Outgoing,
    group: &'static str,
) -> Result<(Outgoing, Delivery), BusError> {
    match hand_over(producer, &output).await {
        Err(BusError::TooLarge(topic))
            if output.topic != shrike_messages::Topic::DeadLetter.name() =>
        {
            let letter = dead_letter(record, group, &ProcessError::TooLarge(topic));
            match hand_over(producer, &letter).await {
                Err(BusError::TooLarge(_)) => Ok((letter, skipped(record, group))),
                other => Ok((letter, other?)),
            }
        }
        Err(BusError::TooLarge(_)) => Ok((output, skipped(record, group))),
        other => Ok((output, other?)),
    }
}

fn skipped(record: &Record, group: &'static str) -> Delivery {
    tracing::error!(
        group,
        partition = record.partition,
        offset = record.offset,
        "dead letter too large for its topic; record skipped"
    );
    Delivery::done(Ok(()))
}

/// Hands `output` to the bus, waiting with backoff while the bus has no room for it.
async fn hand_over<P: Producer>(producer: &P, output: &Outgoing) -> Result<Delivery, BusError> {
    let backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(100));
    while_refused(backoff, || {
        std::future::ready(producer.enqueue(output.topic, &output.key, output.payload.clone()))
    })
    .await
}

/// The window's size as gauges.
struct Gauges {
    records: metrics::Gauge,
    bytes: metrics::Gauge,
}

impl Gauges {
    fn new(group: &'static str) -> Self {
        Gauges {
            records: metrics::gauge!("shrike_consumer_in_flight_records", "group" => group),
            bytes: metrics::gauge!("shrike_consumer_in_flight_bytes", "group" => group),
        }
    }

    fn set(&self, window: &Window) {
        let (records, bytes) = window.size();
        self.records.set(records as f64);
        self.bytes.set(bytes as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use shrike_bus::LocalBus;
    use std::sync::{Arc, Mutex};
    use tokio::sync::oneshot;

    /// A test double standing in for a broker whose acknowledgements the test hands out one by
    /// one (no real broker lets a test decide each delivery's moment and outcome). Records are
    /// kept with the sender of their acknowledgement.
    #[derive(Clone, Default)]
    struct HeldProducer {
        held: Arc<Mutex<Vec<Held>>>,
    }

    /// A record handed over, and the sender of its acknowledgement until it is decided.
    type Held = (Outgoing, Option<oneshot::Sender<Result<(), BusError>>>);

    impl HeldProducer {
        fn count(&self) -> usize {
            self.held.lock().expect("lock").len()
        }

        /// Decides the `index`th record handed over.
        fn decide(&self, index: usize, result: Result<(), BusError>) {
            let sender = self.held.lock().expect("lock")[index].1.take();
            sender.expect("undecided").send(result).expect("awaited");
        }

        fn output(&self, index: usize) -> Outgoing {
            self.held.lock().expect("lock")[index].0.clone()
        }
    }

    impl Producer for HeldProducer {
        async fn send(&self, _: &'static str, _: &[u8], _: Bytes) -> Result<(), BusError> {
            unreachable!("transform only enqueues")
        }

        fn enqueue(
            &self,
            topic: &'static str,
            key: &[u8],
            payload: Bytes,
        ) -> Result<Delivery, BusError> {
            let (tx, rx) = oneshot::channel();
            let output = Outgoing {
                topic,
                key: Bytes::copy_from_slice(key),
                payload,
            };
            self.held.lock().expect("lock").push((output, Some(tx)));
            Ok(Delivery::waiting(async move {
                rx.await.unwrap_or(Err(BusError::Closed))
            }))
        }
    }

    const TOPICS: [&str; 3] = ["in", "out", "dead-letter"];

    async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..500 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{what} did not happen within 5 s");
    }

    async fn start(
        records: usize,
        window: usize,
    ) -> (
        LocalBus,
        HeldProducer,
        CancellationToken,
        tokio::task::JoinHandle<Result<(), BusError>>,
    ) {
        let bus = LocalBus::in_memory(&TOPICS, 1000);
        let consumer = bus.consumer("in", "g");
        for i in 0..records {
            bus.send("in", b"k", Bytes::from(format!("record {i}")))
                .await
                .expect("sent");
        }
        let producer = HeldProducer::default();
        let shutdown = CancellationToken::new();
        let limits = WindowLimits {
            records: window,
            bytes: 1 << 20,
            drain: Duration::from_millis(200),
        };
        let task = tokio::spawn(transform(
            consumer,
            producer.clone(),
            limits,
            "g",
            |record: &Record| {
                Ok(Outgoing {
                    topic: "out",
                    key: record.key.clone(),
                    payload: record.payload.clone(),
                })
            },
            shutdown.clone(),
        ));
        (bus, producer, shutdown, task)
    }

    #[tokio::test]
    async fn commits_only_what_every_earlier_output_has_been_acknowledged_for() {
        let (bus, producer, shutdown, task) = start(5, 100).await;
        eventually("five records handed over", || producer.count() == 5).await;
        assert_eq!(bus.lag("in"), 5);
        // Acknowledged out of order: 1 and 2 before 0 commit nothing.
        producer.decide(1, Ok(()));
        producer.decide(2, Ok(()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(bus.lag("in"), 5, "nothing past the unacknowledged record 0");
        producer.decide(0, Ok(()));
        eventually("records 0-2 committed", || bus.lag("in") == 2).await;
        // Stopping with 3 unacknowledged and 4 acknowledged: only what is safe stays committed.
        producer.decide(4, Ok(()));
        shutdown.cancel();
        task.await.expect("joins").expect("clean stop");
        let mut again = bus.consumer("in", "g");
        let next = tokio::time::timeout(Duration::from_secs(1), again.recv())
            .await
            .expect("redelivered")
            .expect("open");
        assert_eq!(
            next.offset, 3,
            "the first unacknowledged record comes again"
        );
    }

    #[tokio::test]
    async fn a_full_window_stops_taking_records_until_one_is_acknowledged() {
        let (bus, producer, shutdown, task) = start(10, 3).await;
        eventually("three records handed over", || producer.count() == 3).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(producer.count(), 3, "the window holds three");
        producer.decide(0, Ok(()));
        eventually("a fourth record handed over", || producer.count() == 4).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(producer.count(), 4);
        assert_eq!(bus.lag("in"), 9);
        shutdown.cancel();
        task.await.expect("joins").expect("clean stop");
    }

    #[tokio::test]
    async fn failed_deliveries_are_handed_over_again_and_refused_outputs_dead_lettered() {
        let (bus, producer, shutdown, task) = start(2, 100).await;
        eventually("two records handed over", || producer.count() == 2).await;
        // The broker was away for record 0: it is handed over again, with the same output.
        producer.decide(0, Err(BusError::Unavailable("broker away".into())));
        eventually("record 0 handed over again", || producer.count() == 3).await;
        assert_eq!(producer.output(2).payload, producer.output(0).payload);
        // The broker refuses record 1's output for its size: its dead letter goes instead.
        producer.decide(1, Err(BusError::TooLarge("out")));
        eventually("record 1's dead letter handed over", || {
            producer.count() == 4
        })
        .await;
        assert_eq!(producer.output(3).topic, "dead-letter");
        assert_eq!(bus.lag("in"), 2);
        producer.decide(2, Ok(()));
        producer.decide(3, Ok(()));
        eventually("both committed", || bus.lag("in") == 0).await;
        shutdown.cancel();
        task.await.expect("joins").expect("clean stop");
    }

    #[tokio::test]
    async fn a_record_that_cannot_be_processed_becomes_its_dead_letter() {
        let bus = LocalBus::in_memory(&TOPICS, 1000);
        let consumer = bus.consumer("in", "g");
        bus.send("in", b"k", Bytes::from_static(b"a poison"))
            .await
            .expect("sent");
        let shutdown = CancellationToken::new();
        let limits = WindowLimits {
            records: 10,
            bytes: 1 << 20,
            drain: Duration::from_secs(1),
        };
        let mut letters = bus.consumer("dead-letter", "check");
        let task = tokio::spawn(transform(
            consumer,
            bus.clone(),
            limits,
            "g",
            |_: &Record| Err(ProcessError::Invalid("poison".into())),
            shutdown.clone(),
        ));
        let letter = tokio::time::timeout(Duration::from_secs(5), letters.recv())
            .await
            .expect("a dead letter")
            .expect("open");
        assert_eq!(
            letter.key,
            Bytes::from_static(b"k"),
            "keyed like its source"
        );
        eventually("committed", || bus.lag("in") == 0).await;
        shutdown.cancel();
        task.await.expect("joins").expect("clean stop");
    }
}
