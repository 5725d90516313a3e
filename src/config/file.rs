//! The config file: `--config cascade.toml` (or `CASCADE_CONFIG`) holds any
//! flag, under the flag's long name (`http-addr = "0.0.0.0:8080"`,
//! `ice-server = ["stun:…", "turn:…"]`, `insecure-open = true`).
//!
//! The file's values become the flags' defaults, so what is said last wins:
//! a flag beats its environment variable, which beats the file, which beats
//! the built-in default. A key that is no flag is an error naming it (a
//! typo must not go unnoticed), and so is a value of the wrong kind. The
//! sample in `docs/cascade.example.toml` lists every key.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{ArgAction, CommandFactory, FromArgMatches};

use super::Args;

/// The flag naming the config file, and its environment variable.
const CONFIG_FLAG: &str = "--config";
const CONFIG_ENV: &str = "CASCADE_CONFIG";

/// Why the flags and config file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    /// Bad flags, `--help` or `--version`: clap prints and exits.
    #[error(transparent)]
    Flags(#[from] clap::Error),
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the config file {path} is not valid TOML: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("the config file {path} has the key {key:?}, which is no flag{hint}")]
    UnknownKey {
        path: PathBuf,
        key: String,
        hint: String,
    },
    #[error("the config file {path} gives {key:?} {found}: {expected}")]
    Value {
        path: PathBuf,
        key: String,
        found: &'static str,
        expected: &'static str,
    },
}

/// The process's flags, environment and config file.
pub fn parse_args() -> Result<Args, ArgsError> {
    parse_args_from(std::env::args_os(), std::env::var_os(CONFIG_ENV))
}

/// Flags `argv` (the program name first), with `env_config` as the config
/// file when no `--config` flag names one.
pub fn parse_args_from(
    argv: impl IntoIterator<Item = impl Into<OsString>>,
    env_config: Option<OsString>,
) -> Result<Args, ArgsError> {
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let mut command = Args::command();
    if let Some(path) = config_path(&argv).or(env_config.map(PathBuf::from)) {
        command = with_file_defaults(command, &path)?;
    }
    let matches = command.try_get_matches_from(argv)?;
    Ok(Args::from_arg_matches(&matches)?)
}

/// The path after `--config` (or in `--config=…`), wherever it stands.
fn config_path(argv: &[OsString]) -> Option<PathBuf> {
    let mut args = argv.iter().skip(1);
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy();
        if text == "--" {
            return None;
        }
        if text == CONFIG_FLAG {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = text.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    None
}

/// `command` with each of the file's values as its flag's default.
fn with_file_defaults(mut command: clap::Command, path: &Path) -> Result<clap::Command, ArgsError> {
    let text = std::fs::read_to_string(path).map_err(|source| ArgsError::Read {
        path: path.to_owned(),
        source,
    })?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| ArgsError::Toml {
        path: path.to_owned(),
        message: e.message().to_string(),
    })?;
    for (key, value) in table {
        let Some(arg) = command
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()) && key != "config")
        else {
            return Err(ArgsError::UnknownKey {
                hint: hint(&command, &key),
                path: path.to_owned(),
                key,
            });
        };
        let id = arg.get_id().clone();
        let many = matches!(arg.get_action(), ArgAction::Append);
        let wrong = |found| ArgsError::Value {
            path: path.to_owned(),
            key: key.clone(),
            found,
            expected: if many {
                "a list of strings, or one string"
            } else {
                "a string, number or true/false"
            },
        };
        let values = match value {
            toml::Value::Array(items) if many => items
                .into_iter()
                .map(|item| scalar(item).ok_or_else(|| wrong("a list holding a list or table")))
                .collect::<Result<Vec<_>, _>>()?,
            toml::Value::Array(_) => return Err(wrong("a list")),
            other => vec![scalar(other).ok_or_else(|| wrong("a table"))?],
        };
        command = command.mut_arg(id, |a| a.default_values(values));
    }
    Ok(command)
}

/// A TOML scalar as the text a flag would carry.
fn scalar(value: toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s),
        toml::Value::Integer(n) => Some(n.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Datetime(d) => Some(d.to_string()),
        toml::Value::Array(_) | toml::Value::Table(_) => None,
    }
}

