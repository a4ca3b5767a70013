//! The grouper service: batches normalized events, writes events and issue descriptions to
//! ClickHouse, announces new issues on the issue-activity topic, then commits.
//!
//! Exactly-once "new" activity on top of at-least-once delivery: normalized events are keyed by
//! issue, so each issue lives in one partition owned by one grouper; the grouper's knowledge of
//! which issues were announced is the issue-activity topic itself, re-read whenever its partition
//! assignment changes (and at start-up); activity is produced and acknowledged before the input
//! offsets are committed, under a fence that holds back rebalances. A redelivered batch therefore
//! finds its issues already announced. Batches close at `batch_rows` events, `batch_bytes` of
//! input or `batch_wait` after their first event. A failed ClickHouse insert is retried and
//! nothing is committed until it succeeds.

use crate::fingerprint::{fingerprint, issue_id_for_hash};
use crate::rows::{event_row, issue_row};
use shrike_bus::messages::{self, pb};
use shrike_bus::{BusError, FencedConsumer, Outgoing, Record, Topic};
use shrike_store::{EventRow, IssueRow, Store, now_ms};
use std::collections::HashSet;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The consumer group of the grouper.
pub const GROUP: &str = "shrike-grouper";

/// Grouper settings.
#[derive(Debug, Clone, Copy)]
pub struct GrouperConfig {
    /// Most events per insert.
    pub batch_rows: usize,
    /// Most input bytes per insert.
    pub batch_bytes: usize,
    /// Longest wait between a batch's first event and its insert.
    pub batch_wait: Duration,
    /// Also treat issues already in ClickHouse as announced (for the in-memory bus, whose
    /// issue-activity topic does not survive a restart).
    pub seed_from_store: bool,
}

#[derive(Default)]
struct Batch {
    records: Vec<Record>,
    bytes: usize,
    events: Vec<EventRow>,
    issues: Vec<IssueRow>,
    outgoing: Vec<Outgoing>,
    announcing: HashSet<(u64, u64)>,
    deadline: Option<Instant>,
}

impl Batch {
    fn is_due(&self, config: &GrouperConfig) -> bool {
        self.events.len() >= config.batch_rows.max(1)
            || self.bytes >= config.batch_bytes.max(1)
            || self.deadline.is_some_and(|d| d <= Instant::now())
    }
}

/// Why the grouper stopped.
#[derive(Debug, thiserror::Error)]
pub enum GrouperError {
    /// The bus failed; restart the grouper (it resumes from the last commit).
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The issue-activity topic could not be read or the store could not be queried at start.
    #[error("cannot load announced issues: {0}")]
    State(String),
}

/// Runs until `shutdown` fires (flushing the open batch first) or a bus error, after which the
/// caller restarts it with a fresh consumer.
pub async fn run<C: FencedConsumer>(
    mut consumer: C,
    store: Store,
    config: GrouperConfig,
    shutdown: CancellationToken,
) -> Result<(), GrouperError> {
    let mut announced: HashSet<(u64, u64)> = HashSet::new();
    let mut state_generation: Option<u64> = None;
    let mut batch = Batch::default();
    loop {
        if !batch.records.is_empty() && (batch.is_due(&config) || shutdown.is_cancelled()) {
            flush(&mut consumer, &store, &mut batch, &mut announced, &shutdown).await?;
        }
        if shutdown.is_cancelled() {
            consumer.flush().await?;
            return Ok(());
        }
        let wait = batch
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()));
        let record = tokio::select! {
            record = consumer.recv() => record?,
            () = sleep_or_forever(wait) => continue,
            () = shutdown.cancelled() => continue,
        };
        if record.generation != consumer.generation() {
            continue; // fetched before a rebalance; its partition restarts from the last commit
        }
        if state_generation != Some(record.generation) {
            // New assignment: what is batched belongs to the old one, and what was announced
            // must be re-read before deciding about any issue.
            batch = Batch::default();
            announced = load_announced(&mut consumer, &store, config.seed_from_store).await?;
            state_generation = Some(record.generation);
            tracing::info!(
                issues = announced.len(),
                generation = record.generation,
                "loaded announced issues"
            );
        }
        add(&mut batch, &mut announced, record, &config);
    }
}

