//! Writers for the topics that go straight to a ClickHouse table: check-ins and outcomes.
//! At-least-once like everything else: a batch is inserted, then committed; redeliveries collapse
//! in the tables' ReplacingMergeTree. Undecodable records go to the dead-letter topic.

use shrike_bus::messages::{self, pb};
use shrike_bus::{BusError, Consumer, Producer, Record};
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
    /// Converts a record, or says why it cannot be.
    fn row(record: &Record) -> Result<Self::Row, String>;
    /// Inserts a batch.
    fn insert(
        store: &Store,
        rows: &[Self::Row],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Check-ins into `check_ins`.
pub struct CheckIns;

impl TableWriter for CheckIns {
    type Row = CheckInRow;
    const GROUP: &'static str = "shrike-check-ins";

    fn row(record: &Record) -> Result<CheckInRow, String> {
        let message: pb::CheckIn = messages::decode(&record.payload).map_err(|e| e.to_string())?;
        let (meta, check_in_id) =
            messages::check_meta(message.meta.as_ref()).map_err(|e| e.to_string())?;
        let check_in = CheckIn::parse(&message.payload).map_err(|e| e.to_string())?;
        Ok(CheckInRow {
            project_id: meta.project_id,
            monitor_slug: check_in.monitor_slug,
            check_in_id,
            status: check_in.status,
            duration: check_in.duration,
            environment: check_in.environment.unwrap_or_else(|| "production".into()),
            release: check_in.release.unwrap_or_default(),
            received: u32::try_from(meta.received_ms.div_euclid(1000)).unwrap_or(0),
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
pub struct Attachments;

impl TableWriter for Attachments {
    type Row = AttachmentChunkRow;
    const GROUP: &'static str = "shrike-attachments";

    fn row(record: &Record) -> Result<AttachmentChunkRow, String> {
        let chunk: pb::AttachmentChunk =
            messages::decode(&record.payload).map_err(|e| e.to_string())?;
        let (meta, event_id) =
            messages::check_meta(chunk.meta.as_ref()).map_err(|e| e.to_string())?;
        let attachment_id = Uuid::from_slice(&chunk.attachment_id)
            .map_err(|_| "attachment without a valid id".to_owned())?;
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
pub struct Outcomes;

impl TableWriter for Outcomes {
    type Row = OutcomeRow;
    const GROUP: &'static str = "shrike-outcomes";

    fn row(record: &Record) -> Result<OutcomeRow, String> {
        let o: pb::Outcome = messages::decode(&record.payload).map_err(|e| e.to_string())?;
        let id = Uuid::from_slice(&o.id).map_err(|_| "outcome without a valid id".to_owned())?;
        Ok(OutcomeRow {
            project_id: o.project_id,
            timestamp: u32::try_from(o.timestamp_ms.div_euclid(1000)).unwrap_or(0),
            category: o.category,
            outcome: o.outcome,
            reason: o.reason,
            quantity: o.quantity,
            id,
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

/// Writes `W`'s topic until `shutdown` fires; batches close at 1,000 rows, [`BATCH_BYTES`] of
/// input, or after `wait`.
pub async fn run<W: TableWriter, C: Consumer, P: Producer>(
    mut consumer: C,
    producer: P,
    store: Store,
    wait: Duration,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    loop {
        let mut rows = Vec::new();
        let mut bytes = 0;
        let mut last: Option<Record> = None;
        let deadline = tokio::time::sleep(wait);
        tokio::pin!(deadline);
        loop {
            let record = tokio::select! {
                record = consumer.recv() => record?,
                () = &mut deadline, if last.is_some() => break,
                () = shutdown.cancelled() => break,
            };
            match W::row(&record) {
                Ok(row) => rows.push(row),
                Err(reason) => {
                    tracing::warn!(
                        group = W::GROUP,
                        offset = record.offset,
                        reason,
                        "dead-lettering record"
                    );
                    let letter = messages::dead_letter(&record, W::GROUP, &reason);
                    producer
                        .send(letter.topic, &letter.key, letter.payload)
                        .await?;
                }
            }
            bytes += record.payload.len();
            last = Some(record);
            if rows.len() >= 1000 || bytes >= BATCH_BYTES {
                break;
            }
        }
        if let Some(record) = last {
            let mut delay = Duration::from_millis(100);
            while let Err(error) = W::insert(&store, &rows).await {
                tracing::warn!(group = W::GROUP, %error, rows = rows.len(), "insert failed, retrying");
                if shutdown.is_cancelled() {
                    return consumer.flush().await; // uncommitted: redelivered after a restart
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            consumer.commit(&record)?;
        }
        if shutdown.is_cancelled() {
            return consumer.flush().await;
        }
    }
}
