//! Newtype identifiers used by the media core.

use std::fmt;
use std::str::FromStr;

/// A participant, unique across the whole server (chosen by the control plane).
///
/// Rendered as `p` followed by 16 hex digits, which is also what clients see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId(pub u64);

impl ParticipantId {
    /// A fresh random id.
    pub fn random() -> Self {
        ParticipantId(rand::random())
    }
}

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{:016x}", self.0)
    }
}

impl FromStr for ParticipantId {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s.strip_prefix('p').ok_or(())?;
        if hex.len() != 16 {
            return Err(());
        }
        u64::from_str_radix(hex, 16)
            .map(ParticipantId)
            .map_err(|_| ())
    }
}

/// A published track, unique within one media core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackId(pub u64);

impl fmt::Display for TrackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

/// One str0m `Rtc` (one peer connection) inside a media core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey(pub u32);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn participant_id_round_trips_through_its_text_form() {
        let id = ParticipantId(0xdead_beef_0000_0001);
        let text = id.to_string();
        assert_eq!(text, "pdeadbeef00000001");
        assert_eq!(text.parse::<ParticipantId>(), Ok(id));
        assert!("deadbeef".parse::<ParticipantId>().is_err());
        assert!("pzz".parse::<ParticipantId>().is_err());
    }
}
