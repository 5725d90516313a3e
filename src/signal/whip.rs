//! WHIP (RFC 9725) ingest and WHEP egress over HTTP, into the same rooms as
//! the WebSocket API. See `docs/WHIP-WHEP.md` for the contract.
//!
//! A WHIP or WHEP session is a participant without a WebSocket. Its worker
//! outbox is drained by a small watcher task, which is also the one place
//! that cleans the session up when the participant ends (DELETE, ICE
//! timeout, shutdown).

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use serde::Deserialize;
use str0m::change::SdpOffer;
use str0m::{Candidate, IceCreds};
use tokio::sync::{mpsc, oneshot};

use super::{one_line, AppState};
use crate::media::{self, JoinError, OfferError, ParticipantId, ParticipantMode};
use crate::metrics;
use crate::worker::Command;
use cascade_protocol::{PcKind, ServerMessage};

/// Largest SDP or sdpfrag body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

const SDP: &str = "application/sdp";
const SDP_FRAG: &str = "application/trickle-ice-sdpfrag";

/// Which protocol a session came in by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    Whip,
    Whep,
}

impl SessionKind {
    fn path(self) -> &'static str {
        match self {
            SessionKind::Whip => "whip",
            SessionKind::Whep => "whep",
        }
    }

    fn pc(self) -> PcKind {
        match self {
            SessionKind::Whip => PcKind::Publish,
            SessionKind::Whep => PcKind::Subscribe,
        }
    }
}

/// A live WHIP/WHEP session.
#[derive(Debug)]
pub struct HttpSession {
    kind: SessionKind,
    participant: ParticipantId,
    worker: usize,
    /// The client's current ICE ufrag: a PATCH with another one is a restart.
    remote_ufrag: Option<String>,
    etag: String,
}

/// WHIP/WHEP sessions by id.
pub type HttpSessions = DashMap<String, HttpSession>;

/// An error response: status and a one-line explanation.
pub struct HttpError(StatusCode, String);

impl HttpError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        HttpError(status, message.into())
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut response = (self.0, format!("{}\n", self.1)).into_response();
        add_cors(response.headers_mut());
        if self.0 == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

type HttpResult = Result<Response, HttpError>;

#[derive(Debug, Deserialize)]
pub struct NameQuery {
    name: Option<String>,
}

/// `POST /whip/{room}`
pub async fn whip_post(
    State(state): State<AppState>,
    Path(room): Path<String>,
    Query(query): Query<NameQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult {
    let name = query.name.unwrap_or_else(|| "WHIP".to_string());
    let result = create(&state, SessionKind::Whip, room, None, name, &headers, &body).await;
    observe(&state, "whip", result)
}

/// `POST /whep/{room}`
pub async fn whep_post(
    State(state): State<AppState>,
    Path(room): Path<String>,
    Query(query): Query<NameQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult {
    let name = query.name.unwrap_or_else(|| "WHEP viewer".to_string());
    let result = create(&state, SessionKind::Whep, room, None, name, &headers, &body).await;
    observe(&state, "whep", result)
}

/// `POST /whep/{room}/{participant}`
pub async fn whep_post_follow(
    State(state): State<AppState>,
    Path((room, participant)): Path<(String, String)>,
    Query(query): Query<NameQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult {
    let name = query.name.unwrap_or_else(|| "WHEP viewer".to_string());
    let result = match participant.parse::<ParticipantId>() {
        Ok(follow) => {
            let follow = Some(follow);
            create(
                &state,
                SessionKind::Whep,
                room,
                follow,
                name,
                &headers,
                &body,
            )
            .await
        }
        Err(()) => Err(HttpError::new(
            StatusCode::NOT_FOUND,
            "no such participant in this room",
        )),
    };
    observe(&state, "whep", result)
}

/// Counts a WHIP/WHEP request, and its error status if it failed.
fn observe(state: &AppState, request: &str, result: HttpResult) -> HttpResult {
    state.metrics.count_request(request);
    if let Err(HttpError(status, _)) = &result {
        state
            .metrics
            .count_error(&format!("http_{}", status.as_u16()));
    }
    result
}

async fn create(
    state: &AppState,
    kind: SessionKind,
    room: String,
    follow: Option<ParticipantId>,
    name: String,
    headers: &HeaderMap,
    body: &[u8],
) -> HttpResult {
    authorize(state, headers)?;
    require_content_type(headers, SDP)?;
    if crate::media::RoomName::parse(&room).is_err() {
        return Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            "room names are 1-64 characters of A-Z a-z 0-9 _ - .",
        ));
    }
    if crate::media::DisplayName::parse(&name).is_err() {
        return Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            "invalid display name",
        ));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| HttpError::new(StatusCode::BAD_REQUEST, "the offer is not UTF-8"))?;
    let offer = SdpOffer::from_sdp_string(text).map_err(|e| {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            format!("cannot parse offer: {}", one_line(&e)),
        )
    })?;
    let remote_ufrag = sdp_attribute(text, "ice-ufrag").map(str::to_string);

    let worker = state.directory.acquire(&room);
    let id = ParticipantId::random();
    let (outbox, inbox) = mpsc::channel(64);
    let started =
        join_and_offer(state, worker, kind, id, &room, &name, follow, outbox, offer).await;
    let answer = match started {
        Ok(answer) => answer,
        Err(e) => {
            state.directory.release(&room);
            return Err(e);
        }
    };

    let session_id = format!("{:032x}", rand::random::<u128>());
    let etag = new_etag();
    state.http_sessions.insert(
        session_id.clone(),
        HttpSession {
            kind,
            participant: id,
            worker,
            remote_ufrag,
            etag: etag.clone(),
        },
    );
    let counted = state.metrics.open_session(match kind {
        SessionKind::Whip => metrics::SessionKind::Whip,
        SessionKind::Whep => metrics::SessionKind::Whep,
    });
    watch_session(
        state.clone(),
        session_id.clone(),
        room.clone(),
        inbox,
        counted,
    );
    tracing::info!(participant = %id, %room, session = %session_id, kind = kind.path(), "http session started");

    let mut response = (StatusCode::CREATED, answer).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SDP));
    insert_header(
        h,
        header::LOCATION,
        &format!("/{}/session/{session_id}", kind.path()),
    );
    insert_header(h, header::ETAG, &etag);
    for server in state.ice_servers.iter() {
        h.append(header::LINK, link_header(server)?);
    }
    add_cors(h);
    Ok(response)
}

