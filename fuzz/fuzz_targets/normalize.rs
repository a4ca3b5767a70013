//! Fuzzes what the normalizer does with an event payload: parse it, scrub and trim the whole
//! event, normalize and group it (Sentry's default rules) into the bus message. It must never
//! panic, whatever the payload.

#![no_main]

use libfuzzer_sys::fuzz_target;
use shrike_grouping::GroupingConfig;
use shrike_normalization::Scrubber;

fuzz_target!(|data: &[u8]| {
    let meta = shrike_messages::meta(1, uuid::Uuid::nil(), 1_700_000_000_000);
    let Ok(message) = shrike_normalization::normalize_body(
        meta,
        data,
        &GroupingConfig::default(),
        &Scrubber::default(),
    ) else {
        return;
    };
    let _ = shrike_messages::encode(&message);
});
