//! Protocol compatibility with real clients against `shrike up`: the JavaScript SDK
//! (`@sentry/node`), plain sentry-python, the `sentry` Rust crate, `sentry-cli send-event`, cron check-ins from
//! `sentry-cli monitors run` and from the HTTP cron endpoint, and CORS preflights.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

fn node_modules() -> std::path::PathBuf {
    let dir = std::env::var_os("SHRIKE_TEST_NODE_MODULES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "node_modules".into());
    assert!(
        dir.join("@sentry/node/package.json").exists(),
        "@sentry/node not found in {}: run `bash deploy/scripts/test.sh` (or set SHRIKE_TEST_NODE_MODULES)",
        dir.display()
    );
    dir
}

fn sentry_cli(python: &Path) -> std::path::PathBuf {
    let cli = python.parent().expect("venv bin").join("sentry-cli");
    assert!(
        cli.exists(),
        "sentry-cli not found next to {}: run `bash deploy/scripts/test.sh`",
        python.display()
    );
    cli
}

fn row(ch: &Ch, sql: &str) -> Option<serde_json::Value> {
    let out = clickhouse(ch, &format!("{sql} FORMAT JSONEachRow"));
    serde_json::from_str(out.lines().next()?).ok()
}

#[test]
fn real_clients_send_events_and_check_ins() {
    let python = python();
    let modules = node_modules();
    let cli = sentry_cli(&python);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (ingest, ch_http, ch_tcp) = (free_port(), free_port(), free_port());
    let config = write_up_config(
        dir,
        ingest,
        ch_http,
        ch_tcp,
        "[grouper]\nbatch_wait_ms = 100\n[alerter]\nenabled = false\n\
         [[ingest.quotas]]\nscope = \"project\"\ncategories = [\"error\"]\nlimit = 1\nwindow_secs = 60\n\
         project_id = 2\nreason = \"burst\"\n",
    );
    let shrike = start_shrike(&config, &dir.join("shrike.log"));
    let ch = Ch::of_up(&dir.join("data"), ch_tcp);
    let dsn = shrike.dsn.clone();
    let key = dsn
        .trim_start_matches("http://")
        .split('@')
        .next()
        .expect("key")
        .to_owned();

    // @sentry/node.
    let script = "const Sentry = require('@sentry/node');\n\
                  Sentry.init({ dsn: process.argv[1], release: 'node@1.2.3', environment: 'test' });\n\
                  Sentry.setTag('runtime', 'node');\n\
                  Sentry.setUser({ id: 'n1', email: 'n1@example.com' });\n\
                  function parseConfig() { throw new TypeError('config is not an object'); }\n\
                  try { parseConfig(); } catch (e) { Sentry.captureException(e); }\n\
                  Sentry.flush(10000).then(ok => process.exit(ok ? 0 : 1));\n";
    let node = Command::new("node")
        .args(["-e", script, &dsn])
        .env("NODE_PATH", &modules)
        .output()
        .expect("node runs");
    assert!(
        node.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&node.stderr)
    );
    let event = wait_for("the node event", MINUTE, || {
        row(
            &ch,
            "SELECT exception_type, exception_value, sdk_name, release, environment, user_id, platform, \
             tags.value[indexOf(tags.key, 'runtime')] AS runtime, frame_functions FROM shrike.events \
             WHERE exception_type = 'TypeError'",
        )
    });
    assert_eq!(event["exception_value"], "config is not an object");
    assert_eq!(event["sdk_name"], "sentry.javascript.node");
    assert_eq!(
        (event["release"].as_str(), event["environment"].as_str()),
        (Some("node@1.2.3"), Some("test"))
    );
    assert_eq!(
        (event["user_id"].as_str(), event["runtime"].as_str()),
        (Some("n1"), Some("node"))
    );
    assert_eq!(event["platform"], "node");
    let functions = event["frame_functions"].as_array().expect("frames");
    assert!(
        functions.iter().any(|f| f == "parseConfig"),
        "{functions:?}"
    );

    // Plain sentry-python, a message with tags, user, release and environment.
    let script = "import sys, sentry_sdk\n\
                  sentry_sdk.init(dsn=sys.argv[1], release='py@2', environment='qa')\n\
                  sentry_sdk.set_tag('component', 'billing')\n\
                  sentry_sdk.set_user({'id': 'p1'})\n\
                  sentry_sdk.capture_message('invoice 42 failed', level='warning')\n\
                  sentry_sdk.flush(10)\n";
    run_python(&python, script, &dsn);
    let event = wait_for("the python message", MINUTE, || {
        row(
            &ch,
            "SELECT title, level, sdk_name, release, environment, user_id, \
             tags.value[indexOf(tags.key, 'component')] AS component FROM shrike.events WHERE release = 'py@2'",
        )
    });
    assert_eq!(
        (event["title"].as_str(), event["level"].as_str()),
        (Some("invoice 42 failed"), Some("warning"))
    );
    // Installed integrations (Django is in the test venv) extend the name: sentry.python[.django].
    assert!(
        event["sdk_name"]
            .as_str()
            .is_some_and(|s| s.starts_with("sentry.python")),
        "{event}"
    );
    assert_eq!(
        (event["environment"].as_str(), event["user_id"].as_str()),
        (Some("qa"), Some("p1"))
    );
    assert_eq!(event["component"], "billing");

    // The `sentry` Rust crate, in this very process.
    {
        let mut options = sentry::ClientOptions::default();
        options.release = Some("rust@0.1.0".into());
        options.environment = Some("ci".into());
        options.attach_stacktrace = true;
        let _guard = sentry::init((dsn.as_str(), options));
        sentry::configure_scope(|scope| {
            scope.set_tag("lang", "rust");
            scope.set_user(Some(sentry::User {
                id: Some("r1".into()),
                ..Default::default()
            }));
        });
        let error = "forty-two".parse::<u32>().expect_err("not a number");
        sentry::capture_error(&error);
        // Dropping the guard flushes the transport.
    }
    let event = wait_for("the rust event", MINUTE, || {
        row(
            &ch,
            "SELECT exception_type, exception_value, sdk_name, release, environment, user_id, \
             tags.value[indexOf(tags.key, 'lang')] AS lang FROM shrike.events WHERE release = 'rust@0.1.0'",
        )
    });
    assert_eq!(event["exception_type"], "ParseIntError");
    assert_eq!(event["exception_value"], "invalid digit found in string");
    assert_eq!(event["sdk_name"], "sentry.rust");
    assert_eq!(
        (event["environment"].as_str(), event["user_id"].as_str()),
        (Some("ci"), Some("r1"))
    );
    assert_eq!(event["lang"], "rust");

    // An attachment sent by sentry-python is stored with its event.
    let script = "import sys, sentry_sdk\n\
                  sentry_sdk.init(dsn=sys.argv[1], release='attach@1')\n\
                  sentry_sdk.get_isolation_scope().add_attachment(bytes=b'line one\\nline two\\n', filename='job.log')\n\
                  sentry_sdk.capture_message('job failed, log attached')\n\
                  sentry_sdk.flush(10)\n";
    run_python(&python, script, &dsn);
    let attachment = wait_for("the attachment", MINUTE, || {
        row(
            &ch,
            "SELECT a.filename AS filename, a.data AS data, a.size AS size FROM shrike.attachment_chunks AS a \
             WHERE a.event_id IN (SELECT event_id FROM shrike.events WHERE release = 'attach@1')",
        )
    });
    assert_eq!(attachment["filename"], "job.log");
    assert_eq!(attachment["data"], "line one\nline two\n");

    // sentry-cli send-event.
    let sent = Command::new(&cli)
        .args([
            "send-event",
            "-m",
            "deploy hook failed",
            "--tag",
            "origin:cli",
            "--release",
            "cli@3",
        ])
        .env("SENTRY_DSN", &dsn)
        .output()
        .expect("sentry-cli runs");
    assert!(
        sent.status.success(),
        "sentry-cli send-event: {}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let event = wait_for("the sentry-cli event", MINUTE, || {
        row(
            &ch,
            "SELECT title, sdk_name, tags.value[indexOf(tags.key, 'origin')] AS origin FROM shrike.events \
             WHERE release = 'cli@3'",
        )
    });
    assert_eq!(event["title"], "deploy hook failed");
    assert_eq!(event["origin"], "cli");
    assert!(
        event["sdk_name"]
            .as_str()
            .is_some_and(|s| s.contains("sentry-cli")),
        "{event}"
    );

    // A cron job wrapped by `sentry-cli monitors run`: an in_progress and an ok check-in.
    let run = Command::new(&cli)
        .args(["monitors", "run", "nightly-report", "--", "true"])
        .env("SENTRY_DSN", &dsn)
        .output()
        .expect("sentry-cli runs");
    assert!(
        run.status.success(),
        "sentry-cli monitors run: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let statuses = |slug: &str| {
        clickhouse(
            &ch,
            &format!(
                "SELECT DISTINCT status FROM shrike.check_ins WHERE monitor_slug = '{slug}' ORDER BY status"
            ),
        )
    };
    wait_for("sentry-cli check-ins", MINUTE, || {
        (statuses("nightly-report") == "in_progress\nok\n").then_some(())
    });

    // The HTTP cron endpoint, as a crontab line with curl would call it.
    let id = "5f2a9d3c8b7e4f1a9c6d2e8b7a4f3c1d";
    let path = |status: &str| format!("/api/1/cron/backup/{key}/?status={status}&check_in_id={id}");
    assert_eq!(http(ingest, "GET", &path("in_progress"), &[], b"").0, 202);
    assert_eq!(
        http(
            ingest,
            "POST",
            &format!("{}&duration=12.5", path("error")),
            &[],
            b""
        )
        .0,
        202
    );
    assert_eq!(http(ingest, "GET", &path("done"), &[], b"").0, 400);
    let wrong = format!("/api/1/cron/backup/{}/?status=ok", "0".repeat(32));
    assert_eq!(http(ingest, "GET", &wrong, &[], b"").0, 403);
    wait_for("http check-ins", MINUTE, || {
        (statuses("backup") == "error\nin_progress\n").then_some(())
    });
    let duration = clickhouse(
        &ch,
        "SELECT duration FROM shrike.check_ins WHERE status = 'error'",
    );
    assert_eq!(duration.trim(), "12.5");

    // CORS: a browser's preflight and the headers on the actual response.
    let (status, _) = http(
        ingest,
        "OPTIONS",
        "/api/1/envelope/",
        &[
            ("Origin", "https://app.example.com"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        b"",
    );
    assert!(
        status == 200 || status == 204,
        "preflight answered {status}"
    );
    let preflight = raw_response(
        ingest,
        "OPTIONS /api/1/envelope/ HTTP/1.0\r\nOrigin: https://app.example.com\r\n\
        Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: x-sentry-auth\r\n\r\n",
    );
    let lower = preflight.to_ascii_lowercase();
    assert!(
        lower.contains("access-control-allow-origin: *"),
        "{preflight}"
    );
    assert!(
        lower.contains("access-control-allow-headers:") && lower.contains("x-sentry-auth"),
        "{preflight}"
    );

    // Rate limits: project 2 may send one error a minute. The Python SDK gets a 429 with
    // X-Sentry-Rate-Limits for the second and then stops sending errors by itself: ingest sees
    // exactly one accepted and one rate-limited error, and the SDK reports its own drops.
    let limited_dsn = shrike_cli(&config, &["project", "create", "limited"])
        .trim()
        .to_owned();
    assert!(limited_dsn.ends_with("/2"), "{limited_dsn}");
    let script = "import sys, sentry_sdk\n\
                  sentry_sdk.init(dsn=sys.argv[1])\n\
                  for i in range(5):\n    sentry_sdk.capture_message(f'burst {i}')\n    sentry_sdk.flush(5)\n\
                  sentry_sdk.get_client().close()\n";
    run_python(&python, script, &limited_dsn);
    let outcome = |outcome: &str| {
        clickhouse(
            &ch,
            &format!(
                "SELECT sum(quantity) FROM shrike.outcomes FINAL WHERE project_id = 2 AND category = 'error' \
                 AND outcome = '{outcome}'"
            ),
        )
        .trim()
        .parse::<u64>()
        .unwrap_or(0)
    };
    wait_for("the sdk's client report", MINUTE, || {
        (outcome("client_discard") >= 3).then_some(())
    });
    assert_eq!(outcome("accepted"), 1, "one error accepted");
    assert_eq!(
        outcome("rate_limited"),
        1,
        "the SDK stopped sending after the first 429"
    );
    let stored = clickhouse(
        &ch,
        "SELECT count() FROM shrike.events WHERE project_id = 2",
    );
    assert_eq!(stored.trim(), "1");
    // Project 1's outcomes account for what it sent.
    let accepted = clickhouse(
        &ch,
        "SELECT sum(quantity) FROM shrike.outcomes FINAL WHERE project_id = 1 AND outcome = 'accepted' AND category = 'error'",
    );
    assert_eq!(
        accepted.trim(),
        "5",
        "node, two python, rust and sentry-cli events"
    );
    shrike.proc.terminate(Duration::from_secs(30));
}

fn raw_response(port: u16, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}
