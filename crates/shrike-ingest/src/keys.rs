//! The project key cache: which public keys may send to which project.
//!
//! Keys live in ClickHouse. The cache is refreshed periodically, and on a miss by a reload that
//! starts after the request arrived (at most one per second, shared by all waiting requests), so a
//! key created with `shrike project create` works at once without a restart, while a flood of
//! requests with unknown keys costs at most one query per second. Every reload has a timeout: when
//! ClickHouse stalls or is down, known keys keep being served from the cache and unknown ones are
//! answered at once as "unavailable" (Relay answers 503 while a project's state is unknown) until
//! a reload succeeds again.

use shrike_store::{ProjectKey, Store, StoreError};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// What the cache knows of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The key exists (it may be disabled).
    Found(ProjectKey),
    /// No such key.
    Unknown,
    /// Not in the cache, and the store cannot be asked now.
    Unavailable,
}

/// Why a reload failed.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The store answered with an error.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store did not answer in time.
    #[error("clickhouse did not answer within {0:?}")]
    Timeout(Duration),
}

#[derive(Default)]
struct Keys {
    by_key: HashMap<String, ProjectKey>,
    projects: HashSet<u64>,
}

/// A shared cache of project keys. Cheap to clone.
#[derive(Clone)]
pub struct KeyCache {
    store: Store,
    keys: Arc<RwLock<Keys>>,
    /// When the last reload started (held while one runs).
    last_refresh: Arc<Mutex<Option<Instant>>>,
    /// Whether the last reload failed.
    failing: Arc<AtomicBool>,
    timeout: Duration,
}

/// The least time between two reloads triggered by unknown keys.
const MISS_REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// How long a request waits for a reload before its key counts as unavailable.
pub const REFRESH_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a reload in the background may take: a busy ClickHouse answering in a few seconds
/// still refreshes the cache, while requests never wait that long.
const BACKGROUND_TIMEOUT: Duration = Duration::from_secs(5);

impl KeyCache {
    /// An empty cache reading from `store`.
    pub fn new(store: Store) -> Self {
        Self::with_timeout(store, REFRESH_TIMEOUT)
    }

    /// An empty cache whose reloads time out after `timeout`.
    pub fn with_timeout(store: Store, timeout: Duration) -> Self {
        KeyCache {
            store,
            keys: Arc::default(),
            last_refresh: Arc::default(),
            failing: Arc::default(),
            timeout,
        }
    }

    /// Reloads every key (in the background: waiting longer than a request would).
    pub async fn refresh(&self) -> Result<usize, RefreshError> {
        let mut last = self.last_refresh.lock().await;
        self.refresh_locked(&mut last, self.timeout.max(BACKGROUND_TIMEOUT))
            .await
    }

    /// Reloads every key while holding the refresh lock; records when the reload started, so a
    /// waiter can tell whether it covers a key created before it asked.
    async fn refresh_locked(
        &self,
        last: &mut Option<Instant>,
        timeout: Duration,
    ) -> Result<usize, RefreshError> {
        let started = Instant::now();
        *last = Some(started);
        let loaded = tokio::time::timeout(timeout, self.store.keys())
            .await
            .map_err(|_| RefreshError::Timeout(timeout))
            .and_then(|keys| Ok(keys?));
        let keys = match loaded {
            Ok(keys) => keys,
            Err(error) => {
                self.failing.store(true, Ordering::SeqCst);
                metrics::counter!("shrike_ingest_key_refresh_failures_total").increment(1);
                return Err(error);
            }
        };
        let projects = keys.iter().map(|k| k.project_id).collect();
        let by_key: HashMap<_, _> = keys
            .into_iter()
            .map(|k| (k.public_key.clone(), k))
            .collect();
        let count = by_key.len();
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Keys { by_key, projects };
        self.failing.store(false, Ordering::SeqCst);
        Ok(count)
    }

    fn cached(&self, public_key: &str) -> Option<ProjectKey> {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_key
            .get(public_key)
            .cloned()
    }

    /// Whether `project_id` has keys (so outcomes may be recorded for it).
    pub fn knows_project(&self, project_id: u64) -> bool {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .projects
            .contains(&project_id)
    }

    /// Looks a key up in the cache only.
    pub fn lookup_cached(&self, public_key: &str) -> Lookup {
        match self.cached(public_key) {
            Some(key) => Lookup::Found(key),
            None if self.failing.load(Ordering::SeqCst) => Lookup::Unavailable,
            None => Lookup::Unknown,
        }
    }

    /// Looks a key up. On a miss it waits for a reload that started after the request asked (at
    /// most one reload per second, shared by every waiting request, each bounded by the timeout),
    /// so a key created just before works at once and a flood of unknown keys costs one query per
    /// second. While reloads fail, a miss is answered [`Lookup::Unavailable`] at once (and starts a
    /// reload in the background, at most once a second).
    pub async fn lookup(&self, public_key: &str) -> Lookup {
        if let Some(key) = self.cached(public_key) {
            return Lookup::Found(key);
        }
        if self.failing.load(Ordering::SeqCst) {
            self.retry_in_background();
            return Lookup::Unavailable;
        }
        let asked = Instant::now();
        // A reload in the background may hold the lock for longer than a request waits.
        let Ok(mut last) = tokio::time::timeout(self.timeout, self.last_refresh.lock()).await
        else {
            return match self.lookup_cached(public_key) {
                Lookup::Unknown => Lookup::Unavailable,
                known => known,
            };
        };
        if !last.is_some_and(|started| started >= asked) {
            if let Some(started) = *last {
                tokio::time::sleep_until(started + MISS_REFRESH_INTERVAL).await;
            }
            if let Err(error) = self.refresh_locked(&mut last, self.timeout).await {
                tracing::warn!(%error, "cannot refresh project keys");
            }
        }
        drop(last);
        self.lookup_cached(public_key)
    }

    /// Starts a reload unless one ran in the last second or is running.
    fn retry_in_background(&self) {
        let Ok(last) = self.last_refresh.clone().try_lock_owned() else {
            return;
        };
        if last.is_some_and(|started| started.elapsed() < MISS_REFRESH_INTERVAL) {
            return;
        }
        let cache = self.clone();
        tokio::spawn(async move {
            let mut last = last;
            if let Err(error) = cache.refresh_locked(&mut last, BACKGROUND_TIMEOUT).await {
                tracing::debug!(%error, "project keys still cannot be loaded");
            }
        });
    }

    /// Refreshes every `interval` until the process ends.
    pub fn spawn_refresher(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let cache = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                if let Err(error) = cache.refresh().await {
                    tracing::warn!(%error, "cannot refresh project keys");
                }
            }
        })
    }
}
