//! The ICE servers a client is given for its peer connections: the
//! `--ice-server` URLs as they are, and the `--turn-url`s with short-lived
//! credentials in coturn's REST-API scheme (`use-auth-secret` with
//! `static-auth-secret`, the IETF "TURN REST API" draft).
//!
//! The username is `expiry:identity` (expiry in Unix seconds), the password
//! the base64 HMAC-SHA1 of the username keyed with the secret shared with
//! the TURN server. The TURN server checks the HMAC itself and refuses a
//! username whose expiry has passed, so Cascade and coturn share nothing but
//! the secret, and credentials copied out of a page stop working on their
//! own. The identity is the participant's (its token's `sub`, else its
//! participant id), so the TURN server's logs name who relayed.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use base64::Engine as _;
use cascade_protocol::IceServer;

/// ICE servers for clients, with what mints TURN credentials.
#[derive(Clone, Default)]
pub struct IceServers {
    /// `--ice-server`: given as they are (STUN, or TURN with no credentials).
    plain: Vec<String>,
    turn: Option<Turn>,
}

#[derive(Clone)]
struct Turn {
    urls: Vec<String>,
    key: hmac::Key,
    ttl: Duration,
}

/// A TURN username and password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnCredentials {
    pub username: String,
    pub credential: String,
}

impl IceServers {
    /// `plain` URLs as they are; `turn_urls` with credentials from `secret`,
    /// valid for `ttl` (no TURN servers without a secret).
    pub fn new(
        plain: Vec<String>,
        turn_urls: Vec<String>,
        secret: Option<&str>,
        ttl: Duration,
    ) -> Self {
        let turn = secret.filter(|_| !turn_urls.is_empty()).map(|secret| Turn {
            urls: turn_urls,
            key: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes()),
            ttl,
        });
        IceServers { plain, turn }
    }

    /// Whether a client is given none.
    pub fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.turn.is_none()
    }

    /// What `identity` is given at `now`: one entry per plain URL, then the
    /// TURN URLs under one set of fresh credentials.
    pub fn for_identity(&self, identity: &str, now: SystemTime) -> Vec<IceServer> {
        let mut servers: Vec<IceServer> = self
            .plain
            .iter()
            .map(|url| IceServer {
                urls: vec![url.clone()],
                username: None,
                credential: None,
            })
            .collect();
        if let Some(turn) = &self.turn {
            let credentials = turn.credentials(identity, now);
            servers.push(IceServer {
                urls: turn.urls.clone(),
                username: Some(credentials.username),
                credential: Some(credentials.credential),
            });
        }
        servers
    }
}

impl Turn {
    fn credentials(&self, identity: &str, now: SystemTime) -> TurnCredentials {
        let expiry = now
            .checked_add(self.ttl)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let username = format!("{expiry}:{identity}");
        let tag = hmac::sign(&self.key, username.as_bytes());
        TurnCredentials {
            credential: base64::engine::general_purpose::STANDARD.encode(tag.as_ref()),
            username,
        }
    }
}

impl fmt::Debug for IceServers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret.
        f.debug_struct("IceServers")
            .field("plain", &self.plain)
            .field("turn_urls", &self.turn.as_ref().map(|t| &t.urls))
            .field("turn_ttl", &self.turn.as_ref().map(|t| t.ttl))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(unix: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(unix)
    }

    /// The vector was computed independently, with Python's `hmac` and
    /// `base64` modules, the way coturn's documentation shows it:
    /// `base64(hmac_sha1(secret, "1700003600:alice"))`.
    #[test]
    fn credentials_follow_coturns_rest_api_formula() {
        let servers = IceServers::new(
            vec!["stun:stun.example.org:3478".into()],
            vec![
                "turn:turn.example.org:3478?transport=udp".into(),
                "turns:turn.example.org:5349?transport=tcp".into(),
            ],
            Some("north-sea-secret"),
            Duration::from_secs(3600),
        );
        let given = servers.for_identity("alice", at(1_700_000_000));
        assert_eq!(given.len(), 2);
        assert_eq!(given[0].urls, ["stun:stun.example.org:3478"]);
        assert_eq!(given[0].username, None);
        assert_eq!(given[1].urls.len(), 2);
        assert_eq!(given[1].username.as_deref(), Some("1700003600:alice"));
        assert_eq!(
            given[1].credential.as_deref(),
            Some(PYTHON_VECTOR),
            "HMAC-SHA1 of the username under the secret, base64"
        );
    }

    const PYTHON_VECTOR: &str = "XNu2e1NVrQEGzUB75NhB3SrIHpE=";

    #[test]
    fn no_secret_no_turn_and_debug_hides_the_secret() {
        let servers = IceServers::new(
            Vec::new(),
            vec!["turn:t.example:3478".into()],
            None,
            Duration::from_secs(60),
        );
        assert!(servers.is_empty());
        let servers = IceServers::new(
            Vec::new(),
            vec!["turn:t.example:3478".into()],
            Some("very-secret-value"),
            Duration::from_secs(60),
        );
        assert!(!format!("{servers:?}").contains("very-secret-value"));
    }
}
