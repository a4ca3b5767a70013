//! What ingest holds while it serves: the producer, the key cache, limits, outcome counters, rate
//! limits, the failure budget of client addresses, request slots and the memory budgets; and the
//! decisions about a request's credentials.

use crate::auth::FailureBudget;
use crate::body::MemoryBudget;
use crate::keys::Lookup;
use crate::quotas::Limited;
use crate::{IngestConfig, IngestError, KeyCache, Outcomes, RateLimiter};
use shrike_protocol::ClientAuth;
use shrike_protocol::category::{DataCategory, Outcome};
use shrike_store::ProjectKey;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// What a pre-authentication peek at envelope headers may hold in memory, all requests together.
pub(crate) const PEEK_BUDGET_BYTES: usize = 20 << 20;

/// The address of the client a request came from (set by [`crate::serve`]).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

/// What ingest needs to serve requests.
pub struct IngestState<P> {
    /// Where accepted events go.
    pub producer: P,
    /// Which keys are valid.
    pub keys: KeyCache,
    /// Limits.
    pub config: IngestConfig,
    /// Outcome counters (flushed by [`Outcomes::spawn_flusher`]).
    pub outcomes: Outcomes,
    pub(crate) limiter: RateLimiter,
    pub(crate) failures: FailureBudget,
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) memory: MemoryBudget,
    pub(crate) peek_memory: MemoryBudget,
}

impl<P> IngestState<P> {
    /// Everything ingest needs; the rate limiter is built from `config.quotas`.
    pub fn new(producer: P, keys: KeyCache, config: IngestConfig, outcomes: Outcomes) -> Self {
        IngestState {
            producer,
            keys,
            limiter: RateLimiter::new(config.quotas.clone()),
            failures: FailureBudget::new(config.auth_failure_burst, config.auth_failures_per_sec),
            slots: Arc::new(Semaphore::new(config.max_concurrent_requests.max(1))),
            memory: MemoryBudget::new(config.request_memory_bytes()),
            peek_memory: MemoryBudget::new(PEEK_BUDGET_BYTES),
            config,
            outcomes,
        }
    }

    /// The budget request bodies are read and decoded within.
    pub fn memory(&self) -> &MemoryBudget {
        &self.memory
    }

    pub(crate) fn admit(
        &self,
        project_id: u64,
        key: &str,
        category: DataCategory,
    ) -> Result<(), Limited> {
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        self.limiter
            .admit(project_id, key, category.as_str(), 1, now)
            .inspect_err(|limited| {
                self.outcomes.record(
                    project_id,
                    category,
                    Outcome::RateLimited,
                    &limited.reason,
                    1,
                );
            })
    }

    /// The key named by `auth`, when it is known, active and belongs to `project_id`. An address
    /// over its failure budget gets cached answers only.
    pub(crate) async fn authorize(
        &self,
        project_id: u64,
        auth: &ClientAuth,
        client: IpAddr,
    ) -> Result<ProjectKey, IngestError> {
        let lookup = if self.failures.exhausted(client) {
            self.keys.lookup_cached(&auth.public_key)
        } else {
            self.keys.lookup(&auth.public_key).await
        };
        let key = match lookup {
            Lookup::Found(key) if key.active => key,
            Lookup::Found(_) | Lookup::Unknown => return Err(IngestError::UnknownKey),
            Lookup::Unavailable => return Err(IngestError::KeysUnavailable),
        };
        if key.project_id != project_id {
            return Err(IngestError::ProjectMismatch(project_id));
        }
        Ok(key)
    }

    /// Counts a refused authentication: an outcome of the project when it exists, and a failure
    /// of the client's address (beyond its budget, the answer is 429 and a closed connection).
    pub(crate) fn auth_failed(
        &self,
        project_id: u64,
        category: DataCategory,
        client: IpAddr,
        error: IngestError,
    ) -> IngestError {
        if !error.is_auth_failure() {
            return error;
        }
        if let Some(reason) = error.outcome_reason()
            && self.keys.knows_project(project_id)
        {
            self.outcomes
                .record(project_id, category, Outcome::Invalid, reason, 1);
        }
        if self.failures.fail(client) {
            metrics::counter!("shrike_ingest_auth_budget_exceeded_total").increment(1);
            return IngestError::TooManyAuthFailures;
        }
        error
    }

    /// Counts a refused request as an `invalid` outcome (when the refusal is about its content).
    pub(crate) fn record_invalid(
        &self,
        project_id: u64,
        category: DataCategory,
        error: &IngestError,
    ) {
        if let Some(reason) = error.outcome_reason() {
            self.outcomes
                .record(project_id, category, Outcome::Invalid, reason, 1);
        }
    }

    /// Counts `quantity` accepted items.
    pub(crate) fn accepted(&self, project_id: u64, category: DataCategory, quantity: u64) {
        self.outcomes
            .record(project_id, category, Outcome::Accepted, "", quantity);
    }
}
