//! [`MediaCore`]: every room, participant and peer connection of one worker.
//!
//! The core is sans-IO. Datagrams come in through [`MediaCore::handle_receive`],
//! time through [`MediaCore::handle_timeout`], signaling through the command
//! methods (`join`, `publish_offer`, ...). What it wants sent comes out of
//! [`MediaCore::poll_transmit`] and [`MediaCore::poll_signal`]. It never reads
//! the clock, never touches a socket and never blocks, so tests drive it with
//! fake time.
//!
//! Driving rules (the worker and the simulation tests follow them):
//! - after a batch of `handle_receive` calls, call [`MediaCore::flush`] once:
//!   forwarded packets are written into subscriber `Rtc`s during the batch and
//!   each touched subscriber is drained once at the flush;
//! - call `handle_timeout` no later than [`MediaCore::next_deadline`];
//! - after any call, drain both `poll_*` queues.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use rustc_hash::FxHashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Rid};
use str0m::net::{DatagramRecv, Protocol, Receive, Transmit};
use str0m::rtp::{RtpPacket, RtpWrite};
use str0m::{Candidate, Event, IceConnectionState, Input, Rtc, RtcError};

use super::demux::{stun_local_ufrag, Demux};
use super::forward::{forwarded_extensions, match_payload_type};
use super::ids::{ParticipantId, PeerKey, TrackId};
use super::peer::{Peer, MAX_EARLY_STUN};
use super::room::SubscriptionState;
use super::room::{
    KeyframeThrottle, Participant, ParticipantMode, PublishedTrack, Room, Subscription,
};
use super::stats::{
    kind_index, CoreStats, DropReason, EgressStream, IngressStream, Occupancy, ParticipantView,
    RoomView, Sample, StreamKey,
};
use cascade_protocol::{PcKind, ServerMessage, PROTOCOL_VERSION};

/// Settings of a media core.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// The address advertised as the host candidate. Datagrams handed to
    /// [`MediaCore::handle_receive`] are taken to have arrived there.
    pub candidate_addr: SocketAddr,
    /// How long a participant may take to connect its subscribe connection.
    pub connect_timeout: Duration,
    /// How long ICE may stay disconnected before the participant is removed.
    pub disconnect_grace: Duration,
    /// Minimum spacing of keyframe requests sent to one publisher track.
    pub keyframe_interval: Duration,
}

impl CoreConfig {
    /// Defaults for a core advertising `candidate_addr`.
    pub fn new(candidate_addr: SocketAddr) -> Self {
        CoreConfig {
            candidate_addr,
            connect_timeout: Duration::from_secs(20),
            disconnect_grace: Duration::from_secs(5),
            keyframe_interval: Duration::from_millis(500),
        }
    }
}

/// How often timers that are not str0m's own are checked.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(100);

/// Why a participant left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// The client said `leave` or closed its socket.
    Left,
    /// The subscribe connection never connected.
    ConnectTimeout,
    /// ICE stayed disconnected past the grace period.
    IceDisconnected,
    /// str0m reported an error or closed the connection.
    PeerFailed,
    /// The participant's signaling channel could not keep up.
    SlowConsumer,
    /// The server is shutting down.
    Shutdown,
}

impl LeaveReason {
    /// Every reason, in [`LeaveReason::index`] order.
    pub const ALL: [LeaveReason; 6] = [
        LeaveReason::Left,
        LeaveReason::ConnectTimeout,
        LeaveReason::IceDisconnected,
        LeaveReason::PeerFailed,
        LeaveReason::SlowConsumer,
        LeaveReason::Shutdown,
    ];

    /// Position in [`LeaveReason::ALL`] (and in `CoreStats::leaves_by_reason`).
    pub fn index(&self) -> usize {
        *self as usize
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            LeaveReason::Left => "left",
            LeaveReason::ConnectTimeout => "connect_timeout",
            LeaveReason::IceDisconnected => "ice_disconnected",
            LeaveReason::PeerFailed => "peer_failed",
            LeaveReason::SlowConsumer => "slow_consumer",
            LeaveReason::Shutdown => "shutdown",
        }
    }
}

/// Signaling output of the core.
#[derive(Debug, Clone, PartialEq)]
pub enum SignalOut {
    /// Send this message to this participant.
    Message(ParticipantId, ServerMessage),
    /// This participant is gone; close its signaling channel.
    Removed(ParticipantId, LeaveReason),
}

/// Why [`MediaCore::join`] failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("this participant has already joined")]
    AlreadyJoined,
    #[error("no such participant in this room")]
    NoSuchParticipant,
    #[error("could not set up the connection: {0}")]
    Setup(String),
}

/// Why [`MediaCore::publish_offer`] failed.
#[derive(Debug, thiserror::Error)]
pub enum OfferError {
    #[error("not joined")]
    NotJoined,
    #[error("no connection was provided for the first offer")]
    NoPublishConnection,
    #[error("this participant cannot offer on that connection")]
    WrongConnection,
    #[error("could not set up the connection: {0}")]
    Setup(String),
    #[error("the offer was rejected: {0}")]
    InvalidSdp(String),
}

/// Why [`MediaCore::subscribe_answer`] failed.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error("not joined")]
    NotJoined,
    #[error("no subscribe offer is waiting for an answer")]
    NoPendingOffer,
    #[error("the answer was rejected: {0}")]
    InvalidSdp(String),
}

