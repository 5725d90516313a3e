//! Live WHIP/WHEP sessions: the participant behind each session URL, and the
//! task that ends the session when the participant ends.

use dashmap::DashMap;
use tokio::sync::mpsc;

use crate::auth::Intent;
use crate::media::{Identity, ParticipantEvent, ParticipantId, PeerRole};
use crate::metrics::{self, SessionGuard};
use crate::signal::limits::SessionSlot;
use crate::signal::AppState;

/// Which protocol a session came in by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    Whip,
    Whep,
}

impl SessionKind {
    /// The path segment (`whip`, `whep`), also the request-count label.
    pub fn path(self) -> &'static str {
        match self {
            SessionKind::Whip => "whip",
            SessionKind::Whep => "whep",
        }
    }

    /// The display name of a session that gives none.
    pub fn default_name(self) -> &'static str {
        match self {
            SessionKind::Whip => "WHIP",
            SessionKind::Whep => "WHEP viewer",
        }
    }

    /// The connection the client offers.
    pub fn role(self) -> PeerRole {
        match self {
            SessionKind::Whip => PeerRole::Publish,
            SessionKind::Whep => PeerRole::Subscribe,
        }
    }

    /// What the session's token must allow.
    pub fn intent(self) -> Intent {
        match self {
            SessionKind::Whip => Intent::Publish,
            SessionKind::Whep => Intent::View,
        }
    }

    pub fn metrics(self) -> metrics::SessionKind {
        match self {
            SessionKind::Whip => metrics::SessionKind::Whip,
            SessionKind::Whep => metrics::SessionKind::Whep,
        }
    }
}

/// A live WHIP/WHEP session.
#[derive(Debug)]
pub struct HttpSession {
    pub kind: SessionKind,
    pub participant: ParticipantId,
    pub worker: usize,
    /// The client's current ICE ufrag: a PATCH with another one is a restart.
    pub remote_ufrag: Option<String>,
    pub etag: String,
    /// The identity of the token that created the session (`None`: open mode).
    pub identity: Option<Identity>,
}

/// WHIP/WHEP sessions by id.
pub type HttpSessions = DashMap<String, HttpSession>;

/// A fresh random session id (the last segment of the session URL).
pub fn new_session_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A fresh strong ETag.
pub fn new_etag() -> String {
    format!("\"{:016x}\"", rand::random::<u64>())
}

/// Drains the participant's events until the worker drops its outbox (the
/// participant is gone), then forgets the session. This is the one place a
/// session is cleaned up, however it ended (DELETE, ICE timeout, shutdown).
pub fn watch(
    state: AppState,
    session_id: String,
    mut events: mpsc::Receiver<ParticipantEvent>,
    held: (SessionGuard, SessionSlot),
) {
    tokio::spawn(async move {
        while events.recv().await.is_some() {}
        drop(held);
        state.http_sessions.remove(&session_id);
        tracing::info!(session = %session_id, "http session ended");
    });
}
