//! `shrike up`: the whole pipeline in one process over the in-memory bus.
//!
//! Start-up: ClickHouse (a local server under the data dir when no URL is configured), schema
//! migrations, the default project, then the services. Shutdown on Ctrl-C or SIGTERM: ingest stops
//! taking requests first, the bus drains, then the consumers flush and commit.

use crate::config::Config;
use crate::services;
use anyhow::Context;
use shrike_bus::{MemoryBus, Topic};
use shrike_grouper::writers::{Attachments, CheckIns, Outcomes as OutcomeWriter, TableWriter};
use shrike_protocol::Dsn;
use shrike_store::Store;
use shrike_store::local::{LocalClickHouse, LocalServerError};
use std::io::Write;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Connects to ClickHouse, starting the local server when no URL is configured (or adopting the
/// one a killed run left; or, while another `shrike` process owns it, using it as it is), and
/// applies migrations.
pub async fn connect(config: &Config) -> anyhow::Result<(Store, Option<LocalClickHouse>)> {
    let c = &config.clickhouse;
    let local = if c.url.is_empty() {
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
    let store = config.store()?;
    let version = store
        .server_version()
        .await
        .with_context(|| format!("cannot reach clickhouse at {}", c.display_url()))?;
    tracing::info!(?version, "connected to clickhouse");
    store.migrate().await.context("migrating the schema")?;
    Ok((store, local))
}

/// The DSN of a key.
pub fn dsn(config: &Config, public_key: &str, project_id: u64) -> anyhow::Result<Dsn> {
    Dsn::for_project(&config.public_url(), public_key, project_id).context("ingest.public_url")
}

/// Runs everything until Ctrl-C or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    // The data dir holds the bus journal (raw payloads) and the database's password.
    shrike_store::local::create_private_dir(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let (store, _local) = connect(&config).await?;
    let alerter = if config.alerter.enabled {
        Some(
            shrike_alerter::Alerter::new(store.clone(), config.alerter.clone())
                .context("alerter config")?,
        )
    } else {
        None
    };

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
    let metrics = services::metrics()?;
    crate::http::serve(&config.ops_listen, Some(store.clone()), metrics).await?;

    let bus = open_bus(&config)?;
    let pipeline = Pipeline::start(config.pipeline_nice)?;
    let shutdown = CancellationToken::new();
    // Subscribe before ingest opens, so no record is produced to a topic without its group.
    let raw_consumer = bus.consumer(Topic::RawEvents, shrike_normalizer::service::GROUP);
    let normalized_consumer = bus.consumer(Topic::NormalizedEvents, shrike_grouper::service::GROUP);
    let normalizer = {
        let (source, mut first) = (bus.clone(), Some(raw_consumer));
        let make = move || {
            Ok(first.take().unwrap_or_else(|| {
                source.consumer(Topic::RawEvents, shrike_normalizer::service::GROUP)
            }))
        };
        let grouping = std::sync::Arc::new(config.grouping()?);
        pipeline.spawn(services::normalizer(
            make,
            bus.clone(),
            grouping,
            shutdown.clone(),
        ))
    };
    let grouper = {
        let (bus, mut first) = (bus.clone(), Some(normalized_consumer));
        let make = move || {
            Ok(first.take().unwrap_or_else(|| {
                bus.consumer(Topic::NormalizedEvents, shrike_grouper::service::GROUP)
            }))
        };
        pipeline.spawn(services::grouper(
            make,
            store.clone(),
            config.grouper_on_memory_bus(),
            shutdown.clone(),
        ))
    };
    let wait = Duration::from_millis(config.grouper.batch_wait_ms);
    let (p, s) = (&pipeline, &shutdown);
    let check_ins = spawn_writer::<CheckIns>(p, &bus, Topic::CheckIns, &store, wait, s);
    let outcomes = spawn_writer::<OutcomeWriter>(p, &bus, Topic::Outcomes, &store, wait, s);
    let attachments = spawn_writer::<Attachments>(p, &bus, Topic::Attachments, &store, wait, s);
    let alerter = alerter.map(|a| pipeline.spawn(a.run(shutdown.clone())));
    pipeline.spawn(report_held(bus.clone(), shutdown.clone()));

    let stop_http = CancellationToken::new();
    let server =
        services::serve_ingest(&config, store.clone(), bus.clone(), stop_http.clone()).await?;
    let dsn = dsn(&config, &key.public_key, project.id)?;
    println!(
        "Shrike is up: ingest on http://{}, ClickHouse database {:?}",
        config.ingest.listen,
        store.database()
    );
    println!("DSN: {dsn}");
    let _ = std::io::stdout().flush();

    shutdown_signal().await;
    tracing::info!("shutting down: ingest stops, then the bus drains");
    stop_http.cancel();
    let _ = server.await;
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
    let _ = normalizer.await;
    let _ = grouper.await;
    let _ = check_ins.await;
    let _ = outcomes.await;
    let _ = attachments.await;
    if let Some(alerter) = alerter {
        let _ = alerter.await;
    }
    if let Err(error) = bus.sync() {
        tracing::warn!(%error, "cannot save the bus offsets; the next start repeats a little work");
    }
    tracing::info!("stopped");
    Ok(())
}

/// The bus of `shrike up`: journaled under `data_dir/bus` (reopened with whatever a previous run
/// left unprocessed) unless `bus.durable` is off.
fn open_bus(config: &Config) -> anyhow::Result<MemoryBus> {
    let b = &config.bus;
    let bus = if b.durable {
        let dir = config.data_dir.join("bus");
        MemoryBus::durable(&dir, b.memory_capacity, SEGMENT_BYTES)
            .with_context(|| format!("opening the bus journal in {}", dir.display()))?
            .with_cache_bytes(b.cache_bytes())
    } else {
        MemoryBus::new(b.memory_capacity)
    };
    // A topic nobody consumes (dead letters, issue activity) keeps what the in-memory bus would.
    let bus = bus
        .with_max_bytes(b.topic_bytes())
        .with_retention_bytes(b.memory_topic_bytes())
        .with_send_wait(Duration::from_millis(b.memory_send_wait_ms));
    let left: usize = PIPELINE.iter().map(|t| bus.held(*t).0).sum();
    if left > 0 {
        tracing::info!(
            records = left,
            "resuming the records the last run left in the bus journal"
        );
    }
    Ok(bus)
}

/// Size of a segment of the bus journal: a consumed segment's disk space is freed whole.
const SEGMENT_BYTES: u64 = 64 << 20;

/// The runtime the pipeline of `shrike up` runs on (everything but ingest): worker threads of its
/// own at a lower priority, so that when the CPU is short ingest keeps answering SDKs while the
/// backlog waits in the bus. Shut down without blocking when dropped.
struct Pipeline {
    handle: tokio::runtime::Handle,
    /// Taken only when dropped.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Pipeline {
    fn start(nice: i32) -> anyhow::Result<Pipeline> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("pipeline")
            .on_thread_start(move || lower_priority(nice))
            .enable_all()
            .build()
            .context("starting the pipeline's runtime")?;
        Ok(Pipeline {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })
    }

    fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(task)
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which async code must not.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The calling thread's nice value (Linux keeps it per thread).
fn thread_nice() -> i32 {
    #[allow(unsafe_code)]
    // SAFETY: both calls take and return plain integers and touch no memory.
    unsafe {
        libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t)
    }
}

/// Raises the calling thread's nice value by `nice`.
fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    let lower = thread_nice().saturating_add(nice);
    #[allow(unsafe_code)]
    // SAFETY: gettid and setpriority take and return plain integers and touch no memory.
    let result =
        unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, lower) };
    if result != 0 {
        let error = std::io::Error::last_os_error();
        tracing::warn!(%error, "cannot lower the pipeline threads' priority");
    }
}

