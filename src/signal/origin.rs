//! Which web pages may open a signaling WebSocket: the `Origin` check.
//!
//! A browser sends the page's origin with every WebSocket upgrade, and any
//! page the user visits may try one (cross-site WebSocket hijacking: a
//! hostile page joining rooms of an open server on the user's network).
//! Cascade accepts an upgrade with no `Origin` (not a browser: bots, SDKs),
//! one whose origin is the server itself (its `Host`: the bundled client),
//! and the origins listed with `--allowed-origin` (an app on another site
//! that embeds calls); `*` allows any. WHIP/WHEP are meant for other sites
//! and authenticate with a bearer token, so they are not checked here.

use axum::http::{header, HeaderMap};

/// The origins allowed beside the server's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// Only the server's own origin.
    #[default]
    SameOrigin,
    /// The server's own and these (`scheme://host[:port]`, lower case, no
    /// trailing slash).
    Listed(Vec<String>),
    /// Any origin (`--allowed-origin '*'`).
    Any,
}

/// Why an `--allowed-origin` value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("--allowed-origin {0:?} must be `*` or scheme://host[:port] (no path), e.g. https://app.example.org")]
pub struct OriginError(pub String);

impl AllowedOrigins {
    /// From the flag's values.
    pub fn parse(values: &[String]) -> Result<Self, OriginError> {
        if values.iter().any(|v| v == "*") {
            return Ok(AllowedOrigins::Any);
        }
        if values.is_empty() {
            return Ok(AllowedOrigins::SameOrigin);
        }
        let mut listed = Vec::with_capacity(values.len());
        for value in values {
            let origin = value.trim_end_matches('/').to_ascii_lowercase();
            let valid = origin.split_once("://").is_some_and(|(scheme, rest)| {
                !scheme.is_empty()
                    && scheme
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'+')
                    && !rest.is_empty()
                    && !rest.contains(['/', '?', '#', ' ', '@'])
            });
            if !valid {
                return Err(OriginError(value.clone()));
            }
            listed.push(origin);
        }
        Ok(AllowedOrigins::Listed(listed))
    }

    /// Whether an upgrade with these headers may proceed.
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return true; // not a browser
        };
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let origin = origin.to_ascii_lowercase();
        match self {
            AllowedOrigins::Any => true,
            AllowedOrigins::Listed(listed) if listed.contains(&origin) => true,
            AllowedOrigins::SameOrigin | AllowedOrigins::Listed(_) => same_origin(
                &origin,
                headers.get(header::HOST).and_then(|h| h.to_str().ok()),
            ),
        }
    }
}

/// Whether `origin` (lower case) names the host the request was sent to.
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host else {
        return false;
    };
    let host = host.to_ascii_lowercase();
    match origin.split_once("://") {
        Some(("http" | "https", authority)) => {
            authority == host || strip_default_port(authority) == strip_default_port(&host)
        }
        _ => false,
    }
}

fn strip_default_port(authority: &str) -> &str {
    authority
        .strip_suffix(":80")
        .or_else(|| authority.strip_suffix(":443"))
        .unwrap_or(authority)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    #[test]
    fn the_servers_own_pages_and_non_browsers_are_admitted() {
        let same = AllowedOrigins::SameOrigin;
        assert!(same.admits(&headers(None, "meet.example.org")));
        assert!(same.admits(&headers(
            Some("https://meet.example.org"),
            "meet.example.org"
        )));
        assert!(same.admits(&headers(Some("http://127.0.0.1:8080"), "127.0.0.1:8080")));
        assert!(same.admits(&headers(
            Some("HTTPS://Meet.Example.org"),
            "meet.example.org:443"
        )));
    }

    #[test]
    fn other_sites_are_refused_unless_listed() {
        let same = AllowedOrigins::SameOrigin;
        for origin in [
            "https://evil.example",
            "http://127.0.0.1:9999",
            "null",
            "https://meet.example.org.evil.example",
        ] {
            assert!(
                !same.admits(&headers(Some(origin), "meet.example.org")),
                "{origin}"
            );
        }
        let listed = AllowedOrigins::parse(&["https://App.example/".into()]).unwrap();
        assert!(listed.admits(&headers(Some("https://app.example"), "meet.example.org")));
        assert!(listed.admits(&headers(
            Some("https://meet.example.org"),
            "meet.example.org"
        )));
        assert!(!listed.admits(&headers(Some("https://evil.example"), "meet.example.org")));
        let any = AllowedOrigins::parse(&["*".into()]).unwrap();
        assert!(any.admits(&headers(Some("https://evil.example"), "meet.example.org")));
    }

    #[test]
    fn flag_values_must_be_origins() {
        assert_eq!(AllowedOrigins::parse(&[]), Ok(AllowedOrigins::SameOrigin));
        for bad in [
            "app.example",
            "https://app.example/path",
            "https://",
            "://x",
        ] {
            assert!(AllowedOrigins::parse(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
