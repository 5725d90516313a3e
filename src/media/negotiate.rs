//! Server-initiated renegotiation of subscribe connections.
//!
//! The server is the only offerer on a subscribe connection, and at most one
//! offer is outstanding: changes that arrive meanwhile wait in the
//! subscriptions' states (`Pending`, `Ending`, see [`SubscriptionState`]) and
//! go out in the next offer once the answer is in. This is what keeps offers from
//! crossing (glare) and str0m from seeing changes out of order.

use std::time::Instant;

use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};

use super::core::MediaCore;
use super::errors::AnswerError;
use super::events::ParticipantEvent;
use super::ids::ParticipantId;
use super::membership::{ParticipantMode, SubscriptionState, TrackRef};

/// Label of the data channel a subscribe connection's first offer carries
/// when there is no track to offer yet, so that the connection comes up
/// before there is any media to receive.
const CHANNEL_LABEL: &str = "cascade";

impl MediaCore {
    /// Sends a new subscribe offer to `id` if its subscriptions changed and no
    /// offer is outstanding.
    pub(super) fn negotiate(&mut self, id: ParticipantId) {
        let Some(p) = self.members.participants.get_mut(&id) else {
            return;
        };
        if p.pending_offer.is_some() || p.mode != ParticipantMode::Full {
            return;
        }
        let Some(key) = p.subscribe_peer else {
            return;
        };
        let Some(peer) = self.scheduler.get_mut(key) else {
            return;
        };
        // Gone before ever being offered: nothing to tell the client.
        p.subscriptions
            .retain(|s| !(s.source.is_none() && s.state == SubscriptionState::Pending));

        let mut api = peer.rtc.sdp_api();
        let new_ufrag =
            std::mem::take(&mut p.ice_restart_wanted).then(|| api.ice_restart(true).ufrag);
        // Only an offer with nothing else in it gets the channel: str0m
        // polls an SCTP association on every send even when it is idle,
        // about 4 % of the CPU per forwarded packet.
        let offers_media = p
            .subscriptions
            .iter()
            .any(|s| s.state == SubscriptionState::Pending);
        if !p.subscribe_negotiated && !offers_media {
            api.add_channel(CHANNEL_LABEL.to_string());
        }
        for sub in p.subscriptions.iter_mut() {
            match (sub.state, sub.source) {
                (SubscriptionState::Pending, Some(source)) => {
                    let mid = api.add_media(
                        sub.kind,
                        Direction::SendOnly,
                        Some(source.participant.to_string()),
                        Some(source.track.to_string()),
                        None,
                    );
                    sub.state = SubscriptionState::Offered(mid);
                }
                (SubscriptionState::Ending(mid), _) => {
                    api.stop_media(mid);
                    sub.state = SubscriptionState::Stopping(mid);
                }
                _ => {}
            }
        }
        if !api.has_changes() {
            return;
        }
        let Some((offer, pending)) = api.apply() else {
            return;
        };
        p.pending_offer = Some(pending);
        if let Some(ufrag) = new_ufrag {
            self.demux.insert(ufrag, key);
        }
        let event = ParticipantEvent::SubscribeOffer {
            offer,
            tracks: p.offered_tracks(),
        };
        self.telemetry.stats.subscribe_offers += 1;
        self.notify(id, event);
        self.scheduler.mark_dirty(key);
    }

    /// Applies an answer; on success the offered m-lines open (and video ones
    /// ask their publisher for a keyframe), on failure they go back to waiting.
    pub(super) fn accept_subscribe_answer(
        &mut self,
        now: Instant,
        id: ParticipantId,
        answer: SdpAnswer,
    ) -> Result<(), AnswerError> {
        let p = self
            .members
            .participants
            .get_mut(&id)
            .ok_or(AnswerError::NotJoined)?;
        let pending = p.pending_offer.take().ok_or(AnswerError::NoPendingOffer)?;
        let key = p.subscribe_peer.ok_or(AnswerError::NoPendingOffer)?;
        let peer = self.scheduler.get_mut(key).ok_or(AnswerError::NotJoined)?;
        let result = peer.rtc.sdp_api().accept_answer(pending, answer);
        let mut early_stun = Vec::new();
        let mut opened: Vec<TrackRef> = Vec::new();
        match &result {
            Ok(()) => {
                peer.awaiting_answer = false;
                early_stun = std::mem::take(&mut peer.early_stun);
                p.subscribe_negotiated = true;
                let egress = &mut self.telemetry.egress;
                p.subscriptions.retain(|s| match s.state {
                    SubscriptionState::Stopping(mid) => {
                        egress.remove(&(key, mid)); // its stream is gone
                        false
                    }
                    _ => true,
                });
                for sub in p.subscriptions.iter_mut() {
                    let SubscriptionState::Offered(mid) = sub.state else {
                        continue;
                    };
                    sub.down.renegotiated();
                    match sub.source {
                        Some(source) => {
                            sub.state = SubscriptionState::Open(mid);
                            if sub.kind == MediaKind::Video {
                                opened.push(source);
                            }
                        }
                        // Its source left while the offer was out.
                        None => sub.state = SubscriptionState::Ending(mid),
                    }
                }
            }
            Err(_) => {
                // str0m dropped the pending changes: offer them again later.
                for sub in p.subscriptions.iter_mut() {
                    sub.state = match sub.state {
                        SubscriptionState::Offered(_) => SubscriptionState::Pending,
                        SubscriptionState::Stopping(mid) => SubscriptionState::Ending(mid),
                        other => other,
                    };
                }
            }
        }
        self.scheduler.mark_dirty(key);
        // Before the connection is up a keyframe would be lost and the
        // throttle would delay the one sent at `Connected`.
        let connected = self
            .members
            .participants
            .get(&id)
            .is_some_and(|p| p.subscribe_connected);
        if connected {
            for source in opened {
                self.request_keyframe(now, source, None);
            }
        }
        if !early_stun.is_empty() {
            tracing::debug!(
                count = early_stun.len(),
                "replaying ICE checks held until the answer"
            );
        }
        for (source, datagram) in early_stun {
            self.receive(now, source, &datagram);
        }
        result.map_err(|e| AnswerError::InvalidSdp(e.to_string()))
    }
}
