//! Server-initiated renegotiation of subscribe connections.
//!
//! The server is the only offerer on a subscribe connection, and at most one
//! offer is outstanding: changes that arrive meanwhile wait in the
//! subscriptions' states ([`SubscriptionState::ToAdd`], `removed`) and go out
//! in the next offer once the answer is in. This is what keeps offers from
//! crossing (glare) and str0m from seeing changes out of order.

use std::time::Instant;

use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};

use super::core::{AnswerError, MediaCore};
use super::ids::{ParticipantId, TrackId};
use super::room::{ParticipantMode, SubscriptionState};
use cascade_protocol::ServerMessage;

/// Label of the data channel a subscribe connection's first offer carries
/// when there is no track to offer yet, so that the connection comes up
/// before there is any media to receive.
const CHANNEL_LABEL: &str = "cascade";

impl MediaCore {
    /// Sends a new subscribe offer to `id` if its subscriptions changed and no
    /// offer is outstanding.
    pub(super) fn negotiate(&mut self, id: ParticipantId) {
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        if p.pending_offer.is_some() || p.mode != ParticipantMode::Full {
            return;
        }
        let Some(peer) = p.subscribe_peer.and_then(|key| self.peers.get_mut(&key)) else {
            return;
        };
        // Removed before ever being offered: nothing to tell the client.
        p.subscriptions
            .retain(|s| !(s.removed && s.state == SubscriptionState::ToAdd));

        let mut api = peer.rtc.sdp_api();
        // Only an offer with nothing else in it gets the channel: str0m
        // polls an SCTP association on every send even when it is idle,
        // about 4 % of the CPU per forwarded packet.
        let offers_media = p
            .subscriptions
            .iter()
            .any(|s| s.state == SubscriptionState::ToAdd);
        if !p.subscribe_negotiated && !offers_media {
            api.add_channel(CHANNEL_LABEL.to_string());
        }
        for sub in p.subscriptions.iter_mut() {
            match sub.state {
                SubscriptionState::ToAdd => {
                    let mid = api.add_media(
                        sub.kind,
                        Direction::SendOnly,
                        Some(sub.source.to_string()),
                        Some(sub.track.to_string()),
                        None,
                    );
                    sub.state = SubscriptionState::Negotiating(mid);
                }
                SubscriptionState::Open(mid) if sub.removed => {
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
        let message = ServerMessage::SubscribeOffer {
            sdp: offer.to_sdp_string(),
            tracks: p.offered_tracks(),
        };
        let Some(key) = p.subscribe_peer else {
            return;
        };
        self.stats.subscribe_offers += 1;
        self.signal(id, message);
        self.mark_dirty(key);
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
            .participants
            .get_mut(&id)
            .ok_or(AnswerError::NotJoined)?;
        let pending = p.pending_offer.take().ok_or(AnswerError::NoPendingOffer)?;
        let key = p.subscribe_peer.ok_or(AnswerError::NoPendingOffer)?;
        let peer = self.peers.get_mut(&key).ok_or(AnswerError::NotJoined)?;
        let result = peer.rtc.sdp_api().accept_answer(pending, answer);
        let mut early_stun = Vec::new();
        if result.is_ok() {
            peer.awaiting_answer = false;
            early_stun = std::mem::take(&mut peer.early_stun);
        }
        let mut opened: Vec<(ParticipantId, TrackId)> = Vec::new();
        match &result {
            Ok(()) => {
                p.subscribe_negotiated = true;
                let egress = &mut self.egress;
                p.subscriptions.retain(|s| match s.state {
                    SubscriptionState::Stopping(mid) => {
                        egress.remove(&(key, mid)); // its stream is gone
                        false
                    }
                    _ => true,
                });
                for sub in p.subscriptions.iter_mut() {
                    if let SubscriptionState::Negotiating(mid) = sub.state {
                        sub.state = SubscriptionState::Open(mid);
                        sub.pts.clear();
                        if sub.kind == MediaKind::Video {
                            opened.push((sub.source, sub.track));
                        }
                    }
                }
            }
            Err(_) => {
                // str0m dropped the pending changes: offer them again later.
                for sub in p.subscriptions.iter_mut() {
                    sub.state = match sub.state {
                        SubscriptionState::Negotiating(_) => SubscriptionState::ToAdd,
                        SubscriptionState::Stopping(mid) => SubscriptionState::Open(mid),
                        other => other,
                    };
                }
            }
        }
        self.mark_dirty(key);
        // Before the connection is up a keyframe would be lost and the
        // throttle would delay the one sent at `Connected`.
        let connected = self
            .participants
            .get(&id)
            .is_some_and(|p| p.subscribe_connected);
        if connected {
            self.request_keyframes_for(now, opened);
        }
        if !early_stun.is_empty() {
            tracing::debug!(
                count = early_stun.len(),
                "replaying ICE checks held until the answer"
            );
        }
        for (source, datagram) in early_stun {
            self.handle_receive(now, source, &datagram);
        }
        result.map_err(|e| AnswerError::InvalidSdp(e.to_string()))
    }
}
