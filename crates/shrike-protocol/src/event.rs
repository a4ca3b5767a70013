//! The event payload (the JSON body of an `event` item or of a `/store/` request).
//!
//! SDKs and versions differ in the shapes they send: `exception` as `{"values": [...]}` or as a bare
//! list, `tags` as an object or as a list of pairs, numbers where strings are expected, timestamps as
//! Unix seconds or RFC 3339 strings. Like Relay, Shrike keeps what it can read and drops a malformed
//! field rather than the whole event; only a body that is not a JSON object is rejected. See
//! <https://develop.sentry.dev/sdk/data-model/event-payloads/>.

use chrono::{DateTime, TimeZone, Utc};
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::marker::PhantomData;
use uuid::Uuid;

/// An error event as sent by an SDK.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Event {
    /// The event id chosen by the SDK.
    #[serde(deserialize_with = "lenient")]
    pub event_id: Option<Uuid>,
    /// When the event happened.
    #[serde(deserialize_with = "timestamp")]
    pub timestamp: Option<DateTime<Utc>>,
    /// `fatal`, `error`, `warning`, `info` or `debug`.
    #[serde(deserialize_with = "lenient_string")]
    pub level: Option<String>,
    /// The platform of the SDK (`python`, `javascript`, `node`, `native`, ...).
    #[serde(deserialize_with = "lenient_string")]
    pub platform: Option<String>,
    /// The logger that produced the event.
    #[serde(deserialize_with = "lenient_string")]
    pub logger: Option<String>,
    /// The name of the transaction (for Django, the view) during which the event happened.
    #[serde(deserialize_with = "lenient_string")]
    pub transaction: Option<String>,
    /// Host name of the server.
    #[serde(deserialize_with = "lenient_string")]
    pub server_name: Option<String>,
    /// Application release.
    #[serde(deserialize_with = "lenient_string")]
    pub release: Option<String>,
    /// Deployment environment.
    #[serde(deserialize_with = "lenient_string")]
    pub environment: Option<String>,
    /// A plain message, or an object with `formatted`/`message`.
    #[serde(deserialize_with = "message")]
    pub message: Option<String>,
    /// The structured log message.
    #[serde(deserialize_with = "lenient_struct")]
    pub logentry: Option<LogEntry>,
    /// Exceptions, innermost last.
    #[serde(deserialize_with = "values")]
    pub exception: Vec<Exception>,
    /// A stack trace not attached to an exception (for example `attach_stacktrace`).
    #[serde(deserialize_with = "lenient_struct")]
    pub stacktrace: Option<Stacktrace>,
    /// Tags as key/value pairs.
    #[serde(deserialize_with = "tags")]
    pub tags: Vec<(String, String)>,
    /// The affected user.
    #[serde(deserialize_with = "lenient_struct")]
    pub user: Option<User>,
    /// The HTTP request being handled.
    #[serde(deserialize_with = "lenient_struct")]
    pub request: Option<Request>,
    /// The SDK that sent the event.
    #[serde(deserialize_with = "lenient_struct")]
    pub sdk: Option<Sdk>,
    /// A custom fingerprint chosen by the application.
    #[serde(deserialize_with = "fingerprint")]
    pub fingerprint: Option<Vec<String>>,
    /// A legacy client-side grouping checksum.
    #[serde(deserialize_with = "lenient_string")]
    pub checksum: Option<String>,
    /// Threads, for events without an exception (native crashes, `attach_stacktrace`).
    #[serde(deserialize_with = "values")]
    pub threads: Vec<Thread>,
}

/// One thread of an event.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct Thread {
    /// The thread's stack trace.
    #[serde(deserialize_with = "lenient_struct")]
    pub stacktrace: Option<Stacktrace>,
    /// Whether this thread crashed.
    #[serde(deserialize_with = "lenient")]
    pub crashed: Option<bool>,
    /// Whether this thread captured the event.
    #[serde(deserialize_with = "lenient")]
    pub current: Option<bool>,
}

