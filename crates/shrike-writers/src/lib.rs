//! The table writers: services for the topics that go straight to a ClickHouse table — check-ins,
//! attachment chunks and outcomes. At-least-once like everything else: a batch is inserted, then
//! committed; redeliveries collapse in the tables' ReplacingMergeTree. Records that cannot be
//! turned into rows go to the dead-letter topic.

use shrike_bus::{BusError, Consumer, Producer, Record};
use shrike_consumer::{Batch, BatchLimits, Next, ProcessError, retry, send_with_backoff};
use shrike_messages::{Topic, pb};
use shrike_protocol::checkin::CheckIn;
use shrike_store::{AttachmentChunkRow, CheckInRow, OutcomeRow, Store, StoreError};
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A topic written to one table.
pub trait TableWriter: Send + 'static {
    /// The row type.
    type Row: Send + Sync + 'static;
    /// The consumer group.
    const GROUP: &'static str;
    /// The topic it reads.
    const TOPIC: Topic;
    /// Converts a record, or says why it cannot be.
    fn row(record: &Record) -> Result<Self::Row, ProcessError>;
    /// Inserts a batch.
    fn insert(
        store: &Store,
        rows: &[Self::Row],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Check-ins into `check_ins`.
pub struct CheckInWriter;

impl TableWriter for CheckInWriter {
    type Row = CheckInRow;
    const GROUP: &'static str = "shrike-check-ins";
    const TOPIC: Topic = Topic::CheckIns;

    fn row(record: &Record) -> Result<CheckInRow, ProcessError> {
        let message: pb::CheckIn = shrike_messages::decode(&record.payload)?;
        let (meta, check_in_id) = shrike_messages::check_meta(message.meta.as_ref())?;
        let check_in = CheckIn::parse(&message.payload).map_err(ProcessError::invalid)?;
        Ok(CheckInRow {
            project_id: meta.project_id,
            monitor_slug: check_in.monitor_slug,
            check_in_id,
            status: check_in.status,
            duration: check_in.duration,
            environment: check_in.environment.unwrap_or_else(|| "production".into()),
            release: check_in.release.unwrap_or_default(),
            received: u32::try_from(meta.received_ms.div_euclid(1000)).unwrap_or(0),
            // The store stamps the project's retention when it inserts.
            retention_days: 0,
        })
    }

    fn insert(
        store: &Store,
        rows: &[CheckInRow],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        store.insert_check_ins(rows)
    }
}

/// Attachment chunks into `attachment_chunks`.
pub struct AttachmentWriter;

impl TableWriter for AttachmentWriter {
    type Row = AttachmentChunkRow;
    const GROUP: &'static str = "shrike-attachments";
    const TOPIC: Topic = Topic::Attachments;

    fn row(record: &Record) -> Result<AttachmentChunkRow, ProcessError> {
        let chunk: pb::AttachmentChunk = shrike_messages::decode(&record.payload)?;
        let (meta, event_id) = shrike_messages::check_meta(chunk.meta.as_ref())?;
        let attachment_id = Uuid::from_slice(&chunk.attachment_id)
            .map_err(|_| ProcessError::invalid("attachment without a valid id"))?;
        Ok(AttachmentChunkRow {
            project_id: meta.project_id,
            event_id,
            attachment_id,
            filename: chunk.filename,
            content_type: chunk.content_type,
            attachment_type: chunk.attachment_type,
            chunk_index: chunk.chunk_index,
            chunk_count: chunk.chunk_count,
            size: chunk.size,
            data: chunk.data,
            received: u32::try_from(meta.received_ms.div_euclid(1000)).unwrap_or(0),
            // The store stamps the project's retention when it inserts.
            retention_days: 0,
        })
    }

    fn insert(
        store: &Store,
        rows: &[AttachmentChunkRow],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        store.insert_attachment_chunks(rows)
    }
}

/// Outcomes into `outcomes`.
pub struct OutcomeWriter;

impl TableWriter for OutcomeWriter {
    type Row = OutcomeRow;
    const GROUP: &'static str = "shrike-outcomes";
    const TOPIC: Topic = Topic::Outcomes;

    fn row(record: &Record) -> Result<OutcomeRow, ProcessError> {
        let o: pb::Outcome = shrike_messages::decode(&record.payload)?;
        let id = Uuid::from_slice(&o.id)
            .map_err(|_| ProcessError::invalid("outcome without a valid id"))?;
        Ok(OutcomeRow {
            project_id: o.project_id,
            timestamp: u32::try_from(o.timestamp_ms.div_euclid(1000)).unwrap_or(0),
            category: o.category,
            outcome: o.outcome,
            reason: o.reason,
            quantity: o.quantity,
            id,
            retention_days: 0,
        })
    }

    fn insert(
        store: &Store,
        rows: &[OutcomeRow],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        store.insert_outcomes(rows)
    }
}

/// Input bytes after which a batch closes: a quarter of a topic of `shrike up`'s in-memory bus
/// (32 MiB), so that a batch of attachment chunks (512 KiB each) cannot fill the topic it reads.
const BATCH_BYTES: usize = 8 << 20;
/// Rows after which a batch closes.
const BATCH_ROWS: usize = 1_000;

/// Writes `W`'s topic until `shutdown` fires; batches close at [`BATCH_ROWS`] rows,
/// [`BATCH_BYTES`] of input, or after `wait`.
pub async fn run<W: TableWriter, C: Consumer, P: Producer>(
    mut consumer: C,
    producer: P,
    store: Store,
    wait: Duration,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    let limits = BatchLimits {
        rows: BATCH_ROWS,
        bytes: BATCH_BYTES,
        wait,
    };
    let mut batch: Batch<W::Row> = Batch::default();
    loop {
        if !batch.is_empty() && (batch.is_due(&limits) || shutdown.is_cancelled()) {
            let taken = batch.take();
            for letter in taken.dead_letters {
                send_with_backoff(&producer, letter.topic, &letter.key, letter.payload).await?;
            }
            let inserted = retry(W::GROUP, &shutdown, || W::insert(&store, &taken.items)).await;
            match (inserted, taken.records.last()) {
                (Some(()), Some(last)) => consumer.commit(last)?,
                // Shutting down with ClickHouse unreachable: redelivered after a restart.
                _ => return consumer.flush().await,
            }
        }
        if shutdown.is_cancelled() {
            return consumer.flush().await;
        }
        match shrike_consumer::next(&mut consumer, &batch, &shutdown).await? {
            Next::Record(record) => {
                let row = W::row(&record);
                batch.push(record, row, W::GROUP, &limits);
            }
            Next::Due | Next::Shutdown => {}
        }
    }
}
