//! Who may do what: access tokens checked once where a client enters the
//! server (WebSocket `join`, WHIP/WHEP `Authorization`, the admin API), and
//! turned into [`Permissions`] the rest of the server enforces.
//!
//! - [`token`]: the JWT claims (LiveKit's video grant) and their checks;
//! - [`keys`]: API keys and secrets, from flags or a keys file;
//! - [`mint`]: `cascade token create`;
//! - [`Access`]: the policy. With keys, every join needs a token for its
//!   room; without, the server is open (dev mode), which `Config` allows only
//!   while every listener is on loopback or `--insecure-open` is given.

pub mod keys;
pub mod mint;
pub mod token;

use crate::media::{Identity, RoomName};
pub use keys::{KeyError, KeySet};
pub use token::{Claims, TokenError, VideoGrant};

/// The access policy of a server.
#[derive(Debug, Clone)]
pub enum Access {
    /// No keys: anyone may join any room (dev mode).
    Open,
    /// Tokens signed by one of these keys are required.
    Tokens(KeySet),
}

/// What a client intends, which decides the grants it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// The bundled client: publishes and subscribes as its grants allow.
    Meet,
    /// A WHIP publisher: needs `canPublish`.
    Publish,
    /// A WHEP viewer: needs `canSubscribe`.
    View,
}

/// What an admitted client may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    /// The token's identity; `None` in open mode.
    pub identity: Option<Identity>,
    /// The token's display name, if it gives one.
    pub name: Option<String>,
    pub publish: bool,
    pub subscribe: bool,
    pub publish_data: bool,
}

impl Permissions {
    /// Everything, for open mode.
    pub fn open() -> Self {
        Permissions {
            identity: None,
            name: None,
            publish: true,
            subscribe: true,
            publish_data: true,
        }
    }
}

/// Which rooms an admin token may manage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminScope {
    All,
    Room(RoomName),
}

impl AdminScope {
    pub fn covers(&self, room: &RoomName) -> bool {
        match self {
            AdminScope::All => true,
            AdminScope::Room(r) => r == room,
        }
    }
}

/// Why a client was turned away.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No token, or one that does not verify.
    #[error("{0}")]
    Unauthorized(String),
    /// A valid token without the grant the request needs.
    #[error("{0}")]
    Forbidden(String),
}

impl From<TokenError> for Refusal {
    fn from(e: TokenError) -> Self {
        Refusal::Unauthorized(e.to_string())
    }
}

impl Access {
    pub fn is_open(&self) -> bool {
        matches!(self, Access::Open)
    }

    /// Checks `token` for joining `room` with `intent`.
    pub fn join(
        &self,
        token: Option<&str>,
        room: &RoomName,
        intent: Intent,
    ) -> Result<Permissions, Refusal> {
        let Access::Tokens(keys) = self else {
            return Ok(Permissions::open());
        };
        let claims = verified(token, keys)?;
        let grant = &claims.video;
        if !grant.room_join {
            return Err(forbidden("the token lacks the roomJoin grant"));
        }
        match &grant.room {
            Some(r) if r == room.as_str() => {}
            Some(r) => {
                return Err(forbidden(format!(
                    "the token is for room {r:?}, not {:?}",
                    room.as_str()
                )))
            }
            None => return Err(forbidden("the token grants no room")),
        }
        match intent {
            Intent::Publish if !grant.can_publish => {
                return Err(forbidden("the token lacks the canPublish grant"))
            }
            Intent::View if !grant.can_subscribe => {
                return Err(forbidden("the token lacks the canSubscribe grant"))
            }
            _ => {}
        }
        let identity = Identity::parse(&claims.sub)
            .map_err(|e| Refusal::Unauthorized(format!("the token's identity: {e}")))?;
        Ok(Permissions {
            identity: Some(identity),
            name: claims.name.clone(),
            publish: grant.can_publish,
            subscribe: grant.can_subscribe,
            publish_data: grant.can_publish_data,
        })
    }

    /// The identity of a valid `token`, whatever it grants (`None` in open
    /// mode): for requests on a session its owner made.
    pub fn identity(&self, token: Option<&str>) -> Result<Option<Identity>, Refusal> {
        let Access::Tokens(keys) = self else {
            return Ok(None);
        };
        let claims = verified(token, keys)?;
        Identity::parse(&claims.sub)
            .map(Some)
            .map_err(|e| Refusal::Unauthorized(format!("the token's identity: {e}")))
    }

