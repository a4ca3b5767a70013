//! Writing a closed batch: ask the store about its hashes and issues, let
//! `shrike_issues::plan` decide, write statuses, issues and events, then produce the activity and
//! dead letters and commit the batch as one fenced step.

use crate::rows::{Pending, Undecodable, event_key, event_rows};
use crate::{GROUP, GrouperError};
use shrike_bus::{BusError, FencedConsumer};
use shrike_consumer::{Batch, dead_letter, outgoing, retry};
use shrike_issues::{Announced, Lookups, issue_id_for_hash, plan};
use shrike_messages::{Topic, pb};
use shrike_store::{EventKey, Store, StoreError, now_ms};
use tokio_util::sync::CancellationToken;

/// Reads what was announced: the issue-activity topic, plus ClickHouse when asked.
pub async fn load_announced<C: FencedConsumer>(
    consumer: &mut C,
    store: &Store,
    seed_from_store: bool,
) -> Result<Announced, GrouperError> {
    let mut announced = Announced::default();
    let records = consumer
        .read_to_end(Topic::IssueActivity.name())
        .await
        .map_err(|e| GrouperError::State(e.to_string()))?;
    for record in records {
        if let Ok(activity) = shrike_messages::decode::<pb::IssueActivity>(&record.payload) {
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

/// Writes `batch` and commits it; nothing is committed while ClickHouse refuses the writes, and a
/// batch fetched before a rebalance is left to the partitions' new owner.
pub async fn flush<C: FencedConsumer>(
    consumer: &mut C,
    store: &Store,
    batch: Batch<Pending>,
    announced: &mut Announced,
    shutdown: &CancellationToken,
) -> Result<(), GrouperError> {
    let Some(lookups) = retry("lookup", shutdown, || lookup(store, &batch.items)).await else {
        return Ok(()); // shutting down with ClickHouse unreachable: leave it uncommitted
    };
    let plan = plan(
        batch.items.iter().map(|p| &p.event),
        &lookups,
        announced,
        now_ms(),
    );
    let undecodable = Undecodable::default();
    let keys: Vec<EventKey> = batch.items.iter().map(event_key).collect();
    let written = retry("insert", shutdown, || async {
        // Regressions first: once an event is visible, so is the status it caused.
        store.insert_issue_statuses(&plan.statuses).await?;
        store.upsert_issues(&plan.issues).await?;
        // Events already stored (a redelivered batch) are left out, also on a retry.
        store
            .insert_new_events(
                &keys,
                event_rows(&batch.items, &batch.records, &undecodable),
            )
            .await
    })
    .await;
    if written.is_none() {
        return Ok(());
    }
    let mut records = batch.dead_letters;
    let undecodable = undecodable
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for (index, error) in undecodable {
        let record = &batch.records[batch.items[index].record];
        records.push(dead_letter(record, GROUP, &error));
    }
    records.extend(plan.activity.iter().map(outgoing));
    // The fence: once per batch, never per event (its cost is the histogram's).
    let fenced = std::time::Instant::now();
    let committed = consumer.produce_and_commit(records, &batch.records).await;
    metrics::histogram!("shrike_grouper_fence_seconds").record(fenced.elapsed().as_secs_f64());
    match committed {
        Ok(()) => {
            announced.extend(plan.announcing);
            metrics::counter!("shrike_grouper_events_total").increment(batch.items.len() as u64);
            metrics::counter!("shrike_grouper_regressions_total")
                .increment(plan.statuses.len() as u64);
            Ok(())
        }
        Err(BusError::Fenced) => {
            tracing::info!(
                records = batch.records.len(),
                "batch fetched before a rebalance; left to the new owner"
            );
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

/// The store's answers about a batch: one query for merged hashes, one for statuses.
async fn lookup(store: &Store, pending: &[Pending]) -> Result<Lookups, StoreError> {
    let mut hashes: Vec<String> = pending.iter().map(|p| p.event.hash.clone()).collect();
    hashes.sort();
    hashes.dedup();
    let targets = store.hash_targets(&hashes).await?;
    let mut ids: Vec<u64> = pending
        .iter()
        .map(|p| {
            targets
                .get(&(p.event.meta.project_id, p.event.hash.clone()))
                .copied()
                .unwrap_or_else(|| issue_id_for_hash(&p.event.hash))
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let states = store.issue_states(&ids).await?;
    Ok(Lookups { targets, states })
}
