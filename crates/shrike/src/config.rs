//! `shrike.toml`: one typed config with a section per service, every key defaulted, overridable by
//! `SHRIKE__SECTION__KEY` environment variables, validated once at start-up with errors naming the
//! offending key.

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use shrike_alerter::AlerterConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where `shrike up` keeps its local state (the managed ClickHouse's data).
    pub data_dir: PathBuf,
    /// ClickHouse connection, or the local server to start.
    pub clickhouse: ClickHouseSection,
    /// The HTTP ingest endpoint.
    pub ingest: IngestSection,
    /// The in-memory bus of `shrike up`.
    pub bus: BusSection,
    /// Kafka, for the per-service commands.
    pub kafka: KafkaSection,
    /// The grouper.
    pub grouper: GrouperSection,
    /// Per-project grouping rules.
    pub grouping: GroupingSection,
    /// The alerter.
    pub alerter: AlerterConfig,
    /// The project `shrike up` creates and prints the DSN of.
    pub default_project: String,
    /// Where every service (and `shrike up`) serves `/healthz`, `/readyz` and `/metrics`, apart
    /// from the port SDKs reach (empty: not served). Loopback by default: metrics are not for
    /// the public.
    pub ops_listen: String,
    /// `shrike up`: the nice value of the pipeline's threads (normalizer, grouper, writers,
    /// alerter) relative to ingest's, 0–19. When the machine is short of CPU, ingest keeps
    /// answering SDKs and the backlog waits in the bus; 0 shares the CPU equally.
    pub pipeline_nice: i32,
}

/// `[clickhouse]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClickHouseSection {
    /// HTTP URL of an existing server; empty means "start a local one under `data_dir`".
    pub url: String,
    /// Database name.
    pub database: String,
    /// User (of a configured `url`; the local server has one user of its own, see
    /// `shrike_store::local`).
    pub user: String,
    /// Password (of a configured `url`; the local server's is generated and kept in
    /// `data_dir/clickhouse/password`).
    pub password: String,
    /// HTTP port of the local server.
    pub local_http_port: u16,
    /// Native TCP port of the local server.
    pub local_tcp_port: u16,
    /// LZ4 compression of inserts and results; by default on for a configured `url` and off for
    /// the local server `shrike up` manages (loopback, where it costs CPU and saves nothing).
    pub compression: Option<bool>,
}

impl Default for ClickHouseSection {
    fn default() -> Self {
        ClickHouseSection {
            url: String::new(),
            database: "shrike".into(),
            user: "default".into(),
            password: String::new(),
            local_http_port: 18123,
            local_tcp_port: 19000,
            compression: None,
        }
    }
}

impl ClickHouseSection {
    /// The configured URL, or that of the local server `shrike up` manages.
    pub fn effective_url(&self) -> String {
        if self.url.is_empty() {
            format!("http://127.0.0.1:{}", self.local_http_port)
        } else {
            self.url.clone()
        }
    }

    /// [`Self::effective_url`] with any password in it replaced, for messages and logs.
    pub fn display_url(&self) -> String {
        redact_url(&self.effective_url())
    }
}

/// `url` with the password of its user info (if any) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => "(not a URL)".to_owned(),
    }
}

/// `[ingest]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestSection {
    /// Address to listen on.
    pub listen: String,
    /// The URL SDKs reach ingest at, used in printed DSNs; defaults to `http://{listen}`.
    pub public_url: String,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Requests handled at once; more wait for a turn.
    pub max_concurrent_requests: usize,
    /// Connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// Seconds without traffic after which a connection is closed.
    pub idle_timeout_secs: u64,
    /// Largest decompressed body, bytes.
    pub max_decompressed_bytes: usize,
    /// MiB of request bodies (as received and decompressed) held in memory at once, all requests
    /// together; a request that cannot get its share within a second gets 503.
    pub request_memory_mib: usize,
    /// Failed authentications one client address may make at once...
    pub auth_failure_burst: u32,
    /// ...and per second after that; beyond it, its failures get 429 and a closed connection.
    pub auth_failures_per_sec: f64,
    /// Largest event, bytes.
    pub max_event_bytes: usize,
    /// Largest check-in, bytes.
    pub max_check_in_bytes: usize,
    /// Largest attachment, bytes.
    pub max_attachment_bytes: usize,
    /// Rate limits (`[[ingest.quotas]]`); none by default.
    pub quotas: Vec<shrike_ingest::Quota>,
    /// Seconds between project key refreshes.
    pub key_refresh_secs: u64,
}