    /// Checks `token` for the admin API.
    pub fn admin(&self, token: Option<&str>) -> Result<AdminScope, Refusal> {
        let Access::Tokens(keys) = self else {
            return Ok(AdminScope::All);
        };
        let claims = verified(token, keys)?;
        if !claims.video.room_admin {
            return Err(forbidden("the token lacks the roomAdmin grant"));
        }
        match &claims.video.room {
            None => Ok(AdminScope::All),
            Some(r) => RoomName::parse(r)
                .map(AdminScope::Room)
                .map_err(|e| forbidden(format!("the token's room: {e}"))),
        }
    }
}

fn verified(token: Option<&str>, keys: &KeySet) -> Result<Claims, Refusal> {
    let token = token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Refusal::Unauthorized("an access token is required".into()))?;
    Ok(token::verify(token, keys)?)
}

fn forbidden(message: impl Into<String>) -> Refusal {
    Refusal::Forbidden(message.into())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn access() -> Access {
        Access::Tokens(KeySet::single("APIa", SECRET).unwrap())
    }

    fn token(grant: VideoGrant) -> String {
        Claims::new("APIa", "alice", Duration::from_secs(60), grant)
            .sign(SECRET)
            .unwrap()
    }

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap()
    }

    fn joiner(room: &str) -> VideoGrant {
        VideoGrant {
            room: Some(room.into()),
            room_join: true,
            ..VideoGrant::default()
        }
    }

    #[test]
    fn a_join_token_admits_its_identity_into_its_room_only() {
        let t = token(joiner("demo"));
        let p = access()
            .join(Some(&t), &room("demo"), Intent::Meet)
            .unwrap();
        assert_eq!(p.identity.as_ref().map(Identity::as_str), Some("alice"));
        assert!(p.publish && p.subscribe && p.publish_data);
        assert!(matches!(
            access().join(Some(&t), &room("other"), Intent::Meet),
            Err(Refusal::Forbidden(m)) if m.contains("\"demo\"")
        ));
    }

    #[test]
    fn missing_tokens_and_grants_are_refused_with_what_is_missing() {
        assert!(matches!(
            access().join(None, &room("demo"), Intent::Meet),
            Err(Refusal::Unauthorized(_))
        ));
        let no_join = token(VideoGrant {
            room_join: false,
            ..joiner("demo")
        });
        assert!(matches!(
            access().join(Some(&no_join), &room("demo"), Intent::Meet),
            Err(Refusal::Forbidden(m)) if m.contains("roomJoin")
        ));
        let viewer = token(VideoGrant {
            can_publish: false,
            ..joiner("demo")
        });
        assert!(matches!(
            access().join(Some(&viewer), &room("demo"), Intent::Publish),
            Err(Refusal::Forbidden(m)) if m.contains("canPublish")
        ));
        let p = access()
            .join(Some(&viewer), &room("demo"), Intent::View)
            .unwrap();
        assert!(!p.publish && p.subscribe);
        let deaf = token(VideoGrant {
            can_subscribe: false,
            ..joiner("demo")
        });
        assert!(matches!(
            access().join(Some(&deaf), &room("demo"), Intent::View),
            Err(Refusal::Forbidden(m)) if m.contains("canSubscribe")
        ));
        let roomless = token(VideoGrant {
            room: None,
            ..joiner("demo")
        });
        assert!(matches!(
            access().join(Some(&roomless), &room("demo"), Intent::Meet),
            Err(Refusal::Forbidden(_))
        ));
    }

    #[test]
    fn admin_needs_room_admin_and_is_scoped_by_room() {
        let admin = token(VideoGrant {
            room_admin: true,
            ..VideoGrant::default()
        });
        assert_eq!(access().admin(Some(&admin)), Ok(AdminScope::All));
        let room_admin = token(VideoGrant {
            room_admin: true,
            ..joiner("demo")
        });
        let scope = access().admin(Some(&room_admin)).unwrap();
        assert!(scope.covers(&room("demo")) && !scope.covers(&room("other")));
        assert!(matches!(
            access().admin(Some(&token(joiner("demo")))),
            Err(Refusal::Forbidden(m)) if m.contains("roomAdmin")
        ));
        assert!(matches!(
            access().admin(None),
            Err(Refusal::Unauthorized(_))
        ));
    }

    #[test]
    fn open_access_admits_everyone_without_identity() {
        let p = Access::Open
            .join(None, &room("demo"), Intent::Publish)
            .unwrap();
        assert_eq!(p, Permissions::open());
        assert_eq!(Access::Open.admin(None), Ok(AdminScope::All));
    }
}
