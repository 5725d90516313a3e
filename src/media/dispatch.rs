//! From str0m events to the part of the core they concern.
//!
//! Each event drained from a peer is read together with that peer's role:
//! RTP from a publish connection goes to the forwarder, a keyframe request
//! on a subscribe connection to `keyframes`, m-lines appearing on a publish
//! connection to `tracks`, on a WHEP viewer's subscribe connection to
//! `viewer`, simulcast layers starting and stopping to `simulcast`, a
//! subscribe connection's bandwidth estimate to the `allocator`, statistics
//! to the telemetry, data-channel messages on a publish connection to the
//! `data` relay, connection state to the participant's life
//! (`lifecycle`). Nothing is decided here.

use std::time::Instant;

use str0m::bwe::BweKind;
use str0m::media::{Mid, Rid, Rids};
use str0m::{Event, IceConnectionState, Rtc};

use super::core::MediaCore;
use super::errors::LeaveReason;
use super::ids::PeerKey;
use super::peer::PeerRole;
use super::stats::{EgressStream, IngressStream, Sample};

impl MediaCore {
    pub(super) fn dispatch(&mut self, now: Instant, key: PeerKey, event: Event) {
        let Some(peer) = self.scheduler.get(key) else {
            return; // removed while its events were queued
        };
        let (owner, role) = (peer.owner, peer.role);
        match (role, event) {
            (PeerRole::Publish, Event::RtpPacket(packet)) => self.forward(now, key, owner, packet),
            (PeerRole::Subscribe, Event::KeyframeRequest(req)) => {
                self.on_keyframe_request(now, owner, req.mid)
            }
            (PeerRole::Subscribe, Event::MediaEgressStats(report)) => {
                let telemetry = &mut self.telemetry;
                if let Some(stream) = telemetry.egress.get_mut(&(key, report.mid)) {
                    EgressStream::update(stream, &report, &mut telemetry.stats);
                }
                if let Some(rtt) = report.rtt {
                    telemetry.push_sample(Sample::Rtt(rtt));
                }
            }
            (PeerRole::Publish, Event::MediaIngressStats(report)) => {
                let Some(kind) = peer.rtc.media(report.mid).map(|m| m.kind()) else {
                    return;
                };
                let telemetry = &mut self.telemetry;
                telemetry
                    .ingress
                    .entry((key, report.mid, report.rid))
                    .or_insert_with(|| IngressStream::new(kind))
                    .update(&report, &mut telemetry.stats);
            }
            (PeerRole::Subscribe, Event::PeerStats(report)) => {
                if let Some(estimate) = report.bwe_tx {
                    self.telemetry
                        .push_sample(Sample::BandwidthEstimate(estimate.as_f64()));
                }
            }
            (PeerRole::Publish, Event::MediaAdded(added)) => {
                let rids = receive_rids(&peer.rtc, added.mid);
                self.on_publish_media(owner, added.mid, added.kind, added.direction, &rids)
            }
            (PeerRole::Publish, Event::MediaChanged(changed)) => {
                if let Some(kind) = peer.rtc.media(changed.mid).map(|m| m.kind()) {
                    let rids = receive_rids(&peer.rtc, changed.mid);
                    self.on_publish_media(owner, changed.mid, kind, changed.direction, &rids);
                }
            }
            (PeerRole::Publish, Event::StreamPaused(paused)) => {
                self.on_layer_paused(owner, paused.mid, paused.rid, !paused.paused)
            }
            (PeerRole::Subscribe, Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. })) => {
                self.on_estimate(now, owner, estimate)
            }
            // A WHEP viewer offered an m-line to receive on.
            (PeerRole::Subscribe, Event::MediaAdded(added)) => {
                self.add_slot(owner, added.mid, added.kind)
            }
            (PeerRole::Publish, Event::ChannelOpen(id, label)) => {
                self.on_channel_open(key, owner, id, &label)
            }
            (PeerRole::Publish, Event::ChannelData(data)) => {
                self.on_channel_data(now, key, owner, data)
            }
            (PeerRole::Publish, Event::ChannelClose(id)) => self.on_channel_close(key, owner, id),
            (_, Event::Connected) => self.on_connected(now, key),
            (_, Event::IceConnectionStateChange(state)) => self.on_ice_state(now, key, state),
            (_, Event::Closed) => self.removals.push((owner, LeaveReason::PeerFailed)),
            _ => {}
        }
    }

    fn on_connected(&mut self, now: Instant, key: PeerKey) {
        let Some(peer) = self.scheduler.get_mut(key) else {
            return;
        };
        peer.connected = true;
        let (owner, role) = (peer.owner, peer.role);
        tracing::debug!(participant = %owner, pc = ?role, "connected");
        if let Some(p) = self.members.participants.get_mut(&owner) {
            p.connected = true;
        }
        if role == PeerRole::Subscribe {
            self.on_subscriber_connected(now, owner);
        }
    }

    fn on_ice_state(&mut self, now: Instant, key: PeerKey, state: IceConnectionState) {
        let Some(peer) = self.scheduler.get(key) else {
            return;
        };
        tracing::debug!(participant = %peer.owner, pc = ?peer.role, ?state, "ice state");
        // A connection that never connected is the connect timeout's
        // business; "disconnected" only means something after "connected".
        let was_connected = peer.connected;
        let Some(p) = self.members.participants.get_mut(&peer.owner) else {
            return;
        };
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

/// The simulcast rids a publish m-line receives, in SDP order (none without
/// simulcast).
fn receive_rids(rtc: &Rtc, mid: Mid) -> Vec<Rid> {
    match rtc.media(mid).map(|m| m.rids_rx()) {
        Some(Rids::Specific(rids)) => rids.clone(),
        _ => Vec::new(),
    }
}
