//! The normalizer: turns an event as an SDK sent it into the shape the rest of the pipeline relies
//! on — defaults filled in, timestamps clamped, title and culprit derived.
//!
//! [`normalize`] is pure (no I/O, no clock: the receive time comes with the message) so that it can
//! be tested and benchmarked alone; [`service`] runs it between two bus topics. Normalization never
//! fails: a field Shrike cannot use is dropped, not the event.

pub mod service;

use chrono::{DateTime, Utc};
use shrike_bus::messages::NormalizedEvent;
use shrike_protocol::event::{Event, Frame, Stacktrace};
use uuid::Uuid;

/// How far in the future an event's timestamp may be before it is replaced by the receive time
/// (Relay's `max_secs_in_future`, 60 s).
pub const MAX_FUTURE_MS: i64 = 60 * 1000;
/// How far in the past an event's timestamp may be (Relay's `max_secs_in_past`, 30 days).
pub const MAX_PAST_MS: i64 = 30 * 24 * 3600 * 1000;
/// Longest title kept, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest tag key and tag value kept, in characters (Sentry's limits).
pub const MAX_TAG_CHARS: usize = 200;

const PLATFORMS: &[&str] = &[
    "as3",
    "c",
    "cfml",
    "cocoa",
    "csharp",
    "elixir",
    "go",
    "groovy",
    "haskell",
    "java",
    "javascript",
    "native",
    "node",
    "objc",
    "other",
    "perl",
    "php",
    "python",
    "ruby",
    "rust",
    "dart",
    "swift",
];

/// Normalizes one event of `project_id` received at `received_ms` (Unix milliseconds).
pub fn normalize(
    project_id: u64,
    event_id: Uuid,
    received_ms: i64,
    event: Event,
) -> NormalizedEvent {
    let timestamp_ms = event
        .timestamp
        .map(|t: DateTime<Utc>| t.timestamp_millis())
        .filter(|t| *t <= received_ms + MAX_FUTURE_MS && *t >= received_ms - MAX_PAST_MS)
        .unwrap_or(received_ms);
    let message = event
        .logentry
        .as_ref()
        .and_then(|l| l.formatted.clone().or_else(|| l.message.clone()))
        .or(event.message.clone())
        .unwrap_or_default();
    let transaction = event.transaction.clone().unwrap_or_default();
    let title = title(&event, &message);
    let culprit = if transaction.is_empty() {
        stack_culprit(&event)
    } else {
        transaction.clone()
    };
    let level = normalize_level(event.level.as_deref());
    let platform = event
        .platform
        .as_deref()
        .filter(|p| PLATFORMS.contains(p))
        .unwrap_or("other")
        .to_owned();
    let user = event.user.clone().unwrap_or_default();
    let request = event.request.clone().unwrap_or_default();
    let sdk = event.sdk.clone().unwrap_or_default();
    let mut normalized = NormalizedEvent {
        project_id,
        event_id,
        received_ms,
        timestamp_ms,
        platform,
        level,
        logger: event.logger.unwrap_or_default(),
        transaction,
        server_name: event.server_name.unwrap_or_default(),
        release: event.release.unwrap_or_default(),
        environment: event.environment.unwrap_or_else(|| "production".to_owned()),
        message,
        title,
        culprit,
        exceptions: event.exception,
        stacktrace: event.stacktrace,
        tags: Vec::new(),
        user_id: user.id.unwrap_or_default(),
        user_email: user.email.unwrap_or_default(),
        user_username: user.username.unwrap_or_default(),
        user_ip: user.ip_address.unwrap_or_default(),
        request_url: request.url.unwrap_or_default(),
        request_method: request.method.unwrap_or_default(),
        sdk_name: sdk.name.unwrap_or_default(),
        sdk_version: sdk.version.unwrap_or_default(),
        fingerprint: event.fingerprint,
    };
    normalized.tags = tags(event.tags, &normalized);
    normalized
}

fn normalize_level(level: Option<&str>) -> String {
    match level.map(str::to_ascii_lowercase).as_deref() {
        Some("fatal" | "critical") => "fatal",
        Some("warning" | "warn") => "warning",
        Some("info" | "log") => "info",
        Some("debug") => "debug",
        _ => "error",
    }
    .to_owned()
}

/// Sentry's title: `Type: first line of value` for errors, the message's first line otherwise.
fn title(event: &Event, message: &str) -> String {
    // The last exception is the one that was raised (Sentry orders causes first).
    if let Some(exception) = event.exception.last() {
        let ty = exception.ty.as_deref().filter(|t| !t.is_empty());
        let value = exception
            .value
            .as_deref()
            .and_then(|v| v.lines().next())
            .filter(|v| !v.is_empty());
        let text = match (ty, value) {
            (Some(ty), Some(value)) => format!("{ty}: {value}"),
            (Some(ty), None) => ty.to_owned(),
            (None, Some(value)) => value.to_owned(),
            (None, None) => "Error".to_owned(),
        };
        return truncate(&text, MAX_TITLE_CHARS);
    }
    match message.lines().next().filter(|l| !l.trim().is_empty()) {
        Some(line) => truncate(line.trim(), MAX_TITLE_CHARS),
        None => "<unlabeled event>".to_owned(),
    }
}

