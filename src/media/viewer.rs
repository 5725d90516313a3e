//! WHEP viewers: client-offered m-lines ("slots") fed by one publisher track
//! each.
//!
//! A slot follows the viewer's chosen participant, or else the
//! earliest-joined participant in the room publishing that kind. When its
//! source goes away it loses it and picks the next one; sequence numbers and
//! timestamps continue (the slot's `DownTrack` rebases), and the new source
//! is asked for a keyframe.

use str0m::media::{MediaKind, Mid};

use super::core::MediaCore;
use super::events::TrackSource;
use super::ids::ParticipantId;
use super::keyframes::ALL_LAYERS;
use super::membership::{ParticipantMode, Subscription, SubscriptionState, TrackRef};

impl MediaCore {
    /// A viewer's subscribe connection gained an m-line to receive on.
    pub(super) fn add_slot(&mut self, owner: ParticipantId, mid: Mid, kind: MediaKind) {
        let Some(p) = self.members.participants.get_mut(&owner) else {
            return;
        };
        if !matches!(p.mode, ParticipantMode::Viewer { .. }) {
            return;
        }
        p.subscriptions.push(Subscription::slot(mid, kind));
        self.assign_slots(owner);
    }

    /// Gives every slot of `viewer` without a source one, if the room has one.
    pub(super) fn assign_slots(&mut self, viewer: ParticipantId) {
        let Some(v) = self.members.participants.get(&viewer) else {
            return;
        };
        let ParticipantMode::Viewer { follow } = v.mode else {
            return;
        };
        let wanted: Vec<(usize, MediaKind)> = v
            .subscriptions
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s.state, SubscriptionState::Slot(_)) && s.source.is_none())
            .map(|(i, s)| (i, s.kind))
            .collect();
        if wanted.is_empty() {
            return;
        }
        let candidates: Vec<ParticipantId> = match follow {
            Some(f) => vec![f],
            None => self.members.members_except(&v.room, viewer),
        };
        for (index, kind) in wanted {
            let Some(source) = self.first_track_of(&candidates, kind) else {
                continue;
            };
            let mut track_source = TrackSource::default_for(kind);
            if let Some(t) = self.members.track_mut(source) {
                t.subscribers.push(viewer);
                t.keyframes.want(ALL_LAYERS);
                track_source = t.source;
            }
            if let Some(sub) = self
                .members
                .participants
                .get_mut(&viewer)
                .and_then(|v| v.subscriptions.get_mut(index))
            {
                sub.source = Some(source);
                sub.track_source = track_source;
                sub.down.renegotiated();
                tracing::debug!(%viewer, source = %source.participant, track = %source.track, "whep slot attached");
            }
        }
    }

    /// The first track of `kind` published by any of `candidates`, in order.
    fn first_track_of(&self, candidates: &[ParticipantId], kind: MediaKind) -> Option<TrackRef> {
        candidates.iter().find_map(|c| {
            let p = self.members.participants.get(c)?;
            let t = p.published.iter().find(|t| t.kind == kind)?;
            Some(TrackRef {
                participant: *c,
                track: t.id,
            })
        })
    }
}
