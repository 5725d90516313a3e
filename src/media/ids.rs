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

impl FromStr for TrackId {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix('t').ok_or(())?;
        if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        digits.parse().map(TrackId).map_err(|_| ())
    }
}

impl fmt::Display for TrackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

/// One str0m `Rtc` (one peer connection) inside a media core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey(pub u32);

/// Why a room or display name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("room names are 1-64 characters of A-Z a-z 0-9 _ - .")]
    Room,
    #[error("display names are 1-64 characters without control characters")]
    Display,
}

/// A room's name: 1-64 characters of `A-Z a-z 0-9 _ - .`, checked once
/// where it enters the server.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomName(String);

impl RoomName {
    pub fn parse(name: &str) -> Result<Self, NameError> {
        let valid = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        match valid {
            true => Ok(RoomName(name.to_string())),
            false => Err(NameError::Room),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A participant's display name: 1-64 characters, not blank, no control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(name: &str) -> Result<Self, NameError> {
        let count = name.chars().count();
        let valid = (1..=64).contains(&count)
            && !name.chars().any(char::is_control)
            && !name.trim().is_empty();
        match valid {
            true => Ok(DisplayName(name.to_string())),
            false => Err(NameError::Display),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

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

    #[test]
    fn room_and_display_names_are_checked() {
        assert!(RoomName::parse("team-42.daily_sync").is_ok());
        assert!(RoomName::parse("").is_err());
        assert!(RoomName::parse("a b").is_err());
        assert!(RoomName::parse(&"x".repeat(65)).is_err());
        assert!(DisplayName::parse("Zoë 🎥").is_ok());
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse("bad\nname").is_err());
    }
}
