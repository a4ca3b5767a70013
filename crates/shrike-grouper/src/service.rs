//! The grouper service: batches normalized events, writes events, issue descriptions and
//! regressions to ClickHouse, announces new and regressed issues on the issue-activity topic,
//! then commits.
//!
//! Exactly-once activity on top of at-least-once delivery: normalized events are keyed by hash,
//! so each hash lives in one partition owned by one grouper; the grouper's knowledge of what was
//! announced is the issue-activity topic itself, re-read whenever its partition assignment changes
//! (and at start-up); activity is produced and acknowledged before the input offsets are
//! committed, under a fence that holds back rebalances. A redelivered batch therefore finds its
//! issues already announced. Batches close at `batch_rows` events, `batch_bytes` of input or
//! `batch_wait` after their first event. A failed ClickHouse insert is retried and nothing is
//! committed until it succeeds.
//!
//! The issue lifecycle: when a batch closes, one query reads which issue owns each hash of the
//! batch (merges) and one reads those issues' statuses. [`plan`] (pure) then decides: a hash
//! owned by another issue never opens an issue of its own; an event received after an issue's
//! resolution reopens it (a status row written before the events) and announces a REGRESSION
//! once per (project, issue, resolution). If the grouper dies after writing that row but before
//! announcing, the redelivered event finds the issue regressed by itself and announces then.
//! Ignore conditions are not the grouper's business: readers compute when they lapse.

use crate::fingerprint::{fingerprint, issue_id_for_hash};
use crate::rows::{EventKey, event_row, issue_row};
use shrike_bus::messages::{self, pb};
use shrike_bus::{BusError, FencedConsumer, Outgoing, Record, Topic};
use shrike_store::{EventRow, IssueRow, IssueState, IssueStatusRow, Store, StoreError, now_ms};
use std::collections::{HashMap, HashSet};
use std::future::Future;
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
    /// Also treat issues and regressions already in ClickHouse as announced (for the in-memory
    /// bus, whose issue-activity topic does not survive a restart).
    pub seed_from_store: bool,
}

/// What was announced on the issue-activity topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Announced {
    /// (project, issue) pairs announced as new.
    pub new: HashSet<(u64, u64)>,
    /// (project, issue, resolution) triples announced as regressions.
    pub regressions: HashSet<(u64, u64, u64)>,
}

impl Announced {
    fn extend(&mut self, other: Announced) {
        self.new.extend(other.new);
        self.regressions.extend(other.regressions);
    }

    /// Records what one issue-activity message announced.
    pub fn record(&mut self, activity: &pb::IssueActivity) {
        let Some(meta) = activity.meta.as_ref() else {
            return;
        };
        // Any activity for a hash means the hash's own issue was announced as new.
        let own = if activity.primary_hash.is_empty() {
            activity.issue_id
        } else {
            issue_id_for_hash(&activity.primary_hash)
        };
        self.new.insert((meta.project_id, own));
        if activity.kind == pb::issue_activity::Kind::Regression as i32 {
            self.regressions
                .insert((meta.project_id, activity.issue_id, activity.resolution));
        }
    }
}

/// An event waiting for its batch to close: what decides about its issue. Its `events` row is
/// decoded again from the record when the batch is written, so that a batch holds each event once,
/// as the bytes of its record, rather than also decoded (an estimated 4–5 KB per 5 KB event).
#[derive(Debug, Clone)]
pub struct Pending {
    /// Which event.
    pub key: EventKey,
    /// What describes its issue.
    pub summary: pb::EventSummary,
    /// Its grouping hash.
    pub hash: String,
    /// The message header, copied into activity.
    pub meta: pb::Meta,
    /// Index of its record in the batch: the row is decoded from that record's payload.
    pub record: usize,
}

/// A fully decoded normalized event.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// Which event.
    pub key: EventKey,
    /// What is stored about it.
    pub fields: pb::EventFields,
    /// Its grouping hash.
    pub hash: String,
    /// The grouping variant that produced the hash.
    pub variant: String,
}

/// What the store said about a batch's hashes and issues.
#[derive(Debug, Clone, Default)]
pub struct Lookups {
    /// The issue owning each merged hash, by (project, hash).
    pub targets: HashMap<(u64, String), u64>,
    /// Current statuses, by (project, issue).
    pub states: HashMap<(u64, u64), IssueState>,
}

