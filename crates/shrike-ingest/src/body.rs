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
    /// budget fails with `too_large` (waiting could never help it).
    pub async fn grow(
        &mut self,
        bytes: usize,
        too_large: impl FnOnce() -> IngestError,
    ) -> Result<(), IngestError> {
        if bytes == 0 {
            return Ok(());
        }
        if self.held() + bytes > self.budget.total {
            return Err(too_large());
        }
        let count = u32::try_from(bytes).map_err(|_| too_large())?;
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

/// Reads the envelope header of an unauthenticated request, for its `dsn`: at most
/// [`PEEK_RAW_BYTES`] of the body are read and [`PEEK_LINE_BYTES`] decoded, within the small
/// pre-authentication `budget`. Returns what was read (the start of the body) and the `dsn`.
pub async fn peek_envelope_dsn(
    body: &mut Body,
    encoding: Option<&str>,
    budget: &MemoryBudget,
) -> Result<(Vec<Bytes>, Option<String>), IngestError> {
    let mut share = budget.share();
    let mut chunks = Vec::new();
    let mut read = 0;
    while read < PEEK_RAW_BYTES {
        let Some(frame) = body.frame().await else {
            break;
        };
        let Ok(data) = frame.map_err(|_| IngestError::Payload)?.into_data() else {
            continue;
        };
        share.grow(data.len(), || IngestError::Busy).await?;
        read += data.len();
        chunks.push(data);
        let state = Decoder::new(encoding, Bytes::new()).map_or(0, |d| d.state_bytes());
        share
            .grow(state + PEEK_LINE_BYTES, || IngestError::Busy)
            .await?;
        let line = first_line(encoding, concat(&chunks), PEEK_LINE_BYTES);
        share.shrink(state + PEEK_LINE_BYTES);
        if let Some(line) = line {
            let dsn = serde_json::from_slice::<shrike_protocol::envelope::EnvelopeHeader>(&line)
                .ok()
                .and_then(|header| header.dsn);
            return Ok((chunks, dsn));
        }
    }
    Ok((chunks, None))
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
    // Announced bodies take their share at once; others as they arrive.
    let announced = content_length.map_or(0, |l| l as usize);
    share.grow(announced.max(size), too_large).await?;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| IngestError::Payload)?.into_data() else {
            continue;
        };
        size += data.len();
        if size > limit {
            return Err(too_large());
        }
        if size > share.held() {
            share.grow(size - share.held(), too_large).await?;
        }
        chunks.push(data);
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
    let state = decoder.state_bytes();
    share.grow(state, too_large).await?;
    // One more than declared, so that an honest body ends before its buffer is full.
    let mut capacity = decoder
        .size_hint()
        .map_or(FIRST_GUESS, |size| size.saturating_add(1));
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let (mut total, mut charged) = (0usize, 0usize);
    loop {
        if chunks.last().is_none_or(|c| c.len() == c.capacity()) {
            let size = capacity.max(MIN_BUFFER).min(limit + 1 - total);
            share.grow(size, too_large).await?;
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
    drop(decoder);
    share.shrink(state);
    chunks.retain(|c| !c.is_empty());
    if chunks.len() <= 1 {
        return Ok(chunks.pop().map(Bytes::from).unwrap_or_default());
    }
    share.grow(total, too_large).await?;
    let mut joined = Vec::with_capacity(total);
    for chunk in chunks {
        joined.extend_from_slice(&chunk);
    }
    share.shrink(charged);
    Ok(Bytes::from(joined))
}

/// The first buffer of a body that does not declare its size.
const FIRST_GUESS: usize = 64 << 10;
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
        share
            .grow(1 << 20, || IngestError::Busy)
            .await
            .expect("fits");
        assert_eq!(budget.available(), 1 << 20);
        share.shrink(512 << 10);
        assert_eq!(budget.available(), 3 << 19);
        let error = share
            .grow(3 << 20, || IngestError::BodyTooLarge(0))
            .await
            .expect_err("more than the budget");
        assert!(matches!(error, IngestError::BodyTooLarge(_)));
        drop(share);
        assert_eq!(budget.available(), 2 << 20);
    }

    #[tokio::test]
    async fn a_request_waits_a_second_for_room_then_is_refused() {
        let budget = MemoryBudget::new(1 << 20);
        let mut first = budget.share();
        first
            .grow(1 << 20, || IngestError::Busy)
            .await
            .expect("fits");
        let mut second = budget.share();
        let started = tokio::time::Instant::now();
        let error = second
            .grow(1, || IngestError::BodyTooLarge(0))
            .await
            .expect_err("no room");
        assert!(matches!(error, IngestError::Busy));
        assert!(started.elapsed() >= BUDGET_WAIT);
        // Room made while waiting is taken.
        let waiter = tokio::spawn(async move {
            second
                .grow(1000, || IngestError::Busy)
                .await
                .map(|()| second.held())
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(first);
        assert_eq!(waiter.await.expect("joins").expect("room"), 1000);
    }

    #[tokio::test]
    async fn decoding_counts_state_and_output_and_stops_at_the_limit() {
        let budget = MemoryBudget::new(4 << 20);
        let mut share = budget.share();
        let body = gzip(&vec![b'x'; 300_000]);
        let decoder = Decoder::new(Some("gzip"), body).expect("gzip");
        let decoded = decode(decoder, 1 << 20, &mut share).await.expect("decodes");
        assert_eq!(decoded.len(), 300_000);
        // The output is counted; the decoder's state was given back.
        assert!(
            share.held() >= 300_000 && share.held() < 600_000,
            "{}",
            share.held()
        );
        drop(share);

        let mut share = budget.share();
        let bomb = gzip(&vec![0u8; 50 << 20]);
        let decoder = Decoder::new(Some("gzip"), bomb).expect("gzip");
        let error = decode(decoder, 1 << 20, &mut share)
            .await
            .expect_err("bomb");
        assert!(matches!(
            error,
            IngestError::Body(EncodingError::TooLarge(_))
        ));
        // A bomb larger than the whole budget is refused, not waited for.
        drop(share);
        let mut share = budget.share();
        let decoder = Decoder::new(Some("gzip"), gzip(&vec![0u8; 8 << 20])).expect("gzip");
        let error = decode(decoder, 100 << 20, &mut share)
            .await
            .expect_err("bomb");
        assert!(matches!(
            error,
            IngestError::Body(EncodingError::TooLarge(_))
        ));
    }

    #[tokio::test]
    async fn a_body_that_lies_about_its_size_is_decoded_in_counted_buffers() {
        let budget = MemoryBudget::new(32 << 20);
        let data: Vec<u8> = (0..400_000u32).map(|i| (i % 251) as u8).collect();
        let mut body = gzip(&data).to_vec();
        let n = body.len();
        body[n - 4..].copy_from_slice(&1000u32.to_le_bytes());
        let mut share = budget.share();
        let decoder = Decoder::new(Some("gzip"), Bytes::from(body)).expect("gzip");
        assert_eq!(decoder.size_hint(), Some(1000));
        let decoded = decode(decoder, 1 << 20, &mut share).await;
        // flate2 checks the trailer's size at the end: the lie is caught, but only after the
        // whole output was produced in counted buffers.
        assert!(decoded.is_err() || decoded.as_deref().ok() == Some(&data[..]));
        assert!(share.held() <= 2 * 400_000 + (64 << 10), "{}", share.held());
        drop(share);
        assert_eq!(budget.available(), 32 << 20);
        // Without a declared size (brotli), the output is joined from several buffers.
        let mut br = Vec::new();
        {
            let mut writer = brotli::CompressorWriter::new(&mut br, 4096, 5, 22);
            std::io::Write::write_all(&mut writer, &data).expect("brotli");
        }
        let mut share = budget.share();
        let decoder = Decoder::new(Some("br"), Bytes::from(br)).expect("br");
        let decoded = decode(decoder, 1 << 20, &mut share).await.expect("decodes");
        assert_eq!(&decoded[..], &data[..]);
        assert_eq!(share.held(), 400_000);
    }

    #[tokio::test]
    async fn a_limit_smaller_than_the_smallest_buffer_is_kept() {
        let budget = MemoryBudget::new(32 << 20);
        let mut share = budget.share();
        let decoder = Decoder::new(Some("gzip"), gzip(b"{}")).expect("gzip");
        assert_eq!(
            decode(decoder, 100, &mut share).await.expect("fits"),
            Bytes::from_static(b"{}")
        );
        let decoder = Decoder::new(Some("gzip"), gzip(&[b'a'; 1000])).expect("gzip");
        let error = decode(decoder, 100, &mut share)
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
        assert_eq!(share.held(), 4);
    }

    #[tokio::test]
    async fn a_peek_finds_the_dsn_of_a_compressed_envelope_and_stops_at_a_bomb() {
        let budget = MemoryBudget::new(20 << 20);
        let envelope = b"{\"dsn\":\"http://abc@host/1\"}\n{\"type\":\"event\"}\n{}\n";
        let mut body = Body::from(gzip(envelope));
        let (start, dsn) = peek_envelope_dsn(&mut body, Some("gzip"), &budget)
            .await
            .expect("peek");
        assert_eq!(dsn.as_deref(), Some("http://abc@host/1"));
        assert_eq!(concat(&start), gzip(envelope));
        let mut bomb = Body::from(gzip(&vec![0u8; 20 << 20]));
        let (_, dsn) = peek_envelope_dsn(&mut bomb, Some("gzip"), &budget)
            .await
            .expect("peek");
        assert_eq!(dsn, None);
        assert_eq!(
            budget.available(),
            20 << 20,
            "the peek's share is given back"
        );
    }
}
