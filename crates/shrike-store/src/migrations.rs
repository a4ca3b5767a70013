//! Versioned schema migrations, embedded in the binary and applied in order by `shrike migrate` and
//! at start-up.
//!
//! Every statement is idempotent (`IF NOT EXISTS`), so a migration interrupted half-way is simply
//! applied again. ClickHouse 18.16 has no `ADD COLUMN IF NOT EXISTS`, so new columns are declared
//! as [`NewColumn`]s, which the runner adds only when `system.columns` lacks them. The schema must run on ClickHouse 18.16 (Debian's, what CI runs) and on current
//! ClickHouse; features newer than 18.16 (TTL, codecs, skipping indexes) must be gated on
//! [`ServerVersion`]. Never edit a released migration: add a new one.

/// A ClickHouse server version, for gating newer features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerVersion(pub u32, pub u32);

impl ServerVersion {
    /// Parses `SELECT version()` output such as `18.16.1` or `25.3.2.39`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split('.').map(|p| p.parse::<u32>().ok());
        Some(ServerVersion(parts.next()??, parts.next()??))
    }
}

/// One migration.
pub struct Migration {
    /// Strictly increasing version.
    pub version: u32,
    /// Short description.
    pub name: &'static str,
    /// Columns added to existing tables, before the statements run.
    pub columns: &'static [NewColumn],
    /// Builds the statements for a database and server version.
    pub statements: fn(db: &str, server: ServerVersion) -> Vec<String>,
}

/// A column added to an existing table (skipped when the table already has it).
pub struct NewColumn {
    /// The table.
    pub table: &'static str,
    /// The column name.
    pub name: &'static str,
    /// Type and default, e.g. `String DEFAULT ''`.
    pub definition: &'static str,
    /// A compression codec for servers that have them (20.1 and later), e.g. `ZSTD(3)`.
    pub codec: Option<&'static str>,
}

impl NewColumn {
    /// The column's definition for `server`.
    pub fn definition_for(&self, server: ServerVersion) -> String {
        match self.codec {
            Some(codec) if server >= CODECS => format!("{} CODEC({codec})", self.definition),
            _ => self.definition.to_owned(),
        }
    }
}

/// The first server version with column codecs that Shrike uses.
pub const CODECS: ServerVersion = ServerVersion(20, 1);

/// All migrations in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial schema",
        columns: &[],
        statements: initial,
    },
    Migration {
        version: 2,
        name: "cron monitor check-ins",
        columns: &[],
        statements: check_ins,
    },
    Migration {
        version: 3,
        name: "outcomes",
        columns: &[],
        statements: outcomes,
    },
    Migration {
        version: 4,
        name: "attachments",
        columns: &[],
        statements: attachments,
    },
    Migration {
        version: 5,
        name: "issue lifecycle: statuses, merged hashes, grouping variant",
        columns: &[NewColumn {
            table: "events",
            name: "grouping_variant",
            definition: "String DEFAULT ''",
            codec: None,
        }],
        statements: lifecycle,
    },
    Migration {
        version: 6,
        name: "the whole event",
        columns: &[NewColumn {
            table: "events",
            name: "body",
            // JSON of ~5 KB compresses about tenfold with zstd; on 18.16 the local server
            // compresses merged parts with zstd instead (`shrike-store` local config).
            definition: "String DEFAULT ''",
            codec: Some("ZSTD(3)"),
        }],
        statements: nothing,
    },
    Migration {
        version: 7,
        name: "API tokens; events by id; deleted projects",
        columns: &[NewColumn {
            table: "projects",
            name: "deleted",
            definition: "UInt8 DEFAULT 0",
            codec: None,
        }],
        statements: api,
    },
    Migration {
        version: 8,
        name: "retention: every table of event data partitioned by (retention_days, week)",
        columns: &[
            RETENTION_DAYS_OF("events"),
            RETENTION_DAYS_OF("event_index"),
            RETENTION_DAYS_OF("attachment_chunks"),
            RETENTION_DAYS_OF("check_ins"),
            RETENTION_DAYS_OF("outcomes"),
        ],
        statements: retention,
    },
    Migration {
        version: 9,
        name: "pre-aggregated counts, tag values and event order per grouping hash",
        columns: &[],
        statements: aggregates,
    },
    Migration {
        version: 10,
        name: "project settings",
        columns: &[],
        statements: project_settings,
    },
];

