//! Keyframes: who may ask a publisher for one, and how often.
//!
//! A subscriber's PLI/FIR arrives on its subscribe connection's m-line; the
//! subscription names the publisher track behind it, and the request goes to
//! that track's publish connection as a PLI. Every request to one track
//! passes its [`KeyframeThrottle`], so a subscriber on a lossy link (or many
//! joining at once) cannot make a publisher send keyframes back to back.

use std::time::{Duration, Instant};

use str0m::media::{KeyframeRequestKind, MediaKind, Mid};

use super::core::MediaCore;
use super::ids::{ParticipantId, PeerKey};
use super::membership::TrackRef;

/// Rate limit for keyframe requests sent to one publisher track.
///
/// A request inside the quiet interval is not dropped but deferred to its end:
/// a new subscriber must get its keyframe even when another just asked.
#[derive(Debug, Default)]
pub struct KeyframeThrottle {
    last_sent: Option<Instant>,
    deferred: bool,
}

impl KeyframeThrottle {
    /// Whether a request may go out now; if not, it is remembered.
    pub fn request(&mut self, now: Instant, interval: Duration) -> bool {
        match self.last_sent {
            Some(t) if now < t + interval => {
                self.deferred = true;
                false
            }
            _ => {
                self.last_sent = Some(now);
                self.deferred = false;
                true
            }
        }
    }

    /// Asks for a keyframe at the next opportunity (the core's housekeeping).
    pub fn want(&mut self) {
        self.deferred = true;
    }

    /// Whether a deferred request is now due (and marks it sent).
    pub fn due(&mut self, now: Instant, interval: Duration) -> bool {
        self.deferred && self.request(now, interval)
    }
}

impl MediaCore {
    /// A subscriber asked for a keyframe on its m-line `mid`.
    pub(super) fn on_keyframe_request(
        &mut self,
        now: Instant,
        subscriber: ParticipantId,
        mid: Mid,
    ) {
        self.telemetry.stats.keyframe_requests_received += 1;
        let source = self
            .members
            .participants
            .get(&subscriber)
            .and_then(|p| p.subscription_by_mid(mid))
            .and_then(|s| s.source);
        if let Some(source) = source {
            self.request_keyframe(now, source);
        }
    }

    /// Asks the publisher of `source` for a keyframe, throttled per track.
    pub(super) fn request_keyframe(&mut self, now: Instant, source: TrackRef) {
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
        if t.kind != MediaKind::Video || !t.keyframes.request(now, interval) {
            return;
        }
        let mid = t.mid;
        self.send_keyframe_request(publish_peer, mid);
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
                if t.keyframes.due(now, interval) {
                    due.push((publish_peer, t.mid));
                }
            }
        }
        for (peer, mid) in due {
            self.send_keyframe_request(peer, mid);
        }
    }

    fn send_keyframe_request(&mut self, publish_peer: PeerKey, mid: Mid) {
        let Some(peer) = self.scheduler.get_mut(publish_peer) else {
            return;
        };
        let mut api = peer.rtc.direct_api();
        let Some(stream) = api.stream_rx_by_mid(mid, None) else {
            return; // nothing received yet: the first frame is a keyframe anyway
        };
        stream.request_keyframe(KeyframeRequestKind::Pli);
        self.telemetry.stats.keyframe_requests_sent += 1;
        self.scheduler.mark_dirty(publish_peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_defers_instead_of_dropping() {
        let t0 = Instant::now();
        let gap = Duration::from_millis(500);
        let mut k = KeyframeThrottle::default();
        assert!(k.request(t0, gap));
        assert!(!k.request(t0 + Duration::from_millis(100), gap));
        assert!(!k.due(t0 + Duration::from_millis(200), gap));
        assert!(k.due(t0 + gap, gap));
        assert!(!k.due(t0 + gap * 3, gap), "deferred request is sent once");
    }
}
