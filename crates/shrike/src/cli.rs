//! Command-line arguments.

use clap::{Parser, Subcommand};
use shrike_issues::IssueStatus;
use std::path::PathBuf;

/// Shrike: a Sentry-compatible error-ingest pipeline.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Config file (default: ./shrike.toml when it exists).
    #[arg(long, global = true, env = "SHRIKE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Kafka bootstrap servers (overrides `kafka.bootstrap_servers`).
    #[arg(long, global = true)]
    pub kafka: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run ingest, normalizer, grouper and alerter in one process (starts ClickHouse when no URL
    /// is configured) and print the default project's DSN.
    Up,
    /// Run the ingest service alone, producing to Kafka.
    Ingest,
    /// Run the normalizer alone, between Kafka topics.
    Normalizer,
    /// Run the grouper alone, from Kafka to ClickHouse.
    Grouper,
    /// Run the alerter alone.
    Alerter,
    /// Run the API alone (stateless: any number of replicas) on `web.listen`.
    Web,
    /// Manage Kafka topics.
    Topics {
        /// What to do with topics.
        #[command(subcommand)]
        command: TopicsCommand,
    },
    /// Development helpers.
    #[cfg(feature = "dev")]
    Dev {
        /// Which helper.
        #[command(subcommand)]
        command: DevCommand,
    },
    /// Apply pending ClickHouse schema migrations.
    Migrate,
    /// Manage projects.
    Project {
        /// What to do with projects.
        #[command(subcommand)]
        command: ProjectCommand,
    },
    /// Inspect issues.
    Issues {
        /// What to do with issues.
        #[command(subcommand)]
        command: IssuesCommand,
    },
    /// Manage API tokens.
    Token {
        /// What to do with tokens.
        #[command(subcommand)]
        command: TokenCommand,
    },
}

/// `shrike token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token and print it (it is shown only this once; only its hash is stored).
    Create {
        /// What it may do: `read` (projects, issues, events), `write` (also change issues) or
        /// `admin` (also manage projects and keys).
        #[arg(long, value_parser = ["read", "write", "admin"])]
        scope: String,
        /// What it is for (shown in `shrike token list`).
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List tokens (ids, names, scopes; never the tokens).
    List,
    /// Revoke a token: the API refuses it within 10 seconds.
    Revoke {
        /// Token id (from `shrike token list`).
        id: u64,
    },
}

/// `shrike topics ...`.
#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// Create every topic (with `kafka.partitions` and `kafka.replication`), or check they exist.
    Create,
}

/// `shrike dev ...`.
#[cfg(feature = "dev")]
#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Run librdkafka's mock cluster (a real Kafka-protocol broker, in memory) with Shrike's topics
    /// created, print `BOOTSTRAP: host:port`, and serve until stopped. Lines `down` and `up` on
    /// standard input stop and restart its brokers (for outage tests).
    ///
    /// It keeps at most 5 MiB per partition (older records are dropped: a consumer further
    /// behind finds its offset gone) and nothing across restarts. For a broker that keeps what it
    /// accepted, see `deploy/scripts/kafka.sh` (tansu with SQLite storage).
    Kafka {
        /// Number of brokers.
        #[arg(long, default_value_t = 1)]
        brokers: i32,
        /// Partitions per topic (each keeps 5 MiB: more partitions hold a larger burst).
        #[arg(long, default_value_t = 4)]
        partitions: i32,
    },
    /// Run the local ClickHouse server `shrike up` would (data under `data_dir/clickhouse`, user
    /// `shrike`, its password in `data_dir/clickhouse/password`), migrated, and serve until
    /// stopped: for running the services one per process on this machine, which then use it as
    /// they use a running `shrike up`'s.
    Clickhouse,
}

/// `shrike project ...`.
#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project and print its DSN.
    Create {
        /// Project name.
        name: String,
    },
    /// List projects with their DSNs.
    List,
    /// Disable a project key: ingest answers 403 to it (within `ingest.key_refresh_secs`).
    DisableKey {
        /// The public key (the DSN's user part).
        key: String,
    },
    /// Enable a disabled project key again.
    EnableKey {
        /// The public key.
        key: String,
    },
}

/// `shrike issues ...`.
#[derive(Debug, Subcommand)]
pub enum IssuesCommand {
    /// List a project's issues, most recently seen first.
    List {
        /// Project name (default: the default project).
        #[arg(long)]
        project: Option<String>,
        /// Most issues to print.
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// Only issues with this status now.
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        /// Only issues seen since: a duration back from now (`30m`, `24h`, `7d`) or a date
        /// (`2026-01-31`, `2026-01-31T12:00:00Z`).
        #[arg(long)]
        since: Option<String>,
        /// Only issues whose title, culprit, type or value contains this text (any case).
        #[arg(long)]
        query: Option<String>,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one issue: counts, status, hashes and its latest event's exception and frames.
    Show {
        /// Issue id.
        id: u64,
        /// Project name (default: the default project).
        #[arg(long)]
        project: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Resolve issues: the next event reopens them as a regression.
    Resolve {
        /// Issue ids.
        #[arg(required = true)]
        ids: Vec<u64>,
        /// Resolve in the next release: only an event from another release than the issue's
        /// latest one reopens it.
        #[arg(long)]
        next_release: bool,
        /// Project name (default: the default project).
        #[arg(long)]
        project: Option<String>,
    },
    /// Mark issues unresolved again.
    Unresolve {
        /// Issue ids.
        #[arg(required = true)]
        ids: Vec<u64>,
        /// Project name (default: the default project).
        #[arg(long)]
        project: Option<String>,
    },
    /// Ignore issues (no alerts): forever, until N more events, or until a time, whichever
    /// comes first.
    Ignore {
        /// Issue ids.
        #[arg(required = true)]
        ids: Vec<u64>,
        /// Until this many more events.
        #[arg(long)]
        count: Option<u64>,
        /// Until a duration from now (`2h`, `7d`) or a date (`2026-01-31`,
        /// `2026-01-31T12:00:00Z`).
        #[arg(long)]
        until: Option<String>,
        /// Project name (default: the default project).
        #[arg(long)]
        project: Option<String>,
    },
    /// Merge issues into one: their hashes, past and future events count toward INTO.
    Merge {
        /// The issue that remains.
        into: u64,
        /// The issues merged into it.
        #[arg(required = true)]
        ids: Vec<u64>,
        /// Project name (default: the default project).
        #[arg(long)]
        project: Option<String>,
    },
    /// Give merged grouping hashes back to their own issues.
    Unmerge {
        /// Grouping hashes (see `shrike issues show`).
        #[arg(required = true)]
        hashes: Vec<String>,
        /// Project name (default: the default project).
        #[arg(long)]
        project: Option<String>,
    },
}

/// A status on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusArg {
    /// Open issues (new, regressed, lapsed ignores).
    Unresolved,
    /// Resolved issues.
    Resolved,
    /// Issues resolved in the next release.
    ResolvedInNextRelease,
    /// Ignored issues whose ignore still holds.
    Ignored,
}

impl From<StatusArg> for IssueStatus {
    fn from(arg: StatusArg) -> Self {
        match arg {
            StatusArg::Unresolved => IssueStatus::Unresolved,
            StatusArg::Resolved => IssueStatus::Resolved,
            StatusArg::ResolvedInNextRelease => IssueStatus::ResolvedInNextRelease,
            StatusArg::Ignored => IssueStatus::Ignored,
        }
    }
}