impl Default for IngestSection {
    fn default() -> Self {
        let defaults = shrike_ingest::IngestConfig::default();
        IngestSection {
            listen: "127.0.0.1:8300".into(),
            public_url: String::new(),
            max_body_bytes: defaults.max_body_bytes,
            max_concurrent_requests: defaults.max_concurrent_requests,
            max_connections: defaults.max_connections,
            idle_timeout_secs: defaults.idle_timeout.as_secs(),
            max_decompressed_bytes: defaults.max_decompressed_bytes,
            request_memory_mib: defaults.request_memory_bytes >> 20,
            auth_failure_burst: defaults.auth_failure_burst,
            auth_failures_per_sec: defaults.auth_failures_per_sec,
            max_event_bytes: defaults.max_event_bytes,
            max_check_in_bytes: defaults.max_check_in_bytes,
            max_attachment_bytes: defaults.max_attachment_bytes,
            quotas: defaults.quotas,
            key_refresh_secs: defaults.key_refresh.as_secs(),
        }
    }
}

/// `[bus]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusSection {
    /// Journal the bus of `shrike up` to disk under `data_dir/bus`, so that what ingest accepted
    /// survives a crash and a backlog costs disk rather than memory.
    pub durable: bool,
    /// Most uncommitted records per topic in the bus of `shrike up`; beyond it ingest answers 503.
    pub memory_capacity: usize,
    /// Without `durable`: most MiB of uncommitted records per topic in the bus of `shrike up`;
    /// beyond it ingest answers 503. Either way, what a topic nobody consumes keeps.
    pub memory_max_mib: usize,
    /// With `durable`: MiB of payloads per topic the bus keeps in memory; records that arrive
    /// while they fill it are read back from the journal when consumed.
    pub cache_mib: usize,
    /// With `durable`: most MiB of uncommitted records per topic in the journal; beyond it ingest
    /// answers 503.
    pub disk_max_mib: usize,
    /// How long a send to a full topic of the bus of `shrike up` waits for room before ingest
    /// answers 503, milliseconds.
    pub memory_send_wait_ms: u64,
}

impl BusSection {
    /// `memory_max_mib` in bytes.
    pub fn memory_topic_bytes(&self) -> usize {
        self.memory_max_mib.saturating_mul(1 << 20)
    }

    /// `cache_mib` in bytes.
    pub fn cache_bytes(&self) -> usize {
        self.cache_mib.saturating_mul(1 << 20)
    }

    /// Bytes of uncommitted records each topic of the bus of `shrike up` may hold.
    pub fn topic_bytes(&self) -> usize {
        if self.durable {
            self.disk_max_mib.saturating_mul(1 << 20)
        } else {
            self.memory_topic_bytes()
        }
    }
}

impl Default for BusSection {
    fn default() -> Self {
        BusSection {
            durable: true,
            memory_capacity: 1_000_000,
            memory_max_mib: 32,
            cache_mib: 16,
            disk_max_mib: 4096,
            memory_send_wait_ms: 1000,
        }
    }
}

/// `[kafka]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSection {
    /// `bootstrap.servers`; required by `shrike ingest|normalizer|grouper` and `topics create`.
    pub bootstrap_servers: String,
    /// Prefix of every topic name.
    pub topic_prefix: String,
    /// Partitions of topics created by `shrike topics create` (the unit of scaling out).
    pub partitions: i32,
    /// Replication factor of created topics.
    pub replication: i32,
    /// Most records the producer holds undelivered before ingest answers 503.
    pub producer_queue_messages: usize,
    /// How long ingest waits for the broker's acknowledgement before answering 503, milliseconds.
    pub send_timeout_ms: u64,
    /// Create missing topics at service start instead of refusing to start.
    pub create_topics: bool,
    /// Extra librdkafka properties for every client (e.g. `security.protocol`, `sasl.username`).
    pub properties: std::collections::HashMap<String, String>,
    /// What a consumer does when its group's committed offset is no longer on the broker
    /// (retention deleted records it never processed): `fail` stops the service with an error
    /// naming the partition and how many offsets are lost; `earliest` logs and counts the loss
    /// and goes on from the oldest record left.
    pub offset_reset: shrike_bus::kafka::OffsetReset,
}

impl Default for KafkaSection {
    fn default() -> Self {
        KafkaSection {
            bootstrap_servers: String::new(),
            topic_prefix: "shrike-".into(),
            partitions: 8,
            replication: 1,
            producer_queue_messages: 100_000,
            send_timeout_ms: 5_000,
            create_topics: false,
            properties: Default::default(),
            offset_reset: Default::default(),
        }
    }
}

