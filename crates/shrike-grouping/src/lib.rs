//! Sentry-compatible grouping: decides which issue an event belongs to.
//!
//! [`group`] computes the variants Sentry computes for grouping config `newstyle:2023-01-11` —
//! `app` (in-app frames only), `system` (all frames), `default` (the parameterized message),
//! `fallback`, checksums and fingerprints — each as a tree of [`Component`]s whose contributing
//! values are hashed with md5. [`Grouping::primary`] is the variant that decides the issue: a
//! fingerprint or checksum when there is one, else `app` when it contributes, else the first
//! other variant that does.
//!
//! Strategies, in order of precedence: exceptions (chained, and exception groups reduced to the
//! exceptions that matter), a single thread's stack trace, the event's stack trace, the message.
//! Stack-trace rules ([`rules`]) decide which frames are in-app and which count; fingerprints
//! ([`fingerprinting`]) may replace or extend all of it.

pub mod component;
mod config;
pub mod fingerprinting;
pub mod frame;
pub mod functions;
pub mod params;
pub mod platform;
pub mod rules;
mod strategy;
mod variant;

pub use component::{Component, hash_values};
pub use config::{ConfigError, GroupingConfig, GroupingRules, ProjectConfigs, ProjectRules};
pub use fingerprinting::FingerprintRules;
pub use rules::Rules;
pub use strategy::group;
pub use variant::{FALLBACK_HASH, Grouping, Variant};

/// Shrike's default stack-trace rules for the common platforms.
pub const DEFAULT_RULES: &str = include_str!("default_rules.txt");
