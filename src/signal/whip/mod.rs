//! WHIP (RFC 9725) ingest and WHEP egress over HTTP, into the same rooms as
//! the WebSocket API. See `docs/WHIP-WHEP.md` for the contract.
//!
//! A WHIP or WHEP session is a participant without a WebSocket: it joins with
//! its offer in one worker command, so an offer the server rejects leaves no
//! trace in the room. Its events are drained by a watcher (`session`), which
//! also cleans the session up however it ends. Counting, CORS and the bearer
//! token are layers around these routes (`layers`); trickle and ICE restart
//! bodies are parsed in `sdpfrag`.

mod layers;
mod sdpfrag;
mod session;

use axum::body::Bytes;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{from_fn_with_state, map_response};
use axum::response::{IntoResponse, Response};
use axum::routing::{self, post};
use axum::Router;
use cascade_protocol::IceServer;
use serde::Deserialize;
use str0m::change::SdpOffer;
use str0m::{Candidate, IceCreds};
use tokio::sync::mpsc;

pub use session::HttpSessions;

use super::worker_client::WorkerError;
use super::{bearer, error_response, one_line, refusal_status, with_retry_after, AppState};
use crate::auth::Refusal;
use crate::drain::{self, DRAIN_RETRY};
use crate::media::{
    CandidateError, DisplayName, JoinError, JoinRequest, MediaGrants, ParticipantId,
    ParticipantMode, PeerRole, RoomName,
};
use crate::signal::limits::Limited;
use sdpfrag::{sdp_attribute, Fragment};
use session::{new_etag, new_session_id, HttpSession, SessionKind};

/// Largest SDP or sdpfrag body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

const SDP: &str = "application/sdp";
const SDP_FRAG: &str = "application/trickle-ice-sdpfrag";

/// The WHIP/WHEP routes with their layers.
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/whip/{room}", post(whip_post).options(options))
        .route("/whep/{room}", post(whep_post).options(options))
        .route(
            "/whep/{room}/{participant}",
            post(whep_post_follow).options(options),
        )
        .route(
            "/whip/session/{id}",
            routing::patch(whip_patch)
                .delete(whip_delete)
                .options(options),
        )
        .route(
            "/whep/session/{id}",
            routing::patch(whep_patch)
                .delete(whep_delete)
                .options(options),
        )
        .layer(map_response(layers::cors))
        .layer(from_fn_with_state(state, layers::count))
}

/// An error response: status and a one-line explanation; a `429` also says
/// when to retry.
pub struct HttpError(StatusCode, String, Option<Duration>);

impl HttpError {
    fn limited(limited: Limited) -> Self {
        HttpError(
            StatusCode::TOO_MANY_REQUESTS,
            limited.to_string(),
            Some(limited.retry_after),
        )
    }

    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        HttpError(status, message.into(), None)
    }
}

impl From<Limited> for HttpError {
    fn from(limited: Limited) -> Self {
        HttpError::limited(limited)
    }
}

impl From<Refusal> for HttpError {
    fn from(refusal: Refusal) -> Self {
        HttpError::new(refusal_status(&refusal), refusal.to_string())
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let response = error_response(self.0, &self.1);
        match self.2 {
            Some(after) => with_retry_after(response, after),
            None => response,
        }
    }
}

