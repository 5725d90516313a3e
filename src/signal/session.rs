//! One participant's signaling session: what each client message means.
//!
//! Transport-agnostic: the WebSocket layer hands in text and sends out what
//! comes back, so the rules here read top to bottom in protocol order.

use std::net::IpAddr;
use std::time::{Instant, SystemTime};

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::Candidate;
use tokio::sync::mpsc;
use tracing::Instrument;

use std::collections::BTreeMap;

use cascade_protocol::{
    ClientMessage, ErrorCode, IceServer, PcKind, ServerMessage, TrackSource, CLIENT_MESSAGE_TYPES,
    PROTOCOL_VERSION,
};
use str0m::media::Mid;

use super::limits::{Limited, CAPACITY_RETRY};
use super::protocol::{core_track_source, peer_role, server_message};
use super::worker_client::WorkerError;
use super::{one_line, AppState};
use crate::auth::{Intent, Refusal};
use crate::drain;
use crate::media::{
    AnswerError, CandidateError, DisplayName, JoinError, JoinRequest, MediaGrants, MuteError,
    OfferError, ParticipantEvent, ParticipantId, ParticipantMode, PreferenceError, RoomName,
    TrackSource as CoreTrackSource, VideoPreference, MAX_NAMED_SOURCES,
};
use crate::metrics::{SessionGuard, SessionKind};

/// How many server messages may wait for a slow client before it is dropped.
const OUTBOX_CAPACITY: usize = 256;

/// Whether the connection should go on after a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// Signaling state of one connection.
pub struct Session {
    state: AppState,
    /// The client's address, for the join rate limit.
    peer: IpAddr,
    joined: Option<Joined>,
    /// Log context: `participant{room, participant}` once joined.
    span: tracing::Span,
    /// Counts this WebSocket session as active while it lives.
    _counted: SessionGuard,
}

struct Joined {
    id: ParticipantId,
    worker: usize,
    /// Events the worker sends this participant.
    inbox: mpsc::Receiver<ParticipantEvent>,
    /// The worker holds our publish connection (first offer accepted).
    publishing: bool,
    /// For `joined` (taken when it goes out).
    ice_servers: Vec<IceServer>,
}

type Reply = Result<Option<ServerMessage>, ServerMessage>;

impl Session {
    pub fn new(state: AppState, peer: IpAddr) -> Self {
        let counted = state.metrics.open_session(SessionKind::Ws);
        Session {
            state,
            peer,
            joined: None,
            span: tracing::Span::none(),
            _counted: counted,
        }
    }

    /// Handles one text frame; returns the direct reply, if any. Counts the
    /// request by type and any error by code.
    pub async fn handle_text(&mut self, text: &str) -> (Option<ServerMessage>, Flow) {
        let span = self.span.clone();
        let (reply, flow) = self.handle_message(text).instrument(span).await;
        if let Some(ServerMessage::Error { code, .. }) = &reply {
            self.state.metrics.count_error_code(*code);
        }
        (reply, flow)
    }

    async fn handle_message(&mut self, text: &str) -> (Option<ServerMessage>, Flow) {
        let message = match parse(text) {
            Ok(m) => m,
            Err(error) => {
                self.state.metrics.count_request("invalid");
                return (Some(error), Flow::Continue);
            }
        };
        self.state.metrics.count_request(request_kind(&message));
        if message == ClientMessage::Leave {
            return (None, Flow::Stop);
        }
        let reply = match message {
            ClientMessage::Join {
                version,
                room,
                name,
                token,
            } => self.join(version, room, name, token).await,
            ClientMessage::Ping => Ok(Some(ServerMessage::Pong)),
            other => self.handle_joined(other).await,
        };
        (reply.unwrap_or_else(Some), Flow::Continue)
    }

    pub fn is_joined(&self) -> bool {
        self.joined.is_some()
    }

