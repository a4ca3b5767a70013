//! ClickHouse access for Shrike: the client, schema migrations, row types, writers and the queries
//! the CLI and the alerter run.
//!
//! All SQL with values from outside goes through the client's `?` binding; table names come only
//! from the configured database name, which is validated. Inserts are RowBinary batches; callers
//! batch (one insert per second per table is the target) rather than inserting row by row.

mod config;
mod events;
mod issues;
pub mod local;
pub mod migrations;
mod retention;
mod rows;
mod settings;
mod tokens;

pub use config::{ClickHouseConfig, redact_url};
pub use events::{
    AttachmentInfo, EventFilter, EventKey, EventOrder, EventSummary, StoredEvent, TagValueCount,
};
pub use issues::{IssueFilter, IssueSort};
pub use retention::{Expired, RetentionConfig};
pub use rows::*;
pub use tokens::{ApiTokenRow, TOKEN_PREFIX, token_hash};

use clickhouse::Client;
use migrations::{MIGRATIONS, ServerVersion};
use serde::Deserialize;
use std::time::{SystemTime, UNIX_EPOCH};

/// Connection settings for ClickHouse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// HTTP URL, e.g. `http://127.0.0.1:8123`.
    pub url: String,
    /// Database holding Shrike's tables.
    pub database: String,
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
    /// LZ4-compress inserts and results: worth it across a network, only CPU on loopback.
    pub compression: bool,
}

/// Errors talking to ClickHouse.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The ClickHouse client or server reported an error.
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    /// The database name is not a plain identifier.
    #[error("invalid database name {0:?}: use letters, digits and underscores")]
    DatabaseName(String),
    /// `SELECT version()` returned something unexpected.
    #[error("unrecognised clickhouse version {0:?}")]
    Version(String),
    /// No project with that name or id.
    #[error("no project {0}")]
    NoProject(String),
    /// The project has no issue with that id.
    #[error("no issue {0} in this project")]
    NoIssue(u64),
    /// The issue was merged into another one; act on that one instead.
    #[error("issue {issue} was merged into issue {into}")]
    Merged {
        /// The issue asked for.
        issue: u64,
        /// The issue that owns its hashes now.
        into: u64,
    },
    /// An issue cannot be merged into itself.
    #[error("cannot merge issue {0} into itself")]
    SelfMerge(u64),
    /// The project has no issue with that grouping hash.
    #[error("no grouping hash {0:?} in this project")]
    NoHash(String),
    /// The hash already belongs to its own issue.
    #[error("hash {0:?} is not merged into another issue")]
    NotMerged(String),
}

/// The result type of this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A handle to Shrike's ClickHouse database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// Connection without a default database, for creating it.
    admin: Client,
    /// Connection with the database selected; inserts name bare tables.
    client: Client,
    db: String,
    /// How long each project's rows are kept: stamped on every row inserted. The configuration
    /// file's, with the projects' own settings over it ([`Store::refresh_retention`]).
    retention: settings::SharedRetention,
}

/// Held while the next id of a project or token is chosen (`max(id) + 1`) and its row written,
/// so concurrent creations in this process never share an id. (Two processes creating at the
/// same moment still could: create projects and tokens from one place at a time.)
static NEXT_ID: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The tables holding a project's data (what deleting a project deletes).
const PROJECT_DATA: [&str; 14] = [
    "events",
    "event_index",
    "hash_hours",
    "hash_days",
    "hash_tags",
    "hash_events",
    "project_settings",
    "issues",
    "issue_status",
    "issue_hashes",
    "check_ins",
    "outcomes",
    "attachment_chunks",
    "alert_state",
];

