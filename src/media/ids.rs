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
    #[error("display names are 1-64 characters with a visible one, without control or bidi override characters")]
    Display,
    #[error("identities are 1-128 characters with a visible one, without control or bidi override characters")]
    Identity,
}

/// A room's name: 1-64 characters of `A-Z a-z 0-9 _ - .`, not only dots
/// (`.` and `..` would read as paths in URLs and logs), checked once where
/// it enters the server.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomName(String);

impl RoomName {
    pub fn parse(name: &str) -> Result<Self, NameError> {
        let valid = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            && !name.bytes().all(|b| b == b'.');
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

/// Whether `text` is fit to show other people: `max` characters at most,
/// at least one visible (not space, not zero-width), and no control or
/// bidirectional override characters (which could make a name render as
/// someone else's, or reverse the text after it).
fn showable(text: &str, max: usize) -> bool {
    let invisible = |c: char| {
        c.is_whitespace()
            || matches!(
                c,
                '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}' | '\u{180e}'
            )
    };
    let bidi = |c: char| matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    (1..=max).contains(&text.chars().count())
        && !text.chars().any(|c| c.is_control() || bidi(c))
        && text.chars().any(|c| !invisible(c))
}

/// A participant's display name: 1-64 characters fit to show others (see
/// `showable`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(name: &str) -> Result<Self, NameError> {
        match showable(name, 64) {
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

/// A participant's identity from its access token (the JWT `sub`): stable
/// across its connections, unique in a room. 1-128 characters fit to show.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity(String);

impl Identity {
    pub fn parse(identity: &str) -> Result<Self, NameError> {
        match showable(identity, 128) {
            true => Ok(Identity(identity.to_string())),
            false => Err(NameError::Identity),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_hide_or_disguise_themselves_are_refused() {
        for bad in [
            "",
            " ",
            "\u{200b}\u{200b}",
            "\u{feff}",
            "evil\u{202e}gnp.exe",
            "a\u{2066}b",
            "tab\there",
        ] {
            assert_eq!(DisplayName::parse(bad), Err(NameError::Display), "{bad:?}");
            assert_eq!(Identity::parse(bad), Err(NameError::Identity), "{bad:?}");
        }
        for good in ["Alice", "José María", "李雷", "a\u{200d}b", "🙂"] {
            assert!(DisplayName::parse(good).is_ok(), "{good:?}");
        }
        assert!(DisplayName::parse(&"x".repeat(65)).is_err());
        assert!(Identity::parse(&"x".repeat(128)).is_ok());
    }

    #[test]
    fn room_names_that_read_as_paths_are_refused() {
        for bad in [".", "..", "...", "a/b", ""] {
            assert_eq!(RoomName::parse(bad), Err(NameError::Room), "{bad:?}");
        }
        assert!(RoomName::parse("team.sync-2").is_ok());
    }

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
