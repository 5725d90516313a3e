//! How participants begin and end: admission into a room, removal, and the
//! timers that decide removal when the client does not say so itself.
//!
//! A participant is admitted once its first connection is set up (for a
//! WHIP/WHEP client: once its offer was accepted), so the room only ever
//! hears of joins that happened. A participant is removed when it leaves (the control plane calls
//! `leave`), when its connections never come up within the connect timeout,
//! when ICE stays disconnected past the grace period, or when str0m fails
//! or closes one of its connections. Removal always tells the room first,
//! then renegotiates the subscribers that received its tracks, then tells
//! the participant itself (`Removed`, its last event).

use std::time::Instant;

use str0m::net::TcpType;
use str0m::{Candidate, Rtc};

use super::core::{JoinRequest, MediaCore};
use super::errors::{JoinError, LeaveReason};
use super::events::{CoreEvent, ParticipantEvent};
use super::ids::{Identity, ParticipantId, PeerKey, RoomName};
use super::membership::{Participant, ParticipantMode, TrackRef};
use super::peer::{Peer, PeerRole};

impl MediaCore {
    pub(super) fn check_join(&self, request: &JoinRequest) -> Result<(), JoinError> {
        if self.members.participants.contains_key(&request.id) {
            return Err(JoinError::AlreadyJoined);
        }
        let occupants = self
            .members
            .rooms
            .get(&request.room)
            .map_or(0, |r| r.members.len());
        // A join that replaces an occupant's older connection takes its place.
        let replacing = request
            .identity
            .as_ref()
            .is_some_and(|identity| !self.identity_holders(&request.room, identity).is_empty());
        if occupants >= self.config.max_participants_per_room && !replacing {
            return Err(JoinError::RoomFull);
        }
        match request.mode {
            ParticipantMode::PublishOnly if !request.grants.publish => {
                return Err(JoinError::Forbidden("publish"))
            }
            ParticipantMode::Viewer { .. } if !request.grants.subscribe => {
                return Err(JoinError::Forbidden("subscribe"))
            }
            _ => {}
        }
        if let ParticipantMode::Viewer { follow: Some(f) } = request.mode {
            let present = self
                .members
                .participants
                .get(&f)
                .is_some_and(|p| p.room == request.room);
            if !present {
                return Err(JoinError::NoSuchParticipant);
            }
        }
        Ok(())
    }

    /// Puts a participant whose connection is set up into its room: it is
    /// told who is there, they are told it came, and a bundled client
    /// subscribes to every track already published.
    pub(super) fn admit(
        &mut self,
        now: Instant,
        request: JoinRequest,
        subscribe_peer: Option<PeerKey>,
        publish_peer: Option<PeerKey>,
    ) {
        let JoinRequest {
            id,
            room,
            name,
            mode,
            identity,
            grants,
        } = request;
        if let Some(identity) = &identity {
            self.replace_identity(&room, identity);
        }
        let others = self.members.members_except(&room, id);
        if self.members.enter(&room, id) {
            self.events.push_back(CoreEvent::RoomOpened(room.clone()));
        }
        let mut participant = Participant::new(id, name, room.clone(), mode, now);
        participant.identity = identity;
        participant.grants = grants;
        participant.subscribe_peer = subscribe_peer;
        participant.publish_peer = publish_peer;
        let mut existing = Vec::with_capacity(others.len());
        for other in &others {
            let Some(o) = self.members.participants.get_mut(other) else {
                continue;
            };
            existing.push(o.summary());
            if mode == ParticipantMode::Full && grants.subscribe {
                participant.subscriptions.extend(o.subscribe_all(id));
            }
        }
        let summary = participant.summary();
        self.members.participants.insert(id, participant);
        self.telemetry.stats.joins += 1;
        if mode != ParticipantMode::PublishOnly {
            self.telemetry.awaiting_media.insert(id, now); // for the join-time histogram
        }
        self.notify(
            id,
            ParticipantEvent::Joined {
                room,
                participant: id,
                others: existing,
            },
        );
        for other in others {
            self.notify(other, ParticipantEvent::ParticipantJoined(summary.clone()));
        }
        self.negotiate(id);
    }

    /// Removes whoever in `room` already has `identity`: the newer
    /// connection wins (a reload, or the same user on another device).
    fn replace_identity(&mut self, room: &RoomName, identity: &Identity) {
        for holder in self.identity_holders(room, identity) {
            tracing::info!(participant = %holder, %identity, "replaced by a newer connection");
            self.remove_participant(holder, LeaveReason::Replaced);
        }
    }

    /// Who in `room` has `identity` (one at most, but never assumed).
    fn identity_holders(&self, room: &RoomName, identity: &Identity) -> Vec<ParticipantId> {
        let Some(r) = self.members.rooms.get(room) else {
            return Vec::new();
        };
        let participants = &self.members.participants;
        r.members
            .iter()
            .copied()
            .filter(|m| participants.get(m).and_then(|p| p.identity.as_ref()) == Some(identity))
            .collect()
    }

    /// Gives `rtc` the core's host candidate and hands it to the scheduler.
    pub(super) fn add_peer(
        &mut self,
        rtc: Rtc,
        owner: ParticipantId,
        role: PeerRole,
    ) -> Result<PeerKey, String> {
        let rtc = self.with_host_candidate(rtc)?;
        Ok(self.insert_peer(rtc, owner, role))
    }

