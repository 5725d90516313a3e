//! Keyframes: who may ask a publisher for one, on which layer, and how often.
//!
//! A subscriber's PLI/FIR arrives on its subscribe connection's m-line; the
//! subscription names the publisher track behind it and the layer it gets,
//! and the request goes to that layer's stream on the publish connection as
//! a PLI. A layer switch asks for a keyframe on the target layer the same way. Every request to one track
//! passes its [`KeyframeThrottle`], so a subscriber on a lossy link (or many
//! joining at once) cannot make a publisher send keyframes back to back.

use std::time::{Duration, Instant};

use str0m::media::{KeyframeRequestKind, MediaKind, Mid};
use str0m::rtp::Ssrc;

use super::core::MediaCore;
use super::ids::{ParticipantId, PeerKey};
use super::membership::TrackRef;
use super::simulcast::Layer;

/// Rate limit for keyframe requests sent to one publisher track, all its
/// simulcast layers together.
///
/// A request inside the quiet interval is not dropped but deferred to its end:
/// a new subscriber must get its keyframe even when another just asked.
/// Requests name layers as a bit set (bit `n` = layer `n`); deferred ones
/// are merged and go out together.
#[derive(Debug, Default)]
pub struct KeyframeThrottle {
    last_sent: Option<Instant>,
    deferred: u8,
}

/// Every layer, as a [`KeyframeThrottle`] bit set.
pub const ALL_LAYERS: u8 = u8::MAX;

impl KeyframeThrottle {
    /// The layers to ask now (0: none, the request is remembered).
    pub fn request(&mut self, now: Instant, interval: Duration, layers: u8) -> u8 {
        match self.last_sent {
            Some(t) if now < t + interval => {
                self.deferred |= layers;
                0
            }
            _ => {
                self.last_sent = Some(now);
                std::mem::take(&mut self.deferred) | layers
            }
        }
    }

    /// Asks for a keyframe on `layers` at the next opportunity (the core's
    /// housekeeping).
    pub fn want(&mut self, layers: u8) {
        self.deferred |= layers;
    }

    /// The deferred layers whose quiet interval is over (marked sent).
    pub fn due(&mut self, now: Instant, interval: Duration) -> u8 {
        match self.deferred {
            0 => 0,
            _ => self.request(now, interval, 0),
        }
    }
}

/// `layer` as a bit set; `None` is every layer.
pub fn layer_bits(layer: Option<usize>) -> u8 {
    match layer {
        Some(l) if l < 8 => 1 << l,
        _ => ALL_LAYERS,
    }
}

impl MediaCore {
    /// A subscriber asked for a keyframe on its m-line `mid`: it goes to the
    /// layer it receives (or waits for).
    pub(super) fn on_keyframe_request(
        &mut self,
        now: Instant,
        subscriber: ParticipantId,
        mid: Mid,
    ) {
        self.telemetry.stats.keyframe_requests_received += 1;
        let wanted = self
            .members
            .participants
            .get(&subscriber)
            .and_then(|p| p.subscription_by_mid(mid))
            .and_then(|s| Some((s.source?, s.down.waiting_for().or(s.down.current())?)));
        if let Some((source, layer)) = wanted {
            self.request_keyframe(now, source, Some(layer));
        }
    }

    /// Asks the publisher of `source` for a keyframe on `layer` (`None`:
    /// every layer), throttled per track.
    pub(super) fn request_keyframe(
        &mut self,
        now: Instant,
        source: TrackRef,
        layer: Option<usize>,
    ) {
        let interval = self.config.keyframe_interval;
        let Some(p) = self.members.participants.get_mut(&source.participant) else {
            return;
        };
        let Some(publish_peer) = p.publish_peer else {
            return;
        };
        let Some(t) = p.track_mut(source.track) else {
            return;
        };
        if t.kind != MediaKind::Video {
            return;
        }
        let layers = t.keyframes.request(now, interval, layer_bits(layer));
        let ssrcs = layer_ssrcs(&t.layers, layers);
        self.send_keyframe_requests(publish_peer, &ssrcs);
    }

    /// Sends the requests the throttle deferred and whose quiet interval is over.
    pub(super) fn send_deferred_keyframe_requests(&mut self, now: Instant) {
        let interval = self.config.keyframe_interval;
        let mut due = Vec::new();
        for p in self.members.participants.values_mut() {
            let Some(publish_peer) = p.publish_peer else {
                continue;
            };
            for t in &mut p.published {
                let layers = t.keyframes.due(now, interval);
                if layers != 0 {
                    due.push((publish_peer, layer_ssrcs(&t.layers, layers)));
                }
            }
        }
        for (peer, ssrcs) in due {
            self.send_keyframe_requests(peer, &ssrcs);
        }
    }

    fn send_keyframe_requests(&mut self, publish_peer: PeerKey, ssrcs: &[Ssrc]) {
        if ssrcs.is_empty() {
            return;
        }
        let Some(peer) = self.scheduler.get_mut(publish_peer) else {
            return;
        };
        let mut api = peer.rtc.direct_api();
        for ssrc in ssrcs {
            // A layer never seen has no stream: its first frame is a keyframe anyway.
            if let Some(stream) = api.stream_rx(ssrc) {
                stream.request_keyframe(KeyframeRequestKind::Pli);
                self.telemetry.stats.keyframe_requests_sent += 1;
            }
        }
        self.scheduler.mark_dirty(publish_peer);
    }
}

/// The known SSRCs of the layers in bit set `layers`.
fn layer_ssrcs(layers: &[Layer], bits: u8) -> Vec<Ssrc> {
    layers
        .iter()
        .enumerate()
        .filter(|(i, _)| *i < 8 && bits & (1 << i) != 0)
        .filter_map(|(_, l)| l.ssrc)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_defers_instead_of_dropping() {
        let t0 = Instant::now();
        let gap = Duration::from_millis(500);
        let mut k = KeyframeThrottle::default();
        assert_eq!(k.request(t0, gap, 0b001), 0b001);
        assert_eq!(k.request(t0 + Duration::from_millis(100), gap, 0b100), 0);
        assert_eq!(k.request(t0 + Duration::from_millis(150), gap, 0b010), 0);
        assert_eq!(k.due(t0 + Duration::from_millis(200), gap), 0);
        assert_eq!(
            k.due(t0 + gap, gap),
            0b110,
            "deferred layers go out together"
        );
        assert_eq!(k.due(t0 + gap * 3, gap), 0, "deferred request is sent once");
        assert_eq!(layer_bits(Some(2)), 0b100);
        assert_eq!(layer_bits(None), ALL_LAYERS);
    }
}
