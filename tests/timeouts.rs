//! Clients that never speak, or stop halfway, are cut off: each timeout of
//! the control plane against the real server on loopback (set short here).

use cascade_test_support as common;

use std::time::{Duration, Instant};

use cascade::server::Server;
use common::server::Ws;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn server() -> Server {
    common::server::start(1, |c| {
        c.timeouts.header = Duration::from_secs(1);
        c.timeouts.request = Duration::from_secs(2);
        c.timeouts.join = Duration::from_secs(1);
    })
    .await
}

/// Reads until the server closes the connection (bounded: 10 s); returns
/// what it sent and how long that took.
async fn read_until_closed(stream: &mut TcpStream) -> (String, Duration) {
    let start = Instant::now();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the server closed the connection within 10 s");
    (String::from_utf8_lossy(&got).into_owned(), start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_nothing_or_half_a_header_is_closed() {
    let server = server().await;
    let mut silent = TcpStream::connect(server.http_addr()).await.unwrap();
    let mut half = TcpStream::connect(server.http_addr()).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (_, took) = read_until_closed(&mut silent).await;
    assert!(
        took >= Duration::from_millis(900),
        "not before the timeout: {took:?}"
    );
    let (text, _) = read_until_closed(&mut half).await;
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text:?}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_gets_408() {
    let server = server().await;
    let mut stalled = TcpStream::connect(server.http_addr()).await.unwrap();
    stalled
        .write_all(b"POST /whip/room HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\nContent-Length: 1000\r\n\r\nv=0\r\n")
        .await
        .unwrap();
    let (text, _) = read_until_closed(&mut stalled).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_that_never_joins_is_closed() {
    let server = server().await;
    let mut ws = Ws::connect(&server).await;
    let message = ws.expect_error("fatal").await;
    assert!(message.contains("no join"), "{message}");
    assert_eq!(ws.recv().await, None, "then the socket closes");
    // One that joins in time stays.
    let mut joined = Ws::connect(&server).await;
    joined.join("room", "on time").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    joined.assert_alive().await;
    server.shutdown().await;
}
