//! The grouper: fingerprints normalized events into issues and stores events and issues in
//! ClickHouse.
//!
//! [`fingerprint`] is pure and decides which issue an event belongs to; [`service`] batches events
//! from the bus, writes them, and commits only after ClickHouse acknowledged the insert.

pub mod fingerprint;
pub mod rows;
pub mod service;
pub mod writers;

pub use fingerprint::{Fingerprint, fingerprint};
