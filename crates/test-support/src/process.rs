//! The `cascade` binary as a child process, for what only a whole process
//! shows: signals, exit status, flags, environment and the config file.

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::http::{request, Response};

/// A running `cascade` process on a loopback ephemeral HTTP port.
pub struct Cascade {
    child: Child,
    pub addr: SocketAddr,
}

impl Cascade {
    /// Starts `binary` (the test's `env!("CARGO_BIN_EXE_cascade")`) with
    /// `--http-addr 127.0.0.1:0`, then `args`, with `env` added to the
    /// environment, and waits (at most 30 s) until it says where it listens.
    pub async fn start(binary: &str, args: &[&str], env: &[(&str, &str)]) -> Cascade {
        let mut child = Command::new(binary)
            .args(["--http-addr", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("cascade starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("read stdout") {
                if let Some(rest) = line.strip_prefix("Cascade is running: open http://") {
                    let addr = rest.split('/').next().expect("an address");
                    return addr.parse().expect("a socket address");
                }
            }
            panic!("cascade exited before it listened");
        })
        .await
        .expect("cascade listens within 30 s");
        Cascade { child, addr }
    }

    /// Sends a signal, e.g. `"-TERM"`.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().expect("still running").to_string();
        let status = std::process::Command::new("kill")
            .args([name, &pid])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {name} {pid}");
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// The exit status, within 30 s (far shorter than the default drain
    /// timeout, so a drain that waits wrongly fails here).
    pub async fn exited(&mut self) -> ExitStatus {
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("cascade exits within 30 s")
            .expect("wait")
    }

    pub async fn get(&self, path: &str) -> Response {
        request(self.addr, "GET", path, &[], b"").await
    }
}
