//! What the JSON API answers with: projects, keys, issues, events, pages. Times are RFC 3339 in
//! UTC. Everything here is data from events: the dashboard escapes it where it shows it.

use crate::error::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use shrike_store::{EventSummary, IssueSummary, StoredEvent, TagValueCount};
use utoipa::ToSchema;
use uuid::Uuid;

/// RFC 3339 (UTC, seconds) of a Unix time.
pub fn rfc3339(unix: u32) -> String {
    chrono::DateTime::from_timestamp(i64::from(unix), 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Serializes a Unix time as RFC 3339.
fn as_rfc3339<S: serde::Serializer>(unix: &u32, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&rfc3339(*unix))
}

/// Serializes a 64-bit id as a decimal string (JavaScript numbers hold 53 bits).
fn as_decimal<S: serde::Serializer>(id: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(id)
}

/// A page of results; pass `next_cursor` as `cursor` for the next one.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// The cursor of the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A project.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProjectView {
    /// Id (the DSN's last path segment).
    pub id: u64,
    /// Name.
    pub name: String,
    /// Its name, as Sentry's API calls it.
    pub slug: String,
    /// Its DSN keys.
    pub keys: Vec<KeyView>,
}

/// A project's own settings, the document `GET` and `PUT .../settings` exchange. An absent
/// (or null) field follows the server's configuration file; a set one wins over it. They take
/// effect in the services within `settings_refresh_secs` (15 s by default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectSettings {
    /// Days the project's events are kept, 1 to 3,650 (applies to events stored afterwards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u16>,
    /// How secrets are scrubbed from its events before they are stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrubbing: Option<ScrubbingSettings>,
    /// Its grouping rules, in Sentry's syntax.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grouping: Option<GroupingSettings>,
}

/// Secret scrubbing (Sentry's "Data Scrubber" settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScrubbingSettings {
    /// Scrub at all.
    pub enabled: bool,
    /// More keys whose values are filtered (matched case-insensitively anywhere in a key).
    #[serde(default)]
    pub sensitive_fields: Vec<String>,
    /// Keys whose own values are never filtered (case-insensitive, whole key).
    #[serde(default)]
    pub safe_fields: Vec<String>,
}

/// Grouping rules, one per line, applied after Shrike's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupingSettings {
    /// Stack-trace rules (`path:**/vendor/** -app`, `function:log_* -group`).
    #[serde(default)]
    pub stack_rules: String,
    /// Fingerprint rules (`error.type:Timeout -> timeouts`), tried before the built-in ones.
    #[serde(default)]
    pub fingerprint_rules: String,
}

impl From<ScrubbingSettings> for shrike_normalization::ScrubSettings {
    fn from(s: ScrubbingSettings) -> Self {
        shrike_normalization::ScrubSettings {
            enabled: s.enabled,
            sensitive_fields: s.sensitive_fields,
            safe_fields: s.safe_fields,
        }
    }
}

impl From<GroupingSettings> for shrike_grouping::ProjectRules {
    fn from(g: GroupingSettings) -> Self {
        shrike_grouping::ProjectRules {
            stack_rules: g.stack_rules,
            fingerprint_rules: g.fingerprint_rules,
        }
    }
}

impl ProjectSettings {
    /// Checks the values; the error names the field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if let Some(days) = self.retention_days
            && !shrike_store::RetentionConfig::valid_days(days)
        {
            return Err(("retention_days", "give 1 to 3650 days".into()));
        }
        if let Some(g) = &self.grouping {
            shrike_grouping::GroupingConfig::with_project_rules(
                &g.stack_rules,
                &g.fingerprint_rules,
            )
            .map_err(|e| ("grouping", e.to_string()))?;
        }
        Ok(())
    }
}

/// A DSN key.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeyView {
    /// The public key (the DSN's user part).
    pub public_key: String,
    /// Whether ingest accepts events sent with it.
    pub active: bool,
    /// The DSN to give an SDK.
    pub dsn: String,
}

