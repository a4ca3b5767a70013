//! Event queries for the API: one event by id (through `event_index`, never a scan of the
//! project's events), an issue's events newest or oldest first from a position, the top tag
//! values and the event counts over time of an issue, and an event's attachments.

use crate::{Result, Store};
use clickhouse::Row;
use serde::Deserialize;
use uuid::Uuid;

/// The columns of an event that listings show.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct EventSummary {
    /// Event id.
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    /// When it happened, Unix seconds.
    pub timestamp: u32,
    /// When ingest received it, Unix seconds.
    pub received: u32,
    /// The issue of its grouping hash (before merges: see `Store::issue_of_hash`).
    pub issue_id: u64,
    /// Its grouping hash.
    pub primary_hash: String,
    /// Level.
    pub level: String,
    /// Platform.
    pub platform: String,
    /// Release.
    pub release: String,
    /// Environment.
    pub environment: String,
    /// Title.
    pub title: String,
    /// Culprit.
    pub culprit: String,
    /// Log message.
    pub message: String,
    /// Type of the main exception.
    pub exception_type: String,
    /// Value of the main exception.
    pub exception_value: String,
    /// Tag keys.
    pub tag_keys: Vec<String>,
    /// Tag values, parallel to `tag_keys`.
    pub tag_values: Vec<String>,
    /// User id.
    pub user_id: String,
    /// User e-mail.
    pub user_email: String,
    /// User name.
    pub user_username: String,
    /// User IP.
    pub user_ip: String,
}

const SUMMARY: &str = "event_id, toUInt32(timestamp), toUInt32(received), issue_id, primary_hash, level, \
    platform, release, environment, title, culprit, message, exception_type, exception_value, \
    tags.key, tags.value, user_id, user_email, user_username, user_ip";

/// An event with its whole JSON (empty when it was stored before whole events were kept, or
/// with `normalizer.keep_whole_event` off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The listed columns.
    pub summary: EventSummary,
    /// The whole event as normalized, JSON.
    pub body: String,
}

/// Which of an issue's events, from where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOrder {
    /// Newest first, strictly older than the position when there is one.
    NewestFirst,
    /// Oldest first, strictly newer than the position when there is one.
    OldestFirst,
}

/// Filters over an issue's events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Text that the title, message, exception value or culprit contains (any case).
    pub text: Option<String>,
    /// Tags the event has with exactly these values.
    pub tags: Vec<(String, String)>,
}

/// An attachment of an event.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct AttachmentInfo {
    /// Attachment id.
    #[serde(with = "clickhouse::serde::uuid")]
    pub attachment_id: Uuid,
    /// File name.
    pub filename: String,
    /// Content type.
    pub content_type: String,
    /// Sentry's attachment type (`event.attachment`, `event.minidump`, ...).
    pub attachment_type: String,
    /// Size in bytes.
    pub size: u64,
}

/// One chunk of an attachment, as `attachment_data` reads it.
#[derive(Row, Deserialize)]
struct Chunk {
    index: u32,
    count: u32,
    #[serde(with = "crate::rows::serde_bytes_as_string")]
    data: Vec<u8>,
}

/// How many of an issue's events have a tag value.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct TagValueCount {
    /// Tag key.
    pub key: String,
    /// Value.
    pub value: String,
    /// Distinct events with it.
    pub count: u64,
}

