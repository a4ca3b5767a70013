//! `shrike ingest|normalizer|grouper|alerter|web`: one service per process, over Kafka, until SIGTERM
//! or Ctrl-C. The grouper's process also runs the table writers (check-ins, outcomes,
//! attachments): everything that writes ClickHouse.

use crate::config::Config;
use crate::pipeline::{self, Bus, Kafka};
use crate::{ops, runtime};
use shrike_bus::kafka::{LagBoard, Linger};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a consumer's lag must stay high without shrinking before it is not ready.
const LAG_WINDOW: Duration = Duration::from_secs(60);

/// Which service a per-service command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// HTTP ingest.
    Ingest,
    /// Normalizer.
    Normalizer,
    /// Grouper and table writers.
    Grouper,
    /// Alerter.
    Alerter,
    /// The API.
    Web,
}

/// Runs `service` until SIGTERM or Ctrl-C.
pub async fn run(config: Config, service: Service) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            runtime::shutdown_signal().await;
            tracing::info!("signal received: stopping");
            shutdown.cancel();
        });
    }
    let metrics = ops::metrics()?;
    let store = match service {
        Service::Normalizer => None,
        _ => Some(crate::store::connect(&config).await?),
    };
    // Consumers are ready while they keep up (see `kafka.ready_max_lag`).
    let lag = LagBoard::default();
    let readiness: Option<ops::Readiness> = match service {
        Service::Normalizer | Service::Grouper => {
            let (lag, max) = (lag.clone(), config.kafka.ready_max_lag);
            Some(Arc::new(move || lag.keeping_up(max, LAG_WINDOW)))
        }
        Service::Ingest | Service::Alerter | Service::Web => None,
    };
    ops::serve(&config.ops_listen, store.clone(), readiness, metrics).await?;
    if let (Service::Web, Some(store)) = (service, &store) {
        pipeline::web(&config, store.clone(), shutdown)
            .await?
            .await?;
        tracing::info!("stopped");
        return Ok(());
    }
    if let (Service::Alerter, Some(store)) = (service, &store) {
        if let Some(alerter) = pipeline::alerter(&config, store.clone(), shutdown)? {
            alerter.await;
        }
        return Ok(());
    }
    // Ingest's requests wait for their own records; the consumers hand many over at once.
    let linger = match service {
        Service::Ingest => Linger::Short,
        _ => Linger::Batch,
    };
    let bus = Kafka::connect(config.kafka()?, linger, lag).await?;
    match (service, store) {
        (Service::Ingest, Some(store)) => {
            let stop = CancellationToken::new();
            let producer = bus.producer();
            let server = pipeline::ingest(&config, store, producer.clone(), stop.clone()).await?;
            shutdown.cancelled().await;
            stop.cancel();
            let _ = server.await;
            tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10))).await??;
        }
        (Service::Normalizer, _) => {
            // ClickHouse only for the projects' settings: unreachable, the file's apply.
            let projects = crate::settings::shared(&config)?;
            tokio::spawn(crate::settings::keep_fresh(
                config.clone(),
                crate::store::connect(&config).await?,
                Some(projects.clone()),
                shutdown.clone(),
            ));
            pipeline::normalizer(&bus, projects, config.normalizer, shutdown)?.await?;
        }
        (Service::Grouper, Some(store)) => {
            // Retention is stamped at insert: the projects' own settings are read here too.
            tokio::spawn(crate::settings::keep_fresh(
                config.clone(),
                store.clone(),
                None,
                shutdown.clone(),
            ));
            let writers = pipeline::writers(&bus, &store, config.grouper, &shutdown)?;
            run_all(writers, &shutdown).await?;
        }
        _ => unreachable!("every service but the normalizer has a store"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// Runs every task to its end. When one fails (fatally: the others were restarted by their
/// supervisors), the others are asked to stop, and its error is returned.
async fn run_all(tasks: Vec<pipeline::Task>, shutdown: &CancellationToken) -> anyhow::Result<()> {
    let mut running: tokio::task::JoinSet<anyhow::Result<()>> = tasks.into_iter().collect();
    let mut first = Ok(());
    while let Some(ended) = running.join_next().await {
        let result = ended.map_err(anyhow::Error::from).and_then(|r| r);
        if first.is_ok() && result.is_err() {
            shutdown.cancel();
            first = result;
        }
    }
    first
}