/// An issue with its counts and status. Issue ids are 64-bit: JSON carries them as strings,
/// which JavaScript reads without losing digits.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IssueView {
    /// Id (a decimal string).
    #[serde(serialize_with = "as_decimal")]
    #[schema(value_type = String)]
    pub id: u64,
    /// Project id.
    pub project_id: u64,
    /// Title (exception type and value, or message).
    pub title: String,
    /// Where it happened (usually the top in-app frame).
    pub culprit: String,
    /// Exception type.
    #[serde(rename = "type")]
    pub ty: String,
    /// Exception value.
    pub value: String,
    /// Level of its latest description.
    pub level: String,
    /// Platform.
    pub platform: String,
    /// `unresolved`, `resolved`, `resolved_in_next_release` or `ignored`.
    pub status: String,
    /// `regressed`, `ignore_lapsed` or empty.
    pub substatus: String,
    /// Distinct events.
    pub events: u64,
    /// Distinct users.
    pub users: u64,
    /// First event's time.
    #[serde(serialize_with = "as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub first_seen: u32,
    /// Latest event's time.
    #[serde(serialize_with = "as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_seen: u32,
    /// Latest release seen.
    pub last_release: String,
}

impl IssueView {
    /// From the store's summary.
    pub fn from_summary(project_id: u64, summary: IssueSummary) -> Self {
        let description = summary.description.unwrap_or_default();
        IssueView {
            id: summary.stats.issue_id,
            project_id,
            title: description.title,
            culprit: description.culprit,
            ty: description.ty,
            value: description.value,
            level: description.level,
            platform: description.platform,
            status: summary.status.status.as_str().to_owned(),
            substatus: summary.status.substatus.to_owned(),
            events: summary.stats.times_seen,
            users: summary.stats.users,
            first_seen: summary.stats.first_seen,
            last_seen: summary.stats.last_seen,
            last_release: summary.stats.last_release,
        }
    }
}

/// One issue in detail.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssueDetailView {
    /// The issue.
    pub issue: IssueView,
    /// The grouping hashes it owns.
    pub hashes: Vec<String>,
    /// The most frequent values of each tag.
    pub tags: Vec<TagView>,
    /// Events per hour, the last 24 hours (oldest first, the current hour last).
    pub hourly: Vec<Bucket>,
    /// Events per day (UTC), the last 30 days.
    pub daily: Vec<Bucket>,
    /// Its first event.
    pub first_event: Option<EventSummaryView>,
    /// Its latest event.
    pub latest_event: Option<EventSummaryView>,
}

/// A tag's most frequent values in an issue.
#[derive(Debug, Serialize, ToSchema)]
pub struct TagView {
    /// Tag key.
    pub key: String,
    /// Events with this tag.
    pub events: u64,
    /// The values, most frequent first.
    pub values: Vec<TagValueView>,
}

/// One value of a tag.
#[derive(Debug, Serialize, ToSchema)]
pub struct TagValueView {
    /// Value.
    pub value: String,
    /// Events with it.
    pub count: u64,
    /// Its share of the issue's events, 0–1.
    pub share: f64,
}

impl TagView {
    /// Groups counts by key (they come ordered by key, most frequent first).
    pub fn from_counts(counts: Vec<TagValueCount>, issue_events: u64) -> Vec<TagView> {
        let mut tags: Vec<TagView> = Vec::new();
        for count in counts {
            if tags.last().is_none_or(|t| t.key != count.key) {
                tags.push(TagView {
                    key: count.key.clone(),
                    events: 0,
                    values: Vec::new(),
                });
            }
            if let Some(tag) = tags.last_mut() {
                tag.events += count.count;
                tag.values.push(TagValueView {
                    share: if issue_events == 0 {
                        0.0
                    } else {
                        count.count as f64 / issue_events as f64
                    },
                    value: count.value,
                    count: count.count,
                });
            }
        }
        tags
    }
}

/// Events in a time bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Bucket {
    /// The bucket's start, Unix seconds.
    pub start: u32,
    /// Events in it.
    pub count: u64,
}

impl Bucket {
    /// `buckets` buckets of `size` seconds from `from`, zero where `counts` has none.
    pub fn series(counts: &[(u32, u64)], from: u32, size: u32, buckets: u32) -> Vec<Bucket> {
        (0..buckets)
            .map(|i| {
                let start = from + i * size;
                let count = counts
                    .iter()
                    .find(|(s, _)| *s == start)
                    .map_or(0, |(_, c)| *c);
                Bucket { start, count }
            })
            .collect()
    }
}

/// A user as an event names them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserView {
    /// Id.
    pub id: String,
    /// E-mail.
    pub email: String,
    /// User name.
    pub username: String,
    /// IP address.
    pub ip_address: String,
}

