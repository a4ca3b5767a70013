//! Request body encodings SDKs use: `Content-Encoding` gzip, deflate, br and zstd, and the legacy
//! `/store/` body (base64 of JSON, optionally zlib-compressed).
//!
//! Decoding is incremental: [`Decoder::read_into`] produces at most as many bytes as the caller
//! asks for, so the caller can account for memory before each step. A small compressed body can
//! expand without bound (a zip bomb), and a decoder's own state can be large before it produces
//! anything ([`Decoder::state_bytes`] is the most it allocates).

use bytes::{Buf, Bytes};
use std::io::Read;

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodingError {
    /// The encoding is not one Shrike decodes.
    #[error("unsupported content encoding {0:?}")]
    Unsupported(String),
    /// The encoded data is corrupt.
    #[error("invalid compressed body")]
    Corrupt,
    /// The decoded body exceeds the limit.
    #[error("decompressed body exceeds {0} bytes")]
    TooLarge(usize),
}

/// The largest zstd window accepted, as a power of two: 8 MiB, what zstd's levels up to 19 use.
/// A frame asking for more is refused instead of making the decoder allocate it.
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// An incremental decoder of one body.
pub struct Decoder {
    inner: Inner,
    state_bytes: usize,
    size_hint: Option<usize>,
}

enum Inner {
    /// The body as it came; handed out whole.
    Plain(Option<Bytes>),
    /// A decompressing reader over the body.
    Stream(Box<dyn Read + Send>),
    /// A body whose first attempt failed (raw deflate tried after zlib): the reader and the
    /// fallback to use if the first produces nothing but an error.
    Deflate {
        zlib: Box<dyn Read + Send>,
        raw: Option<Bytes>,
        produced: bool,
    },
}

impl Decoder {
    /// A decoder for `body` sent with `Content-Encoding: encoding` (none or `identity`: as is).
    pub fn new(encoding: Option<&str>, body: Bytes) -> Result<Self, EncodingError> {
        let encoding = encoding.map(|e| e.trim().to_ascii_lowercase());
        let size_hint = size_hint(encoding.as_deref(), &body);
        let (inner, state_bytes): (Inner, usize) = match encoding.as_deref() {
            None | Some("" | "identity") => (Inner::Plain(Some(body)), 0),
            Some("gzip" | "x-gzip") => (
                Inner::Stream(Box::new(flate2::read::MultiGzDecoder::new(body.reader()))),
                INFLATE_STATE,
            ),
            // HTTP "deflate" is zlib-wrapped; some clients send raw deflate: try zlib first.
            Some("deflate") => (
                Inner::Deflate {
                    zlib: Box::new(flate2::read::ZlibDecoder::new(body.clone().reader())),
                    raw: Some(body),
                    produced: false,
                },
                INFLATE_STATE,
            ),
            // The ring buffer is sized from the stream's window, at most 16 MiB (large windows
            // are off by default).
            Some("br") => (
                Inner::Stream(Box::new(brotli::Decompressor::new(body.reader(), 4096))),
                (16 << 20) + (256 << 10),
            ),
            Some("zstd") => {
                let mut decoder = zstd::stream::read::Decoder::new(body.reader())
                    .map_err(|_| EncodingError::Corrupt)?;
                decoder
                    .window_log_max(ZSTD_WINDOW_LOG_MAX)
                    .map_err(|_| EncodingError::Corrupt)?;
                (
                    Inner::Stream(Box::new(decoder)),
                    (1 << ZSTD_WINDOW_LOG_MAX) + (256 << 10),
                )
            }
            Some(other) => return Err(EncodingError::Unsupported(other.to_owned())),
        };
        Ok(Decoder {
            inner,
            state_bytes,
            size_hint,
        })
    }

