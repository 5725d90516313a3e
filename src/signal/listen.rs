//! The HTTP accept loop: what `axum::serve` does, plus the bounds a public
//! server needs and axum does not set.
//!
//! - at most `max_connections` TCP connections at once: beyond it a new
//!   connection is closed at once, so a flood of sockets cannot exhaust
//!   file descriptors or memory;
//! - a connection must send a request's whole header within
//!   `header_timeout` (also between keep-alive requests): one that
//!   sends nothing, or trickles a header byte by byte, is closed;
//! - every request carries the peer's address (`ConnectInfo<SocketAddr>`)
//!   for the per-address limits (`super::limits`);
//! - a connection the server is done with lingers before it closes
//!   (`super::linger`), so what it sent last is not lost to a reset;
//! - with TLS (`super::tls`), the handshake too must finish within
//!   `header_timeout`.
//!
//! Bodies and whole requests are bounded by `super::app`'s layers.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::linger::Lingering;

/// Serves `app` on `listener` (over TLS with `tls`) until `shutdown`
/// resolves, then waits for the connections still serving a request.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    max_connections: usize,
    header_timeout: Duration,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(max_connections));
    let graceful = GracefulShutdown::new();
    // HTTP/1.1 only: sniffing for HTTP/2's preface would wait, unbounded,
    // for a first byte before the header timeout starts (browsers speak
    // HTTP/2 only over TLS anyway).
    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before
                    // accept: back off a little instead of spinning.
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%peer, max_connections, "connection refused: too many open");
            continue; // dropping the stream closes it
        };
        let _ = stream.set_nodelay(true);
        let service = app
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request.map(Body::new)
            });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            // hyper starts its header timer only once a first byte came:
            // a connection that sends nothing is closed here instead.
            let mut first = [0u8; 1];
            match tokio::time::timeout(header_timeout, stream.peek(&mut first)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return, // silent, closed or failed: drop it
            }
            let stream = Lingering::new(stream);
            let service = TowerToHyperService::new(service);
            let served = match tls {
                None => {
                    let connection =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    watcher.watch(connection.into_owned()).await
                }
                Some(tls) => {
                    let stream =
                        match tokio::time::timeout(header_timeout, tls.accept(stream)).await {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => return, // too slow a handshake
                        };
                    let connection =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    watcher.watch(connection.into_owned()).await
                }
            };
            if let Err(e) = served {
                tracing::trace!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
