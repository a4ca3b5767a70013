//! Store tests against a real ClickHouse server (Debian's `clickhouse-server`, started per test).

use shrike_store::local::LocalClickHouse;
use shrike_store::{EventRow, IssueRow, Store};
use uuid::Uuid;

async fn start() -> (tempfile::TempDir, LocalClickHouse, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = LocalClickHouse::start(dir.path(), 0, 0)
        .await
        .expect("clickhouse-server starts");
    let store = server.store("shrike_test").expect("store");
    assert_eq!(store.migrate().await.expect("migrate"), vec![1, 2, 3, 4]);
    (dir, server, store)
}

fn event(project_id: u64, issue_id: u64, id: Uuid, timestamp: u32) -> EventRow {
    EventRow {
        project_id,
        event_id: id,
        timestamp,
        received: timestamp,
        issue_id,
        primary_hash: format!("{issue_id:032x}"),
        title: format!("Error {issue_id}"),
        tags_key: vec!["browser".into()],
        tags_value: vec!["firefox".into()],
        frame_functions: vec!["main".into(), "boom".into()],
        frame_linenos: vec![1, 2],
        ..Default::default()
    }
}

#[tokio::test]
async fn migrations_are_idempotent_and_projects_get_keys() {
    let (_dir, _server, store) = start().await;
    assert!(store.migrate().await.expect("second migrate").is_empty());
    let (a, key_a) = store.create_project("a").await.expect("create a");
    let (b, _) = store.create_project("b").await.expect("create b");
    assert_eq!((a.id, b.id), (1, 2));
    assert_eq!(key_a.public_key.len(), 32);
    let keys = store.keys().await.expect("keys");
    assert_eq!(keys.len(), 2);
    assert!(
        keys.iter()
            .any(|k| k.public_key == key_a.public_key && k.project_id == 1 && k.active)
    );
    assert_eq!(store.project_by_name("b").await.expect("lookup"), Some(b));
}

#[tokio::test]
async fn duplicate_events_count_once_and_issues_aggregate() {
    let (_dir, _server, store) = start().await;
    let now = store.server_now().await.expect("now");
    let e1 = Uuid::new_v4();
    let rows = vec![
        event(1, 10, e1, now - 5),
        event(1, 10, Uuid::new_v4(), now),
        event(1, 20, Uuid::new_v4(), now),
    ];
    store.insert_events(&rows).await.expect("insert");
    // The same event delivered again, in a separate insert (a separate part, not yet merged).
    store
        .insert_events(&rows[..1])
        .await
        .expect("insert duplicate");
    store
        .upsert_issues(&[IssueRow {
            project_id: 1,
            issue_id: 10,
            title: "Error 10".into(),
            ..Default::default()
        }])
        .await
        .expect("issue");
    assert_eq!(store.count_events(1).await.expect("count"), 3);
    let issues = store.list_issues(1, 100).await.expect("list");
    assert_eq!(issues.len(), 2);
    let ten = issues
        .iter()
        .find(|i| i.stats.issue_id == 10)
        .expect("issue 10");
    assert_eq!(ten.stats.times_seen, 2);
    assert_eq!((ten.stats.first_seen, ten.stats.last_seen), (now - 5, now));
    assert_eq!(
        ten.description.as_ref().map(|d| d.title.as_str()),
        Some("Error 10")
    );
    let twenty = issues
        .iter()
        .find(|i| i.stats.issue_id == 20)
        .expect("issue 20");
    assert!(twenty.description.is_none());
}

#[tokio::test]
async fn activity_windows_and_watermarks() {
    let (_dir, _server, store) = start().await;
    store
        .insert_events(&[event(1, 10, Uuid::new_v4(), 1_000_000)])
        .await
        .expect("insert");
    let now = store.server_now().await.expect("now");
    let activity = store.issue_activity(1, 0, now + 1).await.expect("activity");
    assert_eq!(activity.len(), 1);
    assert!(activity[0].is_new);
    assert_eq!(activity[0].events_in_window, 1);
    // A window after the insert sees nothing.
    assert!(
        store
            .issue_activity(1, now + 1, now + 10)
            .await
            .expect("activity")
            .is_empty()
    );

    assert_eq!(store.alert_watermark("c", 1).await.expect("read"), None);
    store.set_alert_watermark("c", 1, 100).await.expect("write");
    store.set_alert_watermark("c", 1, 200).await.expect("write");
    assert_eq!(
        store.alert_watermark("c", 1).await.expect("read"),
        Some(200)
    );
    assert_eq!(store.alert_watermark("c", 2).await.expect("read"), None);
}

#[tokio::test]
async fn a_redelivered_copy_does_not_count_again_in_a_later_window() {
    let (_dir, _server, store) = start().await;
    let original = event(1, 10, Uuid::new_v4(), 1_000_000);
    store
        .insert_events(std::slice::from_ref(&original))
        .await
        .expect("insert");
    let t0 = store.server_now().await.expect("now");
    let first = store.issue_activity(1, 0, t0 + 1).await.expect("activity");
    assert_eq!(
        (first.len(), first[0].events_in_window, first[0].is_new),
        (1, 1, true)
    );

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    store.insert_events(&[original]).await.expect("redelivery");
    let t1 = store.server_now().await.expect("now");
    assert!(
        store
            .issue_activity(1, t0 + 1, t1 + 1)
            .await
            .expect("activity")
            .is_empty()
    );

    store
        .insert_events(&[event(1, 10, Uuid::new_v4(), 1_000_001)])
        .await
        .expect("a new event");
    let t2 = store.server_now().await.expect("now");
    let window = store
        .issue_activity(1, t0 + 1, t2 + 1)
        .await
        .expect("activity");
    assert_eq!(window.len(), 1);
    assert_eq!(
        (
            window[0].events_in_window,
            window[0].times_seen,
            window[0].is_new
        ),
        (1, 2, false)
    );
}
