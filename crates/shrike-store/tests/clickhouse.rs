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
        vec![1, 2, 3, 4, 5, 6, 7]
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
        .insert_events([&one])
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