/// The column that says how long a row is kept (`crate::retention`).
#[allow(non_snake_case)]
const fn RETENTION_DAYS_OF(table: &'static str) -> NewColumn {
    NewColumn {
        table,
        name: "retention_days",
        definition: "UInt16 DEFAULT 90",
        codec: None,
    }
}

/// Re-partitions each table of event data by `(retention_days, toMonday(time))` so that expired
/// data goes by whole partitions (a table's partition key cannot be altered): a copy with the new
/// key, the rows copied, the two swapped by name, the old one dropped. Safe to run again after an
/// interruption (a repeated copy adds duplicates that the tables' ReplacingMergeTree collapses).
/// Writers must be stopped meanwhile: rows inserted into the old table during the copy are lost.
fn retention(db: &str, _server: ServerVersion) -> Vec<String> {
    // The index is filled from `events` by name: detached while `events` is swapped.
    let mut statements = vec![format!("DROP TABLE IF EXISTS {db}.event_index_mv")];
    let tables = [
        (
            "events",
            "timestamp",
            "ReplacingMergeTree(keep_first)",
            "project_id, timestamp, event_id",
        ),
        (
            "event_index",
            "timestamp",
            "ReplacingMergeTree()",
            "project_id, event_id",
        ),
        (
            "attachment_chunks",
            "received",
            "ReplacingMergeTree()",
            "project_id, event_id, attachment_id, chunk_index",
        ),
        (
            "check_ins",
            "received",
            "ReplacingMergeTree()",
            "project_id, monitor_slug, received, check_in_id, status",
        ),
        (
            "outcomes",
            "timestamp",
            "ReplacingMergeTree()",
            "project_id, timestamp, category, outcome, reason, id",
        ),
    ];
    for (table, time, engine, order) in tables {
        statements.extend([
            format!("DROP TABLE IF EXISTS {db}.{table}_old"),
            format!(
                "CREATE TABLE IF NOT EXISTS {db}.{table}_r AS {db}.{table} ENGINE = {engine}
                 PARTITION BY (retention_days, toMonday({time})) ORDER BY ({order})"
            ),
            format!("INSERT INTO {db}.{table}_r SELECT * FROM {db}.{table}"),
            format!(
                "RENAME TABLE {db}.{table} TO {db}.{table}_old, {db}.{table}_r TO {db}.{table}"
            ),
            format!("DROP TABLE {db}.{table}_old"),
        ]);
    }
    statements.push(format!(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.event_index_mv TO {db}.event_index
         AS SELECT project_id, event_id, timestamp, primary_hash, retention_days FROM {db}.events"
    ));
    statements
}

/// The user an event counts for: id, else e-mail, else user name, else IP address (empty: none).
pub(crate) const USER_KEY: &str = "multiIf(user_id != '', concat('id:', user_id),
    user_email != '', concat('email:', user_email),
    user_username != '', concat('username:', user_username),
    user_ip != '', concat('ip:', user_ip), '')";

