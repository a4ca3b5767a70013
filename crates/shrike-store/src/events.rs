//! Event queries for the API: one event by id (through `event_index`, never a scan of the
//! project's events), an issue's events newest or oldest first from a position, the top tag
//! values and the event counts over time of an issue, and an event's attachments.

use crate::{Result, Store};
use clickhouse::Row;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use uuid::Uuid;

/// Where an event is in `events`: (project, timestamp in Unix seconds, event id).
pub type EventKey = (u64, u32, Uuid);

/// Most event ids bound in one query (40 characters each, under the server's 256 KiB limit).
const EVENT_CHUNK: usize = 2_000;

/// Timestamps further apart than this start another range in [`Store::stored_events`].
const RANGE_GAP: u32 = 60;

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

impl EventOrder {
    /// The SQL direction and the comparison that means "after" in this order.
    fn sql(self) -> (&'static str, &'static str) {
        match self {
            EventOrder::NewestFirst => ("DESC", "<"),
            EventOrder::OldestFirst => ("ASC", ">"),
        }
    }
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

/// `sorted` timestamps as the fewest ranges whose gaps are at most [`RANGE_GAP`].
fn time_ranges(sorted: impl IntoIterator<Item = u32>) -> Vec<(u32, u32)> {
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for t in sorted {
        match ranges.last_mut() {
            Some((_, end)) if t <= end.saturating_add(RANGE_GAP) => *end = (*end).max(t),
            _ => ranges.push((t, t)),
        }
    }
    ranges
}

impl Store {
    /// Of `keys`, the (project, event id) of the events already stored. Reads only the parts of
    /// `events` around the keys' timestamps (its primary key starts with project and time).
    pub async fn stored_events(&self, keys: &[EventKey]) -> Result<HashSet<(u64, Uuid)>> {
        let mut by_project: BTreeMap<u64, Vec<(u32, Uuid)>> = BTreeMap::new();
        for &(project, timestamp, id) in keys {
            by_project.entry(project).or_default().push((timestamp, id));
        }
        let mut stored = HashSet::new();
        for (project, mut events) in by_project {
            events.sort_unstable();
            for chunk in events.chunks(EVENT_CHUNK) {
                let ranges = time_ranges(chunk.iter().map(|e| e.0));
                let within =
                    vec!["timestamp BETWEEN toDateTime(?) AND toDateTime(?)"; ranges.len()];
                // `IN` a tuple builds a hash set once; `has` would search the list for every row.
                let each = vec!["?"; chunk.len()].join(", ");
                let mut query = self
                    .client
                    .query(&format!(
                        "SELECT DISTINCT toString(event_id) AS id FROM {}.events
                         WHERE project_id = ? AND ({}) AND id IN ({each})",
                        self.db,
                        within.join(" OR ")
                    ))
                    .bind(project);
                for (from, to) in ranges {
                    query = query.bind(from).bind(to);
                }
                for (_, id) in chunk {
                    query = query.bind(id.to_string());
                }
                let found: Vec<String> = query.fetch_all().await?;
                stored.extend(
                    found
                        .iter()
                        .filter_map(|id| Uuid::parse_str(id).ok())
                        .map(|id| (project, id)),
                );
            }
        }
        Ok(stored)
    }

    /// The `per_key` most frequent values of each tag over the events with one of `hashes`, from
    /// the weekly counts of `hash_tags`.
    pub async fn tag_values(
        &self,
        project_id: u64,
        hashes: &[String],
        per_key: u64,
    ) -> Result<Vec<TagValueCount>> {
        Ok(self
            .client
            .query(&format!(
                "SELECT key, value, sum(count) AS count FROM {}.hash_tags
                 WHERE project_id = ? AND has(?, primary_hash)
                 GROUP BY key, value ORDER BY key, count DESC, value LIMIT ? BY key",
                self.db
            ))
            .bind(project_id)
            .bind(hashes)
            .bind(per_key)
            .fetch_all()
            .await?)
    }

