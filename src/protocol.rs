//! The signaling protocol spoken over the bundled client's WebSocket.
//!
//! These are the wire types of `docs/PROTOCOL.md` (version [`PROTOCOL_VERSION`]).
//! They are plain data: the media core produces [`ServerMessage`]s and the
//! signaling layer turns [`ClientMessage`]s into worker commands. Nothing here
//! does I/O.

use serde::{Deserialize, Serialize};

/// The protocol version a client must send in `join` and receives in `joined`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest WebSocket message the server accepts, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// The `type`s of [`ClientMessage`] this protocol version knows.
pub const CLIENT_MESSAGE_TYPES: &[&str] = &[
    "join",
    "publish_offer",
    "subscribe_answer",
    "candidate",
    "mute",
    "leave",
    "ping",
];

/// Which of a participant's two peer connections a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PcKind {
    /// Client offers, carries the client's own tracks to the server.
    Publish,
    /// Server offers, carries the other participants' tracks to the client.
    Subscribe,
}

/// Media kind of a track, as the client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackKind {
    Audio,
    Video,
}

impl From<str0m::media::MediaKind> for TrackKind {
    fn from(kind: str0m::media::MediaKind) -> Self {
        match kind {
            str0m::media::MediaKind::Audio => TrackKind::Audio,
            str0m::media::MediaKind::Video => TrackKind::Video,
        }
    }
}

/// A published track as other participants see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    pub id: String,
    pub kind: TrackKind,
    pub muted: bool,
}

/// A participant as other participants see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    pub id: String,
    pub name: String,
    pub tracks: Vec<TrackInfo>,
}

/// One m-line of a subscribe offer and the track it carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribedTrack {
    pub mid: String,
    pub participant_id: String,
    pub track_id: String,
    pub kind: TrackKind,
}

/// Messages a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    Join {
        version: u32,
        room: String,
        name: String,
    },
    PublishOffer {
        sdp: String,
    },
    SubscribeAnswer {
        sdp: String,
    },
    Candidate {
        pc: PcKind,
        candidate: String,
    },
    Mute {
        mid: String,
        muted: bool,
    },
    Leave,
    Ping,
}

/// Messages the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Joined {
        version: u32,
        room: String,
        participant_id: String,
        participants: Vec<ParticipantInfo>,
    },
    PublishAnswer {
        sdp: String,
    },
    SubscribeOffer {
        sdp: String,
        tracks: Vec<SubscribedTrack>,
    },
    ParticipantJoined {
        participant: ParticipantInfo,
    },
    ParticipantLeft {
        participant_id: String,
    },
    TrackPublished {
        participant_id: String,
        track: TrackInfo,
    },
    TrackUpdated {
        participant_id: String,
        track: TrackInfo,
    },
    TrackRemoved {
        participant_id: String,
        track_id: String,
    },
    Candidate {
        pc: PcKind,
        candidate: String,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
    Pong,
}

/// Machine-readable reason carried by [`ServerMessage::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadMessage,
    UnknownType,
    UnsupportedVersion,
    InvalidRoom,
    InvalidName,
    NotJoined,
    AlreadyJoined,
    InvalidSdp,
    InvalidCandidate,
    NoPendingOffer,
    UnknownTrack,
    ServerBusy,
    Fatal,
}

impl ServerMessage {
    /// Shorthand for an error message.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            code,
            message: message.into(),
        }
    }
}

/// Checks a room name: 1-64 characters of `A-Z a-z 0-9 _ - .`.
pub fn valid_room_name(room: &str) -> bool {
    (1..=64).contains(&room.len())
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Checks a display name: 1-64 characters, no control characters.
pub fn valid_display_name(name: &str) -> bool {
    let count = name.chars().count();
    (1..=64).contains(&count) && !name.chars().any(char::is_control) && !name.trim().is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_parse_from_documented_json() {
        let join: ClientMessage =
            serde_json::from_str(r#"{"type":"join","version":1,"room":"demo","name":"Alice"}"#)
                .unwrap();
        assert_eq!(
            join,
            ClientMessage::Join {
                version: 1,
                room: "demo".into(),
                name: "Alice".into()
            }
        );
        let cand: ClientMessage = serde_json::from_str(
            r#"{"type":"candidate","pc":"subscribe","candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host"}"#,
        )
        .unwrap();
        assert!(matches!(
            cand,
            ClientMessage::Candidate {
                pc: PcKind::Subscribe,
                ..
            }
        ));
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"fly"}"#).is_err());
    }

    #[test]
    fn server_messages_serialize_with_snake_case_tags() {
        let json = serde_json::to_string(&ServerMessage::ParticipantLeft {
            participant_id: "p1".into(),
        })
        .unwrap();
        assert_eq!(json, r#"{"type":"participant_left","participant_id":"p1"}"#);
        let err = serde_json::to_string(&ServerMessage::error(ErrorCode::NotJoined, "x")).unwrap();
        assert_eq!(err, r#"{"type":"error","code":"not_joined","message":"x"}"#);
    }

    #[test]
    fn room_and_display_names_are_checked() {
        assert!(valid_room_name("team-42.daily_sync"));
        assert!(!valid_room_name(""));
        assert!(!valid_room_name("a b"));
        assert!(!valid_room_name(&"x".repeat(65)));
        assert!(valid_display_name("Zoë 🎥"));
        assert!(!valid_display_name("   "));
        assert!(!valid_display_name("bad\nname"));
    }
}
