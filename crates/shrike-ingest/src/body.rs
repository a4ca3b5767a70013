//! Request body decoding: `Content-Encoding` (gzip, deflate, br, zstd) with a hard cap on the
//! decompressed size, so a small compressed body cannot expand into unbounded memory (a zip bomb
//! costs nothing), and the legacy base64+zlib `/store/` body.

use bytes::Bytes;
use std::io::Read;

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    /// The encoding is not one Shrike decodes.
    #[error("unsupported content encoding {0:?}")]
    UnsupportedEncoding(String),
    /// The compressed data is corrupt.
    #[error("invalid compressed body")]
    Corrupt,
    /// The decompressed body exceeds the limit.
    #[error("decompressed body exceeds {0} bytes")]
    TooLarge(usize),
}

/// Decodes `body` according to `encoding` (the `Content-Encoding` header), up to `limit` bytes.
pub fn decode(encoding: Option<&str>, body: Bytes, limit: usize) -> Result<Bytes, BodyError> {
    let encoding = encoding.map(|e| e.trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("" | "identity") => {
            if body.len() > limit {
                return Err(BodyError::TooLarge(limit));
            }
            Ok(body)
        }
        Some("gzip" | "x-gzip") => read_capped(flate2::read::MultiGzDecoder::new(&body[..]), limit),
        Some("deflate") => {
            // HTTP "deflate" is zlib-wrapped; some clients send raw deflate. Try both.
            read_capped(flate2::read::ZlibDecoder::new(&body[..]), limit)
                .or_else(|_| read_capped(flate2::read::DeflateDecoder::new(&body[..]), limit))
        }
        Some("br") => read_capped(brotli::Decompressor::new(&body[..], 4096), limit),
        Some("zstd") => {
            let decoder =
                zstd::stream::read::Decoder::new(&body[..]).map_err(|_| BodyError::Corrupt)?;
            read_capped(decoder, limit)
        }
        Some(other) => Err(BodyError::UnsupportedEncoding(other.to_owned())),
    }
}

/// Decodes the legacy `/store/` body some old SDKs send: base64 of (optionally zlib-compressed)
/// JSON. A body that already is JSON is returned as is.
pub fn decode_legacy_store(body: Bytes, limit: usize) -> Result<Bytes, BodyError> {
    use base64::Engine as _;
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if matches!(first, Some(b'{') | None) {
        return Ok(body);
    }
    let trimmed: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&trimmed)
        .map_err(|_| BodyError::Corrupt)?;
    if decoded.first() == Some(&b'{') {
        if decoded.len() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        return Ok(Bytes::from(decoded));
    }
    read_capped(flate2::read::ZlibDecoder::new(&decoded[..]), limit)
}

fn read_capped(reader: impl Read, limit: usize) -> Result<Bytes, BodyError> {
    let mut out = Vec::new();
    let read = reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| BodyError::Corrupt)?;
    if read > limit {
        return Err(BodyError::TooLarge(limit));
    }
    Ok(Bytes::from(out))
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

    #[test]
    fn decodes_gzip_and_deflate() {
        assert_eq!(
            decode(Some("gzip"), gzip(b"hello"), 10).expect("gzip"),
            Bytes::from_static(b"hello")
        );
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(b"hi").expect("write");
        let body = Bytes::from(z.finish().expect("finish"));
        assert_eq!(
            decode(Some("deflate"), body, 10).expect("deflate"),
            Bytes::from_static(b"hi")
        );
        assert_eq!(
            decode(None, Bytes::from_static(b"x"), 10).expect("plain"),
            Bytes::from_static(b"x")
        );
    }

    #[test]
    fn decodes_brotli_and_zstd() {
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
            Err(BodyError::TooLarge(1024))
        );
    }

    #[test]
    fn decodes_legacy_store_bodies() {
        use base64::Engine as _;
        let json = Bytes::from_static(b"{\"message\":\"x\"}");
        assert_eq!(decode_legacy_store(json.clone(), 100).expect("json"), json);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&json).expect("write");
        let b64 = base64::engine::general_purpose::STANDARD.encode(z.finish().expect("finish"));
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
            Err(BodyError::Corrupt)
        );
    }

    #[test]
    fn caps_decompressed_size() {
        let bomb = gzip(&vec![0u8; 10 * 1024 * 1024]);
        assert!(bomb.len() < 20 * 1024);
        assert_eq!(
            decode(Some("gzip"), bomb, 1024 * 1024),
            Err(BodyError::TooLarge(1024 * 1024))
        );
        assert_eq!(
            decode(None, Bytes::from_static(b"12345"), 4),
            Err(BodyError::TooLarge(4))
        );
    }

    #[test]
    fn rejects_corrupt_and_unknown() {
        assert_eq!(
            decode(Some("gzip"), Bytes::from_static(b"nope"), 10),
            Err(BodyError::Corrupt)
        );
        assert!(matches!(
            decode(Some("lzma"), Bytes::new(), 10),
            Err(BodyError::UnsupportedEncoding(_))
        ));
    }
}
