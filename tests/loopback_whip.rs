//! WHIP and WHEP against the real server with independent str0m endpoints
//! over UDP, in the same rooms as the WebSocket API.

use cascade_test_support as common;

use std::time::Duration;

use cascade::signal::ice_servers::IceServers;
use cascade_protocol::ServerMessage;
use common::eventually;
use common::http::request;
use common::peer::{self, post_offer};
use common::server::Ws;
use str0m::media::{Direction, MediaKind};

use common::peer::SDP;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_publishers_join_rooms_and_whep_viewers_follow_them() {
    let server = common::server::start(1, |_| {}).await;
    let mut watcher = Ws::connect(&server).await;
    watcher.join("studio", "watcher").await;

    // A WHIP publisher shows up to a bundled-client participant.
    let (whip_a, publisher_a) = post_offer(
        &server,
        "/whip/studio?name=Cam%20A",
        Direction::SendOnly,
        Some(1),
    )
    .await;
    let location = whip_a.header("location").expect("Location").to_string();
    assert!(location.starts_with("/whip/session/"), "{location}");
    assert!(whip_a.header("etag").is_some_and(|e| e.starts_with('"')));
    assert_eq!(whip_a.header("content-type"), Some("application/sdp"));
    let a_id = match watcher
        .recv_until(|m| matches!(m, ServerMessage::ParticipantJoined { .. }))
        .await
    {
        ServerMessage::ParticipantJoined { participant } => {
            assert_eq!(participant.name, "Cam A");
            participant.id
        }
        _ => unreachable!(),
    };
    for _ in 0..2 {
        let m = watcher
            .recv_until(|m| matches!(m, ServerMessage::TrackPublished { .. }))
            .await;
        assert!(
            matches!(m, ServerMessage::TrackPublished { participant_id, .. } if participant_id == a_id)
        );
    }

    // A second publisher, and two viewers: one follows "whoever came
    // first", one follows B explicitly.
    let (_, publisher_b) = post_offer(
        &server,
        "/whip/studio?name=Cam%20B",
        Direction::SendOnly,
        Some(2),
    )
    .await;
    let b_id = match watcher
        .recv_until(|m| matches!(m, ServerMessage::ParticipantJoined { .. }))
        .await
    {
        ServerMessage::ParticipantJoined { participant } => participant.id,
        _ => unreachable!(),
    };
    let (_, first_viewer) = post_offer(&server, "/whep/studio", Direction::RecvOnly, None).await;
    let (_, b_viewer) = post_offer(
        &server,
        &format!("/whep/studio/{b_id}"),
        Direction::RecvOnly,
        None,
    )
    .await;

    eventually("the first viewer plays A's video and audio", || {
        first_viewer.count_from(1, MediaKind::Video) > 20
            && first_viewer.count_from(1, MediaKind::Audio) > 20
    })
    .await;
    eventually("the following viewer plays B's video", || {
        b_viewer.count_from(2, MediaKind::Video) > 20
    })
    .await;
    assert_eq!(
        b_viewer.count_from(1, MediaKind::Video),
        0,
        "B's viewer never gets A"
    );

    // A leaves with DELETE: the first viewer switches to B, B's viewer is untouched.
    let deleted = request(server.http_addr(), "DELETE", &location, &[], b"").await;
    assert_eq!(deleted.status, 200);
    let left = watcher
        .recv_until(|m| matches!(m, ServerMessage::ParticipantLeft { .. }))
        .await;
    assert_eq!(
        left,
        ServerMessage::ParticipantLeft {
            participant_id: a_id
        }
    );
    eventually("the first viewer switched to B", || {
        first_viewer.count_from(2, MediaKind::Video) > 20
    })
    .await;
    assert_eq!(first_viewer.senders(MediaKind::Video).last(), Some(&2));

    let again = request(server.http_addr(), "DELETE", &location, &[], b"").await;
    assert_eq!(again.status, 404, "a deleted session is gone");

    for p in [publisher_a, publisher_b, first_viewer, b_viewer] {
        p.stop().await;
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_http_semantics_and_errors() {
    let server = common::server::start(1, |c| {
        common::tokens::require_tokens(c);
        c.ice_servers = IceServers::new(
            vec!["stun:stun.example.org:3478".into()],
            Vec::new(),
            None,
            Duration::from_secs(60),
        );
    })
    .await;
    let addr = server.http_addr();
    let bearer = format!("Bearer {}", common::tokens::join_token("room", "obs"));
    let auth = ("Authorization", bearer.as_str());
    let admin = format!("Bearer {}", common::tokens::admin_token());
    let admin = ("Authorization", admin.as_str());
    let offering = peer::offer(Direction::SendOnly).await;
    let sdp = offering.sdp.as_bytes();

    let r = request(addr, "POST", "/whip/room", &[SDP], sdp).await;
    assert_eq!(r.status, 401, "no token");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let r = request(
        addr,
        "POST",
        "/whip/room",
        &[SDP, ("Authorization", "Bearer wrong-token")],
        sdp,
    )
    .await;
    assert_eq!(r.status, 401, "wrong token");
    let r = request(
        addr,
        "POST",
        "/whip/room",
        &[("Content-Type", "text/plain"), auth],
        sdp,
    )
    .await;
    assert_eq!(r.status, 415);
    let r = request(
        addr,
        "POST",
        "/whip/room",
        &[SDP, auth],
        b"v=0\r\nnot an offer",
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = request(addr, "POST", "/whip/bad%20room", &[SDP, auth], sdp).await;
    assert_eq!(r.status, 400);
    let big = vec![b'a'; 100 * 1024];
    let r = request(addr, "POST", "/whip/room", &[SDP, auth], &big).await;
    assert_eq!(r.status, 413);
    let r = request(
        addr,
        "POST",
        "/whep/room/p0000000000000001",
        &[SDP, auth],
        sdp,
    )
    .await;
    assert_eq!(r.status, 404, "following nobody");
    let r = request(addr, "OPTIONS", "/whip/room", &[], b"").await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));

    let created = request(addr, "POST", "/whip/room", &[SDP, auth], sdp).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(
        created.headers_named("link"),
        vec!["<stun:stun.example.org:3478>; rel=\"ice-server\""]
    );
    assert_eq!(
        created.header("access-control-expose-headers"),
        Some("Location, ETag, Link")
    );
    let location = created.header("location").unwrap().to_string();
    let etag = created.header("etag").unwrap().to_string();
    let publisher = offering.start(&created.body, Some(1));

    let frag = ("Content-Type", "application/trickle-ice-sdpfrag");
    let candidate = b"a=mid:0\r\na=candidate:1 1 udp 2122260223 127.0.0.1 50123 typ host\r\n";
    let r = request(
        addr,
        "PATCH",
        &location,
        &[frag, auth, ("If-Match", &etag)],
        candidate,
    )
    .await;
    assert_eq!(r.status, 204, "trickle: {}", r.body);
    let r = request(
        addr,
        "PATCH",
        &location,
        &[frag, auth, ("If-Match", "\"stale\"")],
        candidate,
    )
    .await;
    assert_eq!(r.status, 412);
    let r = request(addr, "PATCH", &location, &[SDP, auth], candidate).await;
    assert_eq!(r.status, 415);
    let r = request(
        addr,
        "PATCH",
        &location,
        &[frag, auth],
        b"a=candidate:garbage\r\n",
    )
    .await;
    assert_eq!(r.status, 400);
    let r = request(addr, "PATCH", &location, &[frag], candidate).await;
    assert_eq!(r.status, 401);
    let restart = b"a=ice-ufrag:newufrag\r\na=ice-pwd:newpasswordnewpassword12\r\n";
    let r = request(addr, "PATCH", &location, &[frag, auth], restart).await;
    assert_eq!(r.status, 200, "ICE restart: {}", r.body);
    assert!(
        r.body.contains("a=ice-ufrag:") && r.body.contains("a=ice-pwd:"),
        "{}",
        r.body
    );
    assert_ne!(
        r.header("etag"),
        Some(etag.as_str()),
        "restart changes the ETag"
    );

    let unknown = request(
        addr,
        "PATCH",
        "/whip/session/ffff",
        &[frag, auth],
        candidate,
    )
    .await;
    assert_eq!(unknown.status, 404);
    let wrong_kind = location.replace("/whip/", "/whep/");
    let r = request(addr, "DELETE", &wrong_kind, &[auth], b"").await;
    assert_eq!(r.status, 404, "a WHIP session is not a WHEP session");
    let metrics = request(addr, "GET", "/metrics", &[admin], b"").await.body;
    assert!(
        metrics.contains("cascade_signal_active_sessions{kind=\"whip\"} 1"),
        "the live WHIP session is counted"
    );
    assert!(
        metrics.contains("cascade_signal_errors_total{code=\"http_401\"} 3"),
        "401s counted"
    );
    let r = request(addr, "DELETE", &location, &[auth], b"").await;
    assert_eq!(r.status, 200);
    let r = request(addr, "PATCH", &location, &[frag, auth], candidate).await;
    assert_eq!(r.status, 404);
    let mut closed = false;
    for _ in 0..50 {
        let metrics = request(addr, "GET", "/metrics", &[admin], b"").await.body;
        if metrics.contains("cascade_signal_active_sessions{kind=\"whip\"} 0") {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        closed,
        "the WHIP session gauge returns to zero after DELETE"
    );
    publisher.stop().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whep_viewer_receives_a_bundled_client_participant() {
    let server = common::server::start(1, |_| {}).await;
    // A participant speaking the WebSocket protocol (like the bundled client).
    let mut opts = cascade_load::BotOptions::new(server.http_addr(), "talk", 7);
    opts.video_bitrate_bps = 300_000;
    opts.duration = Duration::from_secs(6);
    let speaker = tokio::spawn(cascade_load::run(opts));
    let mut watcher = Ws::connect(&server).await;
    watcher.join("talk", "watcher").await;
    let speaker_id = match watcher
        .recv_until(|m| matches!(m, ServerMessage::TrackPublished { .. }))
        .await
    {
        ServerMessage::TrackPublished { participant_id, .. } => participant_id,
        _ => unreachable!(),
    };
    let (_, viewer) = post_offer(
        &server,
        &format!("/whep/talk/{speaker_id}"),
        Direction::RecvOnly,
        None,
    )
    .await;
    eventually(
        "the WHEP viewer plays the participant's video and audio",
        || {
            viewer.count_from(7, MediaKind::Video) > 20
                && viewer.count_from(7, MediaKind::Audio) > 20
        },
    )
    .await;
    viewer.stop().await;
    speaker.await.unwrap().expect("bot ran");
    server.shutdown().await;
}

/// An offer the server could answer but with nothing to carry: every
/// m-line inactive, or only codecs it does not support. Each is refused
/// with 400 and leaves no participant behind (the room never hears of it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_with_no_usable_media_are_refused_with_400() {
    let server = common::server::start(1, |_| {}).await;
    let mut watcher = Ws::connect(&server).await;
    watcher.join("studio", "watcher").await;
    let addr = server.http_addr();

    let publish = peer::offer(Direction::SendOnly).await.sdp;
    let view = peer::offer(Direction::RecvOnly).await.sdp;
    let unknown_codecs = |sdp: &str| -> String {
        sdp.lines()
            .map(|line| match line.strip_prefix("a=rtpmap:") {
                Some(rest) => {
                    let (pt, codec) = rest.split_once(' ').unwrap();
                    let clock = codec.split_once('/').map_or("90000", |(_, c)| c);
                    format!("a=rtpmap:{pt} X-NOTACODEC/{clock}\r\n")
                }
                None => format!("{line}\r\n"),
            })
            .collect()
    };
    let cases = [
        ("/whip/studio", publish.replace("a=sendonly", "a=inactive")),
        ("/whip/studio", unknown_codecs(&publish)),
        ("/whep/studio", view.replace("a=recvonly", "a=inactive")),
        ("/whep/studio", unknown_codecs(&view)),
    ];
    for (path, offer) in &cases {
        assert_ne!(offer, &publish);
        let r = request(addr, "POST", path, &[SDP], offer.as_bytes()).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert!(r.body.contains("no audio or video"), "{path}: {}", r.body);
        assert!(r.header("location").is_none());
    }
    // The room heard of nobody; a usable offer still joins.
    let (_, _publisher) = post_offer(&server, "/whip/studio", Direction::SendOnly, Some(1)).await;
    let first = watcher
        .recv_until(|m| matches!(m, ServerMessage::ParticipantJoined { .. }))
        .await;
    let rooms = request(addr, "GET", "/admin/rooms", &[], b"").await;
    let rooms: serde_json::Value = serde_json::from_str(&rooms.body).unwrap();
    assert_eq!(
        rooms["rooms"][0]["participants"].as_array().unwrap().len(),
        2,
        "the watcher and the one usable publisher: {rooms}"
    );
    assert!(matches!(first, ServerMessage::ParticipantJoined { .. }));
    server.shutdown().await;
}
