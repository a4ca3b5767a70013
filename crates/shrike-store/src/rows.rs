//! Row types: what Shrike writes to and reads from each ClickHouse table.
//!
//! Field order must match the query or table column order exactly: rows travel as RowBinary, which
//! carries no names. DateTime columns are Unix seconds (`u32`).

use clickhouse::Row;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A row of `projects`.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct ProjectRow {
    /// Project id.
    pub id: u64,
    /// Project name.
    pub name: String,
    /// Creation time.
    pub created_at: u32,
    /// Row version (Unix ms).
    pub version: u64,
    /// 1 once the project was deleted (its data is deleted with it).
    pub deleted: u8,
}

/// A row of `project_keys`.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct ProjectKeyRow {
    /// The public key (DSN user part).
    pub public_key: String,
    /// The project the key sends to.
    pub project_id: u64,
    /// 1 when the key may send events.
    pub active: u8,
    /// Creation time.
    pub created_at: u32,
    /// Row version (Unix ms).
    pub version: u64,
}

/// A project.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct Project {
    /// Project id.
    pub id: u64,
    /// Project name.
    pub name: String,
}

/// A project key in its latest state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectKey {
    /// The public key.
    pub public_key: String,
    /// The project it belongs to.
    pub project_id: u64,
    /// Whether it may send events.
    pub active: bool,
}

/// A row of `events`.
#[derive(Debug, Clone, Default, Row, Serialize, Deserialize, PartialEq)]
pub struct EventRow {
    /// Project id.
    pub project_id: u64,
    /// Event id.
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    /// When the event happened.
    pub timestamp: u32,
    /// When ingest received it.
    pub received: u32,
    /// The issue it was grouped into.
    pub issue_id: u64,
    /// The grouping hash (32 hex characters).
    pub primary_hash: String,
    /// Platform.
    pub platform: String,
    /// Level.
    pub level: String,
    /// Logger.
    pub logger: String,
    /// Transaction.
    pub transaction: String,
    /// Server name.
    pub server_name: String,
    /// Release.
    pub release: String,
    /// Environment.
    pub environment: String,
    /// Log message.
    pub message: String,
    /// Title.
    pub title: String,
    /// Culprit.
    pub culprit: String,
    /// Type of the main exception.
    pub exception_type: String,
    /// Value of the main exception.
    pub exception_value: String,
    /// Frame file names of the main stack trace, oldest call first.
    pub frame_filenames: Vec<String>,
    /// Frame functions.
    pub frame_functions: Vec<String>,
    /// Frame modules.
    pub frame_modules: Vec<String>,
    /// Frame line numbers (0 when unknown).
    pub frame_linenos: Vec<u32>,
    /// Frame in-app flags.
    pub frame_in_app: Vec<u8>,
    /// Tag keys.
    #[serde(rename = "tags.key")]
    pub tags_key: Vec<String>,
    /// Tag values, parallel to `tags_key`.
    #[serde(rename = "tags.value")]
    pub tags_value: Vec<String>,
    /// User id.
    pub user_id: String,
    /// User e-mail.
    pub user_email: String,
    /// User name.
    pub user_username: String,
    /// User IP.
    pub user_ip: String,
    /// Request URL.
    pub request_url: String,
    /// Request method.
    pub request_method: String,
    /// SDK name.
    pub sdk_name: String,
    /// SDK version.
    pub sdk_version: String,
    /// The grouping variant that produced `primary_hash`.
    pub grouping_variant: String,
    /// The whole event as JSON: scrubbed, trimmed, with its `_meta` (Sentry's event JSON).
    pub body: String,
    /// Days the row is kept (its project's retention; set by the store when inserting).
    pub retention_days: u16,
}

/// A row of `alert_state`.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct AlertStateRow {
    /// Name of the check.
    pub check_name: String,
    /// Project.
    pub project_id: u64,
    /// Events inserted before this time (Unix seconds) have been reported.
    pub watermark: u32,
    /// Row version (Unix ms).
    pub version: u64,
}

/// Exact counts of an issue, computed from `events` through the merged-hash mapping.
#[derive(Debug, Clone, Row, Deserialize, PartialEq, Eq)]
pub struct IssueStats {
    /// Issue id.
    pub issue_id: u64,
    /// Distinct events.
    pub times_seen: u64,
    /// Earliest event time.
    pub first_seen: u32,
    /// Latest event time.
    pub last_seen: u32,
    /// Distinct users (by id, else e-mail, else user name, else IP address).
    pub users: u64,
    /// Release of the latest event that had one.
    pub last_release: String,
}

/// Descriptive fields of an issue (from the event that opened it).
#[derive(Default, Debug, Clone, Row, Deserialize, PartialEq, Eq)]
pub struct IssueDescription {
    /// Issue id.
    pub issue_id: u64,
    /// The hash that opened the issue.
    pub primary_hash: String,
    /// Title.
    pub title: String,
    /// Culprit.
    pub culprit: String,
    /// Exception type (or empty).
    pub ty: String,
    /// Exception value or message.
    pub value: String,
    /// Level.
    pub level: String,
    /// Platform.
    pub platform: String,
}