/// Per grouping hash, what the API and the CLI read instead of scanning a project's events:
/// counts, first and last seen, users and latest release per hour and per day (UTC), tag values
/// per week, and the hash's events in time order. Materialized views fill them as events are
/// inserted; `Store::insert_events` inserts each event once, so the counts are exact. Each is
/// partitioned by retention like `events`, so its rows expire with the events they count.
fn aggregates(db: &str, _server: ServerVersion) -> Vec<String> {
    let mut statements = Vec::new();
    for (table, span) in [("hash_hours", 3_600), ("hash_days", 86_400)] {
        let bucket = format!("toDateTime(intDiv(toUInt32(timestamp), {span}) * {span})");
        let select = format!(
            "SELECT project_id, primary_hash, {bucket} AS bucket, retention_days,
                    any(issue_id) AS issue_id, countState() AS count_state,
                    minState(timestamp) AS first_state, maxState(timestamp) AS last_state,
                    uniqIfState({USER_KEY}, {USER_KEY} != '') AS users_state,
                    argMaxIfState(release, timestamp, release != '') AS release_state
             FROM {db}.events{{final}}
             GROUP BY project_id, primary_hash, bucket, retention_days"
        );
        statements.extend([
            format!(
                "CREATE TABLE IF NOT EXISTS {db}.{table} (
                    project_id UInt64,
                    primary_hash String,
                    bucket DateTime,
                    retention_days UInt16,
                    issue_id UInt64,
                    count_state AggregateFunction(count),
                    first_state AggregateFunction(min, DateTime),
                    last_state AggregateFunction(max, DateTime),
                    users_state AggregateFunction(uniqIf, String, UInt8),
                    release_state AggregateFunction(argMaxIf, String, DateTime, UInt8)
                ) ENGINE = AggregatingMergeTree()
                PARTITION BY (retention_days, toMonday(bucket))
                ORDER BY (project_id, primary_hash, bucket, issue_id)"
            ),
            backfill(db, table, &select.replace("{final}", " FINAL")),
            format!(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{table}_mv TO {db}.{table} AS {}",
                select.replace("{final}", "")
            ),
        ]);
    }
    let tags = "SELECT project_id, primary_hash, tags.key AS key, tags.value AS value,
                toMonday(timestamp) AS week, retention_days, toUInt64(1) AS count
         FROM {db}.events{final} ARRAY JOIN tags"
        .replace("{db}", db);
    let order = "SELECT project_id, primary_hash, timestamp, event_id, retention_days
         FROM {db}.events{final}"
        .replace("{db}", db);
    statements.extend([
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.hash_tags (
                project_id UInt64,
                primary_hash String,
                key String,
                value String,
                week Date,
                retention_days UInt16,
                count UInt64
            ) ENGINE = SummingMergeTree(count)
            PARTITION BY (retention_days, week)
            ORDER BY (project_id, primary_hash, key, value, week)"
        ),
        backfill(db, "hash_tags", &tags.replace("{final}", " FINAL")),
        format!(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.hash_tags_mv TO {db}.hash_tags AS {}",
            tags.replace("{final}", "")
        ),
        // An issue's events newest or oldest first, and an event's neighbours, by primary key.
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.hash_events (
                project_id UInt64,
                primary_hash String,
                timestamp DateTime,
                event_id UUID,
                retention_days UInt16
            ) ENGINE = ReplacingMergeTree()
            PARTITION BY (retention_days, toMonday(timestamp))
            ORDER BY (project_id, primary_hash, timestamp, event_id)"
        ),
        backfill(db, "hash_events", &order.replace("{final}", "")),
        format!(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.hash_events_mv TO {db}.hash_events AS {}",
            order.replace("{final}", "")
        ),
    ]);
    statements
}

/// Fills a new aggregate from the events stored before it existed, once: only while it is
/// empty (migrations run with the writers stopped, before its view exists).
fn backfill(db: &str, table: &str, select: &str) -> String {
    format!(
        "INSERT INTO {db}.{table} SELECT * FROM ({select})
         WHERE (SELECT count() FROM {db}.{table}) = 0"
    )
}

fn project_settings(db: &str, _server: ServerVersion) -> Vec<String> {
    // One JSON document per project (`crate::settings`); the latest `version` wins.
    vec![format!(
        "CREATE TABLE IF NOT EXISTS {db}.project_settings (
            project_id UInt64,
            settings String,
            version UInt64
        ) ENGINE = ReplacingMergeTree(version) ORDER BY project_id"
    )]
}