/// `[grouper]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrouperSection {
    /// Most events per ClickHouse insert.
    pub batch_rows: usize,
    /// Most input bytes per ClickHouse insert.
    pub batch_bytes: usize,
    /// Longest wait before a partial batch is inserted, milliseconds.
    pub batch_wait_ms: u64,
}

impl Default for GrouperSection {
    fn default() -> Self {
        GrouperSection {
            batch_rows: 10_000,
            batch_bytes: 32 * 1024 * 1024,
            batch_wait_ms: 1_000,
        }
    }
}

/// `[grouping]`: per-project rules in Sentry's syntax, under `[grouping.projects.<id>]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupingSection {
    /// Project id → its rules.
    pub projects: std::collections::BTreeMap<String, ProjectGroupingSection>,
}

/// `[grouping.projects.<id>]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectGroupingSection {
    /// Stack-trace rules (`path:**/vendor/** -app`, `function:log_* -group`), one per line,
    /// applied after Shrike's defaults.
    pub stack_rules: String,
    /// Fingerprint rules (`error.type:Timeout -> timeouts`), one per line, tried before the
    /// built-in ones.
    pub fingerprint_rules: String,
}

impl Config {
    /// Every project's grouping settings, parsed.
    pub fn grouping(&self) -> anyhow::Result<shrike_grouping::ProjectConfigs> {
        let mut configs = shrike_grouping::ProjectConfigs::default();
        for (id, rules) in &self.grouping.projects {
            let project: u64 = id
                .parse()
                .with_context(|| format!("grouping.projects.{id}: not a project id"))?;
            let config = shrike_grouping::GroupingConfig::with_project_rules(
                &rules.stack_rules,
                &rules.fingerprint_rules,
            )
            .with_context(|| format!("grouping.projects.{id}"))?;
            configs.insert(project, config);
        }
        Ok(configs)
    }

