//! WHEP viewers: client-offered m-lines ("slots") fed by one publisher track
//! each, and ICE restarts for WHIP/WHEP sessions.
//!
//! A slot follows the viewer's chosen participant, or else the
//! earliest-joined participant in the room publishing that kind. When its
//! source goes away it detaches and picks the next one; sequence numbers and
//! timestamps continue (see `forward`), and the new source is asked for a
//! keyframe.

use str0m::media::{MediaKind, Mid};
use str0m::IceCreds;

use super::core::{CandidateError, MediaCore};
use super::ids::{ParticipantId, TrackId};
use super::room::{ParticipantMode, Subscription};
use cascade_protocol::PcKind;

impl MediaCore {
    /// A viewer's subscribe connection gained an m-line to receive on.
    pub(super) fn add_slot(&mut self, owner: ParticipantId, mid: Mid, kind: MediaKind) {
        let Some(p) = self.participants.get_mut(&owner) else {
            return;
        };
        if !matches!(p.mode, ParticipantMode::Viewer { .. }) {
            return;
        }
        p.subscriptions.push(Subscription::slot(mid, kind));
        self.assign_slots(owner);
    }

    /// Gives every detached slot of `viewer` a source, if the room has one.
    pub(super) fn assign_slots(&mut self, viewer: ParticipantId) {
        let Some(v) = self.participants.get(&viewer) else {
            return;
        };
        let ParticipantMode::Viewer { follow } = v.mode else {
            return;
        };
        let wanted: Vec<(usize, MediaKind)> = v
            .subscriptions
            .iter()
            .enumerate()
            .filter(|(_, s)| s.slot && s.detached)
            .map(|(i, s)| (i, s.kind))
            .collect();
        if wanted.is_empty() {
            return;
        }
        let candidates: Vec<ParticipantId> = match follow {
            Some(f) => vec![f],
            None => self.room_members_except(&v.room, viewer),
        };
        for (index, kind) in wanted {
            let Some((source, track)) = self.first_track_of(&candidates, kind) else {
                continue;
            };
            if let Some(t) = self
                .participants
                .get_mut(&source)
                .and_then(|p| p.track_mut(track))
            {
                t.subscribers.push(viewer);
                t.keyframes.want();
            }
            if let Some(sub) = self
                .participants
                .get_mut(&viewer)
                .and_then(|v| v.subscriptions.get_mut(index))
            {
                sub.source = source;
                sub.track = track;
                sub.detached = false;
                sub.pts.clear();
                tracing::debug!(%viewer, %source, %track, "whep slot attached");
            }
        }
    }

    /// The first track of `kind` published by any of `candidates`, in order.
    fn first_track_of(
        &self,
        candidates: &[ParticipantId],
        kind: MediaKind,
    ) -> Option<(ParticipantId, TrackId)> {
        candidates.iter().find_map(|c| {
            let p = self.participants.get(c)?;
            let t = p.published.iter().find(|t| t.kind == kind)?;
            Some((*c, t.id))
        })
    }

    /// ICE restart requested by a WHIP/WHEP client: adopt its new remote
    /// credentials and return fresh local ones for the answer fragment.
    pub fn restart_ice(
        &mut self,
        id: ParticipantId,
        pc: PcKind,
        remote: IceCreds,
    ) -> Result<IceCreds, CandidateError> {
        let (key, peer) = self.connection_mut(id, pc)?;
        let local = IceCreds::new();
        let mut api = peer.rtc.direct_api();
        api.set_local_ice_credentials(local.clone());
        api.set_remote_ice_credentials(remote);
        self.register_ufrag(local.ufrag.clone(), key);
        self.mark_dirty(key);
        Ok(local)
    }
}
