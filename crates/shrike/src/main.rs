//! `shrike`: the one binary of Shrike, a Sentry-compatible error-ingest pipeline.
//!
//! Subcommands run the whole pipeline in one process (`up`), administer projects and the schema,
//! and list issues. Errors reach the user through `anyhow` with context; nothing below the CLI
//! prints.

mod cli;
mod config;
mod dev;
mod http;
mod services;
mod up;

use anyhow::Context;
use clap::Parser;
use cli::{Cli, Command, DevCommand, IssuesCommand, ProjectCommand, TopicsCommand};
use config::Config;
use services::Service;
use shrike_store::{IssueFilter, StatusChange, Store};

// mimalloc: grouping and parsing allocate many small strings per event, which glibc's malloc
// makes a third of the CPU time (measured in BENCHMARKS.md). The `system-allocator` feature
// leaves it out, so that heap profilers such as heaptrack see every allocation.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let explicit = cli.config.is_some();
    let path = cli.config.clone().unwrap_or_else(|| "shrike.toml".into());
    let mut config = Config::load(&path, explicit)?;
    if let Some(kafka) = cli.kafka {
        config.kafka.bootstrap_servers = kafka;
    }
    match cli.command {
        Command::Up => up::run(config).await,
        Command::Ingest => services::run(config, Service::Ingest).await,
        Command::Normalizer => services::run(config, Service::Normalizer).await,
        Command::Grouper => services::run(config, Service::Grouper).await,
        Command::Alerter => services::run(config, Service::Alerter).await,
        Command::Topics {
            command: TopicsCommand::Create,
        } => {
            let kafka = config.kafka()?;
            let created = shrike_bus::kafka::create_topics(
                &kafka,
                config.kafka.partitions,
                config.kafka.replication,
            )
            .await?;
            shrike_bus::kafka::validate_topics(&kafka)?;
            println!(
                "created {} topics; all {} exist",
                created.len(),
                shrike_bus::Topic::ALL.len()
            );
            Ok(())
        }
        Command::Dev {
            command:
                DevCommand::Kafka {
                    brokers,
                    partitions,
                },
        } => dev::kafka(&config, brokers, partitions).await,
        Command::Migrate => {
            let (store, _local) = up::connect(&config).await?;
            let applied = store.migrate().await.context("migrating the schema")?;
            println!("applied migrations: {applied:?}");
            Ok(())
        }
        Command::Project {
            command: ProjectCommand::Create { name },
        } => {
            let store = existing_store(&config).await?;
            if store.project_by_name(&name).await?.is_some() {
                anyhow::bail!("a project named {name:?} already exists");
            }
            let (project, key) = store.create_project(&name).await?;
            println!("{}", up::dsn(&config, &key.public_key, project.id)?);
            Ok(())
        }
        Command::Project {
            command: ProjectCommand::DisableKey { key },
        } => set_key(&config, &key, false).await,
        Command::Project {
            command: ProjectCommand::EnableKey { key },
        } => set_key(&config, &key, true).await,
        Command::Project {
            command: ProjectCommand::List,
        } => {
            let store = existing_store(&config).await?;
            let keys = store.keys().await?;
            for project in store.projects().await? {
                for key in keys
                    .iter()
                    .filter(|k| k.project_id == project.id && k.active)
                {
                    println!(
                        "{}\t{}\t{}",
                        project.id,
                        project.name,
                        up::dsn(&config, &key.public_key, project.id)?
                    );
                }
            }
            Ok(())
        }
        Command::Issues { command } => issues(&config, command).await,
    }
}

/// `shrike issues ...`.
async fn issues(config: &Config, command: IssuesCommand) -> anyhow::Result<()> {
    let store = existing_store(config).await?;
    let project = |name: Option<String>| {
        let store = store.clone();
        let name = name.unwrap_or_else(|| config.default_project.clone());
        async move {
            store
                .project_by_name(&name)
                .await?
                .with_context(|| format!("no project named {name:?}"))
        }
    };
    match command {
        IssuesCommand::List {
            project: name,
            limit,
            status,
            since,
            query,
            json,
        } => {
            let project = project(name).await?;
            let since = match since {
                Some(text) => Some(cli::parse_since(&text, store.server_now().await?)?),
                None => None,
            };
            let filter = IssueFilter {
                status: status.map(Into::into),
                since,
                query,
                limit,
            };
            let issues = store.list_issues(project.id, &filter).await?;
            print!("{}", cli::format_issues(&issues, json));
        }
        IssuesCommand::Show {
            id,
            project: name,
            json,
        } => {
            let project = project(name).await?;
            let detail = store.issue_detail(project.id, id).await?;
            print!("{}", cli::format_detail(&detail, json));
        }
        IssuesCommand::Resolve {
            ids,
            next_release,
            project: name,
        } => {
            let change = if next_release {
                StatusChange::ResolveInNextRelease
            } else {
                StatusChange::Resolve
            };
            set_status(&store, project(name).await?.id, &ids, &change).await?;
        }
        IssuesCommand::Unresolve { ids, project: name } => {
            let project = project(name).await?;
            set_status(&store, project.id, &ids, &StatusChange::Unresolve).await?;
        }
        IssuesCommand::Ignore {
            ids,
            count,
            until,
            project: name,
        } => {
            let project = project(name).await?;
            let until = match until {
                Some(text) => Some(cli::parse_until(&text, store.server_now().await?)?),
                None => None,
            };
            set_status(
                &store,
                project.id,
                &ids,
                &StatusChange::Ignore { count, until },
            )
            .await?;
        }
        IssuesCommand::Merge {
            into,
            ids,
            project: name,
        } => {
            let project = project(name).await?;
            let moved = store.merge_issues(project.id, into, &ids).await?;
            println!(
                "merged {} hash{} into issue {into}",
                moved.len(),
                if moved.len() == 1 { "" } else { "es" }
            );
        }
        IssuesCommand::Unmerge {
            hashes,
            project: name,
        } => {
            let project = project(name).await?;
            for (hash, issue) in store.unmerge_hashes(project.id, &hashes).await? {
                println!("hash {hash} belongs to issue {issue} again");
            }
        }
    }
    Ok(())
}

async fn set_status(
    store: &Store,
    project_id: u64,
    ids: &[u64],
    change: &StatusChange,
) -> anyhow::Result<()> {
    for &id in ids {
        let row = store.set_issue_status(project_id, id, change).await?;
        println!("issue {id} {}", row.status);
    }
    Ok(())
}

async fn set_key(config: &Config, key: &str, active: bool) -> anyhow::Result<()> {
    let store = existing_store(config).await?;
    if !store.set_key_active(key, active).await? {
        anyhow::bail!("no project key {key:?}");
    }
    println!("key {key} {}", if active { "enabled" } else { "disabled" });
    Ok(())
}

/// Connects to the configured ClickHouse, or to the local one `shrike up` runs, and applies
/// pending migrations: for admin commands and the per-service commands.
pub async fn existing_store(config: &Config) -> anyhow::Result<Store> {
    let store = config.store()?;
    store.server_version().await.with_context(|| {
        format!(
            "cannot reach clickhouse at {} (is `shrike up` running?)",
            config.clickhouse.display_url()
        )
    })?;
    store.migrate().await.context("migrating the schema")?;
    Ok(store)
}