/// An event as listings show it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventSummaryView {
    /// Event id (32 hex digits with dashes).
    pub event_id: Uuid,
    /// The issue it belongs to (a decimal string).
    #[serde(serialize_with = "as_decimal")]
    #[schema(value_type = String)]
    pub issue_id: u64,
    /// When it happened.
    #[serde(serialize_with = "as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: u32,
    /// When ingest received it.
    #[serde(serialize_with = "as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub received: u32,
    /// Title.
    pub title: String,
    /// Culprit.
    pub culprit: String,
    /// Log message.
    pub message: String,
    /// Level.
    pub level: String,
    /// Platform.
    pub platform: String,
    /// Release.
    pub release: String,
    /// Environment.
    pub environment: String,
    /// Tags, as (key, value) pairs.
    pub tags: Vec<[String; 2]>,
    /// The user.
    pub user: UserView,
}

impl EventSummaryView {
    /// From the store's row, in issue `issue_id`.
    pub fn new(e: EventSummary, issue_id: u64) -> Self {
        EventSummaryView {
            event_id: e.event_id,
            issue_id,
            timestamp: e.timestamp,
            received: e.received,
            title: e.title,
            culprit: e.culprit,
            message: e.message,
            level: e.level,
            platform: e.platform,
            release: e.release,
            environment: e.environment,
            tags: e
                .tag_keys
                .into_iter()
                .zip(e.tag_values)
                .map(|(k, v)| [k, v])
                .collect(),
            user: UserView {
                id: e.user_id,
                email: e.user_email,
                username: e.user_username,
                ip_address: e.user_ip,
            },
        }
    }
}

/// An attachment of an event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttachmentView {
    /// Id (for the download).
    pub id: Uuid,
    /// File name.
    pub name: String,
    /// Content type.
    pub content_type: String,
    /// Sentry's attachment type.
    #[serde(rename = "type")]
    pub attachment_type: String,
    /// Size in bytes.
    pub size: u64,
}

/// One event, whole.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// Its listed fields.
    #[serde(flatten)]
    pub summary: EventSummaryView,
    /// The whole event as stored: normalized, scrubbed and trimmed, with `_meta` saying what
    /// was; null when it was stored without (`normalizer.keep_whole_event` off).
    #[schema(value_type = Option<Object>)]
    pub event: Option<Box<RawValue>>,
    /// Its attachments.
    pub attachments: Vec<AttachmentView>,
    /// The issue's event before it.
    pub previous_event_id: Option<Uuid>,
    /// The issue's event after it.
    pub next_event_id: Option<Uuid>,
}

impl EventView {
    /// From the stored event and what surrounds it.
    pub fn new(
        stored: StoredEvent,
        issue_id: u64,
        previous_event_id: Option<Uuid>,
        next_event_id: Option<Uuid>,
        attachments: Vec<AttachmentView>,
    ) -> Result<Self, ApiError> {
        let event = if stored.body.is_empty() {
            None
        } else {
            // The body was written as JSON by the normalizer; a row that is not is reported,
            // not passed on.
            Some(RawValue::from_string(stored.body).map_err(|e| {
                ApiError::Unavailable(shrike_store::StoreError::Version(format!(
                    "stored event is not JSON: {e}"
                )))
            })?)
        };
        Ok(EventView {
            summary: EventSummaryView::new(stored.summary, issue_id),
            event,
            attachments,
            previous_event_id,
            next_event_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_fill_gaps_with_zero() {
        let series = Bucket::series(&[(7200, 3)], 3600, 3600, 3);
        assert_eq!(
            series,
            vec![
                Bucket {
                    start: 3600,
                    count: 0
                },
                Bucket {
                    start: 7200,
                    count: 3
                },
                Bucket {
                    start: 10_800,
                    count: 0
                },
            ]
        );
    }

    #[test]
    fn tags_group_by_key_with_shares() {
        let count = |key: &str, value: &str, count| TagValueCount {
            key: key.into(),
            value: value.into(),
            count,
        };
        let tags = TagView::from_counts(
            vec![
                count("browser", "firefox", 3),
                count("browser", "chrome", 1),
                count("os", "linux", 4),
            ],
            4,
        );
        assert_eq!(tags.len(), 2);
        assert_eq!(tags[0].events, 4);
        assert_eq!(tags[0].values[0].share, 0.75);
        assert_eq!(tags[1].values[0].value, "linux");
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
