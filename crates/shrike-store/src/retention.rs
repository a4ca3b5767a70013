//! Retention: how many days each project's event data is kept, and the cleanup that enforces it
//! by dropping whole partitions.
//!
//! Every table holding event data (`events`, `event_index`, `attachment_chunks`, `check_ins`,
//! `outcomes`, and the per-hash aggregates `hash_hours`, `hash_days`, `hash_tags`, `hash_events`)
//! carries `retention_days`, stamped at insert from the project's setting, and is
//! partitioned by `(retention_days, toMonday(time))`, as Snuba does: a partition holds one week
//! of the projects that share a retention, so it can be dropped whole once its newest possible
//! row is older than that retention. Data is therefore kept at least `days` and at most
//! `days + 7`. Changing a project's retention applies to rows written afterwards.

use crate::{Result, Store};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `[retention]`: days of event data kept, by default and per project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days every project keeps (default 90).
    pub days: u16,
    /// Per project id (a string key in TOML: `"3" = 30`), days that project keeps instead.
    pub projects: BTreeMap<String, u16>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            days: 90,
            projects: BTreeMap::new(),
        }
    }
}

impl RetentionConfig {
    /// The days `project_id` keeps.
    pub fn days(&self, project_id: u64) -> u16 {
        self.projects
            .get(&project_id.to_string())
            .copied()
            .unwrap_or(self.days)
    }

    /// Whether `days` is a retention Shrike accepts: 1 to 3,650 (ten years).
    pub fn valid_days(days: u16) -> bool {
        (1..=3650).contains(&days)
    }

    /// Checks the values: 1 to 3,650 days, project keys that are ids.
    pub fn validate(&self) -> Result<(), String> {
        let valid = Self::valid_days;
        if !valid(self.days) {
            return Err("retention.days: give 1 to 3650".into());
        }
        for (project, days) in &self.projects {
            if project.parse::<u64>().is_err() {
                return Err(format!(
                    "retention.projects: {project:?} is not a project id"
                ));
            }
            if !valid(*days) {
                return Err(format!("retention.projects.{project}: give 1 to 3650"));
            }
        }
        Ok(())
    }
}

/// The tables partitioned by retention, with their time column.
pub(crate) const RETAINED: [(&str, &str); 9] = [
    ("events", "timestamp"),
    ("event_index", "timestamp"),
    ("hash_hours", "bucket"),
    ("hash_days", "bucket"),
    ("hash_tags", "week"),
    ("hash_events", "timestamp"),
    ("attachment_chunks", "received"),
    ("check_ins", "received"),
    ("outcomes", "timestamp"),
];

/// A partition dropped by [`Store::drop_expired`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    /// The table.
    pub table: String,
    /// Its retention.
    pub days: u16,
    /// The Monday its week starts, `YYYY-MM-DD`.
    pub week: String,
}

/// `(retention_days, 'YYYY-MM-DD')` as `system.parts` shows a partition of a retained table.
fn parse_partition(text: &str) -> Option<(u16, String)> {
    let inner = text.strip_prefix('(')?.strip_suffix(')')?;
    let (days, week) = inner.split_once(',')?;
    let week = week.trim().strip_prefix('\'')?.strip_suffix('\'')?;
    let valid_date = week.len() == 10
        && week.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    valid_date.then(|| Some((days.trim().parse().ok()?, week.to_owned())))?
}

/// Days since the Unix epoch of `YYYY-MM-DD`.
fn epoch_day(date: &str) -> Option<i64> {
    let parsed = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    Some(
        parsed
            .signed_duration_since(chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?)
            .num_days(),
    )
}

/// Whether a week starting on `week` (a Monday) holds only rows older than `days` at `today`
/// (days since the epoch): its last day is `week + 6`.
fn expired(week: &str, days: u16, today: i64) -> bool {
    epoch_day(week).is_some_and(|start| start + 6 + i64::from(days) < today)
}

impl Store {
    /// Drops every partition of the retained tables whose rows are all older than their
    /// retention at `now` (Unix seconds); returns what was dropped.
    pub async fn drop_expired(&self, now: u32) -> Result<Vec<Expired>> {
        let tables: Vec<&str> = RETAINED.iter().map(|(t, _)| *t).collect();
        let parts: Vec<(String, String)> = self
            .client
            .query(
                "SELECT DISTINCT table, partition FROM system.parts
                 WHERE database = ? AND active AND has(?, table)",
            )
            .bind(&self.db)
            .bind(&tables)
            .fetch_all()
            .await?;
        let today = i64::from(now) / 86_400;
        let mut dropped = Vec::new();
        for (table, partition) in parts {
            let Some((days, week)) = parse_partition(&partition) else {
                continue;
            };
            if !expired(&week, days, today) {
                continue;
            }
            // Both values were parsed above: a number and a date, nothing else.
            self.client
                .query(&format!(
                    "ALTER TABLE {}.{table} DROP PARTITION ({days}, '{week}')",
                    self.db
                ))
                .execute()
                .await?;
            tracing::info!(%table, days, %week, "dropped an expired partition");
            dropped.push(Expired { table, days, week });
        }
        Ok(dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projects_keep_their_own_days() {
        let config = RetentionConfig {
            days: 90,
            projects: [("3".to_owned(), 30)].into(),
        };
        assert_eq!((config.days(3), config.days(4)), (30, 90));
        assert!(config.validate().is_ok());
        let bad = RetentionConfig {
            projects: [("shop".to_owned(), 30)].into(),
            ..Default::default()
        };
        assert!(bad.validate().is_err());
        let zero = RetentionConfig {
            days: 0,
            ..Default::default()
        };
        assert!(zero.validate().is_err());
    }

    #[test]
    fn partitions_parse_as_system_parts_shows_them() {
        assert_eq!(
            parse_partition("(90,'2026-11-30')"),
            Some((90, "2026-11-30".into()))
        );
        assert_eq!(
            parse_partition("(30, '2026-11-30')"),
            Some((30, "2026-11-30".into()))
        );
        for bad in [
            "20261130",
            "(90,'2026-11-30'); DROP",
            "(x,'2026-11-30')",
            "(90,'26-1-3')",
        ] {
            assert_eq!(parse_partition(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_week_expires_once_its_last_day_is_older_than_the_retention() {
        let monday = epoch_day("2026-11-02").expect("date");
        // Its last day is 2026-11-08; with 30 days it expires after 2026-12-08.
        assert!(!expired("2026-11-02", 30, monday + 6 + 30));
        assert!(expired("2026-11-02", 30, monday + 6 + 31));
        assert!(!expired("bad", 1, i64::MAX));
    }
}
