//! The load harness against the real thing: `shrike up` with its own ClickHouse, the shipped
//! `smoke` scenario sent through the `shrike_load` library, then the harness's end-to-end check.
//! Asserts every event is accepted, stored and grouped into exactly the configured number of
//! issues, that the process sampling saw `shrike up`, and that the report files are written.

mod common;

use common::*;
use shrike_load::{ClickHouseCheck, Report, RunOptions, Scenario};
use std::time::Duration;

#[test]
fn smoke_scenario_is_accepted_stored_and_grouped() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (ingest, ch_http, ch_tcp) = (free_port(), free_port(), free_port());
    let config = write_up_config(
        dir,
        ingest,
        ch_http,
        ch_tcp,
        "[grouper]\nbatch_wait_ms = 200\n[alerter]\nenabled = false\n",
    );
    let shrike = start_shrike(&config, &dir.join("shrike.log"));
    let ch = Ch::of_up(&dir.join("data"), ch_tcp);

    let scenario = Scenario::shipped("smoke").expect("smoke scenario");
    let out = dir.join("report");
    let options = RunOptions {
        dsn: shrike.dsn.clone(),
        clickhouse: Some(ClickHouseCheck {
            timeout: Duration::from_secs(30),
            password: ch.password.clone(),
            ..ClickHouseCheck::new(&format!("http://127.0.0.1:{ch_http}"))
        }),
        process_pids: vec![shrike.proc.child.id()],
        json_path: Some(out.join("smoke.json")),
        markdown_path: Some(out.join("smoke.md")),
        svg_path: Some(out.join("smoke.svg")),
        ..RunOptions::default()
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let report = runtime
        .block_on(shrike_load::run(&scenario, &options))
        .expect("load run");

    // Every event was sent on schedule and accepted.
    let planned = scenario.events.expect("smoke has an event count");
    assert_eq!(report.planned, Some(planned));
    assert_eq!(report.totals.sent, planned);
    assert_eq!(report.totals.dropped, 0);
    assert_eq!(report.totals.accepted, planned, "{:?}", report.statuses);
    assert_eq!(report.statuses.by_code.get(&200), Some(&planned));
    assert_eq!(report.statuses.transport_errors, 0);
    assert_eq!(report.latency.count, planned);
    assert!(report.totals.accepted_per_sec > 50.0, "{:?}", report.totals);
    assert_eq!(report.mix.by_platform.len(), 4, "{:?}", report.mix);

    // Every accepted event is queryable and grouped, into exactly the configured issues.
    let e2e = report.end_to_end.as_ref().expect("end-to-end result");
    assert!(e2e.complete, "{e2e:?}");
    assert_eq!(e2e.stored, planned);
    assert_eq!(e2e.grouped, planned);
    assert_eq!(e2e.issues, u64::from(scenario.mix.issues), "{e2e:?}");
    assert_eq!(e2e.generated_issues, u64::from(scenario.mix.issues));
    assert_eq!((e2e.split_issues, e2e.merged_issues), (0, 0));
    assert!(
        e2e.all_stored_after_secs
            .is_some_and(|s| s > 0.0 && s < 60.0)
    );
    assert!(e2e.processed_per_sec.is_some_and(|r| r > 0.0));
    let latency = e2e.queryable_latency.as_ref().expect("queryable latency");
    assert_eq!(latency.sampled, planned);
    assert_eq!(
        e2e.stored_per_second.values().sum::<u64>(),
        planned,
        "{e2e:?}"
    );
    // The same counts straight from ClickHouse.
    assert_run_stored(&ch, &report.run_id, planned, scenario.mix.issues);
    let issues = shrike_cli(&config, &["issues", "list", "--json"]);
    assert_eq!(issues.lines().count(), scenario.mix.issues as usize);

    // Process sampling saw shrike up.
    assert_eq!(report.processes.len(), 1);
    assert!(report.processes[0].cpu_ms > 0.0, "{:?}", report.processes);
    assert!(report.processes[0].peak_rss_mib > 1.0);

    // The report files.
    let json = std::fs::read_to_string(out.join("smoke.json")).expect("json report");
    let parsed: Report = serde_json::from_str(&json).expect("report parses");
    assert_eq!(parsed.run_id, report.run_id);
    assert_eq!(parsed.totals.accepted, planned);
    assert_eq!(parsed.scenario, scenario);
    assert_eq!(parsed.end_to_end.as_ref().map(|e| e.stored), Some(planned));
    assert!(parsed.per_second.iter().any(|p| p.stored.unwrap_or(0) > 0));
    let markdown = std::fs::read_to_string(out.join("smoke.md")).expect("markdown");
    assert_eq!(markdown, report.markdown());
    assert!(
        markdown.contains(&format!("| accepted (2xx) | {planned} |")),
        "{markdown}"
    );
    assert!(markdown.contains("| p50 | p90 | p99 | p99.9 | max | mean |"));
    let svg = std::fs::read_to_string(out.join("smoke.svg")).expect("svg");
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
    for text in [
        "events per second",
        "accepted (2xx)",
        "stored in ClickHouse",
        "p99",
    ] {
        assert!(svg.contains(text), "svg lacks {text}");
    }
    assert!(svg.matches("<polyline").count() >= 5);

    shrike.proc.terminate(Duration::from_secs(30));
}