/// What a closed batch writes and announces.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Rows for `issues` (issues opened by this batch).
    pub issues: Vec<IssueRow>,
    /// Rows for `issue_status` (regressions).
    pub statuses: Vec<IssueStatusRow>,
    /// Activity to produce.
    pub outgoing: Vec<Outgoing>,
    /// What the activity announces.
    pub announcing: Announced,
}

/// Decides what a batch writes and announces, given what was announced before and the store's
/// lookups. Pure.
pub fn plan(pending: &[Pending], lookups: &Lookups, announced: &Announced) -> Plan {
    let mut plan = Plan::default();
    let mut states = lookups.states.clone();
    for p in pending {
        let event = &p.summary;
        let project = p.key.project_id;
        let own = issue_id_for_hash(&p.hash);
        let issue = lookups
            .targets
            .get(&(project, p.hash.clone()))
            .copied()
            .unwrap_or(own);
        let activity = |kind: pb::issue_activity::Kind, resolution: u64| Outgoing {
            topic: Topic::IssueActivity,
            key: messages::issue_key(project, &p.hash),
            payload: messages::encode(&pb::IssueActivity {
                meta: Some(p.meta.clone()),
                kind: kind as i32,
                issue_id: issue,
                primary_hash: p.hash.clone(),
                title: event.title.clone(),
                culprit: event.culprit.clone(),
                level: event.level.clone(),
                resolution,
            }),
        };
        // A hash merged into another issue belongs to that issue and opens none of its own.
        let key = (project, own);
        if issue == own && !announced.new.contains(&key) && !plan.announcing.new.contains(&key) {
            plan.issues
                .push(issue_row(project, event, &p.hash, now_ms()));
            plan.outgoing
                .push(activity(pb::issue_activity::Kind::New, 0));
            plan.announcing.new.insert(key);
        }
        if let Some(state) = states.get_mut(&(project, issue)) {
            let resolution = state.row.resolution;
            let triple = (project, issue, resolution);
            let unannounced = !announced.regressions.contains(&triple)
                && !plan.announcing.regressions.contains(&triple);
            if state.regressed_by(p.key.received_ms, &event.release) {
                let row = state.regression(p.key.event_id);
                state.row = row.clone();
                plan.statuses.push(row);
                if unannounced {
                    plan.outgoing
                        .push(activity(pb::issue_activity::Kind::Regression, resolution));
                    plan.announcing.regressions.insert(triple);
                }
            } else if unannounced
                && state.row.substatus == shrike_store::lifecycle::REGRESSED
                && state.row.regression_event == p.key.event_id
            {
                // This event reopened the issue before a crash kept the news from going out.
                plan.outgoing
                    .push(activity(pb::issue_activity::Kind::Regression, resolution));
                plan.announcing.regressions.insert(triple);
            }
        }
    }
    plan
}

#[derive(Default)]
struct Batch {
    records: Vec<Record>,
    bytes: usize,
    pending: Vec<Pending>,
    dead_letters: Vec<Outgoing>,
    deadline: Option<Instant>,
}

impl Batch {
    fn is_due(&self, config: &GrouperConfig) -> bool {
        self.pending.len() >= config.batch_rows.max(1)
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

impl shrike_bus::Fatal for GrouperError {
    fn is_fatal(&self) -> bool {
        matches!(self, GrouperError::Bus(error) if error.is_fatal())
    }
}

/// Runs until `shutdown` fires (flushing the open batch first) or a bus error, after which the
/// caller restarts it with a fresh consumer.
pub async fn run<C: FencedConsumer>(
    mut consumer: C,
    store: Store,
    config: GrouperConfig,
    shutdown: CancellationToken,
) -> Result<(), GrouperError> {
    let mut announced = Announced::default();
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
                issues = announced.new.len(),
                regressions = announced.regressions.len(),
                generation = record.generation,
                "loaded announced issues"
            );
        }
        add(&mut batch, record, &config);
    }
}

fn add(batch: &mut Batch, record: Record, config: &GrouperConfig) {
    batch.bytes += record.payload.len();
    batch
        .deadline
        .get_or_insert_with(|| Instant::now() + config.batch_wait);
    match pending(&record.payload, batch.records.len()) {
        Ok(pending) => batch.pending.push(pending),
        Err(error) => {
            tracing::warn!(partition = record.partition, offset = record.offset, %error, "dead-lettering normalized event");
            metrics::counter!("shrike_grouper_dead_letters_total").increment(1);
            batch
                .dead_letters
                .push(messages::dead_letter(&record, GROUP, &error.to_string()));
        }
    }
    batch.records.push(record);
}

