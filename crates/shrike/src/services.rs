//! The four services as tasks, shared by `shrike up` (in-memory bus) and the per-service commands
//! `shrike ingest|normalizer|grouper|alerter` (Kafka). A consumer service that fails on the bus is
//! restarted with a fresh consumer after a pause, exactly as if its process had been restarted:
//! it resumes from the last commit.

use crate::config::Config;
use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use shrike_bus::kafka::{KafkaConsumer, KafkaProducer};
use shrike_bus::{Consumer, Fatal, FencedConsumer, Producer, Topic};
use shrike_grouper::writers::TableWriter;
use shrike_ingest::{IngestState, KeyCache, Outcomes};
use shrike_store::Store;
use std::future::Future;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Which service a per-service command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// HTTP ingest.
    Ingest,
    /// Normalizer.
    Normalizer,
    /// Grouper.
    Grouper,
    /// Alerter.
    Alerter,
}

/// Installs the Prometheus recorder once per process.
pub fn metrics() -> anyhow::Result<PrometheusHandle> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")
}

/// Binds ingest and serves until `stop` fires.
pub async fn serve_ingest<P: Producer>(
    config: &Config,
    store: Store,
    producer: P,
    stop: CancellationToken,
) -> anyhow::Result<JoinHandle<()>> {
    let listen = config.listen_addr()?;
    let keys = KeyCache::new(store.clone());
    keys.refresh().await.context("loading project keys")?;
    let refresher = keys.spawn_refresher(config.ingest().key_refresh);
    // Outcomes are flushed every second until ingest stops, then once more.
    let outcomes = Outcomes::default();
    let flusher = outcomes.spawn_flusher(producer.clone(), Duration::from_secs(1), stop.clone());
    let ingest = config.ingest();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let listener =
        shrike_ingest::LimitedListener::new(listener, ingest.max_connections, ingest.idle_timeout);
    let state = IngestState::new(producer, keys, ingest, outcomes);
    let app = shrike_ingest::router(state);
    tracing::info!(%listen, "ingest listening");
    Ok(tokio::spawn(async move {
        shrike_ingest::serve(listener, app, stop).await;
        refresher.abort();
        let _ = flusher.await;
    }))
}

/// Runs `service` until it returns cleanly (shutdown); restarts it after a bus failure, but not
/// after a fatal one (which it returns: the process must stop and an operator decide).
pub async fn supervise<F, Fut, E>(
    name: &'static str,
    shutdown: CancellationToken,
    mut service: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> anyhow::Result<Fut>,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display + Fatal + Send + Sync + 'static,
{
    loop {
        let error = match service() {
            Ok(running) => match running.await {
                Ok(()) => return Ok(()),
                Err(error) if error.is_fatal() => {
                    return Err(anyhow::anyhow!("{error}").context(format!("{name} stopped")));
                }
                Err(error) => error.to_string(),
            },
            Err(error) => format!("{error:#}"),
        };
        tracing::error!(service = name, %error, "service failed; restarting from the last commit");
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = shutdown.cancelled() => return Ok(()),
        }
    }
}

/// The normalizer over any bus.
pub async fn normalizer<C: Consumer, P: Producer>(
    make: impl FnMut() -> anyhow::Result<C>,
    producer: P,
    grouping: std::sync::Arc<shrike_grouping::ProjectConfigs>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut make = make;
    supervise("normalizer", shutdown.clone(), || {
        let consumer = make()?;
        Ok(shrike_normalizer::service::run(
            consumer,
            producer.clone(),
            grouping.clone(),
            shutdown.clone(),
        ))
    })
    .await
}

/// The grouper over any bus.
pub async fn grouper<C: FencedConsumer>(
    make: impl FnMut() -> anyhow::Result<C>,
    store: Store,
    config: shrike_grouper::service::GrouperConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut make = make;
    supervise("grouper", shutdown.clone(), || {
        let consumer = make()?;
        Ok(shrike_grouper::service::run(
            consumer,
            store.clone(),
            config,
            shutdown.clone(),
        ))
    })
    .await
}

