//! `shrike up`: the whole pipeline in one process, over the local bus.
//!
//! Start-up: ClickHouse (a local server under the data dir when no URL is configured), schema
//! migrations, the default project, then the services. Shutdown on Ctrl-C or SIGTERM: ingest stops
//! taking requests first, the bus drains, then the consumers flush and commit.

use crate::config::Config;
use crate::runtime::{LowPriority, shutdown_signal};
use crate::{ops, pipeline};
use anyhow::Context;
use shrike_bus::LocalBus;
use shrike_messages::Topic;
use std::io::Write;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The topics the pipeline consumes.
const CONSUMED: [Topic; 5] = [
    Topic::RawEvents,
    Topic::NormalizedEvents,
    Topic::CheckIns,
    Topic::Outcomes,
    Topic::Attachments,
];

/// Runs everything until Ctrl-C or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    // The data dir holds the bus journal (raw payloads) and the database's password.
    shrike_store::local::create_private_dir(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let (store, _local) = crate::store::start(&config).await?;
    let project = match store.project_by_name(&config.default_project).await? {
        Some(project) => project,
        None => store.create_project(&config.default_project).await?.0,
    };
    let key = match store
        .keys()
        .await?
        .into_iter()
        .find(|k| k.project_id == project.id && k.active)
    {
        Some(key) => key,
        None => store.create_key(project.id).await?,
    };
    let metrics = ops::metrics()?;
    ops::serve(&config.ops_listen, Some(store.clone()), None, metrics).await?;

    let dir = config.data_dir.join("bus");
    let bus = LocalBus::open(&config.bus, &dir, &Topic::NAMES)
        .with_context(|| format!("opening the bus in {}", dir.display()))?;
    let left: usize = CONSUMED.iter().map(|t| bus.held(t.name()).0).sum();
    if left > 0 {
        tracing::info!(
            records = left,
            "resuming the records the last run left in the bus journal"
        );
    }
    let low = LowPriority::start(config.pipeline_nice)?;
    let shutdown = CancellationToken::new();
    // Every consumer subscribes here, before ingest opens: nothing it produces is missed.
    let projects = crate::settings::shared(&config)?;
    low.spawn(crate::settings::keep_fresh(
        config.clone(),
        store.clone(),
        Some(projects.clone()),
        shutdown.clone(),
    ));
    let mut tasks = vec![low.spawn(pipeline::normalizer(
        &bus,
        projects,
        config.normalizer,
        shutdown.clone(),
    )?)];
    let grouper = config.grouper_in_one_process();
    for writer in pipeline::writers(&bus, &store, grouper, &shutdown)? {
        tasks.push(low.spawn(writer));
    }
    let alerter =
        pipeline::alerter(&config, store.clone(), shutdown.clone())?.map(|a| low.spawn(a));
    low.spawn(report_held(bus.clone(), shutdown.clone()));

    let stop_http = CancellationToken::new();
    let server = pipeline::ingest(&config, store.clone(), bus.clone(), stop_http.clone()).await?;
    let web = if config.web.listen.is_empty() {
        None
    } else {
        Some(pipeline::web(&config, store.clone(), stop_http.clone()).await?)
    };
    let dsn = crate::commands::project::dsn(&config, &key.public_key, project.id)?;
    println!(
        "Shrike is up: ingest on http://{}, ClickHouse database {:?}",
        config.ingest.listen,
        store.database()
    );
    println!("DSN: {dsn}");
    if web.is_some() {
        println!(
            "API: http://{}/api/v1/ (a token: shrike token create --scope read)",
            config.web.listen
        );
    }
    let _ = std::io::stdout().flush();

    shutdown_signal().await;
    tracing::info!("shutting down: ingest stops, then the bus drains");
    stop_http.cancel();
    let _ = server.await;
    if let Some(web) = web {
        let _ = web.await;
    }
    if !drain(&bus, Duration::from_secs(15)).await {
        if config.bus.durable {
            tracing::warn!("bus not drained in time; the rest is processed on the next start");
        } else {
            tracing::warn!(
                "bus not drained in time; undelivered events are lost with the in-memory bus"
            );
        }
    }
    shutdown.cancel();
    for task in tasks {
        if let Ok(Err(error)) = task.await {
            tracing::error!(error = format!("{error:#}"), "a service failed");
        }
    }
    if let Some(alerter) = alerter {
        let _ = alerter.await;
    }
    if let Err(error) = bus.sync() {
        tracing::warn!(%error, "cannot save the bus offsets; the next start repeats a little work");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Publishes what the bus holds per topic, every second, as the gauges `shrike_bus_held_records`,
/// `shrike_bus_held_bytes` and `shrike_bus_cached_bytes` (payloads in memory).
async fn report_held(bus: LocalBus, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        for topic in CONSUMED.map(Topic::name) {
            let (records, bytes, cached) = bus.held(topic);
            metrics::gauge!("shrike_bus_held_records", "topic" => topic).set(records as f64);
            metrics::gauge!("shrike_bus_held_bytes", "topic" => topic).set(bytes as f64);
            metrics::gauge!("shrike_bus_cached_bytes", "topic" => topic).set(cached as f64);
        }
    }
}

/// Waits until every consumed topic is committed, for at most `limit`.
async fn drain(bus: &LocalBus, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if CONSUMED.iter().all(|t| bus.lag(t.name()) == 0) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
