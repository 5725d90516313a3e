//! Operator endpoints: Prometheus metrics, readiness, and the room service
//! API.
//!
//! - `GET /metrics`: asks every worker to fold its counters into the registry
//!   (a [`Command::Snapshot`] round trip), then renders the registry, so a
//!   scrape sees counters and gauges as of that moment;
//! - `GET /readyz`: 200 when every worker answers in time, 503 otherwise
//!   (also while draining, and while shutting down, when workers have
//!   stopped);
//! - `GET /admin/rooms`: rooms, participants and their tracks as JSON;
//! - `DELETE /admin/rooms/{room}`: close a room (everyone is removed);
//! - `DELETE /admin/rooms/{room}/participants/{id}`: remove a participant;
//! - `POST /admin/rooms/{room}/participants/{id}/tracks/{track}/mute`: mute
//!   one of its tracks (only the participant can unmute it);
//! - `POST /admin/drain`: start draining (see [`crate::drain`]); needs a
//!   token for all rooms.
//!
//! These are served on the HTTP address, or on `--metrics-addr` when set
//! (except `/readyz` and `/healthz`, which are on both). On the HTTP address
//! of a server with API keys they need `Authorization: Bearer <token>` with
//! the `roomAdmin` grant: a token for one room sees and manages that room
//! only, and `/metrics` needs a token for all rooms. `--metrics-addr` is
//! meant for an internal interface and asks for no token.

use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use futures_util::future::join_all;
use serde::Serialize;

use super::{bearer, error_response, refusal_status, AppState};
use crate::auth::AdminScope;
use crate::media::views::RoomView;
use crate::media::{LeaveReason, MuteError, ParticipantId, RoomName, TrackId};
use crate::metrics::CONTENT_TYPE;
use crate::worker::WorkerSnapshot;

/// How long a worker may take to answer before it counts as not ready.
const WORKER_REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// The operator routes for the public HTTP app: each request needs a
/// `roomAdmin` token when the server has API keys.
pub fn router(state: AppState) -> Router {
    operator_routes()
        .layer(from_fn_with_state(state.clone(), require_admin))
        .with_state(state)
}

/// The operator routes plus health checks, for a separate `--metrics-addr`:
/// no token, every room.
pub fn standalone_router(state: AppState) -> Router {
    operator_routes()
        .route("/readyz", get(readyz))
        .route("/healthz", get(super::healthz))
        .layer(Extension(AdminScope::All))
        .with_state(state)
}

fn operator_routes() -> Router<AppState> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/admin/rooms", get(rooms))
        .route("/admin/rooms/{room}", delete(close_room))
        .route(
            "/admin/rooms/{room}/participants/{participant}",
            delete(remove_participant),
        )
        .route(
            "/admin/rooms/{room}/participants/{participant}/tracks/{track}/mute",
            post(mute_track),
        )
        .route("/admin/drain", post(drain))
}

/// Checks the bearer token for the admin grant and hands its scope on.
async fn require_admin(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    match state.access.admin(bearer(request.headers())) {
        Ok(scope) => {
            request.extensions_mut().insert(scope);
            next.run(request).await
        }
        Err(refusal) => error_response(refusal_status(&refusal), &refusal.to_string()),
    }
}

/// `GET /metrics`: fold every worker's counters, then render the registry.
/// Counters span all rooms, so a token for one room does not read them.
async fn metrics(
    State(state): State<AppState>,
    Extension(scope): Extension<AdminScope>,
) -> Response {
    if scope != AdminScope::All {
        return error_response(
            StatusCode::FORBIDDEN,
            "metrics need an admin token for all rooms",
        );
    }
    snapshot_all(&state).await;
    let body = state.metrics.encode();
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}

/// One worker in the readiness answer.
#[derive(Debug, Serialize)]
struct WorkerStatus {
    index: usize,
    ready: bool,
    rooms: Option<usize>,
    participants: Option<usize>,
    queue_depth: usize,
}

#[derive(Debug, Serialize)]
struct Readiness {
    ready: bool,
    /// The server takes no new joins.
    draining: bool,
    workers: Vec<WorkerStatus>,
}

