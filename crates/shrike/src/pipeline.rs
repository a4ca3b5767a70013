//! One wiring of the services for both modes: `shrike up` runs all of them over the local bus,
//! the per-service commands one each over Kafka. Each consumer service subscribes when it is
//! wired (so nothing produced after that is missed) and then runs under
//! [`shrike_consumer::supervise`]: restarted from its last commit after a failure.

use crate::config::Config;
use anyhow::Context;
use shrike_bus::kafka::{KafkaConfig, KafkaConsumer, KafkaProducer, LagBoard, Linger};
use shrike_bus::local::LocalConsumer;
use shrike_bus::{FencedConsumer, LocalBus, Producer, TopicName};
use shrike_consumer::supervise;
use shrike_ingest::{IngestState, KeyCache, Outcomes};
use shrike_messages::Topic;
use shrike_store::Store;
use shrike_writers::TableWriter;
use std::future::Future;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A bus the services can run on.
pub trait Bus: Clone + Send + Sync + 'static {
    /// Its producer.
    type Producer: Producer;
    /// Its consumer.
    type Consumer: FencedConsumer;
    /// A producer.
    fn producer(&self) -> Self::Producer;
    /// A member of `group` reading `topic`.
    fn consumer(&self, topic: Topic, group: &'static str) -> anyhow::Result<Self::Consumer>;
}

impl Bus for LocalBus {
    type Producer = LocalBus;
    type Consumer = LocalConsumer;

    fn producer(&self) -> LocalBus {
        self.clone()
    }

    fn consumer(&self, topic: Topic, group: &'static str) -> anyhow::Result<LocalConsumer> {
        Ok(LocalBus::consumer(self, topic.name(), group))
    }
}

/// Kafka, for the per-service commands.
#[derive(Clone)]
pub struct Kafka {
    config: KafkaConfig,
    producer: KafkaProducer,
    lag: LagBoard,
}

impl Kafka {
    /// Checks that the topics exist (creating them first when `kafka.create_topics`), and makes
    /// the process's producer (lingering as `linger` says); its consumers report their lag to
    /// `lag`.
    pub async fn connect(
        config: &KafkaConfig,
        linger: Linger,
        lag: LagBoard,
    ) -> anyhow::Result<Kafka> {
        if config.create_topics {
            create_topics(config).await?;
        }
        shrike_bus::kafka::validate_topics(config, &Topic::NAMES)?;
        Ok(Kafka {
            config: config.clone(),
            producer: KafkaProducer::new(config, linger)?,
            lag,
        })
    }
}

impl Bus for Kafka {
    type Producer = KafkaProducer;
    type Consumer = KafkaConsumer;

    fn producer(&self) -> KafkaProducer {
        self.producer.clone()
    }

    fn consumer(&self, topic: Topic, group: &'static str) -> anyhow::Result<KafkaConsumer> {
        Ok(KafkaConsumer::new(
            &self.config,
            group,
            &[topic.name()],
            Some(self.producer.clone()),
            &self.lag,
        )?)
    }
}

/// Creates every topic (the compacted ones compacted); returns the topics created.
pub async fn create_topics(config: &KafkaConfig) -> anyhow::Result<Vec<String>> {
    let compacted: Vec<TopicName> = Topic::ALL
        .into_iter()
        .filter(|t| t.compacted())
        .map(Topic::name)
        .collect();
    Ok(shrike_bus::kafka::create_topics(config, &Topic::NAMES, &compacted).await?)
}

/// Subscribes a member of `group` to `topic` now; the function returned hands that member out
/// first, then a new one on each call (after a failure).
fn members<B: Bus>(
    bus: &B,
    topic: Topic,
    group: &'static str,
) -> anyhow::Result<impl FnMut() -> anyhow::Result<B::Consumer> + Send + 'static> {
    let mut first = Some(bus.consumer(topic, group)?);
    let bus = bus.clone();
    Ok(move || match first.take() {
        Some(member) => Ok(member),
        None => bus.consumer(topic, group),
    })
}

/// The normalizer on `bus`.
pub fn normalizer<B: Bus>(
    bus: &B,
    projects: shrike_normalizer::SharedProjects,
    config: shrike_normalizer::NormalizerConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<impl Future<Output = anyhow::Result<()>> + Send + 'static> {
    let mut member = members(bus, Topic::RawEvents, shrike_normalizer::GROUP)?;
    let producer = bus.producer();
    Ok(supervise("normalizer", shutdown.clone(), move || {
        Ok(shrike_normalizer::run(
            member()?,
            producer.clone(),
            projects.clone(),
            config,
            shutdown.clone(),
        ))
    }))
}

