//! One participant's signaling session: what each client message means.
//!
//! Transport-agnostic: the WebSocket layer hands in text and sends out what
//! comes back, so the rules here read top to bottom in protocol order.

use std::time::Instant;

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::{Candidate, Rtc};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use super::{one_line, AppState};
use crate::media::{
    self, AnswerError, CandidateError, MuteError, OfferError, ParticipantId, ParticipantMode,
};
use crate::metrics::{SessionGuard, SessionKind};
use crate::worker::Command;
use cascade_protocol::{
    ClientMessage, ErrorCode, PcKind, ServerMessage, CLIENT_MESSAGE_TYPES, PROTOCOL_VERSION,
};

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
    joined: Option<Joined>,
    /// Log context: `participant{room, participant}` once joined.
    span: tracing::Span,
    /// Counts this WebSocket session as active while it lives.
    _counted: SessionGuard,
}

struct Joined {
    id: ParticipantId,
    room: String,
    worker: usize,
    /// Messages the worker sends this participant.
    inbox: mpsc::Receiver<ServerMessage>,
    /// The worker holds our publish connection (first offer accepted).
    publishing: bool,
}

type Reply = Result<Option<ServerMessage>, ServerMessage>;

impl Session {
    pub fn new(state: AppState) -> Self {
        let counted = state.metrics.open_session(SessionKind::Ws);
        Session {
            state,
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
            } => self.join(version, room, name).await,
            ClientMessage::Ping => Ok(Some(ServerMessage::Pong)),
            other => self.handle_joined(other).await,
        };
        (reply.unwrap_or_else(Some), Flow::Continue)
    }

    /// The next message the worker has for this participant. Pending forever
    /// before `join`; `None` once the worker has removed the participant.
    pub async fn next_server_message(&mut self) -> Option<ServerMessage> {
        match &mut self.joined {
            Some(joined) => joined.inbox.recv().await,
            None => std::future::pending().await,
        }
    }

    /// Leaves the room (if joined). Called once the connection is over.
    pub async fn end(&mut self) {
        if let Some(joined) = self.joined.take() {
            let worker = &self.state.workers[joined.worker];
            let _ = worker.commands.send(Command::Leave { id: joined.id }).await;
            self.state.directory.release(&joined.room);
            tracing::info!(parent: &self.span, "participant left");
        }
    }

    async fn join(&mut self, version: u32, room: String, name: String) -> Reply {
        if self.joined.is_some() {
            return Err(error(ErrorCode::AlreadyJoined, "already joined a room"));
        }
        if version != PROTOCOL_VERSION {
            return Err(error(
                ErrorCode::UnsupportedVersion,
                format!("protocol version {version} is not supported; use {PROTOCOL_VERSION}"),
            ));
        }
        if crate::media::RoomName::parse(&room).is_err() {
            return Err(error(
                ErrorCode::InvalidRoom,
                "room names are 1-64 characters of A-Z a-z 0-9 _ - .",
            ));
        }
        if crate::media::DisplayName::parse(&name).is_err() {
            return Err(error(
                ErrorCode::InvalidName,
                "display names are 1-64 characters without control characters",
            ));
        }
        let worker = self.state.directory.acquire(&room);
        let result = self.join_on_worker(worker, &room, &name).await;
        match result {
            Ok(joined) => {
                self.span = tracing::info_span!("participant", %room, participant = %joined.id);
                tracing::info!(parent: &self.span, %name, worker, "participant joined");
                self.joined = Some(joined);
                Ok(None) // `joined` arrives through the inbox
            }
            Err(e) => {
                self.state.directory.release(&room);
                Err(e)
            }
        }
    }

    async fn join_on_worker(
        &self,
        worker: usize,
        room: &str,
        name: &str,
    ) -> Result<Joined, ServerMessage> {
        let rtc = build_rtc().await?;
        let id = ParticipantId::random();
        let (outbox, inbox) = mpsc::channel(OUTBOX_CAPACITY);
        let (room_owned, name_owned) = (room.to_string(), name.to_string());
        let result = self
            .request(worker, |reply| Command::Join {
                id,
                room: room_owned,
                name: name_owned,
                mode: ParticipantMode::Full,
                rtc: Some(rtc),
                outbox,
                reply,
            })
            .await?;
        result.map_err(|e| error(ErrorCode::Fatal, e.to_string()))?;
        Ok(Joined {
            id,
            room: room.to_string(),
            worker,
            inbox,
            publishing: false,
        })
    }

    async fn handle_joined(&mut self, message: ClientMessage) -> Reply {
        let Some(joined) = &self.joined else {
            return Err(error(ErrorCode::NotJoined, "send join first"));
        };
        let (id, worker, publishing) = (joined.id, joined.worker, joined.publishing);
        match message {
            ClientMessage::PublishOffer { sdp } => {
                let offer = SdpOffer::from_sdp_string(&sdp).map_err(|e| {
                    error(
                        ErrorCode::InvalidSdp,
                        format!("cannot parse offer: {}", one_line(&e)),
                    )
                })?;
                let rtc = if publishing {
                    None
                } else {
                    Some(build_rtc().await?)
                };
                let answer = self
                    .request(worker, |reply| Command::ClientOffer {
                        id,
                        pc: PcKind::Publish,
                        rtc,
                        offer,
                        reply,
                    })
                    .await?
                    .map_err(offer_error)?;
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
                self.request(worker, |reply| Command::SubscribeAnswer {
                    id,
                    answer,
                    reply,
                })
                .await?
                .map_err(answer_error)?;
                Ok(None)
            }
            ClientMessage::Candidate { pc, candidate } => {
                if candidate.trim().is_empty() {
                    return Ok(None); // end of candidates: nothing to do for ICE-lite
                }
                let candidate = parse_candidate(&candidate)?;
                self.request(worker, |reply| Command::Candidate {
                    id,
                    pc,
                    candidate,
                    reply,
                })
                .await?
                .map_err(candidate_error(pc))?;
                Ok(None)
            }
            ClientMessage::Mute { mid, muted } => {
                self.request(worker, |reply| Command::Mute {
                    id,
                    mid,
                    muted,
                    reply,
                })
                .await?
                .map_err(mute_error)?;
                Ok(None)
            }
            ClientMessage::Join { .. } | ClientMessage::Leave | ClientMessage::Ping => Ok(None),
        }
    }

    /// Sends a command to `worker` and waits for its reply. A full queue is
    /// reported as `server_busy` instead of waiting behind a flood.
    async fn request<T>(
        &self,
        worker: usize,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, ServerMessage> {
        let (reply, response) = oneshot::channel();
        let handle = &self.state.workers[worker];
        handle
            .commands
            .try_send(command(reply))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    error(ErrorCode::ServerBusy, "the media worker is busy; try again")
                }
                mpsc::error::TrySendError::Closed(_) => {
                    error(ErrorCode::Fatal, "the media worker is not running")
                }
            })?;
        response
            .await
            .map_err(|_| error(ErrorCode::Fatal, "the media worker is not running"))
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
        ClientMessage::Leave => "leave",
        ClientMessage::Ping => "ping",
    }
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