    /// A decoder for a legacy `/store/` body: JSON as is (also JSON that is not an object, which
    /// the caller then refuses as invalid JSON), otherwise base64 of JSON or of zlib-compressed
    /// JSON (what old SDKs send).
    pub fn legacy_store(body: Bytes) -> Result<Self, EncodingError> {
        use base64::Engine as _;
        if looks_like_json(&body) {
            return Self::new(None, body);
        }
        let trimmed: Vec<u8> = body
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&trimmed)
            .map_err(|_| EncodingError::Corrupt)?;
        if decoded.first() == Some(&b'{') {
            return Self::new(None, Bytes::from(decoded));
        }
        Ok(Decoder {
            inner: Inner::Stream(Box::new(flate2::read::ZlibDecoder::new(
                Bytes::from(decoded).reader(),
            ))),
            state_bytes: INFLATE_STATE,
            size_hint: None,
        })
    }

    /// The most memory the decoder itself may allocate, beyond the bytes it produces.
    pub fn state_bytes(&self) -> usize {
        self.state_bytes
    }

    /// What the body says its decoded size is (gzip's trailer, zstd's frame header), when that
    /// is plausible; the sender may lie, so this sizes buffers but never bounds them.
    pub fn size_hint(&self) -> Option<usize> {
        self.size_hint
    }

    /// The body unchanged, when it was not encoded (taken: later calls return `None`).
    pub fn take_plain(&mut self) -> Option<Bytes> {
        match &mut self.inner {
            Inner::Plain(body) => body.take(),
            _ => None,
        }
    }

    /// Appends up to `max` decoded bytes to `out`; returns how many (0: the body is done).
    pub fn read_into(&mut self, out: &mut Vec<u8>, max: usize) -> Result<usize, EncodingError> {
        match &mut self.inner {
            Inner::Plain(body) => {
                let Some(rest) = body.as_mut() else {
                    return Ok(0);
                };
                let n = rest.len().min(max);
                out.extend_from_slice(&rest.split_to(n));
                Ok(n)
            }
            Inner::Stream(reader) => read_some(reader.as_mut(), out, max),
            Inner::Deflate {
                zlib,
                raw,
                produced,
            } => {
                match read_some(zlib.as_mut(), out, max) {
                    Ok(n) => {
                        *produced |= n > 0;
                        return Ok(n);
                    }
                    Err(error) if *produced => return Err(error),
                    Err(_) => {}
                }
                let raw = raw.take().ok_or(EncodingError::Corrupt)?;
                self.inner =
                    Inner::Stream(Box::new(flate2::read::DeflateDecoder::new(raw.reader())));
                self.read_into(out, max)
            }
        }
    }
}

/// The most a deflate stream can expand (a run of one byte repeated: about 1032:1).
const DEFLATE_MAX_RATIO: usize = 1032;

/// The decoded size a body declares: gzip's trailer (the size modulo 2^32 of a single-member
/// stream: checked against deflate's largest ratio) or zstd's frame header.
fn size_hint(encoding: Option<&str>, body: &[u8]) -> Option<usize> {
    match encoding {
        Some("gzip" | "x-gzip") if body.len() >= 18 => {
            let tail: [u8; 4] = body[body.len() - 4..].try_into().ok()?;
            let size = u32::from_le_bytes(tail) as usize;
            (size <= body.len().saturating_mul(DEFLATE_MAX_RATIO)).then_some(size)
        }
        Some("zstd") => zstd::zstd_safe::get_frame_content_size(body)
            .ok()
            .flatten()
            .and_then(|size| usize::try_from(size).ok()),
        None | Some("" | "identity") => Some(body.len()),
        _ => None,
    }
}

/// Memory of an inflate (gzip, zlib, deflate) decoder: its 32 KiB window and tables.
const INFLATE_STATE: usize = 64 << 10;

fn read_some(reader: &mut dyn Read, out: &mut Vec<u8>, max: usize) -> Result<usize, EncodingError> {
    let start = out.len();
    let read = reader
        .take(max as u64)
        .read_to_end(out)
        .map_err(|_| EncodingError::Corrupt);
    if read.is_err() {
        out.truncate(start);
    }
    read
}

/// Whether a legacy store body is JSON rather than base64: it starts with `{`, or all of it
/// parses as JSON (`1`, `[]`, `"x"`: invalid events, but JSON).
fn looks_like_json(body: &[u8]) -> bool {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None | Some(b'{') => true,
        Some(_) => serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok(),
    }
}

/// Decodes all of `body` (see [`Decoder::new`]), refusing more than `limit` decoded bytes.
pub fn decode(encoding: Option<&str>, body: Bytes, limit: usize) -> Result<Bytes, EncodingError> {
    decode_all(Decoder::new(encoding, body)?, limit)
}

/// Decodes all of a legacy `/store/` body (see [`Decoder::legacy_store`]), up to `limit` bytes.
pub fn decode_legacy_store(body: Bytes, limit: usize) -> Result<Bytes, EncodingError> {
    decode_all(Decoder::legacy_store(body)?, limit)
}