    /// The next message the worker has for this participant. Pending forever
    /// before `join`; `None` once the worker has removed the participant.
    pub async fn next_server_message(&mut self) -> Option<ServerMessage> {
        let Some(joined) = &mut self.joined else {
            return std::future::pending().await;
        };
        loop {
            if let Some(mut message) = server_message(joined.inbox.recv().await?) {
                if let ServerMessage::Joined { ice_servers, .. } = &mut message {
                    *ice_servers = std::mem::take(&mut joined.ice_servers);
                }
                return Some(message);
            }
        }
    }

    /// Leaves the room (if joined). Called once the connection is over.
    pub async fn end(&mut self) {
        if let Some(joined) = self.joined.take() {
            self.state.worker(joined.worker).leave(joined.id).await;
            tracing::info!(parent: &self.span, "participant left");
        }
    }

    async fn join(
        &mut self,
        version: u32,
        room: String,
        name: String,
        token: Option<String>,
    ) -> Reply {
        if self.joined.is_some() {
            return Err(error(ErrorCode::AlreadyJoined, "already joined a room"));
        }
        if version != PROTOCOL_VERSION {
            return Err(error(
                ErrorCode::UnsupportedVersion,
                format!("protocol version {version} is not supported; use {PROTOCOL_VERSION}"),
            ));
        }
        if self.state.drain.is_draining() {
            return Err(error(ErrorCode::ServerDraining, drain::REFUSAL));
        }
        let room =
            RoomName::parse(&room).map_err(|e| error(ErrorCode::InvalidRoom, e.to_string()))?;
        let permissions = self
            .state
            .access
            .join(token.as_deref(), &room, Intent::Meet)
            .map_err(refusal)?;
        // The token's name, when it gives one, is the one others see.
        let name = permissions.name.as_deref().unwrap_or(&name);
        let name =
            DisplayName::parse(name).map_err(|e| error(ErrorCode::InvalidName, e.to_string()))?;
        self.state
            .limits
            .admit_join(self.peer, Instant::now())
            .map_err(|limited| error(ErrorCode::RateLimited, limited.to_string()))?;
        let lease = self
            .state
            .directory
            .lease(&room)
            .map_err(|full| error(ErrorCode::RateLimited, Limited::from(full).to_string()))?;
        let worker = lease.worker();
        let id = ParticipantId::random();
        let (outbox, inbox) = mpsc::channel(OUTBOX_CAPACITY);
        let request = JoinRequest {
            id,
            room: room.clone(),
            name: name.clone(),
            mode: ParticipantMode::Full,
            identity: permissions.identity.clone(),
            grants: MediaGrants {
                publish: permissions.publish,
                subscribe: permissions.subscribe,
                publish_data: permissions.publish_data,
            },
        };
        self.state
            .worker(worker)
            .join(request, outbox, lease)
            .await
            .map_err(worker_error)?;
        self.span = tracing::info_span!("participant", %room, participant = %id);
        let identity = permissions.identity.as_ref().map(|i| i.as_str());
        tracing::info!(parent: &self.span, %name, identity, worker, "participant joined");
        let turn_identity = identity.map_or_else(|| id.to_string(), str::to_string);
        self.joined = Some(Joined {
            id,
            worker,
            inbox,
            publishing: false,
            ice_servers: self
                .state
                .ice_servers
                .for_identity(&turn_identity, SystemTime::now()),
        });
        Ok(None) // `joined` arrives through the inbox
    }

