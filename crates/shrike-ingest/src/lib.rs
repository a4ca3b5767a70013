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
pub mod keys;
pub mod outcomes;
mod publish;
pub mod quotas;
mod routes;
pub mod server;

pub use error::{AuthRejected, IngestError, detail};
pub use keys::KeyCache;
pub use outcomes::Outcomes;
pub use quotas::{Quota, RateLimiter};
pub use routes::{ClientAddr, IngestState, router};
pub use server::{LimitedListener, serve};

use std::time::Duration;

/// Ingest settings.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Largest request body before decompression, bytes.
    pub max_body_bytes: usize,
    /// Requests handled at once; further ones wait (on their connection, before their body is
    /// read) for one to finish. Bounds ingest's memory when clients outpace it.
    pub max_concurrent_requests: usize,
    /// Connections open at once; further clients wait to be accepted (see [`LimitedListener`]).
    pub max_connections: usize,
    /// A connection without traffic for this long is closed.
    pub idle_timeout: Duration,
    /// Largest decompressed envelope or store body, bytes.
    pub max_decompressed_bytes: usize,
    /// Bytes of request bodies (as received and decompressed) held in memory at once, all
    /// requests together; a request that cannot get its share within a second gets 503.
    pub request_memory_bytes: usize,
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
    /// How often the key cache is refreshed from ClickHouse.
    pub key_refresh: Duration,
    /// Rate limits.
    pub quotas: Vec<Quota>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_body_bytes: 20 * 1024 * 1024,
            max_concurrent_requests: 512,
            max_connections: 1024,
            idle_timeout: Duration::from_secs(60),
            max_decompressed_bytes: 40 * 1024 * 1024,
            request_memory_bytes: 64 * 1024 * 1024,
            auth_failure_burst: 100,
            auth_failures_per_sec: 10.0,
            max_event_bytes: 1024 * 1024,
            max_check_in_bytes: 100 * 1024,
            max_attachment_bytes: 20 * 1024 * 1024,
            key_refresh: Duration::from_secs(5),
            quotas: Vec::new(),
        }
    }
}
