//! `shrike-load`: the command line over the `shrike_load` library. Parses flags, applies them to
//! the scenario, runs it, prints the Markdown summary and writes the report files.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use shrike_load::{ClickHouseCheck, Overrides, RunOptions, Scenario};

/// Load-test a Sentry-compatible server with realistic envelopes.
#[derive(Debug, Parser)]
#[command(name = "shrike-load", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a scenario (a shipped name or a TOML file) against a DSN.
    Run(Box<RunArgs>),
    /// List the shipped scenarios.
    List,
    /// Measure the API's latency (issue lists, an issue's detail, one event by id) with what
    /// is stored; prints a Markdown table.
    Api {
        /// The API's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8380")]
        url: String,
        /// An API token with the read scope (from the environment, so it is not shown in `ps`).
        #[arg(long, env = "SHRIKE_LOAD_API_TOKEN", hide_env_values = true)]
        token: String,
        /// The project.
        #[arg(long, default_value_t = 1)]
        project: u64,
        /// Requests per measured call.
        #[arg(long, default_value_t = 100)]
        requests: usize,
    },
    /// Print a scenario's first N envelopes (uncompressed) to standard output.
    Sample {
        /// A shipped scenario name or a TOML file.
        scenario: String,
        /// How many envelopes.
        #[arg(long, default_value_t = 1)]
        count: u64,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// A shipped scenario name (smoke, steady-1k, max-ingest, burst) or a TOML file.
    scenario: String,
    /// Where to send: http://KEY@host:port/PROJECT.
    #[arg(long, env = "SHRIKE_LOAD_DSN")]
    dsn: String,
    /// Allow a target that is not on this machine.
    #[arg(long)]
    allow_remote: bool,
    /// Override the duration bound, seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Override the event count bound.
    #[arg(long)]
    events: Option<u64>,
    /// Override the open-loop rate, events/s (replaces phases).
    #[arg(long)]
    rate: Option<f64>,
    /// Override the number of connections (max-throughput mode).
    #[arg(long)]
    connections: Option<usize>,
    /// Override the generator seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Force gzip on.
    #[arg(long, conflicts_with = "no_gzip")]
    gzip: bool,
    /// Force gzip off.
    #[arg(long)]
    no_gzip: bool,
    /// Pre-generate this many events and resend them with fresh ids (0: generate every event).
    #[arg(long)]
    pool: Option<usize>,
    /// Directory for the report files ({scenario}-{time}.json, .md, .svg).
    #[arg(long, default_value = "load-results")]
    out_dir: PathBuf,
    /// Do not write report files (the summary still goes to standard output).
    #[arg(long)]
    no_files: bool,
    /// Shrike's ClickHouse HTTP URL: after sending, wait until every accepted event is stored.
    #[arg(long)]
    clickhouse_url: Option<String>,
    /// ClickHouse database.
    #[arg(long, default_value = "shrike")]
    clickhouse_database: String,
    /// ClickHouse user (the server `shrike up` runs has one, `shrike`).
    #[arg(long, default_value = "shrike")]
    clickhouse_user: String,
    /// ClickHouse password (for the server `shrike up` runs: the file
    /// `DATA_DIR/clickhouse/password`). From the environment, so it is not shown in `ps`.
    #[arg(
        long,
        env = "SHRIKE_LOAD_CLICKHOUSE_PASSWORD",
        default_value = "",
        hide_env_values = true
    )]
    clickhouse_password: String,
    /// How long to wait for the events in ClickHouse after sending, seconds.
    #[arg(long, default_value_t = 120.0)]
    e2e_timeout: f64,
    /// Sample CPU time and RSS of this process during the run (repeatable).
    #[arg(long = "process-pid")]
    process_pids: Vec<u32>,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::List => {
            for name in shrike_load::scenario::shipped_names() {
                let s = Scenario::shipped(name)?;
                println!("{name:12} {}", s.description);
            }
            Ok(())
        }
        Command::Sample { scenario, count } => {
            let scenario = Scenario::load(&scenario)?;
            let generator = shrike_load::Generator::new(&scenario.mix, scenario.seed, "sample");
            let now = chrono::Utc::now();
            for seq in 0..count {
                let (_, _, payload) = generator.event_json(
                    seq,
                    uuid::Uuid::new_v4(),
                    now.timestamp_millis() as f64 / 1000.0,
                );
                let body = shrike_load::envelope::event_envelope(
                    uuid::Uuid::new_v4(),
                    &now.to_rfc3339(),
                    &payload,
                );
                print!("{}", String::from_utf8_lossy(&body));
            }
            Ok(())
        }
        Command::Run(args) => run(*args),
        Command::Api {
            url,
            token,
            project,
            requests,
        } => {
            let options = shrike_load::api::ApiOptions {
                url,
                token,
                project,
                requests,
            };
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            let results = runtime.block_on(shrike_load::api::measure(&options))?;
            print!("{}", shrike_load::api::markdown(&results));
            Ok(())
        }
    }
}

fn run(args: RunArgs) -> Result<()> {
    let mut scenario = Scenario::load(&args.scenario)?;
    scenario.apply(&Overrides {
        duration_secs: args.duration,
        events: args.events,
        rate: args.rate,
        connections: args.connections,
        seed: args.seed,
        gzip: if args.gzip {
            Some(true)
        } else if args.no_gzip {
            Some(false)
        } else {
            None
        },
        pool: args.pool,
    })?;
    let clickhouse = args.clickhouse_url.as_ref().map(|url| ClickHouseCheck {
        database: args.clickhouse_database.clone(),
        user: args.clickhouse_user.clone(),
        password: args.clickhouse_password.clone(),
        timeout: Duration::from_secs_f64(args.e2e_timeout.max(0.0)),
        ..ClickHouseCheck::new(url)
    });
    let stem = format!(
        "{}-{}",
        scenario.name,
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    );
    let file = |ext: &str| (!args.no_files).then(|| args.out_dir.join(format!("{stem}.{ext}")));
    let options = RunOptions {
        dsn: args.dsn.clone(),
        allow_remote: args.allow_remote,
        progress: !args.no_progress,
        clickhouse,
        process_pids: args.process_pids.clone(),
        json_path: file("json"),
        markdown_path: file("md"),
        svg_path: file("svg"),
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let report = runtime.block_on(shrike_load::run(&scenario, &options))?;
    println!("{}", report.markdown());
    if !args.no_files {
        eprintln!("reports: {}/{stem}.{{json,md,svg}}", args.out_dir.display());
    }
    if let Some(e) = &report.end_to_end
        && !e.complete
    {
        anyhow::bail!(
            "end-to-end check timed out: {} of {} accepted events stored and grouped",
            e.grouped.min(e.stored),
            e.expected
        );
    }
    Ok(())
}