fn decode_all(mut decoder: Decoder, limit: usize) -> Result<Bytes, EncodingError> {
    if let Some(body) = decoder.take_plain() {
        return if body.len() > limit {
            Err(EncodingError::TooLarge(limit))
        } else {
            Ok(body)
        };
    }
    let mut out = Vec::new();
    loop {
        let room = limit + 1 - out.len();
        if decoder.read_into(&mut out, room.min(1 << 20))? == 0 {
            return Ok(Bytes::from(out));
        }
        if out.len() > limit {
            return Err(EncodingError::TooLarge(limit));
        }
    }
}

/// The first line of an encoded body, decoding at most `max` bytes of what is in `prefix` (the
/// start of the body; it may end mid-stream): `None` when no complete line is there.
///
/// For reading an envelope's header (and so its `dsn`) before the request is authenticated: a
/// bomb yields `None` after `max` bytes.
pub fn first_line(encoding: Option<&str>, prefix: Bytes, max: usize) -> Option<Bytes> {
    let mut decoder = Decoder::new(encoding, prefix).ok()?;
    if let Some(plain) = decoder.take_plain() {
        let end = memchr::memchr(b'\n', &plain[..plain.len().min(max)])?;
        return Some(plain.slice(..end));
    }
    let mut out = Vec::new();
    while out.len() < max {
        let start = out.len();
        // A truncated stream ends in an error once what it holds is decoded.
        match decoder.read_into(&mut out, (max - start).min(1024)) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if let Some(end) = memchr::memchr(b'\n', &out[start..]) {
            out.truncate(start + end);
            return Some(Bytes::from(out));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Bytes {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).expect("write");
        Bytes::from(enc.finish().expect("finish"))
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(data).expect("write");
        z.finish().expect("finish")
    }

    #[test]
    fn decodes_gzip_zlib_raw_deflate_and_plain() {
        assert_eq!(
            decode(Some("gzip"), gzip(b"hello"), 10).expect("gzip"),
            Bytes::from_static(b"hello")
        );
        assert_eq!(
            decode(Some("deflate"), Bytes::from(zlib(b"hi")), 10).expect("zlib"),
            Bytes::from_static(b"hi")
        );
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        raw.write_all(b"raw deflate").expect("write");
        let raw = Bytes::from(raw.finish().expect("finish"));
        assert_eq!(
            decode(Some("deflate"), raw, 100).expect("raw deflate"),
            Bytes::from_static(b"raw deflate")
        );
        assert_eq!(
            decode(None, Bytes::from_static(b"x"), 10).expect("plain"),
            Bytes::from_static(b"x")
        );
    }

    #[test]
    fn decodes_brotli_and_zstd_and_caps_their_output() {
        let mut br = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut br, 4096, 5, 22);
            w.write_all(b"brotli body").expect("write");
        }
        assert_eq!(
            decode(Some("br"), Bytes::from(br), 100).expect("br"),
            Bytes::from_static(b"brotli body")
        );
        let zstd = zstd::encode_all(&b"zstd body"[..], 3).expect("zstd");
        assert_eq!(
            decode(Some("zstd"), Bytes::from(zstd), 100).expect("zstd"),
            Bytes::from_static(b"zstd body")
        );
        let bomb = zstd::encode_all(&vec![0u8; 5 * 1024 * 1024][..], 3).expect("zstd");
        assert_eq!(
            decode(Some("zstd"), Bytes::from(bomb), 1024),
            Err(EncodingError::TooLarge(1024))
        );
    }

    #[test]
    fn refuses_a_zstd_window_beyond_the_maximum() {
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("encoder");
        encoder.long_distance_matching(true).expect("ldm");
        encoder.window_log(27).expect("window");
        encoder.write_all(&vec![7u8; 1 << 20]).expect("write");
        let body = Bytes::from(encoder.finish().expect("finish"));
        assert_eq!(
            decode(Some("zstd"), body, 10 << 20),
            Err(EncodingError::Corrupt)
        );
    }

    #[test]
    fn takes_the_declared_size_when_it_is_plausible() {
        let body = gzip(&[b'a'; 10_000]);
        assert_eq!(
            Decoder::new(Some("gzip"), body.clone())
                .expect("gzip")
                .size_hint(),
            Some(10_000)
        );
        // A trailer claiming more than deflate can expand to is ignored.
        let mut lying = body.to_vec();
        let n = lying.len();
        lying[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            Decoder::new(Some("gzip"), Bytes::from(lying))
                .expect("gzip")
                .size_hint(),
            None
        );
        // A one-shot compressor writes the size into the frame header; a streaming one cannot.
        let zstd = zstd::bulk::compress(&[b'z'; 5000], 3).expect("zstd");
        assert_eq!(
            Decoder::new(Some("zstd"), Bytes::from(zstd))
                .expect("zstd")
                .size_hint(),
            Some(5000)
        );
        assert_eq!(
            Decoder::new(None, Bytes::from_static(b"abc"))
                .expect("plain")
                .size_hint(),
            Some(3)
        );
    }

    #[test]
    fn reads_in_steps_of_at_most_the_requested_size() {
        let mut decoder = Decoder::new(Some("gzip"), gzip(&[b'a'; 10_000])).expect("decoder");
        assert_eq!(decoder.state_bytes(), INFLATE_STATE);
        let mut out = Vec::new();
        let mut steps = 0;
        while decoder.read_into(&mut out, 1000).expect("reads") > 0 {
            steps += 1;
            assert!(out.len() <= steps * 1000);
        }
        assert_eq!((out.len(), steps), (10_000, 10));
    }

    #[test]
    fn caps_decompressed_size() {
        let bomb = gzip(&vec![0u8; 10 * 1024 * 1024]);
        assert!(bomb.len() < 20 * 1024);
        assert_eq!(
            decode(Some("gzip"), bomb, 1024 * 1024),
            Err(EncodingError::TooLarge(1024 * 1024))
        );
        assert_eq!(
            decode(None, Bytes::from_static(b"12345"), 4),
            Err(EncodingError::TooLarge(4))
        );
    }

    #[test]
    fn rejects_corrupt_and_unknown() {
        assert_eq!(
            decode(Some("gzip"), Bytes::from_static(b"nope"), 10),
            Err(EncodingError::Corrupt)
        );
        assert!(matches!(
            decode(Some("lzma"), Bytes::new(), 10),
            Err(EncodingError::Unsupported(_))
        ));
    }

    #[test]
    fn decodes_legacy_store_bodies() {
        use base64::Engine as _;
        let json = Bytes::from_static(b"{\"message\":\"x\"}");
        assert_eq!(decode_legacy_store(json.clone(), 100).expect("json"), json);
        let b64 = base64::engine::general_purpose::STANDARD.encode(zlib(&json));
        assert_eq!(
            decode_legacy_store(Bytes::from(b64), 100).expect("legacy"),
            json
        );
        let plain = base64::engine::general_purpose::STANDARD.encode(&json);
        assert_eq!(
            decode_legacy_store(Bytes::from(plain), 100).expect("base64 json"),
            json
        );
        assert_eq!(
            decode_legacy_store(Bytes::from_static(b"not base64!"), 100),
            Err(EncodingError::Corrupt)
        );
        // JSON that is not an object passes through, for the caller to refuse as invalid JSON.
        for body in [&b"1"[..], b"[]", b" \"text\" ", b"null"] {
            let body = Bytes::copy_from_slice(body);
            assert_eq!(decode_legacy_store(body.clone(), 100).expect("json"), body);
        }
    }

    #[test]
    fn finds_the_first_line_of_a_plain_or_compressed_prefix() {
        let envelope = b"{\"dsn\":\"http://k@h/1\"}\n{\"type\":\"event\"}\n{}\n";
        assert_eq!(
            first_line(None, Bytes::from_static(envelope), 100).as_deref(),
            Some(&b"{\"dsn\":\"http://k@h/1\"}"[..])
        );
        // Only a prefix of the compressed stream is there: still enough for the first line.
        let mut long = envelope.to_vec();
        long.extend(std::iter::repeat_n(b'x', 100_000));
        let compressed = gzip(&long);
        let prefix = compressed.slice(..compressed.len() / 2);
        assert_eq!(
            first_line(Some("gzip"), prefix, 100).as_deref(),
            Some(&b"{\"dsn\":\"http://k@h/1\"}"[..])
        );
        // A bomb without a newline yields nothing after `max` bytes.
        let bomb = gzip(&vec![0u8; 10 << 20]);
        assert_eq!(first_line(Some("gzip"), bomb, 16 << 10), None);
        assert_eq!(
            first_line(None, Bytes::from_static(b"no newline"), 100),
            None
        );
    }
}