async fn build_rtc() -> Result<Box<Rtc>, ServerMessage> {
    tokio::task::spawn_blocking(|| Box::new(media::server_rtc(Instant::now())))
        .await
        .map_err(|_| error(ErrorCode::Fatal, "could not create a peer connection"))
}

fn offer_error(e: OfferError) -> ServerMessage {
    let code = match e {
        OfferError::NotJoined => ErrorCode::NotJoined,
        OfferError::InvalidSdp(_) => ErrorCode::InvalidSdp,
        OfferError::NoPublishConnection | OfferError::WrongConnection | OfferError::Setup(_) => {
            ErrorCode::Fatal
        }
    };
    error(code, e.to_string())
}

fn answer_error(e: AnswerError) -> ServerMessage {
    let code = match e {
        AnswerError::NotJoined => ErrorCode::NotJoined,
        AnswerError::NoPendingOffer => ErrorCode::NoPendingOffer,
        AnswerError::InvalidSdp(_) => ErrorCode::InvalidSdp,
    };
    error(code, e.to_string())
}

fn candidate_error(pc: PcKind) -> impl Fn(CandidateError) -> ServerMessage {
    move |e| match e {
        CandidateError::NotJoined => error(ErrorCode::NotJoined, e.to_string()),
        CandidateError::NoSuchConnection => error(
            ErrorCode::InvalidCandidate,
            format!("the {pc:?} connection has not been negotiated yet").to_lowercase(),
        ),
    }
}

fn mute_error(e: MuteError) -> ServerMessage {
    let code = match e {
        MuteError::NotJoined => ErrorCode::NotJoined,
        MuteError::UnknownTrack(_) => ErrorCode::UnknownTrack,
    };
    error(code, e.to_string())
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
