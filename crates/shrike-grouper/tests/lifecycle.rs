//! The grouper's issue lifecycle on the in-memory bus against a real ClickHouse: regressions are
//! announced exactly once per resolution (also when events are redelivered, the grouper restarts,
//! or it died between writing the regression and announcing it), ignored issues are not reopened,
//! and merged hashes count toward the issue they were merged into.

use shrike_bus::{FencedConsumer, LocalBus, Producer};
use shrike_grouper::{GROUP, GrouperConfig, run};
use shrike_issues::{IssueStatus, StatusChange, issue_id_for_hash};
use shrike_messages::{BusMessage, Topic, pb};
use shrike_store::local::LocalClickHouse;
use shrike_store::{IssueFilter, Store, now_ms};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const HASH_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const HASH_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const HASH_C: &str = "cccccccccccccccccccccccccccccccc";

struct Grouper {
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Grouper {
    fn start(bus: &LocalBus, store: &Store) -> Grouper {
        let shutdown = CancellationToken::new();
        let consumer = bus.consumer(Topic::NormalizedEvents.name(), GROUP);
        let config = GrouperConfig {
            batch_rows: 100,
            batch_bytes: 1 << 20,
            batch_wait_ms: 20,
            seed_from_store: false,
        };
        let task = tokio::spawn({
            let (store, shutdown) = (store.clone(), shutdown.clone());
            async move {
                run(consumer, store, config, shutdown)
                    .await
                    .expect("grouper runs");
            }
        });
        Grouper { shutdown, task }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.expect("grouper task");
    }
}

/// A normalized event of project 1 with `hash`, received now.
fn event(hash: &str, release: &str) -> pb::NormalizedEvent {
    let now = i64::try_from(now_ms()).expect("ms");
    pb::NormalizedEvent {
        meta: Some(shrike_messages::meta(1, Uuid::new_v4(), now)),
        primary_hash: hash.into(),
        grouping_variant: "app".into(),
        fields: Some(pb::EventFields {
            timestamp_ms: now,
            platform: "python".into(),
            level: "error".into(),
            release: release.into(),
            title: format!("Error {}", &hash[..1]),
            ..Default::default()
        }),
        body: format!(r#"{{"release":"{release}"}}"#).into_bytes(),
    }
}

/// Sends an event (again, when it was sent before: a redelivery) and waits until it is committed.
async fn deliver(bus: &LocalBus, event: &pb::NormalizedEvent) {
    let (topic, key, payload) = event.record();
    bus.send(topic, &key, payload).await.expect("send");
    for _ in 0..500 {
        if bus.lag(topic) == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the grouper did not commit the event");
}

/// Every activity announced so far, as (kind, issue, hash, resolution).
async fn activity(bus: &LocalBus) -> Vec<(i32, u64, String, u64)> {
    let mut reader = bus.consumer(Topic::IssueActivity.name(), "activity-reader");
    reader
        .read_to_end(Topic::IssueActivity.name())
        .await
        .expect("read activity")
        .into_iter()
        .map(|r| {
            let a: pb::IssueActivity =
                shrike_messages::decode(&r.payload).expect("activity decodes");
            (a.kind, a.issue_id, a.primary_hash, a.resolution)
        })
        .collect()
}

fn regressions(all: &[(i32, u64, String, u64)]) -> Vec<(u64, u64)> {
    all.iter()
        .filter(|a| a.0 == pb::issue_activity::Kind::Regression as i32)
        .map(|a| (a.1, a.3))
        .collect()
}

async fn status(store: &Store, issue: u64) -> (IssueStatus, &'static str, u64) {
    let detail = store.issue_detail(1, issue).await.expect("issue detail");
    (
        detail.summary.status.status,
        detail.summary.status.substatus,
        detail.summary.stats.times_seen,
    )
}

#[tokio::test]
async fn regressions_are_announced_once_and_merged_hashes_count_toward_their_issue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = LocalClickHouse::start(dir.path(), 0, 0)
        .await
        .expect("clickhouse-server starts");
    let store = server.store("shrike_grouper_test").expect("store");
    store.migrate().await.expect("migrate");
    let bus = LocalBus::in_memory(&Topic::NAMES, 10_000);
    let issue_a = issue_id_for_hash(HASH_A);
    let mut grouper = Grouper::start(&bus, &store);

    // A new issue, announced once.
    deliver(&bus, &event(HASH_A, "1.0")).await;
    assert_eq!(activity(&bus).await.len(), 1);

    // Resolved; the next event reopens it with exactly one REGRESSION, however often it is
    // redelivered, also to a restarted grouper that re-reads what was announced.
    let resolved = store
        .set_issue_status(1, issue_a, &StatusChange::Resolve)
        .await
        .expect("resolve");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let reopening = event(HASH_A, "1.0");
    deliver(&bus, &reopening).await;
    deliver(&bus, &reopening).await;
    grouper.stop().await;
    grouper = Grouper::start(&bus, &store);
    deliver(&bus, &reopening).await;
    deliver(&bus, &event(HASH_A, "1.0")).await;
    assert_eq!(
        regressions(&activity(&bus).await),
        vec![(issue_a, resolved.resolution)]
    );
    assert_eq!(
        status(&store, issue_a).await,
        (IssueStatus::Unresolved, "regressed", 3)
    );

    // The grouper died after writing a regression but before announcing it: the redelivered
    // event announces it, once.
    let second = store
        .set_issue_status(1, issue_a, &StatusChange::Resolve)
        .await
        .expect("resolve again");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let lost = event(HASH_A, "1.0");
    let states = store.issue_states(&[issue_a]).await.expect("states");
    let (_, lost_id) = shrike_messages::check_meta(lost.meta.as_ref()).expect("meta");
    let written = states[&(1, issue_a)].regression(lost_id);
    store
        .insert_issue_statuses(&[written])
        .await
        .expect("the regression the dead grouper wrote");
    deliver(&bus, &lost).await;
    deliver(&bus, &lost).await;
    assert_eq!(
        regressions(&activity(&bus).await),
        vec![(issue_a, resolved.resolution), (issue_a, second.resolution)]
    );

    // Resolved in the next release: the same release does not reopen it, another one does.
    let third = store
        .set_issue_status(1, issue_a, &StatusChange::ResolveInNextRelease)
        .await
        .expect("resolve in next release");
    tokio::time::sleep(Duration::from_millis(5)).await;
    deliver(&bus, &event(HASH_A, "1.0")).await;
    assert_eq!(
        status(&store, issue_a).await.0,
        IssueStatus::ResolvedInNextRelease
    );
    deliver(&bus, &event(HASH_A, "1.1")).await;
    assert_eq!(status(&store, issue_a).await.1, "regressed");
    assert_eq!(
        regressions(&activity(&bus).await).last(),
        Some(&(issue_a, third.resolution))
    );

    // Ignored until 2 more events: not reopened, lapses at the second one.
    let issue_b = issue_id_for_hash(HASH_B);
    deliver(&bus, &event(HASH_B, "")).await;
    store
        .set_issue_status(
            1,
            issue_b,
            &StatusChange::Ignore {
                count: Some(2),
                until: None,
            },
        )
        .await
        .expect("ignore");
    let more = event(HASH_B, "");
    deliver(&bus, &more).await;
    deliver(&bus, &more).await;
    assert_eq!(status(&store, issue_b).await, (IssueStatus::Ignored, "", 2));
    deliver(&bus, &event(HASH_B, "")).await;
    assert_eq!(
        status(&store, issue_b).await,
        (IssueStatus::Unresolved, "ignore_lapsed", 3)
    );

    // C merged into A: C's new events count toward A, and reopen A when A is resolved.
    let issue_c = issue_id_for_hash(HASH_C);
    deliver(&bus, &event(HASH_C, "")).await;
    store
        .merge_issues(1, issue_a, &[issue_c])
        .await
        .expect("merge");
    let fourth = store
        .set_issue_status(1, issue_a, &StatusChange::Resolve)
        .await
        .expect("resolve a");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let before = activity(&bus).await.len();
    deliver(&bus, &event(HASH_C, "")).await;
    let after = activity(&bus).await;
    assert_eq!(after.len(), before + 1);
    assert_eq!(
        after.last(),
        Some(&(
            pb::issue_activity::Kind::Regression as i32,
            issue_a,
            HASH_C.to_owned(),
            fourth.resolution
        ))
    );
    let detail = store.issue_detail(1, issue_a).await.expect("a");
    assert_eq!(detail.hashes.len(), 2);
    assert_eq!(detail.summary.stats.times_seen, 6 + 2);
    let listed: Vec<u64> = store
        .list_issues(1, &IssueFilter::default())
        .await
        .expect("list")
        .iter()
        .map(|i| i.stats.issue_id)
        .collect();
    assert!(listed.contains(&issue_a) && !listed.contains(&issue_c));
    let news = after
        .iter()
        .filter(|a| a.0 == pb::issue_activity::Kind::New as i32)
        .count();
    assert_eq!(news, 3);
    grouper.stop().await;
}
