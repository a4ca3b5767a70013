//! The library's error type: every way a load run can fail before or after sending. Failures of
//! individual requests are never errors here; they are counted in the report.

use std::path::PathBuf;

/// Why a load run could not be prepared, verified or reported.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The DSN cannot be parsed or lacks a key or a project.
    #[error("invalid dsn {dsn:?}: {reason}")]
    Dsn {
        /// The DSN as given (its key may be visible: DSN keys are public).
        dsn: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The target is not a loopback address and remote targets were not allowed.
    #[error("refusing non-loopback target {host:?} (pass --allow-remote to load another machine)")]
    RemoteTarget {
        /// The DSN's host.
        host: String,
    },
    /// A scenario file cannot be read.
    #[error("cannot read scenario {path}: {source}")]
    ScenarioRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A scenario is not valid TOML or has unknown keys.
    #[error("invalid scenario {name}: {source}")]
    ScenarioParse {
        /// The scenario's name or file.
        name: String,
        /// The TOML error.
        #[source]
        source: toml::de::Error,
    },
    /// A scenario's values are out of range or inconsistent.
    #[error("invalid scenario {name}: {key}: {reason}")]
    ScenarioInvalid {
        /// The scenario's name.
        name: String,
        /// The offending key.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Neither a shipped scenario nor an existing file has this name.
    #[error("unknown scenario {0:?}: not a shipped scenario ({names}) nor a file", names = crate::scenario::shipped_names().join(", "))]
    UnknownScenario(String),
    /// The HTTP client cannot be built.
    #[error("cannot build http client: {0}")]
    Client(#[source] reqwest::Error),
    /// A ClickHouse query failed.
    #[error("clickhouse query failed: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    /// The ClickHouse database name is not a plain identifier.
    #[error("invalid clickhouse database name {0:?}")]
    DatabaseName(String),
    /// A monitored process cannot be read from `/proc`.
    #[error("cannot read /proc/{pid}: {source}")]
    Process {
        /// The process id.
        pid: u32,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A report file cannot be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The report cannot be serialized.
    #[error("cannot serialize report: {0}")]
    Json(#[from] serde_json::Error),
    /// The plot cannot be drawn.
    #[error("cannot draw plot {path}: {reason}")]
    Plot {
        /// The SVG file.
        path: PathBuf,
        /// The drawing error.
        reason: String,
    },
}
