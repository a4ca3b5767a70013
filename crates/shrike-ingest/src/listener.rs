//! Connection limits for ingest's listener: at most `max_connections` open at once (like Relay's
//! `limits.max_connections`), further clients wait in the kernel's accept queue; and a connection
//! with no traffic either way for `idle_timeout` is closed, so idle keep-alive connections cannot
//! hold every slot forever.
//!
//! Each open connection costs ingest memory (about 17 KiB idle and 40 KiB once it has carried a
//! request, measured on `shrike up`), so under overload the connection count, not the queued
//! events, decides the resident memory; the limit bounds it.

use axum::serve::Listener;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// A TCP listener that keeps at most a fixed number of connections open.
pub struct LimitedListener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    idle_timeout: Duration,
}

impl LimitedListener {
    /// Wraps `inner`: at most `max_connections` (at least 1) open at once, each closed after
    /// `idle_timeout` without traffic.
    pub fn new(inner: TcpListener, max_connections: usize, idle_timeout: Duration) -> Self {
        LimitedListener {
            inner,
            slots: Arc::new(Semaphore::new(max_connections.max(1))),
            idle_timeout,
        }
    }
}

impl Listener for LimitedListener {
    type Io = LimitedStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // The semaphore is never closed, so acquiring only waits.
        let slot = self.slots.clone().acquire_owned().await;
        let (stream, addr) = Listener::accept(&mut self.inner).await;
        let stream = LimitedStream {
            inner: stream,
            _slot: slot.ok(),
            idle_timeout: self.idle_timeout,
            idle: Box::pin(tokio::time::sleep(self.idle_timeout)),
        };
        (stream, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// An accepted connection; frees its slot when dropped.
pub struct LimitedStream {
    inner: TcpStream,
    _slot: Option<OwnedSemaphorePermit>,
    idle_timeout: Duration,
    idle: Pin<Box<Sleep>>,
}

impl LimitedStream {
    fn active(&mut self) {
        self.idle.as_mut().reset(Instant::now() + self.idle_timeout);
    }

    /// Whether nothing moved for `idle_timeout`; registers for a wake-up at the deadline.
    fn timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        self.idle.as_mut().poll(cx).is_ready()
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
                this.active();
                Poll::Ready(result)
            }
            Poll::Pending if this.timed_out(cx) => Poll::Ready(Err(io::Error::new(
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
        if result.is_ready() {
            this.active();
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if result.is_ready() {
            this.active();
        }
        result
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
    async fn a_connection_beyond_the_limit_waits_until_one_closes() {
        let (mut listener, addr) = listener(1, Duration::from_secs(60)).await;
        let _a = TcpStream::connect(addr).await.expect("connect");
        let (first, _) = listener.accept().await;
        let _b = TcpStream::connect(addr)
            .await
            .expect("queued in the kernel");
        let second = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
        assert!(second.is_err(), "no slot while the first is open");
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .expect("accepted once the slot is free");
    }

    #[tokio::test]
    async fn an_idle_connection_times_out_but_a_busy_one_does_not() {
        let (mut listener, addr) = listener(4, Duration::from_millis(300)).await;
        let mut client = TcpStream::connect(addr).await.expect("connect");
        let (mut server, _) = listener.accept().await;
        let mut buf = [0u8; 8];
        // Traffic every 100 ms keeps it open past the timeout.
        for _ in 0..6 {
            client.write_all(b"x").await.expect("write");
            let n = server
                .read(&mut buf)
                .await
                .expect("busy connection stays open");
            assert_eq!(n, 1);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let started = Instant::now();
        let error = server
            .read(&mut buf)
            .await
            .expect_err("idle connection closes");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(150));
    }
}
