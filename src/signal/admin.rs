//! Operator endpoints: Prometheus metrics, readiness and introspection.
//!
//! - `GET /metrics`: asks every worker to fold its counters into the registry
//!   (a [`Command::Snapshot`] round trip), then renders the registry, so a
//!   scrape sees counters and gauges as of that moment;
//! - `GET /readyz`: 200 when every worker answers in time, 503 otherwise
//!   (also while shutting down, when workers have stopped);
//! - `GET /admin/rooms`: rooms, participants and their tracks as JSON.
//!
//! These are served on the HTTP address, or on `--metrics-addr` when set
//! (except `/readyz` and `/healthz`, which are on both).

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::future::join_all;
use serde::Serialize;

use super::AppState;
use crate::media::views::RoomView;
use crate::metrics::CONTENT_TYPE;
use crate::worker::WorkerSnapshot;

/// How long a worker may take to answer before it counts as not ready.
const WORKER_REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// The operator routes, to merge into the HTTP app.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/admin/rooms", get(rooms))
        .with_state(state)
}

/// The operator routes plus health checks, for a separate `--metrics-addr`.
pub fn standalone_router(state: AppState) -> Router {
    Router::new()
        .route("/readyz", get(readyz))
        .route("/healthz", get(super::healthz))
        .with_state(state.clone())
        .merge(router(state))
}

/// `GET /metrics`: fold every worker's counters, then render the registry.
async fn metrics(State(state): State<AppState>) -> Response {
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
    let ready = !workers.is_empty() && workers.iter().all(|w| w.ready);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(Readiness { ready, workers })).into_response()
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

/// `GET /admin/rooms`: every room with its participants and tracks.
async fn rooms(State(state): State<AppState>) -> Response {
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
    list.rooms.sort_by(|a, b| a.room.name.cmp(&b.room.name));
    Json(list).into_response()
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
