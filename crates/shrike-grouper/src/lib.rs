//! The grouper service: batches normalized events, writes events, issue descriptions and
//! regressions to ClickHouse, announces new and regressed issues on the issue-activity topic, then
//! commits. What a batch opens, reopens and announces is decided by `shrike_issues::plan`; a failed
//! ClickHouse write is retried and nothing is committed until it succeeds. How activity stays
//! exactly-once on at-least-once delivery: `docs/architecture.md`.

mod flush;
pub mod rows;

use rows::{Pending, pending};
use serde::{Deserialize, Serialize};
use shrike_bus::{BusError, FencedConsumer};
use shrike_consumer::{Batch, BatchLimits, Next};
use shrike_issues::Announced;
use shrike_store::Store;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The consumer group of the grouper.
pub const GROUP: &str = "shrike-grouper";

/// `[grouper]`: when a batch is written.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrouperConfig {
    /// Most events per ClickHouse insert.
    pub batch_rows: usize,
    /// Most input bytes per ClickHouse insert.
    pub batch_bytes: usize,
    /// Longest wait before a partial batch is inserted, milliseconds.
    pub batch_wait_ms: u64,
    /// Also treat issues and regressions already in ClickHouse as announced (set by `shrike up`,
    /// whose issue-activity topic need not outlive a restart).
    #[serde(skip)]
    pub seed_from_store: bool,
}

impl Default for GrouperConfig {
    fn default() -> Self {
        GrouperConfig {
            batch_rows: 10_000,
            batch_bytes: 32 * 1024 * 1024,
            batch_wait_ms: 1_000,
            seed_from_store: false,
        }
    }
}

impl GrouperConfig {
    /// When a batch closes.
    pub fn limits(&self) -> BatchLimits {
        BatchLimits {
            rows: self.batch_rows,
            bytes: self.batch_bytes,
            wait: Duration::from_millis(self.batch_wait_ms),
        }
    }
}

/// Why the grouper stopped.
#[derive(Debug, thiserror::Error)]
pub enum GrouperError {
    /// The bus failed; restart the grouper (it resumes from the last commit).
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The issue-activity topic could not be read or the store could not be queried at start.
    #[error("cannot load announced issues: {0}")]
    State(String),
}

impl shrike_bus::Fatal for GrouperError {
    fn is_fatal(&self) -> bool {
        matches!(self, GrouperError::Bus(error) if error.is_fatal())
    }
}

/// Runs until `shutdown` fires (flushing the open batch first) or a bus error, after which the
/// caller restarts it with a fresh consumer.
pub async fn run<C: FencedConsumer>(
    mut consumer: C,
    store: Store,
    config: GrouperConfig,
    shutdown: CancellationToken,
) -> Result<(), GrouperError> {
    let limits = config.limits();
    let mut announced = Announced::default();
    let mut state_generation: Option<u64> = None;
    let mut batch: Batch<Pending> = Batch::default();
    loop {
        if !batch.is_empty() && (batch.is_due(&limits) || shutdown.is_cancelled()) {
            let taken = batch.take();
            flush::flush(&mut consumer, &store, taken, &mut announced, &shutdown).await?;
        }
        if shutdown.is_cancelled() {
            consumer.flush().await?;
            return Ok(());
        }
        let record = match shrike_consumer::next(&mut consumer, &batch, &shutdown).await? {
            Next::Record(record) => record,
            Next::Due | Next::Shutdown => continue,
        };
        if record.generation != consumer.generation() {
            continue; // fetched before a rebalance; its partition restarts from the last commit
        }
        if state_generation != Some(record.generation) {
            // New assignment: what is batched belongs to the old one, and what was announced
            // must be re-read before deciding about any issue.
            batch = Batch::default();
            announced =
                flush::load_announced(&mut consumer, &store, config.seed_from_store).await?;
            state_generation = Some(record.generation);
            tracing::info!(
                issues = announced.new.len(),
                regressions = announced.regressions.len(),
                generation = record.generation,
                "loaded announced issues"
            );
        }
        let item = pending(&record.payload, batch.records.len());
        batch.push(record, item, GROUP, &limits);
    }
}
