//! How participants end: removal, and the timers that decide it when the
//! client does not say so itself.
//!
//! A participant is removed when it leaves (the control plane calls
//! `leave`), when its connections never come up within the connect timeout,
//! when ICE stays disconnected past the grace period, or when str0m fails
//! or closes one of its connections. Removal always tells the room first,
//! then renegotiates the subscribers that received its tracks, then tells
//! the participant itself (`Removed`, its last event).

use std::time::Instant;

use super::core::MediaCore;
use super::errors::LeaveReason;
use super::events::{CoreEvent, ParticipantEvent};
use super::ids::ParticipantId;
use super::membership::TrackRef;

impl MediaCore {
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
