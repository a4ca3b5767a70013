//! The ingest service: Sentry's HTTP endpoints, authenticated by project key, feeding the bus.
//!
//! An SDK gets `200 {"id": ...}` only after every event of its request was accepted by the bus;
//! when the bus refuses (full, or the broker is down) it gets 503 with `Retry-After` and retries.
//! Bad input gets the status Sentry's own ingest (Relay) gives, with a `{"detail": ...}` body,
//! and never takes the service down. A request is authenticated before its body is read, and its
//! body is read and decoded within a memory budget shared by all requests. This crate parses
//! nothing itself: the protocol lives in `shrike-protocol`.

mod auth;
pub mod body;
mod error;
mod items;
pub mod keys;
pub mod outcomes;
mod publish;
pub mod quotas;
mod routes;
pub mod server;
mod state;

pub use error::{AuthRejected, IngestError, detail};
pub use keys::KeyCache;
pub use outcomes::Outcomes;
pub use quotas::{Quota, RateLimiter};
pub use routes::router;
pub use server::{LimitedListener, serve};
pub use state::{ClientAddr, IngestState};

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[ingest]`: the endpoint SDKs reach and its limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Address to listen on.
    pub listen: String,
    /// The URL SDKs reach ingest at, used in printed DSNs; empty: `http://{listen}`.
    pub public_url: String,
    /// Largest request body before decompression, bytes.
    pub max_body_bytes: usize,
    /// Requests handled at once; further ones wait (on their connection, before their body is
    /// read) for one to finish. Bounds ingest's memory when clients outpace it.
    pub max_concurrent_requests: usize,
    /// Connections open at once; further clients wait to be accepted (see [`LimitedListener`]).
    pub max_connections: usize,
    /// Seconds without traffic after which a connection is closed.
    pub idle_timeout_secs: u64,
    /// Largest decompressed envelope or store body, bytes.
    pub max_decompressed_bytes: usize,
    /// MiB of request bodies (as received and decompressed, with the decompressors' state) held
    /// in memory at once, all requests together; a request that cannot get its share within a
    /// second gets 503.
    pub request_memory_mib: usize,
    /// Failed authentications one client address may make at once...
    pub auth_failure_burst: u32,
    /// ...and per second after that; beyond it, its failures are answered 429 and disconnected.
    pub auth_failures_per_sec: f64,
    /// Largest single event payload, bytes (Relay's default: 1 MiB).
    pub max_event_bytes: usize,
    /// Largest check-in payload, bytes (Relay's default: 100 KiB).
    pub max_check_in_bytes: usize,
    /// Largest attachment, bytes.
    pub max_attachment_bytes: usize,
    /// Seconds between reloads of the project keys (an unknown key also triggers one, at most
    /// once a second).
    pub key_refresh_secs: u64,
    /// Rate limits (`[[ingest.quotas]]`); none by default.
    pub quotas: Vec<Quota>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            listen: "127.0.0.1:8300".into(),
            public_url: String::new(),
            max_body_bytes: 20 << 20,
            max_concurrent_requests: 512,
            max_connections: 1024,
            idle_timeout_secs: 60,
            max_decompressed_bytes: 24 << 20,
            request_memory_mib: 48,
            auth_failure_burst: 100,
            auth_failures_per_sec: 10.0,
            max_event_bytes: 1 << 20,
            max_check_in_bytes: 100 << 10,
            max_attachment_bytes: 20 << 20,
            key_refresh_secs: 5,
            quotas: Vec::new(),
        }
    }
}

impl IngestConfig {
    /// The address to listen on.
    pub fn listen_addr(&self) -> Result<std::net::SocketAddr, String> {
        self.listen
            .parse()
            .map_err(|_| format!("ingest.listen: {:?} is not host:port", self.listen))
    }

    /// The base URL DSNs point at.
    pub fn public_url(&self) -> String {
        if self.public_url.is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.public_url.clone()
        }
    }

    /// A connection without traffic for this long is closed.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.max(1))
    }

    /// How often the key cache is reloaded.
    pub fn key_refresh(&self) -> Duration {
        Duration::from_secs(self.key_refresh_secs.max(1))
    }

    /// `request_memory_mib` in bytes.
    pub fn request_memory_bytes(&self) -> usize {
        self.request_memory_mib.saturating_mul(1 << 20)
    }

    /// Checks the settings, naming the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        self.listen_addr()?;
        // One request's body and its decoded form must fit the budget (a decoder's own state
        // may still push the largest bodies over it: those get 413, saying so).
        let needed = (self.max_body_bytes + self.max_decompressed_bytes).div_ceil(1 << 20);
        if self.request_memory_mib < needed {
            return Err(format!(
                "ingest.request_memory_mib must be at least {needed} (max_body_bytes + \
                 max_decompressed_bytes)"
            ));
        }
        Ok(())
    }
}
