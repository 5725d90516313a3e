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
}
