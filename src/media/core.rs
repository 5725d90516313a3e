//! [`MediaCore`]: every room, participant and peer connection of one worker,
//! and the public face of the sans-IO core.
//!
//! Datagrams come in through [`MediaCore::handle_receive`], time through
//! [`MediaCore::handle_timeout`], signaling through the command methods
//! (`join`, `publish_offer`, ...). What it wants sent comes out of
//! [`MediaCore::poll_transmit`], what happened out of
//! [`MediaCore::poll_event`] (domain events, see `events`). It never reads
//! the clock, never touches a socket and never blocks, so tests drive it
//! with fake time.
//!
//! Driving rules (the worker and the simulation tests follow them):
//! - after a batch of `handle_receive` calls, call [`MediaCore::flush`] once:
//!   forwarded packets are written into subscriber `Rtc`s during the batch and
//!   each touched subscriber is drained once at the flush. Every other call
//!   flushes before it returns (see `scheduler` for the rule);
//! - call `handle_timeout` no later than [`MediaCore::next_deadline`];
//! - after any call, drain `poll_transmit` and `poll_event`.
//!
//! The work is split by domain: `membership` (who is where), `scheduler`
//! (driving `Rtc`s), `forwarder` and `downtrack` (the packet path),
//! `keyframes`, `negotiate` (subscribe offers), `viewer` (WHEP slots),
//! `tracks` (publishing), `lifecycle` (admission, removal, timeouts), `dispatch`
//! (str0m events to all of those).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{MediaKind, Mid};
use str0m::net::{DatagramRecv, Protocol, Receive, Transmit};
use str0m::{Candidate, Event, IceCreds, Input, Rtc};

use super::data::DataLimits;
use super::demux::{stun_local_ufrag, Demux, Route};
use super::errors::{
    AnswerError, CandidateError, JoinError, LeaveReason, MuteError, OfferError, PreferenceError,
};
use super::events::{CoreEvent, ParticipantEvent, TrackSource};
use super::ids::{DisplayName, Identity, ParticipantId, PeerKey, RoomName, TrackId};
use super::lifecycle::answer_carries_media;
use super::membership::{MediaGrants, Membership, ParticipantMode, TrackRef, VideoPreference};
use super::peer::{PeerRole, MAX_EARLY_STUN, MAX_REMOTE_CANDIDATES};
use super::scheduler::Scheduler;
use super::stats::{CoreStats, Sample, Telemetry};

/// Settings of a media core.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// The address advertised as the host candidate. Datagrams handed to
    /// [`MediaCore::handle_receive`] are taken to have arrived there.
    pub candidate_addr: SocketAddr,
    /// The address advertised as the passive ICE-TCP host candidate, if
    /// the worker listens on TCP: frames handed to
    /// [`MediaCore::handle_tcp_frame`] arrived there.
    pub tcp_candidate_addr: Option<SocketAddr>,
    /// How long a participant may take to connect its subscribe connection.
    pub connect_timeout: Duration,
    /// How long ICE may stay disconnected before the participant is removed.
    pub disconnect_grace: Duration,
    /// Minimum spacing of keyframe requests sent to one publisher track.
    pub keyframe_interval: Duration,
    /// Joins beyond this many participants in a room are refused.
    pub max_participants_per_room: usize,
    /// What one participant may send on the relayed data channels.
    pub data_limits: DataLimits,
}

impl CoreConfig {
    /// Defaults for a core advertising `candidate_addr`.
    pub fn new(candidate_addr: SocketAddr) -> Self {
        CoreConfig {
            candidate_addr,
            tcp_candidate_addr: None,
            connect_timeout: Duration::from_secs(20),
            disconnect_grace: Duration::from_secs(5),
            keyframe_interval: Duration::from_millis(500),
            max_participants_per_room: 1000,
            data_limits: DataLimits::default(),
        }
    }
}

/// How often timers that are not str0m's own are checked.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(100);

/// The most publish m-lines a participant may name sources for.
pub const MAX_NAMED_SOURCES: usize = 16;

