//! Issue queries and issue changes: listing and showing issues with their counts, status changes,
//! merging and unmerging, the alerter's activity windows, and the lookups the grouper does once
//! per batch.
//!
//! Events keep the issue id of their own hash; every reader maps them to the issue that owns the
//! hash now through `issue_hashes` (an `ANY LEFT JOIN`, which ClickHouse 18.16 supports; joined
//! subqueries carry an alias, which current servers require), so a
//! merge or unmerge never rewrites events. Counts over all of an issue's events come from the
//! per-hash aggregates the schema keeps (`hash_days`, filled as events are inserted, each event
//! once), so neither a list nor a detail scans events; a list narrowed by environment, release or
//! tags counts `uniqExact(event_id)` over the events. The status rules are in
//! `shrike_issues::lifecycle`; nothing here decides what a status means.

use crate::migrations::USER_KEY;
use crate::{
    EventOrder, IssueActivity, IssueDescription, IssueDetail, IssueHashRow, IssueStats,
    IssueSummary, LatestEvent, Result, Store, StoreError, now_ms,
};
use clickhouse::Row;
use serde::Deserialize;
use shrike_issues::lifecycle::{
    IssueState, IssueStatus, IssueStatusRow, REGRESSED, StatusChange, StatusContext, status_row,
};
use std::collections::{BTreeSet, HashMap, HashSet};
use uuid::Uuid;

/// Most issue ids bound in one query (20 digits each: well under the server's 256 KiB limit).
const ID_CHUNK: usize = 5_000;

/// Which issues `list_issues` returns, in which order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueFilter {
    /// Only issues with this status now.
    pub status: Option<IssueStatus>,
    /// Only issues last seen at or after this time, Unix seconds.
    pub since: Option<u32>,
    /// Only issues last seen before this time, Unix seconds.
    pub until: Option<u32>,
    /// Only issues first seen at or after this time, Unix seconds.
    pub first_seen_since: Option<u32>,
    /// Only issues first seen before this time, Unix seconds.
    pub first_seen_until: Option<u32>,
    /// Only issues whose title, culprit, type or value contains this text (any case), or whose id
    /// is this text.
    pub query: Option<String>,
    /// Only events in this environment count (and issues without any are left out).
    pub environment: Option<String>,
    /// Only events of this release count.
    pub release: Option<String>,
    /// Only events with these tags (key, exact value) count.
    pub tags: Vec<(String, String)>,
    /// The order.
    pub sort: IssueSort,
    /// Issues to skip, in that order (for paging).
    pub offset: u64,
    /// Most issues.
    pub limit: u64,
}

impl Default for IssueFilter {
    fn default() -> Self {
        IssueFilter {
            status: None,
            since: None,
            until: None,
            first_seen_since: None,
            first_seen_until: None,
            query: None,
            environment: None,
            release: None,
            tags: Vec::new(),
            sort: IssueSort::LastSeen,
            offset: 0,
            limit: 100,
        }
    }
}

/// How `list_issues` orders issues (each descending; ties by issue id).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IssueSort {
    /// Most recently seen first.
    #[default]
    LastSeen,
    /// Most recently created first.
    FirstSeen,
    /// Most events first.
    Events,
    /// Most distinct users first.
    Users,
}

impl IssueSort {
    fn order_by(self) -> &'static str {
        match self {
            IssueSort::LastSeen => "last_seen DESC, issue_id",
            IssueSort::FirstSeen => "first_seen DESC, issue_id",
            IssueSort::Events => "times_seen DESC, issue_id",
            IssueSort::Users => "users DESC, issue_id",
        }
    }
}

/// Conditions on the events an issue's counts are made of.
#[derive(Default)]
struct EventConditions<'a> {
    issue: Option<u64>,
    environment: Option<&'a str>,
    release: Option<&'a str>,
    tags: &'a [(String, String)],
}

impl EventConditions<'_> {
    /// Whether only some of an issue's events count (so counts come from the events, not from
    /// the per-hash aggregates).
    fn narrows(&self) -> bool {
        self.environment.is_some() || self.release.is_some() || !self.tags.is_empty()
    }
}

