//! Every control-plane limit hit against the real server on loopback, while
//! a WHIP publisher's media keeps reaching a WHEP viewer in another room.
//! The per-address limits count loopback here (`limit_loopback`), so every
//! client of the test shares one address.

use cascade_test_support as common;

use std::time::Duration;

use cascade::signal::limits::LimitsConfig;
use common::eventually;
use common::http::request;
use common::peer::{self, post_offer, SDP};
use common::server::Ws;
use str0m::media::{Direction, MediaKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_limit_refuses_with_a_retry_hint_and_other_rooms_keep_their_media() {
    let server = common::server::start(1, |c| {
        c.limits = LimitsConfig {
            sessions_per_ip: 6,
            // The joins below spend 9 (refused ones count); one more comes
            // back every 6.7 s, far more than the test takes to get there.
            joins_per_ip_per_minute: 9,
            limit_loopback: true,
        };
        c.max_participants_per_room = 2;
        c.max_rooms = 3;
    })
    .await;
    // Media in room "other": 2 sessions, 2 joins, 1 room, and a full room.
    let (_, publisher) = post_offer(&server, "/whip/other", Direction::SendOnly, Some(7)).await;
    let (_, viewer) = post_offer(&server, "/whep/other", Direction::RecvOnly, None).await;
    eventually("the viewer receives video", || {
        viewer.count_from(7, MediaKind::Video) > 10
    })
    .await;

    let mut a = Ws::connect(&server).await;
    a.join("r1", "a").await;
    let mut b = Ws::connect(&server).await;
    b.join("r1", "b").await;
    let mut c = Ws::connect(&server).await;
    c.send_json(serde_json::json!({"type": "join", "version": 1, "room": "r1", "name": "c"}))
        .await;
    let message = c.expect_error("rate_limited").await;
    assert!(
        message.contains("room is full") && message.contains("retry in"),
        "{message}"
    );
    let full = peer::offer(Direction::RecvOnly).await;
    let r = request(
        server.http_addr(),
        "POST",
        "/whep/other",
        &[SDP],
        full.sdp.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 429, "a full room refuses WHEP too: {}", r.body);
    assert!(r.header("retry-after").is_some());
    c.join("r2", "c").await;

    let mut d = Ws::connect(&server).await; // the 6th session
    d.send_json(serde_json::json!({"type": "join", "version": 1, "room": "r3", "name": "d"}))
        .await;
    let message = d.expect_error("rate_limited").await;
    assert!(message.contains("rooms"), "no fourth room: {message}");

    assert_eq!(
        Ws::try_connect(&server).await.err(),
        Some(429),
        "a 7th session"
    );
    let extra = peer::offer(Direction::SendOnly).await;
    let r = request(
        server.http_addr(),
        "POST",
        "/whip/r2",
        &[SDP],
        extra.sdp.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 429, "WHIP counts as a session: {}", r.body);
    assert!(r.header("retry-after").is_some());
    drop(d);
    let mut e = None;
    for _ in 0..50 {
        // The server notices the closed socket shortly after.
        if let Ok(ws) = Ws::try_connect(&server).await {
            e = Some(ws);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut e = e.expect("a freed session slot can be taken");
    e.join("r2", "e").await; // the 9th join: the budget is spent
    let mut f = e;
    f.send_json(serde_json::json!({"type": "leave"})).await;
    let mut g = loop {
        if let Ok(ws) = Ws::try_connect(&server).await {
            break ws;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    g.send_json(serde_json::json!({"type": "join", "version": 1, "room": "r2", "name": "g"}))
        .await;
    let message = g.expect_error("rate_limited").await;
    assert!(message.contains("too many joins"), "{message}");

    let before = viewer.count_from(7, MediaKind::Video);
    eventually("media in room other keeps flowing", || {
        viewer.count_from(7, MediaKind::Video) > before + 20
    })
    .await;
    a.assert_alive().await;
    publisher.stop().await;
    viewer.stop().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_closed_at_once_and_freed_slots_reused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    let server = common::server::start(1, |c| {
        c.max_connections = 3;
        c.timeouts.header = Duration::from_secs(2);
    })
    .await;
    let addr = server.http_addr();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await; // accepted
    let mut extra = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), extra.read_to_end(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the 4th connection is closed: {closed:?}"
    );
    drop(held.pop());
    let mut again = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut text = String::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut text)).await;
        if text.starts_with("HTTP/1.1 200") {
            again = Some(text);
            break;
        }
    }
    assert!(again.is_some(), "a freed slot serves again");
    server.shutdown().await;
}
