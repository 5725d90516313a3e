//! The control plane's HTTP side: the bundled client, WebSocket signaling,
//! WHIP/WHEP and health endpoints, built with axum.
//!
//! Every client kind reads the same: validate the request once into the
//! core's types (`RoomName`, `DisplayName`, SDP), route the room through the
//! [`Directory`], talk to its worker through one [`WorkerClient`], and turn
//! the core's domain events into that client's protocol (`protocol` for the
//! WebSocket, `whip` for HTTP). Handlers never touch media state directly.
//!
//! - `assets`: the bundled client's files, from one table;
//! - `session`, `ws`: the bundled client's WebSocket protocol;
//! - `whip`: WHIP/WHEP, with its layers (counting, CORS, bearer token);
//! - [`admin`]: metrics, readiness, the room service API;
//! - [`limits`]: per-address session and join-rate limits;
//! - [`listen`]: the accept loop with its connection cap and header timeout;
//!   `linger`: the lingering close its connections end with;
//! - [`origin`]: which sites' pages may open the signaling WebSocket;
//! - [`worker_client`]: commands to a worker and its one error type;
//! - [`protocol`]: domain events to `cascade_protocol` messages.

pub mod admin;
mod assets;
pub mod ice_servers;
pub mod limits;
mod linger;
pub mod listen;
pub mod origin;
pub mod protocol;
mod session;
pub mod tls;
mod whip;
pub mod worker_client;
mod ws;

use std::sync::Arc;

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, map_response, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub use whip::HttpSessions;
pub use worker_client::{WorkerClient, WorkerError};

use crate::auth::{Access, Refusal};
use crate::config::Timeouts;
use crate::drain::Drain;
use crate::metrics::Metrics;
use crate::worker::{Directory, WorkerHandle};
use ice_servers::IceServers;
use limits::Limits;
use origin::AllowedOrigins;

/// State shared by all handlers.
#[derive(Clone)]
pub struct AppState {
    pub workers: Arc<[WorkerHandle]>,
    pub directory: Arc<Directory>,
    /// The Prometheus registry and signaling counters.
    pub metrics: Arc<Metrics>,
    /// Live WHIP/WHEP sessions.
    pub http_sessions: Arc<HttpSessions>,
    /// Who may join, publish, subscribe and administer.
    pub access: Arc<Access>,
    /// Per-address session and join-rate limits.
    pub limits: Arc<Limits>,
    pub timeouts: Timeouts,
    /// ICE servers (and TURN credentials) for clients: in `joined` and in
    /// WHIP/WHEP `Link` headers.
    pub ice_servers: Arc<IceServers>,
    /// Set once the server drains: no new joins.
    pub drain: Arc<Drain>,
    /// Which other sites' pages may open the signaling WebSocket.
    pub allowed_origins: Arc<AllowedOrigins>,
}

impl AppState {
    /// The client for worker `index` (an index the directory handed out).
    pub fn worker(&self, index: usize) -> WorkerClient<'_> {
        WorkerClient::new(&self.workers[index])
    }
}

/// The HTTP application.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(assets::routes())
        .route("/ws", get(ws::upgrade))
        .route("/healthz", get(healthz))
        .route("/readyz", get(admin::readyz))
        .merge(whip::routes(state.clone()))
        .fallback(no_such_endpoint)
        .layer(map_response(plain_errors))
        .layer(DefaultBodyLimit::max(whip::MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            within_deadline,
        ))
        .with_state(state)
}

/// Answers `408` to a request not done within `--request-timeout-secs`
/// (its body included; a WebSocket's upgrade answers at once, the socket
/// itself is not a request): a client that stalls its body cannot hold a
/// connection and a handler forever.
pub(crate) async fn within_deadline(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(state.timeouts.request, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error_response(
            StatusCode::REQUEST_TIMEOUT,
            "the request took too long (a stalled body?)",
        ),
    }
}

/// The token of an `Authorization: Bearer <token>` header, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The HTTP status of a refused token: 401 (with `WWW-Authenticate`) or 403.
pub(crate) fn refusal_status(refusal: &Refusal) -> StatusCode {
    match refusal {
        Refusal::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        Refusal::Forbidden(_) => StatusCode::FORBIDDEN,
    }
}

/// A one-line plain-text error response; 401s say `WWW-Authenticate: Bearer`.
pub(crate) fn error_response(status: StatusCode, message: &str) -> Response {
    let mut response = (status, format!("{message}\n")).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// `response` with a `Retry-After` of `after` (whole seconds, at least 1).
pub(crate) fn with_retry_after(mut response: Response, after: Duration) -> Response {
    let seconds = after.as_secs().max(1).to_string();
    if let Ok(v) = HeaderValue::from_str(&seconds) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
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
    // At most 200 bytes, cut on a character boundary (the text may quote
    // the client's non-ASCII input).
    let cut = (0..=line.len().min(200))
        .rev()
        .find(|&i| line.is_char_boundary(i))
        .unwrap_or(0);
    line.truncate(cut);
    line
}

/// `404` for a path no route serves, as one line like every other error.
async fn no_such_endpoint() -> Response {
    error_response(StatusCode::NOT_FOUND, "no such endpoint")
}

/// Gives the framework's own `405` and `413` (which have an empty or
/// framework-worded body) Cascade's one-line text, keeping their headers
/// (`Allow`, CORS).
async fn plain_errors(response: Response) -> Response {
    let message = match response.status() {
        StatusCode::METHOD_NOT_ALLOWED => "this endpoint does not take that method".to_string(),
        StatusCode::PAYLOAD_TOO_LARGE => format!(
            "the body is larger than {} KiB",
            whip::MAX_BODY_BYTES / 1024
        ),
        _ => return response,
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Response::from_parts(parts, format!("{message}\n").into())
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_errors_become_one_clean_line() {
        let raw = "SDP parse: Parse error at PointerOffset(0x7fa93c01c07f)\nUnexpected `h`\nExpected `v`\nsdp line";
        let line = one_line(&raw);
        assert!(!line.contains('\n') && !line.contains("0x7f"), "{line}");
        assert!(line.contains("Unexpected `h`"), "{line}");
    }

    #[test]
    fn long_lines_are_cut_on_a_character_boundary() {
        for pad in 0..4 {
            let text = format!("{}{}", "x".repeat(pad), "é".repeat(150));
            let line = one_line(&text);
            assert!(line.len() <= 200 && line.len() >= 198, "{}", line.len());
            assert!(text.starts_with(&line));
        }
    }

    #[test]
    fn the_bearer_token_comes_from_the_authorization_header() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc.def"),
        );
        assert_eq!(bearer(&h), Some("abc.def"));
    }
}
