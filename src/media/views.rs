//! Read-only views of a core for gauges and the admin endpoint: how much it
//! holds ([`Occupancy`]) and every room with its participants ([`RoomView`]).

use serde::Serialize;
use str0m::media::MediaKind;

use super::core::MediaCore;
use super::membership::{Participant, ParticipantMode, SubscriptionState};
use super::stats::kind_index;

/// How many rooms, participants and tracks a core holds right now.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Occupancy {
    pub rooms: usize,
    pub participants: usize,
    pub peers: usize,
    /// Published tracks by kind (`[audio, video]`).
    pub published_tracks: [usize; 2],
    /// Subscriptions whose m-line is negotiated, by kind.
    pub subscribed_tracks: [usize; 2],
    /// Videos paused for a subscriber (bandwidth, or no layer flowing).
    pub paused_videos: usize,
    /// Simulcast layers publishers were asked not to send (dynacast).
    pub dynacast_paused_layers: usize,
}

/// A room as the admin endpoint shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RoomView {
    pub name: String,
    pub participants: Vec<ParticipantView>,
}

/// A participant as the admin endpoint shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ParticipantView {
    pub id: String,
    pub name: String,
    /// The access token's identity (absent in open mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// `full` (bundled client), `publish_only` (WHIP) or `viewer` (WHEP).
    pub mode: &'static str,
    /// Whether a connection of this participant has connected.
    pub connected: bool,
    pub published: Vec<PublishedView>,
    pub subscribed: Vec<SubscribedView>,
}

/// A published track as the admin endpoint shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PublishedView {
    pub id: String,
    pub kind: &'static str,
    /// `microphone`, `camera`, `screen_share` or `screen_share_audio`.
    pub source: &'static str,
    /// The mid on the publisher's publish connection.
    pub mid: String,
    pub muted: bool,
    /// An operator muted it: nothing of it is forwarded.
    pub operator_muted: bool,
    pub subscribers: usize,
}

/// A subscription (an m-line of the subscribe connection).
#[derive(Debug, Clone, Serialize)]
pub struct SubscribedView {
    pub participant_id: String,
    pub track_id: String,
    pub kind: &'static str,
    pub source: &'static str,
    pub mid: Option<String>,
    /// `to_add`, `negotiating`, `open` or `stopping`.
    pub state: &'static str,
}

impl From<&Participant> for ParticipantView {
    fn from(p: &Participant) -> Self {
        ParticipantView {
            id: p.id.to_string(),
            name: p.name.to_string(),
            identity: p.identity.as_ref().map(|i| i.to_string()),
            mode: match p.mode {
                ParticipantMode::Full => "full",
                ParticipantMode::PublishOnly => "publish_only",
                ParticipantMode::Viewer { .. } => "viewer",
            },
            connected: p.connected,
            published: p
                .published
                .iter()
                .map(|t| PublishedView {
                    id: t.id.to_string(),
                    kind: kind_str(t.kind),
                    source: t.source.as_str(),
                    mid: t.mid.to_string(),
                    muted: t.muted,
                    operator_muted: t.operator_muted,
                    subscribers: t.subscribers.len(),
                })
                .collect(),
            subscribed: p
                .subscriptions
                .iter()
                .filter_map(|s| {
                    let source = s.source?;
                    Some(SubscribedView {
                        participant_id: source.participant.to_string(),
                        track_id: source.track.to_string(),
                        kind: kind_str(s.kind),
                        source: s.track_source.as_str(),
                        mid: s.state.mid().map(|m| m.to_string()),
                        state: match s.state {
                            SubscriptionState::Pending => "to_add",
                            SubscriptionState::Offered(_) => "negotiating",
                            SubscriptionState::Open(_) | SubscriptionState::Slot(_) => "open",
                            SubscriptionState::Ending(_) | SubscriptionState::Stopping(_) => {
                                "stopping"
                            }
                        },
                    })
                })
                .collect(),
        }
    }
}

/// The label of `kind` in metrics and views.
pub fn kind_str(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
    }
}

impl MediaCore {
    /// Rooms, participants and tracks right now (for gauges).
    pub fn occupancy(&self) -> Occupancy {
        let mut o = Occupancy {
            rooms: self.members.rooms.len(),
            participants: self.members.participants.len(),
            peers: self.scheduler.peer_count(),
            dynacast_paused_layers: self.dynacast_paused_layers(),
            ..Occupancy::default()
        };
        for p in self.members.participants.values() {
            for t in &p.published {
                o.published_tracks[kind_index(t.kind)] += 1;
            }
            for s in &p.subscriptions {
                if s.forwarding_mid().is_some() && s.source.is_some() {
                    o.subscribed_tracks[kind_index(s.kind)] += 1;
                    o.paused_videos += usize::from(s.told_paused.is_some());
                }
            }
        }
        o
    }

    /// Every room with its participants and their tracks (admin endpoint).
    pub fn rooms_view(&self) -> Vec<RoomView> {
        let mut rooms: Vec<RoomView> = self
            .members
            .rooms
            .iter()
            .map(|(name, room)| RoomView {
                name: name.to_string(),
                participants: room
                    .members
                    .iter()
                    .filter_map(|id| self.members.participants.get(id))
                    .map(ParticipantView::from)
                    .collect(),
            })
            .collect();
        rooms.sort_by(|a, b| a.name.cmp(&b.name));
        rooms
    }
}
