//! What each command does. `up` and the per-service commands run the pipeline (wired in
//! [`crate::pipeline`]); the others administer projects, issues, the schema and topics.

#[cfg(feature = "dev")]
mod dev;
mod issues;
pub mod project;
mod schema;
mod service;
mod token;
mod up;

use crate::cli::{Cli, Command};
use crate::config::Config;
use service::Service;

/// Loads the configuration and runs the command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let explicit = cli.config.is_some();
    let path = cli.config.clone().unwrap_or_else(|| "shrike.toml".into());
    let mut config = Config::load(&path, explicit)?;
    if let Some(kafka) = cli.kafka {
        config.kafka.bootstrap_servers = kafka;
    }
    match cli.command {
        Command::Up => up::run(config).await,
        Command::Ingest => service::run(config, Service::Ingest).await,
        Command::Normalizer => service::run(config, Service::Normalizer).await,
        Command::Grouper => service::run(config, Service::Grouper).await,
        Command::Alerter => service::run(config, Service::Alerter).await,
        Command::Web => service::run(config, Service::Web).await,
        Command::Topics { command: _ } => schema::create_topics(&config).await,
        Command::Migrate => schema::migrate(&config).await,
        Command::Project { command } => project::run(&config, command).await,
        Command::Issues { command } => issues::run(&config, command).await,
        Command::Token { command } => token::run(&config, command).await,
        #[cfg(feature = "dev")]
        Command::Dev { command } => match command {
            crate::cli::DevCommand::Kafka {
                brokers,
                partitions,
            } => dev::kafka(&config, brokers, partitions).await,
            crate::cli::DevCommand::Clickhouse => dev::clickhouse(&config).await,
        },
    }
}
