//! `shrike.toml`: one file with a section per service. Each section is declared once, in the crate
//! that uses it (with its defaults); this module only composes them, loads them with figment
//! (defaults, then the file, then `SHRIKE__SECTION__KEY` environment variables), and validates
//! the result with errors naming the offending key.

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where `shrike up` keeps its local state: the bus journal (`bus/`) and the managed
    /// ClickHouse (`clickhouse/`).
    pub data_dir: PathBuf,
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
    /// How often the services that apply projects' own settings (set through the API: retention,
    /// scrubbing, grouping rules) read them again, seconds.
    pub settings_refresh_secs: u64,
    /// ClickHouse: a configured server, or the local one `shrike up` starts.
    pub clickhouse: shrike_store::ClickHouseConfig,
    /// The HTTP endpoint SDKs reach.
    pub ingest: shrike_ingest::IngestConfig,
    /// The bus of `shrike up`.
    pub bus: shrike_bus::local::LocalBusConfig,
    /// Kafka, for the per-service commands.
    pub kafka: shrike_bus::kafka::KafkaConfig,
    /// The normalizer's window of records in flight.
    pub normalizer: shrike_normalizer::NormalizerConfig,
    /// The grouper's batches.
    pub grouper: shrike_grouper::GrouperConfig,
    /// Per-project grouping rules.
    pub grouping: shrike_grouping::GroupingRules,
    /// Per-project scrubbing of secrets.
    pub scrubbing: shrike_normalization::ScrubbingConfig,
    /// The alerter.
    pub alerter: shrike_alerter::AlerterConfig,
    /// The API (`shrike up`, `shrike web`).
    pub web: shrike_api::WebConfig,
    /// Days of event data kept, by default and per project.
    pub retention: shrike_store::RetentionConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: ".shrike".into(),
            default_project: "default".into(),
            ops_listen: "127.0.0.1:8301".into(),
            pipeline_nice: 10,
            settings_refresh_secs: 15,
            clickhouse: Default::default(),
            ingest: Default::default(),
            bus: Default::default(),
            kafka: Default::default(),
            normalizer: Default::default(),
            grouper: Default::default(),
            grouping: Default::default(),
            scrubbing: Default::default(),
            alerter: Default::default(),
            web: Default::default(),
            retention: Default::default(),
        }
    }
}

