//! Ingest's HTTP/1.1 server and its connection limits: at most `max_connections` open at once
//! (like Relay's `limits.max_connections`), further clients wait to be served. A connection with
//! no traffic for `idle_timeout` is closed, whether idle between requests or stalled in one (a
//! client that sent headers and vanished must not keep its slot); while clients wait for a slot,
//! so is every connection idle between requests for a moment (as nginx reuses idle keep-alive
//! connections when it runs out), so that keep-alive clients cannot hold every slot. A request in
//! progress, or whose response was just produced, is not cut for a waiting client.
//!
//! Under overload the number of open connections, not the queued events, decides ingest's resident
//! memory, so each is kept small: HTTP/1.1 only (no protocol sniffing buffer), and the router is
//! shared rather than rebuilt per connection (heaptrack on `shrike up`, 1,000 connections that had
//! each carried a request: about 13 KiB per connection, down from 49 KiB with `axum::serve`).

use axum::Router;
use axum::extract::Request;
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

/// Serves `app` on `listener` until `stop` fires; then accepts no more connections, closes idle
/// ones, and lets open requests finish (for at most ten seconds).
pub async fn serve(listener: LimitedListener, app: Router, stop: CancellationToken) {
    let graceful = GracefulShutdown::new();
    // Ends connections still open after the grace period, so that no request is answered after
    // `serve` returned (the caller drains the bus next and must see every accepted event).
    let kill = CancellationToken::new();
    let http = hyper::server::conn::http1::Builder::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => break,
        };
        let state = stream.state.clone();
        let app = app.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let busy = Busy::enter(&state);
            let app = app.clone();
            async move {
                let response = app.oneshot(request).await;
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
        let stream = loop {
            match self.inner.accept().await {
                Ok((stream, _)) => break stream,
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

impl AsyncWrite for LimitedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.wrote(result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
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
}
