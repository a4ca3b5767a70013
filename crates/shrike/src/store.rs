//! Reaching ClickHouse: the configured server, or the local one `shrike up` runs (started, or
//! adopted from a run that was killed, or — while another `shrike` process owns it — used as it
//! is), with the schema migrated.

use crate::config::Config;
use anyhow::Context;
use shrike_store::Store;
use shrike_store::local::{LocalClickHouse, LocalServerError};

/// The store of `config`, connected and migrated, starting the local server when no URL is
/// configured and no other `shrike` process runs it; the server is stopped when the returned
/// handle is dropped.
pub async fn start(config: &Config) -> anyhow::Result<(Store, Option<LocalClickHouse>)> {
    let c = &config.clickhouse;
    let local = if c.is_local() {
        let dir = config.local_clickhouse_dir();
        match LocalClickHouse::start(&dir, c.local_http_port, c.local_tcp_port).await {
            Ok(server) => {
                tracing::info!(url = server.url, dir = %dir.display(), pid = server.pid(), "local clickhouse running");
                Some(server)
            }
            Err(LocalServerError::Owned(_)) => {
                tracing::info!(
                    "the local clickhouse server is run by another shrike process; using it"
                );
                None
            }
            Err(error) => return Err(error).context("starting the local clickhouse server"),
        }
    } else {
        None
    };
    Ok((connect(config).await?, local))
}

/// The store of `config`: the configured server, or the local one a running `shrike up` manages;
/// connected and migrated.
pub async fn connect(config: &Config) -> anyhow::Result<Store> {
    let c = &config.clickhouse;
    let local_password = if c.is_local() {
        let dir = config.local_clickhouse_dir();
        let password = std::fs::read_to_string(dir.join("password")).with_context(|| {
            format!(
                "no local clickhouse under {} (is `shrike up` running?)",
                dir.display()
            )
        })?;
        Some(password.trim().to_owned())
    } else {
        None
    };
    let store = Store::new(&c.store_config(local_password.as_deref()))?
        .with_retention(config.retention.clone());
    let version = store.server_version().await.with_context(|| {
        format!(
            "cannot reach clickhouse at {} (is `shrike up` running?)",
            c.display_url()
        )
    })?;
    tracing::debug!(?version, "connected to clickhouse");
    store.migrate().await.context("migrating the schema")?;
    Ok(store)
}
