//! The control plane's HTTP side: the bundled client, WebSocket signaling and
//! health endpoints, built with axum.
//!
//! Handlers never touch media state directly: they send [`Command`]s to the
//! worker that hosts the room and await the reply. Building a str0m `Rtc`
//! (key generation, ~1 ms) happens here on a blocking thread, not on a worker.
//!
//! [`Command`]: crate::worker::Command

pub mod admin;
mod assets;
mod directory;
mod session;
mod whip;
mod ws;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, patch, post};
use axum::Router;

pub use directory::Directory;
pub use whip::HttpSessions;

use crate::metrics::Metrics;
use crate::worker::WorkerHandle;

/// State shared by all handlers.
#[derive(Clone)]
pub struct AppState {
    pub workers: Arc<[WorkerHandle]>,
    pub directory: Arc<Directory>,
    /// The Prometheus registry and signaling counters.
    pub metrics: Arc<Metrics>,
    /// Live WHIP/WHEP sessions.
    pub http_sessions: Arc<HttpSessions>,
    /// Bearer token WHIP/WHEP requests must carry, if set.
    pub auth_token: Option<Arc<str>>,
    /// ICE server URLs advertised in WHIP/WHEP `Link` headers.
    pub ice_servers: Arc<[String]>,
}

/// The HTTP application.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(assets::routes())
        .route("/ws", get(ws::upgrade))
        .route("/healthz", get(healthz))
        .route("/readyz", get(admin::readyz))
        .route("/whip/{room}", post(whip::whip_post).options(whip::options))
        .route("/whep/{room}", post(whip::whep_post).options(whip::options))
        .route(
            "/whep/{room}/{participant}",
            post(whip::whep_post_follow).options(whip::options),
        )
        .route(
            "/whip/session/{id}",
            patch(whip::whip_patch)
                .delete(whip::whip_delete)
                .options(whip::options),
        )
        .route(
            "/whep/session/{id}",
            patch(whip::whep_patch)
                .delete(whip::whep_delete)
                .options(whip::options),
        )
        .layer(DefaultBodyLimit::max(whip::MAX_BODY_BYTES))
        .with_state(state)
}

/// A parser error as one readable line for clients: no newlines, no
/// internal details such as the parser's memory offsets.
pub(crate) fn one_line(error: &dyn std::fmt::Display) -> String {
    let text = error.to_string();
    let words: Vec<&str> = text
        .split_whitespace()
        .filter(|w| !w.starts_with("PointerOffset("))
        .collect();
    let mut line = words.join(" ").replace(" at ", " ");
    line.truncate(200);
    line
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn parser_errors_become_one_clean_line() {
        let raw = "SDP parse: Parse error at PointerOffset(0x7fa93c01c07f)\nUnexpected `h`\nExpected `v`\nsdp line";
        let line = one_line(&raw);
        assert!(!line.contains('\n') && !line.contains("0x7f"), "{line}");
        assert!(line.contains("Unexpected `h`"), "{line}");
    }
}
