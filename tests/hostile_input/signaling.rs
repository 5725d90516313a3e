//! Signaling messages: the wire types round-trip, and a real server answers
//! any frame (bytes, JSON of any shape, mutated valid messages) with the
//! documented error or the message's effect, and keeps the connection.

use std::cell::Cell;

use cascade_protocol::{
    ClientMessage, ErrorCode, IceServer, LayerActivity, ParticipantInfo, PauseReason, PcKind,
    ServerMessage, SubscribedTrack, TrackInfo, TrackKind, TrackSource, CLIENT_MESSAGE_TYPES,
    MAX_MESSAGE_BYTES,
};
use cascade_test_support::server::Ws;
use futures_util::SinkExt;
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::TestCaseResult;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::mutate::{mutated, Text};
use crate::{config, run};

fn text(text: Text) -> BoxedStrategy<String> {
    match text {
        Text::Unicode => prop_oneof![any::<String>(), "[a-z0-9_-]{1,20}"].boxed(),
        Text::Ascii => prop_oneof!["[ -~]{0,100}", "[a-z0-9_-]{1,20}"].boxed(),
    }
}

fn pc_kind() -> impl Strategy<Value = PcKind> {
    prop_oneof![Just(PcKind::Publish), Just(PcKind::Subscribe)]
}

fn track_kind() -> impl Strategy<Value = TrackKind> {
    prop_oneof![Just(TrackKind::Audio), Just(TrackKind::Video)]
}

fn track_source() -> impl Strategy<Value = TrackSource> {
    prop_oneof![
        Just(TrackSource::Microphone),
        Just(TrackSource::Camera),
        Just(TrackSource::ScreenShare),
        Just(TrackSource::ScreenShareAudio),
    ]
}

fn client_message(t: Text) -> impl Strategy<Value = ClientMessage> {
    let text = || text(t);
    prop_oneof![
        (any::<u32>(), text(), text(), proptest::option::of(text())).prop_map(
            |(version, room, name, token)| ClientMessage::Join {
                version,
                room,
                name,
                token
            }
        ),
        (text(), btree_map(text(), track_source(), 0..3))
            .prop_map(|(sdp, sources)| ClientMessage::PublishOffer { sdp, sources }),
        text().prop_map(|sdp| ClientMessage::SubscribeAnswer { sdp }),
        (pc_kind(), text()).prop_map(|(pc, candidate)| ClientMessage::Candidate { pc, candidate }),
        (text(), any::<bool>()).prop_map(|(mid, muted)| ClientMessage::Mute { mid, muted }),
        pc_kind().prop_map(|pc| ClientMessage::RestartIce { pc }),
        (text(), any::<bool>(), any::<u32>(), any::<u32>()).prop_map(
            |(track_id, visible, width, height)| ClientMessage::VideoPreference {
                track_id,
                visible,
                width,
                height
            }
        ),
        Just(ClientMessage::Leave),
        Just(ClientMessage::Ping),
    ]
}

/// An `ice_servers` entry: STUN (no credentials) or TURN (both).
fn ice_server() -> impl Strategy<Value = IceServer> {
    let text = || text(Text::Unicode);
    (vec(text(), 1..3), option::of((text(), text()))).prop_map(|(urls, credentials)| {
        let (username, credential) = credentials.unzip();
        IceServer {
            urls,
            username,
            credential,
        }
    })
}

fn participant_info() -> impl Strategy<Value = ParticipantInfo> {
    let text = || text(Text::Unicode);
    let track = (
        text(),
        track_kind(),
        any::<bool>(),
        option::of(track_source()),
    )
        .prop_map(|(id, kind, muted, source)| TrackInfo {
            id,
            kind,
            muted,
            source,
        });
    (
        text(),
        text(),
        proptest::option::of(text()),
        vec(track, 0..3),
    )
        .prop_map(|(id, name, identity, tracks)| ParticipantInfo {
            id,
            name,
            identity,
            tracks,
        })
}

