//! Helpers shared by the integration tests.
//!
//! Each test binary uses a different part, hence the allow.
#![allow(dead_code)]

pub mod http;
pub mod peer;
pub mod server;
pub mod sim;