#[allow(clippy::too_many_arguments)]
async fn join_and_offer(
    state: &AppState,
    worker: usize,
    kind: SessionKind,
    id: ParticipantId,
    room: &str,
    name: &str,
    follow: Option<ParticipantId>,
    outbox: mpsc::Sender<ServerMessage>,
    offer: SdpOffer,
) -> Result<String, HttpError> {
    let mode = match kind {
        SessionKind::Whip => ParticipantMode::PublishOnly,
        SessionKind::Whep => ParticipantMode::Viewer { follow },
    };
    let (room, name) = (room.to_string(), name.to_string());
    request(state, worker, |reply| Command::Join {
        id,
        room,
        name,
        mode,
        rtc: None,
        outbox,
        reply,
    })
    .await?
    .map_err(|e| match e {
        JoinError::NoSuchParticipant => HttpError::new(StatusCode::NOT_FOUND, e.to_string()),
        other => HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    })?;
    let rtc = tokio::task::spawn_blocking(|| Box::new(media::server_rtc(Instant::now())))
        .await
        .map_err(|_| {
            HttpError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot create a connection",
            )
        })?;
    let result = request(state, worker, |reply| Command::ClientOffer {
        id,
        pc: kind.pc(),
        rtc: Some(rtc),
        offer,
        reply,
    })
    .await
    .and_then(|r| {
        r.map_err(|e| match e {
            OfferError::InvalidSdp(_) => HttpError::new(StatusCode::BAD_REQUEST, e.to_string()),
            other => HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        })
    });
    match result {
        Ok(answer) => Ok(answer.to_sdp_string()),
        Err(e) => {
            let _ = state.workers[worker]
                .commands
                .try_send(Command::Leave { id });
            Err(e)
        }
    }
}

/// Drains the participant's outbox until the worker drops it (the
/// participant is gone), then forgets the session and frees the room slot.
fn watch_session(
    state: AppState,
    session_id: String,
    room: String,
    mut inbox: mpsc::Receiver<ServerMessage>,
    counted: metrics::SessionGuard,
) {
    tokio::spawn(async move {
        while inbox.recv().await.is_some() {}
        drop(counted);
        state.http_sessions.remove(&session_id);
        state.directory.release(&room);
        tracing::info!(session = %session_id, %room, "http session ended");
    });
}

