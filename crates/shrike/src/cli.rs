//! Command-line arguments and the text the CLI prints.

use chrono::DateTime;
use clap::{Parser, Subcommand};
use shrike_store::IssueSummary;
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
    /// Manage Kafka topics.
    Topics {
        /// What to do with topics.
        #[command(subcommand)]
        command: TopicsCommand,
    },
    /// Development helpers.
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
}

/// `shrike topics ...`.
#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// Create every topic (with `kafka.partitions` and `kafka.replication`), or check they exist.
    Create,
}

/// `shrike dev ...`.
#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Run librdkafka's mock cluster (a real Kafka-protocol broker, in memory) with Shrike's topics
    /// created, print `BOOTSTRAP: host:port`, and serve until stopped. Lines `down` and `up` on
    /// standard input stop and restart its brokers (for outage tests).
    Kafka {
        /// Number of brokers.
        #[arg(long, default_value_t = 1)]
        brokers: i32,
        /// Partitions per topic.
        #[arg(long, default_value_t = 4)]
        partitions: i32,
    },
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
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn time(secs: u32) -> String {
    DateTime::from_timestamp(i64::from(secs), 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// Renders issues as a table, or as JSON lines.
pub fn format_issues(issues: &[IssueSummary], json: bool) -> String {
    let mut out = String::new();
    if json {
        for issue in issues {
            let d = issue.description.as_ref();
            let line = serde_json::json!({
                "id": issue.stats.issue_id.to_string(),
                "times_seen": issue.stats.times_seen,
                "first_seen": time(issue.stats.first_seen),
                "last_seen": time(issue.stats.last_seen),
                "title": d.map(|d| d.title.as_str()).unwrap_or_default(),
                "culprit": d.map(|d| d.culprit.as_str()).unwrap_or_default(),
                "level": d.map(|d| d.level.as_str()).unwrap_or_default(),
            });
            out.push_str(&line.to_string());
            out.push('\n');
        }
        return out;
    }
    out.push_str(&format!(
        "{:<20} {:>7}  {:<19}  {:<19}  TITLE\n",
        "ID", "EVENTS", "FIRST SEEN", "LAST SEEN"
    ));
    for issue in issues {
        let title = issue
            .description
            .as_ref()
            .map(|d| d.title.as_str())
            .unwrap_or("(pending)");
        out.push_str(&format!(
            "{:<20} {:>7}  {:<19}  {:<19}  {}\n",
            issue.stats.issue_id,
            issue.stats.times_seen,
            time(issue.stats.first_seen),
            time(issue.stats.last_seen),
            title
        ));
    }
    if issues.is_empty() {
        out.push_str("(no issues)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use shrike_store::{IssueDescription, IssueStats};

    fn summary() -> IssueSummary {
        IssueSummary {
            stats: IssueStats {
                issue_id: 42,
                times_seen: 3,
                first_seen: 1_700_000_000,
                last_seen: 1_700_000_060,
            },
            description: Some(IssueDescription {
                issue_id: 42,
                title: "ZeroDivisionError: division by zero".into(),
                culprit: "/boom/".into(),
                level: "error".into(),
            }),
        }
    }

    #[test]
    fn table_has_counts_times_and_title() {
        let text = format_issues(&[summary()], false);
        let row = text.lines().nth(1).expect("one row");
        assert!(row.starts_with("42 "));
        assert!(row.contains(
            "      3  2023-11-14 22:13:20  2023-11-14 22:14:20  ZeroDivisionError: division by zero"
        ));
    }

    #[test]
    fn json_lines_parse() {
        let text = format_issues(&[summary()], true);
        let value: serde_json::Value = serde_json::from_str(text.trim()).expect("json");
        assert_eq!(value["times_seen"], 3);
        assert_eq!(value["culprit"], "/boom/");
    }
}
