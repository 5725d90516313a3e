//! The signaling protocol spoken over the bundled client's WebSocket.
//!
//! These are the wire types of `docs/PROTOCOL.md` (version [`PROTOCOL_VERSION`]),
//! shared by the server, the load generator's bots and the tests. Plain data:
//! the server's signaling layer turns [`ClientMessage`]s into worker commands
//! and the media core's domain events into [`ServerMessage`]s. Nothing here
//! does I/O or knows about media.

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
    "restart_ice",
    "video_preference",
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

/// What a published track captures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackSource {
    Microphone,
    Camera,
    ScreenShare,
    /// The sound of a shared screen or tab.
    ScreenShareAudio,
}

/// A published track as other participants see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    pub id: String,
    pub kind: TrackKind,
    pub muted: bool,
    /// Absent only from servers older than track sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<TrackSource>,
}

/// An ICE server for the client's peer connections, in the shape of
/// WebRTC's `RTCIceServer`: STUN or TURN URLs, and for TURN the short-lived
/// credentials the server minted for this participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// A participant as other participants see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    pub id: String,
    pub name: String,
    /// The identity of the participant's access token (absent in open mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    pub tracks: Vec<TrackInfo>,
}

/// One m-line of a subscribe offer and the track it carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribedTrack {
    pub mid: String,
    pub participant_id: String,
    pub track_id: String,
    pub kind: TrackKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<TrackSource>,
}

/// Why the server paused a remote video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseReason {
    /// Even the lowest layer does not fit the subscriber's estimated bandwidth.
    Bandwidth,
    /// The publisher sends no layer the subscriber could receive.
    Publisher,
}

/// One simulcast layer (encoding) of a published video and whether it is needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerActivity {
    pub rid: String,
    pub active: bool,
}

/// A participant speaking now, with its smoothed audio level in -dBov
/// (0 = full scale, 127 = silence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveSpeaker {
    pub participant_id: String,
    pub level: u8,
}

/// Messages a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    Join {
        version: u32,
        room: String,
        name: String,
        /// Access token (JWT); required when the server has API keys.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    PublishOffer {
        sdp: String,
        /// What the offer's m-lines capture, by mid; an m-line not named is
        /// the microphone (audio) or camera (video).
        #[serde(default)]
        sources: std::collections::BTreeMap<String, TrackSource>,
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
    /// The client's network changed under a live WebSocket: the server
    /// sends a `subscribe_offer` with new ICE credentials (`pc` must be
    /// `subscribe`; the publish connection restarts with its own offer).
    RestartIce {
        pc: PcKind,
    },
    /// How a remote video is shown: the server never sends a simulcast
    /// layer larger than `width`×`height`, and none while it is not visible.
    VideoPreference {
        track_id: String,
        visible: bool,
        #[serde(default)]
        width: u32,
        #[serde(default)]
        height: u32,
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
        /// ICE servers for both peer connections (none on a server with no
        /// `--ice-server` or `--turn-url`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<IceServer>,
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
    /// The server stopped forwarding a remote video to this client.
    TrackPaused {
        participant_id: String,
        track_id: String,
        reason: PauseReason,
    },
    /// Forwarding of a paused remote video started again.
    TrackResumed {
        participant_id: String,
        track_id: String,
    },
    /// Dynacast: which simulcast layers of the client's own video on
    /// publish-connection `mid` any subscriber needs. The client sets
    /// `active` on the matching encodings.
    PublishLayers {
        mid: String,
        layers: Vec<LayerActivity>,
    },
    /// An operator muted the client's own track on publish-connection
    /// `mid`: the server forwards none of it until the client unmutes it
    /// (`mute` with `muted: false`). The client shows it as muted.
    MutedByOperator {
        mid: String,
    },
    /// Who in the room speaks now (the client itself included), loudest
    /// first; empty when nobody does. Sent when the list changes, at most
    /// every 300 ms, and once to a participant that just joined.
    ActiveSpeakers {
        speakers: Vec<ActiveSpeaker>,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
    Pong,
}

/// Declares [`ErrorCode`] once: the variants, their wire names (which serde
/// uses too) and the list of all of them, so metrics and docs cannot drift.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $wire:literal,)*) => {
        /// Machine-readable reason carried by [`ServerMessage::Error`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum ErrorCode {
            $($(#[$doc])* #[serde(rename = $wire)] $variant,)*
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as it appears on the wire and in metric labels.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $wire,)*
                }
            }
        }
    };
}

error_codes! {
    /// Not JSON, no `type`, or bad fields for a known type.
    BadMessage = "bad_message",
    UnknownType = "unknown_type",
    UnsupportedVersion = "unsupported_version",
    InvalidRoom = "invalid_room",
    InvalidName = "invalid_name",
    NotJoined = "not_joined",
    AlreadyJoined = "already_joined",
    InvalidSdp = "invalid_sdp",
    InvalidCandidate = "invalid_candidate",
    NoPendingOffer = "no_pending_offer",
    UnknownTrack = "unknown_track",
    ServerBusy = "server_busy",
    /// No access token, or one that does not verify.
    Unauthorized = "unauthorized",
    /// The token lacks a grant the request needs (the message names it).
    Forbidden = "forbidden",
    /// Too many connections or joins from one address, or a full room or
    /// server; the message says when to retry.
    RateLimited = "rate_limited",
    /// The server is draining for a restart: join another server.
    ServerDraining = "server_draining",
    /// A data-channel message over 16 KiB was not relayed.
    DataTooLarge = "data_too_large",
    /// Data-channel messages beyond the participant's rate were not relayed.
    DataRateLimited = "data_rate_limited",
    /// A data-channel message that is not the documented envelope.
    DataMalformed = "data_malformed",
    /// The session cannot go on (the server closes it).
    Fatal = "fatal",
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
                name: "Alice".into(),
                token: None,
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
    fn video_preferences_parse_with_optional_size() {
        let hidden: ClientMessage =
            serde_json::from_str(r#"{"type":"video_preference","track_id":"7","visible":false}"#)
                .unwrap();
        assert_eq!(
            hidden,
            ClientMessage::VideoPreference {
                track_id: "7".into(),
                visible: false,
                width: 0,
                height: 0
            }
        );
    }

    #[test]
    fn pause_and_layer_messages_serialize_as_documented() {
        let paused = serde_json::to_string(&ServerMessage::TrackPaused {
            participant_id: "p".into(),
            track_id: "3".into(),
            reason: PauseReason::Bandwidth,
        })
        .unwrap();
        assert_eq!(
            paused,
            r#"{"type":"track_paused","participant_id":"p","track_id":"3","reason":"bandwidth"}"#
        );
        let layers = serde_json::to_string(&ServerMessage::PublishLayers {
            mid: "1".into(),
            layers: vec![LayerActivity {
                rid: "f".into(),
                active: false,
            }],
        })
        .unwrap();
        assert_eq!(
            layers,
            r#"{"type":"publish_layers","mid":"1","layers":[{"rid":"f","active":false}]}"#
        );
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
    fn error_codes_serialize_as_their_listed_names() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
        assert_eq!(ErrorCode::ALL.len(), 20);
    }
}
