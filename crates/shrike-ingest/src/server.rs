//! Ingest's HTTP/1.1 server and its connection limits: at most `max_connections` open at once;
//! a connection without traffic for `idle_timeout` is closed; while clients wait for a slot, idle
//! keep-alive connections and connections whose authentication failed are closed after their
//! answer. A request in progress is never cut for a waiting client.
//!
//! Connections are kept small (HTTP/1.1 only, heads of at most [`MAX_HEAD_BYTES`], one shared
//! router), because under overload their number decides ingest's memory. The answers hyper gives
//! unparsable requests by itself (400, 414, 431) get the `{"detail": ...}` body of every other
//! refusal.

use crate::{AuthRejected, ClientAddr};
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How long open requests may take to finish once the server is told to stop.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How often an open connection checks whether it should close.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// While clients wait for a slot, a connection idle between requests this long is closed.
const IDLE_UNDER_PRESSURE: Duration = Duration::from_millis(200);
/// The most bytes of a request's line and headers (hyper's read buffer, per connection).
pub const MAX_HEAD_BYTES: usize = 32 << 10;

/// Serves `app` on `listener` until `stop` fires; then accepts no more connections, closes idle
/// ones, and lets open requests finish (for at most ten seconds).
pub async fn serve(listener: LimitedListener, app: Router, stop: CancellationToken) {
    let graceful = GracefulShutdown::new();
    // Ends connections still open after the grace period, so that no request is answered after
    // `serve` returned (the caller drains the bus next and must see every accepted event).
    let kill = CancellationToken::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.max_buf_size(MAX_HEAD_BYTES);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => break,
        };
        let state = stream.state.clone();
        let pressure = stream.pressure.clone();
        let client = ClientAddr(stream.peer.ip());
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            let busy = Busy::enter(&state);
            let app = app.clone();
            let pressure = pressure.clone();
            request.extensions_mut().insert(client);
            async move {
                let mut response = app.oneshot(request).await;
                if let Ok(response) = &mut response
                    && response.extensions().get::<AuthRejected>().is_some()
                    && pressure.load(Ordering::Relaxed)
                {
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                drop(busy);
                response
            }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        let kill = kill.clone();
        tokio::spawn(async move {
            tokio::select! {
                ended = connection => if let Err(error) = ended {
                    tracing::debug!(%error, "connection ended with an error");
                },
                () = kill.cancelled() => {}
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still open after the shutdown grace period; dropping them");
        kill.cancel();
    }
}

/// A TCP listener that keeps at most a fixed number of connections open.
pub struct LimitedListener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    /// Set while an accepted client waits for a slot.
    pressure: Arc<AtomicBool>,
    idle_timeout: Duration,
}

impl LimitedListener {
    /// Wraps `inner`: at most `max_connections` (at least 1) open at once, each closed after
    /// `idle_timeout` without a request.
    pub fn new(inner: TcpListener, max_connections: usize, idle_timeout: Duration) -> Self {
        LimitedListener {
            inner,
            slots: Arc::new(Semaphore::new(max_connections.max(1))),
            pressure: Arc::new(AtomicBool::new(false)),
            idle_timeout,
        }
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.inner.local_addr()
    }

    /// The next connection, once it has a slot.
    pub async fn accept(&self) -> LimitedStream {
        let (stream, peer) = loop {
            match self.inner.accept().await {
                Ok(accepted) => break accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        let slot = match self.slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                self.pressure.store(true, Ordering::Relaxed);
                let slot = self.slots.clone().acquire_owned().await;
                self.pressure.store(false, Ordering::Relaxed);
                // The semaphore is never closed.
                slot.expect("connection slots are never closed")
            }
        };
        LimitedStream {
            inner: stream,
            peer,
            rewritten: None,
            _slot: slot,
            state: Arc::new(ConnectionState::default()),
            pressure: self.pressure.clone(),
            idle_timeout: self.idle_timeout,
            last_active: Instant::now(),
            seen_done: 0,
            check: Box::pin(tokio::time::sleep(CHECK_EVERY)),
        }
    }
}

/// What the connection's requests tell its stream.
#[derive(Default)]
struct ConnectionState {
    /// Requests being handled.
    busy: AtomicUsize,
    /// Requests handled so far; a change counts as activity (a response was just produced).
    done: AtomicUsize,
}

/// Marks a request in progress on its connection until dropped.
struct Busy(Arc<ConnectionState>);

impl Busy {
    fn enter(state: &Arc<ConnectionState>) -> Self {
        state.busy.fetch_add(1, Ordering::Relaxed);
        Busy(state.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.done.fetch_add(1, Ordering::Relaxed);
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An accepted connection; frees its slot when dropped.
pub struct LimitedStream {
    inner: TcpStream,
    peer: std::net::SocketAddr,
    /// A rewritten automatic answer of hyper's, and how much of it is written.
    rewritten: Option<(Vec<u8>, usize)>,
    _slot: OwnedSemaphorePermit,
    state: Arc<ConnectionState>,
    pressure: Arc<AtomicBool>,
    idle_timeout: Duration,
    last_active: Instant,
    /// `state.done` when last looked at.
    seen_done: usize,
    check: Pin<Box<Sleep>>,
}

impl LimitedStream {
    /// Counts a finished write as traffic.
    fn wrote(&mut self, result: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if result.is_ready() {
            self.last_active = Instant::now();
        }
        result
    }

    /// Whether the connection should close: no traffic for the idle timeout, or, while other
    /// clients wait for a slot, no request in progress and briefly idle. Otherwise arranges to
    /// ask again.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        while self.check.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            let done = self.state.done.load(Ordering::Relaxed);
            if done != self.seen_done {
                self.seen_done = done;
                self.last_active = now;
            }
            let idle = now.saturating_duration_since(self.last_active);
            let busy = self.state.busy.load(Ordering::Relaxed) > 0;
            if idle >= self.idle_timeout
                || (!busy && self.pressure.load(Ordering::Relaxed) && idle >= IDLE_UNDER_PRESSURE)
            {
                return true;
            }
            self.check.as_mut().reset(now + CHECK_EVERY);
        }
        false
    }
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.last_active = Instant::now();
                Poll::Ready(result)
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle for too long",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl LimitedStream {
    /// Writes what is left of a rewritten answer.
    fn poll_rewritten(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.rewritten {
            if *written == bytes.len() {
                self.rewritten = None;
                break;
            }
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// hyper's automatic answer to a request it could not parse, given a `{"detail": ...}` body:
/// `None` for anything else. Such an answer is an error status with `content-length: 0` and no
/// content type; every answer of Shrike's own routes to an error has a JSON body.
fn with_detail_body(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let rest = text.strip_prefix("HTTP/1.1 ")?;
    let (code, _) = rest.split_once(' ')?;
    if !matches!(code.as_bytes().first(), Some(b'4' | b'5')) {
        return None;
    }
    let head = text.strip_suffix("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut kept = Vec::new();
    let mut empty = false;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        if name.eq_ignore_ascii_case("content-type") {
            return None;
        }
        if name.eq_ignore_ascii_case("content-length") {
            empty = value.trim() == "0";
            continue;
        }
        kept.push(line);
    }
    if !empty {
        return None;
    }
    let reason = status_line.splitn(3, ' ').nth(2).unwrap_or("error");
    let body = serde_json::json!({ "detail": reason.to_ascii_lowercase() }).to_string();
    let mut out = format!("{status_line}\r\n");
    for line in kept {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(&format!(
        "content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    ));
    Some(out.into_bytes())
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Poll::Ready(Err(error)) = this.poll_rewritten(cx) {
            return Poll::Ready(Err(error));
        }
        if this.rewritten.is_some() {
            return Poll::Pending;
        }
        if let Some(answer) = with_detail_body(buf) {
            this.rewritten = Some((answer, 0));
            // The whole of hyper's answer is taken; its replacement is written from here on.
            let _ = this.poll_rewritten(cx);
            return this.wrote(Poll::Ready(Ok(buf.len())));
        }
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.wrote(result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let [only] = bufs
            && with_detail_body(only).is_some()
        {
            return Pin::new(this).poll_write(cx, only);
        }
        if let Poll::Ready(Err(error)) = this.poll_rewritten(cx) {
            return Poll::Ready(Err(error));
        }
        if this.rewritten.is_some() {
            return Poll::Pending;
        }
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_rewritten(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.inner).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_rewritten(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.inner).poll_shutdown(cx),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn listener(max: usize, idle: Duration) -> (LimitedListener, std::net::SocketAddr) {
        let inner = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = inner.local_addr().expect("addr");
        (LimitedListener::new(inner, max, idle), addr)
    }

    #[tokio::test]
    async fn serves_keep_alive_requests_and_stops_when_told() {
        let (listener, addr) = listener(8, Duration::from_secs(60)).await;
        let app = Router::new().route("/", axum::routing::get(|| async { "hi" }));
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(listener, app, stop.clone()));
        let mut client = TcpStream::connect(addr).await.expect("connect");
        for _ in 0..2 {
            client
                .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .expect("write");
            let mut buf = [0u8; 256];
            let n = client.read(&mut buf).await.expect("read");
            let response = String::from_utf8_lossy(&buf[..n]);
            assert!(response.starts_with("HTTP/1.1 200"), "{response}");
            assert!(response.ends_with("hi"), "{response}");
        }
        // The keep-alive connection is idle: stopping closes it and the server returns.
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("server stops")
            .expect("joins");
        let mut buf = [0u8; 16];
        assert_eq!(client.read(&mut buf).await.expect("eof"), 0);
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "no longer listening"
        );
    }

    async fn get(client: &mut TcpStream, path: &str) -> String {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        client.write_all(request.as_bytes()).await.expect("write");
        let mut buf = [0u8; 256];
        let n = client.read(&mut buf).await.expect("read");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    fn app() -> Router {
        Router::new()
            .route("/", axum::routing::get(|| async { "hi" }))
            .route(
                "/echo",
                axum::routing::post(|body: String| async move { body }),
            )
            .route(
                "/slow",
                axum::routing::get(|| async {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    "slow"
                }),
            )
    }

    /// Whether the server ends the connection within `within` (after whatever it still sends).
    async fn closed(client: &mut TcpStream, within: Duration) -> bool {
        let mut buf = [0u8; 256];
        tokio::time::timeout(within, async {
            while matches!(client.read(&mut buf).await, Ok(1..)) {}
        })
        .await
        .is_ok()
    }

    #[tokio::test]
    async fn an_idle_keep_alive_connection_makes_way_for_a_waiting_client() {
        let (listener, addr) = listener(1, Duration::from_secs(60)).await;
        tokio::spawn(serve(listener, app(), CancellationToken::new()));
        let mut first = TcpStream::connect(addr).await.expect("connect");
        assert!(get(&mut first, "/").await.starts_with("HTTP/1.1 200"));
        // The only slot is taken by an idle connection; the next client is served once it closes.
        let mut second = TcpStream::connect(addr).await.expect("connect");
        let response = tokio::time::timeout(Duration::from_secs(5), get(&mut second, "/"))
            .await
            .expect("served within a few seconds");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(closed(&mut first, Duration::from_secs(1)).await);
    }

    #[tokio::test]
    async fn a_request_in_progress_is_not_cut_for_a_waiting_client() {
        let (listener, addr) = listener(1, Duration::from_secs(60)).await;
        tokio::spawn(serve(listener, app(), CancellationToken::new()));
        let mut busy = TcpStream::connect(addr).await.expect("connect");
        let slow = tokio::spawn(async move { get(&mut busy, "/slow").await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut waiting = TcpStream::connect(addr).await.expect("connect");
        let started = Instant::now();
        let response = tokio::time::timeout(Duration::from_secs(5), get(&mut waiting, "/"))
            .await
            .expect("served after the slow request");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(started.elapsed() >= Duration::from_millis(1000));
        let slow = slow.await.expect("joins");
        assert!(
            slow.starts_with("HTTP/1.1 200") && slow.ends_with("slow"),
            "{slow}"
        );
    }

    #[tokio::test]
    async fn an_idle_connection_closes_after_the_timeout() {
        let (listener, addr) = listener(8, Duration::from_millis(300)).await;
        tokio::spawn(serve(listener, app(), CancellationToken::new()));
        let mut client = TcpStream::connect(addr).await.expect("connect");
        assert!(get(&mut client, "/").await.starts_with("HTTP/1.1 200"));
        // Not before the timeout, closed within a check period after it.
        assert!(!closed(&mut client, Duration::from_millis(250)).await);
        assert!(closed(&mut client, Duration::from_secs(3)).await);
        // A client that sent headers and part of a body, then went silent, loses its slot too.
        let mut client = TcpStream::connect(addr).await.expect("connect");
        client
            .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
            .await
            .expect("write");
        assert!(closed(&mut client, Duration::from_secs(3)).await);
    }

    #[tokio::test]
    async fn requests_hyper_cannot_parse_get_a_detail_body() {
        let (listener, addr) = listener(8, Duration::from_secs(60)).await;
        tokio::spawn(serve(listener, app(), CancellationToken::new()));
        let answer = |request: Vec<u8>| async move {
            let mut client = TcpStream::connect(addr).await.expect("connect");
            client.write_all(&request).await.expect("write");
            let mut response = Vec::new();
            let _ = client.read_to_end(&mut response).await;
            String::from_utf8_lossy(&response).into_owned()
        };
        // A head over the limit.
        let mut huge = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', 4 * MAX_HEAD_BYTES));
        huge.extend_from_slice(b"\r\n\r\n");
        let response = answer(huge).await;
        assert!(response.starts_with("HTTP/1.1 431 "), "{response}");
        assert!(
            response.contains("content-type: application/json")
                && response.ends_with("{\"detail\":\"request header fields too large\"}"),
            "{response}"
        );
        // A request line of another protocol.
        let response = answer(b"GET / FOO/1.1\r\n\r\n".to_vec()).await;
        assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
        assert!(
            response.ends_with("{\"detail\":\"bad request\"}"),
            "{response}"
        );
        // An ordinary request on the same server is untouched.
        let mut client = TcpStream::connect(addr).await.expect("connect");
        assert!(get(&mut client, "/").await.ends_with("hi"));
    }

    #[test]
    fn only_bare_error_answers_are_rewritten() {
        let bare =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let rewritten =
            String::from_utf8(with_detail_body(bare).expect("rewritten")).expect("utf8");
        assert!(
            rewritten.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\ndate: x\r\n")
        );
        let body = "{\"detail\":\"request header fields too large\"}";
        assert!(
            rewritten.ends_with(&format!("content-length: {}\r\n\r\n{body}", body.len())),
            "{rewritten}"
        );
        for kept in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nextra",
        ] {
            assert!(with_detail_body(kept).is_none(), "{}", String::from_utf8_lossy(kept));
        }
    }
}
