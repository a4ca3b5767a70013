//! `shrike project ...`: create and list projects, disable and enable their keys.

use crate::cli::ProjectCommand;
use crate::config::Config;
use anyhow::Context;
use shrike_protocol::Dsn;

/// The DSN of a key.
pub fn dsn(config: &Config, public_key: &str, project_id: u64) -> anyhow::Result<Dsn> {
    Dsn::for_project(&config.ingest.public_url(), public_key, project_id)
        .context("ingest.public_url")
}

/// Runs `shrike project ...`.
pub async fn run(config: &Config, command: ProjectCommand) -> anyhow::Result<()> {
    let store = crate::store::connect(config).await?;
    match command {
        ProjectCommand::Create { name } => {
            if store.project_by_name(&name).await?.is_some() {
                anyhow::bail!("a project named {name:?} already exists");
            }
            let (project, key) = store.create_project(&name).await?;
            println!("{}", dsn(config, &key.public_key, project.id)?);
        }
        ProjectCommand::List => {
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
                        dsn(config, &key.public_key, project.id)?
                    );
                }
            }
        }
        ProjectCommand::DisableKey { key } => set_key(&store, &key, false).await?,
        ProjectCommand::EnableKey { key } => set_key(&store, &key, true).await?,
    }
    Ok(())
}

async fn set_key(store: &shrike_store::Store, key: &str, active: bool) -> anyhow::Result<()> {
    if !store.set_key_active(key, active).await? {
        anyhow::bail!("no project key {key:?}");
    }
    println!("key {key} {}", if active { "enabled" } else { "disabled" });
    Ok(())
}
