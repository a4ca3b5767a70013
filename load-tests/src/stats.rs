//! What happened to every request: counts by status, latencies in HDR histograms (overall and per
//! second), per-second send/accept rates, and the ids of accepted events for the end-to-end check.
//! Latency is measured from each request's intended send time, so queueing in the harness or the
//! server is never hidden. Shared by all senders behind one mutex; holds no I/O.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered with this status.
    Status(u16),
    /// No answer.
    Transport(TransportError),
}

/// Why a request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportError {
    /// The request timeout expired.
    Timeout,
    /// The connection could not be made.
    Connect,
    /// Anything else (reset, protocol error).
    Other,
}

#[derive(Debug)]
struct Second {
    sent: u64,
    accepted: u64,
    failed: u64,
    dropped: u64,
    latency: Histogram<u64>,
}

#[derive(Debug)]
struct Inner {
    latency: Histogram<u64>,
    seconds: Vec<Second>,
    codes: BTreeMap<u16, u64>,
    transport: BTreeMap<TransportError, u64>,
    sent: u64,
    dropped: u64,
    accepted: u64,
    completed: u64,
    bytes_sent: u64,
    payload_bytes: u64,
    first_send: Option<Duration>,
    last_done: Option<Duration>,
    accepted_events: Vec<(Uuid, u64)>,
}

/// Longest latency the histograms hold exactly (longer ones are clamped): one hour, in µs.
const MAX_LATENCY_US: u64 = 3_600_000_000;

fn histogram(sigfig: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, sigfig)
        .unwrap_or_else(|_| unreachable!("constant histogram bounds are valid"))
}

/// Collects the outcome of every request of a run.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    inner: Mutex<Inner>,
}

/// Counters for the progress bar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Requests sent.
    pub sent: u64,
    /// Requests answered or failed.
    pub completed: u64,
    /// 2xx answers.
    pub accepted: u64,
    /// Events not sent because too many requests were in flight.
    pub dropped: u64,
}

/// Requests by outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusCounts {
    /// 2xx answers.
    pub ok_2xx: u64,
    /// 429 Too Many Requests.
    pub rate_limited_429: u64,
    /// 413 Payload Too Large.
    pub too_large_413: u64,
    /// 5xx answers.
    pub server_error_5xx: u64,
    /// Any other status.
    pub other_status: u64,
    /// No answer (timeouts, refused or reset connections).
    pub transport_errors: u64,
    /// Every status code seen, with its count.
    pub by_code: BTreeMap<u16, u64>,
    /// Transport errors by kind.
    pub transport_by_kind: BTreeMap<TransportError, u64>,
}

/// Latency percentiles, milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Requests measured.
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

/// One second of the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecondPoint {
    /// Seconds since the start.
    pub second: u64,
    /// Requests sent in this second.
    pub sent: u64,
    /// 2xx answers received in this second.
    pub accepted: u64,
    /// Non-2xx answers and transport errors received in this second.
    pub failed: u64,
    /// Events due in this second but dropped.
    pub dropped: u64,
    /// Median latency of requests due in this second.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency of requests due in this second.
    pub p99_ms: Option<f64>,
    /// Events of the run that became queryable in this second (end-to-end check only).
    pub stored: Option<u64>,
}

/// The totals of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Requests sent.
    pub sent: u64,
    /// Requests answered or failed.
    pub completed: u64,
    /// 2xx answers.
    pub accepted: u64,
    /// Events due while `max_in_flight` requests were outstanding: not sent.
    pub dropped: u64,
    /// Request body bytes sent (compressed when gzip is on).
    pub bytes_sent: u64,
    /// Event JSON bytes sent (before compression).
    pub payload_bytes: u64,
    /// From the first send to the last answer, seconds.
    pub elapsed_secs: f64,
    /// `sent / elapsed_secs`.
    pub sent_per_sec: f64,
    /// `accepted / elapsed_secs`: the accepted rate.
    pub accepted_per_sec: f64,
}