/// A structured log message.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct LogEntry {
    /// The message template.
    #[serde(deserialize_with = "lenient_string")]
    pub message: Option<String>,
    /// The message with parameters filled in.
    #[serde(deserialize_with = "lenient_string")]
    pub formatted: Option<String>,
}

/// One exception of an event.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct Exception {
    /// The exception class, e.g. `ZeroDivisionError`.
    #[serde(rename = "type", deserialize_with = "lenient_string")]
    pub ty: Option<String>,
    /// The exception message.
    #[serde(deserialize_with = "lenient_string")]
    pub value: Option<String>,
    /// The module the class is defined in.
    #[serde(deserialize_with = "lenient_string")]
    pub module: Option<String>,
    /// Where the exception was raised.
    #[serde(deserialize_with = "lenient_struct")]
    pub stacktrace: Option<Stacktrace>,
    /// How the exception was captured.
    #[serde(deserialize_with = "lenient_struct")]
    pub mechanism: Option<Mechanism>,
}

/// How an exception was captured.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct Mechanism {
    /// The integration that captured it (`django`, `excepthook`, ...).
    #[serde(rename = "type", deserialize_with = "lenient_string")]
    pub ty: Option<String>,
    /// Whether the application handled the exception.
    #[serde(deserialize_with = "lenient")]
    pub handled: Option<bool>,
    /// The exception was made up by the SDK from an error code or signal; its type says little.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub synthetic: Option<bool>,
    /// This exception's id within an exception group.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub exception_id: Option<u64>,
    /// The id of the exception group this exception belongs to.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<u64>,
    /// Whether this exception is a group of other exceptions.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub is_exception_group: Option<bool>,
    /// Platform error details (`ns_error`, `errno`, `signal`, ...).
    #[serde(
        deserialize_with = "lenient_struct",
        skip_serializing_if = "Option::is_none"
    )]
    pub meta: Option<MechanismMeta>,
}

/// Platform error details of a mechanism.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct MechanismMeta {
    /// An Apple `NSError`.
    #[serde(
        deserialize_with = "lenient_struct",
        skip_serializing_if = "Option::is_none"
    )]
    pub ns_error: Option<NsError>,
}

/// An Apple `NSError`: its domain and code.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct NsError {
    /// The error domain, e.g. `NSURLErrorDomain`.
    #[serde(deserialize_with = "lenient_string")]
    pub domain: Option<String>,
    /// The error code.
    #[serde(deserialize_with = "lenient")]
    pub code: Option<i64>,
}

/// A stack trace, outermost frame first.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct Stacktrace {
    /// The frames, oldest call first (Sentry's order).
    #[serde(deserialize_with = "frames")]
    pub frames: Vec<Frame>,
}

/// One stack frame.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct Frame {
    /// Relative file name.
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub filename: Option<String>,
    /// Absolute path or URL of the file.
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub abs_path: Option<String>,
    /// Module or package path (`myapp.views`).
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub module: Option<String>,
    /// Function name.
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub function: Option<String>,
    /// Line number.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub lineno: Option<u32>,
    /// Column number.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub colno: Option<u32>,
    /// The source line, when the SDK sent it.
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub context_line: Option<String>,
    /// Whether the frame is application code (as opposed to a library).
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub in_app: Option<bool>,
    /// The package (shared library, jar) containing the frame.
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub package: Option<String>,
    /// The function name before the SDK or symbolication cleaned it up.
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub raw_function: Option<String>,
    /// The frame's own platform, when it differs from the event's.
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub platform: Option<String>,
    /// Processing data; `sourcemap` is set when a source map resolved the frame.
    #[serde(
        deserialize_with = "lenient_struct",
        skip_serializing_if = "Option::is_none"
    )]
    pub data: Option<FrameData>,
}

/// Processing data of a frame.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct FrameData {
    /// The source map URL that resolved this frame.
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub sourcemap: Option<String>,
}