/// A table writer (check-ins, outcomes) over any bus; runs beside the grouper.
pub async fn table_writer<W: TableWriter, C: Consumer, P: Producer>(
    make: impl FnMut() -> anyhow::Result<C>,
    producer: P,
    store: Store,
    wait: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut make = make;
    supervise(W::GROUP, shutdown.clone(), || {
        let consumer = make()?;
        Ok(shrike_grouper::writers::run::<W, C, P>(
            consumer,
            producer.clone(),
            store.clone(),
            wait,
            shutdown.clone(),
        ))
    })
    .await
}

/// Runs one service against Kafka until SIGTERM or Ctrl-C.
pub async fn run(config: Config, service: Service) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            crate::up::shutdown_signal().await;
            tracing::info!("signal received: stopping");
            shutdown.cancel();
        });
    }
    let metrics = metrics()?;
    let store = if service == Service::Normalizer {
        None
    } else {
        Some(crate::existing_store(&config).await?)
    };
    crate::http::serve(&config.ops_listen, store.clone(), metrics).await?;
    // Every service but the normalizer has connected to ClickHouse above.
    let store = || store.clone().expect("connected above");
    if service == Service::Alerter {
        let store = store();
        let alerter = shrike_alerter::Alerter::new(store, config.alerter.clone())
            .context("alerter config")?;
        alerter.run(shutdown).await;
        return Ok(());
    }
    let kafka = config.kafka()?;
    if config.kafka.create_topics {
        shrike_bus::kafka::create_topics(&kafka, config.kafka.partitions, config.kafka.replication)
            .await?;
    }
    shrike_bus::kafka::validate_topics(&kafka)?;
    let producer = KafkaProducer::new(&kafka)?;
    match service {
        Service::Ingest => {
            let store = store();
            let stop = CancellationToken::new();
            let server = serve_ingest(&config, store, producer.clone(), stop.clone()).await?;
            shutdown.cancelled().await;
            stop.cancel();
            let _ = server.await;
            let producer = producer.clone();
            tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10))).await??;
        }
        Service::Normalizer => {
            let make = || {
                Ok(KafkaConsumer::new(
                    &kafka,
                    shrike_normalizer::service::GROUP,
                    &[Topic::RawEvents],
                    None,
                )?)
            };
            let grouping = std::sync::Arc::new(config.grouping()?);
            normalizer(make, producer.clone(), grouping, shutdown).await?;
        }
        Service::Grouper => {
            let store = store();
            let make = || {
                Ok(KafkaConsumer::new(
                    &kafka,
                    shrike_grouper::service::GROUP,
                    &[Topic::NormalizedEvents],
                    Some(producer.clone()),
                )?)
            };
            let wait = Duration::from_millis(config.grouper.batch_wait_ms);
            let kafka_writer = |group: &'static str, topic: Topic| {
                let kafka = kafka.clone();
                move || Ok(KafkaConsumer::new(&kafka, group, &[topic], None)?)
            };
            use shrike_grouper::writers::{Attachments, CheckIns, Outcomes as OutcomeWriter};
            let check_ins = table_writer::<CheckIns, _, _>(
                kafka_writer(CheckIns::GROUP, Topic::CheckIns),
                producer.clone(),
                store.clone(),
                wait,
                shutdown.clone(),
            );
            let outcomes = table_writer::<OutcomeWriter, _, _>(
                kafka_writer(OutcomeWriter::GROUP, Topic::Outcomes),
                producer.clone(),
                store.clone(),
                wait,
                shutdown.clone(),
            );
            let attachments = table_writer::<Attachments, _, _>(
                kafka_writer(Attachments::GROUP, Topic::Attachments),
                producer.clone(),
                store.clone(),
                wait,
                shutdown.clone(),
            );
            tokio::try_join!(
                grouper(make, store, config.grouper(false), shutdown.clone()),
                check_ins,
                outcomes,
                attachments
            )?;
        }
        Service::Alerter => {}
    }
    tracing::info!("stopped");
    Ok(())
}
