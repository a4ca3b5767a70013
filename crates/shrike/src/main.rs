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
use shrike_store::Store;

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
        Command::Issues {
            command:
                IssuesCommand::List {
                    project,
                    limit,
                    json,
                },
        } => {
            let store = existing_store(&config).await?;
            let name = project.unwrap_or_else(|| config.default_project.clone());
            let project = store
                .project_by_name(&name)
                .await?
                .with_context(|| format!("no project named {name:?}"))?;
            let issues = store.list_issues(project.id, limit).await?;
            print!("{}", cli::format_issues(&issues, json));
            Ok(())
        }
    }
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
    let url = config.clickhouse.effective_url();
    let store = config.clickhouse.store()?;
    store
        .server_version()
        .await
        .with_context(|| format!("cannot reach clickhouse at {url} (is `shrike up` running?)"))?;
    store.migrate().await.context("migrating the schema")?;
    Ok(store)
}
