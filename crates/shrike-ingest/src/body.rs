//! Request bodies in memory: read and decoded only after the request is authenticated (but for
//! the small peek at an envelope's header, see [`peek_envelope_dsn`]), within a memory budget
//! shared by every request, so that however many clients send bombs at once, ingest's memory
//! stays bounded. A request that cannot get its share in time is answered 503.

use crate::IngestError;
use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use shrike_protocol::encoding::{Decoder, EncodingError, first_line};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a request waits for its share of a memory budget before it is answered 503.
const BUDGET_WAIT: Duration = Duration::from_secs(1);
/// Output produced per decoding step; between steps the task yields.
const DECODE_STEP: usize = 64 << 10;
/// What an unauthenticated envelope may make ingest read (raw) to find its header's `dsn`...
pub const PEEK_RAW_BYTES: usize = 16 << 10;
/// ...and decode while looking for it.
pub const PEEK_LINE_BYTES: usize = 16 << 10;

/// Bytes of request bodies (as received and as decoded, plus decoders' state) that may be held in
/// memory at once. Cheap to clone.
#[derive(Clone)]
pub struct MemoryBudget {
    bytes: Arc<Semaphore>,
    total: usize,
}

impl MemoryBudget {
    /// A budget of `total` bytes (at least 1 MiB).
    pub fn new(total: usize) -> Self {
        let total = total.max(1 << 20);
        MemoryBudget {
            bytes: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// The budget's size.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Bytes not held by any request now.
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }

    /// An empty share, grown with [`Share::grow`].
    pub fn share(&self) -> Share {
        Share {
            budget: self.clone(),
            permit: None,
        }
    }
}

/// A request's share of a [`MemoryBudget`]; given back when dropped.
pub struct Share {
    budget: MemoryBudget,
    permit: Option<OwnedSemaphorePermit>,
}

impl Share {
    /// Bytes held.
    pub fn held(&self) -> usize {
        self.permit
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits)
    }

    /// Takes `bytes` more, waiting up to a second for them. A share that would outgrow the whole
    /// budget fails at once (waiting could never help it).
    pub async fn grow(&mut self, bytes: usize) -> Result<(), IngestError> {
        if bytes == 0 {
            return Ok(());
        }
        let over = || IngestError::OverBudget(self.budget.total >> 20);
        if self.held() + bytes > self.budget.total {
            return Err(over());
        }
        let count = u32::try_from(bytes).map_err(|_| over())?;
        let semaphore = self.budget.bytes.clone();
        let permit = match semaphore.clone().try_acquire_many_owned(count) {
            Ok(permit) => permit,
            Err(_) => {
                metrics::counter!("shrike_ingest_memory_waits_total").increment(1);
                tokio::time::timeout(BUDGET_WAIT, semaphore.acquire_many_owned(count))
                    .await
                    .map_err(|_| IngestError::Busy)?
                    // The semaphore is never closed.
                    .map_err(|_| IngestError::Busy)?
            }
        };
        match &mut self.permit {
            Some(held) => held.merge(permit),
            None => self.permit = Some(permit),
        }
        Ok(())
    }

    /// Gives back `bytes` of the share (no more than it holds).
    pub fn shrink(&mut self, bytes: usize) {
        if let Some(held) = &mut self.permit {
            drop(held.split(bytes.min(held.num_permits())));
        }
    }
}

/// What a peek at an envelope's header read: the start of the body (still counted in the
/// pre-authentication budget while `share` lives) and the header's `dsn`.
pub struct Peeked {
    /// The start of the body.
    pub start: Vec<Bytes>,
    /// The envelope header's `dsn`, when there is one.
    pub dsn: Option<String>,
    /// What `start` holds of the pre-authentication budget: kept until the request's own share
    /// counts those bytes.
    pub share: Share,
}

/// Reads the envelope header of an unauthenticated request, for its `dsn`: at most
/// [`PEEK_RAW_BYTES`] of the body are read (until the body ends, or for a plain body until its
/// first line does) and decoded once, at most [`PEEK_LINE_BYTES`] of it, within the small
/// pre-authentication `budget`.
pub async fn peek_envelope_dsn(
    body: &mut Body,
    encoding: Option<&str>,
    budget: &MemoryBudget,
) -> Result<Peeked, IngestError> {
    let plain = matches!(encoding.map(str::trim), None | Some("" | "identity"));
    let mut share = budget.share();
    let mut start = Vec::new();
    let mut read = 0;
    while read < PEEK_RAW_BYTES {
        let Some(frame) = body.frame().await else {
            break;
        };
        let Ok(data) = frame.map_err(|_| IngestError::Payload)?.into_data() else {
            continue;
        };
        share.grow(data.len()).await?;
        read += data.len();
        let newline = plain && memchr::memchr(b'\n', &data).is_some();
        start.push(data);
        if newline {
            break;
        }
    }
    let state = Decoder::new(encoding, Bytes::new()).map_or(0, |d| d.state_bytes());
    share.grow(state + PEEK_LINE_BYTES).await?;
    let line = first_line(encoding, concat(&start), PEEK_LINE_BYTES);
    share.shrink(state + PEEK_LINE_BYTES);
    let dsn = line.and_then(|line| {
        serde_json::from_slice::<shrike_protocol::envelope::EnvelopeHeader>(&line)
            .ok()
            .and_then(|header| header.dsn)
    });
    Ok(Peeked { start, dsn, share })
}