/// Why [`MediaCore::add_remote_candidate`] failed.
#[derive(Debug, thiserror::Error)]
pub enum CandidateError {
    #[error("not joined")]
    NotJoined,
    #[error("that peer connection has not been negotiated yet")]
    NoSuchConnection,
}

/// Why [`MediaCore::set_muted`] failed.
#[derive(Debug, thiserror::Error)]
pub enum MuteError {
    #[error("not joined")]
    NotJoined,
    #[error("no published track has mid {0:?}")]
    UnknownTrack(String),
}

/// All rooms of one worker and the peer connections that carry them.
pub struct MediaCore {
    pub(super) config: CoreConfig,
    pub(super) rooms: HashMap<String, Room>,
    pub(super) participants: FxHashMap<ParticipantId, Participant>,
    pub(super) peers: FxHashMap<PeerKey, Peer>,
    next_peer: u32,
    next_track: u64,
    demux: Demux,
    deadlines: BinaryHeap<Reverse<(Instant, PeerKey)>>,
    next_housekeeping: Instant,
    /// Peers to feed a timeout and drain at the next flush.
    dirty: Vec<PeerKey>,
    /// Events drained from peers, waiting to be handled (reused buffer).
    events: Vec<(PeerKey, Event)>,
    /// Subscriber list copy used while forwarding (reused buffer).
    fanout: Vec<ParticipantId>,
    /// Packets written to subscriber connections since the last flush.
    unflushed_writes: usize,
    removals: Vec<(ParticipantId, LeaveReason)>,
    transmits: VecDeque<Transmit>,
    pub(super) signals: VecDeque<SignalOut>,
    pub(super) stats: CoreStats,
    /// Per subscriber send stream: what str0m's stats already reported.
    pub(super) egress: FxHashMap<StreamKey, EgressStream>,
    /// Per publisher receive stream (and simulcast layer), likewise.
    ingress: FxHashMap<(PeerKey, Mid, Option<Rid>), IngressStream>,
    /// Participants that joined and have not been forwarded media yet.
    awaiting_media: FxHashMap<ParticipantId, Instant>,
    samples: VecDeque<Sample>,
}

/// Histogram samples kept for the worker; older ones are dropped beyond this.
const MAX_PENDING_SAMPLES: usize = 4096;

impl MediaCore {
    pub fn new(config: CoreConfig, now: Instant) -> Self {
        MediaCore {
            config,
            rooms: HashMap::new(),
            participants: FxHashMap::default(),
            peers: FxHashMap::default(),
            next_peer: 0,
            next_track: 0,
            demux: Demux::default(),
            deadlines: BinaryHeap::new(),
            next_housekeeping: now + HOUSEKEEPING_INTERVAL,
            dirty: Vec::new(),
            events: Vec::new(),
            fanout: Vec::new(),
            unflushed_writes: 0,
            removals: Vec::new(),
            transmits: VecDeque::new(),
            signals: VecDeque::new(),
            stats: CoreStats::default(),
            egress: FxHashMap::default(),
            ingress: FxHashMap::default(),
            awaiting_media: FxHashMap::default(),
            samples: VecDeque::new(),
        }
    }

    // ---------------------------------------------------------------- commands

    /// Adds a bundled-client participant to `room` with its (not yet
    /// negotiated) subscribe connection. The participant gets `joined` and its
    /// first subscribe offer; the room gets `participant_joined`.
    pub fn join(
        &mut self,
        now: Instant,
        id: ParticipantId,
        room: &str,
        name: &str,
        subscribe_rtc: Rtc,
    ) -> Result<(), JoinError> {
        self.join_as(
            now,
            id,
            room,
            name,
            ParticipantMode::Full,
            Some(subscribe_rtc),
        )
    }

    /// Adds a participant in any [`ParticipantMode`]. Only `Full` takes a
    /// subscribe connection here; a WHEP viewer's comes with its offer
    /// ([`MediaCore::client_offer`]).
    pub fn join_as(
        &mut self,
        now: Instant,
        id: ParticipantId,
        room: &str,
        name: &str,
        mode: ParticipantMode,
        subscribe_rtc: Option<Rtc>,
    ) -> Result<(), JoinError> {
        if self.participants.contains_key(&id) {
            return Err(JoinError::AlreadyJoined);
        }
        if let ParticipantMode::Viewer { follow: Some(f) } = mode {
            let present = self.participants.get(&f).is_some_and(|p| p.room == room);
            if !present {
                return Err(JoinError::NoSuchParticipant);
            }
        }
        let subscribe_peer = match (mode, subscribe_rtc) {
            (ParticipantMode::Full, Some(rtc)) => {
                let key = self
                    .add_peer(rtc, id, PcKind::Subscribe)
                    .map_err(JoinError::Setup)?;
                if let Some(peer) = self.peers.get_mut(&key) {
                    peer.awaiting_answer = true; // the server offers on it
                }
                Some(key)
            }
            (ParticipantMode::Full, None) => {
                return Err(JoinError::Setup("no subscribe connection".into()))
            }
            _ => None,
        };
        let members = &mut self.rooms.entry(room.to_string()).or_default().members;
        let others = members.clone();
        members.push(id);

        let mut existing = Vec::with_capacity(others.len());
        let mut subscriptions = Vec::new();
        for other in &others {
            let Some(o) = self.participants.get_mut(other) else {
                continue;
            };
            existing.push(o.info());
            if mode != ParticipantMode::Full {
                continue;
            }
            for track in &mut o.published {
                track.subscribers.push(id);
                subscriptions.push(Subscription::new(*other, track.id, track.kind));
            }
        }
        let participant = Participant {
            id,
            name: name.to_string(),
            room: room.to_string(),
            mode,
            subscribe_peer,
            publish_peer: None,
            published: Vec::new(),
            subscriptions,
            pending_offer: None,
            subscribe_negotiated: false,
            joined_at: now,
            connected: false,
            subscribe_connected: false,
            disconnected_since: None,
        };
        let info = participant.info();
        self.participants.insert(id, participant);
        self.stats.joins += 1;
        if mode != ParticipantMode::PublishOnly {
            self.awaiting_media.insert(id, now); // for the join-time histogram
        }

        self.signal(
            id,
            ServerMessage::Joined {
                version: PROTOCOL_VERSION,
                room: room.to_string(),
                participant_id: id.to_string(),
                participants: existing,
            },
        );
        for other in others {
            self.signal(
                other,
                ServerMessage::ParticipantJoined {
                    participant: info.clone(),
                },
            );
        }
        self.negotiate(id);
        self.flush(now);
        Ok(())
    }