/// Subscribes a table writer to `topic` now (so nothing produced later is missed) and runs it on
/// the pipeline.
fn spawn_writer<W: TableWriter>(
    pipeline: &Pipeline,
    bus: &MemoryBus,
    topic: Topic,
    store: &Store,
    wait: Duration,
    shutdown: &CancellationToken,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    let (source, mut first) = (bus.clone(), Some(bus.consumer(topic, W::GROUP)));
    let make = move || {
        Ok(first
            .take()
            .unwrap_or_else(|| source.consumer(topic, W::GROUP)))
    };
    pipeline.spawn(services::table_writer::<W, _, _>(
        make,
        bus.clone(),
        store.clone(),
        wait,
        shutdown.clone(),
    ))
}

/// The topics the pipeline consumes.
const PIPELINE: [Topic; 5] = [
    Topic::RawEvents,
    Topic::NormalizedEvents,
    Topic::CheckIns,
    Topic::Outcomes,
    Topic::Attachments,
];

/// Publishes what the bus holds per topic, every second, as the gauges `shrike_bus_held_records`,
/// `shrike_bus_held_bytes` and `shrike_bus_cached_bytes` (payloads in memory).
async fn report_held(bus: MemoryBus, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        for topic in PIPELINE {
            let (records, bytes, cached) = bus.held(topic);
            metrics::gauge!("shrike_bus_held_records", "topic" => topic.name()).set(records as f64);
            metrics::gauge!("shrike_bus_held_bytes", "topic" => topic.name()).set(bytes as f64);
            metrics::gauge!("shrike_bus_cached_bytes", "topic" => topic.name()).set(cached as f64);
        }
    }
}

async fn drain(bus: &MemoryBus, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if PIPELINE.iter().all(|t| bus.lag(*t) == 0) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pipeline_runs_at_a_lower_priority_than_its_caller() {
        let own = thread_nice();
        let pipeline = Pipeline::start(3).expect("pipeline runtime");
        let theirs = pipeline
            .handle
            .block_on(pipeline.spawn(async { thread_nice() }))
            .expect("task ran");
        assert_eq!(theirs, (own + 3).min(19));
        assert_eq!(thread_nice(), own, "the caller's priority is unchanged");
        drop(pipeline);
        let equal = Pipeline::start(0).expect("pipeline runtime");
        let theirs = equal
            .handle
            .block_on(equal.spawn(async { thread_nice() }))
            .expect("task ran");
        assert_eq!(theirs, own);
    }
}