impl Store {
    /// The `per_key` most frequent values of each tag over the events with one of `hashes`.
    pub async fn tag_values(
        &self,
        project_id: u64,
        hashes: &[String],
        per_key: u64,
    ) -> Result<Vec<TagValueCount>> {
        Ok(self
            .client
            .query(&format!(
                "SELECT key, value, uniqExact(event_id) AS count FROM (
                     SELECT event_id, tags.key AS key, tags.value AS value FROM {}.events
                     ARRAY JOIN tags WHERE project_id = ? AND has(?, primary_hash))
                 GROUP BY key, value ORDER BY key, count DESC, value LIMIT ? BY key",
                self.db
            ))
            .bind(project_id)
            .bind(hashes)
            .bind(per_key)
            .fetch_all()
            .await?)
    }

    /// Distinct events with one of `hashes` per `bucket` seconds (aligned to the Unix epoch)
    /// from `from` on: (bucket start, count), only buckets with events.
    pub async fn event_series(
        &self,
        project_id: u64,
        hashes: &[String],
        from: u32,
        bucket: u32,
    ) -> Result<Vec<(u32, u64)>> {
        Ok(self
            .client
            .query(&format!(
                "SELECT toUInt32(intDiv(toUInt32(timestamp), ?) * ?) AS start, uniqExact(event_id)
                 FROM {}.events
                 WHERE project_id = ? AND has(?, primary_hash) AND timestamp >= toDateTime(?)
                 GROUP BY start ORDER BY start",
                self.db
            ))
            .bind(bucket)
            .bind(bucket)
            .bind(project_id)
            .bind(hashes)
            .bind(from)
            .fetch_all()
            .await?)
    }

    /// The time and grouping hash of an event, from the index.
    pub async fn event_location(
        &self,
        project_id: u64,
        event_id: Uuid,
    ) -> Result<Option<(u32, String)>> {
        Ok(self
            .client
            .query(&format!(
                "SELECT toUInt32(timestamp), primary_hash FROM {}.event_index
                 WHERE project_id = ? AND event_id = ? LIMIT 1",
                self.db
            ))
            .bind(project_id)
            .bind(event_id.to_string())
            .fetch_optional()
            .await?)
    }

    /// One event, whole, by id.
    pub async fn event(&self, project_id: u64, event_id: Uuid) -> Result<Option<StoredEvent>> {
        let Some((timestamp, _)) = self.event_location(project_id, event_id).await? else {
            return Ok(None);
        };
        let row = |columns: &str| {
            self.client
                .query(&format!(
                    "SELECT {columns} FROM {}.events
                     WHERE project_id = ? AND timestamp = toDateTime(?) AND event_id = ? LIMIT 1",
                    self.db
                ))
                .bind(project_id)
                .bind(timestamp)
                .bind(event_id.to_string())
        };
        let Some(summary) = row(SUMMARY).fetch_optional::<EventSummary>().await? else {
            return Ok(None);
        };
        let body = row("body")
            .fetch_optional::<String>()
            .await?
            .unwrap_or_default();
        Ok(Some(StoredEvent { summary, body }))
    }

    /// Events with one of `hashes` (an issue's), in `order` from `after` (a timestamp and event
    /// id, excluded), at most `limit`, each once.
    pub async fn events_of_hashes(
        &self,
        project_id: u64,
        hashes: &[String],
        filter: &EventFilter,
        order: EventOrder,
        after: Option<(u32, Uuid)>,
        limit: u64,
    ) -> Result<Vec<EventSummary>> {
        let (direction, beyond) = match order {
            EventOrder::NewestFirst => ("DESC", "<"),
            EventOrder::OldestFirst => ("ASC", ">"),
        };
        let mut conditions = String::new();
        if after.is_some() {
            conditions.push_str(&format!(
                " AND (timestamp {beyond} toDateTime(?) OR \
                 (timestamp = toDateTime(?) AND toString(event_id) {beyond} ?))"
            ));
        }
        if filter.text.is_some() {
            conditions.push_str(
                " AND (positionCaseInsensitiveUTF8(title, ?) > 0 \
                 OR positionCaseInsensitiveUTF8(message, ?) > 0 \
                 OR positionCaseInsensitiveUTF8(exception_value, ?) > 0 \
                 OR positionCaseInsensitiveUTF8(culprit, ?) > 0)",
            );
        }
        for _ in &filter.tags {
            conditions.push_str(" AND tags.value[indexOf(tags.key, ?)] = ?");
        }
        let mut query = self
            .client
            .query(&format!(
                "SELECT {SUMMARY} FROM {}.events
                 WHERE project_id = ? AND has(?, primary_hash){conditions}
                 ORDER BY timestamp {direction}, toString(event_id) {direction}
                 LIMIT 1 BY event_id LIMIT ?",
                self.db
            ))
            .bind(project_id)
            .bind(hashes);
        if let Some((timestamp, id)) = after {
            query = query.bind(timestamp).bind(timestamp).bind(id.to_string());
        }
        if let Some(text) = &filter.text {
            for _ in 0..4 {
                query = query.bind(text.as_str());
            }
        }
        for (key, value) in &filter.tags {
            query = query.bind(key.as_str()).bind(value.as_str());
        }
        Ok(query.bind(limit).fetch_all().await?)
    }

    /// The attachments of an event.
    pub async fn attachments(
        &self,
        project_id: u64,
        event_id: Uuid,
    ) -> Result<Vec<AttachmentInfo>> {
        Ok(self
            .client
            .query(&format!(
                "SELECT attachment_id, any(filename), any(content_type), any(attachment_type),
                        any(size)
                 FROM {}.attachment_chunks WHERE project_id = ? AND event_id = ?
                 GROUP BY attachment_id ORDER BY attachment_id",
                self.db
            ))
            .bind(project_id)
            .bind(event_id.to_string())
            .fetch_all()
            .await?)
    }

    /// An attachment's bytes, when every chunk of it arrived.
    pub async fn attachment_data(
        &self,
        project_id: u64,
        event_id: Uuid,
        attachment_id: Uuid,
    ) -> Result<Option<Vec<u8>>> {
        let chunks: Vec<Chunk> = self
            .client
            .query(&format!(
                "SELECT chunk_index, any(chunk_count), any(data) FROM {}.attachment_chunks
                 WHERE project_id = ? AND event_id = ? AND attachment_id = ?
                 GROUP BY chunk_index ORDER BY chunk_index",
                self.db
            ))
            .bind(project_id)
            .bind(event_id.to_string())
            .bind(attachment_id.to_string())
            .fetch_all()
            .await?;
        let complete = chunks
            .iter()
            .enumerate()
            .all(|(i, c)| c.index as usize == i && c.count as usize == chunks.len());
        if chunks.is_empty() || !complete {
            return Ok(None);
        }
        Ok(Some(chunks.into_iter().flat_map(|c| c.data).collect()))
    }
}
