//! Access tokens (`cascade::auth`): junk is never accepted, a tampered token
//! never verifies while its original does, and a valid token admits to its
//! own room with its own grants only.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use cascade::auth::token::{verify, MAX_TOKEN_BYTES};
use cascade::auth::{Access, AdminScope, Claims, Intent, KeySet, Refusal, TokenError, VideoGrant};
use cascade::media::RoomName;
use proptest::prelude::*;

use crate::config;

const KEY: &str = "APIhostile";
const SECRET: &str = "hostile-secret-0123456789abcdef0123456789";
const OTHER_KEY: &str = "APIother";
const OTHER_SECRET: &str = "other-secret-0123456789abcdef0123456789ab";

fn keys() -> KeySet {
    KeySet::parse(&format!("{KEY}: {SECRET}\n{OTHER_KEY}: {OTHER_SECRET}\n"))
        .expect("test keys are valid")
}

fn room_name() -> impl Strategy<Value = String> {
    "[a-z0-9_-]{1,24}"
}

fn grant() -> impl Strategy<Value = VideoGrant> {
    (room_name(), any::<[bool; 5]>()).prop_map(|(room, b)| VideoGrant {
        room: Some(room),
        room_join: b[0],
        can_publish: b[1],
        can_subscribe: b[2],
        can_publish_data: b[3],
        room_admin: b[4],
    })
}

fn claims() -> impl Strategy<Value = Claims> {
    (
        "[A-Za-z0-9][A-Za-z0-9 _.@-]{0,40}",
        proptest::option::of("[A-Za-z][A-Za-z ]{0,20}"),
        60..86_400u64,
        grant(),
    )
        .prop_map(|(identity, name, ttl, grant)| {
            let mut claims = Claims::new(KEY, &identity, Duration::from_secs(ttl), grant);
            claims.name = name;
            claims
        })
}

