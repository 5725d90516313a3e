//! Access tokens for tests: one API key, and tokens minted with it the way
//! an operator's backend would.

use std::time::Duration;

use cascade::auth::{Access, Claims, KeySet, VideoGrant};
use cascade::config::Config;

pub const API_KEY: &str = "APItest";
pub const API_SECRET: &str = "test-secret-0123456789abcdef0123456789";

/// Makes `config` require tokens signed with [`API_KEY`].
pub fn require_tokens(config: &mut Config) {
    config.access = Access::Tokens(KeySet::single(API_KEY, API_SECRET).expect("test key is valid"));
}

/// A token for `identity` with `grant`, valid for ten minutes.
pub fn token(identity: &str, grant: VideoGrant) -> String {
    Claims::new(API_KEY, identity, Duration::from_secs(600), grant)
        .sign(API_SECRET)
        .expect("signing with a secret works")
}

/// A grant to join `room` with everything allowed.
pub fn join_grant(room: &str) -> VideoGrant {
    VideoGrant {
        room: Some(room.into()),
        room_join: true,
        ..VideoGrant::default()
    }
}

/// A token to join `room` as `identity`.
pub fn join_token(room: &str, identity: &str) -> String {
    token(identity, join_grant(room))
}

/// An admin token for every room.
pub fn admin_token() -> String {
    token(
        "operator",
        VideoGrant {
            room_admin: true,
            ..VideoGrant::default()
        },
    )
}
