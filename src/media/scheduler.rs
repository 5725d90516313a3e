//! The [`Scheduler`]: every peer connection of a core, and when each must be
//! fed and drained.
//!
//! str0m's `Rtc` wants every mutation followed by draining `poll_output`
//! until it returns a timeout, and `handle_input(Timeout)` no later than that
//! timeout. Feeding a timeout walks all of a peer's streams, so it must only
//! happen to peers that are due or were touched. The scheduler holds the
//! three structures that make that cheap and the one function that does it:
//!
//! - [`Scheduler::drive`]: feed one input to one peer, drain it, re-arm its
//!   deadline (or record that str0m failed it); every other method feeds
//!   peers through it;
//! - the deadline heap: [`Scheduler::run_due`] drives every peer whose
//!   deadline passed;
//! - the dirty set: peers touched since the last flush (a packet written
//!   into them, an SDP change); [`Scheduler::flush_dirty`] drives each once.
//!
//! Who flushes: the [`MediaCore`](super::MediaCore), never the code that
//! touches a peer. Every public command of the core and `handle_timeout`
//! end with one flush; `handle_receive` does not, because the driver feeds a
//! batch of datagrams and then calls `MediaCore::flush` once, which is what
//! lets one flush carry a whole batch's packets to each subscriber. Code
//! that touches a peer only calls [`Scheduler::mark_dirty`].
//!
//! Transmits and str0m events drained from peers wait here until the core
//! takes them; the scheduler interprets neither.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Instant;

use rustc_hash::FxHashMap;
use str0m::net::Transmit;
use str0m::{Event, Input};

use super::ids::{ParticipantId, PeerKey};
use super::peer::Peer;

/// Every peer of one core, its deadline heap and dirty set.
#[derive(Default)]
pub struct Scheduler {
    peers: FxHashMap<PeerKey, Peer>,
    next_key: u32,
    deadlines: BinaryHeap<Reverse<(Instant, PeerKey)>>,
    dirty: Vec<PeerKey>,
    transmits: VecDeque<Transmit>,
    events: Vec<(PeerKey, Event)>,
    /// Owners of peers str0m failed since the core last looked.
    failed: Vec<ParticipantId>,
}

impl Scheduler {
    /// Takes ownership of `peer` and marks it dirty (a new peer has work to do).
    pub fn insert(&mut self, peer: Peer) -> PeerKey {
        let key = PeerKey(self.next_key);
        self.next_key = self.next_key.wrapping_add(1);
        self.peers.insert(key, peer);
        self.mark_dirty(key);
        key
    }

    /// Gives a peer back; its heap and dirty entries go stale and are skipped.
    pub fn remove(&mut self, key: PeerKey) -> Option<Peer> {
        self.peers.remove(&key)
    }

    pub fn get(&self, key: PeerKey) -> Option<&Peer> {
        self.peers.get(&key)
    }

    pub fn get_mut(&mut self, key: PeerKey) -> Option<&mut Peer> {
        self.peers.get_mut(&key)
    }

    pub fn peers(&self) -> impl Iterator<Item = &Peer> {
        self.peers.values()
    }

    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Lets go of the capacity a crowd left behind: the peer table and the
    /// buffers a flush fills (a storm of joins grows them to its peak).
    pub fn shrink_to_fit(&mut self) {
        self.peers.shrink_to_fit();
        self.deadlines.shrink_to_fit();
        self.dirty.shrink_to_fit();
        self.transmits.shrink_to_fit();
        self.events.shrink_to_fit();
        self.failed.shrink_to_fit();
    }

    /// Queues `key` for a timeout and drain at the next flush.
    pub fn mark_dirty(&mut self, key: PeerKey) {
        if let Some(peer) = self.peers.get_mut(&key) {
            if !peer.dirty {
                peer.dirty = true;
                self.dirty.push(key);
            }
        }
    }

