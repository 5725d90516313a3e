//! The control plane's HTTP side: the bundled client, WebSocket signaling and
//! health endpoints, built with axum.
//!
//! Handlers never touch media state directly: they send [`Command`]s to the
//! worker that hosts the room and await the reply. Building a str0m `Rtc`
//! (key generation, ~1 ms) happens here on a blocking thread, not on a worker.
//!
//! [`Command`]: crate::worker::Command

mod directory;
mod session;
mod ws;

use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

pub use directory::Directory;

use crate::worker::WorkerHandle;

/// State shared by all handlers.
#[derive(Clone)]
pub struct AppState {
    pub workers: Arc<[WorkerHandle]>,
    pub directory: Arc<Directory>,
}

/// The HTTP application.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", get(index_html))
        .route("/app.js", get(app_js))
        .route("/style.css", get(style_css))
        .route("/ws", get(ws::upgrade))
        .route("/healthz", get(healthz))
        .with_state(state)
}

async fn index_html() -> impl IntoResponse {
    static_file(
        "text/html; charset=utf-8",
        include_str!("../../client/index.html"),
    )
}

async fn app_js() -> impl IntoResponse {
    static_file(
        "text/javascript; charset=utf-8",
        include_str!("../../client/app.js"),
    )
}

async fn style_css() -> impl IntoResponse {
    static_file(
        "text/css; charset=utf-8",
        include_str!("../../client/style.css"),
    )
}

fn static_file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}