/// ", did you mean …?" for a key that is a flag with `_` for `-`.
fn hint(command: &clap::Command, key: &str) -> String {
    let dashed = key.replace('_', "-");
    let known = command
        .get_arguments()
        .any(|a| a.get_long() == Some(dashed.as_str()));
    if known && dashed != key {
        format!(" (did you mean {dashed:?}?)")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{Config, LogFormat};

    /// A config file with `text`, removed when dropped.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, text: &str) -> Self {
            let path = std::env::temp_dir()
                .join(format!("cascade-config-{}-{name}.toml", std::process::id()));
            std::fs::write(&path, text).unwrap();
            TempFile(path)
        }

        fn path(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn parse(args: &[&str]) -> Result<Args, ArgsError> {
        let mut all = vec!["cascade"];
        all.extend_from_slice(args);
        parse_args_from(all, None)
    }

    #[test]
    fn the_file_sets_flags_and_flags_override_it() {
        let file = TempFile::new(
            "override",
            r#"
            http-addr = "127.0.0.1:9999"
            workers = 3
            limit-loopback = true
            ice-server = ["stun:a.example:3478", "turn:b.example:3478"]
            drain-timeout = "90s"
            log-format = "json"
            "#,
        );
        let args = parse(&["--config", file.path()]).unwrap();
        assert_eq!(args.http_addr, "127.0.0.1:9999".parse().unwrap());
        assert_eq!(args.workers, Some(3));
        assert!(args.limit_loopback);
        assert_eq!(args.ice_servers.len(), 2);
        assert_eq!(args.drain_timeout, Duration::from_secs(90));
        assert_eq!(args.log_format, LogFormat::Json);

        let args = parse(&[
            &format!("--config={}", file.path()),
            "--workers",
            "1",
            "--ice-server",
            "stun:c.example",
        ])
        .unwrap();
        assert_eq!(args.workers, Some(1), "the flag wins");
        assert_eq!(args.ice_servers, ["stun:c.example"], "the flag's list wins");
        assert_eq!(args.http_addr.port(), 9999, "the rest stays from the file");
        let config = Config::try_from(args).unwrap();
        assert_eq!(config.workers, 1);
    }

    #[test]
    fn the_environment_variable_names_the_file_when_no_flag_does() {
        let file = TempFile::new("env", "max-rooms = 7\n");
        let args = parse_args_from(["cascade"], Some(file.path().into())).unwrap();
        assert_eq!(args.max_rooms, 7);
        let other = TempFile::new("flag", "max-rooms = 8\n");
        let args = parse_args_from(
            ["cascade", "--config", other.path()],
            Some(file.path().into()),
        )
        .unwrap();
        assert_eq!(args.max_rooms, 8, "--config beats CASCADE_CONFIG");
    }

    #[test]
    fn keys_from_the_file_make_a_keyed_server() {
        let file = TempFile::new(
            "keys",
            "api-key = \"APIfile\"\napi-secret = \"0123456789abcdef0123456789abcdef\"\nhttp-addr = \"0.0.0.0:8080\"\n",
        );
        let config = Config::try_from(parse(&["--config", file.path()]).unwrap()).unwrap();
        assert!(!config.access.is_open(), "keys from the file count");
    }

    #[test]
    fn mistakes_in_the_file_are_named() {
        let unknown = TempFile::new("unknown", "max_rooms = 3\n");
        let err = parse(&["--config", unknown.path()]).unwrap_err();
        assert!(matches!(err, ArgsError::UnknownKey { .. }), "{err}");
        assert!(err.to_string().contains("\"max-rooms\""), "{err}");

        let typo = TempFile::new("typo", "max-romz = 3\n");
        let err = parse(&["--config", typo.path()]).unwrap_err();
        assert!(err.to_string().contains("max-romz"), "{err}");

        for (name, text) in [
            ("list", "workers = [1, 2]\n"),
            ("table", "[http-addr]\nport = 1\n"),
            ("nested", "ice-server = [[\"stun:a\"]]\n"),
        ] {
            let file = TempFile::new(name, text);
            let err = parse(&["--config", file.path()]).unwrap_err();
            assert!(matches!(err, ArgsError::Value { .. }), "{name}: {err}");
        }

        let bad_value = TempFile::new("value", "workers = \"many\"\n");
        assert!(matches!(
            parse(&["--config", bad_value.path()]),
            Err(ArgsError::Flags(_))
        ));
        let not_toml = TempFile::new("syntax", "workers = \n");
        assert!(matches!(
            parse(&["--config", not_toml.path()]),
            Err(ArgsError::Toml { .. })
        ));
        assert!(matches!(
            parse(&["--config", "/nonexistent/cascade.toml"]),
            Err(ArgsError::Read { .. })
        ));
        let itself = TempFile::new("itself", "config = \"other.toml\"\n");
        assert!(matches!(
            parse(&["--config", itself.path()]),
            Err(ArgsError::UnknownKey { .. })
        ));
    }

    /// The repository's sample names every flag, and every line of it,
    /// uncommented, is a valid value.
    #[test]
    fn the_sample_covers_every_flag() {
        let sample = include_str!("../../docs/cascade.example.toml");
        let uncommented: String = sample
            .lines()
            .filter_map(|line| line.strip_prefix("# "))
            .filter(|line| {
                line.split_once(" = ")
                    .is_some_and(|(key, _)| key.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let table: toml::Table = uncommented.parse().expect("the sample's values are TOML");
        for arg in Args::command().get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if ["config", "help", "version"].contains(&long) {
                continue;
            }
            assert!(table.contains_key(long), "the sample lacks {long}");
        }
        let file = TempFile::new("sample", &uncommented);
        parse(&["--config", file.path()]).expect("every sample value parses");
    }
}
