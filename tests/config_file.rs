//! Start-up configuration on the real binary: a `--config` file configures
//! the server, an environment variable beats the file, and a flag beats
//! both; a file with a key that is no flag stops the server at start with an
//! error naming the key; without API keys the server refuses to start on a
//! non-loopback address and names the fix. The worker count is the setting observed (it shows
//! in `/readyz`); the parsing of every other key is unit-tested in
//! `src/config/file.rs`, and the sample's coverage of every flag there too.
//!
//! What this does not prove: how each setting behaves (their own tests do).

use cascade_test_support::process::Cascade;

const BINARY: &str = env!("CARGO_BIN_EXE_cascade");

/// A config file in the temp directory, removed when dropped.
struct ConfigFile(std::path::PathBuf);

impl ConfigFile {
    fn new(name: &str, text: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "cascade-config-test-{}-{name}.toml",
            std::process::id()
        ));
        std::fs::write(&path, text).expect("write the config file");
        ConfigFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temp path")
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn workers_of(cascade: &Cascade) -> usize {
    let ready = cascade.get("/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    let body: serde_json::Value = serde_json::from_str(&ready.body).expect("JSON");
    body["workers"].as_array().expect("a worker list").len()
}

#[tokio::test]
async fn flags_beat_the_environment_which_beats_the_file() {
    let file = ConfigFile::new("precedence", "workers = 3\n");
    let from_file = Cascade::start(BINARY, &["--config", file.path()], &[]).await;
    assert_eq!(workers_of(&from_file).await, 3, "the file's value");
    drop(from_file);

    let env = [("CASCADE_WORKERS", "2"), ("CASCADE_CONFIG", file.path())];
    let from_env = Cascade::start(BINARY, &[], &env).await;
    assert_eq!(
        workers_of(&from_env).await,
        2,
        "the environment beats the file"
    );
    drop(from_env);

    let from_flag = Cascade::start(BINARY, &["--workers", "1"], &env).await;
    assert_eq!(workers_of(&from_flag).await, 1, "the flag beats both");
}

#[tokio::test]
async fn an_unknown_key_stops_the_server_at_start_naming_it() {
    let file = ConfigFile::new("unknown", "wrokers = 2\n");
    let output = tokio::process::Command::new(BINARY)
        .args(["--http-addr", "127.0.0.1:0", "--config", file.path()])
        .output()
        .await
        .expect("cascade runs");
    assert!(!output.status.success(), "it must not start");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("\"wrokers\"") && stderr.contains(file.path()),
        "{stderr}"
    );
}

#[tokio::test]
async fn without_keys_the_server_refuses_to_start_open_on_a_public_address() {
    // Refused before anything is bound: no traffic leaves loopback.
    for args in [
        &["--http-addr", "0.0.0.0:0"][..],
        &["--media-addr", "0.0.0.0", "--public-ip", "192.0.2.7"],
    ] {
        let output = tokio::process::Command::new(BINARY)
            .args(args)
            .output()
            .await
            .expect("cascade runs");
        assert!(!output.status.success(), "{args:?} must not start");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("--api-key") && stderr.contains("--insecure-open"),
            "{args:?}: the error names the fix: {stderr}"
        );
    }
}