    async fn handle_joined(&mut self, message: ClientMessage) -> Reply {
        let Some(joined) = &self.joined else {
            return Err(error(ErrorCode::NotJoined, "send join first"));
        };
        let (id, publishing) = (joined.id, joined.publishing);
        let worker = self.state.worker(joined.worker);
        match message {
            ClientMessage::PublishOffer { sdp, sources } => {
                let offer = SdpOffer::from_sdp_string(&sdp).map_err(|e| {
                    error(
                        ErrorCode::InvalidSdp,
                        format!("cannot parse offer: {}", one_line(&e)),
                    )
                })?;
                let sources = named_sources(&sources)?;
                let answer = worker
                    .publish_offer(id, offer, sources, !publishing)
                    .await
                    .map_err(worker_error)?;
                if let Some(joined) = &mut self.joined {
                    joined.publishing = true;
                }
                Ok(Some(ServerMessage::PublishAnswer {
                    sdp: answer.to_sdp_string(),
                }))
            }
            ClientMessage::SubscribeAnswer { sdp } => {
                let answer = SdpAnswer::from_sdp_string(&sdp).map_err(|e| {
                    error(
                        ErrorCode::InvalidSdp,
                        format!("cannot parse answer: {}", one_line(&e)),
                    )
                })?;
                worker
                    .subscribe_answer(id, answer)
                    .await
                    .map_err(worker_error)?;
                Ok(None)
            }
            ClientMessage::Candidate { pc, candidate } => {
                if candidate.trim().is_empty() {
                    return Ok(None); // end of candidates: nothing to do for ICE-lite
                }
                let candidate = parse_candidate(&candidate)?;
                worker
                    .add_candidate(id, peer_role(pc), candidate)
                    .await
                    .map_err(worker_error)?;
                Ok(None)
            }
            ClientMessage::RestartIce { pc } => {
                if pc == PcKind::Publish {
                    return Err(error(
                        ErrorCode::BadMessage,
                        "the publish connection restarts ICE with a publish_offer (createOffer({iceRestart: true}))",
                    ));
                }
                worker
                    .restart_subscribe_ice(id)
                    .await
                    .map_err(worker_error)?;
                Ok(None)
            }
            ClientMessage::Mute { mid, muted } => {
                worker
                    .set_muted(id, mid, muted)
                    .await
                    .map_err(worker_error)?;
                Ok(None)
            }
            ClientMessage::VideoPreference {
                track_id,
                visible,
                width,
                height,
            } => {
                let track = track_id.parse().map_err(|()| {
                    error(ErrorCode::UnknownTrack, format!("no track {track_id:?}"))
                })?;
                let preference = VideoPreference {
                    visible,
                    width,
                    height,
                };
                worker
                    .set_video_preference(id, track, preference)
                    .await
                    .map_err(worker_error)?;
                Ok(None)
            }
            ClientMessage::Join { .. } | ClientMessage::Leave | ClientMessage::Ping => Ok(None),
        }
    }
}

/// The `kind` label of a request in `cascade_signal_requests_total`.
fn request_kind(message: &ClientMessage) -> &'static str {
    match message {
        ClientMessage::Join { .. } => "join",
        ClientMessage::PublishOffer { .. } => "publish_offer",
        ClientMessage::SubscribeAnswer { .. } => "subscribe_answer",
        ClientMessage::Candidate { .. } => "candidate",
        ClientMessage::Mute { .. } => "mute",
        ClientMessage::RestartIce { .. } => "restart_ice",
        ClientMessage::VideoPreference { .. } => "video_preference",
        ClientMessage::Leave => "leave",
        ClientMessage::Ping => "ping",
    }
}

/// A `publish_offer`'s `sources`, checked: at most [`MAX_NAMED_SOURCES`]
/// entries, each keyed by a plausible mid.
fn named_sources(
    sources: &BTreeMap<String, TrackSource>,
) -> Result<Vec<(Mid, CoreTrackSource)>, ServerMessage> {
    if sources.len() > MAX_NAMED_SOURCES {
        return Err(error(
            ErrorCode::BadMessage,
            format!("sources names more than {MAX_NAMED_SOURCES} m-lines"),
        ));
    }
    sources
        .iter()
        .map(|(mid, source)| {
            let plausible = !mid.is_empty()
                && mid.len() <= MAX_MID_CHARS
                && mid
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            match plausible {
                true => Ok((Mid::from(mid.as_str()), core_track_source(*source))),
                false => Err(error(
                    ErrorCode::BadMessage,
                    format!("sources: {:?} is not a mid", one_line(mid)),
                )),
            }
        })
        .collect()
}