/// Checks a message header and says which event it is about.
fn event_key(meta: Option<&pb::Meta>) -> Result<(EventKey, &pb::Meta), messages::DecodeError> {
    let (meta, event_id) = messages::check_meta(meta)?;
    let key = EventKey {
        project_id: meta.project_id,
        event_id,
        received_ms: meta.received_ms,
    };
    Ok((key, meta))
}

/// Decodes what a batch keeps of a normalized-event record, the batch's `record`th: its header
/// and summary, skipping frames and tags.
pub fn pending(payload: &[u8], record: usize) -> Result<Pending, messages::DecodeError> {
    let mut message = messages::decode::<pb::NormalizedEventSummary>(payload)?;
    let (key, meta) = event_key(message.meta.as_ref())?;
    let meta = meta.clone();
    let (summary, hash) = match message.fields.take() {
        Some(summary) => (summary, message.primary_hash),
        None => {
            // Version 1: the summary is in the JSON, and maybe the hash is not.
            let full = decode(payload)?;
            (messages::event_summary(&full.fields), full.hash)
        }
    };
    Ok(Pending {
        key,
        summary,
        hash,
        meta,
        record,
    })
}

/// Decodes a normalized-event record. Version 2 messages carry the stored fields; version 1 ones
/// carry the event as JSON, and the oldest of those no hash (the grouper fingerprints them).
pub fn decode(payload: &[u8]) -> Result<Decoded, messages::DecodeError> {
    let mut message = messages::decode::<pb::NormalizedEvent>(payload)?;
    let (key, _) = event_key(message.meta.as_ref())?;
    let fields = match message.fields.take() {
        Some(fields) => fields,
        None => {
            let event = messages::read_normalized(&message)?;
            if message.primary_hash.is_empty() {
                message.primary_hash = fingerprint(&event).hash;
            }
            messages::event_fields(event)
        }
    };
    Ok(Decoded {
        key,
        fields,
        hash: message.primary_hash,
        variant: message.grouping_variant,
    })
}

/// Entries of a batch whose full message did not decode, with why, by index.
type Undecodable = std::sync::Mutex<std::collections::BTreeMap<usize, String>>;

/// The `events` rows of a batch, decoded one at a time as the insert consumes them. An entry whose
/// full message does not decode (its summary did, but the two read different fields) is left out
/// and recorded in `undecodable`, to be dead-lettered.
fn event_rows<'a>(
    pending: &'a [Pending],
    records: &'a [Record],
    undecodable: &'a Undecodable,
) -> impl Iterator<Item = EventRow> + Send + 'a {
    pending
        .iter()
        .enumerate()
        .filter_map(move |(i, p)| match decode(&records[p.record].payload) {
            Ok(d) => Some(event_row(d.key, d.fields, &d.hash, &d.variant)),
            Err(error) => {
                undecodable
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .insert(i, error.to_string());
                None
            }
        })
}

/// Reads what was announced: the issue-activity topic, plus ClickHouse when asked.
async fn load_announced<C: FencedConsumer>(
    consumer: &mut C,
    store: &Store,
    seed_from_store: bool,
) -> Result<Announced, GrouperError> {
    let mut announced = Announced::default();
    let records = consumer
        .read_to_end(Topic::IssueActivity)
        .await
        .map_err(|e| GrouperError::State(e.to_string()))?;
    for record in records {
        if let Ok(activity) = messages::decode::<pb::IssueActivity>(&record.payload) {
            announced.record(&activity);
        }
    }
    if seed_from_store {
        let state = |e: StoreError| GrouperError::State(e.to_string());
        announced
            .new
            .extend(store.issue_keys().await.map_err(state)?);
        announced
            .regressions
            .extend(store.regressed_keys().await.map_err(state)?);
    }
    Ok(announced)
}

