//! The service layer: every read and change the API offers, in terms of projects, keys, issues
//! and events, whatever door the call came through (JSON, Sentry's `/api/0/`). Scopes are
//! checked here, so no front door can forget one.

use crate::auth::{Caller, Scope};
use crate::error::ApiError;
use crate::views::*;
use shrike_issues::{IssueStatus, StatusChange};
use shrike_protocol::dsn::Dsn;
use shrike_store::{EventFilter, EventOrder, IssueFilter, Store};
use uuid::Uuid;

/// Most items one page holds.
pub const MAX_PAGE: u64 = 100;

/// Items on a page when the caller does not say.
const DEFAULT_PAGE: u64 = 25;

/// The page size a caller asked for (`None`: the default), or a 400 naming `limit`; every door
/// checks it here.
pub fn page_limit(limit: Option<u64>) -> Result<u64, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad("limit", format!("give 1 to {MAX_PAGE}"))),
    }
}

/// Most issues a list may skip (`cursor`): deeper than this, narrow the query instead.
pub const MAX_OFFSET: u64 = 10_000;

/// Most issues one bulk change touches (Sentry's own limit is 1,000).
pub const BULK_MAX: usize = 1000;

/// Which issues a bulk change touches.
pub enum Selection {
    /// These ids.
    Ids(Vec<u64>),
    /// Those the filter lists, each with one of these statuses (any when empty).
    Filter(IssueFilter, Vec<IssueStatus>),
}

/// Values shown per tag in an issue's detail.
const TAG_VALUES: u64 = 10;

/// The service layer.
pub struct Api {
    store: Store,
    ingest_url: String,
}

impl Api {
    /// Serves `store`; DSNs name ingest at `ingest_url`.
    pub fn new(store: Store, ingest_url: String) -> Self {
        Api { store, ingest_url }
    }

    /// The store (for the token check).
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn dsn(&self, public_key: &str, project_id: u64) -> String {
        Dsn::for_project(&self.ingest_url, public_key, project_id)
            .map(|dsn| dsn.to_string())
            .unwrap_or_default()
    }

    /// Every project with its keys.
    pub async fn projects(&self, caller: Caller) -> Result<Vec<ProjectView>, ApiError> {
        caller.require(Scope::Read)?;
        let keys = self.store.keys().await?;
        Ok(self
            .store
            .projects()
            .await?
            .into_iter()
            .map(|project| ProjectView {
                keys: keys
                    .iter()
                    .filter(|k| k.project_id == project.id)
                    .map(|k| self.key_view(k))
                    .collect(),
                id: project.id,
                slug: project.name.clone(),
                name: project.name,
            })
            .collect())
    }

    fn key_view(&self, key: &shrike_store::ProjectKey) -> KeyView {
        KeyView {
            dsn: self.dsn(&key.public_key, key.project_id),
            public_key: key.public_key.clone(),
            active: key.active,
        }
    }

    /// One project.
    pub async fn project(&self, caller: Caller, id: u64) -> Result<ProjectView, ApiError> {
        self.projects(caller)
            .await?
            .into_iter()
            .find(|p| p.id == id)
            .ok_or_else(|| ApiError::NotFound(format!("project {id}")))
    }

    /// Fails with 404 unless the project exists (a check only: no keys read, no view made).
    async fn exists(&self, project_id: u64) -> Result<(), ApiError> {
        match self.store.project(project_id).await? {
            Some(_) => Ok(()),
            None => Err(ApiError::NotFound(format!("project {project_id}"))),
        }
    }

    /// A project's own settings (empty when it has none).
    pub async fn settings(&self, caller: Caller, id: u64) -> Result<ProjectSettings, ApiError> {
        caller.require(Scope::Read)?;
        self.exists(id).await?;
        let document = self.store.project_settings(id).await?;
        // Documents are validated when written; one that no longer parses applies as none, in
        // the services too.
        Ok(document
            .and_then(|d| {
                serde_json::from_str(&d)
                    .inspect_err(|e| tracing::warn!(id, error = %e, "stored settings do not parse"))
                    .ok()
            })
            .unwrap_or_default())
    }

