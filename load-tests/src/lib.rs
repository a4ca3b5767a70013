//! Shrike's load-test harness: realistic Sentry envelopes (Python, JavaScript, Java and Rust events
//! with real-looking stack traces, a fixed number of distinct issues, sizes from a distribution)
//! sent to any DSN, open-loop at a fixed arrival rate or closed-loop at maximum throughput, with
//! reports (JSON, Markdown, SVG) and an optional end-to-end check against Shrike's ClickHouse.
//!
//! Library use (the binary is a thin CLI over this):
//!
//! ```no_run
//! # async fn demo() -> Result<(), shrike_load::LoadError> {
//! let scenario = shrike_load::Scenario::shipped("smoke")?;
//! let options = shrike_load::RunOptions {
//!     dsn: "http://KEY@127.0.0.1:8300/1".into(),
//!     ..Default::default()
//! };
//! let report = shrike_load::run(&scenario, &options).await?;
//! println!("{}", report.markdown());
//! # Ok(())
//! # }
//! ```
//!
//! It refuses targets that are not on this machine unless told otherwise, and every run is
//! bounded by time and count.

pub mod api;
pub mod envelope;
mod error;
pub mod generator;
pub mod plot;
pub mod procstat;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod schedule;
pub mod stats;
pub mod target;
pub mod verify;

pub use error::LoadError;
pub use generator::{GeneratedEvent, Generator, Platform};
pub use report::Report;
pub use runner::{RunOptions, run};
pub use scenario::{Mode, Overrides, Scenario};
pub use target::Target;
pub use verify::ClickHouseCheck;
