//! Who is where: rooms, their participants, the tracks each publishes and
//! the subscriptions each receives. [`Membership`] is the one source of
//! truth for who is in a room; the control plane's directory only routes
//! rooms to workers (`crate::worker::Directory`).
//!
//! Plain data with small queries. The rules that change it (joining,
//! publishing, renegotiating) live in the core's other modules.

use std::collections::HashMap;
use std::time::Instant;

use rustc_hash::FxHashMap;
use str0m::change::SdpPendingOffer;
use str0m::format::PayloadParams;
use str0m::media::{MediaKind, Mid, Pt, Rid};

use super::allocator::AllocatorState;
use super::data::DataChannels;
use super::downtrack::DownTrack;
use super::events::{OfferedTrack, ParticipantSummary, PauseReason, TrackSource, TrackSummary};
use super::ids::{DisplayName, Identity, ParticipantId, PeerKey, RoomName, TrackId};
use super::keyframes::KeyframeThrottle;
use super::simulcast::{layers_for, Layer};
use super::speakers::SpeechMeter;

/// Rooms and participants of one core.
#[derive(Default)]
pub struct Membership {
    pub rooms: HashMap<RoomName, Room>,
    pub participants: FxHashMap<ParticipantId, Participant>,
}

impl Membership {
    /// Lets go of the table capacity departed rooms and participants left.
    pub fn shrink_to_fit(&mut self) {
        self.rooms.shrink_to_fit();
        self.participants.shrink_to_fit();
    }

    /// Everyone in `room` but `except`, in join order.
    pub fn members_except(&self, room: &RoomName, except: ParticipantId) -> Vec<ParticipantId> {
        self.rooms
            .get(room)
            .map(|r| r.members.iter().copied().filter(|m| *m != except).collect())
            .unwrap_or_default()
    }

    /// Adds `id` to `room`, creating the room; returns whether it was new.
    pub fn enter(&mut self, room: &RoomName, id: ParticipantId) -> bool {
        let created = !self.rooms.contains_key(room);
        self.rooms.entry(room.clone()).or_default().members.push(id);
        created
    }

    /// Takes `id` out of `room`; returns whether the room is now gone.
    pub fn exit(&mut self, room: &RoomName, id: ParticipantId) -> bool {
        let Some(r) = self.rooms.get_mut(room) else {
            return false;
        };
        r.members.retain(|m| *m != id);
        if r.members.is_empty() {
            self.rooms.remove(room);
            return true;
        }
        false
    }

    pub fn track_mut(&mut self, source: TrackRef) -> Option<&mut PublishedTrack> {
        self.participants
            .get_mut(&source.participant)?
            .track_mut(source.track)
    }
}

/// A room: who is in it, in join order.
#[derive(Debug, Default)]
pub struct Room {
    pub members: Vec<ParticipantId>,
    /// The active speakers its members were last told, loudest first.
    pub speakers: Vec<ParticipantId>,
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

/// What a participant's token lets it do with media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaGrants {
    pub publish: bool,
    pub subscribe: bool,
    /// May send on the relayed data channels (`canPublishData`).
    pub publish_data: bool,
}

impl MediaGrants {
    pub const ALL: MediaGrants = MediaGrants {
        publish: true,
        subscribe: true,
        publish_data: true,
    };
}

/// One participant and its peer connections.
pub struct Participant {
    pub id: ParticipantId,
    pub name: DisplayName,
    pub identity: Option<Identity>,
    pub grants: MediaGrants,
    pub room: RoomName,
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
    /// How its subscribe connection's estimate is spread over its videos.
    pub allocator: AllocatorState,
    /// Its relayed data channels and sending allowance.
    pub data: DataChannels,
    /// Whether it was told its room's active speakers since it joined.
    pub speakers_told: bool,
    /// Its client asked for an ICE restart of the subscribe connection,
    /// not yet offered.
    pub ice_restart_wanted: bool,
    /// What its publish m-lines capture, as its offers named them (an
    /// m-line not named is its microphone or camera).
    pub track_sources: Vec<(Mid, TrackSource)>,
}

impl Participant {
    pub fn new(
        id: ParticipantId,
        name: DisplayName,
        room: RoomName,
        mode: ParticipantMode,
        now: Instant,
    ) -> Self {
        Participant {
            id,
            name,
            identity: None,
            grants: MediaGrants::ALL,
            room,
            mode,
            subscribe_peer: None,
            publish_peer: None,
            published: Vec::new(),
            subscriptions: Vec::new(),
            pending_offer: None,
            subscribe_negotiated: false,
            joined_at: now,
            connected: false,
            subscribe_connected: false,
            disconnected_since: None,
            allocator: AllocatorState::new(now),
            data: DataChannels::default(),
            speakers_told: false,
            ice_restart_wanted: false,
            track_sources: Vec::new(),
        }
    }

    pub fn summary(&self) -> ParticipantSummary {
        ParticipantSummary {
            id: self.id,
            name: self.name.clone(),
            identity: self.identity.clone(),
            tracks: self.published.iter().map(PublishedTrack::summary).collect(),
        }
    }