    /// Replaces a project's own settings (admin); returns them.
    pub async fn set_settings(
        &self,
        caller: Caller,
        id: u64,
        settings: ProjectSettings,
    ) -> Result<ProjectSettings, ApiError> {
        caller.require(Scope::Admin)?;
        self.exists(id).await?;
        settings
            .validate()
            .map_err(|(field, why)| ApiError::bad(field, why))?;
        let document = serde_json::to_string(&settings).unwrap_or_default();
        self.store.set_project_settings(id, &document).await?;
        Ok(settings)
    }

    /// The project whose id or name (slug) this is.
    pub async fn project_by_slug(&self, caller: Caller, slug: &str) -> Result<u64, ApiError> {
        caller.require(Scope::Read)?;
        self.store
            .projects()
            .await?
            .into_iter()
            .find(|p| p.name == slug || p.id.to_string() == slug)
            .map(|p| p.id)
            .ok_or_else(|| ApiError::NotFound(format!("project {slug}")))
    }

    /// Creates a project with one key.
    pub async fn create_project(
        &self,
        caller: Caller,
        name: &str,
    ) -> Result<ProjectView, ApiError> {
        caller.require(Scope::Admin)?;
        let name = valid_name(name)?;
        if self.store.project_by_name(name).await?.is_some() {
            return Err(ApiError::Conflict(format!(
                "a project named {name:?} already exists"
            )));
        }
        let (project, _) = self.store.create_project(name).await?;
        self.project(caller, project.id).await
    }

    /// Renames a project.
    pub async fn rename_project(
        &self,
        caller: Caller,
        id: u64,
        name: &str,
    ) -> Result<ProjectView, ApiError> {
        caller.require(Scope::Admin)?;
        let name = valid_name(name)?;
        if let Some(other) = self.store.project_by_name(name).await?
            && other.id != id
        {
            return Err(ApiError::Conflict(format!(
                "a project named {name:?} already exists"
            )));
        }
        if !self.store.rename_project(id, name).await? {
            return Err(ApiError::NotFound(format!("project {id}")));
        }
        self.project(caller, id).await
    }

    /// Deletes a project with its data.
    pub async fn delete_project(&self, caller: Caller, id: u64) -> Result<(), ApiError> {
        caller.require(Scope::Admin)?;
        if !self.store.delete_project(id).await? {
            return Err(ApiError::NotFound(format!("project {id}")));
        }
        Ok(())
    }

    /// Adds a key to a project.
    pub async fn create_key(&self, caller: Caller, project_id: u64) -> Result<KeyView, ApiError> {
        caller.require(Scope::Admin)?;
        self.exists(project_id).await?;
        let key = self.store.create_key(project_id).await?;
        Ok(self.key_view(&key))
    }

    /// Enables or disables a key of a project.
    pub async fn set_key_active(
        &self,
        caller: Caller,
        project_id: u64,
        public_key: &str,
        active: bool,
    ) -> Result<KeyView, ApiError> {
        caller.require(Scope::Admin)?;
        let project = self.project(caller, project_id).await?;
        if !project.keys.iter().any(|k| k.public_key == public_key) {
            return Err(ApiError::NotFound(format!("key {public_key}")));
        }
        self.store.set_key_active(public_key, active).await?;
        Ok(KeyView {
            dsn: self.dsn(public_key, project_id),
            public_key: public_key.to_owned(),
            active,
        })
    }

    /// Deletes a key of a project.
    pub async fn delete_key(
        &self,
        caller: Caller,
        project_id: u64,
        public_key: &str,
    ) -> Result<(), ApiError> {
        caller.require(Scope::Admin)?;
        let project = self.project(caller, project_id).await?;
        if !project.keys.iter().any(|k| k.public_key == public_key) {
            return Err(ApiError::NotFound(format!("key {public_key}")));
        }
        self.store.delete_key(public_key).await?;
        Ok(())
    }

    /// A page of a project's issues.
    pub async fn issues(
        &self,
        caller: Caller,
        project_id: u64,
        mut filter: IssueFilter,
    ) -> Result<Page<IssueView>, ApiError> {
        caller.require(Scope::Read)?;
        self.exists(project_id).await?;
        if filter.offset > MAX_OFFSET {
            return Err(ApiError::bad(
                "cursor",
                format!("pages end after {MAX_OFFSET} issues: narrow the query"),
            ));
        }
        let limit = filter.limit.clamp(1, MAX_PAGE);
        // One more than asked tells whether there is a next page.
        filter.limit = limit + 1;
        let mut issues: Vec<IssueView> = self
            .store
            .list_issues(project_id, &filter)
            .await?
            .into_iter()
            .map(|summary| IssueView::from_summary(project_id, summary))
            .collect();
        let next = (issues.len() as u64 > limit).then(|| (filter.offset + limit).to_string());
        issues.truncate(limit as usize);
        Ok(Page {
            items: issues,
            next_cursor: next,
        })
    }