    /// Feeds `input` to peer `key`, drains it and re-arms its deadline. When
    /// str0m fails the peer, its owner is recorded for
    /// [`Scheduler::take_failed`]: one broken peer must not take the worker
    /// down.
    ///
    /// `input` sees the peer first and says what to feed it, or nothing (the
    /// callers' checks of the peer's own state), so a peer is looked up once.
    pub fn drive<'a>(
        &mut self,
        key: PeerKey,
        now: Instant,
        input: impl FnOnce(&mut Peer) -> Option<Input<'a>>,
    ) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let Some(input) = input(peer) else {
            return;
        };
        let result = peer
            .rtc
            .handle_input(input)
            .and_then(|_| peer.drain(key, now, &mut self.transmits, &mut self.events));
        match result {
            Ok(at) => {
                if peer.scheduled != Some(at) {
                    peer.scheduled = Some(at);
                    self.deadlines.push(Reverse((at, key)));
                }
            }
            Err(e) => {
                tracing::warn!(participant = %peer.owner, pc = ?peer.role, error = %e, "peer connection failed");
                self.failed.push(peer.owner);
            }
        }
    }

    /// Drives every peer whose deadline is at or before `now`.
    pub fn run_due(&mut self, now: Instant) {
        while let Some(&Reverse((at, key))) = self.deadlines.peek() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            // A removed peer is skipped by `drive`, a re-armed one here.
            self.drive(key, now, |peer| {
                if peer.scheduled != Some(at) {
                    return None; // stale entry: re-armed since
                }
                peer.scheduled = None;
                Some(Input::Timeout(now))
            });
        }
    }

    /// Drives every dirty peer once with a timeout. Returns whether there
    /// were any. Handling the events this produces may dirty more peers (a
    /// subscriber's keyframe request touches its publisher), so the core
    /// calls this until it returns false.
    pub fn flush_dirty(&mut self, now: Instant) -> bool {
        if self.dirty.is_empty() {
            return false;
        }
        let mut batch = std::mem::take(&mut self.dirty);
        for key in batch.drain(..) {
            self.drive(key, now, |peer| {
                peer.dirty = false;
                Some(Input::Timeout(now))
            });
        }
        if self.dirty.is_empty() {
            self.dirty = batch; // keep the allocation
        }
        true
    }

    /// The earliest deadline of any peer (stale heap entries included: an
    /// early wake-up is harmless, a late one is not).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.peek().map(|Reverse((at, _))| *at)
    }

    /// Moves the str0m events drained so far into `into` (both buffers keep
    /// their allocations).
    pub fn take_events(&mut self, into: &mut Vec<(PeerKey, Event)>) {
        into.append(&mut self.events);
    }

    /// Owners of peers str0m failed since the last call.
    pub fn take_failed(&mut self) -> Vec<ParticipantId> {
        std::mem::take(&mut self.failed)
    }

    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use str0m::media::{Direction, MediaKind};

    use super::*;
    use crate::media::peer::PeerRole;

    /// A server-side peer with a pending offer, so str0m has timers to run.
    fn peer(now: Instant) -> Peer {
        let mut rtc = crate::media::server_rtc(now, PeerRole::Subscribe);
        let mut api = rtc.sdp_api();
        api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let _ = api.apply();
        Peer::new(rtc, ParticipantId(1), PeerRole::Subscribe)
    }

    #[test]
    fn a_new_peer_is_dirty_once_and_flushing_arms_its_deadline() {
        let now = Instant::now();
        let mut s = Scheduler::default();
        let key = s.insert(peer(now));
        s.mark_dirty(key);
        assert_eq!(s.dirty, vec![key], "marking twice queues once");
        assert_eq!(s.next_deadline(), None);
        assert!(s.flush_dirty(now));
        assert!(!s.flush_dirty(now), "nothing left to flush");
        let deadline = s.next_deadline().expect("deadline armed");
        assert!(deadline > now);
        assert_eq!(s.get(key).and_then(|p| p.scheduled), Some(deadline));
    }

    #[test]
    fn run_due_drives_only_due_peers_and_skips_stale_entries() {
        let now = Instant::now();
        let mut s = Scheduler::default();
        let a = s.insert(peer(now));
        let b = s.insert(peer(now));
        s.flush_dirty(now);
        let due = s.next_deadline().unwrap();
        // A stale entry for `a` at an earlier time must not drive it.
        s.deadlines.push(Reverse((now, a)));
        s.run_due(now);
        assert!(s.get(a).unwrap().scheduled.is_some(), "stale entry skipped");
        s.remove(b);
        s.run_due(due);
        let a_next = s.get(a).unwrap().scheduled.expect("re-armed");
        assert!(a_next > due, "driven at its deadline and re-armed later");
        assert!(s.take_failed().is_empty());
    }
}
