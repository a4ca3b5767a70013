//! The Sentry wire protocol as Shrike speaks it: DSNs, client authentication, envelopes and the
//! event payload.
//!
//! Everything here is pure: no I/O, no clock reads beyond what a caller passes in, so it can be
//! unit tested, fuzzed and benchmarked on its own. The protocol facts come from Sentry's developer
//! documentation (<https://develop.sentry.dev/sdk/data-model/envelopes/>, `.../sdk/overview/#authentication`,
//! `.../sdk/data-model/event-payloads/`); this crate must never depend on a service crate.

pub mod auth;
pub mod dsn;
pub mod encoding;
pub mod envelope;
pub mod event;

pub use auth::{AuthError, ClientAuth};
pub use dsn::{Dsn, DsnError};
pub use envelope::{Envelope, EnvelopeError, Item};
pub use event::Event;
pub mod category;
pub mod checkin;