    pub fn track_mut(&mut self, id: TrackId) -> Option<&mut PublishedTrack> {
        self.published.iter_mut().find(|t| t.id == id)
    }

    pub fn track(&self, id: TrackId) -> Option<&PublishedTrack> {
        self.published.iter().find(|t| t.id == id)
    }

    /// Makes `subscriber` receive every track this participant publishes;
    /// returns the subscriber's new (not yet offered) subscriptions.
    pub fn subscribe_all(&mut self, subscriber: ParticipantId) -> Vec<Subscription> {
        let participant = self.id;
        self.published
            .iter_mut()
            .map(|t| {
                t.subscribers.push(subscriber);
                let source = TrackRef {
                    participant,
                    track: t.id,
                };
                Subscription::new(source, t.kind, t.source)
            })
            .collect()
    }

    /// The subscription (m-line of the subscribe connection) with this mid.
    pub fn subscription_by_mid(&self, mid: Mid) -> Option<&Subscription> {
        self.subscriptions
            .iter()
            .find(|s| s.state.mid() == Some(mid))
    }

    /// The m-lines a subscribe offer describes: offered or open, with a source.
    pub fn offered_tracks(&self) -> Vec<OfferedTrack> {
        self.subscriptions
            .iter()
            .filter_map(|s| {
                let source = s.source?;
                let mid = match s.state {
                    SubscriptionState::Offered(mid) | SubscriptionState::Open(mid) => mid,
                    _ => return None,
                };
                Some(OfferedTrack {
                    mid,
                    participant: source.participant,
                    track: source.track,
                    kind: s.kind,
                    source: s.track_source,
                })
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
    /// An operator muted it: its media is dropped until the publisher
    /// unmutes it itself.
    pub operator_muted: bool,
    /// Its encodings, lowest quality first; one without a rid unless it
    /// simulcasts.
    pub layers: Vec<Layer>,
    /// Dynacast: the highest layer the publisher was last told to send;
    /// `None` until told (it sends all).
    pub requested_top: Option<usize>,
    /// Codec parameters of the payload types seen, looked up once per type.
    pub params: Vec<(Pt, PayloadParams)>,
    /// Participants receiving this track.
    pub subscribers: Vec<ParticipantId>,
    pub keyframes: KeyframeThrottle,
    /// Whether its audio carries speech now (audio tracks only).
    pub speech: SpeechMeter,
    /// What it captures.
    pub source: TrackSource,
}

impl PublishedTrack {
    pub fn new(id: TrackId, mid: Mid, kind: MediaKind, rids: &[Rid]) -> Self {
        PublishedTrack {
            id,
            mid,
            kind,
            muted: false,
            operator_muted: false,
            layers: layers_for(rids),
            requested_top: None,
            params: Vec::new(),
            subscribers: Vec::new(),
            keyframes: KeyframeThrottle::default(),
            speech: SpeechMeter::default(),
            source: TrackSource::default_for(kind),
        }
    }

    pub fn summary(&self) -> TrackSummary {
        TrackSummary {
            id: self.id,
            kind: self.kind,
            muted: self.muted,
            source: self.source,
        }
    }
}

/// Names one published track: its publisher and its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrackRef {
    pub participant: ParticipantId,
    pub track: TrackId,
}

/// One remote track a participant receives: an m-line of its subscribe
/// connection, and the [`DownTrack`] that rewrites what goes out on it.
pub struct Subscription {
    /// The track feeding this m-line; `None` once it is gone, or while a
    /// WHEP slot waits for one.
    pub source: Option<TrackRef>,
    pub kind: MediaKind,
    /// What the track feeding it captures.
    pub track_source: TrackSource,
    pub state: SubscriptionState,
    pub down: DownTrack,
    /// How the subscriber shows the video (adaptive stream).
    pub preference: VideoPreference,
    /// The pause the subscriber was last told of, if any.
    pub told_paused: Option<PauseReason>,
    /// No upgrade before this (set by a downgrade).
    pub upgrade_hold_until: Option<Instant>,
    /// Since when even the lowest layer does not fit the estimate.
    pub short_since: Option<Instant>,
    /// Since when the allocation allows a higher layer than the target.
    pub upgrade_since: Option<Instant>,
    /// Whether the last upgrade holds, and what failed ones cost.
    pub trial: UpgradeTrial,
}

/// The allocator's memory of upgrades that did not hold: an estimate
/// inflated by probes that a bursty shaper let through (its bucket absorbs a
/// probe whole) allows a layer the link cannot carry, and trying that layer
/// again and again freezes the video each time.
#[derive(Debug, Default, Clone, Copy)]
pub struct UpgradeTrial {
    /// The layer the last upgrade reached, and when, while on trial.
    pub upgraded: Option<(usize, Instant)>,
    /// Upgrades in a row that were moved down again while on trial.
    pub failures: u32,
    /// No upgrade to this layer or above before the instant.
    pub ceiling: Option<(usize, Instant)>,
    /// Since when the budget has held enough to lift the ceiling early.
    pub proven_since: Option<Instant>,
}

/// How a subscriber shows a remote video: whether at all, and at what size
/// in device pixels (0 × 0: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoPreference {
    pub visible: bool,
    pub width: u32,
    pub height: u32,
}

impl Default for VideoPreference {
    fn default() -> Self {
        VideoPreference {
            visible: true,
            width: 0,
            height: 0,
        }
    }
}

impl Subscription {
    /// A bundled client's subscription to `source`, not yet offered.
    pub fn new(source: TrackRef, kind: MediaKind, track_source: TrackSource) -> Self {
        Subscription {
            source: Some(source),
            kind,
            track_source,
            state: SubscriptionState::Pending,
            down: DownTrack::default(),
            preference: VideoPreference::default(),
            told_paused: None,
            upgrade_hold_until: None,
            short_since: None,
            upgrade_since: None,
            trial: UpgradeTrial::default(),
        }
    }

