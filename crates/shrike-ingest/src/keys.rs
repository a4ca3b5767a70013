//! The project key cache: which public keys may send to which project.
//!
//! Keys live in ClickHouse. The cache is refreshed periodically, and on a miss at most once per
//! second, so a key created with `shrike project create` works within moments without a restart,
//! while a flood of requests with unknown keys costs at most one query per second.

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
        let keys = self.store.keys().await?;
        let map: HashMap<_, _> = keys
            .into_iter()
            .map(|k| (k.public_key.clone(), k))
            .collect();
        let count = map.len();
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = map;
        *self.last_refresh.lock().await = Some(Instant::now());
        Ok(count)
    }

    fn cached(&self, public_key: &str) -> Option<ProjectKey> {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(public_key)
            .cloned()
    }

    /// Looks a key up, refreshing once on a miss when the last refresh is old enough.
    pub async fn get(&self, public_key: &str) -> Option<ProjectKey> {
        if let Some(key) = self.cached(public_key) {
            return Some(key);
        }
        {
            let last = self.last_refresh.lock().await;
            if last.is_some_and(|t| t.elapsed() < MISS_REFRESH_INTERVAL) {
                return None;
            }
        }
        if let Err(error) = self.refresh().await {
            tracing::warn!(%error, "cannot refresh project keys");
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
