//! `shrike issues ...`: list, show and change issues, and the text it prints.

use crate::cli::IssuesCommand;
use crate::config::Config;
use anyhow::Context;
use chrono::DateTime;
use shrike_issues::{IssueStatus, StatusChange};
use shrike_store::{IssueDetail, IssueFilter, IssueSummary, LatestEvent, Store};

/// Runs `shrike issues ...`.
pub async fn run(config: &Config, command: IssuesCommand) -> anyhow::Result<()> {
    let store = crate::store::connect(config).await?;
    let project = |name: Option<String>| {
        let store = store.clone();
        let name = name.unwrap_or_else(|| config.default_project.clone());
        async move {
            store
                .project_by_name(&name)
                .await?
                .with_context(|| format!("no project named {name:?}"))
        }
    };
    match command {
        IssuesCommand::List {
            project: name,
            limit,
            status,
            since,
            query,
            json,
        } => {
            let project = project(name).await?;
            let since = match since {
                Some(text) => Some(parse_since(&text, store.server_now().await?)?),
                None => None,
            };
            let filter = IssueFilter {
                status: status.map(Into::into),
                since,
                query,
                limit,
                ..Default::default()
            };
            let issues = store.list_issues(project.id, &filter).await?;
            print!("{}", format_issues(&issues, json));
        }
        IssuesCommand::Show {
            id,
            project: name,
            json,
        } => {
            let project = project(name).await?;
            let detail = store.issue_detail(project.id, id).await?;
            print!("{}", format_detail(&detail, json));
        }
        IssuesCommand::Resolve {
            ids,
            next_release,
            project: name,
        } => {
            let change = if next_release {
                StatusChange::ResolveInNextRelease
            } else {
                StatusChange::Resolve
            };
            set_status(&store, project(name).await?.id, &ids, &change).await?;
        }
        IssuesCommand::Unresolve { ids, project: name } => {
            let project = project(name).await?;
            set_status(&store, project.id, &ids, &StatusChange::Unresolve).await?;
        }
        IssuesCommand::Ignore {
            ids,
            count,
            until,
            project: name,
        } => {
            let project = project(name).await?;
            let until = match until {
                Some(text) => Some(parse_until(&text, store.server_now().await?)?),
                None => None,
            };
            set_status(
                &store,
                project.id,
                &ids,
                &StatusChange::Ignore { count, until },
            )
            .await?;
        }
        IssuesCommand::Merge {
            into,
            ids,
            project: name,
        } => {
            let project = project(name).await?;
            let moved = store.merge_issues(project.id, into, &ids).await?;
            println!(
                "merged {} hash{} into issue {into}",
                moved.len(),
                if moved.len() == 1 { "" } else { "es" }
            );
        }
        IssuesCommand::Unmerge {
            hashes,
            project: name,
        } => {
            let project = project(name).await?;
            for (hash, issue) in store.unmerge_hashes(project.id, &hashes).await? {
                println!("hash {hash} belongs to issue {issue} again");
            }
        }
    }
    Ok(())
}

async fn set_status(
    store: &Store,
    project_id: u64,
    ids: &[u64],
    change: &StatusChange,
) -> anyhow::Result<()> {
    for &id in ids {
        let row = store.set_issue_status(project_id, id, change).await?;
        println!("issue {id} {}", row.status);
    }
    Ok(())
}

/// Parses a duration (`90s`, `30m`, `24h`, `7d`, `2w`) into seconds.
pub fn parse_duration(text: &str) -> Option<u32> {
    let text = text.trim();
    let unit = text.chars().last()?;
    let n: u32 = text[..text.len() - unit.len_utf8()].parse().ok()?;
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// Parses a date (`2026-01-31`, UTC midnight) or RFC 3339 time into Unix seconds.
pub fn parse_date(text: &str) -> Option<u32> {
    let text = text.trim();
    let secs = if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        time.timestamp()
    } else {
        chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()?
            .and_hms_opt(0, 0, 0)?
            .and_utc()
            .timestamp()
    };
    u32::try_from(secs).ok()
}

fn time_error(text: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "invalid time {text:?}: use a duration such as 30m, 24h, 7d or a date such as \
         2026-01-31 or 2026-01-31T12:00:00Z"
    )
}

/// `--since`: a duration back from `now` or a date.
pub fn parse_since(text: &str, now: u32) -> anyhow::Result<u32> {
    parse_duration(text)
        .map(|d| now.saturating_sub(d))
        .or_else(|| parse_date(text))
        .ok_or_else(|| time_error(text))
}

/// `--until`: a duration ahead of `now` or a date.
pub fn parse_until(text: &str, now: u32) -> anyhow::Result<u32> {
    parse_duration(text)
        .map(|d| now.saturating_add(d))
        .or_else(|| parse_date(text))
        .ok_or_else(|| time_error(text))
}