    /// One issue with its tags, counts over time, first and latest event.
    pub async fn issue(
        &self,
        caller: Caller,
        project_id: u64,
        issue_id: u64,
    ) -> Result<IssueDetailView, ApiError> {
        caller.require(Scope::Read)?;
        self.exists(project_id).await?;
        let (summary, hashes) = self.store.issue_summary(project_id, issue_id).await?;
        let now = self.store.server_now().await?;
        let tag_counts = self
            .store
            .tag_values(project_id, &hashes, TAG_VALUES)
            .await?;
        let (hours_from, days_from) = (hour_start(now) - 23 * 3600, day_start(now) - 29 * 86_400);
        let hourly = self
            .store
            .event_series(project_id, &hashes, hours_from, 3600)
            .await?;
        let daily = self
            .store
            .event_series(project_id, &hashes, days_from, 86_400)
            .await?;
        let first = self
            .first_event(project_id, &hashes, EventOrder::OldestFirst)
            .await?;
        let latest = self
            .first_event(project_id, &hashes, EventOrder::NewestFirst)
            .await?;
        let times_seen = summary.stats.times_seen;
        Ok(IssueDetailView {
            issue: IssueView::from_summary(project_id, summary),
            hashes,
            tags: TagView::from_counts(tag_counts, times_seen),
            hourly: Bucket::series(&hourly, hours_from, 3600, 24),
            daily: Bucket::series(&daily, days_from, 86_400, 30),
            first_event: first.map(|e| EventSummaryView::new(e, issue_id)),
            latest_event: latest.map(|e| EventSummaryView::new(e, issue_id)),
        })
    }

    async fn first_event(
        &self,
        project_id: u64,
        hashes: &[String],
        order: EventOrder,
    ) -> Result<Option<shrike_store::EventSummary>, ApiError> {
        Ok(self
            .store
            .events_of_hashes(project_id, hashes, &EventFilter::default(), order, None, 1)
            .await?
            .pop())
    }

    /// Changes an issue's status; returns the issue as it is now.
    pub async fn update_issue(
        &self,
        caller: Caller,
        project_id: u64,
        issue_id: u64,
        change: &StatusChange,
    ) -> Result<IssueView, ApiError> {
        caller.require(Scope::Write)?;
        self.exists(project_id).await?;
        self.store
            .set_issue_status(project_id, issue_id, change)
            .await?;
        let (summary, _) = self.store.issue_summary(project_id, issue_id).await?;
        Ok(IssueView::from_summary(project_id, summary))
    }

    /// Changes the status of several issues (at most [`BULK_MAX`]); returns how many.
    pub async fn update_issues(
        &self,
        caller: Caller,
        project_id: u64,
        selection: Selection,
        change: &StatusChange,
    ) -> Result<usize, ApiError> {
        caller.require(Scope::Write)?;
        self.exists(project_id).await?;
        let mut ids = match selection {
            Selection::Ids(ids) => ids,
            Selection::Filter(filter, statuses) => {
                let filter = IssueFilter {
                    status: None,
                    offset: 0,
                    limit: u64::MAX,
                    ..filter
                };
                self.store
                    .list_issues(project_id, &filter)
                    .await?
                    .into_iter()
                    .filter(|i| statuses.is_empty() || statuses.contains(&i.status.status))
                    .map(|i| i.stats.issue_id)
                    .take(BULK_MAX)
                    .collect()
            }
        };
        ids.sort_unstable();
        ids.dedup();
        if ids.len() > BULK_MAX {
            return Err(ApiError::bad(
                "id",
                format!("at most {BULK_MAX} issues at a time"),
            ));
        }
        for &id in &ids {
            self.store.set_issue_status(project_id, id, change).await?;
        }
        Ok(ids.len())
    }