    /// `rtc` with the core's host candidate, which its answers then carry.
    pub(super) fn with_host_candidate(&self, mut rtc: Rtc) -> Result<Rtc, String> {
        let candidate =
            Candidate::host(self.config.candidate_addr, "udp").map_err(|e| e.to_string())?;
        rtc.add_local_candidate(candidate);
        if let Some(addr) = self.config.tcp_candidate_addr {
            // Passive: the client connects. str0m ranks TCP host candidates
            // below UDP ones (type preference 90 against 126).
            let candidate = Candidate::builder()
                .tcp()
                .host(addr)
                .tcptype(TcpType::Passive)
                .build()
                .map_err(|e| e.to_string())?;
            rtc.add_local_candidate(candidate);
        }
        Ok(rtc)
    }

    /// Hands a prepared `rtc` to the scheduler and the demux.
    pub(super) fn insert_peer(
        &mut self,
        mut rtc: Rtc,
        owner: ParticipantId,
        role: PeerRole,
    ) -> PeerKey {
        let ufrag = rtc.direct_api().local_ice_credentials().ufrag;
        tracing::debug!(%ufrag, ?role, "peer added");
        let key = self.scheduler.insert(Peer::new(rtc, owner, role));
        self.demux.insert(ufrag, key);
        key
    }

    pub(super) fn remove_participant(&mut self, id: ParticipantId, reason: LeaveReason) {
        let Some(p) = self.members.participants.remove(&id) else {
            return;
        };
        tracing::debug!(participant = %id, room = %p.room, reason = reason.as_str(), "participant removed");
        let stats = &mut self.telemetry.stats;
        stats.leaves += 1;
        stats.leaves_by_reason[reason.index()] += 1;
        self.telemetry.awaiting_media.remove(&id);
        let peers: Vec<_> = p.subscribe_peer.into_iter().chain(p.publish_peer).collect();
        self.telemetry.forget_peers(&peers);
        for key in peers {
            if let Some(mut peer) = self.scheduler.remove(key) {
                peer.rtc.disconnect();
            }
            self.demux.remove(key);
        }
        // Tell the room first: clients drop the tile before the re-offer.
        let others = self.members.members_except(&p.room, id);
        if self.members.exit(&p.room, id) {
            self.events.push_back(CoreEvent::RoomClosed(p.room.clone()));
        }
        for other in others {
            self.notify(other, ParticipantEvent::ParticipantLeft(id));
        }
        for track in &p.published {
            let source = TrackRef {
                participant: id,
                track: track.id,
            };
            for subscriber in &track.subscribers {
                self.drop_subscription(*subscriber, source);
            }
        }
        for source in p.subscriptions.iter().filter_map(|s| s.source) {
            if let Some(track) = self.members.track_mut(source) {
                track.subscribers.retain(|s| *s != id);
            }
        }
        self.notify(id, ParticipantEvent::Removed(reason));
    }

    /// The core's own timers, checked every `HOUSEKEEPING_INTERVAL`.
    pub(super) fn housekeeping(&mut self, now: Instant) {
        for p in self.members.participants.values() {
            if !p.connected && now >= p.joined_at + self.config.connect_timeout {
                self.removals.push((p.id, LeaveReason::ConnectTimeout));
            } else if p
                .disconnected_since
                .is_some_and(|since| now >= since + self.config.disconnect_grace)
            {
                self.removals.push((p.id, LeaveReason::IceDisconnected));
            }
        }
        self.simulcast_round(now);
        self.speaker_round(now);
        self.send_deferred_keyframe_requests(now);
        for peer in self.scheduler.peers() {
            if !peer.rtc.is_alive() {
                self.removals.push((peer.owner, LeaveReason::PeerFailed));
            }
        }
        while let Some((id, reason)) = self.removals.pop() {
            self.remove_participant(id, reason);
        }
    }
}

/// Whether `answer` (SDP text) keeps an audio or video m-line on which the
/// server receives (`Publish`) or sends (`Subscribe`): one that is not
/// rejected (port 0) nor, from that side, inactive. An offer with only
/// unknown codecs, or with every m-line inactive, has none, and a WHIP/WHEP
/// client answered anyway would sit in the room with nothing to carry.
pub(super) fn answer_carries_media(answer: &str, role: PeerRole) -> bool {
    let wanted: &[&str] = match role {
        PeerRole::Publish => &["a=recvonly", "a=sendrecv"],
        PeerRole::Subscribe => &["a=sendonly", "a=sendrecv"],
    };
    answer.split("\nm=").skip(1).any(|section| {
        let mut lines = section.lines().map(str::trim_end);
        let header = lines.next().unwrap_or_default();
        let mut fields = header.split_whitespace();
        let kind = fields.next().unwrap_or_default();
        let port = fields.next().unwrap_or("0");
        (kind == "audio" || kind == "video")
            && port != "0"
            && lines.any(|line| wanted.contains(&line))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=recvonly\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=inactive\r\n";

    #[test]
    fn an_answer_carries_media_only_on_a_live_m_line_in_the_right_direction() {
        assert!(answer_carries_media(ANSWER, PeerRole::Publish));
        assert!(!answer_carries_media(ANSWER, PeerRole::Subscribe));
        let rejected = ANSWER.replace("m=audio 9", "m=audio 0");
        assert!(
            !answer_carries_media(&rejected, PeerRole::Publish),
            "port 0"
        );
        let inactive = ANSWER.replace("a=recvonly", "a=inactive");
        assert!(!answer_carries_media(&inactive, PeerRole::Publish));
        let data_only = "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=sendrecv\r\n";
        assert!(!answer_carries_media(data_only, PeerRole::Publish));
        assert!(!answer_carries_media("", PeerRole::Subscribe));
        let viewer = ANSWER.replace("a=inactive", "a=sendonly");
        assert!(answer_carries_media(&viewer, PeerRole::Subscribe));
    }
}
