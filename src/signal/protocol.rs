//! The media core's words in the WebSocket protocol's (`cascade_protocol`,
//! `docs/PROTOCOL.md`): domain events become [`ServerMessage`]s, wire enums
//! become the core's.

use cascade_protocol::{
    ActiveSpeaker, ErrorCode, LayerActivity, ParticipantInfo, PcKind, ServerMessage,
    SubscribedTrack, TrackInfo, TrackKind, TrackSource, PROTOCOL_VERSION,
};
use str0m::media::MediaKind;

use crate::media::{
    DataRefusal, LeaveReason, OfferedTrack, ParticipantEvent, ParticipantSummary, PauseReason,
    PeerRole, TrackSummary,
};

/// What a WebSocket client is sent for `event`, if anything: a participant
/// that left by itself is not told so.
pub fn server_message(event: ParticipantEvent) -> Option<ServerMessage> {
    let message = match event {
        ParticipantEvent::Joined {
            room,
            participant,
            others,
        } => ServerMessage::Joined {
            version: PROTOCOL_VERSION,
            room: room.to_string(),
            participant_id: participant.to_string(),
            participants: others.into_iter().map(participant_info).collect(),
            // The session adds them: they depend on its credentials.
            ice_servers: Vec::new(),
        },
        ParticipantEvent::ParticipantJoined(p) => ServerMessage::ParticipantJoined {
            participant: participant_info(p),
        },
        ParticipantEvent::ParticipantLeft(id) => ServerMessage::ParticipantLeft {
            participant_id: id.to_string(),
        },
        ParticipantEvent::TrackPublished { participant, track } => ServerMessage::TrackPublished {
            participant_id: participant.to_string(),
            track: track_info(track),
        },
        ParticipantEvent::TrackUpdated { participant, track } => ServerMessage::TrackUpdated {
            participant_id: participant.to_string(),
            track: track_info(track),
        },
        ParticipantEvent::TrackRemoved { participant, track } => ServerMessage::TrackRemoved {
            participant_id: participant.to_string(),
            track_id: track.to_string(),
        },
        ParticipantEvent::TrackPaused {
            participant,
            track,
            reason,
        } => ServerMessage::TrackPaused {
            participant_id: participant.to_string(),
            track_id: track.to_string(),
            reason: match reason {
                PauseReason::Bandwidth => cascade_protocol::PauseReason::Bandwidth,
                PauseReason::Publisher => cascade_protocol::PauseReason::Publisher,
            },
        },
        ParticipantEvent::TrackResumed { participant, track } => ServerMessage::TrackResumed {
            participant_id: participant.to_string(),
            track_id: track.to_string(),
        },
        ParticipantEvent::PublishLayers { mid, layers } => ServerMessage::PublishLayers {
            mid: mid.to_string(),
            layers: layers
                .into_iter()
                .map(|(rid, active)| LayerActivity { rid, active })
                .collect(),
        },
        ParticipantEvent::SubscribeOffer { offer, tracks } => ServerMessage::SubscribeOffer {
            sdp: offer.to_sdp_string(),
            tracks: tracks.into_iter().map(subscribed_track).collect(),
        },
        ParticipantEvent::MutedByOperator { mid } => ServerMessage::MutedByOperator {
            mid: mid.to_string(),
        },
        ParticipantEvent::DataRefused { reason, message } => {
            let code = match reason {
                DataRefusal::Forbidden => ErrorCode::Forbidden,
                DataRefusal::TooLarge => ErrorCode::DataTooLarge,
                DataRefusal::RateLimited => ErrorCode::DataRateLimited,
                DataRefusal::Malformed => ErrorCode::DataMalformed,
            };
            ServerMessage::error(code, message)
        }
        ParticipantEvent::ActiveSpeakers(speakers) => ServerMessage::ActiveSpeakers {
            speakers: speakers
                .into_iter()
                .map(|s| ActiveSpeaker {
                    participant_id: s.participant.to_string(),
                    level: s.level,
                })
                .collect(),
        },
        ParticipantEvent::Removed(LeaveReason::Left) => return None,
        ParticipantEvent::Removed(reason) => ServerMessage::error(
            ErrorCode::Fatal,
            format!("removed from the room: {}", reason.as_str()),
        ),
    };
    Some(message)
}

/// The core's name for the wire's peer connection kind.
pub fn peer_role(pc: PcKind) -> PeerRole {
    match pc {
        PcKind::Publish => PeerRole::Publish,
        PcKind::Subscribe => PeerRole::Subscribe,
    }
}

pub fn track_kind(kind: MediaKind) -> TrackKind {
    match kind {
        MediaKind::Audio => TrackKind::Audio,
        MediaKind::Video => TrackKind::Video,
    }
}

fn participant_info(p: ParticipantSummary) -> ParticipantInfo {
    ParticipantInfo {
        id: p.id.to_string(),
        name: p.name.to_string(),
        identity: p.identity.map(|i| i.to_string()),
        tracks: p.tracks.into_iter().map(track_info).collect(),
    }
}

fn track_info(t: TrackSummary) -> TrackInfo {
    TrackInfo {
        id: t.id.to_string(),
        kind: track_kind(t.kind),
        muted: t.muted,
        source: Some(track_source(t.source)),
    }
}

/// The wire's name for what a track captures.
pub fn track_source(source: crate::media::TrackSource) -> TrackSource {
    use crate::media::TrackSource as Core;
    match source {
        Core::Microphone => TrackSource::Microphone,
        Core::Camera => TrackSource::Camera,
        Core::ScreenShare => TrackSource::ScreenShare,
        Core::ScreenShareAudio => TrackSource::ScreenShareAudio,
    }
}

/// The core's name for what a track captures, from the wire's.
pub fn core_track_source(source: TrackSource) -> crate::media::TrackSource {
    use crate::media::TrackSource as Core;
    match source {
        TrackSource::Microphone => Core::Microphone,
        TrackSource::Camera => Core::Camera,
        TrackSource::ScreenShare => Core::ScreenShare,
        TrackSource::ScreenShareAudio => Core::ScreenShareAudio,
    }
}

fn subscribed_track(t: OfferedTrack) -> SubscribedTrack {
    SubscribedTrack {
        mid: t.mid.to_string(),
        participant_id: t.participant.to_string(),
        track_id: t.track.to_string(),
        kind: track_kind(t.kind),
        source: Some(track_source(t.source)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{ParticipantId, TrackId};

    #[test]
    fn events_become_protocol_messages_and_leaving_says_nothing() {
        let track = TrackSummary {
            id: TrackId(3),
            kind: MediaKind::Video,
            muted: true,
            source: crate::media::TrackSource::ScreenShare,
        };
        let message = server_message(ParticipantEvent::TrackUpdated {
            participant: ParticipantId(1),
            track,
        });
        assert_eq!(
            message,
            Some(ServerMessage::TrackUpdated {
                participant_id: "p0000000000000001".into(),
                track: TrackInfo {
                    id: "t3".into(),
                    kind: TrackKind::Video,
                    muted: true,
                    source: Some(TrackSource::ScreenShare),
                },
            })
        );
        assert_eq!(
            server_message(ParticipantEvent::Removed(LeaveReason::Left)),
            None
        );
        assert!(matches!(
            server_message(ParticipantEvent::Removed(LeaveReason::ConnectTimeout)),
            Some(ServerMessage::Error { code: ErrorCode::Fatal, message }) if message.contains("connect_timeout")
        ));
    }
}