async fn flush<C: FencedConsumer>(
    consumer: &mut C,
    store: &Store,
    batch: &mut Batch,
    announced: &mut Announced,
    shutdown: &CancellationToken,
) -> Result<(), GrouperError> {
    let taken = std::mem::take(batch);
    let Some(lookups) = retry("lookup", shutdown, || lookup(store, &taken.pending)).await else {
        return Ok(()); // shutting down with ClickHouse unreachable: leave it uncommitted
    };
    let plan = plan(&taken.pending, &lookups, announced);
    let undecodable = Undecodable::default();
    let written = retry("insert", shutdown, || async {
        // Regressions first: once an event is visible, so is the status it caused.
        store.insert_issue_statuses(&plan.statuses).await?;
        store.upsert_issues(&plan.issues).await?;
        store
            .insert_events(event_rows(&taken.pending, &taken.records, &undecodable))
            .await
    })
    .await;
    if written.is_none() {
        return Ok(());
    }
    let mut outgoing = taken.dead_letters;
    let undecodable = undecodable
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for (index, reason) in undecodable {
        let record = &taken.records[taken.pending[index].record];
        tracing::warn!(partition = record.partition, offset = record.offset, %reason, "dead-lettering normalized event");
        metrics::counter!("shrike_grouper_dead_letters_total").increment(1);
        outgoing.push(messages::dead_letter(record, GROUP, &reason));
    }
    outgoing.extend(plan.outgoing);
    match consumer.produce_and_commit(outgoing, &taken.records).await {
        Ok(()) => {
            announced.extend(plan.announcing);
            metrics::counter!("shrike_grouper_events_total").increment(taken.pending.len() as u64);
            metrics::counter!("shrike_grouper_regressions_total")
                .increment(plan.statuses.len() as u64);
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

/// The store's answers about a batch: one query for merged hashes, one for statuses.
async fn lookup(store: &Store, pending: &[Pending]) -> Result<Lookups, StoreError> {
    let mut hashes: Vec<String> = pending.iter().map(|p| p.hash.clone()).collect();
    hashes.sort();
    hashes.dedup();
    let targets = store.hash_targets(&hashes).await?;
    let mut ids: Vec<u64> = pending
        .iter()
        .map(|p| {
            targets
                .get(&(p.key.project_id, p.hash.clone()))
                .copied()
                .unwrap_or_else(|| issue_id_for_hash(&p.hash))
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let states = store.issue_states(&ids).await?;
    Ok(Lookups { targets, states })
}

async fn sleep_or_forever(wait: Option<Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}

/// Runs `attempt` until it succeeds; `None` when shutdown cut the retries short.
async fn retry<T, F, Fut>(what: &str, shutdown: &CancellationToken, mut attempt: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut delay = Duration::from_millis(100);
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        match attempt().await {
            Ok(value) => return Some(value),
            Err(error) => {
                tracing::warn!(what, %error, "clickhouse request failed, retrying");
                metrics::counter!("shrike_grouper_insert_errors_total").increment(1);
                if shutdown.is_cancelled() && Instant::now() > give_up {
                    return None;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use shrike_store::{IssueStatus, StatusChange, lifecycle};
    use uuid::Uuid;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn waiting(hash: &str, received_ms: i64) -> Pending {
        Pending {
            key: EventKey {
                project_id: 1,
                event_id: Uuid::new_v4(),
                received_ms,
            },
            summary: pb::EventSummary::default(),
            hash: hash.into(),
            meta: pb::Meta::default(),
            record: 0,
        }
    }

    fn resolved(issue: u64, at_ms: u64) -> IssueState {
        let context = lifecycle::StatusContext {
            project_id: 1,
            issue_id: issue,
            now_ms: at_ms,
            ..Default::default()
        };
        IssueState {
            row: lifecycle::status_row(&StatusChange::Resolve, &context),
            changed_at: 0,
        }
    }

    #[test]
    fn decodes_both_message_versions_and_refuses_newer_ones() {
        let event = messages::NormalizedEvent {
            project_id: 4,
            event_id: Uuid::new_v4(),
            received_ms: 1_700_000_000_000,
            title: "E: v".into(),
            exceptions: vec![shrike_protocol::event::Exception {
                ty: Some("E".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let current = messages::normalized_message(event.clone(), A, "app");
        let decoded = decode(&messages::encode(&current)).expect("version 2");
        assert_eq!(
            (decoded.key.project_id, decoded.key.event_id),
            (4, event.event_id)
        );
        assert_eq!(decoded.key.received_ms, event.received_ms);
        assert_eq!(
            (decoded.hash.as_str(), decoded.variant.as_str()),
            (A, "app")
        );
        assert_eq!(decoded.fields, messages::event_fields(event.clone()));
        // What a batch keeps: the header and the summary, and the payload to decode the row from.
        let payload = messages::encode(&current);
        let kept = pending(&payload, 3).expect("summary");
        assert_eq!((kept.key, kept.hash.as_str()), (decoded.key, A));
        assert_eq!(kept.summary, messages::event_summary(&decoded.fields));
        assert_eq!(
            (
                kept.summary.title.as_str(),
                kept.summary.exception_type.as_str()
            ),
            ("E: v", "E")
        );
        assert_eq!(kept.record, 3);

        // Version 1: the event as JSON; without a hash the grouper fingerprints it.
        let mut meta = messages::meta(4, event.event_id, event.received_ms);
        meta.version = 1;
        let old = pb::NormalizedEvent {
            meta: Some(meta.clone()),
            event_json: serde_json::to_vec(&event).expect("json"),
            ..Default::default()
        };
        let decoded = decode(&messages::encode(&old)).expect("version 1");
        assert_eq!(decoded.hash, fingerprint(&event).hash);
        assert_eq!(decoded.fields.exception_type, "E");
        let kept = pending(&messages::encode(&old), 0).expect("version 1 summary");
        assert_eq!(kept.hash, decoded.hash);
        assert_eq!(kept.summary.title, "E: v");

        meta.version = messages::VERSION + 1;
        let newer = pb::NormalizedEvent {
            meta: Some(meta),
            ..current
        };
        assert!(matches!(
            decode(&messages::encode(&newer)),
            Err(messages::DecodeError::Version(_))
        ));
    }

    #[test]
    fn an_entry_whose_full_message_does_not_decode_is_reported_not_lost() {
        // A version 2 message whose summary decodes but whose frame file name is not UTF-8.
        let meta = messages::encode(&messages::meta(1, Uuid::new_v4(), 1_700_000_000_000));
        let fields = [&[0x52, 1, b't'][..], &[0x72, 1, 0xff]].concat(); // title, frame_filenames
        let mut payload = vec![0x0a, meta.len() as u8];
        payload.extend(&meta);
        payload.extend([0x12, 32]);
        payload.extend(A.as_bytes());
        payload.extend([0x2a, fields.len() as u8]);
        payload.extend(&fields);
        let payload = Bytes::from(payload);
        let kept = pending(&payload, 0).expect("the summary decodes");
        assert_eq!(kept.summary.title, "t");
        assert!(decode(&payload).is_err());

        let good = messages::encode(&messages::normalized_message(
            messages::NormalizedEvent::default(),
            B,
            "app",
        ));
        let batch = vec![kept, pending(&good, 1).expect("decodes")];
        let records: Vec<Record> = [payload, good]
            .into_iter()
            .enumerate()
            .map(|(offset, payload)| Record {
                topic: Topic::NormalizedEvents,
                partition: 0,
                offset: offset as i64,
                generation: 0,
                key: Bytes::new(),
                payload,
            })
            .collect();
        let undecodable = Undecodable::default();
        let rows: Vec<EventRow> = event_rows(&batch, &records, &undecodable).collect();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].primary_hash, B);
        let undecodable = undecodable.into_inner().expect("lock");
        assert_eq!(undecodable.keys().copied().collect::<Vec<_>>(), vec![0]);
    }

    #[test]
    fn a_merged_hash_opens_no_issue_and_reopens_its_target_once() {
        let target = issue_id_for_hash(A);
        let mut lookups = Lookups::default();
        lookups.targets.insert((1, B.to_owned()), target);
        lookups.states.insert((1, target), resolved(target, 1_000));
        let batch = vec![waiting(B, 500), waiting(B, 2_000), waiting(B, 3_000)];
        let plan = plan(&batch, &lookups, &Announced::default());
        assert!(plan.issues.is_empty());
        assert_eq!(plan.statuses.len(), 1);
        assert_eq!(plan.statuses[0].regression_event, batch[1].key.event_id);
        assert_eq!(plan.outgoing.len(), 1);
        assert!(plan.announcing.regressions.contains(&(1, target, 1_000)));
        assert_eq!(
            IssueStatus::parse(&plan.statuses[0].status),
            IssueStatus::Unresolved
        );
    }

    #[test]
    fn an_announced_regression_is_not_announced_again_but_a_lost_one_is() {
        let issue = issue_id_for_hash(A);
        let event = waiting(A, 2_000);
        let mut state = resolved(issue, 1_000);
        state.row = state.regression(event.key.event_id);
        let mut lookups = Lookups::default();
        lookups.states.insert((1, issue), state);
        let mut announced = Announced::default();
        announced.new.insert((1, issue));
        let lost = plan(std::slice::from_ref(&event), &lookups, &announced);
        assert_eq!((lost.outgoing.len(), lost.statuses.len()), (1, 0));
        announced.extend(lost.announcing);
        let again = plan(std::slice::from_ref(&event), &lookups, &announced);
        assert!(again.outgoing.is_empty());
        let other = plan(&[waiting(A, 3_000)], &lookups, &announced);
        assert!(other.outgoing.is_empty() && other.statuses.is_empty());
    }
}