/// Who wants to join, where, and how.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub id: ParticipantId,
    pub room: RoomName,
    pub name: DisplayName,
    pub mode: ParticipantMode,
    /// The access token's identity: a newer join with the same identity in
    /// the room replaces this one. `None` in open mode.
    pub identity: Option<Identity>,
    pub grants: MediaGrants,
}

/// All rooms of one worker and the peer connections that carry them.
pub struct MediaCore {
    pub(super) config: CoreConfig,
    pub(super) members: Membership,
    pub(super) scheduler: Scheduler,
    pub(super) demux: Demux,
    pub(super) telemetry: Telemetry,
    pub(super) next_track: u64,
    next_housekeeping: Instant,
    /// Subscriber list copy used while forwarding (reused buffer).
    pub(super) fanout: Vec<ParticipantId>,
    /// Packets written to subscriber connections since the last flush.
    pub(super) unflushed_writes: usize,
    /// Participants to remove once the current event batch is handled.
    pub(super) removals: Vec<(ParticipantId, LeaveReason)>,
    /// str0m events taken from the scheduler, being handled (reused buffer).
    rtc_events: Vec<(PeerKey, Event)>,
    pub(super) events: VecDeque<CoreEvent>,
    /// A publisher's simulcast layer started or stopped since the last
    /// allocation round.
    pub(super) layers_changed: bool,
    /// When every subscriber's allocation is redone next.
    pub(super) next_allocation: Instant,
    /// A relayed data message's envelope being written (reused buffer).
    pub(super) data_buffer: Vec<u8>,
    /// When rooms' active speakers are decided next.
    pub(super) next_speaker_round: Instant,
}

impl MediaCore {
    pub fn new(config: CoreConfig, now: Instant) -> Self {
        MediaCore {
            config,
            members: Membership::default(),
            scheduler: Scheduler::default(),
            demux: Demux::default(),
            telemetry: Telemetry::default(),
            next_track: 0,
            next_housekeeping: now + HOUSEKEEPING_INTERVAL,
            fanout: Vec::new(),
            unflushed_writes: 0,
            removals: Vec::new(),
            rtc_events: Vec::new(),
            events: VecDeque::new(),
            layers_changed: false,
            next_allocation: now,
            data_buffer: Vec::new(),
            next_speaker_round: now + super::speakers::SPEAKER_ROUND,
        }
    }

    // ---------------------------------------------------------------- commands

    /// Adds a bundled-client participant (`ParticipantMode::Full`) with its
    /// not yet negotiated subscribe connection, on which the server offers.
    /// It is told `Joined` and gets its first subscribe offer; the room is
    /// told it joined.
    pub fn join(
        &mut self,
        now: Instant,
        request: JoinRequest,
        subscribe_rtc: Rtc,
    ) -> Result<(), JoinError> {
        if request.mode != ParticipantMode::Full {
            return Err(JoinError::WrongMode);
        }
        self.check_join(&request)?;
        let key = self
            .add_peer(subscribe_rtc, request.id, PeerRole::Subscribe)
            .map_err(JoinError::Setup)?;
        if let Some(peer) = self.scheduler.get_mut(key) {
            peer.awaiting_answer = true; // the server offers on it
        }
        self.admit(now, request, Some(key), None);
        self.flush(now);
        Ok(())
    }