/// `PATCH /whip/session/{id}`
pub async fn whip_patch(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult {
    let result = patch(&state, SessionKind::Whip, session_id, headers, body).await;
    observe(&state, "whip_patch", result)
}

/// `PATCH /whep/session/{id}`
pub async fn whep_patch(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult {
    let result = patch(&state, SessionKind::Whep, session_id, headers, body).await;
    observe(&state, "whep_patch", result)
}

/// Trickle or ICE restart.
async fn patch(
    state: &AppState,
    kind: SessionKind,
    session_id: String,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult {
    authorize(state, &headers)?;
    require_content_type(&headers, SDP_FRAG)?;
    let (participant, worker, current_ufrag, etag) = {
        let s = lookup(&state.http_sessions, kind, &session_id)?;
        (
            s.participant,
            s.worker,
            s.remote_ufrag.clone(),
            s.etag.clone(),
        )
    };
    if let Some(if_match) = headers.get(header::IF_MATCH) {
        let if_match = if_match.to_str().unwrap_or("");
        if if_match != "*" && if_match != etag {
            return Err(HttpError::new(
                StatusCode::PRECONDITION_FAILED,
                "If-Match does not match the session's ETag",
            ));
        }
    }
    let text = std::str::from_utf8(&body)
        .map_err(|_| HttpError::new(StatusCode::BAD_REQUEST, "the fragment is not UTF-8"))?;
    let fragment = parse_fragment(text)?;
    let pc = kind.pc();

    if let Some(ufrag) = fragment
        .ufrag
        .as_ref()
        .filter(|u| Some(*u) != current_ufrag.as_ref())
    {
        let pwd = fragment.pwd.clone().ok_or_else(|| {
            HttpError::new(StatusCode::BAD_REQUEST, "an ICE restart needs a=ice-pwd")
        })?;
        let remote = IceCreds {
            ufrag: ufrag.clone(),
            pass: pwd,
        };
        let local = request(state, worker, |reply| Command::RestartIce {
            id: participant,
            pc,
            remote,
            reply,
        })
        .await?
        .map_err(|e| HttpError::new(StatusCode::CONFLICT, e.to_string()))?;
        add_candidates(state, worker, participant, pc, fragment.candidates).await?;
        let etag = new_etag();
        if let Some(mut s) = state.http_sessions.get_mut(&session_id) {
            s.remote_ufrag = Some(ufrag.clone());
            s.etag = etag.clone();
        }
        let candidate = state.workers[worker].candidate_addr;
        let body = format!(
            "a=ice-lite\r\na=ice-ufrag:{}\r\na=ice-pwd:{}\r\na=candidate:1 1 udp 2130706431 {} {} typ host\r\na=end-of-candidates\r\n",
            local.ufrag,
            local.pass,
            candidate.ip(),
            candidate.port()
        );
        let mut response = (StatusCode::OK, body).into_response();
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SDP_FRAG));
        insert_header(h, header::ETAG, &etag);
        add_cors(h);
        return Ok(response);
    }
    add_candidates(state, worker, participant, pc, fragment.candidates).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    add_cors(response.headers_mut());
    Ok(response)
}

async fn add_candidates(
    state: &AppState,
    worker: usize,
    id: ParticipantId,
    pc: PcKind,
    candidates: Vec<Candidate>,
) -> Result<(), HttpError> {
    for candidate in candidates {
        request(state, worker, |reply| Command::Candidate {
            id,
            pc,
            candidate,
            reply,
        })
        .await?
        .map_err(|e| HttpError::new(StatusCode::CONFLICT, e.to_string()))?;
    }
    Ok(())
}

/// `DELETE /whip/session/{id}`
pub async fn whip_delete(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    headers: HeaderMap,
) -> HttpResult {
    let result = delete(&state, SessionKind::Whip, session_id, headers).await;
    observe(&state, "whip_delete", result)
}

/// `DELETE /whep/session/{id}`
pub async fn whep_delete(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    headers: HeaderMap,
) -> HttpResult {
    let result = delete(&state, SessionKind::Whep, session_id, headers).await;
    observe(&state, "whep_delete", result)
}

/// Ends a session: the participant leaves its room.
async fn delete(
    state: &AppState,
    kind: SessionKind,
    session_id: String,
    headers: HeaderMap,
) -> HttpResult {
    authorize(state, &headers)?;
    let (participant, worker) = {
        let s = lookup(&state.http_sessions, kind, &session_id)?;
        (s.participant, s.worker)
    };
    // Forget it now so later requests get 404; the watcher frees the room.
    state.http_sessions.remove(&session_id);
    let _ = state.workers[worker]
        .commands
        .send(Command::Leave { id: participant })
        .await;
    let mut response = StatusCode::OK.into_response();
    add_cors(response.headers_mut());
    Ok(response)
}

/// `OPTIONS` on any WHIP/WHEP path: CORS preflight.
pub async fn options() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    add_cors(h);
    h.insert("accept-post", HeaderValue::from_static(SDP));
    response
}

