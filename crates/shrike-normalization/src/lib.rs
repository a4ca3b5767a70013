//! Normalization: turns an event as an SDK sent it into the message the grouper stores —
//! defaults filled in, timestamps clamped, title and culprit derived, tags trimmed, the main
//! exception's frames flattened — and groups it with Sentry's rules (`shrike-grouping`).
//!
//! Grouping happens here, not in the grouper, because the normalized message is keyed by its issue
//! (`{project_id}:{primary_hash}`): one issue's events share a partition, so one grouper decides
//! about each issue without coordination (see `docs/architecture.md`).
//!
//! Pure: no I/O, no clock (the receive time comes with the message). Normalization never fails: a
//! field Shrike cannot use is dropped, not the event.

pub mod meta;
pub mod scrub;
pub mod trim;
mod whole;

pub use scrub::{ScrubSettings, Scrubber, Scrubbers, ScrubbingConfig};
pub use whole::normalize_body;

use chrono::{DateTime, Utc};
use shrike_grouping::GroupingConfig;
use shrike_messages::pb;
use shrike_protocol::event::{Event, Frame, Stacktrace};

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

/// Normalizes and groups one event; `meta` says whose event it is and when it was received.
pub fn normalize(meta: pb::Meta, event: Event, grouping: &GroupingConfig) -> pb::NormalizedEvent {
    let grouped = shrike_grouping::group(&event, grouping);
    let primary_hash = grouped.hash().to_owned();
    let grouping_variant = grouped.primary().name.to_owned();
    let received_ms = meta.received_ms;
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
    let user = event.user.unwrap_or_default();
    let request = event.request.unwrap_or_default();
    let sdk = event.sdk.unwrap_or_default();
    // The main (last) exception and its frames, or the event's own stack trace when that
    // exception has none.
    let mut exceptions = event.exception;
    let (exception_type, exception_value, trace) = match exceptions.pop() {
        Some(main) => (
            main.ty.unwrap_or_default(),
            main.value.unwrap_or_default(),
            main.stacktrace.or(event.stacktrace),
        ),
        None => (String::new(), String::new(), event.stacktrace),
    };
    let frames = trace.map(|s| s.frames).unwrap_or_default();
    let mut fields = pb::EventFields {
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
        exception_type,
        exception_value,
        frame_filenames: Vec::with_capacity(frames.len()),
        frame_functions: Vec::with_capacity(frames.len()),
        frame_modules: Vec::with_capacity(frames.len()),
        frame_linenos: Vec::with_capacity(frames.len()),
        frame_in_app: Vec::with_capacity(frames.len()),
        tag_keys: Vec::new(),
        tag_values: Vec::new(),
        user_id: user.id.unwrap_or_default(),
        user_email: user.email.unwrap_or_default(),
        user_username: user.username.unwrap_or_default(),
        user_ip: user.ip_address.unwrap_or_default(),
        request_url: request.url.unwrap_or_default(),
        request_method: request.method.unwrap_or_default(),
        sdk_name: sdk.name.unwrap_or_default(),
        sdk_version: sdk.version.unwrap_or_default(),
    };
    for frame in frames {
        let filename = frame.filename.or(frame.abs_path);
        fields.frame_filenames.push(filename.unwrap_or_default());
        fields
            .frame_functions
            .push(frame.function.unwrap_or_default());
        fields.frame_modules.push(frame.module.unwrap_or_default());
        fields.frame_linenos.push(frame.lineno.unwrap_or(0));
        fields.frame_in_app.push(frame.in_app == Some(true));
    }
    add_tags(&mut fields, event.tags);
    pb::NormalizedEvent {
        meta: Some(meta),
        primary_hash,
        grouping_variant,
        fields: Some(fields),
        body: Vec::new(),
    }
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
fn add_tags(fields: &mut pb::EventFields, sent: Vec<(String, String)>) {
    let derived: Vec<(String, String)> = [
        ("level", &fields.level),
        ("environment", &fields.environment),
        ("release", &fields.release),
        ("server_name", &fields.server_name),
        ("transaction", &fields.transaction),
        ("url", &fields.request_url),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| (k.to_owned(), v.clone()))
    .collect();
    let capacity = sent.len() + derived.len();
    fields.tag_keys.reserve(capacity);
    fields.tag_values.reserve(capacity);
    let mut seen = std::collections::HashSet::with_capacity(capacity);
    for (key, value) in sent.into_iter().chain(derived) {
        let key = truncate(key.trim(), MAX_TAG_CHARS);
        if key.is_empty() || !seen.insert(key.clone()) {
            continue;
        }
        fields.tag_keys.push(key);
        fields.tag_values.push(truncate(&value, MAX_TAG_CHARS));
    }
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
    use uuid::Uuid;

    const RECEIVED: i64 = 1_795_514_400_000;

    fn normalized(json: &str) -> pb::NormalizedEvent {
        normalize(
            shrike_messages::meta(1, Uuid::nil(), RECEIVED),
            Event::parse(json.as_bytes()).expect("valid event"),
            &GroupingConfig::default(),
        )
    }

    fn norm(json: &str) -> pb::EventFields {
        normalized(json).fields.expect("fields")
    }

    fn tags(fields: &pb::EventFields) -> Vec<(&str, &str)> {
        fields
            .tag_keys
            .iter()
            .map(String::as_str)
            .zip(fields.tag_values.iter().map(String::as_str))
            .collect()
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
            tags(&e),
            vec![("level", "error"), ("environment", "production")]
        );
    }

    #[test]
    fn groups_the_event_and_keeps_its_header() {
        let message = normalized(r#"{"message":"hello","fingerprint":["my-group"]}"#);
        assert_eq!(
            message.primary_hash,
            shrike_grouping::hash_values(["my-group"])
        );
        assert_eq!(message.grouping_variant, "custom_fingerprint");
        let meta = message.meta.expect("meta");
        assert_eq!((meta.project_id, meta.received_ms), (1, RECEIVED));
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
        assert_eq!(e.exception_type, "ZeroDivisionError");
        assert_eq!(e.frame_functions, vec!["inner", "boom", "helper"]);
        assert_eq!(e.frame_in_app, vec![false, true, false]);
    }

    #[test]
    fn flattens_the_main_exceptions_frames_or_the_events_own_stack_trace() {
        let e = norm(
            r#"{"exception":{"values":[
                {"type":"Cause","stacktrace":{"frames":[{"abs_path":"/cause.py","lineno":1}]}},
                {"type":"Main","value":"v","stacktrace":{"frames":[
                    {"abs_path":"/a.py","function":"f4","lineno":4,"in_app":true},
                    {"abs_path":"/abs/b.py","filename":"b.py","function":"f0"}]}}]},
                "tags":{"a":"1","b":"2"}}"#,
        );
        assert_eq!(
            (e.exception_type.as_str(), e.exception_value.as_str()),
            ("Main", "v")
        );
        assert_eq!(e.frame_filenames, vec!["/a.py", "b.py"]);
        assert_eq!(e.frame_linenos, vec![4, 0]);
        assert_eq!(e.frame_in_app, vec![true, false]);
        assert_eq!(&tags(&e)[..2], &[("a", "1"), ("b", "2")]);
        let bare =
            norm(r#"{"stacktrace":{"frames":[{"abs_path":"/t.py","lineno":9,"in_app":false}]}}"#);
        assert_eq!(bare.exception_type, "");
        assert_eq!(bare.frame_filenames, vec!["/t.py"]);
        assert_eq!(bare.frame_in_app, vec![false]);
    }

    #[test]
    fn prefers_transaction_as_culprit_and_message_as_title() {
        let e = norm(
            r#"{"transaction":"/boom/","logentry":{"message":"x %s","formatted":"x 1\nline 2"}}"#,
        );
        assert_eq!(e.culprit, "/boom/");
        assert_eq!(e.title, "x 1");
        assert_eq!(e.message, "x 1\nline 2");
        assert!(tags(&e).contains(&("transaction", "/boom/")));
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
        let tags = tags(&e);
        // A tag the SDK sent wins over the derived one.
        assert!(tags.contains(&("level", "custom")));
        let k = tags.iter().find(|(k, _)| *k == "k").expect("tag k");
        assert_eq!(k.1.chars().count(), MAX_TAG_CHARS + 3);
        assert_eq!(tags.iter().filter(|(k, _)| *k == "level").count(), 1);
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("ééé", 2), "éé...");
        assert_eq!(truncate("ab", 2), "ab");
    }
}
