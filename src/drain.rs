//! Draining: stop taking joins, let the calls in progress finish, then stop.
//!
//! A drain starts on SIGTERM or `POST /admin/drain` and cannot be undone.
//! From then on `/readyz` answers 503 (a load balancer sends new calls
//! elsewhere), a WebSocket `join` gets `server_draining` and a WHIP/WHEP
//! `POST` gets 503 with `Retry-After`. Participants already in a room keep
//! everything they had: media, renegotiation, trickle, ICE restarts. The
//! server waits until every room is empty or `--drain-timeout` passes, then
//! removes whoever is left (reason `shutdown`) and exits 0.

use std::time::{Duration, Instant};

use tokio::sync::watch;

/// How long a refused client is told to wait before trying again: by then a
/// load balancer has usually moved it to another server.
pub const DRAIN_RETRY: Duration = Duration::from_secs(30);

/// What a join refused for the drain is told (its retry hint is
/// [`DRAIN_RETRY`]).
pub const REFUSAL: &str = "the server is draining and takes no new joins; retry in 30 s";

/// Whether the server is draining, shared by the signaling handlers and the
/// code that stops the server.
#[derive(Debug)]
pub struct Drain {
    /// `Some(when)` once a drain has started.
    started: watch::Sender<Option<Instant>>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            started: watch::Sender::new(None),
        }
    }
}

impl Drain {
    /// Starts draining. Returns `false` if a drain had already started (the
    /// first start counts; a second changes nothing).
    pub fn start(&self) -> bool {
        self.started.send_if_modified(|started| {
            if started.is_some() {
                return false;
            }
            *started = Some(Instant::now());
            true
        })
    }

    /// Whether a drain has started.
    pub fn is_draining(&self) -> bool {
        self.started.borrow().is_some()
    }

    /// When the drain started, if it has.
    pub fn started_at(&self) -> Option<Instant> {
        *self.started.borrow()
    }

    /// Resolves once a drain has started (at once if it already has).
    pub async fn requested(&self) {
        let mut started = self.started.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = started.wait_for(Option::is_some).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_gives_the_retry_hint() {
        let hint = format!("retry in {} s", DRAIN_RETRY.as_secs());
        assert!(REFUSAL.ends_with(&hint), "{REFUSAL}");
    }

    #[test]
    fn a_drain_starts_once() {
        let drain = Drain::default();
        assert!(!drain.is_draining());
        assert!(drain.started_at().is_none());
        assert!(drain.start());
        let first = drain.started_at();
        assert!(drain.is_draining());
        assert!(!drain.start(), "a second start is no new drain");
        assert_eq!(drain.started_at(), first);
    }

    #[tokio::test]
    async fn waiters_wake_when_the_drain_starts() {
        let drain = std::sync::Arc::new(Drain::default());
        let waiter = tokio::spawn({
            let drain = drain.clone();
            async move { drain.requested().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drain.start();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter woke")
            .unwrap();
        // Already draining: resolves at once.
        tokio::time::timeout(Duration::from_secs(5), drain.requested())
            .await
            .expect("resolves when already draining");
    }
}
