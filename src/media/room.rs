//! The domain state of a media core: rooms, participants, their published
//! tracks and their subscriptions. Plain data with small helpers; the rules
//! that change it live in `core.rs` and `negotiate.rs`.

use std::time::Instant;

use str0m::change::SdpPendingOffer;
use str0m::format::PayloadParams;
use str0m::media::{MediaKind, Mid, Pt};
use str0m::rtp::Ssrc;

use super::forward::{PtMap, SeqRewriter, TimestampRewriter};
use super::ids::{ParticipantId, PeerKey, TrackId};
use cascade_protocol::{ParticipantInfo, SubscribedTrack, TrackInfo};

/// A room: who is in it, in join order.
#[derive(Debug, Default)]
pub struct Room {
    pub members: Vec<ParticipantId>,
}

/// How a participant connects, which decides what it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParticipantMode {
    /// The bundled client: a publish connection the client offers and a
    /// subscribe connection the server offers, with one m-line per remote
    /// track, renegotiated as tracks come and go.
    Full,
    /// A WHIP publisher: publishes only.
    PublishOnly,
    /// A WHEP viewer: receives on the m-lines it offered ("slots"), each fed
    /// by one publisher track: `follow`'s, or the earliest-joined publisher's.
    Viewer { follow: Option<ParticipantId> },
}

/// One participant and its peer connections.
pub struct Participant {
    pub id: ParticipantId,
    pub name: String,
    pub room: String,
    pub mode: ParticipantMode,
    pub subscribe_peer: Option<PeerKey>,
    pub publish_peer: Option<PeerKey>,
    pub published: Vec<PublishedTrack>,
    pub subscriptions: Vec<Subscription>,
    /// The subscribe offer awaiting the client's answer, if any.
    pub pending_offer: Option<SdpPendingOffer>,
    /// Whether an offer on the subscribe connection was answered.
    pub subscribe_negotiated: bool,
    pub joined_at: Instant,
    /// Set when a connection of this participant first completed ICE + DTLS.
    pub connected: bool,
    /// Set when the subscribe connection completed ICE + DTLS: only then can
    /// a keyframe reach it, so only then is one worth asking for.
    pub subscribe_connected: bool,
    /// Since when ICE reports the participant disconnected, if it does.
    pub disconnected_since: Option<Instant>,
}

impl Participant {
    pub fn info(&self) -> ParticipantInfo {
        ParticipantInfo {
            id: self.id.to_string(),
            name: self.name.clone(),
            tracks: self.published.iter().map(PublishedTrack::info).collect(),
        }
    }

    pub fn track_mut(&mut self, id: TrackId) -> Option<&mut PublishedTrack> {
        self.published.iter_mut().find(|t| t.id == id)
    }

    /// The subscription (m-line of the subscribe connection) with this mid.
    pub fn subscription_by_mid(&self, mid: Mid) -> Option<&Subscription> {
        self.subscriptions
            .iter()
            .find(|s| s.state.mid() == Some(mid))
    }

    /// The m-lines a subscribe offer currently describes.
    pub fn offered_tracks(&self) -> Vec<SubscribedTrack> {
        self.subscriptions
            .iter()
            .filter(|s| !s.removed)
            .filter_map(|s| match s.state {
                SubscriptionState::Negotiating(mid) | SubscriptionState::Open(mid) => {
                    Some(SubscribedTrack {
                        mid: mid.to_string(),
                        participant_id: s.source.to_string(),
                        track_id: s.track.to_string(),
                        kind: track_kind(s.kind),
                    })
                }
                _ => None,
            })
            .collect()
    }
}

/// A track a participant sends to the server.
pub struct PublishedTrack {
    pub id: TrackId,
    /// The mid on the publisher's publish connection.
    pub mid: Mid,
    pub kind: MediaKind,
    pub muted: bool,
    /// Incoming SSRCs seen for this track (primary streams, not RTX).
    pub ssrcs: Vec<Ssrc>,
    /// Codec parameters of the payload types seen, looked up once per type.
    pub params: Vec<(Pt, PayloadParams)>,
    /// Participants receiving this track.
    pub subscribers: Vec<ParticipantId>,
    pub keyframes: KeyframeThrottle,
}

impl PublishedTrack {
    pub fn info(&self) -> TrackInfo {
        TrackInfo {
            id: self.id.to_string(),
            kind: track_kind(self.kind),
            muted: self.muted,
        }
    }
}

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
    pub fn request(&mut self, now: Instant, interval: std::time::Duration) -> bool {
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
    pub fn due(&mut self, now: Instant, interval: std::time::Duration) -> bool {
        self.deferred && self.request(now, interval)
    }
}

/// One remote track a participant receives: an m-line of its subscribe connection.
pub struct Subscription {
    pub source: ParticipantId,
    pub track: TrackId,
    pub kind: MediaKind,
    pub state: SubscriptionState,
    /// The source track is gone; stop the m-line once negotiation allows.
    pub removed: bool,
    /// A WHEP slot: an m-line the client offered, whose source may change.
    pub slot: bool,
    /// A slot currently without a source (`source`/`track` are stale).
    pub detached: bool,
    pub seq: SeqRewriter,
    pub timestamps: TimestampRewriter,
    pub pts: PtMap,
}

impl Subscription {
    pub fn new(source: ParticipantId, track: TrackId, kind: MediaKind) -> Self {
        Subscription {
            source,
            track,
            kind,
            state: SubscriptionState::ToAdd,
            removed: false,
            slot: false,
            detached: false,
            seq: SeqRewriter::default(),
            timestamps: TimestampRewriter::default(),
            pts: PtMap::default(),
        }
    }

    /// A WHEP slot on client-offered `mid`, waiting for a source.
    pub fn slot(mid: Mid, kind: MediaKind) -> Self {
        Subscription {
            state: SubscriptionState::Open(mid),
            slot: true,
            detached: true,
            ..Subscription::new(ParticipantId(0), TrackId(u64::MAX), kind)
        }
    }
}

/// Where a subscription's m-line is in the offer/answer cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionState {
    /// Not yet in any offer.
    ToAdd,
    /// In the outstanding offer.
    Negotiating(Mid),
    /// Answered: media flows.
    Open(Mid),
    /// In the outstanding offer as stopped; dropped once answered.
    Stopping(Mid),
}

impl SubscriptionState {
    pub fn mid(&self) -> Option<Mid> {
        match *self {
            SubscriptionState::ToAdd => None,
            SubscriptionState::Negotiating(m)
            | SubscriptionState::Open(m)
            | SubscriptionState::Stopping(m) => Some(m),
        }
    }
}

fn track_kind(kind: MediaKind) -> cascade_protocol::TrackKind {
    match kind {
        MediaKind::Audio => cascade_protocol::TrackKind::Audio,
        MediaKind::Video => cascade_protocol::TrackKind::Video,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
