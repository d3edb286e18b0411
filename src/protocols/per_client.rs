//! The bound on connections open at once from one client address
//! (`server.max_connections_per_client`), shared by every listener: HTTP
//! (WebSockets included, for as long as they stay open) and TCP. A
//! connection takes a slot when accepted and gives it back when closed;
//! past the bound it is refused at once with `too_many_connections`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Connections open per client address.
#[derive(Clone, Default)]
pub struct PerClient {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// At most this many per address; 0 = no bound.
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// A connection's place; dropping it frees the place.
pub struct Slot {
    inner: Arc<Inner>,
    ip: IpAddr,
}

impl PerClient {
    /// At most `max` connections per address at once (0: no bound).
    pub fn new(max: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                max,
                open: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// A place for a new connection from `ip`, or `None` at the bound.
    pub fn try_take(&self, ip: IpAddr) -> Option<Slot> {
        let mut open = self.inner.lock();
        let n = open.entry(ip).or_insert(0);
        if self.inner.max != 0 && *n >= self.inner.max {
            return None;
        }
        *n += 1;
        Some(Slot {
            inner: self.inner.clone(),
            ip,
        })
    }

    /// Connections open now from `ip`.
    pub fn open(&self, ip: IpAddr) -> usize {
        self.inner.lock().get(&ip).copied().unwrap_or(0)
    }

    pub fn max(&self) -> usize {
        self.inner.max
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.inner.lock();
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// A stream that holds its connection's [`Slot`] for as long as it lives
/// (through an HTTP upgrade to a WebSocket too).
pub struct Counted<S> {
    stream: S,
    _slot: Slot,
}

impl<S> Counted<S> {
    pub fn new(stream: S, slot: Slot) -> Self {
        Self {
            stream,
            _slot: slot,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_per_address_bounded_and_given_back() {
        let limit = PerClient::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = limit.try_take(a).unwrap();
        let _second = limit.try_take(a).unwrap();
        assert!(limit.try_take(a).is_none());
        assert!(
            limit.try_take(b).is_some(),
            "another address is not affected"
        );
        drop(first);
        assert_eq!(limit.open(a), 1);
        assert!(limit.try_take(a).is_some());
        let open = PerClient::new(0);
        let all: Vec<_> = (0..100).map(|_| open.try_take(a).unwrap()).collect();
        assert_eq!(open.open(a), all.len());
    }
}