/// An issue as listed by `shrike issues list`.
#[derive(Debug, Clone, PartialEq)]
pub struct IssueSummary {
    /// Counts.
    pub stats: IssueStats,
    /// Title and culprit, when the grouper's description has landed.
    pub description: Option<IssueDescription>,
    /// The status now (ignores whose condition is met read as unresolved).
    pub status: shrike_issues::EffectiveStatus,
    /// The latest status row, if the status was ever changed.
    pub state: Option<shrike_issues::IssueState>,
}

/// The latest event of an issue, as `shrike issues show` prints it.
#[derive(Debug, Clone, Row, Deserialize, PartialEq, Eq)]
pub struct LatestEvent {
    /// Event id.
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    /// When it happened.
    pub timestamp: u32,
    /// Release.
    pub release: String,
    /// Type of the main exception.
    pub exception_type: String,
    /// Value of the main exception.
    pub exception_value: String,
    /// Log message.
    pub message: String,
    /// Frame file names, oldest call first.
    pub frame_filenames: Vec<String>,
    /// Frame functions.
    pub frame_functions: Vec<String>,
    /// Frame line numbers (0 when unknown).
    pub frame_linenos: Vec<u32>,
    /// Frame in-app flags.
    pub frame_in_app: Vec<u8>,
}

/// Everything `shrike issues show` prints about one issue.
#[derive(Debug, Clone, PartialEq)]
pub struct IssueDetail {
    /// Counts, description and status.
    pub summary: IssueSummary,
    /// The grouping hashes the issue owns.
    pub hashes: Vec<String>,
    /// Its latest event.
    pub latest: Option<LatestEvent>,
}

/// A row of `issue_hashes`: the issue a grouping hash belongs to.
#[derive(Debug, Clone, Default, Row, Serialize, Deserialize, PartialEq, Eq)]
pub struct IssueHashRow {
    /// Project.
    pub project_id: u64,
    /// The grouping hash.
    pub primary_hash: String,
    /// The issue that owns it.
    pub issue_id: u64,
    /// Row version (Unix ms); the highest wins.
    pub version: u64,
}

/// An issue's activity in an alert window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueActivity {
    /// Issue id.
    pub issue_id: u64,
    /// Distinct events inserted in the window.
    pub events_in_window: u64,
    /// Distinct events of the issue up to the window's end.
    pub times_seen: u64,
    /// Whether the issue's first event is in the window.
    pub is_new: bool,
    /// Whether an event in the window reopened the resolved issue.
    pub is_regression: bool,
    /// The status at the window's end.
    pub status: shrike_issues::EffectiveStatus,
    /// Title.
    pub title: String,
    /// Culprit.
    pub culprit: String,
}

/// A row of `check_ins`.
#[derive(Debug, Clone, Default, Row, Serialize, Deserialize, PartialEq)]
pub struct CheckInRow {
    /// Project.
    pub project_id: u64,
    /// Monitor slug.
    pub monitor_slug: String,
    /// Check-in id (shared by `in_progress` and its outcome).
    #[serde(with = "clickhouse::serde::uuid")]
    pub check_in_id: Uuid,
    /// `in_progress`, `ok` or `error`.
    pub status: String,
    /// Run time in seconds.
    pub duration: Option<f64>,
    /// Environment.
    pub environment: String,
    /// Release.
    pub release: String,
    /// When ingest received it.
    pub received: u32,
    /// Days the row is kept (its project's retention; set by the store when inserting).
    pub retention_days: u16,
}

/// A row of `outcomes`.
#[derive(Debug, Clone, Default, Row, Serialize, Deserialize, PartialEq)]
pub struct OutcomeRow {
    /// Project.
    pub project_id: u64,
    /// Start of the minute.
    pub timestamp: u32,
    /// Data category.
    pub category: String,
    /// accepted, rate_limited, invalid, client_discard, ...
    pub outcome: String,
    /// Why.
    pub reason: String,
    /// How many items.
    pub quantity: u64,
    /// Message id (deduplication).
    #[serde(with = "clickhouse::serde::uuid")]
    pub id: Uuid,
    /// Days the row is kept (its project's retention; set by the store when inserting).
    pub retention_days: u16,
}

/// A row of `attachment_chunks`.
#[derive(Debug, Clone, Default, Row, Serialize, Deserialize, PartialEq)]
pub struct AttachmentChunkRow {
    /// Project.
    pub project_id: u64,
    /// The event the file is attached to.
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    /// The attachment.
    #[serde(with = "clickhouse::serde::uuid")]
    pub attachment_id: Uuid,
    /// File name.
    pub filename: String,
    /// Content type.
    pub content_type: String,
    /// `event.attachment`, `event.minidump`, ...
    pub attachment_type: String,
    /// Position of this chunk.
    pub chunk_index: u32,
    /// Number of chunks.
    pub chunk_count: u32,
    /// Size of the whole file.
    pub size: u64,
    /// The chunk's bytes.
    #[serde(with = "serde_bytes_as_string")]
    pub data: Vec<u8>,
    /// When ingest received it.
    pub received: u32,
    /// Days the row is kept (its project's retention; set by the store when inserting).
    pub retention_days: u16,
}

/// Writes bytes as a ClickHouse `String` (RowBinary strings are length-prefixed bytes).
pub(crate) mod serde_bytes_as_string {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_str<E>(self, v: &str) -> Result<Vec<u8>, E> {
                Ok(v.as_bytes().to_vec())
            }
        }
        deserializer.deserialize_bytes(Visitor)
    }
}
