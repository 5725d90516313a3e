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

use str0m::format::Codec;
use str0m::media::MediaKind;
use str0m::rtp::{RtpPacket, Ssrc, Vp8Descriptor};

use super::core::MediaCore;
use super::downtrack::{Forwarded, SourcePacket};
use super::ids::{ParticipantId, PeerKey};
use super::membership::{Participant, TrackRef};
use super::peer::Peer;
use super::rewrite::forwarded_extensions;
use super::simulcast::{starts_keyframe, vp8_descriptor_len, vp8_keyframe_size, Layer, MAX_LAYERS};
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
        let Some((index, layer)) = locate(publisher, peer, packet.header.ssrc) else {
            self.telemetry.stats.rtp_dropped += 1;
            return;
        };
        let track = &mut publisher.published[index];
        if track.operator_muted {
            self.telemetry
                .stats
                .count_dropped(track.kind, DropReason::Muted);
            return;
        }
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
        let kind = track.kind;
        if let (MediaKind::Audio, Some(level)) = (kind, packet.header.ext_vals.audio_level) {
            track.speech.observe(level);
        }
        let simulcast = track.layers.len() > 1;
        let source_layer = &mut track.layers[layer];
        let starts_frame = source_layer.on_packet(packet.header.timestamp, packet.payload.len());
        if !source_layer.flowing {
            source_layer.flowing = true;
            self.layers_changed = true;
        }
        let codec = params.spec().codec;
        let (keyframe, vp8) = match kind {
            MediaKind::Audio => (false, None),
            MediaKind::Video => {
                let keyframe = starts_keyframe(codec, &packet.payload, starts_frame);
                let vp8 = match codec {
                    Codec::Vp8 => Vp8Descriptor::parse(&packet.payload).ok(),
                    _ => None,
                };
                if keyframe && vp8.is_some() {
                    source_layer.size = vp8_descriptor_len(&packet.payload)
                        .and_then(|len| vp8_keyframe_size(&packet.payload, len))
                        .or(source_layer.size);
                }
                (keyframe, vp8)
            }
        };
        let source = TrackRef {
            participant: owner,
            track: track.id,
        };
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
            layer,
            simulcast,
            keyframe,
            vp8,
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
            if !peer.connected {
                // Media written before DTLS is up waits in str0m's send
                // queue, unbounded, and leaves as a stale burst: a join
                // storm held ~100 MB there. The subscriber starts at its
                // first keyframe request on connecting instead.
                self.telemetry
                    .stats
                    .count_dropped(kind, DropReason::NotConnected);
                continue;
            }
            match sub.down.forward(&mut peer.rtc, mid, &source_packet) {
                Ok(Forwarded::Skipped) => continue,
                Ok(Forwarded::Sent) => {}
                Ok(Forwarded::Switched { from, to }) => match from {
                    Some(from) if to > from => self.telemetry.stats.layer_switches_up += 1,
                    Some(_) => self.telemetry.stats.layer_switches_down += 1,
                    None => {}
                },
                Err(reason) => {
                    self.telemetry.stats.count_dropped(kind, reason);
                    continue;
                }
            }
            self.unflushed_writes += 1;
            self.telemetry
                .forwarded(now, subscriber_id, (key, mid), kind, packet.payload.len());
            self.scheduler.mark_dirty(key);
        }
    }
}

/// Which of `publisher`'s tracks and layers SSRC `ssrc` carries: known
/// SSRCs by a short scan, a new one from str0m's mid/rid binding (learnt
/// once per SSRC).
fn locate(publisher: &mut Participant, peer: &mut Peer, ssrc: Ssrc) -> Option<(usize, usize)> {
    for (t, track) in publisher.published.iter().enumerate() {
        if let Some(l) = track.layers.iter().position(|l| l.ssrc == Some(ssrc)) {
            return Some((t, l));
        }
    }
    let (mid, rid) = {
        let mut api = peer.rtc.direct_api();
        let stream = api.stream_rx(&ssrc)?;
        (stream.mid(), stream.rid())
    };
    let t = publisher.published.iter().position(|t| t.mid == mid)?;
    let layers = &mut publisher.published[t].layers;
    let l = match layers.iter().position(|l| l.rid == rid) {
        Some(l) => l,
        // Rids the SDP did not list up front (str0m accepted them): a
        // single unbound layer takes the rid, else it joins at the top.
        None if rid.is_some() && layers.len() == 1 && layers[0].ssrc.is_none() => {
            layers[0].rid = rid;
            0
        }
        None if rid.is_some() && layers.len() < MAX_LAYERS => {
            layers.push(Layer::new(rid));
            layers.len() - 1
        }
        None => return None,
    };
    // A layer's SSRC may change (the publisher restarted its encoder); the
    // down tracks rebase on the new one.
    layers[l].ssrc = Some(ssrc);
    Some((t, l))
}
