//! The core's domain events: what happened in a room, addressed to the
//! participant who should hear of it, plus where rooms open and close.
//!
//! The core says *what* happened in its own words (ids, kinds, an SDP offer);
//! turning that into the WebSocket protocol, WHIP/WHEP responses or
//! directory updates is the control plane's business (`crate::signal`,
//! `crate::worker`). Nothing here knows a wire format.

use str0m::change::SdpOffer;
use str0m::media::{MediaKind, Mid};

use super::data::DataRefusal;
use super::errors::LeaveReason;
use super::ids::{DisplayName, Identity, ParticipantId, RoomName, TrackId};

/// A participant as others see it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParticipantSummary {
    pub id: ParticipantId,
    pub name: DisplayName,
    pub identity: Option<Identity>,
    pub tracks: Vec<TrackSummary>,
}

/// A published track as others see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackSummary {
    pub id: TrackId,
    pub kind: MediaKind,
    pub muted: bool,
    pub source: TrackSource,
}

/// What a published track captures. The publisher names it per m-line; an
/// m-line it does not name is its microphone or camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackSource {
    Microphone,
    Camera,
    ScreenShare,
    /// The sound of a shared screen or tab.
    ScreenShareAudio,
}

impl TrackSource {
    /// What an m-line of `kind` carries unless its publisher says otherwise.
    pub fn default_for(kind: MediaKind) -> Self {
        match kind {
            MediaKind::Audio => TrackSource::Microphone,
            MediaKind::Video => TrackSource::Camera,
        }
    }

    /// Whether a track of `kind` can carry it (a screen share's video is
    /// video, its sound audio).
    pub fn fits(self, kind: MediaKind) -> bool {
        match self {
            TrackSource::Microphone | TrackSource::ScreenShareAudio => kind == MediaKind::Audio,
            TrackSource::Camera | TrackSource::ScreenShare => kind == MediaKind::Video,
        }
    }

    /// The name in the protocol, admin views and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            TrackSource::Microphone => "microphone",
            TrackSource::Camera => "camera",
            TrackSource::ScreenShare => "screen_share",
            TrackSource::ScreenShareAudio => "screen_share_audio",
        }
    }
}

/// One m-line of a subscribe offer and the track it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfferedTrack {
    pub mid: Mid,
    pub participant: ParticipantId,
    pub track: TrackId,
    pub kind: MediaKind,
    pub source: TrackSource,
}

/// Something one participant should be told.
#[derive(Debug, PartialEq)]
pub enum ParticipantEvent {
    /// You are in `room` as `participant`; these were there before you.
    Joined {
        room: RoomName,
        participant: ParticipantId,
        others: Vec<ParticipantSummary>,
    },
    ParticipantJoined(ParticipantSummary),
    ParticipantLeft(ParticipantId),
    TrackPublished {
        participant: ParticipantId,
        track: TrackSummary,
    },
    TrackUpdated {
        participant: ParticipantId,
        track: TrackSummary,
    },
    TrackRemoved {
        participant: ParticipantId,
        track: TrackId,
    },
    /// A remote video is no longer forwarded to you.
    TrackPaused {
        participant: ParticipantId,
        track: TrackId,
        reason: PauseReason,
    },
    /// A remote video paused earlier is forwarded again (from its next keyframe).
    TrackResumed {
        participant: ParticipantId,
        track: TrackId,
    },
    /// Dynacast: which simulcast layers (by rid) of your video on publish
    /// m-line `mid` any subscriber needs.
    PublishLayers {
        mid: Mid,
        layers: Vec<(String, bool)>,
    },
    /// A new offer for your subscribe connection, awaiting your answer.
    SubscribeOffer {
        offer: SdpOffer,
        tracks: Vec<OfferedTrack>,
    },
    /// An operator muted your track on publish-connection `mid`: its media
    /// is no longer forwarded until you unmute it.
    MutedByOperator {
        mid: Mid,
    },
    /// A message you sent on a data channel was not relayed (told at most
    /// once a second per reason; `message` counts those untold meanwhile).
    DataRefused {
        reason: DataRefusal,
        message: String,
    },
    /// Who in your room speaks now, loudest first (empty: nobody). Sent
    /// when the list changes, at most once per speaker round.
    ActiveSpeakers(Vec<Speaker>),
    /// You are no longer in the room. Always the last event a participant gets.
    Removed(LeaveReason),
}

/// A participant speaking, with its smoothed level in -dBov (0 = full
/// scale, 127 = silence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Speaker {
    pub participant: ParticipantId,
    pub level: u8,
}

/// Why a subscriber's video was paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseReason {
    /// Even its lowest layer does not fit the subscriber's bandwidth estimate.
    Bandwidth,
    /// Its publisher sends no layer the subscriber may receive.
    Publisher,
}

/// Output of the core for the control plane.
#[derive(Debug, PartialEq)]
pub enum CoreEvent {
    /// Tell this participant something.
    Participant(ParticipantId, ParticipantEvent),
    /// A room got its first participant on this core.
    RoomOpened(RoomName),
    /// A room's last participant left this core; the room is gone.
    RoomClosed(RoomName),
}