fn server_message() -> impl Strategy<Value = ServerMessage> {
    let text = || text(Text::Unicode);
    let subscribed = (
        text(),
        text(),
        text(),
        track_kind(),
        option::of(track_source()),
    )
        .prop_map(
            |(mid, participant_id, track_id, kind, source)| SubscribedTrack {
                mid,
                participant_id,
                track_id,
                kind,
                source,
            },
        );
    let layer = (text(), any::<bool>()).prop_map(|(rid, active)| LayerActivity { rid, active });
    let reason = prop_oneof![Just(PauseReason::Bandwidth), Just(PauseReason::Publisher)];
    prop_oneof![
        (
            any::<u32>(),
            text(),
            text(),
            vec(participant_info(), 0..3),
            vec(ice_server(), 0..3)
        )
            .prop_map(
                |(version, room, participant_id, participants, ice_servers)| {
                    ServerMessage::Joined {
                        version,
                        room,
                        participant_id,
                        participants,
                        ice_servers,
                    }
                }
            ),
        (text(), vec(subscribed, 0..4))
            .prop_map(|(sdp, tracks)| ServerMessage::SubscribeOffer { sdp, tracks }),
        participant_info().prop_map(|participant| ServerMessage::ParticipantJoined { participant }),
        (pc_kind(), text()).prop_map(|(pc, candidate)| ServerMessage::Candidate { pc, candidate }),
        (text(), text(), reason).prop_map(|(participant_id, track_id, reason)| {
            ServerMessage::TrackPaused {
                participant_id,
                track_id,
                reason,
            }
        }),
        (text(), vec(layer, 0..4))
            .prop_map(|(mid, layers)| ServerMessage::PublishLayers { mid, layers }),
        (select(ErrorCode::ALL), text()).prop_map(|(code, m)| ServerMessage::error(code, m)),
        Just(ServerMessage::Pong),
    ]
}

/// JSON of any shape, with nesting.
fn json(t: Text) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from), // NaN and infinities become null
        text(t).prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, move |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(text(t), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every field name of the client messages.
const FIELDS: &[&str] = &[
    "version",
    "room",
    "name",
    "token",
    "sdp",
    "pc",
    "candidate",
    "mid",
    "muted",
    "track_id",
    "visible",
    "width",
    "height",
];

/// An object whose `type` the server knows (or nearly), with the protocol's
/// field names holding values of any type: the "bad fields" path.
fn typed_object(t: Text) -> impl Strategy<Value = Value> {
    let kind = prop_oneof![
        select(CLIENT_MESSAGE_TYPES).prop_map(str::to_string),
        text(t)
    ];
    (kind, btree_map(select(FIELDS), json(t), 0..5)).prop_map(|(kind, fields)| {
        let mut object: serde_json::Map<String, Value> = fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        object.insert("type".into(), Value::from(kind));
        Value::Object(object)
    })
}

/// Text a hostile client sends in a WebSocket text frame; `t` is for the
/// strings inside JSON (what the server may quote back in an error).
fn hostile_text(t: Text) -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        json(t).prop_map(|v| v.to_string()),
        typed_object(t).prop_map(|v| v.to_string()),
        client_message(t).prop_flat_map(move |m| mutated(to_json(&m), 3, t)),
        // Nesting past serde_json's recursion limit.
        (1..5000usize).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n))),
        (1..2000usize).prop_map(|n| format!("{}1{}", r#"{"type":"#.repeat(n), "}".repeat(n))),
    ]
}

#[derive(Debug, Clone)]
enum Frame {
    Text(String),
    Binary(Vec<u8>),
}

/// Frames for the real server: any text, and ASCII-only text, which more
/// often stays well-formed enough to reach the message handlers.
fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        3 => hostile_text(Text::Unicode).prop_map(Frame::Text),
        1 => hostile_text(Text::Ascii).prop_map(Frame::Text),
        1 => vec(any::<u8>(), 0..256).prop_map(Frame::Binary),
    ]
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("protocol types serialize")
}

