//! The store's behaviour, run against each server the schema must work on: Debian's ClickHouse
//! 18.16 (`clickhouse.rs`) and current ClickHouse through chdb-core (`current_clickhouse.rs`).
//! Each harness provides `start()`: a fresh, migrated database.

use super::start;
use shrike_issues::{IssueRow, IssueStatus, StatusChange};
use shrike_store::{EventFilter, EventOrder, EventRow, IssueFilter, IssueSort, StoreError};
use uuid::Uuid;

pub fn event(project_id: u64, issue_id: u64, id: Uuid, timestamp: u32) -> EventRow {
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
async fn the_whole_event_is_kept_beside_its_columns() {
    let (_dir, _server, store) = start().await;
    let now = store.server_now().await.expect("now");
    let (kept, bare) = (Uuid::new_v4(), Uuid::new_v4());
    let body = r#"{"event_id":"x","extra":{"cart":"c-1"}}"#;
    store
        .insert_events([
            EventRow {
                body: body.into(),
                ..event(3, 30, kept, now)
            },
            event(3, 30, bare, now),
        ])
        .await
        .expect("insert");
    let found = store.event(3, kept).await.expect("query").expect("found");
    assert_eq!(found.body, body);
    assert_eq!(found.summary.event_id, kept);
    let without = store.event(3, bare).await.expect("query").expect("found");
    assert_eq!(without.body, "", "stored without a body");
    assert_eq!(
        store.event(2, kept).await.expect("query"),
        None,
        "another project's"
    );
}

#[tokio::test]
async fn events_by_id_by_issue_with_tags_and_series() {
    let (_dir, _server, store) = start().await;
    let now = store.server_now().await.expect("now");
    let ids: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    let mut rows: Vec<EventRow> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| EventRow {
            environment: if i == 0 { "qa".into() } else { "prod".into() },
            release: format!("r@{i}"),
            message: if i == 3 {
                "cart expired".into()
            } else {
                "boom".into()
            },
            tags_value: vec![if i % 2 == 0 { "firefox" } else { "chrome" }.into()],
            user_id: format!("u{}", i % 2),
            ..event(1, 10, *id, now - 7200 * (3 - i as u32))
        })
        .collect();
    rows.push(event(1, 20, Uuid::new_v4(), now));
    store.insert_events(rows.clone()).await.expect("insert");
    // Redelivered: counted and listed once.
    store
        .insert_events(rows[..1].to_vec())
        .await
        .expect("again");
    let hashes = vec![format!("{:032x}", 10)];

    // By id, through the index, not found in another project.
    let third = store.event(1, ids[2]).await.expect("event").expect("found");
    assert_eq!(third.summary.release, "r@2");
    assert_eq!(third.summary.tag_values, vec!["firefox"]);
    assert_eq!(store.event(2, ids[2]).await.expect("event"), None);
    assert_eq!(
        store.event_location(1, ids[0]).await.expect("location"),
        Some((now - 21_600, hashes[0].clone()))
    );

    // An issue's events newest first from a position, once each; filtered.
    let page = |after, filter: EventFilter, order| {
        let (store, hashes) = (&store, &hashes);
        async move {
            store
                .events_of_hashes(1, hashes, &filter, order, after, 10)
                .await
                .expect("events")
                .iter()
                .map(|e| e.event_id)
                .collect::<Vec<_>>()
        }
    };
    let newest: Vec<Uuid> = ids.iter().rev().copied().collect();
    assert_eq!(
        page(None, EventFilter::default(), EventOrder::NewestFirst).await,
        newest
    );
    assert_eq!(
        page(
            Some((now - 7200, ids[2])),
            EventFilter::default(),
            EventOrder::NewestFirst
        )
        .await,
        vec![ids[1], ids[0]]
    );
    assert_eq!(
        page(
            Some((now - 7200, ids[2])),
            EventFilter::default(),
            EventOrder::OldestFirst
        )
        .await,
        vec![ids[3]]
    );
    let chrome = EventFilter {
        tags: vec![("browser".into(), "chrome".into())],
        ..Default::default()
    };
    assert_eq!(
        page(None, chrome, EventOrder::NewestFirst).await,
        vec![ids[3], ids[1]]
    );
    let text = EventFilter {
        text: Some("EXPIRED".into()),
        ..Default::default()
    };
    assert_eq!(
        page(None, text, EventOrder::NewestFirst).await,
        vec![ids[3]]
    );

    // Tag values and counts over time.
    let tags = store.tag_values(1, &hashes, 10).await.expect("tags");
    assert_eq!(
        tags.iter()
            .map(|t| (t.key.as_str(), t.value.as_str(), t.count))
            .collect::<Vec<_>>(),
        vec![("browser", "chrome", 2), ("browser", "firefox", 2)]
    );
    let series = store
        .event_series(1, &hashes, now - 86_400, 3600)
        .await
        .expect("series");
    assert_eq!(series.iter().map(|(_, c)| c).sum::<u64>(), 4);
    assert!(series.iter().all(|(start, _)| start % 3600 == 0));

    // Issue lists: by environment, release, tag; sorted; paged.
    let list = |filter: IssueFilter| {
        let store = &store;
        async move {
            store
                .list_issues(1, &filter)
                .await
                .expect("list")
                .iter()
                .map(|i| (i.stats.issue_id, i.stats.times_seen))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(IssueFilter {
            environment: Some("prod".into()),
            ..Default::default()
        })
        .await,
        vec![(10, 3)]
    );
    assert_eq!(
        list(IssueFilter {
            release: Some("r@0".into()),
            ..Default::default()
        })
        .await,
        vec![(10, 1)]
    );
    assert_eq!(
        list(IssueFilter {
            tags: vec![("browser".into(), "chrome".into())],
            ..Default::default()
        })
        .await,
        vec![(10, 2)]
    );
    assert_eq!(
        list(IssueFilter {
            sort: IssueSort::Events,
            ..Default::default()
        })
        .await,
        vec![(10, 4), (20, 1)]
    );
    assert_eq!(
        list(IssueFilter {
            sort: IssueSort::Events,
            offset: 1,
            ..Default::default()
        })
        .await,
        vec![(20, 1)]
    );
    assert_eq!(
        list(IssueFilter {
            first_seen_since: Some(now - 60),
            ..Default::default()
        })
        .await,
        vec![(20, 1)]
    );
}

#[tokio::test]
async fn tokens_are_stored_hashed_and_revoked() {
    let (_dir, _server, store) = start().await;
    let (row, token) = store.create_token("ci", "read").await.expect("create");
    assert!(token.starts_with(shrike_store::TOKEN_PREFIX));
    assert_eq!(row.token_hash, shrike_store::token_hash(&token));
    assert_ne!(row.token_hash, token);
    let found = store
        .token_by_hash(&row.token_hash)
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!((found.id, found.scope.as_str()), (row.id, "read"));
    let (second, _) = store.create_token("", "admin").await.expect("create");
    assert_eq!(second.id, row.id + 1);
    assert!(store.revoke_token(row.id).await.expect("revoke"));
    assert!(!store.revoke_token(99).await.expect("revoke unknown"));
    assert_eq!(
        store.token_by_hash(&row.token_hash).await.expect("lookup"),
        None
    );
    let listed = store.tokens().await.expect("list");
    assert_eq!(
        listed.iter().map(|t| (t.id, t.revoked)).collect::<Vec<_>>(),
        vec![(row.id, 1), (second.id, 0)]
    );
}

#[tokio::test]
async fn projects_are_renamed_and_deleted_with_their_data() {
    let (_dir, _server, store) = start().await;
    let (shop, key) = store.create_project("shop").await.expect("create");
    let (other, _) = store.create_project("other").await.expect("create");
    let now = store.server_now().await.expect("now");
    store
        .insert_events([
            event(shop.id, 1, Uuid::new_v4(), now),
            event(other.id, 2, Uuid::new_v4(), now),
        ])
        .await
        .expect("insert");
    assert!(
        store
            .rename_project(shop.id, "store")
            .await
            .expect("rename")
    );
    assert_eq!(
        store.project(shop.id).await.expect("get").map(|p| p.name),
        Some("store".into())
    );
    store
        .set_project_settings(shop.id, r#"{"retention_days":7}"#)
        .await
        .expect("settings");
    assert!(store.delete_project(shop.id).await.expect("delete"));
    assert!(!store.delete_project(shop.id).await.expect("again"));
    assert_eq!(store.project(shop.id).await.expect("get"), None);
    assert!(
        store
            .keys()
            .await
            .expect("keys")
            .iter()
            .any(|k| k.public_key == key.public_key && !k.active),
        "its keys stop working"
    );
    // Mutations run in the background: wait for them.
    for _ in 0..100 {
        if store.count_events(shop.id).await.expect("count") == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(store.count_events(shop.id).await.expect("count"), 0);
    assert_eq!(
        store.count_events(other.id).await.expect("count"),
        1,
        "other projects keep theirs"
    );
    // Its aggregates and settings go too (mutations: waited for the same way).
    let mut listed = Vec::new();
    for _ in 0..100 {
        listed = store
            .list_issues(shop.id, &IssueFilter::default())
            .await
            .expect("list");
        if listed.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(listed.is_empty(), "{listed:?}");
    assert_eq!(
        store.project_settings(shop.id).await.expect("settings"),
        None
    );
    let others = store
        .list_issues(other.id, &IssueFilter::default())
        .await
        .expect("list");
    assert_eq!(others.len(), 1);
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
    store.insert_events(rows.clone()).await.expect("insert");
    // The same event delivered again, in a separate insert (a separate part, not yet merged).
    store
        .insert_events(rows[..1].to_vec())
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
    let issues = store
        .list_issues(1, &IssueFilter::default())
        .await
        .expect("list");
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
    // A batch that repeats an event of its own and an earlier one, with times far apart.
    let old = event(1, 20, Uuid::new_v4(), now - 100_000);
    store
        .insert_events(vec![old.clone(), rows[2].clone(), old])
        .await
        .expect("insert repeats");
    let listed = store
        .list_issues(1, &IssueFilter::default())
        .await
        .expect("list");
    let counts: Vec<(u64, u64, u32)> = listed
        .iter()
        .map(|i| (i.stats.issue_id, i.stats.times_seen, i.stats.first_seen))
        .collect();
    assert_eq!(counts, vec![(10, 2, now - 5), (20, 2, now - 100_000)]);
}

#[tokio::test]
async fn activity_windows_and_watermarks() {
    let (_dir, _server, store) = start().await;
    store
        .insert_events([event(1, 10, Uuid::new_v4(), 1_000_000)])
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
        .insert_events([original.clone()])
        .await
        .expect("insert");
    let t0 = store.server_now().await.expect("now");
    let first = store.issue_activity(1, 0, t0 + 1).await.expect("activity");
    assert_eq!(
        (first.len(), first[0].events_in_window, first[0].is_new),
        (1, 1, true)
    );

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    store.insert_events([original]).await.expect("redelivery");
    let t1 = store.server_now().await.expect("now");
    assert!(
        store
            .issue_activity(1, t0 + 1, t1 + 1)
            .await
            .expect("activity")
            .is_empty()
    );

    store
        .insert_events([event(1, 10, Uuid::new_v4(), 1_000_001)])
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

/// An issue row for `hash` (its own issue id is `id`), as the grouper writes it.
fn issue(project_id: u64, id: u64, title: &str) -> IssueRow {
    IssueRow {
        project_id,
        issue_id: id,
        primary_hash: format!("{id:032x}"),
        title: title.into(),
        culprit: "app.views".into(),
        ty: "ValueError".into(),
        value: "bad".into(),
        level: "error".into(),
        platform: "python".into(),
        version: 1,
    }
}

fn user_event(issue_id: u64, timestamp: u32, user: &str, release: &str) -> EventRow {
    EventRow {
        user_id: user.into(),
        release: release.into(),
        ..event(1, issue_id, Uuid::new_v4(), timestamp)
    }
}

#[tokio::test]
async fn statuses_and_ignore_conditions() {
    let (_dir, _server, store) = start().await;
    let now = store.server_now().await.expect("now");
    store
        .upsert_issues(&[issue(1, 10, "Ten"), issue(1, 20, "Twenty")])
        .await
        .expect("issues");
    let mut rows = vec![
        user_event(10, now - 10, "u1", "1.0"),
        user_event(10, now - 5, "u2", "1.1"),
        user_event(10, now - 4, "u2", ""),
        user_event(20, now - 100, "", ""),
    ];
    store.insert_events(rows.clone()).await.expect("insert");
    // Redelivered copies in their own part must not change any count.
    store.insert_events(rows.clone()).await.expect("duplicates");
    let list = store
        .list_issues(1, &IssueFilter::default())
        .await
        .expect("list");
    let ten = list.iter().find(|i| i.stats.issue_id == 10).expect("ten");
    assert_eq!(
        (
            ten.stats.times_seen,
            ten.stats.users,
            ten.stats.last_release.as_str()
        ),
        (3, 2, "1.1")
    );
    assert_eq!(ten.status.status, IssueStatus::Unresolved);
    let d = ten.description.as_ref().expect("described");
    assert_eq!(
        (d.ty.as_str(), d.platform.as_str()),
        ("ValueError", "python")
    );

    // Resolved, then filtered by status.
    let resolved = store
        .set_issue_status(1, 10, &StatusChange::ResolveInNextRelease)
        .await
        .expect("resolve");
    assert_eq!(resolved.resolved_in_release, "1.1");
    let only = |status| IssueFilter {
        status: Some(status),
        ..Default::default()
    };
    let listed = store
        .list_issues(1, &only(IssueStatus::ResolvedInNextRelease))
        .await
        .expect("list");
    assert_eq!(
        listed.iter().map(|i| i.stats.issue_id).collect::<Vec<_>>(),
        vec![10]
    );

    // Ignored until two more events: one more keeps it ignored, the second lapses it.
    store
        .set_issue_status(
            1,
            20,
            &StatusChange::Ignore {
                count: Some(2),
                until: None,
            },
        )
        .await
        .expect("ignore");
    let status_of = |list: Vec<shrike_store::IssueSummary>, id| {
        list.into_iter()
            .find(|i| i.stats.issue_id == id)
            .map(|i| i.status)
            .expect("listed")
    };
    rows = vec![user_event(20, now - 50, "", "")];
    store.insert_events(rows.clone()).await.expect("one more");
    let list = store
        .list_issues(1, &IssueFilter::default())
        .await
        .expect("list");
    assert_eq!(status_of(list, 20).status, IssueStatus::Ignored);
    store
        .insert_events(rows.clone())
        .await
        .expect("a duplicate is not an event");
    let list = store
        .list_issues(1, &IssueFilter::default())
        .await
        .expect("list");
    assert_eq!(status_of(list, 20).status, IssueStatus::Ignored);
    store
        .insert_events([user_event(20, now - 40, "", "")])
        .await
        .expect("second more");
    let list = store
        .list_issues(1, &IssueFilter::default())
        .await
        .expect("list");
    let lapsed = status_of(list, 20);
    assert_eq!(
        (lapsed.status, lapsed.substatus),
        (IssueStatus::Unresolved, "ignore_lapsed")
    );

    // Ignored until a date in the past has lapsed; in the future it holds.
    for (until, expected) in [
        (now - 1, IssueStatus::Unresolved),
        (now + 3600, IssueStatus::Ignored),
    ] {
        store
            .set_issue_status(
                1,
                20,
                &StatusChange::Ignore {
                    count: None,
                    until: Some(until),
                },
            )
            .await
            .expect("ignore until");
        let list = store
            .list_issues(1, &IssueFilter::default())
            .await
            .expect("list");
        assert_eq!(status_of(list, 20).status, expected);
    }

    // Text and time filters.
    let query = IssueFilter {
        query: Some("twen".into()),
        ..Default::default()
    };
    let found = store.list_issues(1, &query).await.expect("query");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].stats.issue_id, 20);
    let since = IssueFilter {
        since: Some(now - 20),
        ..Default::default()
    };
    let recent = store.list_issues(1, &since).await.expect("since");
    assert_eq!(
        recent.iter().map(|i| i.stats.issue_id).collect::<Vec<_>>(),
        vec![10]
    );
    assert!(matches!(
        store.set_issue_status(1, 99, &StatusChange::Resolve).await,
        Err(StoreError::NoIssue(99))
    ));
}

#[tokio::test]
async fn merge_and_unmerge_move_hashes_and_counts() {
    let (_dir, _server, store) = start().await;
    let now = store.server_now().await.expect("now");
    store
        .upsert_issues(&[
            issue(1, 10, "Ten"),
            issue(1, 20, "Twenty"),
            issue(1, 30, "Thirty"),
        ])
        .await
        .expect("issues");
    let rows = vec![
        user_event(10, now - 10, "a", ""),
        user_event(20, now - 9, "b", ""),
        user_event(20, now - 8, "b", ""),
        user_event(30, now - 7, "c", ""),
    ];
    store.insert_events(rows.clone()).await.expect("insert");
    store.insert_events(rows.clone()).await.expect("duplicates");

    let moved = store.merge_issues(1, 10, &[20]).await.expect("merge");
    assert_eq!(moved, vec![format!("{:032x}", 20)]);
    let list = store
        .list_issues(1, &IssueFilter::default())
        .await
        .expect("list");
    let ids: Vec<u64> = list.iter().map(|i| i.stats.issue_id).collect();
    assert_eq!(ids, vec![30, 10]);
    let ten = &list[1];
    assert_eq!((ten.stats.times_seen, ten.stats.users), (3, 2));
    assert_eq!(ten.stats.first_seen, now - 10);
    assert_eq!(
        ten.description.as_ref().map(|d| d.title.as_str()),
        Some("Ten")
    );

    // A new event of the merged hash counts toward the target.
    store
        .insert_events([user_event(20, now - 1, "d", "")])
        .await
        .expect("new event of the merged hash");
    let detail = store.issue_detail(1, 10).await.expect("detail");
    assert_eq!(detail.summary.stats.times_seen, 4);
    assert_eq!(detail.hashes.len(), 2);
    assert_eq!(detail.latest.as_ref().map(|e| e.timestamp), Some(now - 1));
    assert!(matches!(
        store.issue_detail(1, 20).await,
        Err(StoreError::Merged {
            issue: 20,
            into: 10
        })
    ));
    assert!(matches!(
        store.set_issue_status(1, 20, &StatusChange::Resolve).await,
        Err(StoreError::Merged { .. })
    ));

    // Merging a merged issue's target carries its hashes along.
    store.merge_issues(1, 30, &[10]).await.expect("merge again");
    let thirty = store.issue_detail(1, 30).await.expect("detail");
    assert_eq!(
        (thirty.summary.stats.times_seen, thirty.hashes.len()),
        (5, 3)
    );
    assert!(matches!(
        store.merge_issues(1, 30, &[30]).await,
        Err(StoreError::SelfMerge(30))
    ));

    // Unmerging gives a hash back to its own issue.
    let back = store
        .unmerge_hashes(1, &[format!("{:032x}", 20)])
        .await
        .expect("unmerge");
    assert_eq!(back, vec![(format!("{:032x}", 20), 20)]);
    let twenty = store.issue_detail(1, 20).await.expect("twenty is back");
    assert_eq!(twenty.summary.stats.times_seen, 3);
    assert_eq!(
        store
            .issue_detail(1, 30)
            .await
            .expect("thirty")
            .summary
            .stats
            .times_seen,
        2
    );
    assert!(matches!(
        store.unmerge_hashes(1, &[format!("{:032x}", 20)]).await,
        Err(StoreError::NotMerged(_))
    ));
    assert!(matches!(
        store.unmerge_hashes(1, &["nope".to_owned()]).await,
        Err(StoreError::NoHash(_))
    ));
}

#[tokio::test]
async fn activity_reports_status_and_regressions() {
    let (_dir, _server, store) = start().await;
    store
        .upsert_issues(&[issue(1, 10, "Ten"), issue(1, 20, "Twenty")])
        .await
        .expect("issues");
    store
        .insert_events([
            event(1, 10, Uuid::new_v4(), 1_000_000),
            event(1, 20, Uuid::new_v4(), 1_000_000),
        ])
        .await
        .expect("insert");
    store
        .set_issue_status(
            1,
            20,
            &StatusChange::Ignore {
                count: None,
                until: None,
            },
        )
        .await
        .expect("ignore");
    let resolved = store
        .set_issue_status(1, 10, &StatusChange::Resolve)
        .await
        .expect("resolve");
    let states = store.issue_states(&[10]).await.expect("states");
    let state = states.get(&(1, 10)).expect("state");
    assert_eq!(state.row, resolved);
    store
        .insert_issue_statuses(&[state.regression(Uuid::new_v4())])
        .await
        .expect("regress");
    assert_eq!(
        store.regressed_keys().await.expect("regressed"),
        vec![(1, 10, resolved.resolution)]
    );
    let now = store.server_now().await.expect("now");
    let activity = store.issue_activity(1, 0, now + 1).await.expect("activity");
    let ten = activity.iter().find(|a| a.issue_id == 10).expect("ten");
    assert!(ten.is_regression && ten.is_new);
    assert_eq!(ten.status.status, IssueStatus::Unresolved);
    let twenty = activity.iter().find(|a| a.issue_id == 20).expect("twenty");
    assert_eq!(twenty.status.status, IssueStatus::Ignored);
    assert!(!twenty.is_regression);
}

#[tokio::test]
async fn expired_weeks_are_dropped_per_project_retention() {
    let (_dir, _server, store) = start().await;
    let store = store.with_retention(shrike_store::RetentionConfig {
        days: 90,
        projects: [("3".to_owned(), 60)].into(),
    });
    // Project 3's own setting (set through the API) wins over the file's 60 days.
    store
        .set_project_settings(3, r#"{"retention_days":30}"#)
        .await
        .expect("settings");
    let applied = store.refresh_retention().await.expect("refresh");
    assert_eq!((applied.days(1), applied.days(3)), (90, 30));
    let now = store.server_now().await.expect("now");
    let day = 86_400;
    let (old, recent, short_old, short_recent) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    store
        .insert_events([
            event(1, 10, old, now - 200 * day),
            event(1, 10, recent, now - 60 * day),
            event(3, 30, short_old, now - 60 * day),
            event(3, 30, short_recent, now - day),
        ])
        .await
        .expect("insert");
    store
        .insert_check_ins(&[shrike_store::CheckInRow {
            project_id: 1,
            monitor_slug: "nightly".into(),
            received: now - 200 * day,
            ..Default::default()
        }])
        .await
        .expect("check-in");
    let found = |id| {
        let store = &store;
        async move {
            store
                .event(if id == old || id == recent { 1 } else { 3 }, id)
                .await
                .expect("event")
                .is_some()
        }
    };
    assert!(found(old).await && found(short_old).await);

    let dropped = store.drop_expired(now).await.expect("drop");
    assert!(dropped.iter().any(|e| e.table == "events" && e.days == 90));
    assert!(dropped.iter().any(|e| e.table == "events" && e.days == 30));
    assert!(dropped.iter().any(|e| e.table == "check_ins"));
    assert!(dropped.iter().any(|e| e.table == "event_index"));
    assert!(dropped.iter().any(|e| e.table == "hash_days"));
    assert!(!found(old).await, "older than 90 days");
    // The issue's counts expire with its events.
    let listed = store
        .list_issues(1, &IssueFilter::default())
        .await
        .expect("list");
    assert_eq!(listed[0].stats.times_seen, 1);
    assert!(found(recent).await, "60 days is within 90");
    assert!(!found(short_old).await, "older than project 3's 30 days");
    assert!(found(short_recent).await);
    assert!(store.drop_expired(now).await.expect("again").is_empty());
}

#[tokio::test]
async fn an_ignore_lapses_on_all_events_even_in_a_filtered_list() {
    let (_dir, _server, store) = start().await;
    let now = store.server_now().await.expect("now");
    let in_env = |env: &str, at| EventRow {
        environment: env.into(),
        ..event(1, 10, Uuid::new_v4(), at)
    };
    store
        .insert_events([in_env("qa", now - 100)])
        .await
        .expect("insert");
    store
        .upsert_issues(&[IssueRow {
            project_id: 1,
            issue_id: 10,
            primary_hash: format!("{:032x}", 10),
            ..Default::default()
        }])
        .await
        .expect("issue");
    store
        .set_issue_status(
            1,
            10,
            &StatusChange::Ignore {
                count: Some(2),
                until: None,
            },
        )
        .await
        .expect("ignore");
    // Two more events, one of them in prod: the ignore lapsed, whatever a list is filtered by.
    store
        .insert_events([in_env("prod", now - 50), in_env("qa", now - 10)])
        .await
        .expect("insert");
    let unresolved_in_prod = IssueFilter {
        status: Some(IssueStatus::Unresolved),
        environment: Some("prod".into()),
        ..Default::default()
    };
    let listed = store
        .list_issues(1, &unresolved_in_prod)
        .await
        .expect("list");
    assert_eq!(
        listed
            .iter()
            .map(|i| (i.stats.issue_id, i.stats.times_seen))
            .collect::<Vec<_>>(),
        vec![(10, 1)],
        "listed as unresolved, with prod's count"
    );
}
