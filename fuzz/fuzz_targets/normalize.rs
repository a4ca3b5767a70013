//! Fuzzes what the normalizer does with an event payload: parse it, group it (Sentry's default
//! rules) and normalize it into the bus message. It must never panic, whatever the payload.

#![no_main]

use libfuzzer_sys::fuzz_target;
use shrike_grouping::GroupingConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(event) = shrike_protocol::Event::parse(data) else {
        return;
    };
    let grouped = shrike_grouping::group(&event, &GroupingConfig::default());
    let normalized = shrike_normalizer::normalize(1, uuid::Uuid::nil(), 1_700_000_000_000, event);
    let message =
        shrike_bus::messages::normalized_message(normalized, grouped.hash(), grouped.primary().name);
    let _ = shrike_bus::messages::encode(&message);
});
