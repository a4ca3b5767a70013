//! Envelopes: the container format current SDKs send to `/api/{project_id}/envelope/`.
//!
//! An envelope is a JSON header line followed by items; each item is a JSON header line (with `type`
//! and an optional `length`) and a payload. Without `length` the payload runs to the next newline.
//! See <https://develop.sentry.dev/sdk/data-model/envelopes/>. Parsing never copies payloads (they are
//! slices of the request body) and never panics on any input.

use bytes::Bytes;
use serde::Deserialize;
use uuid::Uuid;

/// Why a body is not a valid envelope.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    /// The body is empty.
    #[error("empty envelope")]
    Empty,
    /// The first line is not a JSON object.
    #[error("invalid envelope header: {0}")]
    Header(String),
    /// An item header is not a JSON object with a `type`.
    #[error("invalid item header: {0}")]
    ItemHeader(String),
    /// An item's `length` runs past the end of the body.
    #[error("item length exceeds envelope size")]
    ItemLength,
    /// The payload is not followed by a newline or the end of the body.
    #[error("missing newline after item payload")]
    MissingNewline,
}

/// The envelope's first line.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct EnvelopeHeader {
    /// The id of the event the envelope carries, when it carries one.
    #[serde(default)]
    pub event_id: Option<Uuid>,
    /// The DSN the SDK was configured with (may carry the auth key).
    #[serde(default)]
    pub dsn: Option<String>,
    /// When the SDK sent the envelope (RFC 3339).
    #[serde(default)]
    pub sent_at: Option<String>,
}

#[derive(Deserialize)]
struct RawItemHeader {
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    length: Option<u64>,
    #[serde(default)]
    filename: Option<String>,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    attachment_type: Option<String>,
}

/// One item of an envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The item type: `event`, `attachment`, `transaction`, `session`, `check_in`, ...
    pub ty: crate::category::ItemType,
    /// The attachment file name, for attachments.
    pub filename: Option<String>,
    /// The payload's content type, when given.
    pub content_type: Option<String>,
    /// For attachments: `event.attachment`, `event.minidump`, ...
    pub attachment_type: Option<String>,
    /// The payload bytes.
    pub payload: Bytes,
}

/// A parsed envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The header line.
    pub header: EnvelopeHeader,
    /// The items in order.
    pub items: Vec<Item>,
}

impl Envelope {
    /// Parses a whole (already decompressed) envelope body.
    pub fn parse(body: Bytes) -> Result<Self, EnvelopeError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(EnvelopeError::Empty);
        }
        let (header_line, mut pos) = line_at(&body, 0);
        let header: EnvelopeHeader = serde_json::from_slice(header_line)
            .map_err(|e| EnvelopeError::Header(e.to_string()))?;
        let mut items = Vec::new();
        while pos < body.len() {
            let (line, next) = line_at(&body, pos);
            if line.iter().all(u8::is_ascii_whitespace) {
                // Blank lines between items (and the trailing newline) carry nothing.
                pos = next;
                continue;
            }
            let raw: RawItemHeader = serde_json::from_slice(line)
                .map_err(|e| EnvelopeError::ItemHeader(e.to_string()))?;
            pos = next;
            let payload = match raw.length {
                Some(length) => {
                    let length = usize::try_from(length).map_err(|_| EnvelopeError::ItemLength)?;
                    let end = pos.checked_add(length).ok_or(EnvelopeError::ItemLength)?;
                    if end > body.len() {
                        return Err(EnvelopeError::ItemLength);
                    }
                    let payload = body.slice(pos..end);
                    pos = end;
                    match body.get(pos) {
                        None => {}
                        Some(b'\n') => pos += 1,
                        Some(b'\r') if body.get(pos + 1) == Some(&b'\n') => pos += 2,
                        Some(_) => return Err(EnvelopeError::MissingNewline),
                    }
                    payload
                }
                None => {
                    let (line, next) = line_at(&body, pos);
                    let start = pos;
                    pos = next;
                    body.slice(start..start + line.len())
                }
            };
            items.push(Item {
                ty: crate::category::ItemType::parse(&raw.ty),
                filename: raw.filename,
                content_type: raw.content_type,
                attachment_type: raw.attachment_type,
                payload,
            });
        }
        Ok(Envelope { header, items })
    }
}

/// Returns the line starting at `start` (without its `\n` or `\r\n`) and the position after it.
fn line_at(body: &[u8], start: usize) -> (&[u8], usize) {
    let rest = &body[start.min(body.len())..];
    match rest.iter().position(|&b| b == b'\n') {
        Some(i) => {
            let line = &rest[..i];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            (line, start + i + 1)
        }
        None => (rest, body.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Envelope, EnvelopeError> {
        Envelope::parse(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn parses_items_with_and_without_length() {
        let env = parse(concat!(
            "{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\",\"dsn\":\"http://k@h/1\"}\n",
            "{\"type\":\"attachment\",\"length\":10,\"filename\":\"a.txt\"}\n",
            "\u{feff}Hello\r\n\n",
            "{\"type\":\"event\"}\n",
            "{\"message\":\"hi\"}\n",
        ))
        .expect("valid envelope");
        assert_eq!(env.header.dsn.as_deref(), Some("http://k@h/1"));
        assert_eq!(env.items.len(), 2);
        assert_eq!(env.items[0].ty, "attachment");
        assert_eq!(env.items[0].filename.as_deref(), Some("a.txt"));
        assert_eq!(&env.items[0].payload[..], "\u{feff}Hello\r\n".as_bytes());
        assert_eq!(&env.items[1].payload[..], b"{\"message\":\"hi\"}");
    }

    #[test]
    fn trailing_newline_is_optional() {
        let env = parse("{}\n{\"type\":\"event\",\"length\":2}\n{}").expect("valid");
        assert_eq!(&env.items[0].payload[..], b"{}");
        let env = parse("{}\n{\"type\":\"event\"}\n{}").expect("valid");
        assert_eq!(&env.items[0].payload[..], b"{}");
    }

    #[test]
    fn rejects_bad_envelopes() {
        assert_eq!(parse(""), Err(EnvelopeError::Empty));
        assert!(matches!(parse("not json\n"), Err(EnvelopeError::Header(_))));
        assert!(matches!(
            parse("{}\n{\"length\":1}\nx"),
            Err(EnvelopeError::ItemHeader(_))
        ));
        assert_eq!(
            parse("{}\n{\"type\":\"event\",\"length\":99}\n{}"),
            Err(EnvelopeError::ItemLength)
        );
        assert_eq!(
            parse("{}\n{\"type\":\"event\",\"length\":1}\n{}"),
            Err(EnvelopeError::MissingNewline)
        );
        assert_eq!(
            parse("{}\n{\"type\":\"event\",\"length\":18446744073709551615}\n{}"),
            Err(EnvelopeError::ItemLength)
        );
    }
}