    /// Merges `sources` into `into`; returns the hashes moved.
    pub async fn merge(
        &self,
        caller: Caller,
        project_id: u64,
        into: u64,
        sources: &[u64],
    ) -> Result<Vec<String>, ApiError> {
        caller.require(Scope::Write)?;
        self.exists(project_id).await?;
        if sources.is_empty() {
            return Err(ApiError::bad("sources", "name at least one issue to merge"));
        }
        Ok(self.store.merge_issues(project_id, into, sources).await?)
    }

    /// Gives merged hashes back to their own issues; returns (hash, issue) pairs.
    pub async fn unmerge(
        &self,
        caller: Caller,
        project_id: u64,
        hashes: &[String],
    ) -> Result<Vec<(String, u64)>, ApiError> {
        caller.require(Scope::Write)?;
        self.exists(project_id).await?;
        if hashes.is_empty() {
            return Err(ApiError::bad("hashes", "name at least one grouping hash"));
        }
        Ok(self.store.unmerge_hashes(project_id, hashes).await?)
    }

    /// A page of an issue's events, newest first, from `cursor`.
    pub async fn issue_events(
        &self,
        caller: Caller,
        project_id: u64,
        issue_id: u64,
        filter: &EventFilter,
        cursor: Option<&str>,
        limit: u64,
    ) -> Result<Page<EventSummaryView>, ApiError> {
        caller.require(Scope::Read)?;
        self.exists(project_id).await?;
        let hashes = self.store.issue_hashes(project_id, issue_id).await?;
        let after = cursor.map(parse_event_cursor).transpose()?;
        let limit = limit.clamp(1, MAX_PAGE);
        let mut events = self
            .store
            .events_of_hashes(
                project_id,
                &hashes,
                filter,
                EventOrder::NewestFirst,
                after,
                limit + 1,
            )
            .await?;
        let more = events.len() as u64 > limit;
        events.truncate(limit as usize);
        let next = more
            .then(|| {
                events
                    .last()
                    .map(|e| format!("{}:{}", e.timestamp, e.event_id))
            })
            .flatten();
        Ok(Page {
            items: events
                .into_iter()
                .map(|e| EventSummaryView::new(e, issue_id))
                .collect(),
            next_cursor: next,
        })
    }

    /// The oldest or latest event of an issue.
    pub async fn issue_event(
        &self,
        caller: Caller,
        project_id: u64,
        issue_id: u64,
        order: EventOrder,
    ) -> Result<EventView, ApiError> {
        caller.require(Scope::Read)?;
        let hashes = self.store.issue_hashes(project_id, issue_id).await?;
        let event = self
            .first_event(project_id, &hashes, order)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("events of issue {issue_id}")))?;
        self.event(caller, project_id, event.event_id).await
    }

    /// One event, whole, with its attachments and its neighbours in its issue.
    pub async fn event(
        &self,
        caller: Caller,
        project_id: u64,
        event_id: Uuid,
    ) -> Result<EventView, ApiError> {
        caller.require(Scope::Read)?;
        self.exists(project_id).await?;
        let stored = self
            .store
            .event(project_id, event_id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("event {event_id}")))?;
        let summary = &stored.summary;
        let (owner, attachments) = tokio::try_join!(
            self.store
                .issue_of_hash(project_id, &summary.primary_hash, summary.issue_id),
            self.store.attachments(project_id, event_id)
        )?;
        let (issue_id, hashes) = owner;
        let here = Some((summary.timestamp, summary.event_id));
        let neighbour = |order| {
            let store = &self.store;
            let hashes = &hashes;
            async move {
                store
                    .event_keys_of_hashes(project_id, hashes, order, here, 1)
                    .await
                    .map(|keys| keys.first().map(|k| k.1))
            }
        };
        let (previous, next) = tokio::try_join!(
            neighbour(EventOrder::NewestFirst),
            neighbour(EventOrder::OldestFirst)
        )?;
        let attachments = attachments
            .into_iter()
            .map(|a| AttachmentView {
                id: a.attachment_id,
                name: a.filename,
                content_type: a.content_type,
                attachment_type: a.attachment_type,
                size: a.size,
            })
            .collect();
        EventView::new(stored, issue_id, previous, next, attachments)
    }

    /// An attachment's name, content type and bytes.
    pub async fn attachment(
        &self,
        caller: Caller,
        project_id: u64,
        event_id: Uuid,
        attachment_id: Uuid,
    ) -> Result<(AttachmentView, Vec<u8>), ApiError> {
        caller.require(Scope::Read)?;
        self.exists(project_id).await?;
        let info = self
            .store
            .attachments(project_id, event_id)
            .await?
            .into_iter()
            .find(|a| a.attachment_id == attachment_id)
            .ok_or_else(|| ApiError::NotFound(format!("attachment {attachment_id}")))?;
        let data = self
            .store
            .attachment_data(project_id, event_id, attachment_id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("attachment {attachment_id}")))?;
        Ok((
            AttachmentView {
                id: info.attachment_id,
                name: info.filename,
                content_type: info.content_type,
                attachment_type: info.attachment_type,
                size: info.size,
            },
            data,
        ))
    }
}

