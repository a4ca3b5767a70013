//! `shrike up` killed with SIGKILL loses nothing it answered 200 for: the harness's `smoke`
//! scenario is sent while the grouper holds every event in an unwritten batch, the process is
//! killed, and the next `shrike up` on the same data directory stores and groups all of them from
//! the bus journal.

mod common;

use common::*;
use shrike_load::{RunOptions, Scenario};
use shrike_store::local::LocalClickHouse;
use std::path::Path;
use std::time::Duration;

/// A `shrike up` config using the test's ClickHouse, with `extra` TOML appended.
fn write_config(dir: &Path, clickhouse: &str, ingest: u16, extra: &str) -> std::path::PathBuf {
    // `clickhouse` is the test server's section (see `clickhouse_section`).
    let path = dir.join("shrike.toml");
    std::fs::write(
        &path,
        format!(
            "data_dir = \"{data}\"\nops_listen = \"\"\n{clickhouse}\
             [ingest]\nlisten = \"127.0.0.1:{ingest}\"\n[alerter]\nenabled = false\n{extra}",
            data = dir.join("data").display()
        ),
    )
    .expect("config");
    path
}

#[test]
fn events_accepted_before_a_kill_9_are_stored_after_the_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let ch_tcp = free_port();
    // The test's own server, so that it outlives the killed process and stops with the test.
    let server = runtime
        .block_on(LocalClickHouse::start(
            &dir.join("clickhouse"),
            free_port(),
            ch_tcp,
        ))
        .expect("clickhouse-server starts");
    let ch = Ch::of(&server);
    let ingest = free_port();
    let stored = || -> u64 {
        clickhouse(&ch, "SELECT uniqExact(event_id) FROM shrike.events")
            .trim()
            .parse()
            .expect("a count")
    };

    // First run: the grouper's batch neither fills (300 events are far from 8 MiB) nor times
    // out, so every accepted event is still only in the bus when the process dies.
    let config = write_config(
        dir,
        &clickhouse_section(&server),
        ingest,
        "[grouper]\nbatch_wait_ms = 3600000\nbatch_rows = 1000000\n",
    );
    let shrike = start_shrike(&config, &dir.join("first.log"));
    let scenario = Scenario::shipped("smoke").expect("smoke scenario");
    let options = RunOptions {
        dsn: shrike.dsn.clone(),
        ..RunOptions::default()
    };
    let report = runtime
        .block_on(shrike_load::run(&scenario, &options))
        .expect("load run");
    let planned = scenario.events.expect("smoke has an event count");
    assert_eq!(report.totals.accepted, planned, "{:?}", report.statuses);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(stored(), 0, "the grouper wrote a batch before the kill");
    kill_9(shrike.proc);

    // Second run on the same data directory, with batches written promptly.
    let config = write_config(
        dir,
        &clickhouse_section(&server),
        ingest,
        "[grouper]\nbatch_wait_ms = 200\n",
    );
    let log = dir.join("second.log");
    let shrike = start_shrike(&config, &log);
    wait_for(
        "every accepted event stored after the restart",
        Duration::from_secs(60),
        || (stored() >= planned).then_some(()),
    );
    assert_run_stored(&ch, &report.run_id, planned, scenario.mix.issues);
    let issues = shrike_cli(&config, &["issues", "list", "--json"]);
    assert_eq!(issues.lines().count(), scenario.mix.issues as usize);
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        log_text.contains("resuming the records the last run left in the bus journal"),
        "{log_text}"
    );
    shrike.proc.terminate(Duration::from_secs(30));
}
