//! Publishing: tracks appear and disappear on publish connections, and the
//! room's subscriptions follow.
//!
//! A publish m-line that receives becomes a published track; the room is
//! told, every bundled client gets a subscription (and a new subscribe
//! offer), every WHEP viewer may pick it up for a slot. When the m-line
//! stops receiving, or its publisher leaves, the track goes and so do the
//! subscriptions it fed.

use std::time::Instant;

use str0m::media::{Direction, MediaKind, Mid, Rid};

use super::core::MediaCore;
use super::events::ParticipantEvent;
use super::ids::{ParticipantId, TrackId};
use super::membership::{ParticipantMode, PublishedTrack, Subscription, TrackRef};

impl MediaCore {
    /// A publish-connection m-line appeared or changed direction; `rids`
    /// are its simulcast layers (none without simulcast).
    pub(super) fn on_publish_media(
        &mut self,
        owner: ParticipantId,
        mid: Mid,
        kind: MediaKind,
        dir: Direction,
        rids: &[Rid],
    ) {
        let Some(p) = self.members.participants.get(&owner) else {
            return;
        };
        let existing = p.published.iter().find(|t| t.mid == mid).map(|t| t.id);
        match (dir.is_receiving(), existing) {
            (true, None) => self.publish_track(owner, mid, kind, rids),
            (false, Some(track)) => self.unpublish_track(owner, track),
            _ => {}
        }
    }

    fn publish_track(&mut self, owner: ParticipantId, mid: Mid, kind: MediaKind, rids: &[Rid]) {
        let id = TrackId(self.next_track);
        self.next_track += 1;
        let Some(p) = self.members.participants.get(&owner) else {
            return;
        };
        let room = p.room.clone();
        let others = self.members.members_except(&room, owner);
        let source = TrackRef {
            participant: owner,
            track: id,
        };
        let mut track = PublishedTrack::new(id, mid, kind, rids);
        if let Some(&(_, named)) = p
            .track_sources
            .iter()
            .find(|(m, s)| *m == mid && s.fits(kind))
        {
            track.source = named;
        }
        // Bundled clients get an m-line per track; WHEP viewers may pick the
        // track up for a slot below; WHIP publishers receive nothing.
        let mut viewers = Vec::new();
        for other in &others {
            let Some(o) = self.members.participants.get_mut(other) else {
                continue;
            };
            match o.mode {
                ParticipantMode::Full if o.grants.subscribe => {
                    o.subscriptions
                        .push(Subscription::new(source, kind, track.source));
                    track.subscribers.push(*other);
                }
                ParticipantMode::Viewer { .. } => viewers.push(*other),
                ParticipantMode::Full | ParticipantMode::PublishOnly => {}
            }
        }
        let summary = track.summary();
        if let Some(p) = self.members.participants.get_mut(&owner) {
            p.published.push(track);
        }
        tracing::debug!(participant = %owner, track = %id, %mid, ?kind, ?rids, "track published");
        for other in others {
            self.notify(
                other,
                ParticipantEvent::TrackPublished {
                    participant: owner,
                    track: summary,
                },
            );
            self.negotiate(other);
        }
        for viewer in viewers {
            self.assign_slots(viewer);
        }
    }

    fn unpublish_track(&mut self, owner: ParticipantId, track: TrackId) {
        let Some(p) = self.members.participants.get_mut(&owner) else {
            return;
        };
        let Some(index) = p.published.iter().position(|t| t.id == track) else {
            return;
        };
        let removed = p.published.remove(index);
        let room = p.room.clone();
        let source = TrackRef {
            participant: owner,
            track,
        };
        for subscriber in &removed.subscribers {
            self.drop_subscription(*subscriber, source);
        }
        self.broadcast(&room, owner, |participant| ParticipantEvent::TrackRemoved {
            participant,
            track,
        });
    }

    /// Takes `source` away from `subscriber`: its m-line ends (a bundled
    /// client's is stopped in the next offer; a WHEP slot looks for another
    /// source).
    pub(super) fn drop_subscription(&mut self, subscriber: ParticipantId, source: TrackRef) {
        let Some(p) = self.members.participants.get_mut(&subscriber) else {
            return;
        };
        p.subscriptions
            .retain_mut(|s| s.source != Some(source) || s.lose_source());
        self.negotiate(subscriber);
        self.assign_slots(subscriber);
    }

    /// A subscribe connection came up: every video it receives needs a
    /// keyframe now (one sent earlier could not have reached it).
    pub(super) fn on_subscriber_connected(&mut self, now: Instant, id: ParticipantId) {
        let Some(p) = self.members.participants.get_mut(&id) else {
            return;
        };
        p.subscribe_connected = true;
        self.telemetry.stats.subscribers_connected += 1;
        let wanted: Vec<TrackRef> = p
            .subscriptions
            .iter()
            .filter(|s| s.kind == MediaKind::Video && s.forwarding_mid().is_some())
            .filter_map(|s| s.source)
            .collect();
        for source in wanted {
            self.request_keyframe(now, source, None);
        }
    }
}