fn time(secs: u32) -> String {
    DateTime::from_timestamp(i64::from(secs), 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

fn status_text(issue: &IssueSummary) -> String {
    match issue.status.substatus {
        "" => issue.status.status.to_string(),
        sub => format!("{} ({sub})", issue.status.status),
    }
}

fn issue_json(issue: &IssueSummary) -> serde_json::Value {
    let d = issue.description.as_ref();
    let field = |f: fn(&shrike_store::IssueDescription) -> &str| d.map(f).unwrap_or_default();
    let state = issue.state.as_ref().map(|s| &s.row);
    serde_json::json!({
        "id": issue.stats.issue_id.to_string(),
        "status": issue.status.status.as_str(),
        "substatus": issue.status.substatus,
        "times_seen": issue.stats.times_seen,
        "users": issue.stats.users,
        "first_seen": time(issue.stats.first_seen),
        "last_seen": time(issue.stats.last_seen),
        "last_release": issue.stats.last_release,
        "title": field(|d| &d.title),
        "culprit": field(|d| &d.culprit),
        "type": field(|d| &d.ty),
        "value": field(|d| &d.value),
        "level": field(|d| &d.level),
        "platform": field(|d| &d.platform),
        "resolved_in_release": state.map(|s| s.resolved_in_release.as_str()).unwrap_or_default(),
        "ignore_until_count": state.map(|s| s.ignore_until_count).unwrap_or_default(),
        "ignore_until": state
            .filter(|s| s.ignore_until > 0)
            .map(|s| time(s.ignore_until)),
    })
}

/// Renders issues as a table, or as JSON lines.
pub fn format_issues(issues: &[IssueSummary], json: bool) -> String {
    let mut out = String::new();
    if json {
        for issue in issues {
            out.push_str(&issue_json(issue).to_string());
            out.push('\n');
        }
        return out;
    }
    out.push_str(&format!(
        "{:<20} {:<24} {:>7} {:>6}  {:<19}  {:<19}  TITLE\n",
        "ID", "STATUS", "EVENTS", "USERS", "FIRST SEEN", "LAST SEEN"
    ));
    for issue in issues {
        let title = issue
            .description
            .as_ref()
            .map(|d| d.title.as_str())
            .unwrap_or("(pending)");
        out.push_str(&format!(
            "{:<20} {:<24} {:>7} {:>6}  {:<19}  {:<19}  {}\n",
            issue.stats.issue_id,
            status_text(issue),
            issue.stats.times_seen,
            issue.stats.users,
            time(issue.stats.first_seen),
            time(issue.stats.last_seen),
            title
        ));
    }
    if issues.is_empty() {
        out.push_str("(no issues)\n");
    }
    out
}

/// The innermost frames `show` prints.
const SHOWN_FRAMES: usize = 10;

/// Renders one issue for `shrike issues show`.
pub fn format_detail(detail: &IssueDetail, json: bool) -> String {
    let frames = |e: &LatestEvent| -> Vec<(String, String, u32, bool)> {
        let n = e.frame_functions.len();
        (n.saturating_sub(SHOWN_FRAMES)..n)
            .map(|i| {
                (
                    e.frame_filenames.get(i).cloned().unwrap_or_default(),
                    e.frame_functions.get(i).cloned().unwrap_or_default(),
                    e.frame_linenos.get(i).copied().unwrap_or(0),
                    e.frame_in_app.get(i).is_some_and(|f| *f != 0),
                )
            })
            .collect()
    };
    if json {
        let mut value = issue_json(&detail.summary);
        value["hashes"] = serde_json::json!(detail.hashes);
        value["latest_event"] = match &detail.latest {
            Some(e) => serde_json::json!({
                "event_id": e.event_id.to_string(),
                "timestamp": time(e.timestamp),
                "release": e.release,
                "exception_type": e.exception_type,
                "exception_value": e.exception_value,
                "message": e.message,
                "frames": frames(e).into_iter().map(|(file, function, line, in_app)| serde_json::json!({
                    "filename": file, "function": function, "lineno": line, "in_app": in_app,
                })).collect::<Vec<_>>(),
            }),
            None => serde_json::Value::Null,
        };
        return format!("{value}\n");
    }
    let s = &detail.summary;
    let d = s.description.as_ref();
    let field = |f: fn(&shrike_store::IssueDescription) -> &str| d.map(f).unwrap_or_default();
    let mut out = format!("Issue {}  [{}]\n", s.stats.issue_id, status_text(s));
    let mut line = |name: &str, value: String| {
        if !value.is_empty() {
            out.push_str(&format!("{name:<14}{value}\n"));
        }
    };
    line("Title:", field(|d| &d.title).to_owned());
    line("Culprit:", field(|d| &d.culprit).to_owned());
    line("Type:", field(|d| &d.ty).to_owned());
    line("Value:", field(|d| &d.value).to_owned());
    line("Level:", field(|d| &d.level).to_owned());
    line("Platform:", field(|d| &d.platform).to_owned());
    line("First seen:", time(s.stats.first_seen));
    line("Last seen:", time(s.stats.last_seen));
    line("Events:", s.stats.times_seen.to_string());
    line("Users:", s.stats.users.to_string());
    line("Last release:", s.stats.last_release.clone());
    if let Some(state) = s.state.as_ref().map(|s| &s.row) {
        if s.status.status == IssueStatus::Ignored {
            let mut until = Vec::new();
            if state.ignore_until_count > 0 {
                until.push(format!(
                    "{} more events (at {})",
                    state.ignore_until_count,
                    state.ignore_count_base + state.ignore_until_count
                ));
            }
            if state.ignore_until > 0 {
                until.push(time(state.ignore_until));
            }
            line(
                "Ignored until:",
                if until.is_empty() {
                    "forever".into()
                } else {
                    until.join(" or ")
                },
            );
        }
        if s.status.status == IssueStatus::ResolvedInNextRelease {
            line(
                "Resolved in:",
                format!("the release after {:?}", state.resolved_in_release),
            );
        }
    }
    line("Hashes:", detail.hashes.join(", "));
    if let Some(e) = &detail.latest {
        out.push_str(&format!(
            "\nLatest event {} at {}",
            e.event_id,
            time(e.timestamp)
        ));
        if !e.release.is_empty() {
            out.push_str(&format!(" (release {})", e.release));
        }
        out.push('\n');
        match (e.exception_type.as_str(), e.exception_value.as_str()) {
            ("", "") => out.push_str(&format!("  {}\n", e.message)),
            (ty, "") => out.push_str(&format!("  {ty}\n")),
            ("", value) => out.push_str(&format!("  {value}\n")),
            (ty, value) => out.push_str(&format!("  {ty}: {value}\n")),
        }
        for (file, function, lineno, in_app) in frames(e) {
            let at = if lineno > 0 {
                format!("{file}:{lineno}")
            } else {
                file
            };
            let marker = if in_app { " (in app)" } else { "" };
            out.push_str(&format!("    at {function} in {at}{marker}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use shrike_store::{IssueDescription, IssueStats};

    fn summary() -> IssueSummary {
        IssueSummary {
            stats: IssueStats {
                issue_id: 42,
                times_seen: 3,
                first_seen: 1_700_000_000,
                last_seen: 1_700_000_060,
                users: 2,
                last_release: "1.0".into(),
            },
            description: Some(IssueDescription {
                issue_id: 42,
                primary_hash: "ab".repeat(16),
                title: "ZeroDivisionError: division by zero".into(),
                culprit: "/boom/".into(),
                ty: "ZeroDivisionError".into(),
                value: "division by zero".into(),
                level: "error".into(),
                platform: "python".into(),
            }),
            status: Default::default(),
            state: None,
        }
    }

    #[test]
    fn table_has_counts_times_and_title() {
        let text = format_issues(&[summary()], false);
        let row = text.lines().nth(1).expect("one row");
        assert!(row.starts_with("42 "));
        assert!(row.contains(
            "unresolved                     3      2  2023-11-14 22:13:20  2023-11-14 22:14:20  ZeroDivisionError: division by zero"
        ));
    }

    #[test]
    fn json_lines_parse() {
        let text = format_issues(&[summary()], true);
        let value: serde_json::Value = serde_json::from_str(text.trim()).expect("json");
        assert_eq!(value["times_seen"], 3);
        assert_eq!(value["culprit"], "/boom/");
        assert_eq!(value["status"], "unresolved");
        assert_eq!(value["users"], 2);
    }

    #[test]
    fn times_parse_as_durations_or_dates() {
        assert_eq!(parse_since("24h", 100_000).ok(), Some(100_000 - 86_400));
        assert_eq!(parse_until("30m", 100).ok(), Some(1_900));
        assert_eq!(parse_since("2023-11-14", 0).ok(), Some(1_699_920_000));
        assert_eq!(
            parse_until("2023-11-14T22:13:20Z", 0).ok(),
            Some(1_700_000_000)
        );
        assert!(parse_since("yesterday", 0).is_err());
        assert!(parse_since("5x", 0).is_err());
    }

    #[test]
    fn show_prints_the_latest_exception_and_innermost_frames() {
        let detail = IssueDetail {
            summary: summary(),
            hashes: vec!["ab".repeat(16)],
            latest: Some(LatestEvent {
                event_id: uuid::Uuid::nil(),
                timestamp: 1_700_000_060,
                release: "1.0".into(),
                exception_type: "ZeroDivisionError".into(),
                exception_value: "division by zero".into(),
                message: String::new(),
                frame_filenames: vec!["django/core.py".into(), "views.py".into()],
                frame_functions: vec!["inner".into(), "boom".into()],
                frame_linenos: vec![10, 7],
                frame_in_app: vec![0, 1],
            }),
        };
        let text = format_detail(&detail, false);
        assert!(text.starts_with("Issue 42  [unresolved]\n"), "{text}");
        assert!(text.contains("Users:        2\n"), "{text}");
        assert!(text.contains("  ZeroDivisionError: division by zero\n    at inner in django/core.py:10\n    at boom in views.py:7 (in app)\n"), "{text}");
        let json: serde_json::Value =
            serde_json::from_str(&format_detail(&detail, true)).expect("json");
        assert_eq!(json["hashes"][0], "ab".repeat(16));
        assert_eq!(json["latest_event"]["frames"][1]["function"], "boom");
    }
}