/// The grouper on `bus`.
pub fn grouper<B: Bus>(
    bus: &B,
    store: Store,
    config: shrike_grouper::GrouperConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<impl Future<Output = anyhow::Result<()>> + Send + 'static> {
    let mut member = members(bus, Topic::NormalizedEvents, shrike_grouper::GROUP)?;
    Ok(supervise("grouper", shutdown.clone(), move || {
        Ok(shrike_grouper::run(
            member()?,
            store.clone(),
            config,
            shutdown.clone(),
        ))
    }))
}

/// The table writer `W` on `bus`.
pub fn writer<W: TableWriter, B: Bus>(
    bus: &B,
    store: Store,
    wait: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<impl Future<Output = anyhow::Result<()>> + Send + 'static> {
    let mut member = members(bus, W::TOPIC, W::GROUP)?;
    let producer = bus.producer();
    Ok(supervise(W::GROUP, shutdown.clone(), move || {
        Ok(shrike_writers::run::<W, _, _>(
            member()?,
            producer.clone(),
            store.clone(),
            wait,
            shutdown.clone(),
        ))
    }))
}

/// A service, ready to run.
pub type Task = std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// The grouper and the table writers, which run together: everything that writes ClickHouse
/// (and the retention task that removes what expired).
pub fn writers<B: Bus>(
    bus: &B,
    store: &Store,
    config: shrike_grouper::GrouperConfig,
    shutdown: &CancellationToken,
) -> anyhow::Result<Vec<Task>> {
    use shrike_writers::{AttachmentWriter, CheckInWriter, OutcomeWriter};
    let wait = Duration::from_millis(config.batch_wait_ms);
    let s = shutdown;
    Ok(vec![
        Box::pin(grouper(bus, store.clone(), config, s.clone())?),
        Box::pin(writer::<CheckInWriter, B>(
            bus,
            store.clone(),
            wait,
            s.clone(),
        )?),
        Box::pin(writer::<OutcomeWriter, B>(
            bus,
            store.clone(),
            wait,
            s.clone(),
        )?),
        Box::pin(writer::<AttachmentWriter, B>(
            bus,
            store.clone(),
            wait,
            s.clone(),
        )?),
        Box::pin(retention(store.clone(), s.clone())),
    ])
}

/// How often expired partitions are looked for.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// Drops expired partitions (`[retention]`) at start and then hourly, beside the writers: the
/// process that inserts event data also removes it. A failure is logged and tried again later.
async fn retention(store: Store, shutdown: CancellationToken) -> anyhow::Result<()> {
    loop {
        match store.server_now().await {
            Ok(now) => {
                if let Err(error) = store.drop_expired(now).await {
                    tracing::warn!(%error, "dropping expired partitions failed; trying again later");
                }
            }
            Err(error) => tracing::warn!(%error, "retention: clickhouse unreachable"),
        }
        tokio::select! {
            () = tokio::time::sleep(RETENTION_EVERY) => {}
            () = shutdown.cancelled() => return Ok(()),
        }
    }
}

/// Binds ingest and serves until `stop` fires; outcomes are flushed every second meanwhile and
/// once more at the end.
pub async fn ingest<P: Producer>(
    config: &Config,
    store: Store,
    producer: P,
    stop: CancellationToken,
) -> anyhow::Result<JoinHandle<()>> {
    let ingest = &config.ingest;
    let listen = ingest.listen_addr().map_err(anyhow::Error::msg)?;
    let keys = KeyCache::new(store);
    keys.refresh().await.context("loading project keys")?;
    let refresher = keys.spawn_refresher(ingest.key_refresh());
    let outcomes = Outcomes::default();
    let flusher = outcomes.spawn_flusher(producer.clone(), Duration::from_secs(1), stop.clone());
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let listener = shrike_ingest::LimitedListener::new(
        listener,
        ingest.max_connections,
        ingest.idle_timeout(),
    );
    let app = shrike_ingest::router(IngestState::new(producer, keys, ingest.clone(), outcomes));
    tracing::info!(%listen, "ingest listening");
    Ok(tokio::spawn(async move {
        shrike_ingest::serve(listener, app, stop).await;
        refresher.abort();
        let _ = flusher.await;
    }))
}

/// The API on `web.listen`, until `stop`.
pub async fn web(
    config: &Config,
    store: Store,
    stop: CancellationToken,
) -> anyhow::Result<JoinHandle<()>> {
    let listen = &config.web.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("web.listen: binding {listen}"))?;
    let app = shrike_api::router(store, config.ingest.public_url(), &config.web);
    tracing::info!(%listen, "API listening");
    Ok(tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "the API server failed");
        }
    }))
}

/// The alerter, when enabled.
pub fn alerter(
    config: &Config,
    store: Store,
    shutdown: CancellationToken,
) -> anyhow::Result<Option<impl Future<Output = ()> + Send + 'static>> {
    if !config.alerter.enabled {
        return Ok(None);
    }
    let alerter =
        shrike_alerter::Alerter::new(store, config.alerter.clone()).context("alerter config")?;
    Ok(Some(alerter.run(shutdown)))
}
