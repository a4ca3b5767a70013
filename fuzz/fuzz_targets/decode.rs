//! Fuzzes body decoding, the first thing ingest does with bytes from the network: every
//! `Content-Encoding`, the legacy `/store/` encoding, and the peek at an envelope's first line.
//! None may panic, and none may produce more than it was allowed.

#![no_main]

use libfuzzer_sys::fuzz_target;
use shrike_protocol::encoding::{self, Decoder};

const LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let body = bytes::Bytes::copy_from_slice(body);
    let encoding = match selector % 6 {
        0 => None,
        1 => Some("gzip"),
        2 => Some("deflate"),
        3 => Some("br"),
        4 => Some("zstd"),
        _ => {
            if let Ok(decoded) = encoding::decode_legacy_store(body, LIMIT) {
                assert!(decoded.len() <= LIMIT);
            }
            return;
        }
    };
    if let Ok(decoded) = encoding::decode(encoding, body.clone(), LIMIT) {
        assert!(decoded.len() <= LIMIT);
    }
    if let Some(line) = encoding::first_line(encoding, body.clone(), 4096) {
        assert!(line.len() <= 4096 && !line.contains(&b'\n'));
    }
    // Step by step, as ingest decodes: no step yields more than asked for.
    if let Ok(mut decoder) = Decoder::new(encoding, body) {
        let mut out = Vec::new();
        while out.len() < LIMIT {
            let before = out.len();
            match decoder.read_into(&mut out, 4096) {
                Ok(0) | Err(_) => break,
                Ok(n) => assert!(n <= 4096 && out.len() == before + n),
            }
        }
    }
});