fn concat(chunks: &[Bytes]) -> Bytes {
    match chunks {
        [one] => one.clone(),
        many => {
            let mut joined = BytesMut::with_capacity(many.iter().map(Bytes::len).sum());
            for chunk in many {
                joined.extend_from_slice(chunk);
            }
            joined.freeze()
        }
    }
}

/// Reads the rest of the body after `start` (what a peek already read), refusing more than
/// `limit` bytes in all, each byte counted in `share` before it is kept.
pub async fn read(
    start: Vec<Bytes>,
    mut body: Body,
    content_length: Option<u64>,
    limit: usize,
    share: &mut Share,
) -> Result<Bytes, IngestError> {
    let too_large = || IngestError::BodyTooLarge(limit);
    if content_length.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let mut size: usize = start.iter().map(Bytes::len).sum();
    let mut chunks = start;
    // Counted as the bytes arrive, never for what is only announced: a slow sender holds no more
    // of the budget than it sent.
    share.grow(size).await?;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| IngestError::Payload)?.into_data() else {
            continue;
        };
        size += data.len();
        if size > limit {
            return Err(too_large());
        }
        share.grow(data.len()).await?;
        chunks.push(data);
    }
    // The joined body is counted while the chunks still exist.
    if chunks.len() > 1 {
        share.grow(size).await?;
        let joined = concat(&chunks);
        drop(chunks);
        share.shrink(size);
        return Ok(joined);
    }
    Ok(concat(&chunks))
}

/// Decodes a body up to `limit` bytes; the decoder's state and every buffer are counted in
/// `share` before they are allocated. Output goes into buffers sized from what the body declares
/// (or a guess), so an honest body is decoded into one buffer of its size; a body that lies gets
/// further buffers, each counted, joined at the end (both counted while both exist). Yields between
/// steps, so a large body does not hold up the runtime.
pub async fn decode(
    mut decoder: Decoder,
    encoded: usize,
    limit: usize,
    share: &mut Share,
) -> Result<Bytes, IngestError> {
    let too_large = || IngestError::Body(EncodingError::TooLarge(limit));
    if let Some(plain) = decoder.take_plain() {
        if plain.len() > limit {
            return Err(too_large());
        }
        return Ok(plain);
    }
    // A size the body declares is checked by its decoder at the end (gzip's trailer, zstd's
    // frame header): one over the limit would fail either way, so it fails now, for free.
    if decoder.size_hint().is_some_and(|size| size > limit) {
        return Err(too_large());
    }
    let state = decoder.state_bytes();
    share.grow(state).await?;
    // One more than declared, so that an honest body ends before its buffer is full; but a body
    // may lie, so no more at first than a generous multiple of what was sent.
    let trusted = FIRST_GUESS.max(encoded.saturating_mul(HINT_TRUST_RATIO));
    let mut capacity = decoder
        .size_hint()
        .map_or(FIRST_GUESS, |size| size.saturating_add(1))
        .min(trusted);
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let (mut total, mut charged) = (0usize, 0usize);
    loop {
        if chunks.last().is_none_or(|c| c.len() == c.capacity()) {
            let size = capacity.max(MIN_BUFFER).min(limit + 1 - total);
            share.grow(size).await?;
            charged += size;
            chunks.push(Vec::with_capacity(size));
            // Later buffers grow with what came so far, as a `Vec` would.
            capacity = total.max(DECODE_STEP);
        }
        let chunk = chunks.last_mut().expect("a buffer was just pushed");
        let room = chunk.capacity() - chunk.len();
        let n = decoder.read_into(chunk, room.min(DECODE_STEP))?;
        if n == 0 {
            break;
        }
        total += n;
        if total > limit {
            return Err(too_large());
        }
        if n == DECODE_STEP {
            tokio::task::yield_now().await;
        }
    }
    // The decoder held the only handle on the encoded body: both are gone now.
    drop(decoder);
    share.shrink(state + encoded);
    chunks.retain(|c| !c.is_empty());
    if chunks.len() <= 1 {
        return Ok(chunks.pop().map(Bytes::from).unwrap_or_default());
    }
    share.grow(total).await?;
    let mut joined = Vec::with_capacity(total);
    for chunk in chunks {
        joined.extend_from_slice(&chunk);
    }
    share.shrink(charged);
    Ok(Bytes::from(joined))
}

