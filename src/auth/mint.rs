//! `cascade token create`: mints an access token with the server's own keys
//! and prints it with a join link for the bundled client.

use std::time::Duration;

use clap::{ArgAction, Args};

use super::keys::KeySet;
use super::token::{Claims, TokenError, VideoGrant};
use crate::media::{DisplayName, Identity, RoomName};

/// Longest lifetime a minted token may have.
const MAX_TTL: Duration = Duration::from_secs(366 * 24 * 3600);

/// Flags of `cascade token create`.
#[derive(Debug, Clone, Args)]
pub struct CreateToken {
    /// Room the token joins (or administers, with --room-admin).
    #[arg(long, required_unless_present = "room_admin")]
    pub room: Option<String>,
    /// The participant's identity (JWT `sub`), unique in a room.
    #[arg(long)]
    pub identity: String,
    /// Display name others see (else the client's own).
    #[arg(long)]
    pub name: Option<String>,
    /// Allow publishing audio and video.
    #[arg(long, action = ArgAction::Set, default_value_t = true)]
    pub can_publish: bool,
    /// Allow receiving others' media.
    #[arg(long, action = ArgAction::Set, default_value_t = true)]
    pub can_subscribe: bool,
    /// Allow sending data messages.
    #[arg(long, action = ArgAction::Set, default_value_t = true)]
    pub can_publish_data: bool,
    /// Grant the room service API (`roomAdmin`): for --room only, or for
    /// every room without --room. Such a token does not join.
    #[arg(long)]
    pub room_admin: bool,
    /// How long the token is valid, e.g. `6h`, `30m`, `7d`.
    #[arg(long, default_value = "6h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// Which API key signs (default: the first by name).
    #[arg(long = "key")]
    pub signing_key: Option<String>,
    /// Base URL of the server for the join link.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
}

/// Why no token was minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("no API keys: pass --api-key and --api-secret, or --keys-file")]
    NoKeys,
    #[error("no API key {0:?} in the keys")]
    NoSuchKey(String),
    #[error("--room: {0}")]
    Room(String),
    #[error("--identity: {0}")]
    Identity(String),
    #[error("--name: {0}")]
    Name(String),
    #[error("--ttl must be between 1 second and 366 days")]
    Ttl,
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// A minted token and where to use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Minted {
    pub token: String,
    /// The bundled client's link that joins with it (none for admin tokens).
    pub join_link: Option<String>,
}

impl CreateToken {
    pub fn mint(&self, keys: &KeySet) -> Result<Minted, MintError> {
        let (key, secret) = match &self.signing_key {
            Some(k) => (
                k.as_str(),
                keys.secret(k)
                    .ok_or_else(|| MintError::NoSuchKey(k.clone()))?,
            ),
            None => keys.first().ok_or(MintError::NoKeys)?,
        };
        let room = self
            .room
            .as_deref()
            .map(RoomName::parse)
            .transpose()
            .map_err(|e| MintError::Room(e.to_string()))?;
        Identity::parse(&self.identity).map_err(|e| MintError::Identity(e.to_string()))?;
        if let Some(name) = &self.name {
            DisplayName::parse(name).map_err(|e| MintError::Name(e.to_string()))?;
        }
        if self.ttl < Duration::from_secs(1) || self.ttl > MAX_TTL {
            return Err(MintError::Ttl);
        }
        let grant = VideoGrant {
            room: room.as_ref().map(|r| r.to_string()),
            room_join: !self.room_admin,
            can_publish: self.can_publish,
            can_subscribe: self.can_subscribe,
            can_publish_data: self.can_publish_data,
            room_admin: self.room_admin,
        };
        let mut claims = Claims::new(key, &self.identity, self.ttl, grant);
        claims.name = self.name.clone();
        let token = claims.sign(secret)?;
        let join_link = match (&room, self.room_admin) {
            (Some(room), false) => {
                let name = self.name.as_deref().unwrap_or(&self.identity);
                Some(format!(
                    "{}/?room={room}&name={}&token={token}",
                    self.url.trim_end_matches('/'),
                    percent_encode(name)
                ))
            }
            _ => None,
        };
        Ok(Minted { token, join_link })
    }
}

/// Encodes `text` for a URL query value.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::auth::token::verify;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        create: CreateToken,
    }

    fn create(args: &[&str]) -> CreateToken {
        let mut all = vec!["token-create"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap().create
    }

    #[test]
    fn a_minted_token_verifies_with_the_grants_asked_for() {
        let keys = KeySet::single("APIa", SECRET).unwrap();
        let args = create(&[
            "--room",
            "demo",
            "--identity",
            "bob",
            "--name",
            "Bob B",
            "--can-publish=false",
            "--ttl",
            "2h",
        ]);
        let minted = args.mint(&keys).unwrap();
        let claims = verify(&minted.token, &keys).unwrap();
        assert_eq!(claims.sub, "bob");
        assert_eq!(claims.name.as_deref(), Some("Bob B"));
        assert_eq!(claims.video.room.as_deref(), Some("demo"));
        assert!(claims.video.room_join && !claims.video.can_publish && claims.video.can_subscribe);
        assert_eq!(claims.exp - claims.nbf.unwrap(), 7200);
        let link = minted.join_link.unwrap();
        assert!(
            link.starts_with("http://127.0.0.1:8080/?room=demo&name=Bob%20B&token=ey"),
            "{link}"
        );
    }

    #[test]
    fn admin_tokens_grant_room_admin_and_no_join() {
        let keys = KeySet::single("APIa", SECRET).unwrap();
        let minted = create(&["--identity", "ops", "--room-admin"])
            .mint(&keys)
            .unwrap();
        let claims = verify(&minted.token, &keys).unwrap();
        assert!(claims.video.room_admin && !claims.video.room_join);
        assert_eq!(claims.video.room, None);
        assert_eq!(minted.join_link, None);
    }

    #[test]
    fn bad_requests_say_which_flag() {
        let keys = KeySet::single("APIa", SECRET).unwrap();
        let err = |args: &[&str]| create(args).mint(&keys).unwrap_err().to_string();
        assert!(err(&["--room", "..", "--identity", "a"]).starts_with("--room"));
        assert!(err(&["--room", "r", "--identity", " "]).starts_with("--identity"));
        assert!(err(&["--room", "r", "--identity", "a", "--ttl", "400d"]).starts_with("--ttl"));
        assert!(err(&["--room", "r", "--identity", "a", "--key", "nope"]).contains("nope"));
        assert!(matches!(
            create(&["--room", "r", "--identity", "a"]).mint(&KeySet::default()),
            Err(MintError::NoKeys)
        ));
    }
}
