//! The whole event, kept: the JSON an SDK sent, with secrets scrubbed ([`crate::scrub`]), cut to
//! Relay's size limits ([`crate::trim`]), and completed with what normalization decided (id,
//! timestamps, level, platform, environment, title, culprit, grouping hash) and the `_meta` that
//! says what was changed: what Sentry shows as an event's JSON.
//!
//! Scrubbing runs before anything else reads the event, so the searchable fields derived from it
//! (tags, user, request URL) never hold what was filtered.

use crate::meta::Meta;
use crate::scrub::Scrubber;
use crate::{normalize, trim};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use shrike_grouping::GroupingConfig;
use shrike_messages::pb;
use shrike_protocol::event::{Event, EventError};

/// Normalizes and groups an event body as an SDK sent it, keeping the whole event in the
/// message's `body`. Fails only when the body is not a JSON object.
pub fn normalize_body(
    meta: pb::Meta,
    body: &[u8],
    grouping: &GroupingConfig,
    scrubber: &Scrubber,
) -> Result<pb::NormalizedEvent, EventError> {
    let mut event = shrike_protocol::event::parse_tree(body)?;
    // What an SDK says about changes it made is not Shrike's to vouch for.
    event.remove("_meta");
    let mut notes = Meta::default();
    scrubber.scrub(&mut event, &mut notes);
    trim::trim(&mut event, &mut notes);
    let mut value = Value::Object(event);
    let typed = Event::deserialize(&value)?;
    let mut message = normalize(meta, typed, grouping);
    if let Value::Object(event) = &mut value {
        complete(event, &message);
        if !notes.is_empty() {
            event.insert("_meta".to_owned(), notes.into_value());
        }
    }
    message.body = serde_json::to_vec(&value)?;
    Ok(message)
}

/// Writes what normalization decided into the whole event.
fn complete(event: &mut Map<String, Value>, message: &pb::NormalizedEvent) {
    let (Some(meta), Some(fields)) = (&message.meta, &message.fields) else {
        return; // `normalize` always sets both
    };
    let event_id = uuid::Uuid::from_slice(&meta.event_id)
        .map(|id| id.simple().to_string())
        .unwrap_or_default();
    let decided = [
        ("event_id", json!(event_id)),
        ("timestamp", json!(fields.timestamp_ms as f64 / 1000.0)),
        ("received", json!(meta.received_ms as f64 / 1000.0)),
        ("level", json!(fields.level)),
        ("platform", json!(fields.platform)),
        ("environment", json!(fields.environment)),
        ("title", json!(fields.title)),
        ("culprit", json!(fields.culprit)),
        ("hashes", json!([message.primary_hash])),
    ];
    for (key, value) in decided {
        event.insert(key.to_owned(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrub::{FILTERED, ScrubSettings};
    use uuid::Uuid;

    const RECEIVED: i64 = 1_795_514_400_000;

    fn whole(json: &str) -> (pb::NormalizedEvent, Value) {
        let id = Uuid::from_u128(0x1234);
        let message = normalize_body(
            shrike_messages::meta(1, id, RECEIVED),
            json.as_bytes(),
            &GroupingConfig::default(),
            &Scrubber::new(&ScrubSettings::default()),
        )
        .expect("an event");
        let body = serde_json::from_slice(&message.body).expect("json");
        (message, body)
    }

    #[test]
    fn keeps_everything_sent_with_what_normalization_decided() {
        let (message, body) = whole(
            r#"{"message": "boom", "breadcrumbs": {"values": [{"message": "clicked"}]},
                "contexts": {"runtime": {"name": "CPython"}}, "modules": {"django": "5.0"},
                "sdk": {"name": "sentry.python", "integrations": ["django"]},
                "_meta": {"message": {"": {"rem": [["forged", "x"]]}}}}"#,
        );
        assert_eq!(body["breadcrumbs"]["values"][0]["message"], "clicked");
        assert_eq!(body["contexts"]["runtime"]["name"], "CPython");
        assert_eq!(body["modules"]["django"], "5.0");
        assert_eq!(body["sdk"]["integrations"][0], "django");
        assert_eq!(body["event_id"], "00000000000000000000000000001234");
        assert_eq!(body["level"], "error");
        assert_eq!(body["title"], "boom");
        assert_eq!(body["hashes"][0], message.primary_hash.as_str());
        assert_eq!(body["timestamp"], RECEIVED as f64 / 1000.0);
        assert!(body.get("_meta").is_none(), "an SDK's _meta is not kept");
    }

    #[test]
    fn secrets_never_reach_the_fields_and_meta_says_what_was_filtered() {
        let (message, body) = whole(
            r#"{"exception": {"values": [{"type": "KeyError", "value": "x", "stacktrace": {"frames": [
                    {"function": "view", "vars": {"password": "hunter2"}}]}}]},
                "request": {"url": "https://app.example/login", "headers": {"Authorization": "Bearer abc"}},
                "extra": {"db": "postgres://u:pw@db/x"}}"#,
        );
        let frame = &body["exception"]["values"][0]["stacktrace"]["frames"][0];
        assert_eq!(frame["vars"]["password"], FILTERED);
        assert_eq!(body["request"]["headers"]["Authorization"], FILTERED);
        assert_eq!(body["extra"]["db"], "postgres://u:[Filtered]@db/x");
        assert_eq!(
            body["_meta"]["request"]["headers"]["Authorization"][""]["rem"][0][0],
            "@password:filter"
        );
        let text = String::from_utf8(message.body.clone()).expect("utf-8");
        assert!(
            !text.contains("hunter2") && !text.contains(":pw@"),
            "{text}"
        );
        let fields = message.fields.expect("fields");
        assert_eq!(fields.exception_type, "KeyError");
        assert_eq!(fields.request_url, "https://app.example/login");
    }

    #[test]
    fn refuses_what_is_not_an_object() {
        for body in ["[1]", "\"x\"", "{", ""] {
            let result = normalize_body(
                shrike_messages::meta(1, Uuid::nil(), RECEIVED),
                body.as_bytes(),
                &GroupingConfig::default(),
                &Scrubber::new(&ScrubSettings::default()),
            );
            assert!(result.is_err(), "{body}");
        }
    }
}