/// The affected user.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct User {
    /// Application user id.
    #[serde(deserialize_with = "lenient_string")]
    pub id: Option<String>,
    /// E-mail address.
    #[serde(deserialize_with = "lenient_string")]
    pub email: Option<String>,
    /// User name.
    #[serde(deserialize_with = "lenient_string")]
    pub username: Option<String>,
    /// IP address.
    #[serde(deserialize_with = "lenient_string")]
    pub ip_address: Option<String>,
}

/// The HTTP request during which the event happened.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct Request {
    /// The URL without query string.
    #[serde(deserialize_with = "lenient_string")]
    pub url: Option<String>,
    /// HTTP method.
    #[serde(deserialize_with = "lenient_string")]
    pub method: Option<String>,
}

/// The SDK that sent an event.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct Sdk {
    /// E.g. `sentry.python.django`.
    #[serde(deserialize_with = "lenient_string")]
    pub name: Option<String>,
    /// E.g. `2.75.0`.
    #[serde(deserialize_with = "lenient_string")]
    pub version: Option<String>,
}

/// Why a body is not an event.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The body is not valid JSON.
    #[error("invalid event payload: {0}")]
    Json(#[from] serde_json::Error),
    /// The body is JSON but not an object.
    #[error("event payload is not a json object")]
    NotAnObject,
}

impl Event {
    /// Parses an event body; fails only when the body is not a JSON object.
    pub fn parse(body: &[u8]) -> Result<Self, EventError> {
        opens_an_object(body)?;
        match serde_json::from_slice(body) {
            Ok(event) => Ok(event),
            Err(error) if error.is_syntax() || error.is_eof() || error.is_io() => Err(error.into()),
            // Well-formed JSON that one pass cannot read (a key repeated in one object): read it
            // through a `Value`, where the last key wins, as in Relay.
            Err(_) => {
                let value: serde_json::Value = serde_json::from_slice(body)?;
                Ok(Event::deserialize(value)?)
            }
        }
    }
}

/// Parses an event body as a JSON tree (where the last of a repeated key wins); fails when the
/// body is not a JSON object.
pub fn parse_tree(body: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, EventError> {
    opens_an_object(body)?;
    match serde_json::from_slice(body)? {
        serde_json::Value::Object(event) => Ok(event),
        _ => Err(EventError::NotAnObject),
    }
}

/// Refuses a body that does not start as an object: serde would also read a struct from a JSON
/// array, and an event must be an object.
fn opens_an_object(body: &[u8]) -> Result<(), EventError> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        Ok(())
    } else {
        Err(EventError::NotAnObject)
    }
}

/// Deserializes any value into `T`, or `None` when the value has another shape.
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(value).ok())
}

/// A nested object, read in the same pass as the rest of the event. Any other shape (a string, a
/// list, a number where an object belongs) is skipped and read as absent. The object's own fields
/// are all lenient, so reading it fails only on a repeated key, which serde rejects; then
/// [`Event::parse`] reads the body again through a `serde_json::Value`, where the last key wins.
fn lenient_struct<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    d.deserialize_any(Nested::<T>(PhantomData))
}

struct Nested<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for Nested<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<T>, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(Some)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<T>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        d.deserialize_any(self)
    }
}

/// A seed reading one nested object leniently (list items).
struct NestedSeed<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for NestedSeed<T> {
    type Value = Option<T>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        d.deserialize_any(Nested::<T>(PhantomData))
    }
}

/// A list of objects; items of another shape are dropped, and a value that is not a list reads
/// as an empty list (or, for `values`, as a wrapper or a single item).
struct Items<T> {
    /// Whether an object may be `{"values": [...]}` or a single item.
    wrapped: bool,
    item: PhantomData<T>,
}