fn api(db: &str, _server: ServerVersion) -> Vec<String> {
    vec![
        // API tokens: only the SHA-256 of each token is kept (tokens are 32 random bytes, so a
        // fast hash is enough: there is nothing to guess from). Latest `version` wins; a revoked
        // token keeps its row with `revoked = 1`.
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.api_tokens (
                id UInt64,
                name String,
                token_hash String,
                scope String,
                created_at DateTime,
                revoked UInt8,
                version UInt64
            ) ENGINE = ReplacingMergeTree(version) ORDER BY id"
        ),
        // Where an event is, by its id: `events` is ordered by time, so finding one event by id
        // alone would read the project's whole table. A materialized view fills this index as
        // events are inserted; the time it gives then reads `events` by its primary key.
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.event_index (
                project_id UInt64,
                event_id UUID,
                timestamp DateTime,
                primary_hash String
            ) ENGINE = ReplacingMergeTree()
            PARTITION BY toDate(timestamp)
            ORDER BY (project_id, event_id)"
        ),
        format!(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.event_index_mv TO {db}.event_index
             AS SELECT project_id, event_id, timestamp, primary_hash FROM {db}.events"
        ),
        // Events stored before the index existed (a repeated run only adds copies that merge away).
        format!(
            "INSERT INTO {db}.event_index SELECT project_id, event_id, timestamp, primary_hash
             FROM {db}.events WHERE event_id NOT IN (SELECT event_id FROM {db}.event_index)"
        ),
    ]
}

fn nothing(_db: &str, _server: ServerVersion) -> Vec<String> {
    Vec::new()
}

fn lifecycle(db: &str, _server: ServerVersion) -> Vec<String> {
    vec![
        // Every status change of an issue, written by the CLI (resolve, ignore, ...) and by the
        // grouper (regressions). The row with the highest `version` is the current status; see
        // `shrike_issues::lifecycle` for the meaning of each field. `inserted_at` is the server's clock,
        // which the alerter compares with its windows.
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.issue_status (
                project_id UInt64,
                issue_id UInt64,
                status String,
                substatus String,
                resolution UInt64,
                resolved_in_release String,
                ignore_until_count UInt64,
                ignore_count_base UInt64,
                ignore_until DateTime,
                regression_event UUID,
                version UInt64,
                inserted_at DateTime DEFAULT now()
            ) ENGINE = ReplacingMergeTree(version) ORDER BY (project_id, issue_id)"
        ),
        // Which issue a grouping hash belongs to when it is not its own (merges); a hash without
        // a row belongs to the issue its own id names. Latest `version` wins.
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.issue_hashes (
                project_id UInt64,
                primary_hash String,
                issue_id UInt64,
                version UInt64
            ) ENGINE = ReplacingMergeTree(version) ORDER BY (project_id, primary_hash)"
        ),
    ]
}

fn attachments(db: &str, _server: ServerVersion) -> Vec<String> {
    // Files attached to events, in chunks of at most 512 KiB; read one back with
    // `arrayStringConcat(groupArray(data))` over its chunks ordered by `chunk_index`.
    vec![format!(
        "CREATE TABLE IF NOT EXISTS {db}.attachment_chunks (
            project_id UInt64,
            event_id UUID,
            attachment_id UUID,
            filename String,
            content_type String,
            attachment_type String,
            chunk_index UInt32,
            chunk_count UInt32,
            size UInt64,
            data String,
            received DateTime
        ) ENGINE = ReplacingMergeTree()
        PARTITION BY toDate(received)
        ORDER BY (project_id, event_id, attachment_id, chunk_index)"
    )]
}

fn outcomes(db: &str, _server: ServerVersion) -> Vec<String> {
    // What happened to received items, per project, category, outcome, reason and minute. Each
    // message has a unique id, so a redelivered message collapses; sum `quantity` over FINAL.
    vec![format!(
        "CREATE TABLE IF NOT EXISTS {db}.outcomes (
            project_id UInt64,
            timestamp DateTime,
            category String,
            outcome String,
            reason String,
            quantity UInt64,
            id UUID
        ) ENGINE = ReplacingMergeTree()
        PARTITION BY toDate(timestamp)
        ORDER BY (project_id, timestamp, category, outcome, reason, id)"
    )]
}

fn check_ins(db: &str, _server: ServerVersion) -> Vec<String> {
    // One row per check-in report; an `in_progress` check-in and its `ok` share `check_in_id`.
    // Redeliveries collapse: every field, `received` included, comes from the same message.
    vec![format!(
        "CREATE TABLE IF NOT EXISTS {db}.check_ins (
            project_id UInt64,
            monitor_slug String,
            check_in_id UUID,
            status String,
            duration Nullable(Float64),
            environment String,
            release String,
            received DateTime,
            inserted_at DateTime DEFAULT now()
        ) ENGINE = ReplacingMergeTree()
        PARTITION BY toDate(received)
        ORDER BY (project_id, monitor_slug, received, check_in_id, status)"
    )]
}