    /// Adds a WHIP publisher (`PublishOnly`, offering its publish connection)
    /// or a WHEP viewer (`Viewer`, offering its subscribe connection) in one
    /// step and returns the answer. An offer that is rejected leaves no trace
    /// in the room: nobody is told of a join.
    pub fn join_with_offer(
        &mut self,
        now: Instant,
        request: JoinRequest,
        rtc: Rtc,
        offer: SdpOffer,
    ) -> Result<SdpAnswer, JoinError> {
        let role = match request.mode {
            ParticipantMode::PublishOnly => PeerRole::Publish,
            ParticipantMode::Viewer { .. } => PeerRole::Subscribe,
            ParticipantMode::Full => return Err(JoinError::WrongMode),
        };
        self.check_join(&request)?;
        // Answer before the connection joins the core: a rejected offer then
        // has nothing to undo.
        let mut rtc = self.with_host_candidate(rtc).map_err(JoinError::Setup)?;
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| JoinError::InvalidSdp(e.to_string()))?;
        if !answer_carries_media(&answer.to_sdp_string(), role) {
            let what = match role {
                PeerRole::Publish => "receive",
                PeerRole::Subscribe => "send",
            };
            return Err(JoinError::NoUsableMedia(what));
        }
        let key = self.insert_peer(rtc, request.id, role);
        let (subscribe, publish) = match role {
            PeerRole::Publish => (None, Some(key)),
            PeerRole::Subscribe => (Some(key), None),
        };
        self.admit(now, request, subscribe, publish);
        self.flush(now);
        Ok(answer)
    }

    /// Applies a bundled client's offer on its publish connection and returns
    /// the answer. The first offer must come with the connection's `Rtc`.
    pub fn publish_offer(
        &mut self,
        now: Instant,
        id: ParticipantId,
        rtc: Option<Rtc>,
        offer: SdpOffer,
    ) -> Result<SdpAnswer, OfferError> {
        let p = self
            .members
            .participants
            .get(&id)
            .ok_or(OfferError::NotJoined)?;
        if p.mode != ParticipantMode::Full {
            return Err(OfferError::WrongConnection);
        }
        if !p.grants.publish {
            return Err(OfferError::Forbidden);
        }
        let key = match p.publish_peer {
            Some(key) => key,
            None => {
                let rtc = rtc.ok_or(OfferError::NoPublishConnection)?;
                let key = self
                    .add_peer(rtc, id, PeerRole::Publish)
                    .map_err(OfferError::Setup)?;
                if let Some(p) = self.members.participants.get_mut(&id) {
                    p.publish_peer = Some(key);
                }
                key
            }
        };
        let peer = self.scheduler.get_mut(key).ok_or(OfferError::NotJoined)?;
        let answer = peer
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| OfferError::InvalidSdp(e.to_string()));
        // An offer that restarts ICE (new credentials) got new local ones:
        // STUN from a new address finds the peer by them.
        let ufrag = peer.rtc.direct_api().local_ice_credentials().ufrag;
        self.demux.insert(ufrag, key);
        self.scheduler.mark_dirty(key);
        self.flush(now);
        answer
    }

    /// `id`'s client asks for an ICE restart of its subscribe connection
    /// (its network changed under a live signaling connection): the next
    /// subscribe offer, now or once the pending one is answered, carries
    /// new ICE credentials.
    pub fn restart_subscribe_ice(
        &mut self,
        now: Instant,
        id: ParticipantId,
    ) -> Result<(), CandidateError> {
        self.connection(id, PeerRole::Subscribe)?;
        if let Some(p) = self.members.participants.get_mut(&id) {
            p.ice_restart_wanted = true;
        }
        self.negotiate(id);
        self.flush(now);
        Ok(())
    }

    /// Names what `id`'s publish m-lines capture, for the tracks its next
    /// offers publish (a bundled client names them with each offer). A
    /// source that does not fit its m-line's kind is ignored then; an m-line
    /// not named is a microphone or camera.
    pub fn name_track_sources(&mut self, id: ParticipantId, sources: &[(Mid, TrackSource)]) {
        let Some(p) = self.members.participants.get_mut(&id) else {
            return;
        };
        for &(mid, source) in sources {
            let full = p.track_sources.len() >= MAX_NAMED_SOURCES;
            match p.track_sources.iter_mut().find(|(m, _)| *m == mid) {
                Some(named) => named.1 = source,
                None if !full => p.track_sources.push((mid, source)),
                None => {}
            }
        }
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
        role: PeerRole,
        candidate: Candidate,
    ) -> Result<(), CandidateError> {
        let key = self.connection(id, role)?;
        if let Some(peer) = self.scheduler.get_mut(key) {
            if peer.remote_candidates >= MAX_REMOTE_CANDIDATES {
                return Err(CandidateError::TooMany(MAX_REMOTE_CANDIDATES));
            }
            peer.remote_candidates += 1;
            peer.rtc.add_remote_candidate(candidate);
        }
        self.scheduler.mark_dirty(key);
        self.flush(now);
        Ok(())
    }

    /// ICE restart requested by a WHIP/WHEP client: adopts its new remote
    /// credentials and returns fresh local ones for the answer fragment.
    pub fn restart_ice(
        &mut self,
        now: Instant,
        id: ParticipantId,
        role: PeerRole,
        remote: IceCreds,
    ) -> Result<IceCreds, CandidateError> {
        let key = self.connection(id, role)?;
        let peer = self
            .scheduler
            .get_mut(key)
            .ok_or(CandidateError::NoSuchConnection)?;
        let local = IceCreds::new();
        let mut api = peer.rtc.direct_api();
        api.set_local_ice_credentials(local.clone());
        api.set_remote_ice_credentials(remote);
        self.demux.insert(local.ufrag.clone(), key);
        self.scheduler.mark_dirty(key);
        self.flush(now);
        Ok(local)
    }

    /// Records that the track on publish-connection `mid` is (un)muted and
    /// tells the room.
    pub fn set_muted(
        &mut self,
        now: Instant,
        id: ParticipantId,
        mid: &str,
        muted: bool,
    ) -> Result<(), MuteError> {
        let p = self
            .members
            .participants
            .get_mut(&id)
            .ok_or(MuteError::NotJoined)?;
        let mid = Mid::from(mid);
        let track = p
            .published
            .iter_mut()
            .find(|t| t.mid == mid)
            .ok_or_else(|| MuteError::UnknownTrack(mid.to_string()))?;
        // Unmuting oneself also lifts an operator's mute.
        let resumed = !muted && std::mem::take(&mut track.operator_muted);
        let source = TrackRef {
            participant: id,
            track: track.id,
        };
        if track.muted != muted {
            track.muted = muted;
            let track = track.summary();
            let room = p.room.clone();
            self.broadcast(&room, id, |participant| ParticipantEvent::TrackUpdated {
                participant,
                track,
            });
        }
        if resumed {
            // Subscribers saw no packets while it was muted.
            self.request_keyframe(now, source, None);
        }
        self.flush(now);
        Ok(())
    }

    /// An operator mutes `id`'s track `track` in `room` (room service API):
    /// its media is no longer forwarded, the room sees it muted, and the
    /// publisher is told ([`ParticipantEvent::MutedByOperator`]) so its
    /// client shows it. Only the participant unmutes it, with its own
    /// [`MediaCore::set_muted`]: an operator switching a microphone back on
    /// would be a privacy breach. Muting again changes nothing.
    pub fn mute_by_operator(
        &mut self,
        now: Instant,
        room: &RoomName,
        id: ParticipantId,
        track: TrackId,
    ) -> Result<(), MuteError> {
        let p = self
            .members
            .participants
            .get_mut(&id)
            .filter(|p| p.room == *room)
            .ok_or(MuteError::NotJoined)?;
        let published = p.track_mut(track).ok_or(MuteError::NoSuchTrack(track))?;
        if published.operator_muted {
            return Ok(());
        }
        published.operator_muted = true;
        let mid = published.mid;
        let was_muted = std::mem::replace(&mut published.muted, true);
        let summary = published.summary();
        let room = p.room.clone();
        if !was_muted {
            self.broadcast(&room, id, |participant| ParticipantEvent::TrackUpdated {
                participant,
                track: summary,
            });
        }
        self.notify(id, ParticipantEvent::MutedByOperator { mid });
        self.flush(now);
        Ok(())
    }

    /// How `id` shows remote video `track` (adaptive stream): the layer it
    /// gets is capped to the size, and nothing is sent while it is hidden.
    pub fn set_video_preference(
        &mut self,
        now: Instant,
        id: ParticipantId,
        track: TrackId,
        preference: VideoPreference,
    ) -> Result<(), PreferenceError> {
        let p = self
            .members
            .participants
            .get_mut(&id)
            .ok_or(PreferenceError::NotJoined)?;
        let sub = p
            .subscriptions
            .iter_mut()
            .find(|s| s.kind == MediaKind::Video && s.source.is_some_and(|s| s.track == track))
            .ok_or_else(|| PreferenceError::UnknownTrack(track.to_string()))?;
        if sub.preference != preference {
            sub.preference = preference;
            self.allocate_for(now, id);
            self.update_dynacast();
        }
        self.flush(now);
        Ok(())
    }

    /// Removes a participant, its connections and its tracks.
    pub fn leave(&mut self, now: Instant, id: ParticipantId, reason: LeaveReason) {
        self.remove_participant(id, reason);
        self.flush(now);
    }

    /// Removes `id` if it is in `room`; returns whether it was.
    pub fn remove_from_room(
        &mut self,
        now: Instant,
        room: &RoomName,
        id: ParticipantId,
        reason: LeaveReason,
    ) -> bool {
        let present = self
            .members
            .participants
            .get(&id)
            .is_some_and(|p| &p.room == room);
        if present {
            self.leave(now, id, reason);
        }
        present
    }

    /// Removes everyone in `room` (`RoomClosed`); returns how many.
    pub fn close_room(&mut self, now: Instant, room: &RoomName) -> usize {
        let members = self
            .members
            .rooms
            .get(room)
            .map(|r| r.members.clone())
            .unwrap_or_default();
        for id in &members {
            self.remove_participant(*id, LeaveReason::RoomClosed);
        }
        self.flush(now);
        members.len()
    }

    /// Removes everyone (server shutdown).
    pub fn close_all(&mut self, now: Instant) {
        let ids: Vec<ParticipantId> = self.members.participants.keys().copied().collect();
        for id in ids {
            self.remove_participant(id, LeaveReason::Shutdown);
        }
        self.flush(now);
    }

    // ------------------------------------------------------------------ input

    /// Handles one UDP datagram that arrived from `source`. Does not flush.
    pub fn handle_receive(&mut self, now: Instant, source: SocketAddr, datagram: &[u8]) {
        self.receive(now, (Protocol::Udp, source), datagram);
    }

    /// Handles one RFC 4571 frame (its packet, without the length prefix)
    /// that arrived on the ICE-TCP connection from `source`. Does not flush.
    pub fn handle_tcp_frame(&mut self, now: Instant, source: SocketAddr, frame: &[u8]) {
        self.receive(now, (Protocol::Tcp, source), frame);
    }

    /// Whether packets from `source` reach a peer: the address passed an ICE
    /// check with a peer's credentials.
    pub fn knows_address(&self, source: Route) -> bool {
        self.demux.knows(source)
    }

    pub(super) fn receive(&mut self, now: Instant, route: Route, datagram: &[u8]) {
        let stats = &mut self.telemetry.stats;
        stats.datagrams_in += 1;
        stats.bytes_in += datagram.len() as u64;
        let Some(key) = self.demux.route(route, datagram) else {
            stats.datagrams_unroutable += 1;
            return;
        };
        let Ok(contents) = DatagramRecv::try_from(datagram) else {
            stats.datagrams_malformed += 1;
            return;
        };
        let (proto, source) = route;
        let destination = match proto {
            Protocol::Udp => self.config.candidate_addr,
            _ => match self.config.tcp_candidate_addr {
                Some(addr) => addr,
                None => return,
            },
        };
        let receive = Receive {
            proto,
            source,
            destination,
            contents,
        };
        let is_check = stun_local_ufrag(datagram).is_some();
        let mut verified = false;
        self.scheduler.drive(key, now, |peer| {
            if peer.awaiting_answer && is_check {
                if peer.early_stun.len() < MAX_EARLY_STUN {
                    peer.early_stun.push((route, datagram.to_vec()));
                }
                tracing::debug!(%source, ?proto, held = peer.early_stun.len(), "ICE check before the answer: held");
                return None;
            }
            let input = Input::Receive(now, receive);
            // Only a check with the right credentials teaches demux the
            // address; anyone can name a ufrag (see `demux`).
            verified = is_check && peer.rtc.accepts(&input);
            Some(input)
        });
        if verified {
            self.demux.learn(route, key);
        }
        self.process_events(now);
    }

    /// Advances time: runs every peer whose deadline passed and the core's own
    /// timers (connect timeout, ICE grace, deferred keyframe requests).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.scheduler.run_due(now);
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
            if !self.scheduler.flush_dirty(now) {
                break;
            }
            self.process_events(now);
        }
    }

    /// Handles the str0m events drained so far, then the removals they caused.
    fn process_events(&mut self, now: Instant) {
        loop {
            self.scheduler.take_events(&mut self.rtc_events);
            if self.rtc_events.is_empty() {
                break;
            }
            let mut batch = std::mem::take(&mut self.rtc_events);
            for (key, event) in batch.drain(..) {
                self.dispatch(now, key, event);
            }
            self.rtc_events = batch; // keep the allocation
        }
        for owner in self.scheduler.take_failed() {
            self.telemetry.stats.peer_errors += 1;
            self.removals.push((owner, LeaveReason::PeerFailed));
        }
        while let Some((id, reason)) = self.removals.pop() {
            self.remove_participant(id, reason);
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
        self.scheduler.poll_transmit()
    }

    /// The next domain event for the control plane.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<CoreEvent> {
        self.events.pop_front()
    }

    /// The next histogram sample (RTT, bandwidth estimate, join time).
    #[must_use]
    pub fn poll_sample(&mut self) -> Option<Sample> {
        self.telemetry.poll_sample()
    }

    /// When [`MediaCore::handle_timeout`] must be called next, at the latest.
    pub fn next_deadline(&self) -> Instant {
        match self.scheduler.next_deadline() {
            Some(at) => at.min(self.next_housekeeping),
            None => self.next_housekeeping,
        }
    }

    /// Counters since start.
    pub fn stats(&self) -> &CoreStats {
        &self.telemetry.stats
    }

    /// Number of participants currently on this core.
    pub fn participant_count(&self) -> usize {
        self.members.participants.len()
    }

    /// Number of rooms currently on this core.
    pub fn room_count(&self) -> usize {
        self.members.rooms.len()
    }

    /// Lets go of the capacity that a crowd, now gone, grew the core's
    /// tables and buffers to (the worker calls it after connections close).
    pub fn shrink_to_fit(&mut self) {
        self.members.shrink_to_fit();
        self.scheduler.shrink_to_fit();
        self.demux.shrink_to_fit();
        self.telemetry.shrink_to_fit();
        self.fanout.shrink_to_fit();
        self.removals.shrink_to_fit();
        self.rtc_events.shrink_to_fit();
        self.events.shrink_to_fit();
    }

    /// Number of live peer connections (for leak checks).
    pub fn peer_count(&self) -> usize {
        self.scheduler.peer_count()
    }

    /// Number of remote addresses demux routes by (for leak checks).
    pub fn routed_address_count(&self) -> usize {
        self.demux.address_count()
    }

    // -------------------------------------------------------------- internals

    /// The key of `id`'s connection `role`.
    fn connection(&self, id: ParticipantId, role: PeerRole) -> Result<PeerKey, CandidateError> {
        let p = self
            .members
            .participants
            .get(&id)
            .ok_or(CandidateError::NotJoined)?;
        match role {
            PeerRole::Subscribe => p.subscribe_peer,
            PeerRole::Publish => p.publish_peer,
        }
        .ok_or(CandidateError::NoSuchConnection)
    }

    pub(super) fn notify(&mut self, to: ParticipantId, event: ParticipantEvent) {
        self.events.push_back(CoreEvent::Participant(to, event));
    }

    /// Tells everyone in `room` but `except` the event `make` builds for
    /// `except`'s doing.
    pub(super) fn broadcast(
        &mut self,
        room: &RoomName,
        except: ParticipantId,
        make: impl Fn(ParticipantId) -> ParticipantEvent,
    ) {
        for other in self.members.members_except(room, except) {
            self.notify(other, make(except));
        }
    }
}