    /// Loads defaults, then the file (when it exists, or always when `explicit`), then the
    /// environment, and validates the result.
    pub fn load(path: &Path, explicit: bool) -> anyhow::Result<Self> {
        if explicit && !path.exists() {
            bail!("config file {} does not exist", path.display());
        }
        let defaults = Config {
            data_dir: ".shrike".into(),
            default_project: "default".into(),
            ops_listen: "127.0.0.1:8301".into(),
            pipeline_nice: 10,
            ..Default::default()
        };
        let config: Config = Figment::from(Serialized::defaults(defaults))
            .merge(Toml::file(path))
            .merge(Env::prefixed("SHRIKE__").split("__").lowercase(true))
            .extract()
            .with_context(|| {
                format!(
                    "invalid configuration (file {}, SHRIKE__* variables)",
                    path.display()
                )
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Where the local ClickHouse server keeps its data, config and password.
    pub fn local_clickhouse_dir(&self) -> PathBuf {
        self.data_dir.join("clickhouse")
    }

    /// A store handle: the configured server with the configured credentials, or the local
    /// server with its own (generated by its first start).
    pub fn store(&self) -> anyhow::Result<shrike_store::Store> {
        let c = &self.clickhouse;
        let (user, password) = if c.url.is_empty() {
            let dir = self.local_clickhouse_dir();
            let password = std::fs::read_to_string(dir.join("password")).with_context(|| {
                format!(
                    "no local clickhouse under {} (is `shrike up` running?)",
                    dir.display()
                )
            })?;
            (
                shrike_store::local::USER.to_owned(),
                password.trim().to_owned(),
            )
        } else {
            (c.user.clone(), c.password.clone())
        };
        Ok(shrike_store::Store::new(&shrike_store::StoreConfig {
            url: c.effective_url(),
            database: c.database.clone(),
            user,
            password,
            compression: c.compression.unwrap_or(!c.url.is_empty()),
        })?)
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.listen_addr()?;
        if !self.ops_listen.is_empty() {
            self.ops_listen
                .parse::<SocketAddr>()
                .with_context(|| format!("ops_listen: {:?} is not host:port", self.ops_listen))?;
        }
        if self.ingest.request_memory_mib < 32 {
            // A brotli decoder alone may take 16 MiB.
            bail!("ingest.request_memory_mib must be at least 32");
        }
        if !self.clickhouse.url.is_empty() && url::Url::parse(&self.clickhouse.url).is_err() {
            bail!("clickhouse.url is not a URL");
        }
        if self.grouper.batch_rows == 0 {
            bail!("grouper.batch_rows must be at least 1");
        }
        if self.bus.memory_capacity == 0 {
            bail!("bus.memory_capacity must be at least 1");
        }
        if self.bus.memory_max_mib == 0 {
            bail!("bus.memory_max_mib must be at least 1");
        }
        if self.bus.cache_mib == 0 {
            bail!("bus.cache_mib must be at least 1");
        }
        if !(0..=19).contains(&self.pipeline_nice) {
            bail!("pipeline_nice must be between 0 and 19");
        }
        if self.bus.disk_max_mib == 0 {
            bail!("bus.disk_max_mib must be at least 1");
        }
        if self.default_project.trim().is_empty() {
            bail!("default_project must not be empty");
        }
        shrike_alerter::Schedule::parse(&self.alerter.schedule).context("alerter.schedule")?;
        self.grouping()?;
        Ok(())
    }

    /// The ingest listen address.
    pub fn listen_addr(&self) -> anyhow::Result<SocketAddr> {
        self.ingest
            .listen
            .parse()
            .with_context(|| format!("ingest.listen: {:?} is not host:port", self.ingest.listen))
    }

    /// The base URL DSNs point at.
    pub fn public_url(&self) -> String {
        if self.ingest.public_url.is_empty() {
            format!("http://{}", self.ingest.listen)
        } else {
            self.ingest.public_url.clone()
        }
    }

    /// The Kafka client settings; fails when no bootstrap servers are configured.
    pub fn kafka(&self) -> anyhow::Result<shrike_bus::kafka::KafkaConfig> {
        let k = &self.kafka;
        if k.bootstrap_servers.trim().is_empty() {
            bail!(
                "kafka.bootstrap_servers is empty: set it in shrike.toml, with SHRIKE__KAFKA__BOOTSTRAP_SERVERS or --kafka"
            );
        }
        if k.partitions < 1 || k.replication < 1 {
            bail!("kafka.partitions and kafka.replication must be at least 1");
        }
        Ok(shrike_bus::kafka::KafkaConfig {
            bootstrap_servers: k.bootstrap_servers.clone(),
            topic_prefix: k.topic_prefix.clone(),
            producer_queue_messages: k.producer_queue_messages.max(1),
            send_timeout: std::time::Duration::from_millis(k.send_timeout_ms.max(1)),
            extra: k.properties.clone(),
            offset_reset: k.offset_reset,
        })
    }

    /// The grouper's config in `shrike up`. A batch's records are held in memory until the batch
    /// is written, so a batch is kept to 8 MiB; without `bus.durable` they also stay in the
    /// normalized topic, so it is kept to a quarter of a topic's bytes too: the normalizer is then
    /// not blocked on a full topic while the grouper fills and writes one (at 10,000 events/s that
    /// blocking stalled the pipeline every batch).
    pub fn grouper_on_memory_bus(&self) -> shrike_grouper::service::GrouperConfig {
        let mut config = self.grouper(true);
        let mut cap = 8 << 20;
        if !self.bus.durable {
            cap = self.bus.memory_topic_bytes() / 4;
        }
        config.batch_bytes = config.batch_bytes.min(cap);
        config
    }

    /// The grouper's own config.
    pub fn grouper(&self, seed_from_store: bool) -> shrike_grouper::service::GrouperConfig {
        shrike_grouper::service::GrouperConfig {
            batch_rows: self.grouper.batch_rows,
            batch_bytes: self.grouper.batch_bytes,
            batch_wait: std::time::Duration::from_millis(self.grouper.batch_wait_ms),
            seed_from_store,
        }
    }

    /// The ingest service's own config.
    pub fn ingest(&self) -> shrike_ingest::IngestConfig {
        shrike_ingest::IngestConfig {
            max_body_bytes: self.ingest.max_body_bytes,
            max_concurrent_requests: self.ingest.max_concurrent_requests,
            max_connections: self.ingest.max_connections,
            idle_timeout: std::time::Duration::from_secs(self.ingest.idle_timeout_secs.max(1)),
            max_decompressed_bytes: self.ingest.max_decompressed_bytes,
            request_memory_bytes: self.ingest.request_memory_mib.saturating_mul(1 << 20),
            auth_failure_burst: self.ingest.auth_failure_burst,
            auth_failures_per_sec: self.ingest.auth_failures_per_sec,
            max_event_bytes: self.ingest.max_event_bytes,
            max_check_in_bytes: self.ingest.max_check_in_bytes,
            max_attachment_bytes: self.ingest.max_attachment_bytes,
            quotas: self.ingest.quotas.clone(),
            key_refresh: std::time::Duration::from_secs(self.ingest.key_refresh_secs.max(1)),
        }
    }
}

#[cfg(test)]
// figment's Jail API returns its large error type by design.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn file_and_environment_override_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "shrike.toml",
                "[alerter]\nschedule = \"*/10 * * * * *\"\nrecipients = [\"dev@example.com\"]\n[alerter.smtp]\nport = 2525\n",
            )?;
            jail.set_env("SHRIKE__INGEST__LISTEN", "127.0.0.1:9999");
            jail.set_env("SHRIKE__CLICKHOUSE__URL", "http://127.0.0.1:8123");
            let config = Config::load(Path::new("shrike.toml"), true).map_err(|e| e.to_string())?;
            assert_eq!(config.alerter.schedule, "*/10 * * * * *");
            assert_eq!(config.alerter.smtp.port, 2525);
            assert_eq!(config.alerter.recipients, vec!["dev@example.com"]);
            assert_eq!(config.ingest.listen, "127.0.0.1:9999");
            assert_eq!(config.public_url(), "http://127.0.0.1:9999");
            assert_eq!(config.clickhouse.url, "http://127.0.0.1:8123");
            assert_eq!(config.clickhouse.database, "shrike");
            assert_eq!(config.data_dir, PathBuf::from(".shrike"));
            Ok(())
        });
    }

    #[test]
    fn invalid_values_name_their_key() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("shrike.toml", "[alerter]\nschedule = \"often\"\n")?;
            let error = Config::load(Path::new("shrike.toml"), true).expect_err("invalid schedule");
            assert!(
                format!("{error:#}").contains("alerter.schedule"),
                "{error:#}"
            );
            jail.create_file("shrike.toml", "[ingest]\nlisten = \"nowhere\"\n")?;
            let error = Config::load(Path::new("shrike.toml"), true).expect_err("invalid listen");
            assert!(format!("{error:#}").contains("ingest.listen"), "{error:#}");
            jail.create_file("shrike.toml", "[alerter.smtp]\ntls = \"sometimes\"\n")?;
            let error = Config::load(Path::new("shrike.toml"), true).expect_err("invalid tls");
            assert!(format!("{error:#}").contains("tls"), "{error:#}");
            jail.create_file("shrike.toml", "[ingest]\nlisen = \"typo\"\n")?;
            let error = Config::load(Path::new("shrike.toml"), true).expect_err("unknown key");
            assert!(format!("{error:#}").contains("lisen"), "{error:#}");
            Ok(())
        });
    }

    #[test]
    fn shrike_up_keeps_a_grouper_batch_to_8_mib_and_a_quarter_of_a_memory_topic() {
        let mut config = Config::default();
        assert!(config.bus.durable);
        assert_eq!(config.grouper_on_memory_bus().batch_bytes, 8 << 20);
        config.grouper.batch_bytes = 1 << 20;
        assert_eq!(config.grouper_on_memory_bus().batch_bytes, 1 << 20);
        config.bus.memory_max_mib = 128;
        config.grouper.batch_bytes = 64 << 20;
        assert_eq!(config.grouper_on_memory_bus().batch_bytes, 8 << 20);
        config.bus.durable = false;
        assert_eq!(config.grouper_on_memory_bus().batch_bytes, 32 << 20);
        config.bus.memory_max_mib = 8;
        assert_eq!(config.grouper_on_memory_bus().batch_bytes, 2 << 20);
        assert_eq!(config.grouper(true).batch_bytes, 64 << 20);
    }

    #[test]
    fn the_example_config_documents_the_defaults() {
        // The manifest directory at run time: a test binary built from another checkout that
        // shares the target directory must not read that checkout's files.
        let manifest = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(
            || env!("CARGO_MANIFEST_DIR").into(),
            std::path::PathBuf::from,
        );
        let example = manifest.join("../../deploy/shrike.example.toml");
        let loaded = Config::load(&example, true).expect("example config loads");
        let defaults =
            Config::load(Path::new("/nonexistent/shrike.toml"), false).expect("defaults");
        let as_json = |c: &Config| serde_json::to_value(c).expect("serializes");
        assert_eq!(as_json(&loaded), as_json(&defaults));
    }

    #[test]
    fn a_missing_explicit_file_is_an_error() {
        assert!(Config::load(Path::new("/nonexistent/shrike.toml"), true).is_err());
    }
}