impl<T> Items<T> {
    fn new(wrapped: bool) -> Self {
        Items {
            wrapped,
            item: PhantomData,
        }
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for Items<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(256));
        while let Some(item) = seq.next_element_seed(NestedSeed::<T>(PhantomData))? {
            items.extend(item);
        }
        Ok(items)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<T>, A::Error> {
        let Some(first) = map.next_key::<String>()? else {
            return Ok(Vec::new());
        };
        if !self.wrapped {
            map.next_value::<IgnoredAny>()?;
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(Vec::new());
        }
        if first == "values" {
            let items = map.next_value_seed(ItemsSeed::<T>::new(false))?;
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(items);
        }
        // A single item written as an object, or `values` after other keys: rare, so gathered
        // into a `Value` first.
        let mut object = serde_json::Map::new();
        object.insert(first, map.next_value::<serde_json::Value>()?);
        while let Some((key, value)) = map.next_entry::<String, serde_json::Value>()? {
            object.insert(key, value);
        }
        Ok(match object.remove("values") {
            Some(serde_json::Value::Array(items)) => items
                .into_iter()
                .filter_map(|item| T::deserialize(item).ok())
                .collect(),
            Some(_) => Vec::new(),
            None => T::deserialize(serde_json::Value::Object(object))
                .ok()
                .into_iter()
                .collect(),
        })
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Vec<T>, E> {
        Ok(Vec::new())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Vec<T>, E> {
        Ok(Vec::new())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Vec<T>, E> {
        Ok(Vec::new())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Vec<T>, E> {
        Ok(Vec::new())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Vec<T>, E> {
        Ok(Vec::new())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Vec<T>, E> {
        Ok(Vec::new())
    }
}

struct ItemsSeed<T>(Items<T>);

impl<T> ItemsSeed<T> {
    fn new(wrapped: bool) -> Self {
        ItemsSeed(Items::new(wrapped))
    }
}

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for ItemsSeed<T> {
    type Value = Vec<T>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<T>, D::Error> {
        d.deserialize_any(self.0)
    }
}

/// Accepts strings, and numbers or booleans rendered as strings.
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(scalar_text(serde_json::Value::deserialize(d)?))
}

/// A string, or a number or boolean rendered as one; anything else is nothing.
fn scalar_text(value: serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n.as_f64().and_then(|secs| {
            let millis = (secs * 1000.0).round();
            (millis.is_finite() && millis.abs() < 1e15)
                .then(|| Utc.timestamp_millis_opt(millis as i64).single())
                .flatten()
        }),
        serde_json::Value::String(s) => parse_rfc3339(&s),
        _ => None,
    })
}

/// Parses RFC 3339, also without a zone (SDKs send naive UTC timestamps).
fn parse_rfc3339(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

fn message<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Object(o) => ["formatted", "message"]
            .iter()
            .find_map(|k| o.get(*k).and_then(|v| v.as_str()).map(str::to_owned)),
        _ => None,
    })
}

/// A client fingerprint: a list whose entries may be strings, numbers or booleans.
fn fingerprint<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Array(items) => {
            Some(items.into_iter().filter_map(scalar_text).collect())
        }
        _ => None,
    })
}

/// A list sent bare, as `{"values": [...]}`, or as a single object (Relay accepts all three);
/// unreadable items are dropped.
fn values<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Vec<T>, D::Error> {
    d.deserialize_any(Items::new(true))
}

fn frames<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Frame>, D::Error> {
    d.deserialize_any(Items::new(false))
}

