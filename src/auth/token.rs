//! Access tokens: JWTs signed with HS256 by an API key's secret, whose claims
//! follow LiveKit's video grant where they apply, so operators can mint them
//! with the tools they already have.
//!
//! ```json
//! { "iss": "<api key>", "sub": "<identity>", "name": "Alice",
//!   "nbf": 1767225600, "exp": 1767247200,
//!   "video": { "room": "demo", "roomJoin": true, "canPublish": true,
//!              "canSubscribe": true, "canPublishData": true,
//!              "roomAdmin": false } }
//! ```
//!
//! `iss` names the key whose secret signed the token. `canPublish`,
//! `canSubscribe` and `canPublishData` default to true when absent, as in
//! LiveKit; `roomJoin` and `roomAdmin` default to false. Only HS256 is
//! accepted: `alg: none`, other algorithms and unknown keys are refused.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::keys::KeySet;

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 10;

/// Longest token accepted, in bytes: a few hundred is typical.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The API key that signed the token.
    pub iss: String,
    /// The participant's identity.
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Not valid before (seconds since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Expiry (seconds since the Unix epoch); required.
    pub exp: u64,
    #[serde(default)]
    pub video: VideoGrant,
}

/// What the token allows, in LiveKit's names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoGrant {
    /// The room the grant is for; `None`: no room (admin tokens for all rooms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    #[serde(default)]
    pub room_join: bool,
    #[serde(default = "yes")]
    pub can_publish: bool,
    #[serde(default = "yes")]
    pub can_subscribe: bool,
    #[serde(default = "yes")]
    pub can_publish_data: bool,
    #[serde(default)]
    pub room_admin: bool,
}

fn yes() -> bool {
    true
}

impl Default for VideoGrant {
    fn default() -> Self {
        VideoGrant {
            room: None,
            room_join: false,
            can_publish: true,
            can_subscribe: true,
            can_publish_data: true,
            room_admin: false,
        }
    }
}

/// Why a token was not accepted. The text is safe to show the client: it
/// never contains the token or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token is longer than {MAX_TOKEN_BYTES} bytes")]
    TooLong,
    #[error("the token must be signed with HS256")]
    Algorithm,
    #[error("the token is signed with an unknown API key")]
    UnknownKey,
    #[error("the token's signature is invalid")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token names no identity (sub)")]
    NoIdentity,
    #[error("a token cannot be signed with an empty secret")]
    NoSecret,
}

impl Claims {
    /// Claims for `identity`, valid from now for `ttl`.
    pub fn new(api_key: &str, identity: &str, ttl: Duration, grant: VideoGrant) -> Self {
        let now = unix_now();
        Claims {
            iss: api_key.to_string(),
            sub: identity.to_string(),
            name: None,
            nbf: Some(now),
            exp: now + ttl.as_secs(),
            video: grant,
        }
    }

    /// Signs the claims with `secret` (HS256); fails only for an empty
    /// secret.
    pub fn sign(&self, secret: &str) -> Result<String, TokenError> {
        let key = EncodingKey::from_secret(secret.as_bytes()).map_err(|_| TokenError::NoSecret)?;
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), self, &key)
            .map_err(|_| TokenError::NoSecret)
    }
}

/// Checks a token's algorithm, key, signature and validity window and
/// returns its claims.
pub fn verify(token: &str, keys: &KeySet) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLong);
    }
    // `alg: none` and unknown algorithms fail to parse here.
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if header.alg != Algorithm::HS256 {
        return Err(TokenError::Algorithm);
    }
    let issuer = unverified_issuer(token)?;
    let secret = keys.secret(&issuer).ok_or(TokenError::UnknownKey)?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = LEEWAY_SECS;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "sub", "iss"]);
    let key = DecodingKey::from_secret(secret.as_bytes()).map_err(|_| TokenError::UnknownKey)?;
    let data =
        jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => TokenError::Signature,
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::ImmatureSignature => TokenError::NotYetValid,
            ErrorKind::InvalidAlgorithm => TokenError::Algorithm,
            _ => TokenError::Malformed,
        })?;
    if data.claims.sub.trim().is_empty() {
        return Err(TokenError::NoIdentity);
    }
    Ok(data.claims)
}

