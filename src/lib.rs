//! Cascade: a WebRTC Selective Forwarding Unit built on str0m.
//!
//! Publishers send their RTP to the server once; the server forwards it to
//! every subscriber in the room without decoding it.
//!
//! - [`bot`]: headless participants for tests and load generation;
//! - [`media`]: the sans-IO core (rooms, participants, forwarding);
//! - [`worker`]: media worker threads driving a core on a UDP socket;
//! - [`signal`]: axum HTTP/WebSocket control plane and the bundled client;
//! - [`protocol`]: the WebSocket signaling messages (`docs/PROTOCOL.md`);
//! - [`config`]: flags and environment;
//! - [`metrics`]: Prometheus metrics and how workers feed them;
//! - [`server`]: start and stop everything.

pub mod bot;
pub mod config;
pub mod media;
pub mod metrics;
pub mod protocol;
pub mod server;
pub mod signal;
pub mod worker;
