//! Writers for the topics that go straight to a ClickHouse table: check-ins (and, later, outcomes).
//! At-least-once like everything else: a batch is inserted, then committed; redeliveries collapse
//! in the table's ReplacingMergeTree. Undecodable records go to the dead-letter topic.

use shrike_bus::messages::{self, pb};
use shrike_bus::{BusError, Consumer, Producer, Record};
use shrike_protocol::checkin::CheckIn;
use shrike_store::{CheckInRow, Store};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The consumer group of the check-in writer.
pub const CHECK_IN_GROUP: &str = "shrike-check-ins";

/// Converts a check-in message to its row, or says why it cannot be.
pub fn check_in_row(record: &Record) -> Result<CheckInRow, String> {
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

/// Writes check-ins until `shutdown` fires; batches close at 1,000 rows or after `wait`.
pub async fn check_ins<C: Consumer, P: Producer>(
    mut consumer: C,
    producer: P,
    store: Store,
    wait: Duration,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    loop {
        let mut rows = Vec::new();
        let mut last: Option<Record> = None;
        let deadline = tokio::time::sleep(wait);
        tokio::pin!(deadline);
        loop {
            let record = tokio::select! {
                record = consumer.recv() => record?,
                () = &mut deadline, if last.is_some() => break,
                () = shutdown.cancelled() => break,
            };
            match check_in_row(&record) {
                Ok(row) => rows.push(row),
                Err(reason) => {
                    let letter = messages::dead_letter(&record, CHECK_IN_GROUP, &reason);
                    producer
                        .send(letter.topic, &letter.key, letter.payload)
                        .await?;
                }
            }
            last = Some(record);
            if rows.len() >= 1000 {
                break;
            }
        }
        if let Some(record) = last {
            let mut delay = Duration::from_millis(100);
            while let Err(error) = store.insert_check_ins(&rows).await {
                tracing::warn!(%error, rows = rows.len(), "check-in insert failed, retrying");
                if shutdown.is_cancelled() {
                    return consumer.flush().await; // uncommitted: redelivered after restart
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