fn tags<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Object(o) => o
            .into_iter()
            .filter_map(|(k, v)| Some((k, scalar_text(v)?)))
            .collect(),
        serde_json::Value::Array(pairs) => pairs
            .into_iter()
            .filter_map(|pair| match pair {
                serde_json::Value::Array(kv) if kv.len() == 2 => {
                    let mut kv = kv.into_iter();
                    Some((scalar_text(kv.next()?)?, scalar_text(kv.next()?)?))
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_python_style_event() {
        let event = Event::parse(
            br#"{
            "event_id": "9ec79c33ec9942ab8353589fcb2e04dc",
            "timestamp": "2026-11-24T10:00:00.5Z",
            "level": "error", "platform": "python",
            "exception": {"values": [{"type": "ZeroDivisionError", "value": "division by zero",
                "module": null, "mechanism": {"type": "django", "handled": false},
                "stacktrace": {"frames": [{"filename": "app/views.py", "function": "boom",
                    "module": "app.views", "lineno": 7, "in_app": true, "context_line": "1/0"}]}}]},
            "tags": {"browser": "x", "n": 3},
            "request": {"url": "http://localhost/boom/", "method": "GET"},
            "sdk": {"name": "sentry.python.django", "version": "2.75.0"}
        }"#,
        )
        .expect("valid event");
        assert_eq!(
            event.event_id.map(|u| u.simple().to_string()).as_deref(),
            Some("9ec79c33ec9942ab8353589fcb2e04dc")
        );
        assert_eq!(
            event.timestamp.map(|t| t.timestamp_millis()),
            Some(1_795_514_400_500)
        );
        assert_eq!(event.exception[0].ty.as_deref(), Some("ZeroDivisionError"));
        let frame = &event.exception[0]
            .stacktrace
            .as_ref()
            .expect("stack")
            .frames[0];
        assert_eq!(frame.function.as_deref(), Some("boom"));
        assert_eq!(frame.in_app, Some(true));
        assert_eq!(
            event.tags,
            vec![("browser".into(), "x".into()), ("n".into(), "3".into())]
        );
        assert_eq!(
            event.request.and_then(|r| r.url).as_deref(),
            Some("http://localhost/boom/")
        );
    }

    #[test]
    fn tolerates_odd_shapes() {
        let event = Event::parse(
            br#"{"timestamp": 1700000000.25, "exception": [{"type": "E", "stacktrace": {"frames": "no"}}],
                 "tags": [["a", "b"], ["bad"]], "message": {"formatted": "hello 1"},
                 "user": "not an object", "level": 5, "event_id": "nope"}"#,
        )
        .expect("lenient parse");
        assert_eq!(
            event.timestamp.map(|t| t.timestamp_millis()),
            Some(1_700_000_000_250)
        );
        assert_eq!(event.exception.len(), 1);
        assert!(
            event.exception[0]
                .stacktrace
                .as_ref()
                .is_some_and(|s| s.frames.is_empty())
        );
        assert_eq!(event.tags, vec![("a".into(), "b".into())]);
        assert_eq!(event.message.as_deref(), Some("hello 1"));
        assert_eq!(event.user, None);
        assert_eq!(event.level.as_deref(), Some("5"));
        assert_eq!(event.event_id, None);
    }

    #[test]
    fn reads_every_list_shape_and_repeated_keys() {
        let single = Event::parse(br#"{"exception": {"type": "E", "value": "v"}}"#).expect("event");
        assert_eq!(single.exception.len(), 1);
        let late = Event::parse(
            br#"{"exception": {"x": 1, "values": [{"type": "A"}, "junk", {"type": "B"}]}}"#,
        )
        .expect("event");
        assert_eq!(
            late.exception
                .iter()
                .map(|e| e.ty.clone().unwrap_or_default())
                .collect::<Vec<_>>(),
            ["A", "B"]
        );
        // A repeated key is read once more through a Value: the last one wins.
        let repeated = Event::parse(
            br#"{"exception": {"values": [{"type": "A", "type": "B", "stacktrace": {"frames": [{"function": "f", "function": "g"}]}}]}}"#,
        )
        .expect("event");
        let exception = &repeated.exception[0];
        assert_eq!(exception.ty.as_deref(), Some("B"));
        assert_eq!(
            exception
                .stacktrace
                .as_ref()
                .map(|s| s.frames[0].function.clone()),
            Some(Some("g".to_owned()))
        );
        // Objects where a list belongs and lists where an object belongs read as absent.
        let odd = Event::parse(
            br#"{"stacktrace": [1, 2], "user": [1], "threads": 7, "exception": {"values": 5}, "request": "x"}"#,
        )
        .expect("event");
        assert!(odd.stacktrace.is_none() && odd.user.is_none() && odd.request.is_none());
        assert!(odd.threads.is_empty() && odd.exception.is_empty());
        assert!(Event::parse(br#"{"exception": {"values": [}"#).is_err());
    }

    #[test]
    fn rejects_non_objects() {
        assert!(Event::parse(b"[1,2]").is_err());
        assert!(Event::parse(b"{").is_err());
    }
}
