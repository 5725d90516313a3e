//! Lingering close (RFC 9112 section 9.6): a connection the server is done
//! with is shut down for writing first, and what the client still sends is
//! read and dropped for a moment before the socket closes.
//!
//! Closing a socket with unread bytes in its receive buffer makes the kernel
//! answer with a reset, and a reset may destroy the last things the server
//! sent before the client reads them: the `1009` close frame after an
//! oversize WebSocket message (whose unread rest is exactly such bytes), or
//! a `413` answered before the body was read. Draining is bounded in time
//! and bytes, so a client that keeps sending cannot hold the socket.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// How long a closed connection is drained at most.
const LINGER: Duration = Duration::from_secs(2);
/// How many bytes are drained at most.
const LINGER_BYTES: usize = 256 * 1024;

/// A TCP stream that lingers when dropped (see the module docs).
pub struct Lingering {
    stream: Option<TcpStream>,
}

impl Lingering {
    pub fn new(stream: TcpStream) -> Self {
        Lingering {
            stream: Some(stream),
        }
    }

    fn stream(&mut self) -> Pin<&mut TcpStream> {
        // Taken only in `drop`.
        Pin::new(self.stream.as_mut().expect("a stream until dropped"))
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // no runtime (shutting down): close as is
        };
        runtime.spawn(drain(stream));
    }
}

/// Shuts `stream` down for writing and reads until the client closes its
/// side, `LINGER` passes or `LINGER_BYTES` came.
async fn drain(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let _ = tokio::time::timeout(LINGER, async {
        let mut buffer = [0u8; 4096];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

impl AsyncRead for Lingering {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.stream().poll_read(cx, buf)
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.stream().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.stream().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_shutdown(cx)
    }
}