/// A database name is a plain identifier: it is the one name put into SQL text.
fn valid_database(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Current Unix time in milliseconds, used as row version.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Store {
    /// Creates a handle; no connection is made until the first query.
    pub fn new(config: &StoreConfig) -> Result<Self> {
        if !valid_database(&config.database) {
            return Err(StoreError::DatabaseName(config.database.clone()));
        }
        // Validation needs RowBinaryWithNamesAndTypes, which ClickHouse 18.16 lacks.
        let client = Client::default()
            .with_url(&config.url)
            .with_user(&config.user)
            .with_password(&config.password)
            .with_compression(if config.compression {
                clickhouse::Compression::Lz4
            } else {
                clickhouse::Compression::None
            })
            .with_validation(false);
        Ok(Store {
            admin: client.clone(),
            client: client.with_database(&config.database),
            db: config.database.clone(),
            retention: Default::default(),
        })
    }

    /// A handle on another database of the same server (validated like the configured one).
    pub fn sibling(&self, database: &str) -> Result<Store> {
        if !valid_database(database) {
            return Err(StoreError::DatabaseName(database.to_owned()));
        }
        Ok(Store {
            admin: self.admin.clone(),
            client: self.admin.clone().with_database(database),
            db: database.to_owned(),
            retention: self.retention.clone(),
        })
    }

    /// The same store, stamping rows with `retention`'s days (default: 90 for every project)
    /// unless a project's own settings say otherwise.
    pub fn with_retention(mut self, retention: RetentionConfig) -> Self {
        self.retention = settings::SharedRetention::new(retention);
        self
    }

    /// Inserts `rows` into `table` in one request (nothing for an empty batch).
    async fn insert_rows<T>(&self, table: &str, rows: &[T]) -> Result<()>
    where
        T: clickhouse::RowOwned + clickhouse::RowWrite,
    {
        self.insert_each::<T, &T>(table, rows).await
    }

    async fn insert_each<T, R>(&self, table: &str, rows: impl IntoIterator<Item = R>) -> Result<()>
    where
        T: clickhouse::RowOwned + clickhouse::RowWrite,
        R: std::borrow::Borrow<T>,
    {
        let mut rows = rows.into_iter().peekable();
        if rows.peek().is_none() {
            return Ok(());
        }
        // Rows are serialized into the request as they come, so a caller producing them lazily
        // never holds the whole batch decoded.
        let mut insert = self.client.insert::<T>(table).await?;
        for row in rows {
            insert.write(row.borrow()).await?;
        }
        Ok(insert.end().await?)
    }

    /// The database name.
    pub fn database(&self) -> &str {
        &self.db
    }

    /// The server's version.
    pub async fn server_version(&self) -> Result<ServerVersion> {
        let text: String = self.admin.query("SELECT version()").fetch_one().await?;
        ServerVersion::parse(&text).ok_or(StoreError::Version(text))
    }

    /// The compression codec of a column of Shrike's database (empty: the server default).
    pub async fn column_codec(&self, table: &str, column: &str) -> Result<String> {
        Ok(self
            .client
            .query(
                "SELECT compression_codec FROM system.columns
                 WHERE database = ? AND table = ? AND name = ?",
            )
            .bind(&self.db)
            .bind(table)
            .bind(column)
            .fetch_one()
            .await?)
    }

    /// The server's clock, Unix seconds.
    pub async fn server_now(&self) -> Result<u32> {
        Ok(self
            .client
            .query("SELECT toUInt32(now())")
            .fetch_one()
            .await?)
    }

    /// Creates the database and applies every pending migration; returns the versions applied.
    pub async fn migrate(&self) -> Result<Vec<u32>> {
        self.migrate_through(u32::MAX).await
    }

    /// Applies the pending migrations up to version `last` (for testing an upgrade with data).
    pub async fn migrate_through(&self, last: u32) -> Result<Vec<u32>> {
        let db = &self.db;
        self.admin
            .query(&format!("CREATE DATABASE IF NOT EXISTS {db}"))
            .execute()
            .await?;
        self.client
            .query(&format!(
                "CREATE TABLE IF NOT EXISTS {db}.schema_migrations
                 (version UInt32, name String, applied_at DateTime) ENGINE = MergeTree() ORDER BY version"
            ))
            .execute()
            .await?;
        let applied: Vec<u32> = self
            .client
            .query(&format!(
                "SELECT DISTINCT version FROM {db}.schema_migrations"
            ))
            .fetch_all()
            .await?;
        let server = self.server_version().await?;
        let mut done = Vec::new();
        let pending = MIGRATIONS
            .iter()
            .filter(|m| m.version <= last && !applied.contains(&m.version));
        for migration in pending {
            for column in migration.columns {
                let present: u64 = self
                    .client
                    .query(
                        "SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?",
                    )
                    .bind(db)
                    .bind(column.table)
                    .bind(column.name)
                    .fetch_one()
                    .await?;
                if present == 0 {
                    let (table, name) = (column.table, column.name);
                    let definition = column.definition_for(server);
                    self.client
                        .query(&format!(
                            "ALTER TABLE {db}.{table} ADD COLUMN {name} {definition}"
                        ))
                        .execute()
                        .await?;
                }
            }
            for statement in (migration.statements)(db, server) {
                self.client.query(&statement).execute().await?;
            }
            self.client
                .query(&format!("INSERT INTO {db}.schema_migrations (version, name, applied_at) VALUES (?, ?, now())"))
                .bind(migration.version)
                .bind(migration.name)
                .execute()
                .await?;
            tracing::info!(
                version = migration.version,
                name = migration.name,
                "applied migration"
            );
            done.push(migration.version);
        }
        Ok(done)
    }

    /// Creates a project with one active key.
    pub async fn create_project(&self, name: &str) -> Result<(Project, ProjectKey)> {
        let _one_at_a_time = NEXT_ID.lock().await;
        let db = &self.db;
        let next: u64 = self
            .client
            .query(&format!("SELECT max(id) + 1 FROM {db}.projects"))
            .fetch_one()
            .await?;
        let project = Project {
            id: next.max(1),
            name: name.to_owned(),
        };
        let now = (now_ms() / 1000) as u32;
        self.insert_rows(
            "projects",
            &[ProjectRow {
                id: project.id,
                name: project.name.clone(),
                created_at: now,
                version: now_ms(),
                deleted: 0,
            }],
        )
        .await?;
        let key = self.create_key(project.id).await?;
        Ok((project, key))
    }

    /// Adds a new active key to a project.
    pub async fn create_key(&self, project_id: u64) -> Result<ProjectKey> {
        let public_key = hex::encode(rand::random::<[u8; 16]>());
        let now = (now_ms() / 1000) as u32;
        self.insert_rows(
            "project_keys",
            &[ProjectKeyRow {
                public_key: public_key.clone(),
                project_id,
                active: 1,
                created_at: now,
                version: now_ms(),
            }],
        )
        .await?;
        Ok(ProjectKey {
            public_key,
            project_id,
            active: true,
        })
    }

    /// Enables or disables a key; returns false when there is no such key. Ingest notices within
    /// `ingest.key_refresh_secs`.
    pub async fn set_key_active(&self, public_key: &str, active: bool) -> Result<bool> {
        let Some(key) = self
            .keys()
            .await?
            .into_iter()
            .find(|k| k.public_key == public_key)
        else {
            return Ok(false);
        };
        self.insert_rows(
            "project_keys",
            &[ProjectKeyRow {
                public_key: key.public_key,
                project_id: key.project_id,
                active: u8::from(active),
                created_at: (now_ms() / 1000) as u32,
                version: now_ms(),
            }],
        )
        .await?;
        Ok(true)
    }

    /// Deletes a key: disabled at once (ingest refuses it within `ingest.key_refresh_secs`),
    /// then its rows deleted (a ClickHouse mutation, in the background). False when there is no
    /// such key.
    pub async fn delete_key(&self, public_key: &str) -> Result<bool> {
        if !self.set_key_active(public_key, false).await? {
            return Ok(false);
        }
        self.client
            .query(&format!(
                "ALTER TABLE {}.project_keys DELETE WHERE public_key = ?",
                self.db
            ))
            .bind(public_key)
            .execute()
            .await?;
        Ok(true)
    }

    /// Every project not deleted.
    pub async fn projects(&self) -> Result<Vec<Project>> {
        Ok(self
            .client
            .query(&format!(
                "SELECT id, argMax(name, version), argMax(deleted, version) AS gone
                 FROM {}.projects GROUP BY id HAVING gone = 0 ORDER BY id",
                self.db
            ))
            .fetch_all::<(u64, String, u8)>()
            .await?
            .into_iter()
            .map(|(id, name, _)| Project { id, name })
            .collect())
    }

    /// The project with this id.
    pub async fn project(&self, id: u64) -> Result<Option<Project>> {
        Ok(self.projects().await?.into_iter().find(|p| p.id == id))
    }

    /// Renames a project; false when there is no such project.
    pub async fn rename_project(&self, id: u64, name: &str) -> Result<bool> {
        if self.project(id).await?.is_none() {
            return Ok(false);
        }
        self.project_row(id, name, 0).await?;
        Ok(true)
    }

    /// Deletes a project: its keys stop working, it leaves every listing, and its events,
    /// issues, check-ins, outcomes and attachments are deleted (ClickHouse mutations, which run
    /// in the background). False when there is no such project.
    pub async fn delete_project(&self, id: u64) -> Result<bool> {
        let Some(project) = self.project(id).await? else {
            return Ok(false);
        };
        for key in self
            .keys()
            .await?
            .into_iter()
            .filter(|k| k.project_id == id)
        {
            self.set_key_active(&key.public_key, false).await?;
        }
        // The data first, the project's row last: a failure half-way leaves the project listed,
        // so deleting it again finishes the job.
        for table in PROJECT_DATA {
            self.client
                .query(&format!(
                    "ALTER TABLE {}.{table} DELETE WHERE project_id = ?",
                    self.db
                ))
                .bind(id)
                .execute()
                .await?;
        }
        self.project_row(id, &project.name, 1).await?;
        Ok(true)
    }

    async fn project_row(&self, id: u64, name: &str, deleted: u8) -> Result<()> {
        self.insert_rows(
            "projects",
            &[ProjectRow {
                id,
                name: name.to_owned(),
                created_at: (now_ms() / 1000) as u32,
                version: now_ms(),
                deleted,
            }],
        )
        .await
    }

    /// The project with this name.
    pub async fn project_by_name(&self, name: &str) -> Result<Option<Project>> {
        Ok(self.projects().await?.into_iter().find(|p| p.name == name))
    }

    /// Every key with its latest state.
    pub async fn keys(&self) -> Result<Vec<ProjectKey>> {
        let rows: Vec<(String, u64, u8)> = self
            .client
            .query(&format!(
                "SELECT public_key, argMax(project_id, version), argMax(active, version)
                 FROM {}.project_keys GROUP BY public_key",
                self.db
            ))
            .fetch_all()
            .await?;
        Ok(rows
            .into_iter()
            .map(|(public_key, project_id, active)| ProjectKey {
                public_key,
                project_id,
                active: active != 0,
            })
            .collect())
    }

    /// Inserts a batch of events in one request, each event once: those already stored (a
    /// redelivery) and repeats within the batch are left out, so the counts that materialized
    /// views aggregate from inserts stay exact. Each row gets its project's retention
    /// (`retention_days`) here. Holds the batch decoded: see [`Store::insert_new_events`].
    pub async fn insert_events<R>(&self, rows: impl IntoIterator<Item = R>) -> Result<()>
    where
        R: std::borrow::BorrowMut<EventRow>,
    {
        let rows: Vec<R> = rows.into_iter().collect();
        let keys: Vec<EventKey> = rows
            .iter()
            .map(|row| {
                let r = row.borrow();
                (r.project_id, r.timestamp, r.event_id)
            })
            .collect();
        self.insert_new_events(&keys, rows).await
    }

    /// [`Store::insert_events`] for a caller that knows each row's key beforehand (`keys`, in any
    /// order) and produces the rows lazily: each is serialized as the iterator yields it.
    ///
    /// Two writers inserting the same event at the same moment (a partition's old and new owner
    /// during a rebalance) can both find it absent: it then counts twice in the pre-aggregated
    /// counts, while its two rows still collapse into one in `events`.
    pub async fn insert_new_events<R>(
        &self,
        keys: &[EventKey],
        rows: impl IntoIterator<Item = R>,
    ) -> Result<()>
    where
        R: std::borrow::BorrowMut<EventRow>,
    {
        let mut seen = self.stored_events(keys).await?;
        let retention = self.retention.current();
        let fresh = rows.into_iter().filter_map(|mut row| {
            let r = row.borrow_mut();
            if !seen.insert((r.project_id, r.event_id)) {
                return None;
            }
            r.retention_days = retention.days(r.project_id);
            Some(row)
        });
        self.insert_each::<EventRow, R>("events", fresh).await
    }

    /// Inserts (or refreshes) issue descriptions in one request.
    pub async fn upsert_issues(&self, rows: &[shrike_issues::IssueRow]) -> Result<()> {
        self.insert_rows("issues", rows).await
    }

    /// The persisted watermark of an alert check for a project, Unix seconds.
    pub async fn alert_watermark(&self, check: &str, project_id: u64) -> Result<Option<u32>> {
        #[derive(clickhouse::Row, Deserialize)]
        struct Watermark {
            watermark: u32,
        }
        let row: Option<Watermark> = self
            .client
            .query(&format!(
                "SELECT toUInt32(argMax(watermark, version)) AS watermark FROM {}.alert_state
                 WHERE check_name = ? AND project_id = ? GROUP BY check_name, project_id",
                self.db
            ))
            .bind(check)
            .bind(project_id)
            .fetch_optional()
            .await?;
        Ok(row.map(|r| r.watermark))
    }

    /// Persists the watermark of an alert check for a project.
    pub async fn set_alert_watermark(
        &self,
        check: &str,
        project_id: u64,
        watermark: u32,
    ) -> Result<()> {
        self.insert_rows(
            "alert_state",
            &[AlertStateRow {
                check_name: check.to_owned(),
                project_id,
                watermark,
                version: now_ms(),
            }],
        )
        .await
    }

    /// Inserts check-ins in one request.
    pub async fn insert_check_ins(&self, rows: &[CheckInRow]) -> Result<()> {
        let rows = self.stamped(rows, |r| r.project_id, |r, days| r.retention_days = days);
        self.insert_rows("check_ins", &rows).await
    }

    /// Copies of `rows` with their project's retention.
    fn stamped<T: Clone>(
        &self,
        rows: &[T],
        project: impl Fn(&T) -> u64,
        set: impl Fn(&mut T, u16),
    ) -> Vec<T> {
        let retention = self.retention.current();
        rows.iter()
            .map(|row| {
                let days = retention.days(project(row));
                let mut row = row.clone();
                set(&mut row, days);
                row
            })
            .collect()
    }

    /// Inserts attachment chunks in one request.
    pub async fn insert_attachment_chunks(&self, rows: &[AttachmentChunkRow]) -> Result<()> {
        let rows = self.stamped(rows, |r| r.project_id, |r, days| r.retention_days = days);
        self.insert_rows("attachment_chunks", &rows).await
    }

    /// Inserts outcomes in one request.
    pub async fn insert_outcomes(&self, rows: &[OutcomeRow]) -> Result<()> {
        let rows = self.stamped(rows, |r| r.project_id, |r, days| r.retention_days = days);
        self.insert_rows("outcomes", &rows).await
    }

    /// Distinct events stored for a project (deduplicated by event id).
    pub async fn count_events(&self, project_id: u64) -> Result<u64> {
        Ok(self
            .client
            .query(&format!(
                "SELECT uniqExact(event_id) FROM {}.events WHERE project_id = ?",
                self.db
            ))
            .bind(project_id)
            .fetch_one()
            .await?)
    }
}
