//! The reference workflow, end to end: `shrike up` (which starts its own ClickHouse), the Django
//! example with the real sentry-sdk reading its DSN from `.env`, a real SMTP server (aiosmtpd), and
//! the alerter's cron check. Asserts the stored event, issue grouping and counts, the alert emails,
//! "no errors, no email", and "no duplicate email after a restart".

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

fn issues(config: &Path, project: &str) -> Vec<serde_json::Value> {
    shrike_cli(config, &["issues", "list", "--project", project, "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

fn issue<'a>(list: &'a [serde_json::Value], title_prefix: &str) -> Option<&'a serde_json::Value> {
    list.iter().find(|i| {
        i["title"]
            .as_str()
            .is_some_and(|t| t.starts_with(title_prefix))
    })
}

#[test]
fn django_errors_are_stored_grouped_and_emailed() {
    let python = python();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (ingest_port, ch_http, ch_tcp, smtp_port, django_port) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let config = write_up_config(
        dir,
        ingest_port,
        ch_http,
        ch_tcp,
        &format!(
            "[grouper]\nbatch_wait_ms = 100\n[alerter]\nschedule = \"*/2 * * * * *\"\n\
             recipients = [\"dev@example.com\"]\nfrom = \"Shrike <alerts@example.com>\"\n\
             [alerter.smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\n"
        ),
    );
    let maildir = dir.join("mail");

    let _smtp = start_smtp(&python, smtp_port, &maildir);
    let log = dir.join("shrike.log");
    let shrike = start_shrike(&config, &log);
    let ch = Ch::of_up(&dir.join("data"), ch_tcp);
    assert!(shrike.dsn.starts_with("http://"), "{}", shrike.dsn);
    assert!(
        shrike.dsn.ends_with(&format!("@127.0.0.1:{ingest_port}/1")),
        "{}",
        shrike.dsn
    );

    // Ingest answers Sentry's statuses for bad credentials.
    let envelope = b"{}\n{\"type\":\"event\"}\n{\"message\":\"x\"}\n";
    assert_eq!(
        http(ingest_port, "POST", "/api/1/envelope/", &[], envelope).0,
        401
    );
    let bad_key = [(
        "X-Sentry-Auth",
        "Sentry sentry_key=00000000000000000000000000000000, sentry_version=7",
    )];
    assert_eq!(
        http(ingest_port, "POST", "/api/1/envelope/", &bad_key, envelope).0,
        403
    );

    // The Django example, exactly as a user sets it up: DSN in .env, read by python-decouple.
    let app = dir.join("django");
    copy_dir(&repo_root().join("examples/django"), &app);
    std::fs::write(app.join(".env"), format!("SENTRY_DSN={}\n", shrike.dsn)).expect("write .env");
    let _django = Proc::spawn(
        "django runserver",
        Command::new(&python)
            .args([
                "manage.py",
                "runserver",
                &format!("127.0.0.1:{django_port}"),
                "--noreload",
            ])
            .current_dir(&app)
            .env_remove("SENTRY_DSN")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("django.log")).expect("log")),
    );
    wait_for("django to serve", MINUTE, || {
        (http(django_port, "GET", "/", &[], b"").0 == 200).then_some(())
    });

    // Step 3: a view raises; the event lands in ClickHouse with its details, grouped into an issue.
    assert_eq!(http(django_port, "GET", "/boom/", &[], b"").0, 500);
    let row = wait_for("the first event in clickhouse", MINUTE, || {
        let out = clickhouse(
            &ch,
            "SELECT exception_type, exception_value, platform, level, toUInt32(timestamp), toUInt32(received), \
             sdk_name, request_url, frame_functions, frame_in_app, tags.key, tags.value, primary_hash, issue_id \
             FROM shrike.events FORMAT JSONEachRow",
        );
        (!out.trim().is_empty())
            .then(|| serde_json::from_str::<serde_json::Value>(out.lines().next()?).ok())
            .flatten()
    });
    assert_eq!(row["exception_type"], "ZeroDivisionError");
    assert_eq!(row["exception_value"], "division by zero");
    assert_eq!(row["platform"], "python");
    assert_eq!(row["level"], "error");
    let now = chrono::Utc::now().timestamp();
    let ts = row["toUInt32(timestamp)"].as_i64().expect("timestamp");
    assert!(
        (now - 120..=now + 5).contains(&ts),
        "timestamp {ts} not near {now}"
    );
    assert!(row["toUInt32(received)"].as_i64().expect("received") >= ts - 1);
    assert_eq!(row["sdk_name"], "sentry.python.django");
    assert_eq!(
        row["request_url"],
        format!("http://127.0.0.1:{django_port}/boom/")
    );
    let functions: Vec<&str> = row["frame_functions"]
        .as_array()
        .expect("frames")
        .iter()
        .filter_map(|f| f.as_str())
        .collect();
    assert_eq!(functions.last(), Some(&"boom"), "{functions:?}");
    assert_eq!(
        row["frame_in_app"]
            .as_array()
            .and_then(|a| a.last())
            .and_then(|v| v.as_u64()),
        Some(1)
    );
    let tag = |key: &str| {
        let keys = row["tags.key"].as_array().expect("tag keys");
        let index = keys.iter().position(|k| k == key)?;
        row["tags.value"][index].as_str().map(str::to_owned)
    };
    assert_eq!(tag("feature").as_deref(), Some("ratio"));
    assert_eq!(tag("environment").as_deref(), Some("development"));
    assert_eq!(tag("release").as_deref(), Some("shrikedemo@1.0.0"));
    assert_eq!(row["primary_hash"].as_str().map(str::len), Some(32));

    let list = wait_for("one issue", MINUTE, || {
        Some(issues(&config, "default")).filter(|l| l.len() == 1)
    });
    assert_eq!(list[0]["title"], "ZeroDivisionError: division by zero");
    assert_eq!(list[0]["times_seen"], 1);
    assert_eq!(list[0]["id"], row["issue_id"]);

    // Step 5: the cron check emails the new issue, once.
    let mails = wait_for("the first alert email", MINUTE, || {
        Some(mailbox(&maildir)).filter(|m| !m.is_empty())
    });
    assert_eq!(mails.len(), 1);
    let first = &mails[0];
    assert!(
        first.contains("Subject: [Shrike] default: 1 error event in 1 issue (1 new)"),
        "{first}"
    );
    assert!(first.contains("To: dev@example.com"), "{first}");
    assert!(
        first.contains("[NEW] ZeroDivisionError: division by zero"),
        "{first}"
    );
    assert!(
        first.contains("1 event since the last check, 1 in total"),
        "{first}"
    );
    assert!(first.contains("Content-Type: text/html"), "{first}");
    assert!(
        !first.contains("http://") && !first.contains("href"),
        "alert emails carry no links: {first}"
    );

    // No errors, no email: three more check runs pass in silence.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        mailbox(&maildir).len(),
        1,
        "an email was sent without new errors"
    );

    // Step 4: the same error again increments the issue; a different error opens a second issue.
    assert_eq!(http(django_port, "GET", "/boom/", &[], b"").0, 500);
    assert_eq!(http(django_port, "GET", "/missing/", &[], b"").0, 500);
    let list = wait_for("two issues with counts", MINUTE, || {
        let list = issues(&config, "default");
        let zero = issue(&list, "ZeroDivisionError")?;
        (list.len() == 2 && zero["times_seen"] == 2).then_some(list.clone())
    });
    let zero = issue(&list, "ZeroDivisionError").expect("ZeroDivisionError issue");
    assert!(zero["last_seen"].as_str() >= zero["first_seen"].as_str());
    let key_error = issue(&list, "KeyError: 'theme'").expect("KeyError issue");
    assert_eq!(key_error["times_seen"], 1);
    assert_eq!(key_error["culprit"], "/missing/");
    let table = shrike_cli(&config, &["issues", "list"]);
    assert!(
        table
            .lines()
            .any(|l| l.contains("ZeroDivisionError: division by zero") && l.contains(" 2  ")),
        "{table}"
    );

    let mails = wait_for("the second alert email", MINUTE, || {
        Some(mailbox(&maildir)).filter(|m| m.len() >= 2)
    });
    let second = &mails[1];
    assert!(
        second.contains("Subject: [Shrike] default: 2 error events in 2 issues (1 new)"),
        "{second}"
    );
    assert!(second.contains("[RECURRING] ZeroDivisionError: division by zero\n    1 event since the last check, 2 in total"), "{second}");
    assert!(second.contains("[NEW] KeyError: 'theme'"), "{second}");

    // A project created while Shrike runs gets a key that ingest accepts without a restart.
    let other_dsn = shrike_cli(&config, &["project", "create", "other"])
        .trim()
        .to_owned();
    assert!(
        other_dsn.ends_with(&format!("@127.0.0.1:{ingest_port}/2")),
        "{other_dsn}"
    );
    let send = Command::new(&python)
        .args([
            "-c",
            "import sys, sentry_sdk; sentry_sdk.init(dsn=sys.argv[1], debug=True); \
             sentry_sdk.capture_message('hello from another project'); sentry_sdk.flush(10)",
            &other_dsn,
        ])
        .output()
        .expect("python runs");
    assert!(send.status.success());
    let sdk_log =
        String::from_utf8_lossy(&send.stderr).into_owned() + &String::from_utf8_lossy(&send.stdout);
    assert!(!sdk_log.contains("Unexpected status code"), "{sdk_log}");
    wait_for("the other project's issue", MINUTE, || {
        let list = issues(&config, "other");
        issue(&list, "hello from another project").map(|_| ())
    });

    // A restart neither loses the alerter's progress nor repeats an alert.
    let before_restart = wait_for("the other project's alert", MINUTE, || {
        Some(mailbox(&maildir)).filter(|m| m.iter().any(|m| m.contains("Subject: [Shrike] other:")))
    })
    .len();
    shrike.proc.terminate(Duration::from_secs(30));
    let shrike = start_shrike(&config, &log);
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        mailbox(&maildir).len(),
        before_restart,
        "an alert was repeated after the restart"
    );

    // ... and it keeps alerting after the restart, about the new event only.
    assert_eq!(http(django_port, "GET", "/missing/", &[], b"").0, 500);
    let mails = wait_for("an alert after the restart", MINUTE, || {
        Some(mailbox(&maildir)).filter(|m| m.len() > before_restart)
    });
    let last = mails.last().expect("an email");
    assert!(
        last.contains("Subject: [Shrike] default: 1 error event in 1 issue (0 new)"),
        "{last}"
    );
    assert!(
        last.contains(
            "[RECURRING] KeyError: 'theme'\n    1 event since the last check, 2 in total"
        ),
        "{last}"
    );
    assert!(!last.contains("ZeroDivisionError"), "{last}");
    shrike.proc.terminate(Duration::from_secs(30));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from)
        .expect("read dir")
        .filter_map(Result::ok)
    {
        let name = entry.file_name();
        if name == ".env" || name == "db.sqlite3" || name == "__pycache__" {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}
