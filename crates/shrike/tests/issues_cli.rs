//! `shrike issues list|show|resolve|unresolve|ignore|merge|unmerge` end to end: the real binary
//! against a private ClickHouse server, with events stored the way the grouper stores them
//! (redelivered copies included, so counts must stay exact).

mod common;

use common::*;
use shrike_issues::{IssueRow, issue_id_for_hash};
use shrike_store::EventRow;
use shrike_store::local::LocalClickHouse;
use std::path::Path;
use uuid::Uuid;

const ZERO: &str = "1111111111111111aaaaaaaaaaaaaaaa";
const KEY: &str = "2222222222222222bbbbbbbbbbbbbbbb";
const VALUE: &str = "3333333333333333cccccccccccccccc";

fn issue(hash: &str, title: &str, ty: &str) -> IssueRow {
    IssueRow {
        project_id: 1,
        issue_id: issue_id_for_hash(hash),
        primary_hash: hash.into(),
        title: title.into(),
        culprit: "app.views in boom".into(),
        ty: ty.into(),
        value: "x".into(),
        level: "error".into(),
        platform: "python".into(),
        version: 1,
    }
}

fn event(hash: &str, timestamp: u32, user: &str, release: &str) -> EventRow {
    EventRow {
        project_id: 1,
        event_id: Uuid::new_v4(),
        timestamp,
        received: timestamp,
        issue_id: issue_id_for_hash(hash),
        primary_hash: hash.into(),
        release: release.into(),
        user_id: user.into(),
        exception_type: "ZeroDivisionError".into(),
        exception_value: "division by zero".into(),
        frame_filenames: vec!["django/core.py".into(), "app/views.py".into()],
        frame_functions: vec!["dispatch".into(), "boom".into()],
        frame_linenos: vec![10, 7],
        frame_in_app: vec![0, 1],
        ..Default::default()
    }
}

