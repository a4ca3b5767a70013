//! The alerter: cron-scheduled checks that find each project's new and recurring issues since the
//! previous run and email the configured developers about them.
//!
//! Progress is a per-project watermark in ClickHouse (`alert_state`), advanced only after the email
//! was accepted by the SMTP server, so a restart never repeats an alert and a failed delivery is
//! retried at the next run. Windows are measured on ClickHouse's clock (`inserted_at`), so late
//! events are reported at the next run rather than missed. No activity, no email. Only unresolved
//! issues are reported (regressions marked as such): ignored issues stay quiet while their ignore
//! holds, and resolved issues until an event reopens them.

pub mod email;
pub mod schedule;
pub mod service;

pub use schedule::Schedule;
pub use service::{Alerter, AlerterConfig, SmtpConfig, SmtpTls};
