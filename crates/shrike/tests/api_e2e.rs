//! The API against `shrike up` fed by the real Python SDK: the whole event served back with its
//! secrets filtered, every JSON route's success, 401, 403, 404 and 400 answers, Sentry's
//! `/api/0/` as the real `sentry-cli` uses it, tokens and their scopes, projects and keys.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

fn get(port: u16, path: &str, token: &str) -> (u16, String) {
    call(port, "GET", path, token, "")
}

fn call(port: u16, method: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("Content-Type", "application/json")];
    if !token.is_empty() {
        headers.push(("Authorization", auth.as_str()));
    }
    http(port, method, path, &headers, body.as_bytes())
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The answer's status, and that its body is `{"detail": ...}` naming `mentions`.
fn assert_error(answer: (u16, String), status: u16, mentions: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    let detail = json(&answer.1)["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        detail.contains(mentions),
        "{detail:?} should mention {mentions:?}"
    );
}

fn token(config: &Path, scope: &str) -> String {
    shrike_cli(
        config,
        &["token", "create", "--scope", scope, "--name", scope],
    )
    .trim()
    .to_owned()
}

fn sentry_cli(python: &Path, api: u16, token: &str, args: &[&str]) -> (bool, String) {
    let cli = python.parent().expect("venv bin").join("sentry-cli");
    let out = Command::new(cli)
        .args(args)
        .env("SENTRY_URL", format!("http://127.0.0.1:{api}"))
        .env("SENTRY_AUTH_TOKEN", token)
        .env("SENTRY_ORG", "shrike")
        .env("SENTRY_PROJECT", "default")
        .env("SENTRY_DISABLE_UPDATE_CHECK", "1")
        .env("SENTRY_HTTP_MAX_RETRIES", "0")
        .env(
            "HOME",
            python.parent().expect("bin").parent().expect("venv"),
        )
        .output()
        .expect("sentry-cli runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn issue_status(api: u16, token: &str, issue: &str) -> String {
    let (status, body) = get(api, &format!("/api/v1/projects/1/issues/{issue}"), token);
    assert_eq!(status, 200, "{body}");
    json(&body)["issue"]["status"]
        .as_str()
        .expect("status")
        .to_owned()
}

#[test]
fn the_api_serves_whole_events_to_tokens_and_to_sentry_cli() {
    let python = python();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (ingest, ch_http, ch_tcp) = (free_port(), free_port(), free_port());
    let config = write_up_config(
        dir,
        ingest,
        ch_http,
        ch_tcp,
        "[normalizer]\nkeep_whole_event = true\n[grouper]\nbatch_wait_ms = 100\n[alerter]\nenabled = false\n",
    );
    let shrike = start_shrike(&config, &dir.join("shrike.log"));
    let api = web_port(&config);
    let dsn = shrike.dsn.clone();
    let read = token(&config, "read");
    let write = token(&config, "write");
    let admin = token(&config, "admin");
    assert!(read.starts_with("shrike_") && read.len() > 60, "{read}");

    // The whole event is kept, secrets filtered: a chained exception with local variables, a
    // breadcrumb, extra and a context, and a request with an Authorization header, from an app
    // that turned the SDK's own scrubbing off (what Shrike filters must not depend on the SDK).
    let script = r#"import sys, sentry_sdk
from sentry_sdk.scrubber import EventScrubber
sentry_sdk.init(dsn=sys.argv[1], release='whole@1', send_default_pii=True,
                event_scrubber=EventScrubber(denylist=[], send_default_pii=True))
def with_request(event, hint):
    event['request'] = {'url': 'https://shop.example/pay?page=2&access_token=tok-123', 'method': 'POST',
                        'headers': {'Authorization': 'Bearer s3cr3t-bearer', 'Accept': 'text/html'}}
    return event
sentry_sdk.get_global_scope().add_event_processor(with_request)
sentry_sdk.add_breadcrumb(category='cart', message='3 items in the cart')
sentry_sdk.set_extra('cart_id', 'c-1001')
sentry_sdk.set_context('payment', {'provider': 'acme', 'api_key': 'k-9f8e7d'})
def pay(amount):
    password = 'hunter2-pw'
    try:
        {}['card']
    except KeyError as error:
        raise ValueError('payment failed') from error
try:
    pay(42)
except ValueError:
    sentry_sdk.capture_exception()
sentry_sdk.flush(10)
"#;
    run_python(&python, script, &dsn);
    let issues = wait_for("the whole python event's issue", MINUTE, || {
        let (status, body) = get(
            api,
            "/api/v1/projects/1/issues?query=release:whole@1",
            &read,
        );
        let page: serde_json::Value = serde_json::from_str(&body).ok()?;
        (status == 200 && page["items"].as_array().is_some_and(|i| !i.is_empty())).then_some(page)
    });
    let whole_issue = issues["items"][0]["id"]
        .as_str()
        .expect("issue id")
        .to_owned();
    let (status, latest) = get(
        api,
        &format!("/api/v1/projects/1/issues/{whole_issue}/events/latest"),
        &read,
    );
    assert_eq!(status, 200, "{latest}");
    let latest: serde_json::Value = serde_json::from_str(&latest).expect("json");
    let whole_event_id = latest["event_id"].as_str().expect("event id").to_owned();
    let (status, fetched) = get(
        api,
        &format!("/api/v1/projects/1/events/{whole_event_id}"),
        &read,
    );
    assert_eq!(status, 200, "{fetched}");
    let fetched: serde_json::Value = serde_json::from_str(&fetched).expect("json");
    assert_eq!(fetched["issue_id"], whole_issue);
    let text = fetched["event"].to_string();
    for secret in ["hunter2-pw", "s3cr3t-bearer", "k-9f8e7d", "tok-123"] {
        assert!(!text.contains(secret), "{secret} served: {text}");
    }
    let body = &fetched["event"];
    let chain = body["exception"]["values"].as_array().expect("exceptions");
    let types: Vec<&str> = chain.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(types, ["KeyError", "ValueError"], "{body}");
    assert!(chain[1]["mechanism"].is_object(), "{body}");
    let frames = chain[1]["stacktrace"]["frames"].as_array().expect("frames");
    let pay = frames
        .iter()
        .find(|f| f["function"] == "pay")
        .expect("the pay frame");
    assert_eq!(pay["vars"]["password"], "[Filtered]");
    assert_eq!(pay["vars"]["amount"], "42");
    assert!(pay["lineno"].is_u64(), "{pay}");
    let crumbs = body["breadcrumbs"]["values"]
        .as_array()
        .expect("breadcrumbs");
    assert!(
        crumbs.iter().any(|c| c["message"] == "3 items in the cart"),
        "{body}"
    );
    assert_eq!(body["extra"]["cart_id"], "c-1001");
    assert_eq!(body["contexts"]["payment"]["provider"], "acme");
    assert_eq!(body["contexts"]["payment"]["api_key"], "[Filtered]");
    assert_eq!(body["contexts"]["runtime"]["name"], "CPython");
    assert_eq!(body["request"]["headers"]["Authorization"], "[Filtered]");
    assert_eq!(body["request"]["headers"]["Accept"], "text/html");
    assert_eq!(
        body["request"]["url"],
        "https://shop.example/pay?page=2&access_token=[Filtered]"
    );
    assert!(body["sdk"]["packages"].is_array(), "{body}");
    let meta = &body["_meta"];
    let pay_index = frames
        .iter()
        .position(|f| f["function"] == "pay")
        .expect("pay");
    assert_eq!(
        meta["exception"]["values"]["1"]["stacktrace"]["frames"][pay_index.to_string()]["vars"]["password"]
            [""]["rem"][0][0],
        "@password:filter",
        "{meta}"
    );
    assert_eq!(
        meta["request"]["headers"]["Authorization"][""]["rem"][0][0],
        "@password:filter"
    );

    // A second issue: messages with a tag and a user, for filters, tags and paging.
    let script = "import sys, sentry_sdk\n\
                  sentry_sdk.init(dsn=sys.argv[1], release='api@1', environment='prod')\n\
                  for i in range(3):\n\
                  \x20   sentry_sdk.set_tag('browser', 'firefox' if i else 'chrome')\n\
                  \x20   sentry_sdk.set_user({'id': 'u%d' % i})\n\
                  \x20   sentry_sdk.capture_message('cart <b>expired</b>')\n\
                  sentry_sdk.flush(10)\n";
    run_python(&python, script, &dsn);
    let messages = wait_for("three message events", MINUTE, || {
        let (_, body) = get(api, "/api/v1/projects/1/issues?query=expired", &read);
        let page = serde_json::from_str::<Value>(&body).ok()?;
        (page["items"][0]["events"] == 3).then_some(page)
    });
    let issue = &messages["items"][0];
    let issue_id = issue["id"].as_str().expect("id").to_owned();
    assert_eq!(
        issue["title"], "cart <b>expired</b>",
        "stored as sent; escaped where shown"
    );
    assert_eq!(
        (issue["users"].as_u64(), issue["status"].as_str()),
        (Some(3), Some("unresolved"))
    );

    // Listing: filters, sorts, paging.
    let (_, all) = get(api, "/api/v1/projects/1/issues?sort=events", &read);
    let all = json(&all);
    assert_eq!(all["items"].as_array().map(Vec::len), Some(2), "{all}");
    assert_eq!(all["items"][0]["id"], issue_id, "most events first");
    let (_, page1) = get(api, "/api/v1/projects/1/issues?limit=1&sort=events", &read);
    let page1 = json(&page1);
    let cursor = page1["next_cursor"].as_str().expect("a next page");
    let (_, page2) = get(
        api,
        &format!("/api/v1/projects/1/issues?limit=1&sort=events&cursor={cursor}"),
        &read,
    );
    let page2 = json(&page2);
    assert_eq!(page2["items"][0]["id"], whole_issue);
    assert!(page2["next_cursor"].is_null(), "{page2}");
    for (query, expected) in [
        ("environment=prod", 1),
        ("query=browser:firefox", 1),
        ("query=browser:safari", 0),
        ("query=is:resolved", 0),
        ("last_seen_since=2000-01-01T00:00:00Z", 2),
        ("first_seen_until=2000-01-01T00:00:00Z", 0),
    ] {
        let (status, body) = get(api, &format!("/api/v1/projects/1/issues?{query}"), &read);
        assert_eq!(status, 200, "{query}: {body}");
        assert_eq!(
            json(&body)["items"].as_array().map(Vec::len),
            Some(expected),
            "{query}: {body}"
        );
    }

    // Detail: tags with shares, counts over time, first and latest event.
    let (status, detail) = get(api, &format!("/api/v1/projects/1/issues/{issue_id}"), &read);
    assert_eq!(status, 200, "{detail}");
    let detail = json(&detail);
    let browser = detail["tags"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["key"] == "browser"))
        .expect("browser tag");
    assert_eq!(browser["values"][0]["value"], "firefox");
    assert_eq!(browser["values"][0]["count"], 2);
    let share = browser["values"][0]["share"].as_f64().expect("share");
    assert!((share - 2.0 / 3.0).abs() < 1e-9, "{share}");
    let hourly: u64 = detail["hourly"]
        .as_array()
        .expect("hourly")
        .iter()
        .map(|b| b["count"].as_u64().unwrap_or(0))
        .sum();
    let daily: u64 = detail["daily"]
        .as_array()
        .expect("daily")
        .iter()
        .map(|b| b["count"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!((hourly, daily), (3, 3));
    assert_eq!(detail["hourly"].as_array().map(Vec::len), Some(24));
    assert_eq!(detail["daily"].as_array().map(Vec::len), Some(30));
    assert!(
        detail["first_event"]["event_id"].is_string()
            && detail["latest_event"]["event_id"].is_string()
    );

    // An issue's events, newest first, one page at a time, and neighbours.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, body) = get(
            api,
            &format!("/api/v1/projects/1/issues/{issue_id}/events?limit=1&cursor={cursor}"),
            &read,
        );
        assert_eq!(status, 200, "{body}");
        let page = json(&body);
        seen.push(
            page["items"][0]["event_id"]
                .as_str()
                .expect("event")
                .to_owned(),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    let (_, filtered) = get(
        api,
        &format!("/api/v1/projects/1/issues/{issue_id}/events?query=browser:chrome"),
        &read,
    );
    assert_eq!(json(&filtered)["items"].as_array().map(Vec::len), Some(1));
    let (_, middle) = get(
        api,
        &format!("/api/v1/projects/1/events/{}", seen[1]),
        &read,
    );
    let middle = json(&middle);
    assert_eq!(middle["previous_event_id"], Value::from(seen[2].as_str()));
    assert_eq!(middle["next_event_id"], Value::from(seen[0].as_str()));

    // Errors: 401 without or with a wrong token, 403 for a weak scope, 404, 400 naming the parameter.
    assert_error(get(api, "/api/v1/projects", ""), 401, "credentials");
    assert_error(
        get(api, "/api/v1/projects", "shrike_nope"),
        401,
        "credentials",
    );
    assert_error(get(api, "/api/v1/projects", &dsn), 401, "credentials");
    assert_error(
        call(
            api,
            "PUT",
            &format!("/api/v1/projects/1/issues/{issue_id}"),
            &read,
            r#"{"status":"resolved"}"#,
        ),
        403,
        "write",
    );
    assert_error(
        call(api, "POST", "/api/v1/projects", &write, r#"{"name":"x"}"#),
        403,
        "admin",
    );
    assert_error(
        get(api, "/api/v1/projects/99/issues", &read),
        404,
        "project 99",
    );
    assert_error(
        get(api, "/api/v1/projects/1/issues/12345", &read),
        404,
        "issue 12345",
    );
    assert_error(
        get(
            api,
            &format!(
                "/api/v1/projects/1/events/{}",
                uuid::Uuid::new_v4().simple()
            ),
            &read,
        ),
        404,
        "event",
    );
    assert_error(
        get(api, "/api/v1/projects/1/events/not-an-id", &read),
        400,
        "event_id",
    );
    assert_error(
        get(api, "/api/v1/projects/1/issues?limit=0", &read),
        400,
        "limit",
    );
    assert_error(
        get(api, "/api/v1/projects/1/issues?sort=random", &read),
        400,
        "sort",
    );
    assert_error(
        get(api, "/api/v1/projects/1/issues?status=open", &read),
        400,
        "status",
    );
    assert_error(
        get(api, "/api/v1/projects/1/issues?cursor=x", &read),
        400,
        "cursor",
    );
    assert_error(
        get(
            api,
            "/api/v1/projects/1/issues?last_seen_since=yesterday",
            &read,
        ),
        400,
        "last_seen_since",
    );
    assert_error(
        call(
            api,
            "PUT",
            &format!("/api/v1/projects/1/issues/{issue_id}"),
            &write,
            r#"{"status":"closed"}"#,
        ),
        400,
        "status",
    );
    assert_error(
        call(api, "POST", "/api/v1/projects", &admin, "{"),
        400,
        "body",
    );
    assert_error(get(api, "/api/v1/nothing", &read), 404, "not found");

    // Issue actions through the JSON API.
    let (status, body) = call(
        api,
        "PUT",
        &format!("/api/v1/projects/1/issues/{issue_id}"),
        &write,
        r#"{"status":"ignored","ignore_count":100}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["status"], "ignored");
    let (status, body) = call(
        api,
        "POST",
        &format!("/api/v1/projects/1/issues/{issue_id}/merge"),
        &write,
        &format!(r#"{{"sources":["{issue_id}"]}}"#),
    );
    assert_eq!(status, 409, "merging an issue into itself: {body}");

    // Sentry's API as the real sentry-cli calls it.
    let (ok, out) = sentry_cli(&python, api, &read, &["info"]);
    assert!(ok, "sentry-cli info: {out}");
    assert!(out.contains("project:read"), "{out}");
    let (ok, out) = sentry_cli(&python, api, &read, &["issues", "list"]);
    assert!(ok, "sentry-cli issues list: {out}");
    assert!(
        out.contains(issue_id.as_str()) && out.contains("payment failed"),
        "{out}"
    );
    let (ok, out) = sentry_cli(&python, api, &read, &["issues", "resolve", "-i", &issue_id]);
    assert!(!ok, "a read token cannot resolve: {out}");
    assert!(out.contains("write"), "{out}");
    for (command, expected) in [
        ("unresolve", "unresolved"),
        ("resolve", "resolved"),
        ("mute", "ignored"),
    ] {
        let (ok, out) = sentry_cli(&python, api, &write, &["issues", command, "-i", &issue_id]);
        assert!(ok, "sentry-cli issues {command}: {out}");
        assert_eq!(
            issue_status(api, &read, &issue_id),
            expected,
            "after {command}"
        );
    }
    let (ok, out) = sentry_cli(&python, api, &write, &["issues", "resolve", "--all"]);
    assert!(ok, "{out}");
    assert_eq!(issue_status(api, &read, &whole_issue), "resolved");
    let (ok, out) = sentry_cli(
        &python,
        api,
        &read,
        &["issues", "list", "--query", "is:unresolved"],
    );
    assert!(ok && out.contains("No issues found"), "{out}");
    // `-s resolved` selects by Sentry's status names (both kinds of resolution).
    let (status, body) = call(
        api,
        "PUT",
        &format!("/api/v1/projects/1/issues/{issue_id}"),
        &write,
        r#"{"status":"resolved_in_next_release"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let (ok, out) = sentry_cli(
        &python,
        api,
        &write,
        &["issues", "unresolve", "-s", "resolved"],
    );
    assert!(ok, "{out}");
    assert_eq!(issue_status(api, &read, &whole_issue), "unresolved");
    assert_eq!(issue_status(api, &read, &issue_id), "unresolved");
    let (ok, out) = sentry_cli(&python, api, "shrike_wrong", &["issues", "list"]);
    assert!(!ok && out.contains("credentials"), "{out}");
    let (status, body) = get(
        api,
        &format!("/api/0/projects/shrike/default/events/{whole_event_id}/json/"),
        &read,
    );
    assert_eq!(status, 200, "{body}");
    let sentry_event = json(&body);
    assert_eq!(sentry_event["event_id"], whole_event_id.replace('-', ""));
    assert_eq!(sentry_event["exception"]["values"][1]["type"], "ValueError");
    assert_error(
        get(
            api,
            &format!("/api/0/projects/other/default/events/{whole_event_id}/json/"),
            &read,
        ),
        404,
        "organization",
    );

    // Projects and keys (admin), and a revoked token.
    let (status, body) = call(
        api,
        "POST",
        "/api/v1/projects",
        &admin,
        r#"{"name":"shop"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let shop = json(&body);
    let shop_id = shop["id"].as_u64().expect("id");
    let key = shop["keys"][0]["public_key"]
        .as_str()
        .expect("key")
        .to_owned();
    assert!(
        shop["keys"][0]["dsn"]
            .as_str()
            .is_some_and(|d| d.contains(&key))
    );
    assert_error(
        call(
            api,
            "POST",
            "/api/v1/projects",
            &admin,
            r#"{"name":"shop"}"#,
        ),
        409,
        "exists",
    );
    let (status, body) = call(
        api,
        "PATCH",
        &format!("/api/v1/projects/{shop_id}"),
        &admin,
        r#"{"name":"store"}"#,
    );
    assert_eq!(
        (status, json(&body)["name"].as_str()),
        (200, Some("store")),
        "{body}"
    );
    let (status, body) = call(
        api,
        "PATCH",
        &format!("/api/v1/projects/{shop_id}/keys/{key}"),
        &admin,
        r#"{"active":false}"#,
    );
    assert_eq!(
        (status, json(&body)["active"].as_bool()),
        (200, Some(false)),
        "{body}"
    );
    let (status, body) = call(
        api,
        "POST",
        &format!("/api/v1/projects/{shop_id}/keys"),
        &admin,
        "",
    );
    assert_eq!(status, 201, "{body}");
    let second = json(&body)["public_key"].as_str().expect("key").to_owned();
    let (status, _) = call(
        api,
        "DELETE",
        &format!("/api/v1/projects/{shop_id}/keys/{second}"),
        &admin,
        "",
    );
    assert_eq!(status, 204);
    let (_, body) = get(api, &format!("/api/v1/projects/{shop_id}"), &read);
    let keys = json(&body)["keys"].clone();
    assert!(
        keys.as_array().is_some_and(|k| k
            .iter()
            .all(|k| k["public_key"] != second.as_str() || k["active"] == false)),
        "deleted at once or disabled until the mutation ran: {keys}"
    );
    assert_error(
        call(
            api,
            "DELETE",
            &format!("/api/v1/projects/{shop_id}/keys/nope"),
            &admin,
            "",
        ),
        404,
        "key",
    );
    let (status, _) = call(
        api,
        "DELETE",
        &format!("/api/v1/projects/{shop_id}"),
        &admin,
        "",
    );
    assert_eq!(status, 204);
    assert_error(
        get(api, &format!("/api/v1/projects/{shop_id}"), &read),
        404,
        "project",
    );
    let fresh = token(&config, "read");
    let listed = shrike_cli(&config, &["token", "list"]);
    let fresh_id = listed
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().next())
        .expect("id")
        .to_owned();
    assert!(!listed.contains(&fresh), "tokens are never listed");
    shrike_cli(&config, &["token", "revoke", &fresh_id]);
    assert_error(get(api, "/api/v1/projects", &fresh), 401, "credentials");

    // Project settings: read with any token, replaced by admins, checked, then applied by the
    // normalizer (refreshed every second here): `cart_id` becomes a key to scrub.
    let settings = "/api/v1/projects/1/settings";
    assert_eq!(get(api, settings, &read), (200, "{}".to_owned()));
    let wanted = r#"{"retention_days":30,"scrubbing":{"enabled":true,"sensitive_fields":["cart_id"],"safe_fields":[]}}"#;
    assert_error(call(api, "PUT", settings, &write, wanted), 403, "admin");
    assert_error(call(api, "PUT", settings, "", wanted), 401, "credentials");
    assert_error(
        call(api, "PUT", "/api/v1/projects/99/settings", &admin, wanted),
        404,
        "project 99",
    );
    assert_error(
        call(api, "PUT", settings, &admin, r#"{"retention_days":0}"#),
        400,
        "retention_days",
    );
    assert_error(
        call(
            api,
            "PUT",
            settings,
            &admin,
            r#"{"grouping":{"stack_rules":"nonsense:x +app"}}"#,
        ),
        400,
        "grouping",
    );
    assert_error(
        call(api, "PUT", settings, &admin, r#"{"colour":1}"#),
        400,
        "colour",
    );
    let (status, stored) = call(api, "PUT", settings, &admin, wanted);
    assert_eq!((status, json(&stored)), (200, json(wanted)));
    assert_eq!(json(&get(api, settings, &read).1), json(wanted));
    let scrubbed = wait_for("the project's own scrubbing applied", MINUTE, || {
        let script = "import sys, sentry_sdk\n\
                      sentry_sdk.init(dsn=sys.argv[1], release='settings@1')\n\
                      sentry_sdk.set_extra('cart_id', 'c-2002')\n\
                      sentry_sdk.capture_message('settings applied?')\n\
                      sentry_sdk.flush(10)\n";
        run_python(&python, script, &dsn);
        std::thread::sleep(Duration::from_secs(1));
        let (_, page) = get(
            api,
            "/api/v1/projects/1/issues?query=release:settings@1",
            &read,
        );
        let id = json(&page)["items"][0]["id"].as_str()?.to_owned();
        let (_, latest) = get(
            api,
            &format!("/api/v1/projects/1/issues/{id}/events/latest"),
            &read,
        );
        let event = json(&latest)["event"].clone();
        (event["extra"]["cart_id"] == "[Filtered]").then_some(event)
    });
    assert!(
        scrubbed["_meta"]["extra"]["cart_id"].is_object(),
        "{scrubbed}"
    );

    // The OpenAPI document is served and names the routes.
    let (status, doc) = get(api, "/api/v1/openapi.json", "");
    assert_eq!(status, 200);
    assert!(json(&doc)["paths"]["/api/v1/projects/{project_id}/issues"].is_object());

    // Schemathesis, bounded: every operation of the document, generated inputs, no 5xx, every
    // answer's status, content type and body as documented. Last: it creates and deletes projects.
    let schemathesis = python.parent().expect("venv bin").join("schemathesis");
    let out = Command::new(&schemathesis)
        .args([
            "run",
            &format!("http://127.0.0.1:{api}/api/v1/openapi.json"),
            "--header",
            &format!("Authorization: Bearer {admin}"),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--max-time",
            "30",
            "--max-examples",
            "30",
        ])
        .env("HOME", dir)
        .current_dir(dir)
        .output()
        .expect("schemathesis runs");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{}",
        report
            .lines()
            .rev()
            .take(80)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(report.contains("passed"), "{report}");

    shrike.proc.terminate(Duration::from_secs(30));
}