impl Config {
    /// Loads defaults, then the file (when it exists, or always when `explicit`), then the
    /// environment, and validates the result.
    pub fn load(path: &Path, explicit: bool) -> anyhow::Result<Self> {
        if explicit && !path.exists() {
            bail!("config file {} does not exist", path.display());
        }
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
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

    fn validate(&self) -> anyhow::Result<()> {
        let named = |result: Result<(), String>| result.map_err(anyhow::Error::msg);
        named(self.ingest.validate())?;
        named(self.clickhouse.validate())?;
        named(self.bus.validate())?;
        named(self.web.validate())?;
        named(self.retention.validate())?;
        if !self.ops_listen.is_empty() {
            self.ops_listen
                .parse::<std::net::SocketAddr>()
                .with_context(|| format!("ops_listen: {:?} is not host:port", self.ops_listen))?;
        }
        if self.grouper.batch_rows == 0 {
            bail!("grouper.batch_rows must be at least 1");
        }
        if !(0..=19).contains(&self.pipeline_nice) {
            bail!("pipeline_nice must be between 0 and 19");
        }
        if self.default_project.trim().is_empty() {
            bail!("default_project must not be empty");
        }
        shrike_alerter::Schedule::parse(&self.alerter.schedule).context("alerter.schedule")?;
        named(self.grouping.configs().map(drop))?;
        named(self.scrubbing.scrubbers().map(drop))?;
        Ok(())
    }

    /// Where the local ClickHouse server keeps its data, config and password.
    pub fn local_clickhouse_dir(&self) -> PathBuf {
        self.data_dir.join("clickhouse")
    }

    /// What the normalizer knows of every project: grouping and scrubbing settings, parsed
    /// (validated at load).
    pub fn projects(&self) -> anyhow::Result<shrike_normalizer::Projects> {
        Ok(shrike_normalizer::Projects {
            grouping: self.grouping.configs().map_err(anyhow::Error::msg)?,
            scrubbing: self.scrubbing.scrubbers().map_err(anyhow::Error::msg)?,
        })
    }

    /// The Kafka settings; fails when no brokers are configured.
    pub fn kafka(&self) -> anyhow::Result<&shrike_bus::kafka::KafkaConfig> {
        self.kafka.validate().map_err(anyhow::Error::msg)?;
        Ok(&self.kafka)
    }

    /// The grouper's settings in `shrike up`. A batch's records are held in memory until the
    /// batch is written, so a batch is kept to 8 MiB; without `bus.durable` they also stay in
    /// the normalized topic, so it is kept to a quarter of a topic's bytes too: the normalizer is
    /// then not blocked on a full topic while the grouper fills and writes one (at 10,000
    /// events/s that blocking stalled the pipeline every batch). The issue-activity topic of an
    /// in-memory bus does not outlive the process, so what was announced is also read from the
    /// store.
    pub fn grouper_in_one_process(&self) -> shrike_grouper::GrouperConfig {
        let mut config = self.grouper;
        let mut cap = 8 << 20;
        if !self.bus.durable {
            cap = self.bus.memory_topic_bytes() / 4;
        }
        config.batch_bytes = config.batch_bytes.min(cap);
        config.seed_from_store = true;
        config
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
            assert_eq!(config.ingest.public_url(), "http://127.0.0.1:9999");
            assert_eq!(config.clickhouse.url, "http://127.0.0.1:8123");
            assert_eq!(config.clickhouse.database, "shrike");
            assert_eq!(config.data_dir, PathBuf::from(".shrike"));
            Ok(())
        });
    }

    #[test]
    fn invalid_values_name_their_key() {
        figment::Jail::expect_with(|jail| {
            let cases = [
                ("[alerter]\nschedule = \"often\"\n", "alerter.schedule"),
                ("[ingest]\nlisten = \"nowhere\"\n", "ingest.listen"),
                ("[alerter.smtp]\ntls = \"sometimes\"\n", "tls"),
                ("[ingest]\nlisen = \"typo\"\n", "lisen"),
                (
                    "[ingest]\nrequest_memory_mib = 8\n",
                    "ingest.request_memory_mib",
                ),
                ("[bus]\ncache_mib = 0\n", "bus.cache_mib"),
                ("[kafka]\noffset_reset = \"latest\"\n", "latest"),
                ("[clickhouse]\nurl = \"::secret\"\n", "clickhouse.url"),
                (
                    "[grouping.projects.x]\nstack_rules = \"\"\n",
                    "grouping.projects.x",
                ),
                ("ops_listen = \"anywhere\"\n", "ops_listen"),
            ];
            for (file, key) in cases {
                jail.create_file("shrike.toml", file)?;
                let error = Config::load(Path::new("shrike.toml"), true).expect_err(file);
                assert!(format!("{error:#}").contains(key), "{file}: {error:#}");
            }
            // The URL may hold a password: it is never echoed.
            jail.create_file("shrike.toml", "[clickhouse]\nurl = \"::secret\"\n")?;
            let error = Config::load(Path::new("shrike.toml"), true).expect_err("bad url");
            assert!(!format!("{error:#}").contains("secret"), "{error:#}");
            Ok(())
        });
    }

    #[test]
    fn shrike_up_keeps_a_grouper_batch_to_8_mib_and_a_quarter_of_a_memory_topic() {
        let mut config = Config::default();
        assert!(config.bus.durable);
        assert_eq!(config.grouper_in_one_process().batch_bytes, 8 << 20);
        assert!(config.grouper_in_one_process().seed_from_store);
        config.grouper.batch_bytes = 1 << 20;
        assert_eq!(config.grouper_in_one_process().batch_bytes, 1 << 20);
        config.bus.memory_max_mib = 128;
        config.grouper.batch_bytes = 64 << 20;
        assert_eq!(config.grouper_in_one_process().batch_bytes, 8 << 20);
        config.bus.durable = false;
        assert_eq!(config.grouper_in_one_process().batch_bytes, 32 << 20);
        config.bus.memory_max_mib = 8;
        assert_eq!(config.grouper_in_one_process().batch_bytes, 2 << 20);
        assert_eq!(config.grouper.batch_bytes, 64 << 20);
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
        assert_eq!(loaded, Config::default());

        // Every key has a line in the example, set or commented out, so a new key cannot be
        // added without documenting it.
        let text = std::fs::read_to_string(&example).expect("example config reads");
        let documented = documented_keys(&text);
        let defaults = serde_json::to_value(Config::default()).expect("config serializes");
        let mut missing = Vec::new();
        for key in leaf_keys(&defaults, String::new()) {
            let prefix = format!("{key}.");
            if !documented
                .iter()
                .any(|d| *d == key || d.starts_with(&prefix))
            {
                missing.push(key);
            }
        }
        assert!(
            missing.is_empty(),
            "not in shrike.example.toml: {missing:?}"
        );
    }

    /// `section.key` for every `key = ...` line and `section` for every `[section]` header,
    /// commented out or not.
    fn documented_keys(text: &str) -> Vec<String> {
        let mut section = String::new();
        let mut keys = Vec::new();
        for line in text.lines() {
            let line = line.trim_start_matches('#').trim();
            if line.starts_with('[') {
                section = line.trim_matches(['[', ']']).to_string();
                keys.push(section.clone());
            } else if let Some((key, _)) = line.split_once(" = ")
                && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            {
                keys.push(if section.is_empty() {
                    key.to_string()
                } else {
                    format!("{section}.{key}")
                });
            }
        }
        keys
    }

    /// The dotted paths of a serialized config's values (empty tables count as values).
    fn leaf_keys(value: &serde_json::Value, path: String) -> Vec<String> {
        match value {
            serde_json::Value::Object(map) if !map.is_empty() => map
                .iter()
                .flat_map(|(key, value)| {
                    let path = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    leaf_keys(value, path)
                })
                .collect(),
            _ => vec![path],
        }
    }

    #[test]
    fn a_missing_explicit_file_is_an_error() {
        assert!(Config::load(Path::new("/nonexistent/shrike.toml"), true).is_err());
    }
}