    /// Events with one of `hashes` per `bucket` seconds (a whole number of hours, aligned to the
    /// Unix epoch) from `from` on: (bucket start, count), only buckets with events. Read from the
    /// daily aggregates when `bucket` is whole days, else from the hourly ones.
    pub async fn event_series(
        &self,
        project_id: u64,
        hashes: &[String],
        from: u32,
        bucket: u32,
    ) -> Result<Vec<(u32, u64)>> {
        let table = if bucket.is_multiple_of(86_400) {
            "hash_days"
        } else {
            "hash_hours"
        };
        Ok(self
            .client
            .query(&format!(
                "SELECT toUInt32(intDiv(toUInt32(bucket), ?) * ?) AS start, countMerge(count_state)
                 FROM {}.{table}
                 WHERE project_id = ? AND has(?, primary_hash) AND bucket >= toDateTime(?)
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
        // Both reads at once: the same granule, one round trip's wait.
        let (summary, body) = tokio::try_join!(
            row(SUMMARY).fetch_optional::<EventSummary>(),
            row("body").fetch_optional::<String>()
        )?;
        Ok(summary.map(|summary| StoredEvent {
            summary,
            body: body.unwrap_or_default(),
        }))
    }

    /// The (timestamp, id) of events with one of `hashes` (an issue's), in `order` from `after`
    /// (excluded), at most `limit`, each once: read from `hash_events` by its primary key.
    pub async fn event_keys_of_hashes(
        &self,
        project_id: u64,
        hashes: &[String],
        order: EventOrder,
        after: Option<(u32, Uuid)>,
        limit: u64,
    ) -> Result<Vec<(u32, Uuid)>> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let (direction, beyond) = order.sql();
        // `IN` with a tuple of bound values, unlike `has`, narrows the primary key to the hashes.
        let each = vec!["?"; hashes.len()].join(", ");
        let cursor = if after.is_some() {
            format!(
                " AND (timestamp {beyond} toDateTime(?) OR \
                 (timestamp = toDateTime(?) AND toString(event_id) {beyond} ?))"
            )
        } else {
            String::new()
        };
        let mut query = self
            .client
            .query(&format!(
                "SELECT toUInt32(timestamp), toString(event_id) AS id FROM {}.hash_events
                 WHERE project_id = ? AND primary_hash IN ({each}){cursor}
                 ORDER BY timestamp {direction}, id {direction} LIMIT 1 BY id LIMIT ?",
                self.db
            ))
            .bind(project_id);
        for hash in hashes {
            query = query.bind(hash.as_str());
        }
        if let Some((timestamp, id)) = after {
            query = query.bind(timestamp).bind(timestamp).bind(id.to_string());
        }
        let keys: Vec<(u32, String)> = query.bind(limit).fetch_all().await?;
        Ok(keys
            .into_iter()
            .filter_map(|(t, id)| Some((t, Uuid::parse_str(&id).ok()?)))
            .collect())
    }

    /// The listed columns of the events at `keys` (timestamp, id), in the keys' order.
    async fn summaries_at(
        &self,
        project_id: u64,
        keys: &[(u32, Uuid)],
    ) -> Result<Vec<EventSummary>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let times = vec!["toDateTime(?)"; keys.len()].join(", ");
        let ids = vec!["?"; keys.len()].join(", ");
        let mut query = self
            .client
            .query(&format!(
                "SELECT {SUMMARY} FROM {}.events
                 WHERE project_id = ? AND timestamp IN ({times}) AND toString(event_id) IN ({ids})
                 LIMIT 1 BY event_id",
                self.db
            ))
            .bind(project_id);
        for (time, _) in keys {
            query = query.bind(*time);
        }
        for (_, id) in keys {
            query = query.bind(id.to_string());
        }
        let mut found: Vec<EventSummary> = query.fetch_all().await?;
        let position = |e: &EventSummary| keys.iter().position(|k| k.1 == e.event_id);
        found.sort_by_key(position);
        Ok(found)
    }

    /// Events with one of `hashes` (an issue's), in `order` from `after` (a timestamp and event
    /// id, excluded), at most `limit`, each once. Without a filter the page comes from
    /// `hash_events`; text and tag filters read the project's events.
    pub async fn events_of_hashes(
        &self,
        project_id: u64,
        hashes: &[String],
        filter: &EventFilter,
        order: EventOrder,
        after: Option<(u32, Uuid)>,
        limit: u64,
    ) -> Result<Vec<EventSummary>> {
        if filter == &EventFilter::default() {
            let keys = self
                .event_keys_of_hashes(project_id, hashes, order, after, limit)
                .await?;
            return self.summaries_at(project_id, &keys).await;
        }
        let (direction, beyond) = order.sql();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearby_times_share_a_range() {
        assert_eq!(time_ranges([]), vec![]);
        assert_eq!(
            time_ranges([10, 20, 70, 200, 200, 1_000]),
            vec![(10, 70), (200, 200), (1_000, 1_000)]
        );
        assert_eq!(
            time_ranges([u32::MAX - 1, u32::MAX]),
            vec![(u32::MAX - 1, u32::MAX)]
        );
    }
}