/// Strings shaped like tokens: three base64url-ish segments, often with a
/// real-looking `eyJ` JSON start, sometimes long.
fn token_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_-]{0,80}\\.[A-Za-z0-9_-]{0,300}\\.[A-Za-z0-9_-]{0,80}",
        "eyJ[A-Za-z0-9_-]{0,60}\\.eyJ[A-Za-z0-9_-]{0,300}\\.[A-Za-z0-9_-]{43}",
        "[A-Za-z0-9_.=+/-]{0,6000}",
        (any::<Vec<u8>>(), any::<Vec<u8>>(), any::<Vec<u8>>())
            .prop_map(|(h, p, s)| { format!("{}.{}.{}", b64(&h), b64(&p), b64(&s)) }),
    ]
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What an attacker does to a token it holds.
#[derive(Debug, Clone)]
enum Tamper {
    /// XORs the character at an index with a mask.
    Flip(usize, u8),
    /// Flips one bit of one segment's decoded bytes and re-encodes it.
    FlipDecoded(usize, usize, u8),
    SwapSegments(usize, usize),
    DropSegment(usize),
    DuplicateSegment(usize),
    ReplaceSegment(usize, Vec<u8>),
    Append(String),
    Truncate(usize),
    /// Replaces the header with one naming another algorithm or key.
    Header(&'static str),
    /// Grants the payload more (admin, another room) and keeps the signature.
    Escalate(String),
    /// Signs the same claims with the other key's secret.
    WrongSecret,
}

fn tamper() -> impl Strategy<Value = Tamper> {
    let header = prop_oneof![
        Just(r#"{"alg":"none","typ":"JWT"}"#),
        Just(r#"{"alg":"HS512","typ":"JWT"}"#),
        Just(r#"{"alg":"RS256","typ":"JWT"}"#),
        Just(r#"{"alg":"ES256","typ":"JWT"}"#),
        Just(r#"{"alg":"HS256","typ":"JWT","kid":"../../etc/passwd"}"#),
        Just(r#"{"alg":"HS256","typ":"JWT","crit":["exp"]}"#),
        Just(r#"{"alg":"hs256","typ":"JWT"}"#),
        Just(r#"{"typ":"JWT"}"#),
    ];
    prop_oneof![
        (any::<usize>(), 1..128u8).prop_map(|(i, m)| Tamper::Flip(i, m)),
        (0..3usize, any::<usize>(), 0..8u8).prop_map(|(s, i, b)| Tamper::FlipDecoded(s, i, b)),
        (0..3usize, 0..3usize).prop_map(|(a, b)| Tamper::SwapSegments(a, b)),
        (0..3usize).prop_map(Tamper::DropSegment),
        (0..3usize).prop_map(Tamper::DuplicateSegment),
        (0..3usize, any::<Vec<u8>>()).prop_map(|(s, b)| Tamper::ReplaceSegment(s, b)),
        prop_oneof![
            Just(".".to_string()),
            "[ -~]{1,20}",
            "\\.[A-Za-z0-9_-]{1,50}"
        ]
        .prop_map(Tamper::Append),
        any::<usize>().prop_map(Tamper::Truncate),
        header.prop_map(Tamper::Header),
        room_name().prop_map(Tamper::Escalate),
        Just(Tamper::WrongSecret),
    ]
}

/// Applies `tamper` to `token` (which earlier tampering may have left with
/// fewer or more segments, or none that decodes; indices wrap around).
fn apply(token: &str, claims: &Claims, tamper: &Tamper) -> String {
    let mut segments: Vec<String> = token.split('.').map(str::to_string).collect();
    let n = segments.len(); // `split` yields at least one
    match tamper {
        Tamper::Flip(i, mask) if !token.is_empty() => {
            let mut bytes = token.as_bytes().to_vec();
            let at = i % bytes.len();
            bytes[at] ^= mask;
            return String::from_utf8_lossy(&bytes).into_owned();
        }
        Tamper::FlipDecoded(s, i, bit) => {
            if let Ok(mut decoded) = URL_SAFE_NO_PAD.decode(&segments[s % n]) {
                if !decoded.is_empty() {
                    let at = i % decoded.len();
                    decoded[at] ^= 1 << bit;
                }
                segments[s % n] = b64(&decoded);
            }
        }
        Tamper::SwapSegments(a, b) => segments.swap(a % n, b % n),
        Tamper::DropSegment(s) => {
            segments.remove(s % n);
        }
        Tamper::DuplicateSegment(s) => {
            let copy = segments[s % n].clone();
            segments.insert(s % n, copy);
        }
        Tamper::ReplaceSegment(s, bytes) => segments[s % n] = b64(bytes),
        Tamper::Append(junk) => return format!("{token}{junk}"),
        // Tokens stay ASCII under these tampers, so any cut is a char boundary.
        Tamper::Truncate(at) if !token.is_empty() => return token[..at % token.len()].to_string(),
        Tamper::Header(header) => segments[0] = b64(header.as_bytes()),
        Tamper::Escalate(room) => {
            let mut forged = claims.clone();
            forged.video.room = Some(room.clone());
            forged.video.room_admin = true;
            forged.video.room_join = true;
            let body = serde_json::to_vec(&forged).expect("claims serialize");
            segments[1 % n] = b64(&body);
        }
        Tamper::WrongSecret => return claims.sign(OTHER_SECRET).expect("signing works"),
        Tamper::Flip(..) | Tamper::Truncate(_) => {}
    }
    segments.join(".")
}

fn room(name: &str) -> RoomName {
    RoomName::parse(name).expect("generated room names are valid")
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn junk_is_never_accepted_as_a_token(junk in token_like(), target in room_name()) {
        let keys = keys();
        let verified = verify(&junk, &keys);
        prop_assert!(verified.is_err(), "accepted {junk:?}: {verified:?}");
        if junk.len() > MAX_TOKEN_BYTES {
            prop_assert_eq!(verified, Err(TokenError::TooLong));
        }
        let access = Access::Tokens(keys);
        for intent in [Intent::Meet, Intent::Publish, Intent::View] {
            let refused = access.join(Some(&junk), &room(&target), intent);
            prop_assert!(matches!(refused, Err(Refusal::Unauthorized(_))), "{refused:?}");
        }
        prop_assert!(access.admin(Some(&junk)).is_err());
        prop_assert!(access.identity(Some(&junk)).is_err());
    }

    /// Only the token as signed verifies; whatever an attacker changes in it
    /// is refused.
    #[test]
    fn a_tampered_token_never_verifies_while_the_original_does(
        claims in claims(),
        tampers in proptest::collection::vec(tamper(), 1..4),
    ) {
        let keys = keys();
        let token = claims.sign(SECRET).expect("signing works");
        prop_assert_eq!(verify(&token, &keys), Ok(claims.clone()));
        let mut forged = token.clone();
        for t in &tampers {
            forged = apply(&forged, &claims, t);
        }
        prop_assume!(forged != token);
        let verified = verify(&forged, &keys);
        prop_assert!(verified.is_err(), "{forged:?} verified as {verified:?}");
        let access = Access::Tokens(keys);
        let target = room(claims.video.room.as_deref().expect("grants name a room"));
        prop_assert!(access.join(Some(&forged), &target, Intent::Meet).is_err());
        prop_assert!(access.admin(Some(&forged)).is_err());
    }

    /// A valid token admits to its own room with exactly its grants, and to
    /// no other room.
    #[test]
    fn a_valid_token_admits_to_its_room_only(claims in claims(), other in room_name()) {
        let access = Access::Tokens(keys());
        let token = claims.sign(SECRET).expect("signing works");
        let grant = &claims.video;
        let own = room(grant.room.as_deref().expect("grants name a room"));
        prop_assume!(other != own.as_str());
        for intent in [Intent::Meet, Intent::Publish, Intent::View] {
            let elsewhere = access.join(Some(&token), &room(&other), intent);
            prop_assert!(matches!(elsewhere, Err(Refusal::Forbidden(_))), "{elsewhere:?}");
            let needed = match intent {
                Intent::Meet => true,
                Intent::Publish => grant.can_publish,
                Intent::View => grant.can_subscribe,
            };
            match access.join(Some(&token), &own, intent) {
                Ok(p) => {
                    prop_assert!(grant.room_join && needed);
                    prop_assert_eq!(p.identity.as_ref().map(|i| i.as_str()), Some(claims.sub.as_str()));
                    prop_assert_eq!(&p.name, &claims.name);
                    prop_assert_eq!(
                        (p.publish, p.subscribe, p.publish_data),
                        (grant.can_publish, grant.can_subscribe, grant.can_publish_data)
                    );
                }
                Err(refused) => {
                    prop_assert!(!(grant.room_join && needed), "refused: {refused}");
                    prop_assert!(matches!(refused, Refusal::Forbidden(_)));
                }
            }
        }
        match access.admin(Some(&token)) {
            Ok(scope) => {
                prop_assert!(grant.room_admin);
                prop_assert_eq!(&scope, &AdminScope::Room(own.clone()));
                prop_assert!(!scope.covers(&room(&other)));
            }
            Err(refused) => {
                prop_assert!(!grant.room_admin);
                prop_assert!(matches!(refused, Refusal::Forbidden(_)));
            }
        }
    }
}
