//! ICE servers and TURN credentials reach clients (issue 14): in `joined`
//! over the WebSocket and in WHIP/WHEP `Link` headers, for the participant's
//! identity, and they pass the check coturn makes with its
//! `static-auth-secret` (recomputed here with OpenSSL, not with the server's
//! code). A relayed call through a real coturn is `tests/browser`'s.

use cascade_test_support as common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cascade::config::Config;
use cascade::signal::ice_servers::IceServers;
use cascade_protocol::{IceServer, ServerMessage};
use common::http::request;
use common::peer::SDP;
use common::server::Ws;
use common::tokens::{join_token, require_tokens};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use str0m::media::Direction;

const SECRET: &str = "turn-shared-secret-for-tests";
const TTL: Duration = Duration::from_secs(3600);
const STUN: &str = "stun:stun.example.org:3478";
const TURN: [&str; 2] = [
    "turn:127.0.0.1:3478?transport=udp",
    "turn:127.0.0.1:3478?transport=tcp",
];

fn with_turn(c: &mut Config) {
    c.ice_servers = IceServers::new(
        vec![STUN.into()],
        TURN.iter().map(|u| u.to_string()).collect(),
        Some(SECRET),
        TTL,
    );
}

/// What coturn checks: the username is `expiry:identity` with the expiry
/// about `TTL` from now, and the password its HMAC-SHA1 under the secret.
fn assert_coturn_accepts(username: &str, credential: &str, identity: &str) {
    let (expiry, named) = username.split_once(':').expect("expiry:identity");
    assert_eq!(named, identity, "{username}");
    let expiry: u64 = expiry.parse().expect("the expiry is Unix seconds");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        expiry.abs_diff(now + TTL.as_secs()) < 60,
        "expiry {expiry}, now {now}"
    );
    let key = PKey::hmac(SECRET.as_bytes()).unwrap();
    let mut signer = Signer::new(MessageDigest::sha1(), &key).unwrap();
    signer.update(username.as_bytes()).unwrap();
    let expected = openssl::base64::encode_block(&signer.sign_to_vec().unwrap());
    assert_eq!(credential, expected, "password of {username}");
}

async fn joined_ice_servers(ws: &mut Ws) -> (String, Vec<IceServer>) {
    match ws
        .recv_until(|m| matches!(m, ServerMessage::Joined { .. }))
        .await
    {
        ServerMessage::Joined {
            participant_id,
            ice_servers,
            ..
        } => (participant_id, ice_servers),
        _ => unreachable!(),
    }
}

fn assert_stun_then_turn(servers: &[IceServer], identity: &str) {
    assert_eq!(servers.len(), 2, "{servers:?}");
    assert_eq!(servers[0].urls, [STUN]);
    assert_eq!(
        (&servers[0].username, &servers[0].credential),
        (&None, &None)
    );
    assert_eq!(servers[1].urls, TURN);
    assert_coturn_accepts(
        servers[1].username.as_deref().expect("a TURN username"),
        servers[1].credential.as_deref().expect("a TURN password"),
        identity,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joined_carries_turn_credentials_for_the_tokens_identity() {
    let server = common::server::start(1, |c| {
        require_tokens(c);
        with_turn(c);
    })
    .await;
    let mut alice = Ws::connect(&server).await;
    alice
        .send_json(serde_json::json!({
            "type": "join", "version": 1, "room": "relay", "name": "Alice",
            "token": join_token("relay", "alice"),
        }))
        .await;
    let (_, servers) = joined_ice_servers(&mut alice).await;
    assert_stun_then_turn(&servers, "alice");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_server_names_the_participant_id_and_none_configured_sends_none() {
    let server = common::server::start(1, with_turn).await;
    let mut ws = Ws::connect(&server).await;
    ws.send_json(serde_json::json!({"type": "join", "version": 1, "room": "relay", "name": "Bo"}))
        .await;
    let (id, servers) = joined_ice_servers(&mut ws).await;
    assert_stun_then_turn(&servers, &id);
    server.shutdown().await;

    let bare = common::server::start(1, |_| {}).await;
    let mut ws = Ws::connect(&bare).await;
    ws.send_json(serde_json::json!({"type": "join", "version": 1, "room": "relay", "name": "Bo"}))
        .await;
    let (_, servers) = joined_ice_servers(&mut ws).await;
    assert!(servers.is_empty(), "{servers:?}");
    bare.shutdown().await;
}

/// `<url>; rel="ice-server"; username="…"; credential="…"` → its parts.
fn link_parts(link: &str) -> (String, Option<String>, Option<String>) {
    let (url, params) = link.split_once(">;").expect("<url>; params");
    let param = |name: &str| {
        params.split(';').find_map(|p| {
            let (k, v) = p.trim().split_once('=')?;
            (k == name).then(|| v.trim_matches('"').to_string())
        })
    };
    assert_eq!(param("rel").as_deref(), Some("ice-server"), "{link}");
    let username = param("username");
    if username.is_some() {
        assert_eq!(param("credential-type").as_deref(), Some("password"));
    }
    (
        url.trim_start_matches('<').to_string(),
        username,
        param("credential"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_and_whep_link_headers_carry_turn_credentials() {
    let server = common::server::start(1, |c| {
        require_tokens(c);
        with_turn(c);
    })
    .await;
    let addr = server.http_addr();
    for (path, direction, identity) in [
        ("/whip/relay", Direction::SendOnly, "encoder"),
        ("/whep/relay", Direction::RecvOnly, "player"),
    ] {
        let offer = common::peer::offer(direction).await;
        let auth = format!("Bearer {}", join_token("relay", identity));
        let r = request(
            addr,
            "POST",
            path,
            &[SDP, ("Authorization", &auth)],
            offer.sdp.as_bytes(),
        )
        .await;
        assert_eq!(r.status, 201, "{path}: {}", r.body);
        let links: Vec<_> = r
            .headers_named("link")
            .into_iter()
            .map(link_parts)
            .collect();
        assert_eq!(links.len(), 3, "{path}: {links:?}");
        assert_eq!(links[0], (STUN.to_string(), None, None));
        for (link, url) in links[1..].iter().zip(TURN) {
            assert_eq!(link.0, url);
            assert_coturn_accepts(
                link.1.as_deref().expect("username"),
                link.2.as_deref().expect("credential"),
                identity,
            );
        }
        let location = r.header("location").expect("Location").to_string();
        let r = request(addr, "DELETE", &location, &[("Authorization", &auth)], b"").await;
        assert_eq!(r.status, 200);
    }
    server.shutdown().await;
}
