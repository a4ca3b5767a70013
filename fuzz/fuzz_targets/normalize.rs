//! Fuzzes what the normalizer does with an event payload: parse it, then normalize and group it
//! (Sentry's default rules) into the bus message. It must never panic, whatever the payload.

#![no_main]

use libfuzzer_sys::fuzz_target;
use shrike_grouping::GroupingConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(event) = shrike_protocol::Event::parse(data) else {
        return;
    };
    let meta = shrike_messages::meta(1, uuid::Uuid::nil(), 1_700_000_000_000);
    let message = shrike_normalization::normalize(meta, event, &GroupingConfig::default());
    let _ = shrike_messages::encode(&message);
});
