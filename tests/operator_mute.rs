//! An operator's mute (room service API) in the media core: the track's
//! media stops reaching subscribers, the room sees it muted, the publisher
//! is told, other tracks and rooms are untouched, and only the publisher's
//! own unmute brings the media back (with a keyframe request, so video
//! resumes at once).
//!
//! Deterministic scenarios of the media core: str0m clients, fake time, no
//! sockets (`cascade_test_support::sim`). The HTTP route and its refusals
//! are in `tests/access.rs`.

use cascade_test_support as common;

use std::time::Duration;

use cascade::media::{MuteError, RoomName, TrackId};
use cascade_protocol::ServerMessage;
use common::sim::Sim;
use str0m::media::MediaKind;

/// The id of `publisher`'s `kind` track as `listener` was told of it.
fn published_track(sim: &Sim, listener: usize, publisher: usize, kind: &str) -> TrackId {
    let publisher_id = sim.clients[publisher].id.to_string();
    sim.clients[listener]
        .messages
        .iter()
        .find_map(|m| match m {
            ServerMessage::TrackPublished {
                participant_id,
                track,
            } if *participant_id == publisher_id
                && serde_json::to_value(track.kind).unwrap() == kind =>
            {
                Some(track.id.parse().expect("a track id"))
            }
            _ => None,
        })
        .expect("the listener heard of the track")
}

fn received(sim: &Sim, listener: usize, publisher: usize, kind: MediaKind) -> usize {
    let publisher_id = sim.clients[publisher].id;
    sim.clients[listener]
        .payloads_from(publisher_id, kind)
        .len()
}

#[test]
fn an_operator_mute_stops_the_media_until_the_publisher_unmutes() {
    let mut sim = Sim::new();
    let publisher = sim.join("room", "speaker");
    sim.publish(publisher);
    let listener = sim.join("room", "listener");
    let elsewhere_pub = sim.join("other", "other speaker");
    sim.publish(elsewhere_pub);
    let elsewhere = sim.join("other", "other listener");
    sim.run(Duration::from_secs(2), true);
    assert!(received(&sim, listener, publisher, MediaKind::Video) > 0);

    let room = RoomName::parse("room").unwrap();
    let video = published_track(&sim, listener, publisher, "video");
    let id = sim.clients[publisher].id;
    let now = sim.now;
    sim.core
        .mute_by_operator(now, &room, id, video)
        .expect("the track is there");
    sim.run(Duration::from_millis(300), true);

    let publisher_id = id.to_string();
    let told_room = sim.clients[listener].messages.iter().any(|m| {
        matches!(m, ServerMessage::TrackUpdated { participant_id, track }
            if *participant_id == publisher_id && track.muted && track.id == video.to_string())
    });
    assert!(told_room, "the room sees the video muted");
    let video_mid = sim.clients[publisher]
        .publish_mids
        .iter()
        .find(|(k, _)| *k == MediaKind::Video)
        .map(|(_, mid)| mid.to_string())
        .unwrap();
    let told_publisher = sim.clients[publisher]
        .messages
        .iter()
        .any(|m| matches!(m, ServerMessage::MutedByOperator { mid } if *mid == video_mid));
    assert!(told_publisher, "the publisher is told which track");

    // The publisher's client keeps sending (it has not reacted yet): none
    // of its video is forwarded, its audio and the other room still are.
    let video_before = received(&sim, listener, publisher, MediaKind::Video);
    let audio_before = received(&sim, listener, publisher, MediaKind::Audio);
    let other_before = received(&sim, elsewhere, elsewhere_pub, MediaKind::Video);
    sim.run(Duration::from_secs(2), true);
    assert_eq!(
        received(&sim, listener, publisher, MediaKind::Video),
        video_before,
        "no video while muted"
    );
    assert!(received(&sim, listener, publisher, MediaKind::Audio) > audio_before);
    assert!(received(&sim, elsewhere, elsewhere_pub, MediaKind::Video) > other_before);
    assert!(sim
        .core
        .stats()
        .rtp_dropped_by_reason
        .iter()
        .flatten()
        .any(|n| *n > 0));

    // Muting again changes nothing; wrong room, participant or track fail.
    let now = sim.now;
    sim.core.mute_by_operator(now, &room, id, video).unwrap();
    let other_room = RoomName::parse("other").unwrap();
    assert!(matches!(
        sim.core.mute_by_operator(now, &other_room, id, video),
        Err(MuteError::NotJoined)
    ));
    assert!(matches!(
        sim.core.mute_by_operator(now, &room, id, TrackId(9999)),
        Err(MuteError::NoSuchTrack(_))
    ));

    // The publisher unmutes itself: video flows again, starting from a
    // keyframe request.
    let requests_before = sim.clients[publisher].keyframe_requests;
    let now = sim.now;
    sim.core
        .set_muted(now, id, &video_mid, false)
        .expect("its own track");
    let video_muted = received(&sim, listener, publisher, MediaKind::Video);
    sim.run(Duration::from_secs(2), true);
    assert!(
        received(&sim, listener, publisher, MediaKind::Video) > video_muted,
        "video flows after the publisher's unmute"
    );
    assert!(
        sim.clients[publisher].keyframe_requests > requests_before,
        "subscribers get a keyframe to start from"
    );
}
