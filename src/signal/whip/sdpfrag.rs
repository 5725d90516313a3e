//! Trickle ICE and ICE restarts over HTTP: the `application/trickle-ice-sdpfrag`
//! bodies of WHIP/WHEP PATCH requests (RFC 8840), and reading single
//! attributes out of an SDP.

use str0m::Candidate;

use crate::signal::one_line;

/// What a trickle-ice-sdpfrag body carries.
#[derive(Debug, Default)]
pub struct Fragment {
    pub ufrag: Option<String>,
    pub pwd: Option<String>,
    pub candidates: Vec<Candidate>,
}

/// Why a fragment was refused, as one line for the client.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FragmentError(String);

impl Fragment {
    pub fn parse(text: &str) -> Result<Fragment, FragmentError> {
        let mut fragment = Fragment::default();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(v) = line.strip_prefix("a=ice-ufrag:") {
                fragment.ufrag = Some(v.to_string());
            } else if let Some(v) = line.strip_prefix("a=ice-pwd:") {
                fragment.pwd = Some(v.to_string());
            } else if let Some(c) = line.strip_prefix("a=") {
                if c.starts_with("candidate:") {
                    let candidate = Candidate::from_sdp_string(c)
                        .map_err(|e| FragmentError(format!("bad candidate: {}", one_line(&e))))?;
                    fragment.candidates.push(candidate);
                }
                // a=mid, a=end-of-candidates, a=group...: nothing to do.
            } else if !line.starts_with("m=") && !line.starts_with("c=") {
                return Err(FragmentError(format!("not an sdpfrag line: {line:?}")));
            }
        }
        Ok(fragment)
    }
}