/// A grouping hash of a project with its own issue and the issue that owns it now.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
struct HashOwner {
    primary_hash: String,
    own: u64,
    merged_into: u64,
    version: u64,
}

impl HashOwner {
    fn owner(&self) -> u64 {
        if self.merged_into == 0 {
            self.own
        } else {
            self.merged_into
        }
    }
}

/// `IssueStatusRow`'s columns plus `inserted_at`, as `issue_states` selects them.
#[derive(Row, Deserialize)]
struct StateRow {
    project_id: u64,
    issue_id: u64,
    status: String,
    substatus: String,
    resolution: u64,
    resolved_in_release: String,
    ignore_until_count: u64,
    ignore_count_base: u64,
    ignore_until: u32,
    #[serde(with = "clickhouse::serde::uuid")]
    regression_event: Uuid,
    version: u64,
    changed_at: u32,
}

impl From<StateRow> for IssueState {
    fn from(r: StateRow) -> Self {
        IssueState {
            row: IssueStatusRow {
                project_id: r.project_id,
                issue_id: r.issue_id,
                status: r.status,
                substatus: r.substatus,
                resolution: r.resolution,
                resolved_in_release: r.resolved_in_release,
                ignore_until_count: r.ignore_until_count,
                ignore_count_base: r.ignore_count_base,
                ignore_until: r.ignore_until,
                regression_event: r.regression_event,
                version: r.version,
            },
            changed_at: r.changed_at,
        }
    }
}

/// Rows of `table` (events or a per-hash aggregate) of one project with `group_id`, the issue
/// that owns each row's hash now, and `columns`. Binds the project twice.
fn mapped(db: &str, table: &str, columns: &str) -> String {
    format!(
        "SELECT if(merged_into = 0, issue_id, merged_into) AS group_id, {columns}
         FROM {db}.{table} ANY LEFT JOIN (
             SELECT primary_hash, argMax(issue_id, version) AS merged_into FROM {db}.issue_hashes
             WHERE project_id = ? GROUP BY primary_hash
         ) AS merged USING primary_hash
         WHERE project_id = ?"
    )
}

/// Events of one project with `group_id` and `columns`. Binds the project twice.
fn mapped_events(db: &str, columns: &str) -> String {
    mapped(db, "events", columns)
}

/// Counts per issue from its hashes' daily aggregates (`hash_days`), named as `IssueStats`.
const FROM_AGGREGATES: &str = "countMerge(count_state) AS times_seen,
    toUInt32(minMerge(first_state)) AS first_seen, toUInt32(maxMerge(last_state)) AS last_seen,
    uniqIfMerge(users_state) AS users, argMaxIfMerge(release_state) AS last_release";

/// Counts per issue over the events themselves, named as `IssueStats`.
const FROM_EVENTS: &str = "uniqExact(event_id) AS times_seen,
    toUInt32(min(timestamp)) AS first_seen, toUInt32(max(timestamp)) AS last_seen,
    uniqExactIf(user_key, user_key != '') AS users,
    argMaxIf(release, timestamp, release != '') AS last_release";

/// The hashes `issue` owns now, given its own hashes (`own`) and where merged hashes belong
/// (`merged`, hash → issue): its own and those merged into it, sorted. Fails for an issue merged
/// away (an own hash belongs elsewhere) or unknown (no hash at all).
fn owned_by(issue: u64, own: &[String], merged: &HashMap<String, u64>) -> Result<Vec<String>> {
    if let Some(&into) = own
        .iter()
        .filter_map(|h| merged.get(h))
        .find(|&&into| into != issue)
    {
        return Err(StoreError::Merged { issue, into });
    }
    let mut hashes: BTreeSet<String> = own.iter().cloned().collect();
    hashes.extend(
        merged
            .iter()
            .filter(|(_, into)| **into == issue)
            .map(|(h, _)| h.clone()),
    );
    if hashes.is_empty() {
        return Err(StoreError::NoIssue(issue));
    }
    Ok(hashes.into_iter().collect())
}