/// The longest mid `sources` may name (str0m's mids are short tokens).
const MAX_MID_CHARS: usize = 16;

/// The protocol error of a refused token.
fn refusal(refusal: Refusal) -> ServerMessage {
    let code = match refusal {
        Refusal::Unauthorized(_) => ErrorCode::Unauthorized,
        Refusal::Forbidden(_) => ErrorCode::Forbidden,
    };
    error(code, refusal.to_string())
}

fn error(code: ErrorCode, message: impl Into<String>) -> ServerMessage {
    ServerMessage::error(code, message)
}

/// Parses a client message, telling apart broken JSON, unknown types and
/// known types with bad fields.
fn parse(text: &str) -> Result<ClientMessage, ServerMessage> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| error(ErrorCode::BadMessage, format!("invalid JSON: {e}")))?;
    let kind = value
        .get("type")
        .and_then(|t| t.as_str())
        .ok_or_else(|| error(ErrorCode::BadMessage, "a message needs a string \"type\""))?;
    if !CLIENT_MESSAGE_TYPES.contains(&kind) {
        return Err(error(
            ErrorCode::UnknownType,
            format!("unknown message type {kind:?}"),
        ));
    }
    let kind = kind.to_string();
    serde_json::from_value(value).map_err(|e| {
        error(
            ErrorCode::BadMessage,
            format!("invalid {kind} message: {e}"),
        )
    })
}

fn parse_candidate(line: &str) -> Result<Candidate, ServerMessage> {
    let line = line.trim();
    let line = line.strip_prefix("a=").unwrap_or(line);
    Candidate::from_sdp_string(line).map_err(|e| {
        error(
            ErrorCode::InvalidCandidate,
            format!("cannot parse candidate: {}", one_line(&e)),
        )
    })
}

/// The protocol error code of a core error.
trait ErrorCodeOf: std::fmt::Display {
    fn code(&self) -> ErrorCode;
}

impl ErrorCodeOf for JoinError {
    fn code(&self) -> ErrorCode {
        match self {
            JoinError::Forbidden(_) => ErrorCode::Forbidden,
            JoinError::RoomFull => ErrorCode::RateLimited,
            _ => ErrorCode::Fatal,
        }
    }
}

impl ErrorCodeOf for OfferError {
    fn code(&self) -> ErrorCode {
        match self {
            OfferError::NotJoined => ErrorCode::NotJoined,
            OfferError::InvalidSdp(_) => ErrorCode::InvalidSdp,
            OfferError::Forbidden => ErrorCode::Forbidden,
            OfferError::NoPublishConnection
            | OfferError::WrongConnection
            | OfferError::Setup(_) => ErrorCode::Fatal,
        }
    }
}

impl ErrorCodeOf for AnswerError {
    fn code(&self) -> ErrorCode {
        match self {
            AnswerError::NotJoined => ErrorCode::NotJoined,
            AnswerError::NoPendingOffer => ErrorCode::NoPendingOffer,
            AnswerError::InvalidSdp(_) => ErrorCode::InvalidSdp,
        }
    }
}

impl ErrorCodeOf for CandidateError {
    fn code(&self) -> ErrorCode {
        match self {
            CandidateError::NotJoined => ErrorCode::NotJoined,
            CandidateError::NoSuchConnection | CandidateError::TooMany(_) => {
                ErrorCode::InvalidCandidate
            }
        }
    }
}

impl ErrorCodeOf for PreferenceError {
    fn code(&self) -> ErrorCode {
        match self {
            PreferenceError::NotJoined => ErrorCode::NotJoined,
            PreferenceError::UnknownTrack(_) => ErrorCode::UnknownTrack,
        }
    }
}