/// Where the error happened: `module in function` of the innermost in-app frame (or the innermost
/// frame when none is in-app), as Sentry derives a culprit without a transaction.
fn stack_culprit(event: &Event) -> String {
    let trace: Option<&Stacktrace> = event
        .exception
        .last()
        .and_then(|e| e.stacktrace.as_ref())
        .or(event.stacktrace.as_ref());
    let Some(frames) = trace.map(|t| &t.frames) else {
        return String::new();
    };
    let frame: Option<&Frame> = frames
        .iter()
        .rev()
        .find(|f| f.in_app == Some(true))
        .or_else(|| frames.last());
    let Some(frame) = frame else {
        return String::new();
    };
    let location = frame
        .module
        .as_deref()
        .or(frame.filename.as_deref())
        .unwrap_or("?");
    match frame.function.as_deref() {
        Some(function) => format!("{location} in {function}"),
        None => location.to_owned(),
    }
}

/// The event's tags plus the ones Sentry derives from event fields, trimmed, first value wins.
fn tags(sent: Vec<(String, String)>, event: &NormalizedEvent) -> Vec<(String, String)> {
    let derived = [
        ("level", &event.level),
        ("environment", &event.environment),
        ("release", &event.release),
        ("server_name", &event.server_name),
        ("transaction", &event.transaction),
        ("url", &event.request_url),
    ];
    let mut out: Vec<(String, String)> = Vec::with_capacity(sent.len() + derived.len());
    let mut seen = std::collections::HashSet::with_capacity(out.capacity());
    let derived = derived
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_owned(), v.clone()));
    for (key, value) in sent.into_iter().chain(derived) {
        let key = truncate(key.trim(), MAX_TAG_CHARS);
        if key.is_empty() || !seen.insert(key.clone()) {
            continue;
        }
        out.push((key, truncate(&value, MAX_TAG_CHARS)));
    }
    out
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECEIVED: i64 = 1_795_514_400_000;

    fn norm(json: &str) -> NormalizedEvent {
        normalize(
            1,
            Uuid::nil(),
            RECEIVED,
            Event::parse(json.as_bytes()).expect("valid event"),
        )
    }

    #[test]
    fn fills_defaults() {
        let e = norm("{}");
        assert_eq!(e.timestamp_ms, RECEIVED);
        assert_eq!(e.level, "error");
        assert_eq!(e.platform, "other");
        assert_eq!(e.title, "<unlabeled event>");
        assert_eq!(e.environment, "production");
        assert_eq!(
            e.tags,
            vec![
                ("level".to_owned(), "error".to_owned()),
                ("environment".into(), "production".into())
            ]
        );
    }

    #[test]
    fn derives_title_and_culprit_from_the_raised_exception() {
        let e = norm(
            r#"{"platform":"python","level":"warn","exception":{"values":[
                {"type":"KeyError","value":"'a'"},
                {"type":"ZeroDivisionError","value":"division by zero\nmore","stacktrace":{"frames":[
                    {"module":"django.core.handlers","function":"inner","in_app":false},
                    {"module":"app.views","function":"boom","in_app":true},
                    {"module":"app.util","function":"helper"}]}}]}}"#,
        );
        assert_eq!(e.title, "ZeroDivisionError: division by zero");
        assert_eq!(e.culprit, "app.views in boom");
        assert_eq!(e.level, "warning");
        assert_eq!(e.platform, "python");
    }

    #[test]
    fn prefers_transaction_as_culprit_and_message_as_title() {
        let e = norm(
            r#"{"transaction":"/boom/","logentry":{"message":"x %s","formatted":"x 1\nline 2"}}"#,
        );
        assert_eq!(e.culprit, "/boom/");
        assert_eq!(e.title, "x 1");
        assert_eq!(e.message, "x 1\nline 2");
        assert!(
            e.tags
                .contains(&("transaction".to_owned(), "/boom/".to_owned()))
        );
    }

    #[test]
    fn clamps_timestamps_outside_the_accepted_range() {
        let in_range = norm(r#"{"timestamp": 1795514390.0}"#);
        assert_eq!(in_range.timestamp_ms, RECEIVED - 10_000);
        assert_eq!(
            norm(r#"{"timestamp": 1895514400.0}"#).timestamp_ms,
            RECEIVED
        );
        assert_eq!(norm(r#"{"timestamp": 1000.0}"#).timestamp_ms, RECEIVED);
    }

    #[test]
    fn trims_and_deduplicates_tags() {
        let long = "v".repeat(300);
        let e = norm(&format!(
            r#"{{"tags":{{"level":"custom","k":"{long}"}}, "level":"info"}}"#
        ));
        // A tag the SDK sent wins over the derived one.
        assert!(e.tags.contains(&("level".to_owned(), "custom".to_owned())));
        let k = e.tags.iter().find(|(k, _)| k == "k").expect("tag k");
        assert_eq!(k.1.chars().count(), MAX_TAG_CHARS + 3);
        assert_eq!(e.tags.iter().filter(|(k, _)| k == "level").count(), 1);
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("ééé", 2), "éé...");
        assert_eq!(truncate("ab", 2), "ab");
    }
}