impl Store {
    /// Counts per issue of a project over the events `on` admits, in `filter`'s order, with
    /// `filter`'s seen ranges (its status, text, offset and limit are the caller's). Over all
    /// events they come from the daily aggregates (exact event counts; users counted as Sentry
    /// does, with `uniq`); only conditions on environment, release or tags read the events.
    async fn issue_stats(
        &self,
        project_id: u64,
        on: &EventConditions<'_>,
        filter: &IssueFilter,
        limit: u64,
    ) -> Result<Vec<IssueStats>> {
        let (rows, stats) = if on.narrows() {
            let columns = format!(
                "event_id, timestamp, release, environment, tags.key, tags.value, {USER_KEY} AS user_key"
            );
            (mapped_events(&self.db, &columns), FROM_EVENTS)
        } else {
            let columns = "count_state, first_state, last_state, users_state, release_state";
            (mapped(&self.db, "hash_days", columns), FROM_AGGREGATES)
        };
        let mut conditions = vec!["1"];
        if on.issue.is_some() {
            conditions.push("group_id = ?");
        }
        if on.environment.is_some() {
            conditions.push("environment = ?");
        }
        if on.release.is_some() {
            conditions.push("release = ?");
        }
        conditions.extend(std::iter::repeat_n(
            "tags.value[indexOf(tags.key, ?)] = ?",
            on.tags.len(),
        ));
        let mut having = vec!["last_seen >= ?"];
        if filter.until.is_some() {
            having.push("last_seen < ?");
        }
        if filter.first_seen_since.is_some() {
            having.push("first_seen >= ?");
        }
        if filter.first_seen_until.is_some() {
            having.push("first_seen < ?");
        }
        let mut query = self
            .client
            .query(&format!(
                "SELECT group_id AS issue_id, {stats}
                 FROM ({rows}) WHERE {}
                 GROUP BY issue_id HAVING {}
                 ORDER BY {} LIMIT ?",
                conditions.join(" AND "),
                having.join(" AND "),
                filter.sort.order_by()
            ))
            .bind(project_id)
            .bind(project_id);
        if let Some(id) = on.issue {
            query = query.bind(id);
        }
        if let Some(environment) = on.environment {
            query = query.bind(environment);
        }
        if let Some(release) = on.release {
            query = query.bind(release);
        }
        for (key, value) in on.tags {
            query = query.bind(key.as_str()).bind(value.as_str());
        }
        query = query.bind(filter.since.unwrap_or(0));
        for bound in [
            filter.until,
            filter.first_seen_since,
            filter.first_seen_until,
        ]
        .into_iter()
        .flatten()
        {
            query = query.bind(bound);
        }
        Ok(query.bind(limit).fetch_all().await?)
    }

    /// Counts of one issue over all its events.
    async fn one_issue_stats(&self, project_id: u64, issue: u64) -> Result<Vec<IssueStats>> {
        let on = EventConditions {
            issue: Some(issue),
            ..Default::default()
        };
        self.issue_stats(project_id, &on, &IssueFilter::default(), 1)
            .await
    }

    async fn describe_issues(
        &self,
        project_id: u64,
        ids: &[u64],
    ) -> Result<HashMap<u64, IssueDescription>> {
        let mut described = HashMap::with_capacity(ids.len());
        // In chunks: a bound list of every issue of a large project would pass the server's
        // query size limit.
        for chunk in ids.chunks(ID_CHUNK) {
            let rows: Vec<IssueDescription> = self
                .client
                .query(&format!(
                    "SELECT issue_id, argMax(primary_hash, version), argMax(title, version),
                            argMax(culprit, version), argMax(type, version), argMax(value, version),
                            argMax(level, version), argMax(platform, version)
                     FROM {}.issues WHERE project_id = ? AND has(?, issue_id) GROUP BY issue_id",
                    self.db
                ))
                .bind(project_id)
                .bind(chunk)
                .fetch_all()
                .await?;
            described.extend(rows.into_iter().map(|r| (r.issue_id, r)));
        }
        Ok(described)
    }

