//! Cascade: a WebRTC Selective Forwarding Unit built on str0m.
//!
//! Publishers send their RTP to the server once; the server forwards it to
//! every subscriber in the room without decoding it.
//!
//! This crate is the server alone. The wire protocol is the
//! `cascade-protocol` crate, the load generator `cascade-load`, the code the
//! tests share `cascade-test-support` (all under `crates/`).
//!
//! - [`media`]: the sans-IO core (rooms, participants, forwarding);
//! - [`worker`]: media worker threads driving a core on a UDP socket;
//! - [`signal`]: axum HTTP/WebSocket control plane and the bundled client;
//! - [`auth`]: access tokens, API keys, who may do what;
//! - [`config`]: flags, environment and the config file;
//! - [`drain`]: stop taking joins, let calls finish, then stop;
//! - [`metrics`]: Prometheus metrics and how workers feed them;
//! - [`memory`]: giving freed memory back to the operating system;
//! - [`server`]: start and stop everything.

pub mod auth;
pub mod config;
pub mod drain;
pub mod media;
pub mod memory;
pub mod metrics;
pub mod server;
pub mod signal;
pub mod worker;
