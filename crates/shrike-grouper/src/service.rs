//! The grouper service: batches normalized events, fingerprints them, writes events and new issues
//! to ClickHouse, then commits.
//!
//! Batches close at `batch_rows` events or `batch_wait` after their first event, whichever comes
//! first. A failed insert is retried with back-off and nothing is committed until it succeeds, so
//! ClickHouse being down delays events but never loses them. Undecodable records are skipped.

use crate::fingerprint;
use crate::rows::{event_row, issue_row};
use shrike_bus::messages::{self, NormalizedEvent};
use shrike_bus::{BusError, Consumer, Record};
use shrike_store::{EventRow, IssueRow, Store, now_ms};
use std::collections::HashSet;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Batching settings.
#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    /// Most events per insert.
    pub batch_rows: usize,
    /// Longest wait between a batch's first event and its insert.
    pub batch_wait: Duration,
}

/// Issue descriptions already written by this process (bounded; forgetting only costs a rewrite).
struct KnownIssues(HashSet<(u64, u64)>);

impl KnownIssues {
    const MAX: usize = 100_000;

    fn insert(&mut self, key: (u64, u64)) -> bool {
        if self.0.len() >= Self::MAX {
            self.0.clear();
        }
        self.0.insert(key)
    }
}

/// Runs until `shutdown` fires (flushing the open batch first) or the bus closes.
pub async fn run<C: Consumer>(
    mut consumer: C,
    store: Store,
    config: BatchConfig,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    let mut known = KnownIssues(HashSet::new());
    let mut events: Vec<EventRow> = Vec::new();
    let mut issues: Vec<IssueRow> = Vec::new();
    let mut last: Option<Record> = None;
    let mut deadline: Option<Instant> = None;
    loop {
        let flush_due = events.len() >= config.batch_rows.max(1)
            || deadline.is_some_and(|d| d <= Instant::now());
        if flush_due || (shutdown.is_cancelled() && last.is_some()) {
            let written = write(&store, &events, &issues, &shutdown).await;
            if let Some(record) = last.take().filter(|_| written) {
                consumer.commit(&record)?;
            }
            metrics::counter!("shrike_grouper_events_total").increment(events.len() as u64);
            events.clear();
            issues.clear();
            deadline = None;
        }
        if shutdown.is_cancelled() {
            return Ok(());
        }
        let wait = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let record = tokio::select! {
            record = consumer.recv() => record?,
            () = sleep_or_forever(wait) => continue,
            () = shutdown.cancelled() => continue,
        };
        match messages::decode::<NormalizedEvent>(&record.payload) {
            Ok(event) => {
                let fp = fingerprint(&event);
                if known.insert((event.project_id, fp.issue_id())) {
                    issues.push(issue_row(&event, &fp, now_ms()));
                }
                events.push(event_row(&event, &fp));
                deadline.get_or_insert_with(|| Instant::now() + config.batch_wait);
            }
            Err(error) => {
                tracing::warn!(offset = record.offset, %error, "dropping undecodable normalized event");
                metrics::counter!("shrike_grouper_invalid_total").increment(1);
            }
        }
        last = Some(record);
    }
}

async fn sleep_or_forever(wait: Option<Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}

/// Writes a batch, retrying until it succeeds. On shutdown it keeps trying for a while only, then
/// leaves the batch uncommitted for the next start.
/// Returns whether the batch was written.
async fn write(
    store: &Store,
    events: &[EventRow],
    issues: &[IssueRow],
    shutdown: &CancellationToken,
) -> bool {
    let mut delay = Duration::from_millis(100);
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        let result = async {
            store.upsert_issues(issues).await?;
            store.insert_events(events).await
        }
        .await;
        match result {
            Ok(()) => return true,
            Err(error) => {
                tracing::warn!(rows = events.len(), %error, "clickhouse insert failed, retrying");
                metrics::counter!("shrike_grouper_insert_errors_total").increment(1);
                if shutdown.is_cancelled() && Instant::now() > give_up {
                    return false;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
