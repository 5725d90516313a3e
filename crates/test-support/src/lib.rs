//! What Cascade's integration tests and benchmarks share.
//!
//! - [`sim`]: the deterministic simulation (a media core, str0m client
//!   peers, fake time, an in-process network);
//! - [`server`]: a real server on ephemeral loopback ports and a WebSocket
//!   client for it;
//! - [`http`]: a minimal HTTP/1.1 client for the WHIP/WHEP tests;
//! - [`peer`]: a str0m peer on a real UDP socket (WHIP/WHEP clients);
//! - [`link`]: a rate-limited link with a bounded queue, for the simulation;
//! - [`process`]: the `cascade` binary as a child process;
//! - [`tokens`]: an API key and access tokens signed with it;
//! - [`vp8`]: VP8-shaped simulcast payloads for simulated publishers.

pub mod http;
pub mod link;
pub mod peer;
pub mod process;
pub mod server;
pub mod sim;
pub mod tokens;
pub mod vp8;

/// Waits (bounded: 10 s) until `check` holds; panics naming `what` if not.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..100 {
        if check() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}
