//! The project key cache: which public keys may send to which project.
//!
//! Keys live in ClickHouse. The cache is refreshed periodically, and on a miss by a reload that
//! starts after the request arrived (at most one per second, shared by all waiting requests), so a
//! key created with `shrike project create` works at once without a restart, while a flood of
//! requests with unknown keys costs at most one query per second.

use shrike_store::{ProjectKey, Store};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// A shared cache of project keys.
#[derive(Clone)]
pub struct KeyCache {
    store: Store,
    keys: Arc<RwLock<HashMap<String, ProjectKey>>>,
    last_refresh: Arc<Mutex<Option<Instant>>>,
}

/// The least time between two refreshes triggered by unknown keys.
const MISS_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

impl KeyCache {
    /// An empty cache reading from `store`.
    pub fn new(store: Store) -> Self {
        KeyCache {
            store,
            keys: Arc::default(),
            last_refresh: Arc::default(),
        }
    }

    /// Reloads every key.
    pub async fn refresh(&self) -> Result<usize, shrike_store::StoreError> {
        let mut last = self.last_refresh.lock().await;
        self.refresh_locked(&mut last).await
    }

    /// Reloads every key while holding the refresh lock; records when the reload started, so a
    /// waiter can tell whether it covers a key created before it asked.
    async fn refresh_locked(
        &self,
        last: &mut Option<Instant>,
    ) -> Result<usize, shrike_store::StoreError> {
        let started = Instant::now();
        let keys = self.store.keys().await?;
        let map: HashMap<_, _> = keys
            .into_iter()
            .map(|k| (k.public_key.clone(), k))
            .collect();
        let count = map.len();
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = map;
        *last = Some(started);
        Ok(count)
    }

    fn cached(&self, public_key: &str) -> Option<ProjectKey> {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(public_key)
            .cloned()
    }

    /// Looks a key up. On a miss it waits for a reload that started after the request asked (at
    /// most one reload per second, shared by every waiting request), so a key created just before
    /// works at once and a flood of unknown keys costs one query per second.
    pub async fn get(&self, public_key: &str) -> Option<ProjectKey> {
        if let Some(key) = self.cached(public_key) {
            return Some(key);
        }
        let asked = Instant::now();
        let mut last = self.last_refresh.lock().await;
        if last.is_some_and(|started| started >= asked) {
            return self.cached(public_key);
        }
        if let Some(started) = *last {
            tokio::time::sleep_until(started + MISS_REFRESH_INTERVAL).await;
        }
        if let Err(error) = self.refresh_locked(&mut last).await {
            tracing::warn!(%error, "cannot refresh project keys");
            // Count the failed attempt too, so an unreachable ClickHouse still costs one query
            // per second, not one per request.
            *last = Some(asked);
        }
        self.cached(public_key)
    }

    /// Refreshes every `interval` until the process ends.
    pub fn spawn_refresher(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let cache = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            loop {
                ticker.tick().await;
                if let Err(error) = cache.refresh().await {
                    tracing::warn!(%error, "cannot refresh project keys");
                }
            }
        })
    }
}