    /// The current status rows of these issues (in any project), keyed by (project, issue). An
    /// issue without a row is unresolved. One query per 5,000 issues (a grouper batch: one).
    pub async fn issue_states(&self, ids: &[u64]) -> Result<HashMap<(u64, u64), IssueState>> {
        let mut states = HashMap::new();
        for chunk in ids.chunks(ID_CHUNK) {
            let rows: Vec<StateRow> = self
                .client
                .query(&format!(
                    "SELECT project_id, issue_id, argMax(status, version), argMax(substatus, version),
                            argMax(resolution, version), argMax(resolved_in_release, version),
                            argMax(ignore_until_count, version), argMax(ignore_count_base, version),
                            toUInt32(argMax(ignore_until, version)), argMax(regression_event, version),
                            max(version), toUInt32(argMax(inserted_at, version))
                     FROM {}.issue_status WHERE has(?, issue_id) GROUP BY project_id, issue_id",
                    self.db
                ))
                .bind(chunk)
                .fetch_all()
                .await?;
            states.extend(
                rows.into_iter()
                    .map(|r| ((r.project_id, r.issue_id), IssueState::from(r))),
            );
        }
        Ok(states)
    }

    /// The issues merged hashes belong to, keyed by (project, hash); hashes that belong to their
    /// own issue are absent. One query, for the grouper's batches.
    pub async fn hash_targets(&self, hashes: &[String]) -> Result<HashMap<(u64, String), u64>> {
        if hashes.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(u64, String, u64)> = self
            .client
            .query(&format!(
                "SELECT project_id, primary_hash, argMax(issue_id, version)
                 FROM {}.issue_hashes WHERE has(?, primary_hash) GROUP BY project_id, primary_hash",
                self.db
            ))
            .bind(hashes)
            .fetch_all()
            .await?;
        Ok(rows
            .into_iter()
            .map(|(project, hash, issue)| ((project, hash), issue))
            .collect())
    }

    /// Every (project, issue, resolution) a regression was recorded for; the grouper treats
    /// them as announced when its bus does not keep activity across restarts.
    pub async fn regressed_keys(&self) -> Result<Vec<(u64, u64, u64)>> {
        Ok(self
            .client
            .query(&format!(
                "SELECT DISTINCT project_id, issue_id, resolution FROM {}.issue_status
                 WHERE substatus = ?",
                self.db
            ))
            .bind(REGRESSED)
            .fetch_all()
            .await?)
    }

    /// Every (project, issue) pair with a description row.
    pub async fn issue_keys(&self) -> Result<Vec<(u64, u64)>> {
        Ok(self
            .client
            .query(&format!(
                "SELECT DISTINCT project_id, issue_id FROM {}.issues",
                self.db
            ))
            .fetch_all()
            .await?)
    }

    /// Inserts status rows (the grouper's regressions) in one request.
    pub async fn insert_issue_statuses(&self, rows: &[IssueStatusRow]) -> Result<()> {
        self.insert_rows("issue_status", rows).await
    }

