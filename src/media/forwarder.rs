//! The forwarder: one publisher packet in, one write per subscriber out.
//!
//! For each RTP packet a publish connection yields, the forwarder finds the
//! published track (by SSRC, learnt once from str0m's mid mapping) and its
//! codec (by payload type, looked up once), then hands the packet to the
//! [`DownTrack`](super::downtrack::DownTrack) of every subscription fed by
//! that track. Each write dirties the subscriber's peer; the packets leave at
//! the next flush. This is the packet path: no allocation beyond the payload
//! copy str0m takes, no lock, no lookups by string.

use std::time::Instant;

use str0m::rtp::RtpPacket;

use super::core::MediaCore;
use super::downtrack::SourcePacket;
use super::ids::{ParticipantId, PeerKey};
use super::membership::TrackRef;
use super::rewrite::forwarded_extensions;
use super::stats::DropReason;

impl MediaCore {
    /// Forwards one packet of `owner`'s publish connection `publisher_key`
    /// to every subscriber of its track.
    pub(super) fn forward(
        &mut self,
        now: Instant,
        publisher_key: PeerKey,
        owner: ParticipantId,
        packet: RtpPacket,
    ) {
        let Some(publisher) = self.members.participants.get_mut(&owner) else {
            return;
        };
        let Some(peer) = self.scheduler.get_mut(publisher_key) else {
            return;
        };
        let ssrc = packet.header.ssrc;
        let index = match publisher
            .published
            .iter()
            .position(|t| t.ssrcs.contains(&ssrc))
        {
            Some(i) => i,
            None => {
                let Some(mid) = peer.rtc.direct_api().stream_rx(&ssrc).map(|s| s.mid()) else {
                    self.telemetry.stats.rtp_dropped += 1;
                    return;
                };
                let Some(i) = publisher.published.iter().position(|t| t.mid == mid) else {
                    self.telemetry.stats.rtp_dropped += 1;
                    return;
                };
                publisher.published[i].ssrcs.push(ssrc);
                i
            }
        };
        let track = &mut publisher.published[index];
        let pt = packet.header.payload_type;
        let params = match track.params.iter().find(|(p, _)| *p == pt) {
            Some((_, params)) => *params,
            None => {
                let Some(params) = peer
                    .rtc
                    .codec_config()
                    .params()
                    .iter()
                    .find(|p| p.pt() == pt)
                else {
                    self.telemetry
                        .stats
                        .count_dropped(track.kind, DropReason::UnknownCodec);
                    return;
                };
                track.params.push((pt, *params));
                *params
            }
        };
        let source = TrackRef {
            participant: owner,
            track: track.id,
        };
        let kind = track.kind;
        self.telemetry
            .stats
            .count_rtp_in(kind, packet.payload.len());
        self.fanout.clear();
        self.fanout.extend_from_slice(&track.subscribers);

        let extensions = forwarded_extensions(&packet.header.ext_vals);
        let source_packet = SourcePacket {
            packet: &packet,
            kind,
            params: &params,
            extensions: &extensions,
        };
        for &subscriber_id in &self.fanout {
            let Some(subscriber) = self.members.participants.get_mut(&subscriber_id) else {
                continue;
            };
            let Some(sub) = subscriber
                .subscriptions
                .iter_mut()
                .find(|s| s.source == Some(source))
            else {
                continue;
            };
            let Some(mid) = sub.forwarding_mid() else {
                continue; // not negotiated yet, or ending
            };
            let Some(key) = subscriber.subscribe_peer else {
                continue;
            };
            let Some(peer) = self.scheduler.get_mut(key) else {
                continue;
            };
            if let Err(reason) = sub.down.forward(&mut peer.rtc, mid, &source_packet) {
                self.telemetry.stats.count_dropped(kind, reason);
                continue;
            }
            self.unflushed_writes += 1;
            self.telemetry
                .forwarded(now, subscriber_id, (key, mid), kind, packet.payload.len());
            self.scheduler.mark_dirty(key);
        }
    }
}
