//! One peer connection: a str0m `Rtc` plus what the core needs to drive it.
//! The [`Scheduler`](super::scheduler::Scheduler) owns every peer and is
//! the only code that feeds and drains one.

use std::collections::VecDeque;
use std::time::Instant;

use str0m::net::Transmit;
use str0m::{Event, Input, Output, Rtc, RtcError};

use super::ids::{ParticipantId, PeerKey};

/// Which of a participant's peer connections this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerRole {
    /// The client offers; carries the client's own tracks to the server
    /// (the bundled client's publish connection, a WHIP session).
    Publish,
    /// Carries other participants' tracks to the client (the server offers
    /// for the bundled client; a WHEP viewer offers itself).
    Subscribe,
}

/// How many times in a row a peer may ask for an immediate timeout while being
/// drained before we leave it for the next loop iteration. With the vendored
/// str0m's pacer (vendor/README.md) unpaced packets leave back to back, so a
/// drain needs one or two; padding and probes, which the pacer schedules on its
/// timeouts, may ask for more.
const MAX_IMMEDIATE_TIMEOUTS: usize = 128;

/// A peer connection owned by a media core.
pub struct Peer {
    pub rtc: Rtc,
    pub owner: ParticipantId,
    pub role: PeerRole,
    /// The deadline currently queued in the scheduler's heap for this peer
    /// (the heap may also hold stale entries, recognised by not matching this).
    pub(super) scheduled: Option<Instant>,
    /// Queued for a timeout + drain at the next flush.
    pub(super) dirty: bool,
    /// ICE and DTLS completed at least once.
    pub connected: bool,
    /// A server-offered connection whose first answer has not arrived: str0m
    /// cannot answer ICE checks yet (it lacks the client's credentials).
    pub awaiting_answer: bool,
    /// STUN binding requests that arrived while `awaiting_answer`, replayed
    /// once the answer is in. Browsers and str0m send their first check as
    /// soon as they have answered, which usually beats the answer's trip
    /// through signaling; dropping it costs a 250 ms STUN retransmission.
    pub early_stun: Vec<(super::demux::Route, Vec<u8>)>,
    /// Remote candidates trickled so far. str0m keeps every distinct one for
    /// the connection's life (only its candidate pairs are capped), so a
    /// client could otherwise grow that list without bound.
    pub(super) remote_candidates: usize,
}

/// At most this many early STUN requests are kept per connection.
pub const MAX_EARLY_STUN: usize = 8;

/// At most this many remote candidates are trickled per connection. A browser
/// sends a handful per network interface; Cascade answers as ICE-lite and
/// learns the working address from the client's checks anyway, so refusing
/// more costs a real client nothing.
pub const MAX_REMOTE_CANDIDATES: usize = 64;

impl Peer {
    pub fn new(rtc: Rtc, owner: ParticipantId, role: PeerRole) -> Self {
        Peer {
            rtc,
            owner,
            role,
            scheduled: None,
            dirty: false,
            connected: false,
            awaiting_answer: false,
            early_stun: Vec::new(),
            remote_candidates: 0,
        }
    }

    /// Polls the `Rtc` until it returns a timeout in the future.
    ///
    /// Transmits go to `transmits`, events (tagged with `key`) to `events`.
    /// Returns the deadline str0m asks for next.
    pub(super) fn drain(
        &mut self,
        key: PeerKey,
        now: Instant,
        transmits: &mut VecDeque<Transmit>,
        events: &mut Vec<(PeerKey, Event)>,
    ) -> Result<Instant, RtcError> {
        let mut immediate = 0;
        loop {
            match self.rtc.poll_output()? {
                Output::Transmit(t) => transmits.push_back(t),
                Output::Event(e) => events.push((key, e)),
                Output::Timeout(t) => {
                    // A deadline at or before now means "feed me a timeout now":
                    // that is how written RTP gets sent.
                    if t <= now && immediate < MAX_IMMEDIATE_TIMEOUTS {
                        immediate += 1;
                        self.rtc.handle_input(Input::Timeout(now))?;
                        continue;
                    }
                    return Ok(t);
                }
            }
        }
    }
}