fn list(config: &Path, filters: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["issues", "list", "--json"];
    args.extend_from_slice(filters);
    shrike_cli(config, &args)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

fn ids(list: &[serde_json::Value]) -> Vec<u64> {
    list.iter()
        .map(|i| i["id"].as_str().and_then(|s| s.parse().ok()).expect("id"))
        .collect()
}

fn show(config: &Path, id: u64) -> serde_json::Value {
    serde_json::from_str(&shrike_cli(
        config,
        &["issues", "show", &id.to_string(), "--json"],
    ))
    .expect("json")
}

#[test]
fn issues_are_listed_shown_resolved_ignored_merged_and_unmerged() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let server = runtime
        .block_on(LocalClickHouse::start(&dir.path().join("ch"), 0, 0))
        .expect("clickhouse-server starts");
    let config = dir.path().join("shrike.toml");
    std::fs::write(&config, clickhouse_section(&server)).expect("config");
    let store = server.store("shrike").expect("store");
    let (zero, key, value) = (
        issue_id_for_hash(ZERO),
        issue_id_for_hash(KEY),
        issue_id_for_hash(VALUE),
    );
    runtime.block_on(async {
        store.migrate().await.expect("migrate");
        store.create_project("default").await.expect("project");
        let now = store.server_now().await.expect("now");
        store
            .upsert_issues(&[
                issue(
                    ZERO,
                    "ZeroDivisionError: division by zero",
                    "ZeroDivisionError",
                ),
                issue(KEY, "KeyError: 'theme'", "KeyError"),
                issue(VALUE, "ValueError: bad", "ValueError"),
            ])
            .await
            .expect("issues");
        let rows = vec![
            event(ZERO, now - 100, "u1", "1.0"),
            event(ZERO, now - 50, "u2", "1.1"),
            event(ZERO, now - 10, "u1", "1.1"),
            event(KEY, now - 7200, "", ""),
            event(VALUE, now - 20, "u3", ""),
        ];
        store.insert_events(rows.clone()).await.expect("events");
        store
            .insert_events(rows.clone())
            .await
            .expect("redelivered copies");
    });

    // list: all, by text, by time.
    let all = list(&config, &[]);
    assert_eq!(ids(&all), vec![zero, value, key]);
    assert_eq!(
        (
            &all[0]["times_seen"],
            &all[0]["users"],
            &all[0]["last_release"]
        ),
        (&3.into(), &2.into(), &"1.1".into())
    );
    assert!(all.iter().all(|i| i["status"] == "unresolved"));
    assert_eq!(ids(&list(&config, &["--query", "keyerror"])), vec![key]);
    assert_eq!(ids(&list(&config, &["--since", "1h"])), vec![zero, value]);
    assert_eq!(ids(&list(&config, &["--limit", "1"])), vec![zero]);
    let table = shrike_cli(&config, &["issues", "list"]);
    assert!(table.starts_with("ID "), "{table}");
    assert!(
        table.contains("ZeroDivisionError: division by zero"),
        "{table}"
    );

    // show: record, hashes, latest event.
    let shown = show(&config, zero);
    assert_eq!(shown["type"], "ZeroDivisionError");
    assert_eq!(shown["platform"], "python");
    assert_eq!(shown["hashes"], serde_json::json!([ZERO]));
    assert_eq!(shown["latest_event"]["release"], "1.1");
    assert_eq!(shown["latest_event"]["frames"][1]["function"], "boom");
    let text = shrike_cli(&config, &["issues", "show", &zero.to_string()]);
    assert!(
        text.contains("at boom in app/views.py:7 (in app)"),
        "{text}"
    );

    // resolve, unresolve, resolve in the next release.
    let out = shrike_cli(&config, &["issues", "resolve", &zero.to_string()]);
    assert_eq!(out.trim(), format!("issue {zero} resolved"));
    assert_eq!(ids(&list(&config, &["--status", "resolved"])), vec![zero]);
    assert_eq!(
        ids(&list(&config, &["--status", "unresolved"])),
        vec![value, key]
    );
    shrike_cli(&config, &["issues", "unresolve", &zero.to_string()]);
    shrike_cli(
        &config,
        &["issues", "resolve", "--next-release", &zero.to_string()],
    );
    let shown = show(&config, zero);
    assert_eq!(
        (&shown["status"], &shown["resolved_in_release"]),
        (&"resolved_in_next_release".into(), &"1.1".into())
    );

    // ignore: until a count (holds), until a past date (lapsed), forever.
    shrike_cli(
        &config,
        &["issues", "ignore", "--count", "5", &value.to_string()],
    );
    assert_eq!(ids(&list(&config, &["--status", "ignored"])), vec![value]);
    shrike_cli(
        &config,
        &[
            "issues",
            "ignore",
            "--until",
            "2020-01-01",
            &key.to_string(),
        ],
    );
    let lapsed = show(&config, key);
    assert_eq!(
        (&lapsed["status"], &lapsed["substatus"]),
        (&"unresolved".into(), &"ignore_lapsed".into())
    );
    shrike_cli(&config, &["issues", "ignore", &key.to_string()]);
    assert_eq!(
        ids(&list(&config, &["--status", "ignored"])),
        vec![value, key]
    );
    let (ok, _, err) = shrike_cli_output(&config, &["issues", "ignore", "--until", "soon", "1"]);
    assert!(!ok && err.contains("invalid time"), "{err}");

    // merge KEY and VALUE into ZERO; the merged issues are gone and their events count.
    let out = shrike_cli(
        &config,
        &[
            "issues",
            "merge",
            &zero.to_string(),
            &key.to_string(),
            &value.to_string(),
        ],
    );
    assert_eq!(out.trim(), format!("merged 2 hashes into issue {zero}"));
    let all = list(&config, &[]);
    assert_eq!(ids(&all), vec![zero]);
    assert_eq!(
        (&all[0]["times_seen"], &all[0]["users"]),
        (&5.into(), &3.into())
    );
    let mut hashes: Vec<String> =
        serde_json::from_value(show(&config, zero)["hashes"].clone()).expect("hashes");
    hashes.sort();
    assert_eq!(hashes, vec![ZERO, KEY, VALUE]);
    let (ok, _, err) = shrike_cli_output(&config, &["issues", "show", &key.to_string()]);
    assert!(
        !ok && err.contains(&format!("merged into issue {zero}")),
        "{err}"
    );
    let (ok, _, err) = shrike_cli_output(&config, &["issues", "resolve", &key.to_string()]);
    assert!(!ok && err.contains("was merged"), "{err}");

    // unmerge VALUE: it is its own issue again, with its own status and events.
    let out = shrike_cli(&config, &["issues", "unmerge", VALUE]);
    assert_eq!(
        out.trim(),
        format!("hash {VALUE} belongs to issue {value} again")
    );
    assert_eq!(ids(&list(&config, &[])), vec![zero, value]);
    let back = show(&config, value);
    assert_eq!(
        (&back["times_seen"], &back["status"]),
        (&1.into(), &"ignored".into())
    );
    assert_eq!(show(&config, zero)["times_seen"], 4);
    let (ok, _, err) = shrike_cli_output(&config, &["issues", "unmerge", VALUE]);
    assert!(!ok && err.contains("not merged"), "{err}");
    let (ok, _, err) = shrike_cli_output(&config, &["issues", "show", "12345"]);
    assert!(!ok && err.contains("no issue 12345"), "{err}");
}
