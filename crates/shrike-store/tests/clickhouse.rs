//! Store tests against a real ClickHouse server (Debian's `clickhouse-server`, started per test):
//! the shared cases, and what only this server's transport has (compressed HTTP).

mod cases;

use cases::event;
use shrike_store::local::LocalClickHouse;
use shrike_store::{IssueFilter, Store};
use uuid::Uuid;

async fn start() -> (tempfile::TempDir, LocalClickHouse, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = LocalClickHouse::start(dir.path(), 0, 0)
        .await
        .expect("clickhouse-server starts");
    let store = server.store("shrike_test").expect("store");
    assert_eq!(
        store.migrate().await.expect("migrate"),
        (1..=10).collect::<Vec<u32>>()
    );
    (dir, server, store)
}

#[tokio::test]
async fn compressed_and_plain_clients_share_rows() {
    let (_dir, server, plain) = start().await;
    let compressed = Store::new(&shrike_store::StoreConfig {
        url: server.url.clone(),
        database: "shrike_test".into(),
        user: shrike_store::local::USER.into(),
        password: server.password.clone(),
        compression: true,
    })
    .expect("store");
    let now = plain.server_now().await.expect("now");
    let one = event(1, 10, Uuid::new_v4(), now);
    let two = event(1, 10, Uuid::new_v4(), now);
    compressed
        .insert_events([one.clone()])
        .await
        .expect("compressed insert");
    plain.insert_events([two]).await.expect("plain insert");
    for store in [&plain, &compressed] {
        assert_eq!(store.count_events(1).await.expect("count"), 2);
        let issues = store
            .list_issues(1, &IssueFilter::default())
            .await
            .expect("list");
        assert_eq!(issues[0].stats.times_seen, 2);
    }
}

#[tokio::test]
async fn the_retention_migration_keeps_existing_rows() {
    let (_dir, server, store) = start().await;
    let old = store.sibling("shrike_upgrade").expect("sibling");
    assert_eq!(
        old.migrate_through(7).await.expect("migrate to 7"),
        vec![1, 2, 3, 4, 5, 6, 7]
    );
    let now = old.server_now().await.expect("now");
    let id = Uuid::new_v4();
    // A row as a Shrike before migration 8 wrote it (no retention column yet).
    clickhouse::Client::default()
        .with_url(&server.url)
        .with_user(shrike_store::local::USER)
        .with_password(&server.password)
        .query(
            "INSERT INTO shrike_upgrade.events (project_id, event_id, timestamp, received, issue_id,
                 primary_hash) VALUES (1, ?, toDateTime(?), toDateTime(?), 10, 'abc')",
        )
        .bind(id.to_string())
        .bind(now - 100)
        .bind(now - 100)
        .execute()
        .await
        .expect("insert before the upgrade");
    assert_eq!(old.migrate().await.expect("upgrade"), vec![8, 9, 10]);
    let kept = old.event(1, id).await.expect("event").expect("kept");
    assert_eq!(kept.summary.event_id, id);
    assert_eq!(old.count_events(1).await.expect("count"), 1);
    // New rows reach the index through the recreated view.
    let after = Uuid::new_v4();
    old.insert_events([event(1, 10, after, now)])
        .await
        .expect("insert after");
    assert!(old.event(1, after).await.expect("event").is_some());
    // Migration 9 counted the old row into the per-hash aggregates; the views count the new one.
    let listed = old
        .list_issues(1, &IssueFilter::default())
        .await
        .expect("list");
    let counts: Vec<(u64, u64)> = listed
        .iter()
        .map(|i| (i.stats.issue_id, i.stats.times_seen))
        .collect();
    assert_eq!(counts, vec![(10, 2)]);
}
