//! The end-to-end check against Shrike's ClickHouse: after sending, poll the `events` table until
//! every accepted event of the run (found by its run-id tag) is stored and grouped, then measure
//! how long that took and how events map to issues. Read-only: it never writes to ClickHouse; user-given
//! strings reach SQL only through the client's parameter binding (the database name is checked
//! to be an identifier).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::LoadError;
use crate::generator::{ISSUE_TAG, RUN_TAG};

/// Where Shrike's ClickHouse is and how long to wait for the run's events.
#[derive(Debug, Clone, PartialEq)]
pub struct ClickHouseCheck {
    /// HTTP URL, e.g. `http://127.0.0.1:18123`.
    pub url: String,
    /// Database with the `events` table.
    pub database: String,
    /// User.
    pub user: String,
    /// Password.
    pub password: String,
    /// Give up waiting after this long (counted from the end of sending).
    pub timeout: Duration,
    /// Pause between polls, or 2% of the wait so far once that is longer: a long wait for a
    /// backlog should not cost the server it measures hundreds of queries. `all_stored_after_secs`
    /// is exact to within the pause.
    pub poll_interval: Duration,
    /// At most this many events are sampled for the send-to-queryable latency.
    pub latency_sample: u64,
}

impl ClickHouseCheck {
    /// A check against `url` with the defaults: database `shrike`, user `default`, 120 s timeout.
    pub fn new(url: &str) -> Self {
        ClickHouseCheck {
            url: url.to_owned(),
            database: "shrike".to_owned(),
            // The one user of the ClickHouse server `shrike up` runs.
            user: "shrike".to_owned(),
            password: String::new(),
            timeout: Duration::from_secs(120),
            poll_interval: Duration::from_millis(250),
            latency_sample: 50_000,
        }
    }
}

/// Send-to-queryable latency of sampled events. `inserted_at` has one-second resolution, so each
/// value is an upper bound: (the second the row was inserted + 1 s) minus the send time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryableLatency {
    /// Events sampled.
    pub sampled: u64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
}

/// What the end-to-end check found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndToEnd {
    /// The database checked.
    pub database: String,
    /// The project the events were sent to.
    pub project_id: u64,
    /// Accepted events of the run.
    pub expected: u64,
    /// Distinct event ids of the run in `events`.
    pub stored: u64,
    /// Of these, events with an issue id and a grouping hash.
    pub grouped: u64,
    /// Distinct issue ids of the run's events.
    pub issues: u64,
    /// Distinct generator issues among the stored events.
    pub generated_issues: u64,
    /// Generator issues whose events landed in more than one issue.
    pub split_issues: u64,
    /// Issues holding events of more than one generator issue.
    pub merged_issues: u64,
    /// Every accepted event was stored and grouped before the timeout.
    pub complete: bool,
    /// From the first send until a poll saw every accepted event stored and grouped, seconds.
    pub all_stored_after_secs: Option<f64>,
    /// From the first send until the latest `inserted_at` of the run (1 s resolution), seconds.
    pub last_inserted_after_secs: Option<f64>,
    /// `stored / all_stored_after_secs`: fully processed events per second.
    pub processed_per_sec: Option<f64>,
    /// Send-to-queryable latency of sampled events.
    pub queryable_latency: Option<QueryableLatency>,
    /// Events of the run by `inserted_at` second (Unix seconds).
    pub stored_per_second: BTreeMap<u64, u64>,
}

#[derive(Debug, Row, Deserialize)]
struct Counts {
    stored: u64,
    grouped: u64,
    issues: u64,
    last_inserted: u32,
}

#[derive(Debug, Row, Deserialize)]
struct TagIssue {
    tag: String,
    issue_id: u64,
}

#[derive(Debug, Row, Deserialize)]
struct Inserted {
    event_id: String,
    inserted_at: u32,
}

#[derive(Debug, Row, Deserialize)]
struct PerSecond {
    second: u32,
    events: u64,
}

/// Polls ClickHouse until the run's accepted events are stored and grouped, or the timeout.
pub struct Verifier {
    client: Client,
    check: ClickHouseCheck,
    filter: String,
    /// `FROM events WHERE` the project, for a condition on `timestamp` to follow.
    project: String,
}

