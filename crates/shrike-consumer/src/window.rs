//! Records in flight: taken from a consumer, their output handed to the bus, its acknowledgement
//! not yet in. A partition is committed only up to the record before its first one whose output
//! is unacknowledged, so a crash redelivers everything that might not have arrived. Bounded by
//! records and bytes: a full window stops the taking of records, never buffers more.

use futures_util::stream::{FuturesUnordered, StreamExt};
use shrike_bus::{BusError, Delivery, Outgoing, Record, TopicName};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// How much may be in flight at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowLimits {
    /// Most records.
    pub records: usize,
    /// Most bytes of input and output payloads together.
    pub bytes: usize,
    /// How long a stopping consumer waits for the acknowledgements still in flight; what is not
    /// acknowledged by then stays uncommitted and is redelivered after the restart.
    pub drain: std::time::Duration,
}

/// A record of the window: which partition (and assignment generation) and which offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slot {
    topic: TopicName,
    partition: i32,
    generation: u64,
    offset: i64,
}

impl Slot {
    fn of(record: &Record) -> Self {
        Slot {
            topic: record.topic,
            partition: record.partition,
            generation: record.generation,
            offset: record.offset,
        }
    }

    fn lane(&self) -> Lane {
        (self.topic, self.partition, self.generation)
    }
}

/// One partition in one assignment generation: its offsets only grow. (After a rebalance the
/// same partition may be fetched again from an older offset, in a lane of its own.)
type Lane = (TopicName, i32, u64);

struct Entry {
    acknowledged: bool,
    record: Record,
    output: Outgoing,
    bytes: usize,
}

/// Where `slot` is in its lane (whose offsets only grow).
fn position(lane: &VecDeque<Entry>, slot: Slot) -> Option<usize> {
    lane.binary_search_by_key(&slot.offset, |e| e.record.offset)
        .ok()
}

/// A delivery with the slot it belongs to.
struct Tagged {
    slot: Slot,
    delivery: Delivery,
}

impl Future for Tagged {
    type Output = (Slot, Result<(), BusError>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let slot = self.slot;
        Pin::new(&mut self.delivery)
            .poll(cx)
            .map(|result| (slot, result))
    }
}

/// The records in flight and their deliveries.
pub struct Window {
    limits: WindowLimits,
    lanes: HashMap<Lane, VecDeque<Entry>>,
    deliveries: FuturesUnordered<Tagged>,
    records: usize,
    bytes: usize,
}

impl Window {
    /// An empty window.
    pub fn new(limits: WindowLimits) -> Self {
        Window {
            limits,
            lanes: HashMap::new(),
            deliveries: FuturesUnordered::new(),
            records: 0,
            bytes: 0,
        }
    }

    /// Whether no more records may be taken now.
    pub fn is_full(&self) -> bool {
        self.records >= self.limits.records.max(1) || self.bytes >= self.limits.bytes.max(1)
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Records and bytes in flight.
    pub fn size(&self) -> (usize, usize) {
        (self.records, self.bytes)
    }

    /// Adds `record`, whose `output` was handed to the bus with `delivery`.
    pub fn push(&mut self, record: Record, output: Outgoing, delivery: Delivery) {
        let slot = Slot::of(&record);
        let bytes = record.payload.len() + output.payload.len() + output.key.len();
        self.records += 1;
        self.bytes += bytes;
        self.lanes.entry(slot.lane()).or_default().push_back(Entry {
            acknowledged: false,
            record,
            output,
            bytes,
        });
        self.deliveries.push(Tagged { slot, delivery });
    }

    /// The next delivery decided; `None` when none is pending.
    pub async fn next_delivery(&mut self) -> Option<(Slot, Result<(), BusError>)> {
        self.deliveries.next().await
    }

    /// The input record and the output of `slot`, for a retry or a dead letter.
    pub fn entry(&self, slot: Slot) -> Option<(&Record, &Outgoing)> {
        let lane = self.lanes.get(&slot.lane())?;
        let entry = &lane[position(lane, slot)?];
        Some((&entry.record, &entry.output))
    }

    /// Hands `slot`'s record over again: `output` replaces its output, `delivery` is awaited.
    pub fn resend(&mut self, slot: Slot, output: Outgoing, delivery: Delivery) {
        if let Some(lane) = self.lanes.get_mut(&slot.lane())
            && let Some(index) = position(lane, slot)
        {
            lane[index].output = output;
        }
        self.deliveries.push(Tagged { slot, delivery });
    }

    /// Marks `slot` acknowledged. Returns the record up to which its partition may now be
    /// committed (without its key and payload), when that moved.
    pub fn acknowledge(&mut self, slot: Slot) -> Option<Record> {
        let lane = self.lanes.get_mut(&slot.lane())?;
        let index = position(lane, slot)?;
        lane[index].acknowledged = true;
        let mut last = None;
        while lane.front().is_some_and(|e| e.acknowledged) {
            if let Some(entry) = lane.pop_front() {
                self.records -= 1;
                self.bytes -= entry.bytes;
                last = Some(entry.record);
            }
        }
        if lane.is_empty() {
            self.lanes.remove(&slot.lane());
        }
        last.map(|record| Record {
            key: bytes::Bytes::new(),
            payload: bytes::Bytes::new(),
            ..record
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn record(partition: i32, offset: i64) -> Record {
        Record {
            topic: "in",
            partition,
            offset,
            generation: 1,
            key: Bytes::new(),
            payload: Bytes::from(vec![0u8; 10]),
        }
    }

    fn output() -> Outgoing {
        Outgoing {
            topic: "out",
            key: Bytes::new(),
            payload: Bytes::from(vec![0u8; 5]),
        }
    }

    #[tokio::test]
    async fn commits_a_partition_only_below_its_first_unacknowledged_record() {
        let limits = WindowLimits {
            records: 3,
            bytes: 1000,
            drain: std::time::Duration::ZERO,
        };
        let mut window = Window::new(limits);
        for (partition, offset) in [(0, 5), (0, 7), (1, 2)] {
            window.push(record(partition, offset), output(), Delivery::done(Ok(())));
        }
        assert!(window.is_full(), "three records");
        assert_eq!(window.size(), (3, 45));
        let slot = |partition, offset| Slot {
            topic: "in",
            partition,
            generation: 1,
            offset,
        };
        // Acknowledged out of order: offset 7 first commits nothing.
        assert_eq!(window.acknowledge(slot(0, 7)), None);
        assert_eq!(window.size(), (3, 45));
        let committed = window.acknowledge(slot(0, 5)).expect("partition 0 moves");
        assert_eq!((committed.partition, committed.offset), (0, 7));
        assert!(committed.payload.is_empty(), "the payload is not kept");
        assert_eq!(window.size(), (1, 15));
        assert!(!window.is_full());
        // Every delivery pushed is reported once.
        let mut decided = 0;
        while let Some((_, result)) = window.next_delivery().await {
            assert_eq!(result, Ok(()));
            decided += 1;
        }
        assert_eq!(decided, 3);
        let committed = window.acknowledge(slot(1, 2)).expect("partition 1 moves");
        assert_eq!(committed.offset, 2);
        assert!(window.is_empty());
    }

    #[test]
    fn bytes_bound_the_window_too() {
        let mut window = Window::new(WindowLimits {
            records: 100,
            bytes: 20,
            drain: std::time::Duration::ZERO,
        });
        window.push(record(0, 0), output(), Delivery::done(Ok(())));
        assert!(!window.is_full());
        window.push(record(0, 1), output(), Delivery::done(Ok(())));
        assert!(window.is_full(), "30 bytes over a 20-byte window");
    }
}