fn add(
    batch: &mut Batch,
    announced: &mut HashSet<(u64, u64)>,
    record: Record,
    config: &GrouperConfig,
) {
    batch.bytes += record.payload.len();
    batch
        .deadline
        .get_or_insert_with(|| Instant::now() + config.batch_wait);
    let decoded = messages::decode::<pb::NormalizedEvent>(&record.payload)
        .and_then(|message| Ok((messages::read_normalized(&message)?, message)));
    match decoded {
        Ok((event, message)) => {
            // The normalizer fingerprinted the event and keyed the record by its hash; only a
            // message without one (an older producer) is fingerprinted here.
            let hash = if message.primary_hash.is_empty() {
                fingerprint(&event).hash
            } else {
                message.primary_hash.clone()
            };
            let issue_id = issue_id_for_hash(&hash);
            let key = (event.project_id, issue_id);
            if !announced.contains(&key) && !batch.announcing.contains(&key) {
                batch.issues.push(issue_row(&event, &hash, now_ms()));
                let activity = pb::IssueActivity {
                    meta: message.meta.clone(),
                    kind: pb::issue_activity::Kind::New as i32,
                    issue_id,
                    primary_hash: hash.clone(),
                    title: event.title.clone(),
                    culprit: event.culprit.clone(),
                    level: event.level.clone(),
                };
                batch.outgoing.push(Outgoing {
                    topic: Topic::IssueActivity,
                    key: messages::issue_key(event.project_id, &hash),
                    payload: messages::encode(&activity),
                });
                batch.announcing.insert(key);
            }
            batch.events.push(event_row(&event, &hash));
        }
        Err(error) => {
            tracing::warn!(partition = record.partition, offset = record.offset, %error, "dead-lettering normalized event");
            metrics::counter!("shrike_grouper_dead_letters_total").increment(1);
            batch
                .outgoing
                .push(messages::dead_letter(&record, GROUP, &error.to_string()));
        }
    }
    batch.records.push(record);
}

/// Reads which issues were announced: the issue-activity topic, plus ClickHouse when asked.
async fn load_announced<C: FencedConsumer>(
    consumer: &mut C,
    store: &Store,
    seed_from_store: bool,
) -> Result<HashSet<(u64, u64)>, GrouperError> {
    let mut announced = HashSet::new();
    let records = consumer
        .read_to_end(Topic::IssueActivity)
        .await
        .map_err(|e| GrouperError::State(e.to_string()))?;
    for record in records {
        if let Ok(activity) = messages::decode::<pb::IssueActivity>(&record.payload)
            && let Some(meta) = activity.meta.as_ref()
        {
            announced.insert((meta.project_id, activity.issue_id));
        }
    }
    if seed_from_store {
        let known = store
            .issue_keys()
            .await
            .map_err(|e| GrouperError::State(e.to_string()))?;
        announced.extend(known);
    }
    Ok(announced)
}

async fn flush<C: FencedConsumer>(
    consumer: &mut C,
    store: &Store,
    batch: &mut Batch,
    announced: &mut HashSet<(u64, u64)>,
    shutdown: &CancellationToken,
) -> Result<(), GrouperError> {
    let taken = std::mem::take(batch);
    if !write(store, &taken.events, &taken.issues, shutdown).await {
        return Ok(()); // shutting down with ClickHouse unreachable: leave it uncommitted
    }
    match consumer
        .produce_and_commit(taken.outgoing, &taken.records)
        .await
    {
        Ok(()) => {
            announced.extend(taken.announcing);
            metrics::counter!("shrike_grouper_events_total").increment(taken.events.len() as u64);
            Ok(())
        }
        Err(BusError::Fenced) => {
            tracing::info!(
                records = taken.records.len(),
                "batch fetched before a rebalance; left to the new owner"
            );
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

async fn sleep_or_forever(wait: Option<Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}

/// Writes a batch, retrying until it succeeds; returns false when shutdown cut the retries short.
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
