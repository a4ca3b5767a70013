//! Request body decoding: `Content-Encoding` handling with a hard cap on the decompressed size, so
//! a small compressed body cannot expand into unbounded memory (a zip bomb costs nothing).

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
        Some(other) => Err(BodyError::UnsupportedEncoding(other.to_owned())),
    }
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