impl<E: std::fmt::Display> From<WorkerError<E>> for HttpError {
    fn from(e: WorkerError<E>) -> Self {
        let status = match e {
            WorkerError::Busy | WorkerError::Stopped => StatusCode::SERVICE_UNAVAILABLE,
            WorkerError::NoConnection | WorkerError::Rejected(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        HttpError::new(status, e.to_string())
    }
}

type HttpResult = Result<Response, HttpError>;

#[derive(Debug, Deserialize)]
pub struct NameQuery {
    name: Option<String>,
}

/// `POST /whip/{room}`
async fn whip_post(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(room): Path<String>,
    Query(query): Query<NameQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult {
    let mode = ParticipantMode::PublishOnly;
    let post = Post {
        peer,
        query,
        headers: &headers,
        body: &body,
    };
    create(&state, SessionKind::Whip, &room, mode, post).await
}

/// `POST /whep/{room}`
async fn whep_post(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(room): Path<String>,
    Query(query): Query<NameQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult {
    let mode = ParticipantMode::Viewer { follow: None };
    let post = Post {
        peer,
        query,
        headers: &headers,
        body: &body,
    };
    create(&state, SessionKind::Whep, &room, mode, post).await
}

/// `POST /whep/{room}/{participant}`
async fn whep_post_follow(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((room, participant)): Path<(String, String)>,
    Query(query): Query<NameQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult {
    let follow = participant
        .parse::<ParticipantId>()
        .map_err(|()| HttpError::new(StatusCode::NOT_FOUND, "no such participant in this room"))?;
    let mode = ParticipantMode::Viewer {
        follow: Some(follow),
    };
    let post = Post {
        peer,
        query,
        headers: &headers,
        body: &body,
    };
    create(&state, SessionKind::Whep, &room, mode, post).await
}

/// What a WHIP/WHEP `POST` brought.
struct Post<'a> {
    peer: SocketAddr,
    query: NameQuery,
    headers: &'a HeaderMap,
    body: &'a [u8],
}

/// Joins the room with the offer and answers `201 Created` with the session.
async fn create(
    state: &AppState,
    kind: SessionKind,
    room: &str,
    mode: ParticipantMode,
    post: Post<'_>,
) -> HttpResult {
    let Post {
        peer,
        query,
        headers,
        body,
    } = post;
    if state.drain.is_draining() {
        let refusal = drain::REFUSAL.to_string();
        return Err(HttpError(
            StatusCode::SERVICE_UNAVAILABLE,
            refusal,
            Some(DRAIN_RETRY),
        ));
    }
    let room = RoomName::parse(room)
        .map_err(|e| HttpError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let permissions = state.access.join(bearer(headers), &room, kind.intent())?;
    let slot = state.limits.open_session(peer.ip())?;
    state.limits.admit_join(peer.ip(), Instant::now())?;
    require_content_type(headers, SDP)?;
    let name = permissions
        .name
        .as_deref()
        .or(query.name.as_deref())
        .unwrap_or(kind.default_name());
    let name = DisplayName::parse(name)
        .map_err(|_| HttpError::new(StatusCode::BAD_REQUEST, "invalid display name"))?;
    let text = std::str::from_utf8(body)
        .map_err(|_| HttpError::new(StatusCode::BAD_REQUEST, "the offer is not UTF-8"))?;
    let offer = SdpOffer::from_sdp_string(text).map_err(|e| {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            format!("cannot parse offer: {}", one_line(&e)),
        )
    })?;
    let remote_ufrag = sdp_attribute(text, "ice-ufrag").map(str::to_string);

    let lease = state.directory.lease(&room).map_err(Limited::from)?;
    let worker = lease.worker();
    let id = ParticipantId::random();
    let (outbox, events) = mpsc::channel(64);
    let request = JoinRequest {
        id,
        room: room.clone(),
        name,
        mode,
        identity: permissions.identity.clone(),
        grants: MediaGrants {
            publish: permissions.publish,
            subscribe: permissions.subscribe,
            publish_data: permissions.publish_data,
        },
    };
    let answer = state
        .worker(worker)
        .join_with_offer(request, offer, outbox, lease)
        .await
        .map_err(join_error)?;

    let session_id = new_session_id();
    let etag = new_etag();
    let turn_identity = permissions
        .identity
        .as_ref()
        .map_or_else(|| id.to_string(), |i| i.to_string());
    state.http_sessions.insert(
        session_id.clone(),
        HttpSession {
            kind,
            participant: id,
            worker,
            remote_ufrag,
            etag: etag.clone(),
            identity: permissions.identity,
        },
    );
    let counted = state.metrics.open_session(kind.metrics());
    session::watch(state.clone(), session_id.clone(), events, (counted, slot));
    tracing::info!(participant = %id, %room, session = %session_id, kind = kind.path(), "http session started");

    let mut response = (StatusCode::CREATED, answer.to_sdp_string()).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SDP));
    insert_header(
        h,
        header::LOCATION,
        &format!("/{}/session/{session_id}", kind.path()),
    );
    insert_header(h, header::ETAG, &etag);
    for server in state
        .ice_servers
        .for_identity(&turn_identity, SystemTime::now())
    {
        for url in &server.urls {
            h.append(header::LINK, link_header(url, &server)?);
        }
    }
    Ok(response)
}

fn join_error(e: WorkerError<JoinError>) -> HttpError {
    match e {
        WorkerError::Rejected(JoinError::NoSuchParticipant) => HttpError::new(
            StatusCode::NOT_FOUND,
            JoinError::NoSuchParticipant.to_string(),
        ),
        WorkerError::Rejected(e @ (JoinError::InvalidSdp(_) | JoinError::NoUsableMedia(_))) => {
            HttpError::new(StatusCode::BAD_REQUEST, e.to_string())
        }
        WorkerError::Rejected(JoinError::RoomFull) => {
            HttpError::limited(Limited::capacity("the room is full"))
        }
        WorkerError::Rejected(e @ JoinError::Forbidden(_)) => {
            HttpError::new(StatusCode::FORBIDDEN, e.to_string())
        }
        other => other.into(),
    }
}

/// `PATCH /whip/session/{id}`
async fn whip_patch(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult {
    patch(&state, SessionKind::Whip, session_id, headers, body).await
}

/// `PATCH /whep/session/{id}`
async fn whep_patch(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult {
    patch(&state, SessionKind::Whep, session_id, headers, body).await
}

/// Trickle or ICE restart.
async fn patch(
    state: &AppState,
    kind: SessionKind,
    session_id: String,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult {
    let (participant, worker, current_ufrag, etag) = {
        let s = lookup(state, kind, &session_id, &headers)?;
        (
            s.participant,
            s.worker,
            s.remote_ufrag.clone(),
            s.etag.clone(),
        )
    };
    require_content_type(&headers, SDP_FRAG)?;
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
    let fragment = Fragment::parse(text)
        .map_err(|e| HttpError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let role = kind.role();

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
        let local = state
            .worker(worker)
            .restart_ice(participant, role, remote)
            .await
            .map_err(conflict)?;
        add_candidates(state, worker, participant, role, fragment.candidates).await?;
        let etag = new_etag();
        if let Some(mut s) = state.http_sessions.get_mut(&session_id) {
            s.remote_ufrag = Some(ufrag.clone());
            s.etag = etag.clone();
        }
        let handle = &state.workers[worker];
        let mut body = format!(
            "a=ice-lite\r\na=ice-ufrag:{}\r\na=ice-pwd:{}\r\n",
            local.ufrag, local.pass
        );
        let udp = handle.candidate_addr;
        body += &format!(
            "a=candidate:1 1 udp 2130706431 {} {} typ host\r\n",
            udp.ip(),
            udp.port()
        );
        if let Some(tcp) = handle.tcp_candidate_addr {
            // Type preference 90, as str0m ranks TCP host candidates.
            body += &format!(
                "a=candidate:2 1 tcp 1526726399 {} {} typ host tcptype passive\r\n",
                tcp.ip(),
                tcp.port()
            );
        }
        body += "a=end-of-candidates\r\n";
        let mut response = (StatusCode::OK, body).into_response();
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SDP_FRAG));
        insert_header(h, header::ETAG, &etag);
        return Ok(response);
    }
    add_candidates(state, worker, participant, role, fragment.candidates).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn add_candidates(
    state: &AppState,
    worker: usize,
    id: ParticipantId,
    role: PeerRole,
    candidates: Vec<Candidate>,
) -> Result<(), HttpError> {
    for candidate in candidates {
        state
            .worker(worker)
            .add_candidate(id, role, candidate)
            .await
            .map_err(conflict)?;
    }
    Ok(())
}

/// A trickle or restart for a connection that cannot take it (yet).
fn conflict(e: WorkerError<CandidateError>) -> HttpError {
    match e {
        WorkerError::Rejected(e @ CandidateError::TooMany(_)) => {
            HttpError::new(StatusCode::BAD_REQUEST, e.to_string())
        }
        WorkerError::Rejected(e) => HttpError::new(StatusCode::CONFLICT, e.to_string()),
        other => other.into(),
    }
}

/// `DELETE /whip/session/{id}`
async fn whip_delete(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    headers: HeaderMap,
) -> HttpResult {
    delete(&state, SessionKind::Whip, session_id, &headers).await
}

/// `DELETE /whep/session/{id}`
async fn whep_delete(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    headers: HeaderMap,
) -> HttpResult {
    delete(&state, SessionKind::Whep, session_id, &headers).await
}

/// Ends a session: the participant leaves its room.
async fn delete(
    state: &AppState,
    kind: SessionKind,
    session_id: String,
    headers: &HeaderMap,
) -> HttpResult {
    let (participant, worker) = {
        let s = lookup(state, kind, &session_id, headers)?;
        (s.participant, s.worker)
    };
    // Forget it now so later requests get 404.
    state.http_sessions.remove(&session_id);
    state.worker(worker).leave(participant).await;
    Ok(StatusCode::OK.into_response())
}

/// `OPTIONS` on any WHIP/WHEP path: CORS preflight.
async fn options() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    h.insert("accept-post", HeaderValue::from_static(SDP));
    response
}

/// The session behind a session URL. With API keys configured the request
/// must also carry a token of the identity that created the session: the
/// URL alone, which may show up in logs, does not control the session.
fn lookup<'a>(
    state: &'a AppState,
    kind: SessionKind,
    id: &str,
    headers: &HeaderMap,
) -> Result<dashmap::mapref::one::Ref<'a, String, HttpSession>, HttpError> {
    let session = state
        .http_sessions
        .get(id)
        .filter(|s| s.kind == kind)
        .ok_or_else(|| HttpError::new(StatusCode::NOT_FOUND, "no such session"))?;
    if let Some(owner) = &session.identity {
        let presented = state.access.identity(bearer(headers))?;
        if presented.as_ref() != Some(owner) {
            return Err(
                Refusal::Forbidden("the token is not the session's identity".into()).into(),
            );
        }
    }
    Ok(session)
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

/// An RFC 9725 `Link: <url>; rel="ice-server"`, with the TURN username and
/// credential when `server` has them (quoted strings: an identity's `"` and
/// `\` are escaped; one that is not a valid header value, such as
/// non-ASCII, goes out without credentials rather than failing the session).
fn link_header(url: &str, server: &IceServer) -> Result<HeaderValue, HttpError> {
    let plain = format!("<{url}>; rel=\"ice-server\"");
    if let (Some(username), Some(credential)) = (&server.username, &server.credential) {
        let quoted = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let with = format!(
            "{plain}; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
            quoted(username),
            quoted(credential)
        );
        if let Ok(value) = HeaderValue::from_str(&with) {
            return Ok(value);
        }
    }
    HeaderValue::from_str(&plain)
        .map_err(|_| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, "bad ice server url"))
}

fn insert_header(h: &mut HeaderMap, name: header::HeaderName, value: &str) {
    // Our own values (paths of hex ids, quoted hex) are always valid headers.
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}