    /// Applies a client's offer on its publish connection and returns the
    /// answer. The first offer must come with the connection's `Rtc`.
    pub fn publish_offer(
        &mut self,
        now: Instant,
        id: ParticipantId,
        rtc: Option<Rtc>,
        offer: SdpOffer,
    ) -> Result<SdpAnswer, OfferError> {
        self.client_offer(now, id, PcKind::Publish, rtc, offer)
    }

    /// Applies a client's offer on connection `pc` (publish for everyone,
    /// subscribe for a WHEP viewer) and returns the answer. The first offer
    /// on a connection must come with its `Rtc`.
    pub fn client_offer(
        &mut self,
        now: Instant,
        id: ParticipantId,
        pc: PcKind,
        rtc: Option<Rtc>,
        offer: SdpOffer,
    ) -> Result<SdpAnswer, OfferError> {
        let participant = self.participants.get(&id).ok_or(OfferError::NotJoined)?;
        let existing = match pc {
            PcKind::Publish
                if participant.mode == ParticipantMode::PublishOnly
                    || participant.mode == ParticipantMode::Full =>
            {
                participant.publish_peer
            }
            PcKind::Subscribe if matches!(participant.mode, ParticipantMode::Viewer { .. }) => {
                participant.subscribe_peer
            }
            _ => return Err(OfferError::WrongConnection),
        };
        let key = match existing {
            Some(key) => key,
            None => {
                let rtc = rtc.ok_or(OfferError::NoPublishConnection)?;
                let key = self.add_peer(rtc, id, pc).map_err(OfferError::Setup)?;
                if let Some(p) = self.participants.get_mut(&id) {
                    match pc {
                        PcKind::Publish => p.publish_peer = Some(key),
                        PcKind::Subscribe => p.subscribe_peer = Some(key),
                    }
                }
                key
            }
        };
        let peer = self.peers.get_mut(&key).ok_or(OfferError::NotJoined)?;
        let answer = peer
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| OfferError::InvalidSdp(e.to_string()))?;
        self.mark_dirty(key);
        self.flush(now);
        Ok(answer)
    }

    /// Applies the client's answer to the outstanding subscribe offer.
    pub fn subscribe_answer(
        &mut self,
        now: Instant,
        id: ParticipantId,
        answer: SdpAnswer,
    ) -> Result<(), AnswerError> {
        let result = self.accept_subscribe_answer(now, id, answer);
        self.negotiate(id);
        self.flush(now);
        result
    }

    /// Adds a trickled remote ICE candidate.
    pub fn add_remote_candidate(
        &mut self,
        now: Instant,
        id: ParticipantId,
        pc: PcKind,
        candidate: Candidate,
    ) -> Result<(), CandidateError> {
        let (key, peer) = self.connection_mut(id, pc)?;
        peer.rtc.add_remote_candidate(candidate);
        self.mark_dirty(key);
        self.flush(now);
        Ok(())
    }

    /// The key and peer of `id`'s connection `pc`.
    pub(super) fn connection_mut(
        &mut self,
        id: ParticipantId,
        pc: PcKind,
    ) -> Result<(PeerKey, &mut Peer), CandidateError> {
        let p = self
            .participants
            .get(&id)
            .ok_or(CandidateError::NotJoined)?;
        let key = match pc {
            PcKind::Subscribe => p.subscribe_peer,
            PcKind::Publish => p.publish_peer,
        }
        .ok_or(CandidateError::NoSuchConnection)?;
        let peer = self
            .peers
            .get_mut(&key)
            .ok_or(CandidateError::NoSuchConnection)?;
        Ok((key, peer))
    }

    /// Records that the track on publish-connection `mid` is (un)muted and
    /// tells the room.
    pub fn set_muted(
        &mut self,
        id: ParticipantId,
        mid: &str,
        muted: bool,
    ) -> Result<(), MuteError> {
        let p = self.participants.get_mut(&id).ok_or(MuteError::NotJoined)?;
        let mid = Mid::from(mid);
        let track = p
            .published
            .iter_mut()
            .find(|t| t.mid == mid)
            .ok_or_else(|| MuteError::UnknownTrack(mid.to_string()))?;
        if track.muted == muted {
            return Ok(());
        }
        track.muted = muted;
        let info = track.info();
        let room = p.room.clone();
        self.broadcast(
            &room,
            id,
            ServerMessage::TrackUpdated {
                participant_id: id.to_string(),
                track: info,
            },
        );
        Ok(())
    }

    /// Removes a participant, its connections and its tracks.
    pub fn leave(&mut self, now: Instant, id: ParticipantId, reason: LeaveReason) {
        self.remove_participant(id, reason);
        self.flush(now);
    }

    /// Removes everyone (server shutdown).
    pub fn close_all(&mut self, now: Instant) {
        let ids: Vec<ParticipantId> = self.participants.keys().copied().collect();
        for id in ids {
            self.remove_participant(id, LeaveReason::Shutdown);
        }
        self.flush(now);
    }

    // ------------------------------------------------------------------ input

    /// Handles one UDP datagram that arrived from `source`.
    pub fn handle_receive(&mut self, now: Instant, source: SocketAddr, datagram: &[u8]) {
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += datagram.len() as u64;
        let Some(key) = self.demux.route(source, datagram) else {
            self.stats.datagrams_unroutable += 1;
            return;
        };
        let Ok(contents) = DatagramRecv::try_from(datagram) else {
            self.stats.datagrams_malformed += 1;
            return;
        };
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if peer.awaiting_answer && stun_local_ufrag(datagram).is_some() {
            if peer.early_stun.len() < MAX_EARLY_STUN {
                peer.early_stun.push((source, datagram.to_vec()));
            }
            tracing::debug!(%source, held = peer.early_stun.len(), "ICE check before the answer: held");
            return;
        }
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.config.candidate_addr,
                contents,
            },
        );
        let result = peer
            .rtc
            .handle_input(input)
            .and_then(|_| peer.drain(key, now, &mut self.transmits, &mut self.events));
        self.after_drain(key, result);
        self.process_events(now);
    }

    /// Advances time: runs every peer whose deadline passed and the core's own
    /// timers (connect timeout, ICE grace, deferred keyframe requests).
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse((at, key))) = self.deadlines.peek() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            let Some(peer) = self.peers.get_mut(&key) else {
                continue;
            };
            if peer.scheduled != Some(at) {
                continue; // stale entry
            }
            peer.scheduled = None;
            let result = peer
                .rtc
                .handle_input(Input::Timeout(now))
                .and_then(|_| peer.drain(key, now, &mut self.transmits, &mut self.events));
            self.after_drain(key, result);
        }
        self.process_events(now);
        if now >= self.next_housekeeping {
            self.next_housekeeping = now + HOUSEKEEPING_INTERVAL;
            self.housekeeping(now);
        }
        self.flush(now);
    }

    /// Feeds a timeout to, and drains, every peer touched since the last
    /// flush: this is when forwarded packets actually leave.
    pub fn flush(&mut self, now: Instant) {
        self.unflushed_writes = 0;
        // Draining can make more peers dirty (a subscriber's keyframe request
        // touches its publisher); a few rounds settle it.
        for _ in 0..8 {
            if self.dirty.is_empty() {
                break;
            }
            let mut batch = std::mem::take(&mut self.dirty);
            for key in batch.drain(..) {
                let Some(peer) = self.peers.get_mut(&key) else {
                    continue;
                };
                peer.dirty = false;
                let result = peer
                    .rtc
                    .handle_input(Input::Timeout(now))
                    .and_then(|_| peer.drain(key, now, &mut self.transmits, &mut self.events));
                self.after_drain(key, result);
            }
            if self.dirty.is_empty() {
                self.dirty = batch; // keep the allocation
            }
            self.process_events(now);
        }
    }

    // ----------------------------------------------------------------- output

    /// Packets written to subscriber connections since the last
    /// [`MediaCore::flush`]. They leave only when it runs, so a driver that
    /// feeds a large batch flushes early once this grows: the first packets
    /// of the batch then do not wait for the work of its last.
    #[must_use]
    pub fn unflushed_writes(&self) -> usize {
        self.unflushed_writes
    }

    /// The next datagram to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next signaling output.
    #[must_use]
    pub fn poll_signal(&mut self) -> Option<SignalOut> {
        self.signals.pop_front()
    }

    /// When [`MediaCore::handle_timeout`] must be called next, at the latest.
    pub fn next_deadline(&self) -> Instant {
        match self.deadlines.peek() {
            Some(Reverse((at, _))) => (*at).min(self.next_housekeeping),
            None => self.next_housekeeping,
        }
    }

    /// Counters since start.
    pub fn stats(&self) -> &CoreStats {
        &self.stats
    }

    /// Number of participants currently on this core.
    pub fn participant_count(&self) -> usize {
        self.participants.len()
    }

    /// Number of rooms currently on this core.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Number of live peer connections (for leak checks).
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// The next histogram sample (RTT, bandwidth estimate, join time).
    #[must_use]
    pub fn poll_sample(&mut self) -> Option<Sample> {
        self.samples.pop_front()
    }

    /// Rooms, participants and tracks right now (for gauges).
    pub fn occupancy(&self) -> Occupancy {
        let mut o = Occupancy {
            rooms: self.rooms.len(),
            participants: self.participants.len(),
            peers: self.peers.len(),
            ..Occupancy::default()
        };
        for p in self.participants.values() {
            for t in &p.published {
                o.published_tracks[kind_index(t.kind)] += 1;
            }
            for s in &p.subscriptions {
                if matches!(s.state, SubscriptionState::Open(_)) && !s.removed {
                    o.subscribed_tracks[kind_index(s.kind)] += 1;
                }
            }
        }
        o
    }

    /// Every room with its participants and their tracks (admin endpoint).
    pub fn rooms_view(&self) -> Vec<RoomView> {
        let mut rooms: Vec<RoomView> = self
            .rooms
            .iter()
            .map(|(name, room)| RoomView {
                name: name.clone(),
                participants: room
                    .members
                    .iter()
                    .filter_map(|id| self.participants.get(id))
                    .map(ParticipantView::from)
                    .collect(),
            })
            .collect();
        rooms.sort_by(|a, b| a.name.cmp(&b.name));
        rooms
    }

    fn push_sample(&mut self, sample: Sample) {
        if self.samples.len() >= MAX_PENDING_SAMPLES {
            self.samples.pop_front();
            self.stats.samples_dropped += 1;
        }
        self.samples.push_back(sample);
    }

    // -------------------------------------------------------------- internals

    fn add_peer(
        &mut self,
        mut rtc: Rtc,
        owner: ParticipantId,
        kind: PcKind,
    ) -> Result<PeerKey, String> {
        let candidate =
            Candidate::host(self.config.candidate_addr, "udp").map_err(|e| e.to_string())?;
        rtc.add_local_candidate(candidate);
        let ufrag = rtc.direct_api().local_ice_credentials().ufrag;
        let key = PeerKey(self.next_peer);
        self.next_peer = self.next_peer.wrapping_add(1);
        tracing::debug!(%ufrag, ?kind, "peer added");
        self.demux.insert(ufrag, key);
        self.peers.insert(key, Peer::new(rtc, owner, kind));
        self.mark_dirty(key);
        Ok(key)
    }

    pub(super) fn register_ufrag(&mut self, ufrag: String, key: PeerKey) {
        self.demux.insert(ufrag, key);
    }

    pub(super) fn mark_dirty(&mut self, key: PeerKey) {
        if let Some(peer) = self.peers.get_mut(&key) {
            if !peer.dirty {
                peer.dirty = true;
                self.dirty.push(key);
            }
        }
    }

    /// Books the result of feeding and draining a peer: its next deadline, or
    /// its owner's removal when str0m failed (one broken peer must not take
    /// the worker down).
    fn after_drain(&mut self, key: PeerKey, result: Result<Instant, RtcError>) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        match result {
            Ok(at) => {
                if peer.scheduled != Some(at) {
                    peer.scheduled = Some(at);
                    self.deadlines.push(Reverse((at, key)));
                }
            }
            Err(e) => {
                tracing::warn!(participant = %peer.owner, pc = ?peer.kind, error = %e, "peer connection failed");
                self.stats.peer_errors += 1;
                self.removals.push((peer.owner, LeaveReason::PeerFailed));
            }
        }
    }

    fn process_events(&mut self, now: Instant) {
        while !self.events.is_empty() {
            let mut events = std::mem::take(&mut self.events);
            for (key, event) in events.drain(..) {
                self.handle_event(now, key, event);
            }
            if self.events.is_empty() {
                self.events = events; // keep the allocation
            }
        }
        while let Some((id, reason)) = self.removals.pop() {
            self.remove_participant(id, reason);
        }
    }

    fn handle_event(&mut self, now: Instant, key: PeerKey, event: Event) {
        let Some(peer) = self.peers.get(&key) else {
            return; // removed while its events were queued
        };
        let (owner, kind) = (peer.owner, peer.kind);
        match (kind, event) {
            (PcKind::Publish, Event::RtpPacket(packet)) => self.forward(now, key, owner, packet),
            (PcKind::Subscribe, Event::MediaEgressStats(report)) => {
                if let Some(stream) = self.egress.get_mut(&(key, report.mid)) {
                    stream.update(&report, &mut self.stats);
                }
                if let Some(rtt) = report.rtt {
                    self.push_sample(Sample::Rtt(rtt));
                }
            }
            (PcKind::Publish, Event::MediaIngressStats(report)) => {
                let Some(kind) = peer.rtc.media(report.mid).map(|m| m.kind()) else {
                    return;
                };
                self.ingress
                    .entry((key, report.mid, report.rid))
                    .or_insert_with(|| IngressStream::new(kind))
                    .update(&report, &mut self.stats);
            }
            (PcKind::Subscribe, Event::PeerStats(report)) => {
                if let Some(estimate) = report.bwe_tx {
                    self.push_sample(Sample::BandwidthEstimate(estimate.as_f64()));
                }
            }
            (PcKind::Publish, Event::MediaAdded(added)) => {
                self.on_publish_media(owner, added.mid, added.kind, added.direction)
            }
            (PcKind::Publish, Event::MediaChanged(changed)) => {
                if let Some(kind) = peer.rtc.media(changed.mid).map(|m| m.kind()) {
                    self.on_publish_media(owner, changed.mid, kind, changed.direction);
                }
            }
            (PcKind::Subscribe, Event::MediaAdded(added)) => {
                // A WHEP viewer offered an m-line to receive on.
                self.add_slot(owner, added.mid, added.kind);
            }
            (PcKind::Subscribe, Event::KeyframeRequest(req)) => {
                self.stats.keyframe_requests_received += 1;
                let source = self
                    .participants
                    .get(&owner)
                    .and_then(|p| p.subscription_by_mid(req.mid))
                    .map(|s| (s.source, s.track));
                if let Some((source, track)) = source {
                    self.request_keyframe(now, source, track);
                }
            }
            (_, Event::Connected) => {
                tracing::debug!(participant = %owner, pc = ?kind, "connected");
                if let Some(peer) = self.peers.get_mut(&key) {
                    peer.connected = true;
                }
                if let Some(p) = self.participants.get_mut(&owner) {
                    p.connected = true;
                }
                if kind == PcKind::Subscribe {
                    self.on_subscriber_connected(now, owner);
                }
            }
            (_, Event::IceConnectionStateChange(state)) => {
                tracing::debug!(participant = %owner, pc = ?kind, ?state, "ice state");
                // A connection that never connected is the connect timeout's
                // business; "disconnected" only means something after "connected".
                let was_connected = peer.connected;
                if let Some(p) = self.participants.get_mut(&owner) {
                    match state {
                        IceConnectionState::Disconnected if was_connected => {
                            p.disconnected_since.get_or_insert(now);
                        }
                        IceConnectionState::Connected | IceConnectionState::Completed => {
                            p.disconnected_since = None;
                        }
                        _ => {}
                    }
                }
            }
            (_, Event::Closed) => self.removals.push((owner, LeaveReason::PeerFailed)),
            _ => {}
        }
    }

    /// A publish-connection m-line appeared or changed direction.
    fn on_publish_media(
        &mut self,
        owner: ParticipantId,
        mid: Mid,
        kind: MediaKind,
        dir: Direction,
    ) {
        let Some(p) = self.participants.get(&owner) else {
            return;
        };
        let existing = p.published.iter().find(|t| t.mid == mid).map(|t| t.id);
        match (dir.is_receiving(), existing) {
            (true, None) => self.publish_track(owner, mid, kind),
            (false, Some(track)) => self.unpublish_track(owner, track),
            _ => {}
        }
    }

    fn publish_track(&mut self, owner: ParticipantId, mid: Mid, kind: MediaKind) {
        let id = TrackId(self.next_track);
        self.next_track += 1;
        let Some(p) = self.participants.get(&owner) else {
            return;
        };
        let room = p.room.clone();
        let others = self.room_members_except(&room, owner);
        // Bundled clients get an m-line per track; WHEP viewers may pick the
        // track up for a slot below; WHIP publishers receive nothing.
        let mut full = Vec::with_capacity(others.len());
        let mut viewers = Vec::new();
        for other in &others {
            if let Some(o) = self.participants.get_mut(other) {
                match o.mode {
                    ParticipantMode::Full => {
                        o.subscriptions.push(Subscription::new(owner, id, kind));
                        full.push(*other);
                    }
                    ParticipantMode::Viewer { .. } => viewers.push(*other),
                    ParticipantMode::PublishOnly => {}
                }
            }
        }
        let track = PublishedTrack {
            id,
            mid,
            kind,
            muted: false,
            ssrcs: Vec::new(),
            params: Vec::new(),
            subscribers: full,
            keyframes: KeyframeThrottle::default(),
        };
        let info = track.info();
        if let Some(p) = self.participants.get_mut(&owner) {
            p.published.push(track);
        }
        tracing::debug!(participant = %owner, track = %id, %mid, ?kind, "track published");
        for other in others {
            self.signal(
                other,
                ServerMessage::TrackPublished {
                    participant_id: owner.to_string(),
                    track: info.clone(),
                },
            );
            self.negotiate(other);
        }
        for viewer in viewers {
            self.assign_slots(viewer);
        }
    }

    fn unpublish_track(&mut self, owner: ParticipantId, track: TrackId) {
        let Some(p) = self.participants.get_mut(&owner) else {
            return;
        };
        let Some(index) = p.published.iter().position(|t| t.id == track) else {
            return;
        };
        let removed = p.published.remove(index);
        let room = p.room.clone();
        for subscriber in &removed.subscribers {
            self.drop_subscription(*subscriber, owner, track);
        }
        self.broadcast(
            &room,
            owner,
            ServerMessage::TrackRemoved {
                participant_id: owner.to_string(),
                track_id: track.to_string(),
            },
        );
    }

    /// Takes `track` of `source` away from `subscriber`'s subscribe connection.
    fn drop_subscription(
        &mut self,
        subscriber: ParticipantId,
        source: ParticipantId,
        track: TrackId,
    ) {
        let Some(p) = self.participants.get_mut(&subscriber) else {
            return;
        };
        for sub in p.subscriptions.iter_mut() {
            if sub.source == source && sub.track == track {
                if sub.slot {
                    sub.detached = true;
                } else {
                    sub.removed = true;
                }
            }
        }
        self.negotiate(subscriber);
        self.assign_slots(subscriber);
    }

    fn remove_participant(&mut self, id: ParticipantId, reason: LeaveReason) {
        let Some(p) = self.participants.remove(&id) else {
            return;
        };
        tracing::debug!(participant = %id, room = %p.room, reason = reason.as_str(), "participant removed");
        self.stats.leaves += 1;
        self.stats.leaves_by_reason[reason.index()] += 1;
        self.awaiting_media.remove(&id);
        let peers = [p.subscribe_peer, p.publish_peer];
        self.egress.retain(|(k, _), _| !peers.contains(&Some(*k)));
        self.ingress
            .retain(|(k, _, _), _| !peers.contains(&Some(*k)));
        for key in p.subscribe_peer.into_iter().chain(p.publish_peer) {
            if let Some(mut peer) = self.peers.remove(&key) {
                peer.rtc.disconnect();
            }
            self.demux.remove(key);
        }
        // Tell the room first: clients drop the tile before the re-offer.
        let others = self.room_members_except(&p.room, id);
        if others.is_empty() {
            self.rooms.remove(&p.room);
        } else if let Some(room) = self.rooms.get_mut(&p.room) {
            room.members.retain(|m| *m != id);
        }
        for other in others {
            self.signal(
                other,
                ServerMessage::ParticipantLeft {
                    participant_id: id.to_string(),
                },
            );
        }
        for track in &p.published {
            for subscriber in &track.subscribers {
                self.drop_subscription(*subscriber, id, track.id);
            }
        }
        for sub in &p.subscriptions {
            if let Some(source) = self.participants.get_mut(&sub.source) {
                if let Some(track) = source.track_mut(sub.track) {
                    track.subscribers.retain(|s| *s != id);
                }
            }
        }
        self.signals.push_back(SignalOut::Removed(id, reason));
    }

    /// Forwards one publisher packet to every subscriber of its track.
    fn forward(
        &mut self,
        now: Instant,
        publisher_key: PeerKey,
        owner: ParticipantId,
        packet: RtpPacket,
    ) {
        let Some(publisher) = self.participants.get_mut(&owner) else {
            return;
        };
        let Some(peer) = self.peers.get_mut(&publisher_key) else {
            return;
        };
        let ssrc = packet.header.ssrc;
        let index = match publisher
            .published
            .iter()
            .position(|t| t.ssrcs.contains(&ssrc))
        {
            Some(i) => i,
            None => {
                let Some(mid) = peer.rtc.direct_api().stream_rx(&ssrc).map(|s| s.mid()) else {
                    self.stats.rtp_dropped += 1;
                    return;
                };
                let Some(i) = publisher.published.iter().position(|t| t.mid == mid) else {
                    self.stats.rtp_dropped += 1;
                    return;
                };
                publisher.published[i].ssrcs.push(ssrc);
                i
            }
        };
        let track = &mut publisher.published[index];
        let pt = packet.header.payload_type;
        let params = match track.params.iter().find(|(p, _)| *p == pt) {
            Some((_, params)) => *params,
            None => {
                let Some(params) = peer
                    .rtc
                    .codec_config()
                    .params()
                    .iter()
                    .find(|p| p.pt() == pt)
                else {
                    self.stats
                        .count_dropped(track.kind, DropReason::UnknownCodec);
                    return;
                };
                track.params.push((pt, *params));
                *params
            }
        };
        let (track_id, kind) = (track.id, track.kind);
        self.stats.count_rtp_in(kind, packet.payload.len());
        self.fanout.clear();
        self.fanout.extend_from_slice(&track.subscribers);

        let extensions = forwarded_extensions(&packet.header.ext_vals);
        for i in 0..self.fanout.len() {
            let subscriber_id = self.fanout[i];
            let Some(subscriber) = self.participants.get_mut(&subscriber_id) else {
                continue;
            };
            let Some(sub) = subscriber
                .subscriptions
                .iter_mut()
                .find(|s| s.source == owner && s.track == track_id && !s.removed)
            else {
                continue;
            };
            let SubscriptionState::Open(mid) = sub.state else {
                continue; // not negotiated yet
            };
            let Some(key) = subscriber.subscribe_peer else {
                continue;
            };
            let Some(peer) = self.peers.get_mut(&key) else {
                continue;
            };
            let out_pt = match sub.pts.get(pt) {
                Some(out) => out,
                None => {
                    let accepted = peer
                        .rtc
                        .media(mid)
                        .map(|m| m.remote_pts().to_vec())
                        .unwrap_or_default();
                    let out =
                        match_payload_type(&params, peer.rtc.codec_config().params(), &accepted);
                    sub.pts.insert(pt, out);
                    out
                }
            };
            let Some(out_pt) = out_pt else {
                self.stats.count_dropped(kind, DropReason::CodecUnsupported);
                continue; // the subscriber cannot decode this codec
            };
            let Some(seq) = sub.seq.rewrite(ssrc, *packet.seq_no) else {
                self.stats.count_dropped(kind, DropReason::TooOld);
                continue;
            };
            let timestamp =
                sub.timestamps
                    .rewrite(ssrc, packet.header.timestamp, frame_step(&params));
            let mut api = peer.rtc.direct_api();
            let Some(stream) = api.stream_tx_by_mid(mid, None) else {
                self.stats.count_dropped(kind, DropReason::NoStream);
                continue;
            };
            stream.write_rtp(
                RtpWrite::new(
                    out_pt,
                    seq.into(),
                    timestamp,
                    packet.timestamp,
                    packet.payload.clone(),
                )
                .marker(packet.header.marker)
                .ext_vals(extensions.clone())
                .nackable(kind == MediaKind::Video),
            );
            self.stats.count_rtp_forwarded(kind, packet.payload.len());
            self.unflushed_writes += 1;
            match self.egress.get_mut(&(key, mid)) {
                Some(stream) => stream.written += 1,
                None => {
                    let mut stream = EgressStream::new(kind);
                    stream.written = 1;
                    self.egress.insert((key, mid), stream);
                }
            }
            if !self.awaiting_media.is_empty() {
                if let Some(joined) = self.awaiting_media.remove(&subscriber_id) {
                    self.push_sample(Sample::JoinToFirstMedia(
                        now.saturating_duration_since(joined),
                    ));
                }
            }
            self.mark_dirty(key);
        }
    }

    /// Asks the publisher of `track` for a keyframe, throttled per track.
    fn request_keyframe(&mut self, now: Instant, source: ParticipantId, track: TrackId) {
        let interval = self.config.keyframe_interval;
        let Some(p) = self.participants.get_mut(&source) else {
            return;
        };
        let Some(publish_peer) = p.publish_peer else {
            return;
        };
        let Some(t) = p.track_mut(track) else {
            return;
        };
        if t.kind != MediaKind::Video || !t.keyframes.request(now, interval) {
            return;
        }
        let mid = t.mid;
        self.send_keyframe_request(publish_peer, mid);
    }

    fn send_keyframe_request(&mut self, publish_peer: PeerKey, mid: Mid) {
        let Some(peer) = self.peers.get_mut(&publish_peer) else {
            return;
        };
        let mut api = peer.rtc.direct_api();
        let Some(stream) = api.stream_rx_by_mid(mid, None) else {
            return; // nothing received yet: the first frame is a keyframe anyway
        };
        stream.request_keyframe(KeyframeRequestKind::Pli);
        self.stats.keyframe_requests_sent += 1;
        self.mark_dirty(publish_peer);
    }

    fn on_subscriber_connected(&mut self, now: Instant, id: ParticipantId) {
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        p.subscribe_connected = true;
        self.stats.subscribers_connected += 1;
        let wanted: Vec<(ParticipantId, TrackId)> = p
            .subscriptions
            .iter()
            .filter(|s| s.kind == MediaKind::Video && !s.detached)
            .filter(|s| matches!(s.state, SubscriptionState::Open(_)))
            .map(|s| (s.source, s.track))
            .collect();
        self.request_keyframes_for(now, wanted);
    }

    fn housekeeping(&mut self, now: Instant) {
        let interval = self.config.keyframe_interval;
        let mut deferred_keyframes = Vec::new();
        for p in self.participants.values_mut() {
            if !p.connected && now >= p.joined_at + self.config.connect_timeout {
                self.removals.push((p.id, LeaveReason::ConnectTimeout));
            } else if p
                .disconnected_since
                .is_some_and(|since| now >= since + self.config.disconnect_grace)
            {
                self.removals.push((p.id, LeaveReason::IceDisconnected));
            }
            if let Some(publish_peer) = p.publish_peer {
                for t in &mut p.published {
                    if t.keyframes.due(now, interval) {
                        deferred_keyframes.push((publish_peer, t.mid));
                    }
                }
            }
        }
        for (peer, mid) in deferred_keyframes {
            self.send_keyframe_request(peer, mid);
        }
        let dead: Vec<ParticipantId> = self
            .peers
            .values()
            .filter(|peer| !peer.rtc.is_alive())
            .map(|peer| peer.owner)
            .collect();
        for id in dead {
            self.removals.push((id, LeaveReason::PeerFailed));
        }
        while let Some((id, reason)) = self.removals.pop() {
            self.remove_participant(id, reason);
        }
    }

    pub(super) fn signal(&mut self, to: ParticipantId, message: ServerMessage) {
        self.signals.push_back(SignalOut::Message(to, message));
    }

    /// Sends `message` to everyone in `room` but `except`.
    fn broadcast(&mut self, room: &str, except: ParticipantId, message: ServerMessage) {
        for other in self.room_members_except(room, except) {
            self.signal(other, message.clone());
        }
    }

    pub(super) fn room_members_except(
        &self,
        room: &str,
        except: ParticipantId,
    ) -> Vec<ParticipantId> {
        self.rooms
            .get(room)
            .map(|r| r.members.iter().copied().filter(|m| *m != except).collect())
            .unwrap_or_default()
    }

    pub(super) fn request_keyframes_for(
        &mut self,
        now: Instant,
        wanted: Vec<(ParticipantId, TrackId)>,
    ) {
        for (source, track) in wanted {
            self.request_keyframe(now, source, track);
        }
    }
}

/// A plausible RTP timestamp gap between frames of `params`' codec: one
/// 20 ms audio frame, one 30 fps video frame. Used to keep timestamps moving
/// forward when a WHEP slot switches source.
fn frame_step(params: &str0m::format::PayloadParams) -> u32 {
    let rate = params.spec().clock_rate.get();
    match params.spec().codec.is_audio() {
        true => rate / 50,
        false => rate / 30,
    }
}
