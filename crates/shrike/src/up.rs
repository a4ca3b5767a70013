//! `shrike up`: the whole pipeline in one process over the in-memory bus.
//!
//! Start-up: ClickHouse (a local server under the data dir when no URL is configured), schema
//! migrations, the default project, then the services. Shutdown on Ctrl-C or SIGTERM: ingest stops
//! taking requests first, the bus drains, then the consumers flush and commit.

use crate::config::Config;
use anyhow::Context;
use shrike_bus::{MemoryBus, Topic};
use shrike_ingest::{IngestState, KeyCache};
use shrike_protocol::Dsn;
use shrike_store::local::LocalClickHouse;
use shrike_store::{Store, StoreConfig};
use std::io::Write;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Connects to ClickHouse, starting the local server when no URL is configured (or reusing one a
/// previous run left on the same port), and applies migrations.
pub async fn connect(config: &Config) -> anyhow::Result<(Store, Option<LocalClickHouse>)> {
    let c = &config.clickhouse;
    let (url, local) = if c.url.is_empty() {
        let url = format!("http://127.0.0.1:{}", c.local_http_port);
        if answers(&url, c).await {
            tracing::info!(%url, "using the clickhouse server already running on the local port");
            (url, None)
        } else {
            let dir = config.data_dir.join("clickhouse");
            let server = LocalClickHouse::start(&dir, c.local_http_port, c.local_tcp_port)
                .await
                .context("starting the local clickhouse server")?;
            tracing::info!(url = server.url, dir = %dir.display(), "started local clickhouse");
            (server.url.clone(), Some(server))
        }
    } else {
        (c.url.clone(), None)
    };
    let store = Store::new(&StoreConfig {
        url: url.clone(),
        database: c.database.clone(),
        user: c.user.clone(),
        password: c.password.clone(),
    })?;
    let version = store
        .server_version()
        .await
        .with_context(|| format!("cannot reach clickhouse at {url}"))?;
    tracing::info!(?version, "connected to clickhouse");
    store.migrate().await.context("migrating the schema")?;
    Ok((store, local))
}

async fn answers(url: &str, c: &crate::config::ClickHouseSection) -> bool {
    let Ok(store) = Store::new(&StoreConfig {
        url: url.to_owned(),
        database: c.database.clone(),
        user: c.user.clone(),
        password: c.password.clone(),
    }) else {
        return false;
    };
    tokio::time::timeout(Duration::from_secs(2), store.server_version())
        .await
        .is_ok_and(|r| r.is_ok())
}

/// The DSN of a key.
pub fn dsn(config: &Config, public_key: &str, project_id: u64) -> anyhow::Result<Dsn> {
    Dsn::for_project(&config.public_url(), public_key, project_id).context("ingest.public_url")
}

/// Runs everything until Ctrl-C or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let alerter_config = config.alerter.clone();
    let listen = config.listen_addr()?;
    let (store, _local) = connect(&config).await?;

    let project = match store.project_by_name(&config.default_project).await? {
        Some(project) => project,
        None => store.create_project(&config.default_project).await?.0,
    };
    let keys = KeyCache::new(store.clone());
    keys.refresh().await.context("loading project keys")?;
    let key = match store
        .keys()
        .await?
        .into_iter()
        .find(|k| k.project_id == project.id && k.active)
    {
        Some(key) => key,
        None => store.create_key(project.id).await?,
    };
    keys.refresh().await.context("loading project keys")?;
    let _refresher = keys.spawn_refresher(config.ingest().key_refresh);

    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;

    let bus = MemoryBus::new(config.bus.memory_capacity);
    let services = CancellationToken::new();
    let normalizer = tokio::spawn(shrike_normalizer::service::run(
        bus.consumer(Topic::RawEvents, "normalizer"),
        bus.clone(),
        services.clone(),
    ));
    let grouper = tokio::spawn(shrike_grouper::service::run(
        bus.consumer(Topic::NormalizedEvents, "grouper"),
        store.clone(),
        shrike_grouper::service::BatchConfig {
            batch_rows: config.grouper.batch_rows,
            batch_wait: Duration::from_millis(config.grouper.batch_wait_ms),
        },
        services.clone(),
    ));
    let alerter = if alerter_config.enabled {
        let alerter = shrike_alerter::Alerter::new(store.clone(), alerter_config)
            .context("alerter config")?;
        Some(tokio::spawn(alerter.run(services.clone())))
    } else {
        None
    };

    let app = shrike_ingest::router(IngestState {
        producer: bus.clone(),
        keys,
        config: config.ingest(),
    })
    .merge(crate::http::router(store.clone(), metrics));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;

    let dsn = dsn(&config, &key.public_key, project.id)?;
    println!(
        "Shrike is up: ingest on http://{listen}, ClickHouse database {:?}",
        store.database()
    );
    println!("DSN: {dsn}");
    let _ = std::io::stdout().flush();

    let stop_http = CancellationToken::new();
    let server = {
        let stop = stop_http.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        })
    };
    shutdown_signal().await;
    tracing::info!("shutting down: ingest stops, then the bus drains");
    stop_http.cancel();
    let _ = server.await;
    let drained = drain(&bus, Duration::from_secs(15)).await;
    if !drained {
        tracing::warn!(
            "bus not drained in time; undelivered events are lost with the in-memory bus"
        );
    }
    services.cancel();
    let _ = normalizer.await;
    let _ = grouper.await;
    if let Some(alerter) = alerter {
        let _ = alerter.await;
    }
    tracing::info!("stopped");
    Ok(())
}

async fn drain(bus: &MemoryBus, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if Topic::ALL.iter().all(|t| bus.lag(*t) == 0) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops shrike");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
