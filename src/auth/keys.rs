//! API keys and their secrets: from `--api-key`/`--api-secret`, or a keys
//! file holding several pairs (one `key: secret` per line, `#` comments),
//! the format LiveKit's `--key-file` uses. Secrets never reach a log: the
//! set's `Debug` shows key names only.

use std::collections::BTreeMap;
use std::fmt;

/// Shortest secret accepted: HS256 wants at least 256 bits of key, which a
/// random 32-character secret gives.
pub const MIN_SECRET_LEN: usize = 32;

/// The API keys a server accepts tokens from.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    secrets: BTreeMap<String, String>,
}

/// A keys file or key flag that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("line {0} of the keys file is not `key: secret`")]
    Syntax(usize),
    #[error("API key {0:?} must be 1-64 characters of A-Z a-z 0-9 _ -")]
    Name(String),
    #[error("the secret of API key {0:?} must be at least {MIN_SECRET_LEN} visible characters")]
    WeakSecret(String),
    #[error("API key {0:?} appears twice")]
    Duplicate(String),
    #[error("the keys file holds no keys")]
    Empty,
}

impl KeySet {
    /// One key.
    pub fn single(key: &str, secret: &str) -> Result<Self, KeyError> {
        let mut set = KeySet::default();
        set.insert(key, secret)?;
        Ok(set)
    }

    /// A keys file's contents.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let mut set = KeySet::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, secret) = line.split_once(':').ok_or(KeyError::Syntax(n + 1))?;
            set.insert(key.trim(), secret.trim())?;
        }
        match set.secrets.is_empty() {
            true => Err(KeyError::Empty),
            false => Ok(set),
        }
    }

    fn insert(&mut self, key: &str, secret: &str) -> Result<(), KeyError> {
        let valid_name = (1..=64).contains(&key.len())
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
        if !valid_name {
            return Err(KeyError::Name(key.to_string()));
        }
        if secret.len() < MIN_SECRET_LEN || !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(KeyError::WeakSecret(key.to_string()));
        }
        if self
            .secrets
            .insert(key.to_string(), secret.to_string())
            .is_some()
        {
            return Err(KeyError::Duplicate(key.to_string()));
        }
        Ok(())
    }

    /// The secret of `key`, if the set holds it.
    pub fn secret(&self, key: &str) -> Option<&str> {
        self.secrets.get(key).map(String::as_str)
    }

    /// Some key of the set and its secret (the first by name), for minting.
    pub fn first(&self) -> Option<(&str, &str)> {
        self.secrets
            .iter()
            .next()
            .map(|(k, s)| (k.as_str(), s.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field("keys", &self.secrets.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_keys_file_holds_several_pairs_and_comments() {
        let text = format!("# keys\nAPIa: {SECRET}\n\n  APIb :{SECRET}x  \n");
        let set = KeySet::parse(&text).unwrap();
        assert_eq!(set.secret("APIa"), Some(SECRET));
        assert_eq!(set.secret("APIb"), Some(format!("{SECRET}x").as_str()));
        assert_eq!(set.secret("APIc"), None);
    }

    #[test]
    fn bad_files_and_weak_secrets_are_refused_with_the_line_or_key() {
        assert_eq!(KeySet::parse("APIa secret"), Err(KeyError::Syntax(1)));
        assert_eq!(KeySet::parse("# nothing\n"), Err(KeyError::Empty));
        assert_eq!(
            KeySet::parse("APIa: short"),
            Err(KeyError::WeakSecret("APIa".into()))
        );
        assert_eq!(
            KeySet::parse(&format!("APIa: {SECRET}\nAPIa: {SECRET}")),
            Err(KeyError::Duplicate("APIa".into()))
        );
        assert_eq!(
            KeySet::single("bad key", SECRET),
            Err(KeyError::Name("bad key".into()))
        );
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let set = KeySet::single("APIa", SECRET).unwrap();
        let shown = format!("{set:?}");
        assert!(shown.contains("APIa") && !shown.contains(SECRET), "{shown}");
    }
}
