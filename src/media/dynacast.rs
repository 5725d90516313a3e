//! Dynacast: a simulcast layer nobody needs is not sent at all.
//!
//! For each published video, the highest layer any subscriber may receive
//! (its size preference, or the top when it gave none; hidden tiles want
//! nothing) decides which layers the publisher is asked to encode: every
//! layer up to that one. The lowest layer always stays on, so a new
//! subscriber starts at once. Bundled clients are told with
//! `ParticipantEvent::PublishLayers` and set `active` on their encodings;
//! other publishers (WHIP) cannot be told and keep sending everything.
//! Bandwidth does not enter into it: a layer that a subscriber's link cannot
//! carry today may fit tomorrow, and the allocator can only climb to layers
//! that flow.

use super::allocator::layer_cap;
use super::core::MediaCore;
use super::events::ParticipantEvent;
use super::membership::{Membership, ParticipantMode, PublishedTrack};

impl MediaCore {
    /// Tells publishers whose needed layers changed which to send.
    pub(super) fn update_dynacast(&mut self) {
        let mut changes = Vec::new();
        for p in self.members.participants.values() {
            if p.mode != ParticipantMode::Full {
                continue;
            }
            for t in p.published.iter().filter(|t| t.layers.len() > 1) {
                let top = needed_top(&self.members, t);
                if t.requested_top != Some(top) {
                    changes.push((p.id, t.id, top));
                }
            }
        }
        for (owner, track, top) in changes {
            let Some(t) = self
                .members
                .participants
                .get_mut(&owner)
                .and_then(|p| p.track_mut(track))
            else {
                continue;
            };
            t.requested_top = Some(top);
            let layers = t
                .layers
                .iter()
                .enumerate()
                .filter_map(|(i, l)| Some((l.rid?.to_string(), i <= top)))
                .collect();
            let mid = t.mid;
            tracing::debug!(participant = %owner, %mid, top, "dynacast");
            self.notify(owner, ParticipantEvent::PublishLayers { mid, layers });
        }
    }

    /// Layers the publishers were asked not to send (for the metrics).
    pub fn dynacast_paused_layers(&self) -> usize {
        self.members
            .participants
            .values()
            .flat_map(|p| &p.published)
            .filter_map(|t| Some(t.layers.len() - 1 - t.requested_top?))
            .sum()
    }
}

/// The highest layer of `track` some subscriber may receive (at least 0).
fn needed_top(members: &Membership, track: &PublishedTrack) -> usize {
    let mut top = 0;
    for subscriber in &track.subscribers {
        let Some(p) = members.participants.get(subscriber) else {
            continue;
        };
        let prefs = p
            .subscriptions
            .iter()
            .filter(|s| s.source.is_some_and(|src| src.track == track.id))
            .map(|s| s.preference);
        for pref in prefs.filter(|pref| pref.visible) {
            top = top.max(layer_cap(&track.layers, pref.width, pref.height));
        }
    }
    top
}