impl Verifier {
    /// A verifier for the events of `run_id` in `project_id`.
    pub fn new(check: &ClickHouseCheck, project_id: u64, run_id: &str) -> Result<Self, LoadError> {
        let db = &check.database;
        if db.is_empty() || !db.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(LoadError::DatabaseName(db.clone()));
        }
        // ClickHouse 18.16 cannot describe result types, so validation is off (as in shrike-store).
        let client = Client::default()
            .with_url(&check.url)
            .with_user(&check.user)
            .with_password(&check.password)
            .with_validation(false);
        // Only numbers and the run id we generated (reduced to [0-9a-zA-Z-]) are formatted in.
        let project = format!("FROM {db}.events WHERE project_id = {project_id}");
        let filter = format!(
            "{project} AND tags.value[indexOf(tags.key, '{RUN_TAG}')] = '{run}'",
            run = run_id.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "")
        );
        Ok(Verifier {
            client,
            check: check.clone(),
            filter,
            project,
        })
    }

    /// Rows of the project with a timestamp from `since` (Unix seconds) on: a count the primary
    /// key (`project_id, timestamp, ...`) answers without reading the run's tags, so a poll that
    /// finds fewer rows than accepted events costs the server next to nothing.
    async fn rows_since(&self, since: u64) -> Result<u64, LoadError> {
        Ok(self
            .client
            .query(&format!(
                "SELECT count() {} AND timestamp >= toDateTime({since})",
                self.project
            ))
            .fetch_one::<u64>()
            .await?)
    }

    async fn counts(&self) -> Result<Counts, LoadError> {
        Ok(self
            .client
            .query(&format!(
                "SELECT uniqExact(event_id) AS stored,
                        uniqExactIf(event_id, issue_id != 0 AND primary_hash != '') AS grouped,
                        uniqExactIf(issue_id, issue_id != 0) AS issues,
                        toUInt32(max(inserted_at)) AS last_inserted {}",
                self.filter
            ))
            .fetch_one()
            .await?)
    }

    /// Waits for `accepted` (event id, send time in Unix ms) to be stored and grouped;
    /// `first_send_unix_ms` is when the run's first request went out.
    pub async fn verify(
        &self,
        project_id: u64,
        accepted: &[(Uuid, u64)],
        first_send_unix_ms: u64,
    ) -> Result<EndToEnd, LoadError> {
        let expected = accepted.len() as u64;
        let waiting = Instant::now();
        let deadline = waiting + self.check.timeout;
        let first_send_secs = first_send_unix_ms as f64 / 1000.0;
        let now_unix = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        };
        // The run's events carry timestamps from when they were generated, just before the first
        // send; ten minutes of margin for clock steps.
        let since = (first_send_unix_ms / 1000).saturating_sub(600);
        let (counts, all_stored_after_secs) = loop {
            // The exact count reads every row's tags; it runs only once the cheap one says all
            // rows may be there (other traffic to the project can make that early, never late).
            if self.rows_since(since).await? >= expected {
                let counts = self.counts().await?;
                if counts.stored >= expected && counts.grouped >= expected {
                    break (counts, Some(now_unix() - first_send_secs));
                }
            }
            if Instant::now() >= deadline {
                break (self.counts().await?, None);
            }
            tokio::time::sleep(poll_pause(self.check.poll_interval, waiting.elapsed())).await;
        };
        let pairs: Vec<TagIssue> = self
            .client
            .query(&format!(
                "SELECT tags.value[indexOf(tags.key, ?)] AS tag, issue_id {} AND issue_id != 0 GROUP BY tag, issue_id",
                self.filter
            ))
            .bind(ISSUE_TAG)
            .fetch_all()
            .await?;
        let mut by_tag: HashMap<&str, u64> = HashMap::new();
        let mut by_issue: HashMap<u64, u64> = HashMap::new();
        for pair in &pairs {
            *by_tag.entry(pair.tag.as_str()).or_default() += 1;
            *by_issue.entry(pair.issue_id).or_default() += 1;
        }
        let per_second: Vec<PerSecond> = self
            .client
            .query(&format!(
                "SELECT toUInt32(inserted_at) AS second, uniqExact(event_id) AS events {} GROUP BY second ORDER BY second",
                self.filter
            ))
            .fetch_all()
            .await?;
        let queryable_latency = self.queryable_latency(accepted).await?;
        let last_inserted_after_secs = (counts.last_inserted > 0)
            .then(|| (f64::from(counts.last_inserted) + 1.0 - first_send_secs).max(0.0));
        Ok(EndToEnd {
            database: self.check.database.clone(),
            project_id,
            expected,
            stored: counts.stored,
            grouped: counts.grouped,
            issues: counts.issues,
            generated_issues: by_tag.len() as u64,
            split_issues: by_tag.values().filter(|&&n| n > 1).count() as u64,
            merged_issues: by_issue.values().filter(|&&n| n > 1).count() as u64,
            complete: all_stored_after_secs.is_some(),
            all_stored_after_secs,
            last_inserted_after_secs,
            processed_per_sec: all_stored_after_secs
                .filter(|&s| s > 0.0)
                .map(|s| counts.stored as f64 / s),
            queryable_latency,
            stored_per_second: per_second
                .into_iter()
                .map(|p| (u64::from(p.second), p.events))
                .collect(),
        })
    }

    async fn queryable_latency(
        &self,
        accepted: &[(Uuid, u64)],
    ) -> Result<Option<QueryableLatency>, LoadError> {
        if accepted.is_empty() {
            return Ok(None);
        }
        let modulus = (accepted.len() as u64).div_ceil(self.check.latency_sample.max(1));
        let rows: Vec<Inserted> = self
            .client
            .query(&format!(
                "SELECT replaceAll(toString(event_id), '-', '') AS id, toUInt32(min(inserted_at)) AS t {} AND cityHash64(toString(event_id)) % ? = 0 GROUP BY event_id",
                self.filter
            ))
            .bind(modulus)
            .fetch_all()
            .await?;
        let sent: HashMap<String, u64> = accepted
            .iter()
            .map(|(id, ms)| (id.simple().to_string(), *ms))
            .collect();
        let mut latencies: Vec<f64> = rows
            .iter()
            .filter_map(|r| {
                let sent = *sent.get(&r.event_id)?;
                Some(((u64::from(r.inserted_at) + 1) * 1000).saturating_sub(sent) as f64)
            })
            .collect();
        if latencies.is_empty() {
            return Ok(None);
        }
        latencies.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let index = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len());
            latencies[index - 1]
        };
        Ok(Some(QueryableLatency {
            sampled: latencies.len() as u64,
            p50_ms: at(0.5),
            p90_ms: at(0.9),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }))
    }
}

/// The pause before the next poll after waiting `waited`: `interval`, or 2% of the wait so far.
fn poll_pause(interval: Duration, waited: Duration) -> Duration {
    interval.max(waited.mul_f64(0.02))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_slow_down_to_2_percent_of_a_long_wait() {
        let interval = Duration::from_millis(250);
        assert_eq!(poll_pause(interval, Duration::from_secs(1)), interval);
        assert_eq!(
            poll_pause(interval, Duration::from_secs(100)),
            Duration::from_secs(2)
        );
    }
}