/// The `iss` claim, read before the signature is checked, only to pick the
/// secret that checks it.
fn unverified_issuer(token: &str) -> Result<String, TokenError> {
    #[derive(Deserialize)]
    struct Issuer {
        iss: String,
    }
    let claims = jsonwebtoken::dangerous::insecure_decode::<Issuer>(token)
        .map_err(|_| TokenError::Malformed)?;
    Ok(claims.claims.iss)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    /// Base64url without padding, for hand-made tokens.
    fn encode_segment(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn keys() -> KeySet {
        KeySet::parse("APIkey1: secret-number-one-0123456789abcdef\nAPIkey2: secret-number-two-0123456789abcdef\n")
            .unwrap()
    }

    fn grant(room: &str) -> VideoGrant {
        VideoGrant {
            room: Some(room.into()),
            room_join: true,
            ..VideoGrant::default()
        }
    }

    fn claims(ttl_secs: u64) -> Claims {
        Claims::new(
            "APIkey1",
            "alice",
            Duration::from_secs(ttl_secs),
            grant("demo"),
        )
    }

    #[test]
    fn a_signed_token_verifies_with_its_claims() {
        let c = claims(600);
        let token = c.sign("secret-number-one-0123456789abcdef").unwrap();
        assert_eq!(verify(&token, &keys()), Ok(c));
        // Either key of the set works for its own tokens.
        let other = Claims::new("APIkey2", "bob", Duration::from_secs(60), grant("x"));
        let token = other.sign("secret-number-two-0123456789abcdef").unwrap();
        assert_eq!(verify(&token, &keys()).map(|c| c.sub), Ok("bob".into()));
    }

    #[test]
    fn expired_and_not_yet_valid_tokens_are_refused() {
        let mut c = claims(600);
        c.exp = unix_now() - 3600;
        c.nbf = Some(unix_now() - 7200);
        assert_eq!(
            verify(
                &c.sign("secret-number-one-0123456789abcdef").unwrap(),
                &keys()
            ),
            Err(TokenError::Expired)
        );
        let mut c = claims(7200);
        c.nbf = Some(unix_now() + 3600);
        assert_eq!(
            verify(
                &c.sign("secret-number-one-0123456789abcdef").unwrap(),
                &keys()
            ),
            Err(TokenError::NotYetValid)
        );
    }

    #[test]
    fn a_wrong_secret_or_an_unknown_key_is_refused() {
        let token = claims(600).sign("not-the-secret-0123456789").unwrap();
        assert_eq!(verify(&token, &keys()), Err(TokenError::Signature));
        let stranger = Claims::new("APIkey9", "eve", Duration::from_secs(60), grant("demo"));
        let token = stranger.sign("secret-number-one-0123456789abcdef").unwrap();
        assert_eq!(verify(&token, &keys()), Err(TokenError::UnknownKey));
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let body = serde_json::to_vec(&claims(600)).unwrap();
        let none = format!(
            "{}.{}.",
            encode_segment(br#"{"alg":"none","typ":"JWT"}"#),
            encode_segment(&body)
        );
        assert_eq!(verify(&none, &keys()), Err(TokenError::Malformed));
        // A valid HS256 signature under a header that claims HS512.
        let signed = claims(600)
            .sign("secret-number-one-0123456789abcdef")
            .unwrap();
        let signature = signed.rsplit('.').next().unwrap();
        let hs512 = format!(
            "{}.{}.{signature}",
            encode_segment(br#"{"alg":"HS512","typ":"JWT"}"#),
            encode_segment(&body)
        );
        assert_eq!(verify(&hs512, &keys()), Err(TokenError::Algorithm));
    }

    #[test]
    fn tampered_claims_break_the_signature() {
        let token = claims(600)
            .sign("secret-number-one-0123456789abcdef")
            .unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let mut forged = claims(600);
        forged.video.room_admin = true;
        let body = encode_segment(&serde_json::to_vec(&forged).unwrap());
        let token = format!("{}.{body}.{}", parts[0], parts[2]);
        assert_eq!(verify(&token, &keys()), Err(TokenError::Signature));
    }

    #[test]
    fn garbage_and_oversize_tokens_are_refused() {
        for junk in ["", "a.b.c", "....", "eyJ.eyJ.", "not a token"] {
            assert_eq!(
                verify(junk, &keys()),
                Err(TokenError::Malformed),
                "{junk:?}"
            );
        }
        assert_eq!(
            verify(&"a".repeat(MAX_TOKEN_BYTES + 1), &keys()),
            Err(TokenError::TooLong)
        );
    }

    #[test]
    fn grants_default_as_in_livekit() {
        let g: VideoGrant = serde_json::from_str(r#"{"room":"r"}"#).unwrap();
        assert!(!g.room_join && !g.room_admin);
        assert!(g.can_publish && g.can_subscribe && g.can_publish_data);
        let g: VideoGrant =
            serde_json::from_str(r#"{"roomJoin":true,"canPublish":false}"#).unwrap();
        assert!(g.room_join && !g.can_publish && g.can_subscribe);
    }

    #[test]
    fn a_token_without_identity_is_refused() {
        let c = Claims::new("APIkey1", " ", Duration::from_secs(60), grant("demo"));
        assert_eq!(
            verify(
                &c.sign("secret-number-one-0123456789abcdef").unwrap(),
                &keys()
            ),
            Err(TokenError::NoIdentity)
        );
    }
}
