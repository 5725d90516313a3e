//! Drain, from start to exit, on the real `cascade` binary: SIGTERM or
//! `POST /admin/drain` turns `/readyz` to 503 and refuses new WebSocket and
//! WHIP/WHEP joins with `server_draining`/503, while a participant already
//! in a room keeps its session; the process exits 0 once the last room
//! empties, or at `--drain-timeout` after removing everyone with a reason.
//! A second signal stops at once; SIGINT stops without a drain.
//!
//! What this does not prove: that media keeps flowing during a drain (the
//! participants here have no media; the workers run as before, which
//! `loopback_media` covers), nor how a load balancer reacts to 503.

use std::time::Duration;

use cascade_protocol::ServerMessage;
use cascade_test_support::http::{request, Response};
use cascade_test_support::peer::{offer, SDP};
use cascade_test_support::process::Cascade;
use cascade_test_support::server::{start, Ws};
use cascade_test_support::tokens::{self, require_tokens};
use str0m::media::Direction;

/// The binary with one worker and `args`.
async fn cascade(args: &[&str]) -> Cascade {
    let mut all = vec!["--workers", "1"];
    all.extend_from_slice(args);
    Cascade::start(env!("CARGO_BIN_EXE_cascade"), &all, &[]).await
}

/// Waits until `/readyz` says the server is draining.
async fn wait_until_draining(cascade: &Cascade) -> Response {
    for _ in 0..100 {
        let ready = cascade.get("/readyz").await;
        if ready.status == 503 {
            return ready;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/readyz never answered 503");
}

/// What a new client meets while the server drains.
async fn assert_new_joins_refused(cascade: &Cascade) {
    let ready = wait_until_draining(cascade).await;
    let body: serde_json::Value = serde_json::from_str(&ready.body).expect("readyz is JSON");
    assert_eq!(body["draining"], true, "{}", ready.body);
    assert_eq!(body["ready"], false, "{}", ready.body);

    let mut late = Ws::connect_to(cascade.addr).await;
    late.send_json(serde_json::json!(
        {"type": "join", "version": 1, "room": "other", "name": "Late"}
    ))
    .await;
    let message = late.expect_error("server_draining").await;
    assert!(message.contains("retry in"), "{message}");

    let offering = offer(Direction::SendOnly).await;
    let whip = request(
        cascade.addr,
        "POST",
        "/whip/other",
        &[SDP],
        offering.sdp.as_bytes(),
    )
    .await;
    assert_eq!(whip.status, 503, "{}", whip.body);
    assert!(whip.header("retry-after").is_some(), "{:?}", whip.headers);
    assert!(whip.body.contains("draining"), "{}", whip.body);
}

/// The participant's last message says it was removed for the shutdown.
async fn assert_removed_for_shutdown(ws: &mut Ws) {
    match ws
        .recv_until(|m| matches!(m, ServerMessage::Error { .. }))
        .await
    {
        ServerMessage::Error { message, .. } => {
            assert!(
                message.contains("removed") && message.contains("shutdown"),
                "{message}"
            )
        }
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn sigterm_drains_until_the_last_room_empties_then_exits_0() {
    let mut cascade = cascade(&[]).await;
    assert_eq!(cascade.get("/readyz").await.status, 200);
    let mut alice = Ws::connect_to(cascade.addr).await;
    alice.join("call", "Alice").await;

    cascade.signal("-TERM");
    assert_new_joins_refused(&cascade).await;

    // The call in progress goes on: its session still answers...
    alice.assert_alive().await;
    // ...and the server waits for it (the drain timeout is 5 minutes).
    assert!(cascade.is_running(), "the server waits for the last room");

    alice.send_json(serde_json::json!({"type": "leave"})).await;
    let status = cascade.exited().await;
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn admin_drain_with_a_timeout_removes_everyone_with_a_reason_and_exits_0() {
    let mut cascade = cascade(&["--drain-timeout", "2s"]).await;
    let mut alice = Ws::connect_to(cascade.addr).await;
    alice.join("call", "Alice").await;

    let drain = request(cascade.addr, "POST", "/admin/drain", &[], b"").await;
    assert_eq!(drain.status, 202, "{}", drain.body);
    let body: serde_json::Value = serde_json::from_str(&drain.body).expect("JSON");
    assert_eq!(body["rooms"], 1, "{}", drain.body);
    assert_new_joins_refused(&cascade).await;

    // Alice does not leave: at the timeout she is removed and told why.
    assert_removed_for_shutdown(&mut alice).await;
    let status = cascade.exited().await;
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn a_second_signal_during_a_drain_stops_at_once() {
    let mut cascade = cascade(&[]).await;
    let mut alice = Ws::connect_to(cascade.addr).await;
    alice.join("call", "Alice").await;
    cascade.signal("-TERM");
    wait_until_draining(&cascade).await;
    cascade.signal("-INT");
    let status = cascade.exited().await;
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn sigint_stops_without_a_drain() {
    let mut cascade = cascade(&[]).await;
    let mut alice = Ws::connect_to(cascade.addr).await;
    alice.join("call", "Alice").await;
    cascade.signal("-INT");
    let status = cascade.exited().await;
    assert!(status.success(), "exit status {status}");
    assert_removed_for_shutdown(&mut alice).await;
}

#[tokio::test]
async fn a_drain_over_the_admin_api_needs_an_admin_token_for_all_rooms() {
    let server = start(1, require_tokens).await;
    let addr = server.http_addr();
    let drain = |token: Option<String>| async move {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = bearer
            .as_deref()
            .map(|b| vec![("Authorization", b)])
            .unwrap_or_default();
        request(addr, "POST", "/admin/drain", &headers, b"").await
    };
    assert_eq!(drain(None).await.status, 401);
    let joiner = tokens::join_token("call", "alice");
    assert_eq!(drain(Some(joiner)).await.status, 403, "no roomAdmin grant");
    let one_room = tokens::token(
        "operator",
        cascade::auth::VideoGrant {
            room: Some("call".into()),
            room_admin: true,
            ..Default::default()
        },
    );
    assert_eq!(drain(Some(one_room)).await.status, 403, "one room only");
    let ready = request(addr, "GET", "/readyz", &[], b"").await;
    assert_eq!(ready.status, 200, "refused drains changed nothing");

    let accepted = drain(Some(tokens::admin_token())).await;
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    let ready = request(addr, "GET", "/readyz", &[], b"").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    // An in-process server drains too: nothing is left, so at once.
    assert_eq!(server.drain(Duration::from_secs(60)).await, 0);
    server.shutdown().await;
}
