//! Fuzzes the parsers that see untrusted bytes first: envelopes, event payloads and check-ins.
//! They must never panic, whatever the input.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let body = bytes::Bytes::copy_from_slice(data);
    if let Ok(envelope) = shrike_protocol::Envelope::parse(body) {
        for item in &envelope.items {
            let _ = shrike_protocol::Event::parse(&item.payload);
            let _ = shrike_protocol::checkin::CheckIn::parse(&item.payload);
        }
    }
    let _ = shrike_protocol::Event::parse(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = shrike_protocol::ClientAuth::from_header(text);
        let _ = text.parse::<shrike_protocol::Dsn>();
    }
});