fn initial(db: &str, _server: ServerVersion) -> Vec<String> {
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.projects (
                id UInt64,
                name String,
                created_at DateTime,
                version UInt64
            ) ENGINE = ReplacingMergeTree(version) ORDER BY id"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.project_keys (
                public_key String,
                project_id UInt64,
                active UInt8,
                created_at DateTime,
                version UInt64
            ) ENGINE = ReplacingMergeTree(version) ORDER BY public_key"
        ),
        // One row per event. ReplacingMergeTree on (project_id, timestamp, event_id) collapses a
        // redelivered event: every field of a redelivery is identical, timestamp included, because
        // it is derived from the same raw message. `keep_first` makes merges keep the earliest
        // copy, so an event's `inserted_at` never moves forward (the alerter's windows rely on
        // it). Readers count with uniqExact(event_id) or FINAL so unmerged duplicates never show.
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.events (
                project_id UInt64,
                event_id UUID,
                timestamp DateTime,
                received DateTime,
                inserted_at DateTime DEFAULT now(),
                keep_first UInt32 DEFAULT 4294967295 - toUInt32(inserted_at),
                issue_id UInt64,
                primary_hash String,
                platform String,
                level String,
                logger String,
                transaction String,
                server_name String,
                release String,
                environment String,
                message String,
                title String,
                culprit String,
                exception_type String,
                exception_value String,
                frame_filenames Array(String),
                frame_functions Array(String),
                frame_modules Array(String),
                frame_linenos Array(UInt32),
                frame_in_app Array(UInt8),
                tags Nested(key String, value String),
                user_id String,
                user_email String,
                user_username String,
                user_ip String,
                request_url String,
                request_method String,
                sdk_name String,
                sdk_version String
            ) ENGINE = ReplacingMergeTree(keep_first)
            PARTITION BY toDate(timestamp)
            ORDER BY (project_id, timestamp, event_id)"
        ),
        // Descriptive fields of an issue; counts and first/last seen come from `events`.
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.issues (
                project_id UInt64,
                issue_id UInt64,
                primary_hash String,
                title String,
                culprit String,
                type String,
                value String,
                level String,
                platform String,
                version UInt64
            ) ENGINE = ReplacingMergeTree(version) ORDER BY (project_id, issue_id)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.alert_state (
                check_name String,
                project_id UInt64,
                watermark DateTime,
                version UInt64
            ) ENGINE = ReplacingMergeTree(version) ORDER BY (check_name, project_id)"
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_strictly_increase() {
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
        assert_eq!(MIGRATIONS[0].version, 1);
    }

    #[test]
    fn parses_server_versions() {
        assert_eq!(ServerVersion::parse("18.16.1"), Some(ServerVersion(18, 16)));
        assert_eq!(
            ServerVersion::parse("25.3.2.39\n"),
            Some(ServerVersion(25, 3))
        );
        assert_eq!(ServerVersion::parse("x"), None);
        assert!(ServerVersion(18, 16) < ServerVersion(20, 1));
    }

    #[test]
    fn codecs_only_where_the_server_has_them() {
        let body = MIGRATIONS
            .iter()
            .flat_map(|m| m.columns)
            .find(|c| c.name == "body")
            .expect("the whole event's column");
        assert_eq!(
            body.definition_for(ServerVersion(18, 16)),
            "String DEFAULT ''"
        );
        assert_eq!(
            body.definition_for(ServerVersion(25, 3)),
            "String DEFAULT '' CODEC(ZSTD(3))"
        );
    }

    #[test]
    fn statements_name_the_database() {
        for m in MIGRATIONS {
            for s in (m.statements)("shrike_x", ServerVersion(18, 16)) {
                assert!(s.contains("shrike_x."), "{s}");
            }
        }
    }
}
