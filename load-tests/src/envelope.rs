//! Sentry envelopes as SDKs send them: a header line with the event id and `sent_at`, one `event`
//! item header with its `length`, the event JSON, a trailing newline; optionally gzip-compressed
//! like sentry-python's transport. Pure functions, no I/O.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;
use uuid::Uuid;

/// Builds an envelope carrying one event payload.
pub fn event_envelope(event_id: Uuid, sent_at: &str, payload: &[u8]) -> Vec<u8> {
    let header = json!({
        "event_id": event_id.simple().to_string(),
        "sent_at": sent_at,
        "sdk": { "name": "shrike-load", "version": env!("CARGO_PKG_VERSION") },
    });
    let item = json!({
        "type": "event",
        "length": payload.len(),
        "content_type": "application/json",
    });
    let mut out = Vec::with_capacity(payload.len() + 256);
    // Serializing a `Value` into a Vec cannot fail.
    out.extend_from_slice(header.to_string().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(item.to_string().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload);
    out.push(b'\n');
    out
}

/// Gzips a request body (level 6, zlib's default, as SDKs use).
pub fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 3), Compression::new(6));
    // Writing into a Vec never fails.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn envelope_has_header_item_header_and_payload() {
        let id = Uuid::new_v4();
        let payload = br#"{"event_id":"x","message":"a\nb"}"#;
        let body = event_envelope(id, "2026-01-01T00:00:00Z", payload);
        let text = std::str::from_utf8(&body).expect("utf-8");
        let mut lines = text.splitn(3, '\n');
        let header: serde_json::Value =
            serde_json::from_str(lines.next().expect("header")).expect("header json");
        assert_eq!(header["event_id"], id.simple().to_string());
        assert_eq!(header["sent_at"], "2026-01-01T00:00:00Z");
        let item: serde_json::Value =
            serde_json::from_str(lines.next().expect("item")).expect("item json");
        assert_eq!(item["type"], "event");
        assert_eq!(item["length"], payload.len());
        let rest = lines.next().expect("payload").as_bytes();
        assert_eq!(&rest[..payload.len()], payload);
        assert_eq!(&rest[payload.len()..], b"\n");
    }

    #[test]
    fn gzip_round_trips() {
        let body = b"hello envelope ".repeat(1000);
        let compressed = gzip(&body);
        assert!(compressed.len() < body.len() / 10);
        assert_eq!(&compressed[..2], &[0x1f, 0x8b]);
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&compressed[..])
            .read_to_end(&mut out)
            .expect("gunzip");
        assert_eq!(out, body);
    }
}