impl ErrorCodeOf for MuteError {
    fn code(&self) -> ErrorCode {
        match self {
            MuteError::NotJoined => ErrorCode::NotJoined,
            MuteError::UnknownTrack(_) | MuteError::NoSuchTrack(_) => ErrorCode::UnknownTrack,
        }
    }
}

/// The error message a client gets when a worker request fails.
fn worker_error<E: ErrorCodeOf>(e: WorkerError<E>) -> ServerMessage {
    let code = match &e {
        WorkerError::Busy => ErrorCode::ServerBusy,
        WorkerError::Stopped | WorkerError::NoConnection => ErrorCode::Fatal,
        WorkerError::Rejected(e) => e.code(),
    };
    match code {
        ErrorCode::RateLimited => error(
            code,
            format!("{e}; retry in {} s", CAPACITY_RETRY.as_secs()),
        ),
        _ => error(code, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(result: Result<ClientMessage, ServerMessage>) -> Option<ErrorCode> {
        match result {
            Err(ServerMessage::Error { code, .. }) => Some(code),
            _ => None,
        }
    }

    #[test]
    fn named_sources_take_mids_and_refuse_junk_keys_and_too_many() {
        let named = |pairs: &[(&str, TrackSource)]| {
            let map: BTreeMap<String, TrackSource> =
                pairs.iter().map(|(m, s)| (m.to_string(), *s)).collect();
            named_sources(&map)
        };
        let ok = named(&[
            ("2", TrackSource::ScreenShare),
            ("3", TrackSource::ScreenShareAudio),
        ])
        .expect("mids");
        assert_eq!(
            ok,
            [
                (Mid::from("2"), CoreTrackSource::ScreenShare),
                (Mid::from("3"), CoreTrackSource::ScreenShareAudio)
            ]
        );
        for junk in ["", "a b", "x".repeat(17).as_str(), "\u{0}"] {
            let refused = named(&[(junk, TrackSource::Camera)]);
            assert!(
                matches!(
                    refused,
                    Err(ServerMessage::Error {
                        code: ErrorCode::BadMessage,
                        ..
                    })
                ),
                "{junk:?}"
            );
        }
        let many: Vec<(String, TrackSource)> = (0..=MAX_NAMED_SOURCES)
            .map(|i| (i.to_string(), TrackSource::Camera))
            .collect();
        let many: Vec<(&str, TrackSource)> = many.iter().map(|(m, s)| (m.as_str(), *s)).collect();
        assert!(named(&many).is_err());
        // Unknown source names do not parse at all.
        let bad = r#"{"type":"publish_offer","sdp":"v=0","sources":{"1":"hologram"}}"#;
        assert_eq!(code(parse(bad)), Some(ErrorCode::BadMessage));
    }

    #[test]
    fn parse_tells_bad_json_unknown_type_and_bad_fields_apart() {
        assert_eq!(code(parse("{nope")), Some(ErrorCode::BadMessage));
        assert_eq!(code(parse(r#"{"no":"type"}"#)), Some(ErrorCode::BadMessage));
        assert_eq!(
            code(parse(r#"{"type":"dance"}"#)),
            Some(ErrorCode::UnknownType)
        );
        assert_eq!(
            code(parse(r#"{"type":"join","room":"a"}"#)),
            Some(ErrorCode::BadMessage)
        );
        assert!(parse(r#"{"type":"ping","extra":1}"#).is_ok());
    }

    #[test]
    fn candidates_need_the_candidate_prefix() {
        assert!(parse_candidate("candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host").is_ok());
        assert!(parse_candidate("a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host").is_ok());
        assert!(parse_candidate("1 1 udp 2122260223 127.0.0.1 50000 typ host").is_err());
        assert!(parse_candidate("candidate:garbage").is_err());
    }
}