    /// A WHEP slot on client-offered `mid`, waiting for a source.
    pub fn slot(mid: Mid, kind: MediaKind) -> Self {
        Subscription {
            source: None,
            kind,
            track_source: TrackSource::default_for(kind),
            state: SubscriptionState::Slot(mid),
            down: DownTrack::default(),
            preference: VideoPreference::default(),
            told_paused: None,
            upgrade_hold_until: None,
            short_since: None,
            upgrade_since: None,
            trial: UpgradeTrial::default(),
        }
    }

    /// The m-line media is forwarded on now, if any.
    pub fn forwarding_mid(&self) -> Option<Mid> {
        match self.state {
            SubscriptionState::Open(mid) | SubscriptionState::Slot(mid) => Some(mid),
            _ => None,
        }
    }

    /// Its source is gone. Returns false when the subscription should be
    /// dropped at once (it was never offered).
    pub fn lose_source(&mut self) -> bool {
        self.source = None;
        match self.state {
            SubscriptionState::Pending => false,
            SubscriptionState::Open(mid) => {
                self.state = SubscriptionState::Ending(mid);
                true
            }
            // Offered: ends once answered. Slot: waits for another source.
            _ => true,
        }
    }
}

/// The life of a subscription's m-line.
///
/// Bundled client: `Pending` → `Offered` → `Open` → (source gone) `Ending` →
/// `Stopping` → dropped. An offer the client rejects sends `Offered` back to
/// `Pending` and `Stopping` back to `Ending`. A WHEP viewer's m-line is a
/// `Slot` for its whole life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionState {
    /// Waiting for the next subscribe offer.
    Pending,
    /// In the outstanding offer.
    Offered(Mid),
    /// Negotiated: media flows.
    Open(Mid),
    /// Its source is gone; the m-line is stopped in the next offer.
    Ending(Mid),
    /// Stopped in the outstanding offer; dropped once answered.
    Stopping(Mid),
    /// A WHEP viewer's m-line, offered by the client: always open, fed by
    /// whichever source the viewer follows, if any.
    Slot(Mid),
}

impl SubscriptionState {
    pub fn mid(&self) -> Option<Mid> {
        match *self {
            SubscriptionState::Pending => None,
            SubscriptionState::Offered(m)
            | SubscriptionState::Open(m)
            | SubscriptionState::Ending(m)
            | SubscriptionState::Stopping(m)
            | SubscriptionState::Slot(m) => Some(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> TrackRef {
        TrackRef {
            participant: ParticipantId(1),
            track: TrackId(2),
        }
    }

    #[test]
    fn losing_the_source_ends_open_m_lines_and_drops_unoffered_ones() {
        let mut pending = Subscription::new(source(), MediaKind::Video, TrackSource::Camera);
        assert!(!pending.lose_source(), "never offered: drop at once");

        let mut open = Subscription::new(source(), MediaKind::Video, TrackSource::Camera);
        open.state = SubscriptionState::Open(Mid::from("3"));
        assert!(open.lose_source());
        assert_eq!(open.state, SubscriptionState::Ending(Mid::from("3")));
        assert_eq!(open.forwarding_mid(), None);

        let mut slot = Subscription::slot(Mid::from("0"), MediaKind::Audio);
        slot.source = Some(source());
        assert!(slot.lose_source());
        assert_eq!(
            slot.forwarding_mid(),
            Some(Mid::from("0")),
            "a slot stays open"
        );
    }

    #[test]
    fn rooms_are_created_by_the_first_and_freed_by_the_last() {
        let mut m = Membership::default();
        let room = RoomName::parse("r").unwrap();
        assert!(m.enter(&room, ParticipantId(1)));
        assert!(!m.enter(&room, ParticipantId(2)));
        assert_eq!(
            m.members_except(&room, ParticipantId(1)),
            [ParticipantId(2)]
        );
        assert!(!m.exit(&room, ParticipantId(1)));
        assert!(m.exit(&room, ParticipantId(2)));
        assert!(m.rooms.is_empty());
    }
}
