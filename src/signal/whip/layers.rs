//! What every WHIP/WHEP route shares, as layers around the routes rather
//! than code in each handler: request and error counting, and CORS headers.
//! What a bearer token must grant depends on the route, so the handlers
//! check it.
//!
//! Order, outermost first: [`count`] sees every response, refusals
//! included; [`cors`] puts the headers on every response, errors included
//! (browsers hide a response without them). CORS preflights (`OPTIONS`) are
//! not counted.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;

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
}
