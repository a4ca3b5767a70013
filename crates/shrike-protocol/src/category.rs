//! Envelope item types, the data categories rate limits and outcomes count them in, and the
//! outcomes themselves (names as in Relay's `ItemType`, `DataCategory` and `Outcome`, and the
//! `X-Sentry-Rate-Limits` header).

use std::fmt;

/// The type of an envelope item (its header's `type`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ItemType {
    /// An error or message event.
    Event,
    /// A performance transaction.
    Transaction,
    /// A file attached to an event.
    Attachment,
    /// A release-health session update.
    Session,
    /// Aggregated sessions.
    Sessions,
    /// A cron monitor check-in.
    CheckIn,
    /// What the SDK dropped itself.
    ClientReport,
    /// A profile.
    Profile,
    /// A chunk of a continuous profile.
    ProfileChunk,
    /// Session replay metadata.
    ReplayEvent,
    /// Session replay recording.
    ReplayRecording,
    /// Session replay video.
    ReplayVideo,
    /// A standalone span.
    Span,
    /// An OpenTelemetry span.
    OtelSpan,
    /// A log record.
    Log,
    /// Metrics in statsd format.
    Statsd,
    /// Pre-aggregated metric buckets.
    MetricBuckets,
    /// User feedback (the old format).
    UserReport,
    /// User feedback.
    Feedback,
    /// A browser security report.
    Security,
    /// A type this version does not know.
    Unknown(String),
}

impl ItemType {
    /// The type named `name`.
    pub fn parse(name: &str) -> ItemType {
        match name {
            "event" => ItemType::Event,
            "transaction" => ItemType::Transaction,
            "attachment" => ItemType::Attachment,
            "session" => ItemType::Session,
            "sessions" => ItemType::Sessions,
            "check_in" => ItemType::CheckIn,
            "client_report" => ItemType::ClientReport,
            "profile" => ItemType::Profile,
            "profile_chunk" => ItemType::ProfileChunk,
            "replay_event" => ItemType::ReplayEvent,
            "replay_recording" => ItemType::ReplayRecording,
            "replay_video" => ItemType::ReplayVideo,
            "span" => ItemType::Span,
            "otel_span" => ItemType::OtelSpan,
            "log" => ItemType::Log,
            "statsd" => ItemType::Statsd,
            "metric_buckets" => ItemType::MetricBuckets,
            "user_report" => ItemType::UserReport,
            "feedback" => ItemType::Feedback,
            "security" => ItemType::Security,
            other => ItemType::Unknown(other.to_owned()),
        }
    }

    /// The data category its items are counted in; `None` for client reports (which describe
    /// other items).
    pub fn category(&self) -> Option<DataCategory> {
        Some(match self {
            ItemType::Event => DataCategory::Error,
            ItemType::Transaction => DataCategory::Transaction,
            ItemType::Attachment => DataCategory::Attachment,
            ItemType::Session | ItemType::Sessions => DataCategory::Session,
            ItemType::CheckIn => DataCategory::Monitor,
            ItemType::Profile | ItemType::ProfileChunk => DataCategory::Profile,
            ItemType::ReplayEvent | ItemType::ReplayRecording | ItemType::ReplayVideo => {
                DataCategory::Replay
            }
            ItemType::Span | ItemType::OtelSpan => DataCategory::Span,
            ItemType::Log => DataCategory::LogItem,
            ItemType::Statsd | ItemType::MetricBuckets => DataCategory::MetricBucket,
            ItemType::UserReport | ItemType::Feedback => DataCategory::UserReportV2,
            ItemType::Security => DataCategory::Security,
            ItemType::ClientReport => return None,
            ItemType::Unknown(_) => DataCategory::Default,
        })
    }
}

impl PartialEq<&str> for ItemType {
    fn eq(&self, other: &&str) -> bool {
        *self == ItemType::parse(other)
    }
}

/// What rate limits and outcomes count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataCategory {
    /// Events of a type without a category of their own, and whole requests refused before
    /// their items were read.
    Default,
    /// Error events.
    Error,
    /// Transactions.
    Transaction,
    /// Attachments (counted in bytes).
    Attachment,
    /// Sessions.
    Session,
    /// Cron monitor check-ins.
    Monitor,
    /// Profiles.
    Profile,
    /// Replays.
    Replay,
    /// Spans.
    Span,
    /// Log records.
    LogItem,
    /// Metric buckets.
    MetricBucket,
    /// User feedback.
    UserReportV2,
    /// Security reports.
    Security,
}

impl DataCategory {
    /// The name rate limits and outcomes use.
    pub fn as_str(self) -> &'static str {
        match self {
            DataCategory::Default => "default",
            DataCategory::Error => "error",
            DataCategory::Transaction => "transaction",
            DataCategory::Attachment => "attachment",
            DataCategory::Session => "session",
            DataCategory::Monitor => "monitor",
            DataCategory::Profile => "profile",
            DataCategory::Replay => "replay",
            DataCategory::Span => "span",
            DataCategory::LogItem => "log_item",
            DataCategory::MetricBucket => "metric_bucket",
            DataCategory::UserReportV2 => "user_report_v2",
            DataCategory::Security => "security",
        }
    }
}

impl AsRef<str> for DataCategory {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for DataCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to a received item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// Accepted for processing.
    Accepted,
    /// Dropped by an inbound filter.
    Filtered,
    /// Over a quota.
    RateLimited,
    /// Refused as malformed, too large, or without valid credentials.
    Invalid,
    /// Dropped by the SDK itself (reported in a client report).
    ClientDiscard,
}

impl Outcome {
    /// The name stored in the `outcomes` table.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Filtered => "filtered",
            Outcome::RateLimited => "rate_limited",
            Outcome::Invalid => "invalid",
            Outcome::ClientDiscard => "client_discard",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_item_types_to_categories() {
        let category = |name| ItemType::parse(name).category().map(DataCategory::as_str);
        assert_eq!(category("event"), Some("error"));
        assert_eq!(category("check_in"), Some("monitor"));
        assert_eq!(category("sessions"), Some("session"));
        assert_eq!(category("client_report"), None);
        assert_eq!(category("something_new"), Some("default"));
        assert_eq!(
            ItemType::parse("something_new"),
            ItemType::Unknown("something_new".into())
        );
        assert!(ItemType::Attachment == "attachment");
        assert_eq!(Outcome::RateLimited.to_string(), "rate_limited");
    }
}