/// The value of the first `a=NAME:value` line.
pub fn sdp_attribute<'a>(sdp: &'a str, name: &str) -> Option<&'a str> {
    sdp.lines()
        .filter_map(|l| l.trim().strip_prefix("a="))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_carry_candidates_and_credentials() {
        let f = Fragment::parse(
            "a=ice-ufrag:abcd\r\na=ice-pwd:secretsecretsecret\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host\r\na=end-of-candidates\r\n",
        )
        .ok()
        .unwrap();
        assert_eq!(f.ufrag.as_deref(), Some("abcd"));
        assert_eq!(f.pwd.as_deref(), Some("secretsecretsecret"));
        assert_eq!(f.candidates.len(), 1);
        assert!(Fragment::parse("a=candidate:nope").is_err());
        assert!(Fragment::parse("hello").is_err());
    }

    #[test]
    fn reads_sdp_attributes() {
        let sdp = "v=0\r\na=group:BUNDLE 0\r\na=ice-ufrag:Zx9\r\n";
        assert_eq!(sdp_attribute(sdp, "ice-ufrag"), Some("Zx9"));
        assert_eq!(sdp_attribute(sdp, "ice-pwd"), None);
    }

    /// Found by `tests/hostile_input.rs` (a WHIP PATCH): the error for a bad
    /// candidate is cut to 200 bytes by `signal::one_line`, which panicked
    /// when byte 200 fell inside a character.
    #[test]
    fn a_bad_candidate_with_non_ascii_text_is_refused_without_panic() {
        for pad in 0..4 {
            let text = format!("a=candidate:{}{}", "x".repeat(pad), "é".repeat(150));
            assert!(Fragment::parse(&text).is_err());
        }
    }

    /// Hostile-input properties (issue 13); `HOSTILE_CASES` sets the number
    /// of cases, as for `tests/hostile_input.rs`.
    mod hostile {
        use std::net::{IpAddr, SocketAddr};

        use proptest::prelude::*;
        use str0m::CandidateKind;

        use super::*;

        fn config() -> ProptestConfig {
            let cases = std::env::var("HOSTILE_CASES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(256);
            ProptestConfig::with_cases(cases)
        }

        /// A candidate as a WHIP client would trickle it.
        #[derive(Debug, Clone)]
        struct Trickled {
            foundation: String,
            prio: u32,
            addr: SocketAddr,
            /// `raddr`/`rport` of a server-reflexive candidate.
            related: Option<SocketAddr>,
        }

        impl Trickled {
            fn line(&self) -> String {
                let (typ, related) = match self.related {
                    Some(r) => ("srflx", format!(" raddr {} rport {}", r.ip(), r.port())),
                    None => ("host", String::new()),
                };
                format!(
                    "a=candidate:{} 1 udp {} {} {} typ {typ}{related} generation 0",
                    self.foundation,
                    self.prio,
                    self.addr.ip(),
                    self.addr.port()
                )
            }
        }

        fn trickled() -> impl Strategy<Value = Trickled> {
            let addr = (any::<IpAddr>(), any::<u16>()).prop_map(SocketAddr::from);
            (
                "[A-Za-z0-9+/]{1,32}",
                1..=u32::MAX >> 1,
                addr.clone(),
                proptest::option::of(addr),
            )
                .prop_map(|(foundation, prio, addr, related)| Trickled {
                    foundation,
                    prio,
                    addr,
                    related,
                })
        }

        /// Lines an sdpfrag may hold, valid or not, for arbitrary bodies.
        fn fragment_line() -> impl Strategy<Value = String> {
            prop_oneof![
                trickled().prop_map(|c| c.line()),
                "a=ice-(ufrag|pwd):[ -~]{0,40}",
                "a=candidate:[ -~]{0,80}",
                "a=(mid|end-of-candidates|group:BUNDLE)[ -~]{0,10}",
                "(m|c)=[ -~]{0,30}",
                "[ -~]{0,60}",
                any::<String>(),
            ]
        }

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn arbitrary_bodies_parse_or_are_refused_without_panic(text in any::<String>()) {
                let _ = Fragment::parse(&text);
            }

            /// What a parsed fragment holds is what its lines said: one
            /// candidate per `a=candidate:` line, the last ufrag and pwd.
            #[test]
            fn a_parsed_fragment_holds_what_its_lines_said(
                lines in proptest::collection::vec(fragment_line(), 0..12),
                crlf in any::<bool>(),
            ) {
                let text = lines.join(if crlf { "\r\n" } else { "\n" });
                let Ok(fragment) = Fragment::parse(&text) else {
                    return Ok(());
                };
                let trimmed: Vec<&str> = text.lines().map(str::trim).collect();
                let candidates = trimmed.iter().filter(|l| l.starts_with("a=candidate:")).count();
                prop_assert_eq!(fragment.candidates.len(), candidates);
                let last = |prefix: &str| {
                    trimmed.iter().rev().find_map(|l| l.strip_prefix(prefix)).map(str::to_string)
                };
                prop_assert_eq!(fragment.ufrag, last("a=ice-ufrag:"));
                prop_assert_eq!(fragment.pwd, last("a=ice-pwd:"));
            }

            #[test]
            fn a_fragment_of_valid_candidates_and_credentials_parses_back_to_them(
                ufrag in "[A-Za-z0-9+/]{4,32}",
                pwd in "[A-Za-z0-9+/]{22,64}",
                candidates in proptest::collection::vec(trickled(), 0..8),
                end in any::<bool>(),
            ) {
                let mut text = format!(
                    "a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n"
                );
                for c in &candidates {
                    text.push_str(&c.line());
                    text.push_str("\r\n");
                }
                if end {
                    text.push_str("a=end-of-candidates\r\n");
                }
                let fragment = Fragment::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(fragment.ufrag.as_deref(), Some(ufrag.as_str()));
                prop_assert_eq!(fragment.pwd.as_deref(), Some(pwd.as_str()));
                prop_assert_eq!(fragment.candidates.len(), candidates.len());
                for (parsed, sent) in fragment.candidates.iter().zip(&candidates) {
                    prop_assert_eq!(parsed.addr(), sent.addr);
                    prop_assert_eq!(parsed.prio(), sent.prio);
                    let kind = match sent.related {
                        Some(_) => CandidateKind::ServerReflexive,
                        None => CandidateKind::Host,
                    };
                    prop_assert_eq!(parsed.kind(), kind);
                }
            }
        }
    }
}
