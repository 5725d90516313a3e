//! Hostile input: bounded property-based tests of everything a client or a
//! stranger on the network can hand the server (issue 13).
//!
//! Each property generates input (arbitrary bytes and text, structured
//! near-valid packets, mutations of valid messages, offers and tokens), feeds
//! it to the real code and checks the outcome, not only the absence of a panic:
//!
//! - [`signaling`]: the wire types round-trip; a real server answers any
//!   WebSocket frame with the documented error, or the message's effect, and
//!   keeps the connection;
//! - [`sdp`]: mutated offers and answers reach the media core through
//!   `join_with_offer` (WHIP/WHEP), `publish_offer`, `subscribe_answer` and
//!   `add_remote_candidate`; each is answered or refused with a typed error,
//!   a refusal leaves no trace, and valid joins keep working; mutated
//!   WHIP/WHEP bodies get a 201 or a 4xx from a real server, never a 5xx;
//! - [`tokens`]: junk and tampered tokens are refused, a valid token admits
//!   to its own room with its own grants only;
//! - [`datagrams`]: arbitrary and near-valid STUN, DTLS, RTP and RTCP, from
//!   strangers and from the addresses of connected participants (so str0m's
//!   parsers see them), harm nobody: media keeps flowing, nobody is removed,
//!   no peer or learnt route is added; ICE-TCP frames (RFC 4571) likewise,
//!   and any RFC 4571 byte stream, cut into reads of any size, gives back
//!   exactly its frames within the limit.
//!
//! The generators are in [`mutate`] (edits of valid text) and [`packets`]
//! (near-valid datagrams). The sdpfrag parser is private to the server; its
//! properties live beside it in `src/signal/whip/sdpfrag.rs`.
//!
//! What this does not prove: that input no generator here produces is
//! handled; anything about what sits inside SRTP and DTLS encryption (these
//! datagrams fail authentication first, so str0m's depacketizers and
//! Cascade's forwarding never see hostile payloads from an authenticated
//! peer); the DTLS handshake window (see [`datagrams`]); what a participant
//! can do with its own valid ICE credentials (such as claiming another's
//! address); memory bounds inside str0m itself (only Cascade's own tables are
//! counted); non-ASCII text in what reaches a real server (see
//! [`mutate::Text`]); timing attacks on token checks.
//!
//! `HOSTILE_CASES` sets the number of cases per property (default 256, which
//! keeps the file well under a minute in release builds); `scripts/fuzz.sh`
//! runs many more. A failure prints the minimal failing input; proptest's
//! `PROPTEST_RNG_SEED` replays a run.

// A test crate's root finds its modules beside it, not in a folder named after it.
#[path = "hostile_input/datagrams.rs"]
mod datagrams;
#[path = "hostile_input/mutate.rs"]
mod mutate;
#[path = "hostile_input/packets.rs"]
mod packets;
#[path = "hostile_input/sdp.rs"]
mod sdp;
#[path = "hostile_input/signaling.rs"]
mod signaling;
#[path = "hostile_input/tokens.rs"]
mod tokens;

use proptest::strategy::Strategy;
use proptest::test_runner::{Config as ProptestConfig, TestCaseResult, TestRunner};

/// Cases per property when `HOSTILE_CASES` is not set.
const DEFAULT_CASES: u32 = 256;

/// Cases per property, from `HOSTILE_CASES`.
pub fn cases() -> u32 {
    std::env::var("HOSTILE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

/// The proptest settings every property runs with. Failures are reported
/// by the panic (and minimized cases kept as plain tests), not in
/// regression files.
pub fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases())
    }
}

/// Runs a property over state the cases share (a server, a simulation),
/// which the `proptest!` macro cannot hold; panics with the minimal failing
/// input.
pub fn run<S: Strategy>(strategy: S, test: impl Fn(S::Value) -> TestCaseResult) {
    let mut runner = TestRunner::new(config());
    if let Err(failure) = runner.run(&strategy, test) {
        panic!("{failure}");
    }
}

/// A runtime and a real server on it (one worker, default flags) for the
/// properties that probe the server over its sockets.
pub fn served() -> (tokio::runtime::Runtime, cascade::server::Server) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = runtime.block_on(cascade_test_support::server::start(1, |_| {}));
    (runtime, server)
}
