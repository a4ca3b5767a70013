//! Data categories: what rate limits and outcomes count, per envelope item type (names as in
//! Relay's `DataCategory` and the `X-Sentry-Rate-Limits` header).

/// The data category of an envelope item type, or `None` for items that are not counted
/// (client reports describe other items).
pub fn for_item(item_type: &str) -> Option<&'static str> {
    Some(match item_type {
        "event" => "error",
        "transaction" => "transaction",
        "attachment" => "attachment",
        "session" | "sessions" => "session",
        "check_in" => "monitor",
        "profile" | "profile_chunk" => "profile",
        "replay_event" | "replay_recording" | "replay_video" => "replay",
        "span" | "otel_span" => "span",
        "log" => "log_item",
        "statsd" | "metric_buckets" => "metric_bucket",
        "user_report" | "feedback" => "user_report_v2",
        "security" => "security",
        "client_report" => return None,
        _ => "default",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_item_types() {
        assert_eq!(for_item("event"), Some("error"));
        assert_eq!(for_item("check_in"), Some("monitor"));
        assert_eq!(for_item("sessions"), Some("session"));
        assert_eq!(for_item("client_report"), None);
        assert_eq!(for_item("something_new"), Some("default"));
    }
}
