//! Bad and out-of-order signaling input against the real server: every case
//! gets a clear error, the connection survives where it can, and other rooms
//! are unharmed.

use cascade_test_support as common;

use std::time::Duration;

use cascade_load::{self as bot, BotOptions};
use cascade_protocol::ServerMessage;
use common::server::Ws;
use futures_util::StreamExt;
use serde_json::json;
use str0m::media::MediaKind;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_out_of_order_messages_get_errors_and_keep_the_connection() {
    let server = common::server::start(1, |_| {}).await;
    let mut ws = Ws::connect(&server).await;

    ws.send_text("{not json").await;
    ws.expect_error("bad_message").await;
    ws.send_json(json!({"no": "type"})).await;
    ws.expect_error("bad_message").await;
    ws.send_json(json!({"type": "teleport"})).await;
    ws.expect_error("unknown_type").await;
    ws.send_json(json!({"type": "publish_offer", "sdp": "v=0"}))
        .await;
    ws.expect_error("not_joined").await;
    ws.send_json(json!({"type": "join", "version": 99, "room": "r", "name": "n"}))
        .await;
    ws.expect_error("unsupported_version").await;
    ws.send_json(json!({"type": "join", "version": 1, "room": "no spaces!", "name": "n"}))
        .await;
    ws.expect_error("invalid_room").await;
    ws.send_json(json!({"type": "join", "version": 1, "room": "r", "name": ""}))
        .await;
    ws.expect_error("invalid_name").await;
    ws.stream.send_binary().await;
    ws.expect_error("bad_message").await;
    ws.assert_alive().await;

    ws.join("r", "tester").await;
    ws.send_json(json!({"type": "join", "version": 1, "room": "r", "name": "again"}))
        .await;
    ws.expect_error("already_joined").await;
    ws.send_json(json!({"type": "publish_offer", "sdp": "this is not sdp"}))
        .await;
    ws.expect_error("invalid_sdp").await;
    ws.send_json(json!({"type": "subscribe_answer", "sdp": "v=0\r\nnonsense"}))
        .await;
    ws.expect_error("invalid_sdp").await;
    ws.send_json(json!({"type": "candidate", "pc": "subscribe", "candidate": "candidate:broken"}))
        .await;
    ws.expect_error("invalid_candidate").await;
    ws.send_json(json!({"type": "candidate", "pc": "sideways", "candidate": ""}))
        .await;
    ws.expect_error("bad_message").await;
    ws.send_json(json!({
        "type": "candidate", "pc": "publish",
        "candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host"
    }))
    .await;
    ws.expect_error("invalid_candidate").await; // publish connection not negotiated
    ws.send_json(json!({"type": "mute", "mid": "9", "muted": true}))
        .await;
    ws.expect_error("unknown_track").await;
    ws.assert_alive().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_message_closes_only_that_connection() {
    let server = common::server::start(1, |_| {}).await;
    let mut ws = Ws::connect(&server).await;
    ws.join("big", "sender").await;
    let huge = json!({"type": "publish_offer", "sdp": "x".repeat(100 * 1024)});
    ws.send_json(huge).await;
    // The server says why (1009) and closes cleanly: the close frame is
    // not lost to a reset caused by the unread rest of the message.
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.stream.next())
            .await
            .expect("closes")
        {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("no close frame, got {other:?}"),
        }
    };
    let frame = close.expect("the close frame has a code");
    assert_eq!(u16::from(frame.code), 1009, "message too big");
    let after = tokio::time::timeout(Duration::from_secs(5), ws.stream.next())
        .await
        .expect("the stream ends");
    assert!(
        matches!(
            after,
            None | Some(Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed))
        ),
        "a clean end, not a reset: {after:?}"
    );
    // The server is fine: a new connection works.
    let mut other = Ws::connect(&server).await;
    other.join("big", "next").await;
    other.assert_alive().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_in_one_room_does_not_disturb_a_call_in_another() {
    let server = common::server::start(1, |_| {}).await;
    let addr = server.http_addr();
    let mut calls = Vec::new();
    for index in 0..2 {
        let mut opts = BotOptions::new(addr, "calm", index);
        opts.video_bitrate_bps = 400_000;
        opts.duration = Duration::from_secs(5);
        calls.push(tokio::spawn(bot::run(opts)));
    }
    // Meanwhile: a flood of junk over signaling and UDP at the same worker.
    let mut attacker = Ws::connect(&server).await;
    attacker.join("noisy", "attacker").await;
    let media = server.workers()[0].candidate_addr;
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..2000u32 {
        let junk: Vec<u8> = (0..(i % 1400) as usize)
            .map(|b| (b as u32 * 31 + i) as u8)
            .collect();
        let _ = udp.send_to(&junk, media).await;
        if i % 100 == 0 {
            attacker
                .send_text(&format!(
                    "{{\"type\":\"subscribe_answer\",\"sdp\":\"v=0 junk {i}\"}}"
                ))
                .await;
        }
        if i % 200 == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for (me, call) in calls.into_iter().enumerate() {
        let report = call.await.unwrap().expect("bot ran");
        let other = 1 - me as u32;
        let video = report
            .from_sender(other, MediaKind::Video)
            .expect("video flowed");
        assert!(
            video.packets > 100,
            "bot {me} got {} video packets",
            video.packets
        );
        assert_eq!(video.lost(), 0);
    }
    attacker.assert_alive().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_socket_is_leaving() {
    let server = common::server::start(1, |_| {}).await;
    let mut stayer = Ws::connect(&server).await;
    stayer.join("room", "stayer").await;
    let mut leaver = Ws::connect(&server).await;
    let leaver_id = leaver.join("room", "leaver").await;
    drop(leaver);
    let left = stayer
        .recv_until(|m| matches!(m, ServerMessage::ParticipantLeft { .. }))
        .await;
    assert_eq!(
        left,
        ServerMessage::ParticipantLeft {
            participant_id: leaver_id
        }
    );
    server.shutdown().await;
}

/// Sends a binary frame (the protocol is text only).
trait SendBinary {
    async fn send_binary(&mut self);
}

impl SendBinary
    for tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>
{
    async fn send_binary(&mut self) {
        use futures_util::SinkExt;
        self.send(Message::Binary(vec![1, 2, 3].into()))
            .await
            .unwrap();
    }
}

/// Sends a raw WebSocket upgrade with these extra header lines; returns the
/// status line's code.
async fn upgrade_status(addr: std::net::SocketAddr, extra: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\n{extra}\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut head))
        .await
        .expect("an answer")
        .unwrap();
    let text = String::from_utf8_lossy(&head[..n]);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_with_a_bad_key_or_from_another_site_are_refused() {
    let server = common::server::start(1, |_| {}).await;
    let addr = server.http_addr();
    const KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    assert_eq!(
        upgrade_status(addr, KEY).await,
        101,
        "no Origin: not a browser"
    );
    let own = format!("{KEY}Origin: http://{addr}\r\n");
    assert_eq!(
        upgrade_status(addr, &own).await,
        101,
        "the server's own page"
    );
    let foreign = format!("{KEY}Origin: https://evil.example\r\n");
    assert_eq!(upgrade_status(addr, &foreign).await, 403, "another site");
    for bad in [
        "Sec-WebSocket-Key: x\r\n",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\n",
    ] {
        assert_eq!(upgrade_status(addr, bad).await, 400, "{bad:?}");
    }
    server.shutdown().await;

    // An app on another site, once allowed.
    let server = common::server::start(1, |c| {
        c.allowed_origins =
            cascade::signal::origin::AllowedOrigins::parse(&["https://app.example".into()])
                .unwrap();
    })
    .await;
    let addr = server.http_addr();
    let app = format!("{KEY}Origin: https://app.example\r\n");
    assert_eq!(upgrade_status(addr, &app).await, 101, "a listed origin");
    let foreign = format!("{KEY}Origin: https://evil.example\r\n");
    assert_eq!(upgrade_status(addr, &foreign).await, 403);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framework_errors_read_like_cascades_own() {
    use common::http::request;
    let server = common::server::start(1, |_| {}).await;
    let addr = server.http_addr();
    let r = request(addr, "GET", "/no/such/path", &[], b"").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body, "no such endpoint\n");
    let origin = ("Origin", "https://app.example");
    let r = request(addr, "PUT", "/whip/room", &[origin], b"").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.body, "this endpoint does not take that method\n");
    assert!(r.header("allow").is_some(), "{:?}", r.headers);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let big = vec![b'v'; 70 * 1024];
    let sdp = ("Content-Type", "application/sdp");
    let r = request(addr, "POST", "/whip/room", &[sdp, origin], &big).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.body, "the body is larger than 64 KiB\n");
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    server.shutdown().await;
}