/// A status change from its name (as the JSON API and Sentry's API spell them).
pub fn status_change(
    status: &str,
    ignore_count: Option<u64>,
    ignore_until: Option<u32>,
) -> Result<StatusChange, ApiError> {
    Ok(match status {
        "resolved" => StatusChange::Resolve,
        "resolved_in_next_release" | "resolvedInNextRelease" => StatusChange::ResolveInNextRelease,
        "unresolved" => StatusChange::Unresolve,
        "ignored" | "muted" => StatusChange::Ignore {
            count: ignore_count,
            until: ignore_until,
        },
        other => {
            return Err(ApiError::bad(
                "status",
                format!(
                    "{other:?} is not one of resolved, resolved_in_next_release, ignored, unresolved"
                ),
            ));
        }
    })
}

/// A status filter from its name.
pub fn status_filter(name: &str) -> Result<IssueStatus, ApiError> {
    IssueStatus::ALL
        .into_iter()
        .find(|s| s.as_str() == name)
        .ok_or_else(|| {
            ApiError::bad(
                "status",
                format!(
                    "{name:?} is not one of unresolved, resolved, resolved_in_next_release, ignored"
                ),
            )
        })
}

fn valid_name(name: &str) -> Result<&str, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::bad(
            "name",
            "give 1 to 100 characters, no control characters",
        ));
    }
    Ok(name)
}

/// An events cursor: `timestamp:event_id` of the last event of the previous page.
fn parse_event_cursor(cursor: &str) -> Result<(u32, Uuid), ApiError> {
    let bad = || ApiError::bad("cursor", "not a cursor this API gave out");
    let (time, id) = cursor.split_once(':').ok_or_else(bad)?;
    Ok((
        time.parse().map_err(|_| bad())?,
        id.parse().map_err(|_| bad())?,
    ))
}

fn hour_start(now: u32) -> u32 {
    now - now % 3600
}

fn day_start(now: u32) -> u32 {
    now - now % 86_400
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_changes_by_name() {
        assert_eq!(
            status_change("resolved", None, None).ok(),
            Some(StatusChange::Resolve)
        );
        assert_eq!(
            status_change("ignored", Some(5), None).ok(),
            Some(StatusChange::Ignore {
                count: Some(5),
                until: None
            })
        );
        assert!(matches!(
            status_change("closed", None, None),
            Err(ApiError::BadRequest { name: "status", .. })
        ));
        assert_eq!(status_filter("ignored").ok(), Some(IssueStatus::Ignored));
        assert!(status_filter("open").is_err());
    }

    #[test]
    fn event_cursors_round_trip_and_reject_garbage() {
        let id = Uuid::new_v4();
        assert_eq!(parse_event_cursor(&format!("17:{id}")).ok(), Some((17, id)));
        for bad in ["", "17", "x:y", &format!("-1:{id}")] {
            assert!(parse_event_cursor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn page_sizes_default_and_are_bounded() {
        assert_eq!(page_limit(None).ok(), Some(25));
        assert_eq!(page_limit(Some(100)).ok(), Some(100));
        for bad in [0, 101] {
            assert!(matches!(
                page_limit(Some(bad)),
                Err(ApiError::BadRequest { name: "limit", .. })
            ));
        }
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(valid_name(" shop ").ok(), Some("shop"));
        assert!(valid_name("").is_err());
        assert!(valid_name("a\nb").is_err());
        assert!(valid_name(&"x".repeat(101)).is_err());
    }
}
