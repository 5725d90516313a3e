//! What every WHIP/WHEP route shares, as layers around the routes rather
//! than code in each handler: request and error counting, CORS headers,
//! and the bearer token check.
//!
//! Order, outermost first: [`count`] sees every response, refusals
//! included; [`cors`] puts the headers on every response, errors included
//! (browsers hide a response without them); [`authorize`] refuses before a
//! handler runs. CORS preflights (`OPTIONS`) are neither counted nor
//! authorized.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::HttpError;
use crate::signal::AppState;

/// Counts each request by kind (`whip`, `whep_patch`, ...) and each error
/// response by status (`http_401`, ...).
pub async fn count(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let kind = request_kind(request.method(), request.uri().path());
    let response = next.run(request).await;
    if let Some(kind) = kind {
        state.metrics.count_request(kind);
        let status = response.status();
        if status.is_client_error() || status.is_server_error() {
            state
                .metrics
                .count_error(&format!("http_{}", status.as_u16()));
        }
    }
    response
}

/// Refuses requests without the configured bearer token (when one is set).
pub async fn authorize(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() == Method::OPTIONS {
        return next.run(request).await;
    }
    if let Some(token) = &state.auth_token {
        if !bearer_matches(request.headers(), token) {
            return HttpError::unauthorized("missing or wrong bearer token").into_response();
        }
    }
    next.run(request).await
}

/// Adds the CORS headers WHIP/WHEP clients in browsers need.
pub async fn cors(mut response: Response) -> Response {
    let h = response.headers_mut();
    let headers = [
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        (
            header::ACCESS_CONTROL_ALLOW_METHODS,
            "POST, PATCH, DELETE, OPTIONS",
        ),
        (
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "Authorization, Content-Type, If-Match",
        ),
        (
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            "Location, ETag, Link",
        ),
    ];
    for (name, value) in headers {
        h.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The request-count label of a WHIP/WHEP request; `None` for preflights.
fn request_kind(method: &Method, path: &str) -> Option<&'static str> {
    let whip = path.starts_with("/whip/");
    let kind = match *method {
        Method::POST if whip => "whip",
        Method::POST => "whep",
        Method::PATCH if whip => "whip_patch",
        Method::PATCH => "whep_patch",
        Method::DELETE if whip => "whip_delete",
        Method::DELETE => "whep_delete",
        _ => return None,
    };
    Some(kind)
}

fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|presented| constant_time_eq(presented.as_bytes(), token.as_bytes()))
}

/// Compares without an early exit, so response time says nothing about
/// how much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_labelled_by_protocol_and_method() {
        assert_eq!(request_kind(&Method::POST, "/whip/room"), Some("whip"));
        assert_eq!(
            request_kind(&Method::PATCH, "/whep/session/ab"),
            Some("whep_patch")
        );
        assert_eq!(request_kind(&Method::OPTIONS, "/whip/room"), None);
    }

    #[test]
    fn tokens_compare_in_full() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }
}