    /// Every grouping hash of a project that opened an issue, with the issue owning it now.
    async fn hash_owners(&self, project_id: u64) -> Result<Vec<HashOwner>> {
        let db = &self.db;
        Ok(self
            .client
            .query(&format!(
                "SELECT primary_hash, own, merged_into, hash_version FROM (
                     SELECT primary_hash, any(issue_id) AS own FROM {db}.issues
                     WHERE project_id = ? GROUP BY primary_hash
                 ) AS owners ANY LEFT JOIN (
                     SELECT primary_hash, argMax(issue_id, version) AS merged_into,
                            max(version) AS hash_version
                     FROM {db}.issue_hashes WHERE project_id = ? GROUP BY primary_hash
                 ) AS merged USING primary_hash ORDER BY primary_hash"
            ))
            .bind(project_id)
            .bind(project_id)
            .fetch_all()
            .await?)
    }

    /// A version above every mapping row of the project, so the new rows win.
    fn next_hash_version(owners: &[HashOwner]) -> u64 {
        let highest = owners.iter().map(|o| o.version).max().unwrap_or(0);
        now_ms().max(highest + 1)
    }

    /// Checks that `issue` exists in the project and was not merged away; returns its hashes.
    fn live_hashes(owners: &[HashOwner], issue: u64) -> Result<Vec<String>> {
        let own: Vec<String> = owners
            .iter()
            .filter(|o| o.own == issue)
            .map(|o| o.primary_hash.clone())
            .collect();
        let merged: HashMap<String, u64> = owners
            .iter()
            .filter(|o| o.merged_into != 0)
            .map(|o| (o.primary_hash.clone(), o.merged_into))
            .collect();
        owned_by(issue, &own, &merged)
    }

    /// Where the project's merged hashes belong now (hash → issue). `issue_hashes` holds only
    /// merges and unmerges, so this reads few rows however many issues the project has.
    async fn merged_hashes(&self, project_id: u64) -> Result<HashMap<String, u64>> {
        let rows: Vec<(String, u64)> = self
            .client
            .query(&format!(
                "SELECT primary_hash, argMax(issue_id, version) FROM {}.issue_hashes
                 WHERE project_id = ? GROUP BY primary_hash",
                self.db
            ))
            .bind(project_id)
            .fetch_all()
            .await?;
        Ok(rows.into_iter().collect())
    }

    /// The hashes `issue` owns now, given the project's merges: its own (from `issues`, by
    /// primary key) and those merged into it; fails for an unknown or merged-away issue.
    async fn owned_hashes(
        &self,
        project_id: u64,
        issue: u64,
        merged: &HashMap<String, u64>,
    ) -> Result<Vec<String>> {
        let own: Vec<String> = self
            .client
            .query(&format!(
                "SELECT DISTINCT primary_hash FROM {}.issues WHERE project_id = ? AND issue_id = ?",
                self.db
            ))
            .bind(project_id)
            .bind(issue)
            .fetch_all()
            .await?;
        owned_by(issue, &own, merged)
    }

    /// The issue that owns a grouping hash now (`own`, its own issue, unless it was merged) and
    /// every hash that issue owns.
    pub async fn issue_of_hash(
        &self,
        project_id: u64,
        hash: &str,
        own: u64,
    ) -> Result<(u64, Vec<String>)> {
        let merged = self.merged_hashes(project_id).await?;
        let owner = merged.get(hash).copied().unwrap_or(own);
        let hashes = self
            .owned_hashes(project_id, owner, &merged)
            .await
            .unwrap_or_else(|_| vec![hash.to_owned()]);
        Ok((owner, hashes))
    }

    /// The grouping hashes an issue owns now; fails for an unknown or merged-away issue. Reads
    /// the issue's own rows and the project's merges, not every issue of the project.
    pub async fn issue_hashes(&self, project_id: u64, issue: u64) -> Result<Vec<String>> {
        let merged = self.merged_hashes(project_id).await?;
        self.owned_hashes(project_id, issue, &merged).await
    }

    /// The issues of a project in `filter`'s order, with exact counts and their status.
    pub async fn list_issues(
        &self,
        project_id: u64,
        filter: &IssueFilter,
    ) -> Result<Vec<IssueSummary>> {
        let filtered = filter.status.is_some() || filter.query.is_some();
        let wanted = filter.offset.saturating_add(filter.limit);
        let limit = if filtered { u64::MAX } else { wanted };
        let on = EventConditions {
            issue: None,
            environment: filter.environment.as_deref(),
            release: filter.release.as_deref(),
            tags: &filter.tags,
        };
        let stats = self.issue_stats(project_id, &on, filter, limit).await?;
        let totals = if on.narrows() {
            let all = self
                .issue_stats(
                    project_id,
                    &EventConditions::default(),
                    &IssueFilter::default(),
                    u64::MAX,
                )
                .await?;
            Some(
                all.into_iter()
                    .map(|s| (s.issue_id, s.times_seen))
                    .collect(),
            )
        } else {
            None
        };
        let mut issues = self.summarize(project_id, stats, totals).await?;
        if let Some(status) = filter.status {
            issues.retain(|i| i.status.status == status);
        }
        if let Some(query) = &filter.query {
            let needle = query.to_lowercase();
            issues.retain(|i| {
                i.stats.issue_id.to_string() == needle
                    || i.description.as_ref().is_some_and(|d| {
                        [&d.title, &d.culprit, &d.ty, &d.value]
                            .iter()
                            .any(|field| field.to_lowercase().contains(&needle))
                    })
            });
        }
        let offset = usize::try_from(filter.offset).unwrap_or(usize::MAX);
        Ok(issues
            .into_iter()
            .skip(offset)
            .take(usize::try_from(filter.limit).unwrap_or(usize::MAX))
            .collect())
    }

    /// Descriptions and statuses for `stats`. An ignore condition counts all of an issue's
    /// events: when `stats` counted only some (a list filtered by environment, release or tags),
    /// `totals` holds each issue's whole count.
    async fn summarize(
        &self,
        project_id: u64,
        stats: Vec<IssueStats>,
        totals: Option<HashMap<u64, u64>>,
    ) -> Result<Vec<IssueSummary>> {
        let ids: Vec<u64> = stats.iter().map(|s| s.issue_id).collect();
        let described = self.describe_issues(project_id, &ids).await?;
        let mut states = self.issue_states(&ids).await?;
        let now = self.server_now().await?;
        Ok(stats
            .into_iter()
            .map(|stats| {
                let state = states.remove(&(project_id, stats.issue_id));
                let times_seen = totals
                    .as_ref()
                    .and_then(|t| t.get(&stats.issue_id).copied())
                    .unwrap_or(stats.times_seen);
                IssueSummary {
                    description: described.get(&stats.issue_id).cloned(),
                    status: state
                        .as_ref()
                        .map(|s| s.effective(times_seen, now))
                        .unwrap_or_default(),
                    state,
                    stats,
                }
            })
            .collect())
    }

    /// One issue's counts, status and description, with its hashes; fails for an unknown or
    /// merged-away issue.
    pub async fn issue_summary(
        &self,
        project_id: u64,
        issue: u64,
    ) -> Result<(IssueSummary, Vec<String>)> {
        let hashes = self.issue_hashes(project_id, issue).await?;
        let stats = self.one_issue_stats(project_id, issue).await?;
        let summary = self
            .summarize(project_id, stats, None)
            .await?
            .pop()
            .ok_or(StoreError::NoIssue(issue))?;
        Ok((summary, hashes))
    }

    /// One issue with its hashes and latest event; fails for an unknown or merged-away issue.
    pub async fn issue_detail(&self, project_id: u64, issue: u64) -> Result<IssueDetail> {
        let (summary, hashes) = self.issue_summary(project_id, issue).await?;
        let newest = self
            .event_keys_of_hashes(project_id, &hashes, EventOrder::NewestFirst, None, 1)
            .await?;
        let latest: Option<LatestEvent> = match newest.first() {
            None => None,
            Some(&(time, id)) => {
                self.client
                    .query(&format!(
                        "SELECT event_id, toUInt32(timestamp), release, exception_type,
                                exception_value, message, frame_filenames, frame_functions,
                                frame_linenos, frame_in_app
                         FROM {}.events
                         WHERE project_id = ? AND timestamp = toDateTime(?) AND event_id = ?
                         LIMIT 1",
                        self.db
                    ))
                    .bind(project_id)
                    .bind(time)
                    .bind(id.to_string())
                    .fetch_optional()
                    .await?
            }
        };
        Ok(IssueDetail {
            summary,
            hashes,
            latest,
        })
    }

    /// Changes the status of an issue (not merged away) and returns the row written.
    pub async fn set_issue_status(
        &self,
        project_id: u64,
        issue: u64,
        change: &StatusChange,
    ) -> Result<IssueStatusRow> {
        self.issue_hashes(project_id, issue).await?;
        let stats = self.one_issue_stats(project_id, issue).await?;
        let current = self.issue_states(&[issue]).await?;
        let context = StatusContext {
            project_id,
            issue_id: issue,
            current_version: current
                .get(&(project_id, issue))
                .map(|s| s.row.version)
                .unwrap_or(0),
            times_seen: stats.first().map(|s| s.times_seen).unwrap_or(0),
            last_release: stats
                .first()
                .map(|s| s.last_release.clone())
                .unwrap_or_default(),
            now_ms: now_ms(),
        };
        let row = status_row(change, &context);
        self.insert_issue_statuses(std::slice::from_ref(&row))
            .await?;
        Ok(row)
    }

    /// Merges `sources` into `into`: every hash they own now belongs to `into`, so their events
    /// (past and future) count toward it. Returns the hashes moved.
    pub async fn merge_issues(
        &self,
        project_id: u64,
        into: u64,
        sources: &[u64],
    ) -> Result<Vec<String>> {
        let owners = self.hash_owners(project_id).await?;
        Self::live_hashes(&owners, into)?;
        let mut moved = Vec::new();
        for &source in sources {
            if source == into {
                return Err(StoreError::SelfMerge(into));
            }
            moved.extend(Self::live_hashes(&owners, source)?);
        }
        let version = Self::next_hash_version(&owners);
        let rows: Vec<IssueHashRow> = moved
            .iter()
            .map(|hash| IssueHashRow {
                project_id,
                primary_hash: hash.clone(),
                issue_id: into,
                version,
            })
            .collect();
        self.insert_rows("issue_hashes", &rows).await?;
        Ok(moved)
    }

    /// Gives merged hashes back to their own issues; returns (hash, issue) per hash.
    pub async fn unmerge_hashes(
        &self,
        project_id: u64,
        hashes: &[String],
    ) -> Result<Vec<(String, u64)>> {
        let owners = self.hash_owners(project_id).await?;
        let mut seen = HashSet::new();
        let mut rows = Vec::new();
        let version = Self::next_hash_version(&owners);
        for hash in hashes {
            let owner = owners
                .iter()
                .find(|o| &o.primary_hash == hash)
                .ok_or_else(|| StoreError::NoHash(hash.clone()))?;
            if owner.owner() == owner.own {
                return Err(StoreError::NotMerged(hash.clone()));
            }
            if seen.insert(hash) {
                rows.push(IssueHashRow {
                    project_id,
                    primary_hash: hash.clone(),
                    issue_id: owner.own,
                    version,
                });
            }
        }
        self.insert_rows("issue_hashes", &rows).await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.primary_hash, r.issue_id))
            .collect())
    }

    /// The issues of a project with events inserted in `[from, to)` (Unix seconds, server clock),
    /// how many distinct events each had in the window, whether the issue is new (its first
    /// event was inserted in the window) or regressed in the window, and its status at `to`.
    pub async fn issue_activity(
        &self,
        project_id: u64,
        from: u32,
        to: u32,
    ) -> Result<Vec<IssueActivity>> {
        let events = mapped_events(&self.db, "event_id, inserted_at");
        // Each event counts at its first insertion: a redelivered copy inserted later must not
        // make an old event look new.
        let stats: Vec<(u64, u64, u64, u32)> = self
            .client
            .query(&format!(
                "SELECT group_id,
                        countIf(first_inserted >= toDateTime(?)) AS in_window,
                        count() AS total,
                        toUInt32(min(first_inserted)) AS first_seen_inserted
                 FROM (
                     SELECT group_id, event_id, min(inserted_at) AS first_inserted
                     FROM ({events}) WHERE inserted_at < toDateTime(?) AND group_id IN (
                         SELECT group_id FROM ({events})
                         WHERE inserted_at >= toDateTime(?) AND inserted_at < toDateTime(?))
                     GROUP BY group_id, event_id
                 )
                 GROUP BY group_id
                 HAVING in_window > 0
                 ORDER BY in_window DESC, group_id"
            ))
            .bind(from)
            .bind(project_id)
            .bind(project_id)
            .bind(to)
            .bind(project_id)
            .bind(project_id)
            .bind(from)
            .bind(to)
            .fetch_all()
            .await?;
        let ids: Vec<u64> = stats.iter().map(|s| s.0).collect();
        let described = self.describe_issues(project_id, &ids).await?;
        let states = self.issue_states(&ids).await?;
        Ok(stats
            .into_iter()
            .map(|(issue_id, in_window, total, first_inserted)| {
                let state = states.get(&(project_id, issue_id));
                let status = state.map(|s| s.effective(total, to)).unwrap_or_default();
                let description = described.get(&issue_id);
                IssueActivity {
                    issue_id,
                    events_in_window: in_window,
                    times_seen: total,
                    is_new: first_inserted >= from,
                    is_regression: status.substatus == REGRESSED
                        && state.is_some_and(|s| s.changed_at >= from),
                    status,
                    title: description.map(|d| d.title.clone()).unwrap_or_default(),
                    culprit: description.map(|d| d.culprit.clone()).unwrap_or_default(),
                }
            })
            .collect())
    }
}