fn lookup<'a>(
    sessions: &'a HttpSessions,
    kind: SessionKind,
    id: &str,
) -> Result<dashmap::mapref::one::Ref<'a, String, HttpSession>, HttpError> {
    sessions
        .get(id)
        .filter(|s| s.kind == kind)
        .ok_or_else(|| HttpError::new(StatusCode::NOT_FOUND, "no such session"))
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), HttpError> {
    let Some(token) = &state.auth_token else {
        return Ok(());
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(p) if constant_time_eq(p.as_bytes(), token.as_bytes()) => Ok(()),
        _ => Err(HttpError::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
        )),
    }
}

/// Compares without an early exit, so response time says nothing about
/// how much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn require_content_type(headers: &HeaderMap, expected: &str) -> Result<(), HttpError> {
    let actual = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = actual.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected Content-Type: {expected}"),
        ))
    }
}

async fn request<T>(
    state: &AppState,
    worker: usize,
    command: impl FnOnce(oneshot::Sender<T>) -> Command,
) -> Result<T, HttpError> {
    let (reply, response) = oneshot::channel();
    state.workers[worker]
        .commands
        .try_send(command(reply))
        .map_err(|_| HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "the media worker is busy"))?;
    response
        .await
        .map_err(|_| HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "the media worker stopped"))
}

/// What a trickle-ice-sdpfrag body carries.
#[derive(Debug, Default)]
struct Fragment {
    ufrag: Option<String>,
    pwd: Option<String>,
    candidates: Vec<Candidate>,
}

fn parse_fragment(text: &str) -> Result<Fragment, HttpError> {
    let mut fragment = Fragment::default();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(v) = line.strip_prefix("a=ice-ufrag:") {
            fragment.ufrag = Some(v.to_string());
        } else if let Some(v) = line.strip_prefix("a=ice-pwd:") {
            fragment.pwd = Some(v.to_string());
        } else if let Some(c) = line.strip_prefix("a=") {
            if c.starts_with("candidate:") {
                let candidate = Candidate::from_sdp_string(c).map_err(|e| {
                    HttpError::new(
                        StatusCode::BAD_REQUEST,
                        format!("bad candidate: {}", one_line(&e)),
                    )
                })?;
                fragment.candidates.push(candidate);
            }
            // a=mid, a=end-of-candidates, a=group...: nothing to do.
        } else if !line.starts_with("m=") && !line.starts_with("c=") {
            return Err(HttpError::new(
                StatusCode::BAD_REQUEST,
                format!("not an sdpfrag line: {line:?}"),
            ));
        }
    }
    Ok(fragment)
}

/// The value of the first `a=NAME:value` line.
fn sdp_attribute<'a>(sdp: &'a str, name: &str) -> Option<&'a str> {
    sdp.lines()
        .filter_map(|l| l.trim().strip_prefix("a="))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
}

fn new_etag() -> String {
    format!("\"{:016x}\"", rand::random::<u64>())
}

fn link_header(server: &str) -> Result<HeaderValue, HttpError> {
    HeaderValue::from_str(&format!("<{server}>; rel=\"ice-server\""))
        .map_err(|_| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, "bad ice server url"))
}

fn insert_header(h: &mut HeaderMap, name: header::HeaderName, value: &str) {
    // Our own values (paths of hex ids, quoted hex) are always valid headers.
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

fn add_cors(h: &mut HeaderMap) {
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, PATCH, DELETE, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type, If-Match"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, ETag, Link"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_carry_candidates_and_credentials() {
        let f = parse_fragment(
            "a=ice-ufrag:abcd\r\na=ice-pwd:secretsecretsecret\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host\r\na=end-of-candidates\r\n",
        )
        .ok()
        .unwrap();
        assert_eq!(f.ufrag.as_deref(), Some("abcd"));
        assert_eq!(f.pwd.as_deref(), Some("secretsecretsecret"));
        assert_eq!(f.candidates.len(), 1);
        assert!(parse_fragment("a=candidate:nope").is_err());
        assert!(parse_fragment("hello").is_err());
    }

    #[test]
    fn reads_sdp_attributes_and_compares_tokens() {
        let sdp = "v=0\r\na=group:BUNDLE 0\r\na=ice-ufrag:Zx9\r\n";
        assert_eq!(sdp_attribute(sdp, "ice-ufrag"), Some("Zx9"));
        assert_eq!(sdp_attribute(sdp, "ice-pwd"), None);
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }
}