/// A client message the way the server reads one (`docs/PROTOCOL.md`):
/// JSON, then a string `type` it knows, then that type's fields. `Err` is
/// the error code the server must answer with.
fn read_as_server(text: &str) -> Result<ClientMessage, ErrorCode> {
    let value: Value = serde_json::from_str(text).map_err(|_| ErrorCode::BadMessage)?;
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .ok_or(ErrorCode::BadMessage)?;
    if !CLIENT_MESSAGE_TYPES.contains(&kind) {
        return Err(ErrorCode::UnknownType);
    }
    serde_json::from_value(value).map_err(|_| ErrorCode::BadMessage)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn client_messages_round_trip_through_json(message in client_message(Text::Unicode)) {
        let json = to_json(&message);
        prop_assert_eq!(read_as_server(&json), Ok(message.clone()));
        prop_assert_eq!(serde_json::from_str::<ClientMessage>(&json).ok(), Some(message));
    }

    #[test]
    fn server_messages_round_trip_through_json(message in server_message()) {
        let json = to_json(&message);
        prop_assert_eq!(serde_json::from_str::<ServerMessage>(&json).ok(), Some(message));
    }

    /// Whatever parses, parses to a message that serializes back to itself.
    #[test]
    fn hostile_text_reads_as_a_stable_message_or_an_error(text in hostile_text(Text::Unicode)) {
        if let Ok(message) = read_as_server(&text) {
            prop_assert_eq!(read_as_server(&to_json(&message)), Ok(message));
        }
        let _ = serde_json::from_str::<ServerMessage>(&text); // bots read these
    }
}

/// Sends `frame` on a fresh connection (joined first if `join`), then a
/// ping, and checks what came back before the pong.
async fn probe(
    server: &cascade::server::Server,
    room: &str,
    join: bool,
    frame: &Frame,
) -> TestCaseResult {
    let mut ws = Ws::connect(server).await;
    if join {
        ws.join(room, "prober").await;
    }
    let (expected, bytes) = match frame {
        Frame::Text(text) => {
            let _ = ws.stream.send(Message::Text(text.as_str().into())).await;
            (read_as_server(text), text.len())
        }
        Frame::Binary(bytes) => {
            let _ = ws.stream.send(Message::Binary(bytes.clone().into())).await;
            (Err(ErrorCode::BadMessage), bytes.len())
        }
    };
    // The server may already have closed the connection (leave, oversize).
    let ping = Message::Text(r#"{"type":"ping"}"#.into());
    let _ = ws.stream.send(ping).await;
    let mut replies = Vec::new();
    let closed = loop {
        match ws.recv().await {
            Some(ServerMessage::Pong) => break false,
            Some(message) => replies.push(message),
            None => break true,
        }
    };
    let first_error = replies.iter().find_map(|m| match m {
        ServerMessage::Error { code, .. } => Some(*code),
        _ => None,
    });
    if bytes > MAX_MESSAGE_BYTES {
        prop_assert!(closed, "an oversize frame closes the connection");
    } else {
        match expected {
            Ok(ClientMessage::Leave) => prop_assert!(closed, "leave closes the connection"),
            Ok(_) => prop_assert!(
                !closed,
                "connection closed after a valid message: {replies:?}"
            ),
            Err(code) => {
                prop_assert!(!closed, "connection closed after bad input: {replies:?}");
                prop_assert_eq!(first_error, Some(code), "replies: {:?}", replies);
            }
        }
    }
    let _ = ws.stream.close(None).await;
    Ok(())
}

/// A real server, one WebSocket per case: every frame gets the documented
/// error (or, if it was a valid message, its effect) and the connection
/// still answers a ping.
#[test]
fn the_server_answers_hostile_frames_and_keeps_the_connection() {
    let (runtime, server) = crate::served();
    let case = Cell::new(0u64);
    run((any::<bool>(), frame()), |(join, frame)| {
        case.set(case.get() + 1);
        let room = format!("hostile-ws-{}", case.get());
        runtime.block_on(probe(&server, &room, join, &frame))
    });
    runtime.block_on(server.shutdown());
}
