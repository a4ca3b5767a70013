//! Issue ids from grouping hashes, and grouping for messages that arrive without a hash.
//!
//! Grouping itself lives in `shrike-grouping`; the normalizer groups every event and keys it by
//! its hash. Only a normalized message from an older producer lacks one; it is grouped here
//! from the fields a normalized event keeps, with the default rules.

use shrike_bus::messages::NormalizedEvent;
use shrike_protocol::Event;
use std::sync::LazyLock;

/// The outcome of grouping one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// The variant that decided: `app`, `system`, `default`, `custom_fingerprint`, ...
    pub variant: &'static str,
    /// The contributing values, in hashing order.
    pub values: Vec<String>,
    /// md5 of the values, lowercase hex.
    pub hash: String,
}

impl Fingerprint {
    /// The issue id derived from the hash.
    pub fn issue_id(&self) -> u64 {
        issue_id_for_hash(&self.hash)
    }
}

/// The issue id of a hash (its first 16 hex digits, top bit cleared). Deterministic, so every
/// grouper replica assigns the same id without coordination.
pub fn issue_id_for_hash(hash: &str) -> u64 {
    u64::from_str_radix(hash.get(..16).unwrap_or("0"), 16).unwrap_or(0) & (u64::MAX >> 1)
}

/// Built once: a config holds the parsed and indexed default rules.
static DEFAULT_GROUPING: LazyLock<shrike_grouping::GroupingConfig> =
    LazyLock::new(shrike_grouping::GroupingConfig::default);

/// Groups a normalized event with the default settings.
pub fn fingerprint(event: &NormalizedEvent) -> Fingerprint {
    let raw = Event {
        platform: Some(event.platform.clone()),
        message: (!event.message.is_empty()).then(|| event.message.clone()),
        exception: event.exceptions.clone(),
        stacktrace: event.stacktrace.clone(),
        fingerprint: event.fingerprint.clone(),
        ..Default::default()
    };
    let grouping = shrike_grouping::group(&raw, &DEFAULT_GROUPING);
    let primary = grouping.primary();
    Fingerprint {
        variant: primary.name,
        values: primary.values.clone(),
        hash: grouping.hash().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shrike_protocol::event::{Exception, Frame, Stacktrace};

    fn error(ty: &str, function: &str, in_app: bool) -> NormalizedEvent {
        NormalizedEvent {
            platform: "python".into(),
            exceptions: vec![Exception {
                ty: Some(ty.into()),
                value: Some("v".into()),
                stacktrace: Some(Stacktrace {
                    frames: vec![Frame {
                        module: Some("app.views".into()),
                        function: Some(function.into()),
                        in_app: Some(in_app),
                        ..Default::default()
                    }],
                }),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn groups_like_the_normalizer() {
        let f = fingerprint(&error("E", "boom", true));
        assert_eq!(f.variant, "app");
        assert_eq!(f.values, ["app.views", "boom", "E"]);
        assert_eq!(
            f.hash,
            shrike_grouping::hash_values(["app.views", "boom", "E"])
        );
        assert_eq!(fingerprint(&error("E", "boom", false)).variant, "system");
        assert_ne!(f.hash, fingerprint(&error("F", "boom", true)).hash);
    }

    #[test]
    fn issue_ids_come_from_the_hash() {
        assert_eq!(
            issue_id_for_hash("ffffffffffffffff0000000000000000"),
            u64::MAX >> 1
        );
        assert_eq!(issue_id_for_hash("0000000000000001ffff"), 1);
    }
}
