//! ICE over TCP against the real server: independent str0m endpoints with
//! no UDP candidate at all (a network that drops UDP) publish over WHIP and
//! view over WHEP through the workers' passive TCP candidates, and a TCP
//! viewer that stops reading is dropped after a bounded queue while another
//! room on the same worker keeps playing.

use cascade_test_support as common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::http::request;
use common::peer::{self, passive_tcp_candidate, post_offer, post_offering, Peer};
use str0m::media::{Direction, MediaKind};

/// The sum of a counter or gauge's series whose labels include `labels`.
async fn metric(addr: SocketAddr, name: &str, labels: &[(&str, &str)]) -> f64 {
    let r = request(addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(r.status, 200);
    r.body
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until `check` holds, at most `limit` (then fails the test).
async fn within(limit: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out after {limit:?} waiting until {what}");
}

fn video_from(peer: &Peer, sender: u32) -> usize {
    peer.count_from(sender, MediaKind::Video)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_and_a_viewer_without_udp_play_over_ice_tcp() {
    let server = common::server::start(1, |_| {}).await;
    let addr = server.http_addr();

    let (response, publisher) = post_offering(
        &server,
        "/whip/tcp-room",
        peer::offer_over_tcp(Direction::SendOnly).await,
        Some(7),
    )
    .await;
    let answer = response.body;
    // The answer offers a passive TCP host candidate on the worker's UDP
    // port number, ranked below the UDP one.
    let tcp = passive_tcp_candidate(&answer).expect("a tcptype passive candidate in the answer");
    let priority = |proto: &str| -> u64 {
        answer
            .lines()
            .filter_map(|l| l.strip_prefix("a=candidate:"))
            .map(|c| c.split_whitespace().collect::<Vec<_>>())
            .find(|f| f[2].eq_ignore_ascii_case(proto))
            .map(|f| f[3].parse().unwrap())
            .unwrap_or_else(|| panic!("a {proto} candidate in {answer}"))
    };
    assert!(
        priority("tcp") < priority("udp"),
        "TCP ranks below UDP: {answer}"
    );
    let udp_port = answer
        .lines()
        .filter_map(|l| l.strip_prefix("a=candidate:"))
        .find(|c| c.contains(" udp ") || c.contains(" UDP "))
        .and_then(|c| c.split_whitespace().nth(5)?.parse::<u16>().ok())
        .expect("udp candidate port");
    assert_eq!(tcp.port(), udp_port, "TCP listens at the UDP port's number");

    let (_, viewer) = post_offering(
        &server,
        "/whep/tcp-room",
        peer::offer_over_tcp(Direction::RecvOnly).await,
        None,
    )
    .await;
    within(
        Duration::from_secs(20),
        "the TCP viewer plays the TCP publisher's video",
        async || video_from(&viewer, 7) > 50,
    )
    .await;
    assert!(viewer.count_from(7, MediaKind::Audio) > 50, "and its audio");

    let frames_in = metric(
        addr,
        "cascade_ice_tcp_frames_total",
        &[("event", "received")],
    )
    .await;
    let frames_out = metric(addr, "cascade_ice_tcp_frames_total", &[("event", "sent")]).await;
    let open = metric(addr, "cascade_ice_tcp_open_connections", &[]).await;
    // Metrics fold once a second: the counts are at least what a second ago
    // saw. Media went both ways over TCP, not UDP.
    assert!(
        frames_in > 50.0 && frames_out > 50.0,
        "frames in {frames_in}, out {frames_out}"
    );
    assert_eq!(open, 2.0, "two open ICE-TCP connections");

    publisher.stop().await;
    viewer.stop().await;
    within(
        Duration::from_secs(10),
        "closed connections are forgotten",
        async || metric(addr, "cascade_ice_tcp_open_connections", &[]).await == 0.0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_viewer_that_stops_reading_is_dropped_and_never_stalls_the_worker() {
    // One worker: both rooms share its loop.
    let server = common::server::start(1, |_| {}).await;
    let addr = server.http_addr();

    let (_, other_publisher) =
        post_offer(&server, "/whip/other", Direction::SendOnly, Some(1)).await;
    let (_, other_viewer) = post_offer(&server, "/whep/other", Direction::RecvOnly, None).await;
    let (_, publisher) = post_offer(&server, "/whip/stall", Direction::SendOnly, Some(2)).await;
    let (_, stalled) = post_offering(
        &server,
        "/whep/stall",
        peer::offer_over_tcp(Direction::RecvOnly).await,
        None,
    )
    .await;
    within(Duration::from_secs(20), "both viewers play", async || {
        video_from(&other_viewer, 1) > 20 && video_from(&stalled, 2) > 20
    })
    .await;

    stalled.stall().await;
    let stalled_at = video_from(&stalled, 2);
    let other_at_stall = video_from(&other_viewer, 1);
    // The server's queue (and the kernel buffers under it) fill at the
    // publisher's rate; then the connection is dropped.
    within(
        Duration::from_secs(60),
        "the stalled connection is dropped",
        async || {
            metric(
                addr,
                "cascade_ice_tcp_connections_total",
                &[("event", "stalled")],
            )
            .await
                >= 1.0
        },
    )
    .await;
    within(
        Duration::from_secs(5),
        "the stalled connection is closed",
        async || metric(addr, "cascade_ice_tcp_open_connections", &[]).await == 0.0,
    )
    .await;
    assert_eq!(
        video_from(&stalled, 2),
        stalled_at,
        "the stalled viewer read nothing more"
    );
    // The other room played on while the stalled queue filled...
    assert!(
        video_from(&other_viewer, 1) > other_at_stall + 50,
        "the other room played during the stall: {other_at_stall} -> {}",
        video_from(&other_viewer, 1)
    );

    // ...and after the drop.
    let before = video_from(&other_viewer, 1);
    within(
        Duration::from_secs(5),
        "the other room keeps playing",
        async || video_from(&other_viewer, 1) > before + 50,
    )
    .await;

    for p in [other_publisher, other_viewer, publisher, stalled] {
        p.stop().await;
    }
}
