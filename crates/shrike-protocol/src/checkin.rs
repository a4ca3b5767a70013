//! Cron monitor check-ins: the `check_in` envelope item and the HTTP cron endpoint's parameters.
//! See <https://develop.sentry.dev/sdk/check-ins/>. Pure parsing; no I/O.

use serde::Deserialize;
use uuid::Uuid;

/// The statuses a check-in may report.
pub const STATUSES: &[&str] = &["in_progress", "ok", "error"];

/// A check-in as SDKs and sentry-cli send it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CheckIn {
    /// Client-generated id; an update of an `in_progress` check-in reuses it.
    #[serde(default)]
    pub check_in_id: Option<Uuid>,
    /// The monitor's slug.
    pub monitor_slug: String,
    /// `in_progress`, `ok` or `error`.
    pub status: String,
    /// Run time in seconds, for finished check-ins.
    #[serde(default)]
    pub duration: Option<f64>,
    /// Environment.
    #[serde(default)]
    pub environment: Option<String>,
    /// Release.
    #[serde(default)]
    pub release: Option<String>,
}

/// Why a check-in is refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CheckInError {
    /// Not valid JSON of the check-in shape.
    #[error("invalid check-in: {0}")]
    Invalid(String),
    /// A status Sentry does not know.
    #[error("invalid check-in status {0:?}")]
    Status(String),
    /// A slug that is empty or too long.
    #[error("invalid monitor slug")]
    Slug,
}

impl CheckIn {
    /// Parses and validates a `check_in` item payload.
    pub fn parse(payload: &[u8]) -> Result<Self, CheckInError> {
        let check_in: CheckIn =
            serde_json::from_slice(payload).map_err(|e| CheckInError::Invalid(e.to_string()))?;
        check_in.validate()
    }

    /// Checks status and slug.
    pub fn validate(self) -> Result<Self, CheckInError> {
        if !STATUSES.contains(&self.status.as_str()) {
            return Err(CheckInError::Status(self.status));
        }
        if self.monitor_slug.is_empty() || self.monitor_slug.len() > 128 {
            return Err(CheckInError::Slug);
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sdk_check_ins() {
        let c = CheckIn::parse(
            br#"{"check_in_id":"83a7c03ed0a04e1b97e2e3b18d38f244","monitor_slug":"nightly","status":"ok","duration":10.5,"environment":"prod"}"#,
        )
        .expect("valid");
        assert_eq!(
            (c.monitor_slug.as_str(), c.status.as_str(), c.duration),
            ("nightly", "ok", Some(10.5))
        );
        assert!(c.check_in_id.is_some());
    }

    #[test]
    fn rejects_bad_check_ins() {
        assert!(matches!(
            CheckIn::parse(b"{}"),
            Err(CheckInError::Invalid(_))
        ));
        assert!(matches!(
            CheckIn::parse(br#"{"monitor_slug":"m","status":"done"}"#),
            Err(CheckInError::Status(_))
        ));
        assert_eq!(
            CheckIn::parse(br#"{"monitor_slug":"","status":"ok"}"#),
            Err(CheckInError::Slug)
        );
    }
}
