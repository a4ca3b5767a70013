//! Batches of records bounded by count, bytes and time: what a consumer writes at once and then
//! commits.

use crate::{ProcessError, dead_letter};
use shrike_bus::{BusError, Consumer, Outgoing, Record};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// When a batch closes: at `rows` items, `bytes` of input, or `wait` after its first record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most items.
    pub rows: usize,
    /// Most input bytes (record payloads).
    pub bytes: usize,
    /// Longest wait between the first record and the close.
    pub wait: Duration,
}

/// The records taken since the last commit, with what each became: an item, or a dead letter.
pub struct Batch<T> {
    /// What the records became, in order (a dead-lettered record has none).
    pub items: Vec<T>,
    /// Every record, in order: the batch commits them all.
    pub records: Vec<Record>,
    /// Dead letters of the records that could not be processed.
    pub dead_letters: Vec<Outgoing>,
    /// Input bytes.
    pub bytes: usize,
    deadline: Option<Instant>,
}

impl<T> Default for Batch<T> {
    fn default() -> Self {
        Batch {
            items: Vec::new(),
            records: Vec::new(),
            dead_letters: Vec::new(),
            bytes: 0,
            deadline: None,
        }
    }
}

impl<T> Batch<T> {
    /// Adds `record` and what it became; a record consumer `group` could not process is
    /// dead-lettered.
    pub fn push(
        &mut self,
        record: Record,
        item: Result<T, ProcessError>,
        group: &str,
        limits: &BatchLimits,
    ) {
        self.bytes += record.payload.len();
        self.deadline
            .get_or_insert_with(|| Instant::now() + limits.wait);
        match item {
            Ok(item) => self.items.push(item),
            Err(error) => self.dead_letters.push(dead_letter(&record, group, &error)),
        }
        self.records.push(record);
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Whether it must close now.
    pub fn is_due(&self, limits: &BatchLimits) -> bool {
        self.items.len() >= limits.rows.max(1)
            || self.bytes >= limits.bytes.max(1)
            || self.deadline.is_some_and(|d| d <= Instant::now())
    }

    /// Takes the batch, leaving an empty one.
    pub fn take(&mut self) -> Batch<T> {
        std::mem::take(self)
    }
}

/// What waiting for the next record brought.
#[derive(Debug)]
pub enum Next {
    /// A record.
    Record(Record),
    /// The batch's time is up.
    Due,
    /// Shutdown was asked for.
    Shutdown,
}

/// Waits for the next record, the batch's deadline, or shutdown, whichever comes first.
pub async fn next<C: Consumer, T>(
    consumer: &mut C,
    batch: &Batch<T>,
    shutdown: &CancellationToken,
) -> Result<Next, BusError> {
    let deadline = async {
        match batch.deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        record = consumer.recv() => Ok(Next::Record(record?)),
        () = deadline => Ok(Next::Due),
        () = shutdown.cancelled() => Ok(Next::Shutdown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn record(offset: i64, bytes: usize) -> Record {
        Record {
            topic: "t",
            partition: 0,
            offset,
            generation: 0,
            key: Bytes::new(),
            payload: Bytes::from(vec![0u8; bytes]),
        }
    }

    #[test]
    fn closes_at_rows_bytes_or_time_and_dead_letters_failures() {
        let limits = BatchLimits {
            rows: 2,
            bytes: 100,
            wait: Duration::from_secs(60),
        };
        let mut batch: Batch<i64> = Batch::default();
        assert!(batch.is_empty() && !batch.is_due(&limits));
        batch.push(record(0, 10), Ok(0), "g", &limits);
        batch.push(
            record(1, 10),
            Err(ProcessError::Invalid("no".into())),
            "g",
            &limits,
        );
        assert!(!batch.is_due(&limits), "one item, 20 bytes");
        assert_eq!((batch.records.len(), batch.dead_letters.len()), (2, 1));
        assert_eq!(batch.dead_letters[0].topic, "dead-letter");
        batch.push(record(2, 10), Ok(2), "g", &limits);
        assert!(batch.is_due(&limits), "two items");
        let taken = batch.take();
        assert_eq!(taken.items, vec![0, 2]);
        assert!(batch.is_empty());
        batch.push(record(3, 100), Ok(3), "g", &limits);
        assert!(batch.is_due(&limits), "100 bytes");
        let quick = BatchLimits {
            wait: Duration::ZERO,
            ..limits
        };
        let mut batch: Batch<i64> = Batch::default();
        batch.push(record(4, 1), Ok(4), "g", &quick);
        assert!(batch.is_due(&quick), "its time is up");
    }
}