/// Everything the recorder learned.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Totals and rates.
    pub totals: Totals,
    /// Answers by status.
    pub statuses: StatusCounts,
    /// Latency over the whole run.
    pub latency: LatencySummary,
    /// Per-second series.
    pub seconds: Vec<SecondPoint>,
    /// Accepted event ids with their send time (Unix ms).
    pub accepted_events: Vec<(Uuid, u64)>,
    /// When the first request went out, relative to the recorder's start.
    pub first_send: Option<Duration>,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn summarize(h: &Histogram<u64>) -> LatencySummary {
    if h.is_empty() {
        return LatencySummary::default();
    }
    LatencySummary {
        count: h.len(),
        mean_ms: h.mean() / 1000.0,
        p50_ms: ms(h.value_at_quantile(0.5)),
        p90_ms: ms(h.value_at_quantile(0.9)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
    }
}

impl Recorder {
    /// A recorder whose second 0 starts at `start`.
    pub fn new(start: Instant) -> Self {
        Recorder {
            start,
            inner: Mutex::new(Inner {
                latency: histogram(3),
                seconds: Vec::new(),
                codes: BTreeMap::new(),
                transport: BTreeMap::new(),
                sent: 0,
                dropped: 0,
                accepted: 0,
                completed: 0,
                bytes_sent: 0,
                payload_bytes: 0,
                first_send: None,
                last_done: None,
                accepted_events: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves counters that are still meaningful.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn offset(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.start)
    }

    fn second(inner: &mut Inner, offset: Duration) -> &mut Second {
        let index = offset.as_secs() as usize;
        while inner.seconds.len() <= index {
            inner.seconds.push(Second {
                sent: 0,
                accepted: 0,
                failed: 0,
                dropped: 0,
                latency: histogram(2),
            });
        }
        &mut inner.seconds[index]
    }

    /// A request went out at `at` with a body of `body_len` bytes carrying `payload_len` bytes of
    /// event JSON.
    pub fn sent(&self, at: Instant, body_len: usize, payload_len: usize) {
        let offset = self.offset(at);
        let mut inner = self.lock();
        inner.sent += 1;
        inner.bytes_sent += body_len as u64;
        inner.payload_bytes += payload_len as u64;
        if inner.first_send.is_none_or(|f| offset < f) {
            inner.first_send = Some(offset);
        }
        Self::second(&mut inner, offset).sent += 1;
    }

    /// An event due at `intended` was not sent.
    pub fn dropped(&self, intended: Instant) {
        let offset = self.offset(intended);
        let mut inner = self.lock();
        inner.dropped += 1;
        Self::second(&mut inner, offset).dropped += 1;
    }

    /// A request due at `intended` ended at `done`; `sent_unix_ms` is when it went out.
    pub fn done(
        &self,
        intended: Instant,
        done: Instant,
        outcome: Outcome,
        event_id: Uuid,
        sent_unix_ms: u64,
    ) {
        let latency_us =
            (done.saturating_duration_since(intended).as_micros() as u64).clamp(1, MAX_LATENCY_US);
        let (due, finished) = (self.offset(intended), self.offset(done));
        let mut inner = self.lock();
        inner.completed += 1;
        inner.latency.saturating_record(latency_us);
        Self::second(&mut inner, due)
            .latency
            .saturating_record(latency_us);
        if inner.last_done.is_none_or(|l| finished > l) {
            inner.last_done = Some(finished);
        }
        let accepted = match outcome {
            Outcome::Status(code) => {
                *inner.codes.entry(code).or_default() += 1;
                (200..300).contains(&code)
            }
            Outcome::Transport(kind) => {
                *inner.transport.entry(kind).or_default() += 1;
                false
            }
        };
        if accepted {
            inner.accepted += 1;
            inner.accepted_events.push((event_id, sent_unix_ms));
            Self::second(&mut inner, finished).accepted += 1;
        } else {
            Self::second(&mut inner, finished).failed += 1;
        }
    }

    /// Counters so far.
    pub fn progress(&self) -> Progress {
        let inner = self.lock();
        Progress {
            sent: inner.sent,
            completed: inner.completed,
            accepted: inner.accepted,
            dropped: inner.dropped,
        }
    }

    /// Totals, status counts, latency percentiles and the per-second series.
    pub fn summary(&self) -> Summary {
        let mut inner = self.lock();
        let mut statuses = StatusCounts {
            by_code: inner.codes.clone(),
            transport_by_kind: inner.transport.clone(),
            ..StatusCounts::default()
        };
        for (&code, &count) in &inner.codes {
            match code {
                200..=299 => statuses.ok_2xx += count,
                429 => statuses.rate_limited_429 += count,
                413 => statuses.too_large_413 += count,
                500..=599 => statuses.server_error_5xx += count,
                _ => statuses.other_status += count,
            }
        }
        statuses.transport_errors = inner.transport.values().sum();
        let elapsed = match (inner.first_send, inner.last_done) {
            (Some(first), Some(last)) => last.saturating_sub(first).as_secs_f64().max(1e-3),
            _ => 0.0,
        };
        let rate = |n: u64| {
            if elapsed > 0.0 {
                n as f64 / elapsed
            } else {
                0.0
            }
        };
        let totals = Totals {
            sent: inner.sent,
            completed: inner.completed,
            accepted: inner.accepted,
            dropped: inner.dropped,
            bytes_sent: inner.bytes_sent,
            payload_bytes: inner.payload_bytes,
            elapsed_secs: elapsed,
            sent_per_sec: rate(inner.sent),
            accepted_per_sec: rate(inner.accepted),
        };
        let seconds = inner
            .seconds
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let has = !s.latency.is_empty();
                SecondPoint {
                    second: i as u64,
                    sent: s.sent,
                    accepted: s.accepted,
                    failed: s.failed,
                    dropped: s.dropped,
                    p50_ms: has.then(|| ms(s.latency.value_at_quantile(0.5))),
                    p99_ms: has.then(|| ms(s.latency.value_at_quantile(0.99))),
                    stored: None,
                }
            })
            .collect();
        Summary {
            totals,
            latency: summarize(&inner.latency),
            statuses,
            seconds,
            accepted_events: std::mem::take(&mut inner.accepted_events),
            first_send: inner.first_send,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_statuses_and_latency_add_up() {
        let start = Instant::now();
        let recorder = Recorder::new(start);
        let at = |ms: u64| start + Duration::from_millis(ms);
        // 100 requests over 2 s (one every 20 ms), each answered 5 ms after it was due; every
        // tenth gets a 429, one a 503, one times out, one is dropped.
        for i in 0..100u64 {
            let due = at(i * 20);
            if i == 99 {
                recorder.dropped(due);
                continue;
            }
            recorder.sent(due, 100, 400);
            let outcome = match i {
                7 => Outcome::Status(503),
                8 => Outcome::Transport(TransportError::Timeout),
                i if i % 10 == 0 => Outcome::Status(429),
                _ => Outcome::Status(200),
            };
            recorder.done(
                due,
                due + Duration::from_millis(5),
                outcome,
                Uuid::new_v4(),
                0,
            );
        }
        let progress = recorder.progress();
        assert_eq!(progress.sent, 99);
        assert_eq!(progress.completed, 99);
        assert_eq!(progress.dropped, 1);
        let s = recorder.summary();
        assert_eq!(s.totals.sent, 99);
        assert_eq!(s.totals.accepted, 99 - 10 - 2);
        assert_eq!(s.accepted_events.len(), 87);
        assert_eq!(s.totals.bytes_sent, 9900);
        assert_eq!(s.totals.payload_bytes, 39600);
        assert_eq!(s.statuses.ok_2xx, 87);
        assert_eq!(s.statuses.rate_limited_429, 10);
        assert_eq!(s.statuses.server_error_5xx, 1);
        assert_eq!(s.statuses.transport_errors, 1);
        assert_eq!(s.statuses.transport_by_kind[&TransportError::Timeout], 1);
        assert_eq!(s.statuses.by_code[&200], 87);
        // First send at 0 ms, last answer at 98 * 20 + 5 ms.
        assert!((s.totals.elapsed_secs - 1.965).abs() < 1e-9);
        assert!((s.totals.accepted_per_sec - 87.0 / 1.965).abs() < 1e-6);
        assert!((s.totals.sent_per_sec - 99.0 / 1.965).abs() < 1e-6);
        assert_eq!(s.latency.count, 99);
        assert!((s.latency.p50_ms - 5.0).abs() < 0.01, "{:?}", s.latency);
        assert!((s.latency.max_ms - 5.0).abs() < 0.01);
        assert_eq!(s.seconds.len(), 2);
        assert_eq!(s.seconds[0].sent, 50);
        assert_eq!(s.seconds[1].sent, 49);
        assert_eq!(s.seconds[1].dropped, 1);
        assert_eq!(s.seconds[0].accepted + s.seconds[1].accepted, 87);
        assert_eq!(s.seconds[0].failed + s.seconds[1].failed, 12);
    }

    #[test]
    fn latency_counts_from_the_intended_time() {
        let start = Instant::now();
        let recorder = Recorder::new(start);
        // Due at 0, sent late at 900 ms, answered at 1000 ms: latency is 1000 ms, not 100 ms.
        recorder.sent(start + Duration::from_millis(900), 1, 1);
        recorder.done(
            start,
            start + Duration::from_millis(1000),
            Outcome::Status(200),
            Uuid::new_v4(),
            0,
        );
        let s = recorder.summary();
        assert!((s.latency.max_ms - 1000.0).abs() < 1.0, "{:?}", s.latency);
        assert!(
            s.seconds[0]
                .p99_ms
                .is_some_and(|v| (v - 1000.0).abs() < 15.0)
        );
        assert_eq!(s.seconds[1].accepted, 1);
    }
}