/// `GET /readyz`: ready when every media worker answers a snapshot request.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let snapshots = snapshot_all(&state).await;
    let workers: Vec<WorkerStatus> = state
        .workers
        .iter()
        .zip(&snapshots)
        .map(|(w, s)| WorkerStatus {
            index: w.index,
            ready: s.is_some(),
            rooms: s.as_ref().map(|s| s.rooms),
            participants: s.as_ref().map(|s| s.participants),
            queue_depth: state.worker(w.index).queue_depth(),
        })
        .collect();
    let draining = state.drain.is_draining();
    let ready = !draining && !workers.is_empty() && workers.iter().all(|w| w.ready);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            ready,
            draining,
            workers,
        }),
    )
        .into_response()
}

/// A room in the admin listing: the core's view plus where it lives.
#[derive(Debug, Serialize)]
struct HostedRoom {
    worker: usize,
    #[serde(flatten)]
    room: RoomView,
}

#[derive(Debug, Serialize)]
struct RoomList {
    rooms: Vec<HostedRoom>,
    /// Workers that did not answer in time (their rooms are missing).
    unavailable_workers: Vec<usize>,
}

/// `GET /admin/rooms`: every room (the token's one, if it is for one room)
/// with its participants and tracks.
async fn rooms(State(state): State<AppState>, Extension(scope): Extension<AdminScope>) -> Response {
    let answers =
        join_all((0..state.workers.len()).map(|i| state.worker(i).rooms(WORKER_REPLY_TIMEOUT)))
            .await;
    let mut list = RoomList {
        rooms: Vec::new(),
        unavailable_workers: Vec::new(),
    };
    for (w, answer) in state.workers.iter().zip(answers) {
        match answer {
            Some(rooms) => list.rooms.extend(rooms.into_iter().map(|room| HostedRoom {
                worker: w.index,
                room,
            })),
            None => list.unavailable_workers.push(w.index),
        }
    }
    list.rooms
        .retain(|r| RoomName::parse(&r.room.name).is_ok_and(|name| scope.covers(&name)));
    list.rooms.sort_by(|a, b| a.room.name.cmp(&b.room.name));
    Json(list).into_response()
}

/// An admin request that cannot be served: status and one line.
struct AdminError(StatusCode, &'static str);

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        error_response(self.0, self.1)
    }
}

const WORKER_SILENT: AdminError = AdminError(
    StatusCode::SERVICE_UNAVAILABLE,
    "the media worker did not answer",
);
const NO_PARTICIPANT: AdminError =
    AdminError(StatusCode::NOT_FOUND, "no such participant in this room");
const NO_TRACK: AdminError = AdminError(
    StatusCode::NOT_FOUND,
    "the participant publishes no such track",
);

/// The room of an admin request, if the token covers it and a worker hosts it.
fn hosted_room(
    state: &AppState,
    scope: &AdminScope,
    room: &str,
) -> Result<(RoomName, usize), AdminError> {
    let room = RoomName::parse(room)
        .map_err(|_| AdminError(StatusCode::BAD_REQUEST, "invalid room name"))?;
    if !scope.covers(&room) {
        return Err(AdminError(
            StatusCode::FORBIDDEN,
            "the token is for another room",
        ));
    }
    let worker = state
        .directory
        .worker_of(&room)
        .ok_or(AdminError(StatusCode::NOT_FOUND, "no such room"))?;
    Ok((room, worker))
}

/// [`hosted_room`], plus the participant id parsed from the path (the
/// worker says whether it is there).
fn hosted_participant(
    state: &AppState,
    scope: &AdminScope,
    room: &str,
    participant: &str,
) -> Result<(RoomName, usize, ParticipantId), AdminError> {
    let (room, worker) = hosted_room(state, scope, room)?;
    let id = participant
        .parse::<ParticipantId>()
        .map_err(|()| NO_PARTICIPANT)?;
    Ok((room, worker, id))
}

#[derive(Debug, Serialize)]
struct Removed {
    removed: usize,
}