/// The first buffer of a body that does not declare its size.
const FIRST_GUESS: usize = 64 << 10;
/// The largest first buffer, as a multiple of the encoded body: JSON compresses 5–10 times, a
/// body declaring more than this much is given more only as it really produces it.
const HINT_TRUST_RATIO: usize = 32;
/// The smallest buffer.
const MIN_BUFFER: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Bytes {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).expect("write");
        Bytes::from(enc.finish().expect("finish"))
    }

    #[tokio::test]
    async fn a_share_is_given_back_when_dropped_and_cannot_outgrow_the_budget() {
        let budget = MemoryBudget::new(2 << 20);
        let mut share = budget.share();
        share.grow(1 << 20).await.expect("fits");
        assert_eq!(budget.available(), 1 << 20);
        share.shrink(512 << 10);
        assert_eq!(budget.available(), 3 << 19);
        let error = share.grow(3 << 20).await.expect_err("more than the budget");
        assert!(matches!(error, IngestError::OverBudget(2)));
        drop(share);
        assert_eq!(budget.available(), 2 << 20);
    }

    #[tokio::test]
    async fn a_request_waits_a_second_for_room_then_is_refused() {
        let budget = MemoryBudget::new(1 << 20);
        let mut first = budget.share();
        first.grow(1 << 20).await.expect("fits");
        let mut second = budget.share();
        let started = tokio::time::Instant::now();
        let error = second.grow(1).await.expect_err("no room");
        assert!(matches!(error, IngestError::Busy));
        assert!(started.elapsed() >= BUDGET_WAIT);
        // Room made while waiting is taken.
        let waiter = tokio::spawn(async move { second.grow(1000).await.map(|()| second.held()) });
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(first);
        assert_eq!(waiter.await.expect("joins").expect("room"), 1000);
    }

    /// Decodes `body` as ingest does: the encoded body counted first (as `read` counts it).
    async fn decoded(
        encoding: &str,
        body: Bytes,
        limit: usize,
        share: &mut Share,
    ) -> Result<Bytes, IngestError> {
        share.grow(body.len()).await?;
        let encoded = body.len();
        let decoder = Decoder::new(Some(encoding), body).expect("decoder");
        decode(decoder, encoded, limit, share).await
    }

    #[tokio::test]
    async fn decoding_counts_state_and_output_and_gives_back_the_encoded_body() {
        let budget = MemoryBudget::new(40 << 20);
        let mut share = budget.share();
        let out = decoded("gzip", gzip(&vec![b'x'; 300_000]), 1 << 20, &mut share)
            .await
            .expect("decodes");
        assert_eq!(out.len(), 300_000);
        // The output is counted (a body expanding 900 times gets its buffers as it produces them,
        // joined at the end); the state and the encoded body were given back.
        assert_eq!(share.held(), 300_000);
        drop(share);
        // An honest declared size within reach is one buffer of that size.
        let mut seed = 7u64;
        let varied: Vec<u8> = (0..300_000)
            .map(|_| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                (seed >> 56) as u8
            })
            .collect();
        let mut share = budget.share();
        let out = decoded("gzip", gzip(&varied), 1 << 20, &mut share)
            .await
            .expect("decodes");
        assert_eq!(out, Bytes::from(varied));
        assert_eq!(share.held(), 300_001);
        drop(share);
        assert_eq!(budget.available(), 40 << 20);

        let mut share = budget.share();
        let error = decoded("gzip", gzip(&vec![0u8; 50 << 20]), 1 << 20, &mut share)
            .await
            .expect_err("bomb");
        assert!(matches!(
            error,
            IngestError::Body(EncodingError::TooLarge(_))
        ));
        // A body that would need more than the whole budget is refused, not waited for.
        drop(share);
        let mut share = budget.share();
        let error = decoded("gzip", gzip(&vec![0u8; 60 << 20]), 100 << 20, &mut share)
            .await
            .expect_err("bomb");
        assert!(matches!(error, IngestError::OverBudget(40)), "{error:?}");
    }

    #[tokio::test]
    async fn a_declared_size_is_trusted_only_up_to_a_multiple_of_the_body() {
        let budget = MemoryBudget::new(40 << 20);
        let data: Vec<u8> = (0..400_000u32).map(|i| (i % 251) as u8).collect();
        // A trailer that claims 30 MiB: the first buffer is not 30 MiB.
        let mut body = gzip(&data).to_vec();
        let n = body.len();
        body[n - 4..].copy_from_slice(&(30u32 << 20).to_le_bytes());
        let mut share = budget.share();
        share.grow(n).await.expect("room");
        let decoder = Decoder::new(Some("gzip"), Bytes::from(body)).expect("gzip");
        assert_eq!(decoder.size_hint(), None, "more than deflate can expand to");
        // A trailer that lies low: flate2 checks it at the end, after the output was produced in
        // counted buffers.
        let mut body = gzip(&data).to_vec();
        body[n - 4..].copy_from_slice(&1000u32.to_le_bytes());
        let error = decoded("gzip", Bytes::from(body), 1 << 20, &mut share)
            .await
            .expect_err("the trailer lies");
        assert!(matches!(error, IngestError::Body(EncodingError::Corrupt)));
        drop(share);
        assert_eq!(budget.available(), 40 << 20);
        // Without a declared size (brotli), the output is joined from several buffers.
        let mut br = Vec::new();
        {
            let mut writer = brotli::CompressorWriter::new(&mut br, 4096, 5, 22);
            std::io::Write::write_all(&mut writer, &data).expect("brotli");
        }
        let mut share = budget.share();
        let out = decoded("br", Bytes::from(br), 1 << 20, &mut share)
            .await
            .expect("decodes");
        assert_eq!(&out[..], &data[..]);
        assert_eq!(share.held(), 400_000);
    }

    #[tokio::test]
    async fn a_limit_smaller_than_the_smallest_buffer_is_kept() {
        let budget = MemoryBudget::new(32 << 20);
        let mut share = budget.share();
        assert_eq!(
            decoded("gzip", gzip(b"{}"), 100, &mut share)
                .await
                .expect("fits"),
            Bytes::from_static(b"{}")
        );
        let error = decoded("gzip", gzip(&[b'a'; 1000]), 100, &mut share)
            .await
            .expect_err("too large");
        assert!(matches!(
            error,
            IngestError::Body(EncodingError::TooLarge(100))
        ));
    }

    #[tokio::test]
    async fn reading_refuses_bodies_over_the_limit_announced_or_not() {
        let budget = MemoryBudget::new(4 << 20);
        let mut share = budget.share();
        let error = read(
            Vec::new(),
            Body::from(vec![0u8; 10]),
            Some(10_000),
            100,
            &mut share,
        )
        .await
        .expect_err("announced too large");
        assert!(matches!(error, IngestError::BodyTooLarge(100)));
        let error = read(
            Vec::new(),
            Body::from(vec![0u8; 101]),
            None,
            100,
            &mut share,
        )
        .await
        .expect_err("too large");
        assert!(matches!(error, IngestError::BodyTooLarge(100)));
        let body = read(
            vec![Bytes::from_static(b"ab")],
            Body::from(&b"cd"[..]),
            None,
            100,
            &mut share,
        )
        .await
        .expect("fits");
        assert_eq!(body, Bytes::from_static(b"abcd"));
        assert_eq!(share.held(), 4, "what arrived, joined");
    }

    #[tokio::test]
    async fn a_peek_finds_the_dsn_of_a_compressed_envelope_and_stops_at_a_bomb() {
        let budget = MemoryBudget::new(20 << 20);
        let envelope = b"{\"dsn\":\"http://abc@host/1\"}\n{\"type\":\"event\"}\n{}\n";
        let mut body = Body::from(gzip(envelope));
        let peek = peek_envelope_dsn(&mut body, Some("gzip"), &budget)
            .await
            .expect("peek");
        assert_eq!(peek.dsn.as_deref(), Some("http://abc@host/1"));
        assert_eq!(concat(&peek.start), gzip(envelope));
        // What it read stays counted while the request holds it.
        assert_eq!(peek.share.held(), gzip(envelope).len());
        assert_eq!(budget.available(), (20 << 20) - gzip(envelope).len());
        drop(peek);
        let mut bomb = Body::from(gzip(&vec![0u8; 20 << 20]));
        let peek = peek_envelope_dsn(&mut bomb, Some("gzip"), &budget)
            .await
            .expect("peek");
        assert_eq!(peek.dsn, None);
        assert!(peek.share.held() <= PEEK_RAW_BYTES + (64 << 10));
        drop(peek);
        assert_eq!(
            budget.available(),
            20 << 20,
            "the peek's share is given back"
        );
    }
}
