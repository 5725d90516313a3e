//! Access tokens against the real server on loopback: the WebSocket join,
//! WHIP/WHEP, and the admin (room service) API, each with and without a
//! token and with each grant that matters to it.

use cascade_test_support as common;

use cascade::auth::VideoGrant;
use cascade::server::Server;
use cascade_protocol::ServerMessage;
use common::http::request;
use common::server::Ws;
use common::tokens::{admin_token, join_grant, join_token, require_tokens, token};
use serde_json::json;
use str0m::media::Direction;

const SDP: (&str, &str) = ("Content-Type", "application/sdp");

async fn keyed_server() -> Server {
    common::server::start(1, require_tokens).await
}

fn join(room: &str, token: Option<&str>) -> serde_json::Value {
    let mut m = json!({"type": "join", "version": 1, "room": room, "name": "n"});
    if let Some(t) = token {
        m["token"] = json!(t);
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_join_needs_a_valid_token_for_its_room() {
    let server = keyed_server().await;
    let mut ws = Ws::connect(&server).await;
    ws.send_json(join("demo", None)).await;
    ws.expect_error("unauthorized").await;
    ws.send_json(join("demo", Some("not.a.token"))).await;
    ws.expect_error("unauthorized").await;
    let forged = token("alice", join_grant("demo")).replace('.', "x.");
    ws.send_json(join("demo", Some(&forged))).await;
    ws.expect_error("unauthorized").await;
    ws.send_json(join("demo", Some(&join_token("other", "alice"))))
        .await;
    let message = ws.expect_error("forbidden").await;
    assert!(message.contains("other"), "{message}");
    let no_join = token(
        "alice",
        VideoGrant {
            room_join: false,
            ..join_grant("demo")
        },
    );
    ws.send_json(join("demo", Some(&no_join))).await;
    let message = ws.expect_error("forbidden").await;
    assert!(message.contains("roomJoin"), "{message}");
    ws.assert_alive().await; // refusals are bad input, not the end

    let id = ws
        .join_with_token("demo", "Alice", &join_token("demo", "alice"))
        .await;
    let mut bob = Ws::connect(&server).await;
    bob.send_json(join("demo", Some(&join_token("demo", "bob"))))
        .await;
    let seen = bob
        .recv_until(|m| matches!(m, ServerMessage::Joined { .. }))
        .await;
    match seen {
        ServerMessage::Joined { participants, .. } => {
            assert_eq!(participants.len(), 1);
            assert_eq!(participants[0].id, id);
            assert_eq!(participants[0].identity.as_deref(), Some("alice"));
        }
        _ => unreachable!(),
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_can_publish_cannot_publish() {
    let server = keyed_server().await;
    let mut ws = Ws::connect(&server).await;
    let viewer = token(
        "viewer",
        VideoGrant {
            can_publish: false,
            ..join_grant("demo")
        },
    );
    ws.join_with_token("demo", "Viewer", &viewer).await;
    let offer = common::peer::offer(Direction::SendOnly).await;
    ws.send_json(json!({"type": "publish_offer", "sdp": offer.sdp}))
        .await;
    ws.expect_error("forbidden").await;
    ws.assert_alive().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_identity_joining_again_replaces_the_first_connection() {
    let server = keyed_server().await;
    let mut first = Ws::connect(&server).await;
    let first_id = first
        .join_with_token("demo", "Alice", &join_token("demo", "alice"))
        .await;
    let mut second = Ws::connect(&server).await;
    let second_id = second
        .join_with_token("demo", "Alice", &join_token("demo", "alice"))
        .await;
    let message = first.expect_error("fatal").await;
    assert!(message.contains("replaced"), "{message}");
    assert_eq!(first.recv().await, None, "the replaced socket closes");
    second.assert_alive().await;

    let admin = format!("Bearer {}", admin_token());
    let rooms = request(
        server.http_addr(),
        "GET",
        "/admin/rooms",
        &[("Authorization", &admin)],
        b"",
    )
    .await;
    assert_eq!(rooms.status, 200);
    assert!(
        rooms.body.contains(&second_id) && !rooms.body.contains(&first_id),
        "{}",
        rooms.body
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_and_whep_need_the_grant_of_what_they_do() {
    let server = keyed_server().await;
    let addr = server.http_addr();
    let publish = common::peer::offer(Direction::SendOnly).await;
    let view = common::peer::offer(Direction::RecvOnly).await;
    let bearer = |t: &str| format!("Bearer {t}");

    let r = request(addr, "POST", "/whip/demo", &[SDP], publish.sdp.as_bytes()).await;
    assert_eq!(r.status, 401);
    let viewer_only = bearer(&token(
        "cam",
        VideoGrant {
            can_publish: false,
            ..join_grant("demo")
        },
    ));
    let r = post_offer(addr, "/whip/demo", &viewer_only, &publish.sdp).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("canPublish"), "{}", r.body);
    let wrong_room = bearer(&join_token("other", "cam"));
    let r = post_offer(addr, "/whip/demo", &wrong_room, &publish.sdp).await;
    assert_eq!(r.status, 403);
    let deaf = bearer(&token(
        "tv",
        VideoGrant {
            can_subscribe: false,
            ..join_grant("demo")
        },
    ));
    let r = post_offer(addr, "/whep/demo", &deaf, &view.sdp).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("canSubscribe"), "{}", r.body);

    let cam = bearer(&join_token("demo", "cam"));
    let r = post_offer(addr, "/whip/demo", &cam, &publish.sdp).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let location = r.header("location").expect("Location").to_string();
    let intruder = bearer(&join_token("demo", "intruder"));
    let r = request(
        addr,
        "DELETE",
        &location,
        &[("Authorization", &intruder)],
        b"",
    )
    .await;
    assert_eq!(r.status, 403, "another identity cannot end the session");
    let r = request(addr, "DELETE", &location, &[], b"").await;
    assert_eq!(r.status, 401);
    let r = request(addr, "DELETE", &location, &[("Authorization", &cam)], b"").await;
    assert_eq!(r.status, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_room_service_api_needs_room_admin_and_removes_and_closes() {
    let server = keyed_server().await;
    let addr = server.http_addr();
    let mut alice = Ws::connect(&server).await;
    let alice_id = alice
        .join_with_token("demo", "Alice", &join_token("demo", "alice"))
        .await;
    let mut bob = Ws::connect(&server).await;
    bob.join_with_token("demo", "Bob", &join_token("demo", "bob"))
        .await;
    let mut carol = Ws::connect(&server).await;
    carol
        .join_with_token("side", "Carol", &join_token("side", "carol"))
        .await;

    let admin = format!("Bearer {}", admin_token());
    let admin = ("Authorization", admin.as_str());
    let joiner = format!("Bearer {}", join_token("demo", "alice"));
    let room_admin = format!(
        "Bearer {}",
        token(
            "demo-admin",
            VideoGrant {
                room: Some("demo".into()),
                room_admin: true,
                ..VideoGrant::default()
            }
        )
    );
    let room_admin = ("Authorization", room_admin.as_str());

    for path in ["/admin/rooms", "/metrics"] {
        let r = request(addr, "GET", path, &[], b"").await;
        assert_eq!(r.status, 401, "{path} without a token");
        let r = request(addr, "GET", path, &[("Authorization", &joiner)], b"").await;
        assert_eq!(r.status, 403, "{path} with a join token");
        let r = request(addr, "GET", path, &[admin], b"").await;
        assert_eq!(r.status, 200, "{path} with an admin token");
    }
    let r = request(addr, "GET", "/metrics", &[room_admin], b"").await;
    assert_eq!(r.status, 403, "metrics span rooms");
    let r = request(addr, "GET", "/admin/rooms", &[room_admin], b"").await;
    assert!(
        r.body.contains("\"demo\"") && !r.body.contains("\"side\""),
        "a room admin sees its room only: {}",
        r.body
    );
    let r = request(addr, "DELETE", "/admin/rooms/side", &[room_admin], b"").await;
    assert_eq!(r.status, 403, "nor may it close another");

    let path = format!("/admin/rooms/demo/participants/{alice_id}");
    let r = request(addr, "DELETE", &path, &[room_admin], b"").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let message = alice.expect_error("fatal").await;
    assert!(message.contains("removed"), "{message}");
    let r = request(addr, "DELETE", &path, &[admin], b"").await;
    assert_eq!(r.status, 404, "gone already");
    let r = request(addr, "DELETE", "/admin/rooms/nowhere", &[admin], b"").await;
    assert_eq!(r.status, 404);

    let r = request(addr, "DELETE", "/admin/rooms/side", &[admin], b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.trim(), r#"{"removed":1}"#);
    let message = carol.expect_error("fatal").await;
    assert!(message.contains("room_closed"), "{message}");
    bob.assert_alive().await; // another room is untouched
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_server_admits_without_tokens() {
    let server = common::server::start(1, |_| {}).await;
    let mut ws = Ws::connect(&server).await;
    ws.join("demo", "Anyone").await;
    let r = request(server.http_addr(), "GET", "/admin/rooms", &[], b"").await;
    assert_eq!(r.status, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_room_service_api_mutes_a_track_and_only_for_room_admins() {
    let server = keyed_server().await;
    let addr = server.http_addr();
    let mut bob = Ws::connect(&server).await;
    bob.join_with_token("demo", "Bob", &join_token("demo", "bob"))
        .await;
    let publish = common::peer::offer(Direction::SendOnly).await;
    let cam = format!("Bearer {}", join_token("demo", "cam"));
    let r = post_offer(addr, "/whip/demo", &cam, &publish.sdp).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let _peer = publish.start(&r.body, Some(1));

    let admin = format!("Bearer {}", admin_token());
    let admin = ("Authorization", admin.as_str());
    // The track is listed once the publisher's media arrives.
    let mut listed = None;
    for _ in 0..100 {
        let rooms = request(addr, "GET", "/admin/rooms", &[admin], b"").await;
        let rooms: serde_json::Value = serde_json::from_str(&rooms.body).unwrap();
        let cam = rooms["rooms"][0]["participants"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["identity"] == "cam")
            .cloned();
        let video = cam.as_ref().and_then(|cam| {
            cam["published"]
                .as_array()?
                .iter()
                .find(|t| t["kind"] == "video")
                .cloned()
        });
        if let (Some(cam), Some(video)) = (cam, video) {
            listed = Some((cam, video));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (cam_view, video) = listed.expect("the WHIP publisher's video is listed");
    let cam_id = cam_view["id"].as_str().unwrap();
    let video_id = video["id"].as_str().unwrap();
    assert_eq!(video["operator_muted"], false);
    let path = format!("/admin/rooms/demo/participants/{cam_id}/tracks/{video_id}/mute");

    let r = request(addr, "POST", &path, &[], b"").await;
    assert_eq!(r.status, 401, "no token");
    let r = request(addr, "POST", &path, &[("Authorization", &cam)], b"").await;
    assert_eq!(r.status, 403, "a join token");
    let side_admin = format!(
        "Bearer {}",
        token(
            "side-admin",
            VideoGrant {
                room: Some("side".into()),
                room_admin: true,
                ..VideoGrant::default()
            }
        )
    );
    let r = request(addr, "POST", &path, &[("Authorization", &side_admin)], b"").await;
    assert_eq!(r.status, 403, "another room's admin");
    for bad in [
        format!("/admin/rooms/demo/participants/{cam_id}/tracks/t999999/mute"),
        format!("/admin/rooms/demo/participants/{cam_id}/tracks/nonsense/mute"),
        format!("/admin/rooms/demo/participants/p0000000000000001/tracks/{video_id}/mute"),
        format!("/admin/rooms/nowhere/participants/{cam_id}/tracks/{video_id}/mute"),
    ] {
        let r = request(addr, "POST", &bad, &[admin], b"").await;
        assert_eq!(r.status, 404, "{bad}: {}", r.body);
    }

    let r = request(addr, "POST", &path, &[admin], b"").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body.trim(), r#"{"muted":true}"#);
    let update = bob
        .recv_until(|m| matches!(m, ServerMessage::TrackUpdated { .. }))
        .await;
    match update {
        ServerMessage::TrackUpdated {
            participant_id,
            track,
        } => {
            assert_eq!(participant_id, cam_id);
            assert_eq!(track.id, video_id);
            assert!(track.muted, "the room sees it muted");
        }
        _ => unreachable!(),
    }
    let rooms = request(addr, "GET", "/admin/rooms", &[admin], b"").await;
    assert!(
        rooms.body.contains(r#""operator_muted":true"#),
        "{}",
        rooms.body
    );
    server.shutdown().await;
}

/// POSTs a WHIP/WHEP offer with `authorization` (`Bearer <token>`).
async fn post_offer(
    addr: std::net::SocketAddr,
    path: &str,
    authorization: &str,
    sdp: &str,
) -> common::http::Response {
    request(
        addr,
        "POST",
        path,
        &[SDP, ("Authorization", authorization)],
        sdp.as_bytes(),
    )
    .await
}