/// `DELETE /admin/rooms/{room}`: removes everyone (reason `room_closed`).
async fn close_room(
    State(state): State<AppState>,
    Extension(scope): Extension<AdminScope>,
    Path(room): Path<String>,
) -> Result<Json<Removed>, AdminError> {
    let (room, worker) = hosted_room(&state, &scope, &room)?;
    tracing::info!(%room, "room closed by an operator");
    let removed = state
        .worker(worker)
        .close_room(room, WORKER_REPLY_TIMEOUT)
        .await
        .ok_or(WORKER_SILENT)?;
    Ok(Json(Removed { removed }))
}

/// `DELETE /admin/rooms/{room}/participants/{id}`: removes one participant
/// (reason `removed`).
async fn remove_participant(
    State(state): State<AppState>,
    Extension(scope): Extension<AdminScope>,
    Path((room, participant)): Path<(String, String)>,
) -> Result<Json<Removed>, AdminError> {
    let (room, worker, id) = hosted_participant(&state, &scope, &room, &participant)?;
    let present = state
        .worker(worker)
        .remove(room.clone(), id, LeaveReason::Removed, WORKER_REPLY_TIMEOUT)
        .await
        .ok_or(WORKER_SILENT)?;
    if !present {
        return Err(NO_PARTICIPANT);
    }
    tracing::info!(%room, participant = %id, "participant removed by an operator");
    Ok(Json(Removed { removed: 1 }))
}

#[derive(Debug, Serialize)]
struct Muted {
    muted: bool,
}

/// `POST /admin/rooms/{room}/participants/{id}/tracks/{track}/mute`: stops
/// forwarding the track and shows it muted to the room and its publisher.
/// There is no remote unmute: the participant unmutes itself.
async fn mute_track(
    State(state): State<AppState>,
    Extension(scope): Extension<AdminScope>,
    Path((room, participant, track)): Path<(String, String, String)>,
) -> Result<Json<Muted>, AdminError> {
    let (room, worker, id) = hosted_participant(&state, &scope, &room, &participant)?;
    let track = track.parse::<TrackId>().map_err(|()| NO_TRACK)?;
    let muted = state
        .worker(worker)
        .mute_by_operator(room.clone(), id, track, WORKER_REPLY_TIMEOUT)
        .await
        .ok_or(WORKER_SILENT)?;
    match muted {
        Ok(()) => {
            tracing::info!(%room, participant = %id, %track, "track muted by an operator");
            Ok(Json(Muted { muted: true }))
        }
        Err(MuteError::NoSuchTrack(_) | MuteError::UnknownTrack(_)) => Err(NO_TRACK),
        Err(MuteError::NotJoined) => Err(NO_PARTICIPANT),
    }
}

#[derive(Debug, Serialize)]
struct Draining {
    draining: bool,
    /// Rooms still in progress when the request came.
    rooms: usize,
}

/// `POST /admin/drain`: starts the drain (again: changes nothing) and
/// answers `202 Accepted`; the server exits once its rooms are empty or the
/// drain timeout passed. It stops every room, so it needs a token for all.
async fn drain(State(state): State<AppState>, Extension(scope): Extension<AdminScope>) -> Response {
    if scope != AdminScope::All {
        return error_response(
            StatusCode::FORBIDDEN,
            "a drain needs an admin token for all rooms",
        );
    }
    let rooms = state.directory.room_count();
    if state.drain.start() {
        tracing::info!(rooms, "drain requested over the admin API");
    }
    let body = Draining {
        draining: true,
        rooms,
    };
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

/// Asks every worker for a snapshot (which folds its metrics) and records
/// which ones answered.
async fn snapshot_all(state: &AppState) -> Vec<Option<WorkerSnapshot>> {
    let snapshots =
        join_all((0..state.workers.len()).map(|i| state.worker(i).snapshot(WORKER_REPLY_TIMEOUT)))
            .await;
    for (i, s) in snapshots.iter().enumerate() {
        let depth = state.worker(i).queue_depth();
        state.metrics.set_worker_state(i, s.is_some(), depth);
    }
    snapshots
}
