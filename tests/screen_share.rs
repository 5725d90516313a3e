//! Screen share: a participant publishes a second video named
//! `screen_share` in its re-offer; the room sees the track's source, gets
//! it as its own m-line beside the camera, and loses it when the share stops.
//!
//! Deterministic scenarios of the media core: str0m clients, fake time, no
//! sockets (`cascade_test_support::sim`).

use cascade_test_support as common;

use std::time::Duration;

use cascade::media::views::RoomView;
use cascade_protocol::{ServerMessage, TrackKind, TrackSource};
use common::sim::Sim;

/// Alice and Bob publish camera and microphone and see each other.
fn call() -> (Sim, usize, usize) {
    let mut sim = Sim::new();
    let alice = sim.join("room", "alice");
    sim.publish(alice);
    let bob = sim.join("room", "bob");
    sim.publish(bob);
    let up = sim.run_until(Duration::from_secs(10), |s| {
        s.send_media_due();
        [alice, bob].iter().all(|i| {
            s.clients[*i]
                .subscribe
                .as_ref()
                .is_some_and(|p| p.connected)
        })
    });
    assert!(up, "both connect");
    (sim, alice, bob)
}

/// Packets `viewer` received on m-lines carrying a track of `source`.
fn received_from(sim: &Sim, viewer: usize, source: TrackSource) -> usize {
    let c = &sim.clients[viewer];
    c.received
        .iter()
        .filter(|r| {
            c.subscribed
                .get(&r.mid)
                .is_some_and(|t| t.source == Some(source))
        })
        .count()
}

fn room_view(sim: &Sim) -> RoomView {
    let rooms = sim.core.rooms_view();
    rooms
        .into_iter()
        .find(|r| r.name == "room")
        .expect("the room exists")
}

#[test]
fn a_shared_screen_reaches_the_room_as_its_own_track_and_goes_when_stopped() {
    let (mut sim, alice, bob) = call();
    // Before sharing: Bob sees Alice's microphone and camera, named so.
    let sources: Vec<_> = sim.clients[bob]
        .subscribed
        .values()
        .map(|t| (t.kind, t.source))
        .collect();
    assert_eq!(sources.len(), 2, "{sources:?}");
    assert!(sources.contains(&(TrackKind::Audio, Some(TrackSource::Microphone))));
    assert!(sources.contains(&(TrackKind::Video, Some(TrackSource::Camera))));

    let seen = sim.clients[bob].messages.len();
    let mid = sim.share_screen(alice);
    let flowing = sim.run_until(Duration::from_secs(5), |s| {
        s.send_media_due();
        received_from(s, bob, TrackSource::ScreenShare) > 20
    });
    assert!(flowing, "Bob receives Alice's screen");
    let published = sim.clients[bob].messages[seen..]
        .iter()
        .find_map(|m| match m {
            ServerMessage::TrackPublished { track, .. } => Some(track.clone()),
            _ => None,
        });
    let published = published.expect("Bob is told of the new track");
    assert_eq!(published.kind, TrackKind::Video);
    assert_eq!(published.source, Some(TrackSource::ScreenShare));
    // The camera goes on beside it.
    let camera = received_from(&sim, bob, TrackSource::Camera);
    sim.run(Duration::from_secs(1), true);
    assert!(received_from(&sim, bob, TrackSource::Camera) > camera);

    // The admin view names the sources, on both sides.
    assert_eq!(
        published_sources(&sim, "alice"),
        ["camera", "microphone", "screen_share"]
    );
    let view = room_view(&sim);
    let b = view.participants.iter().find(|p| p.name == "bob").unwrap();
    assert!(b.subscribed.iter().any(|s| s.source == "screen_share"));

    // Alice stops sharing: the track goes, the camera stays.
    let screen_id = published_id(&sim, bob, TrackSource::ScreenShare);
    sim.stop_screen_share(alice, mid);
    let removed = sim.run_until(Duration::from_secs(5), |s| {
        s.send_media_due();
        s.clients[bob].messages.iter().any(
            |m| matches!(m, ServerMessage::TrackRemoved { track_id, .. } if *track_id == screen_id),
        )
    });
    assert!(removed, "Bob is told the screen share ended");
    sim.run(Duration::from_secs(2), true);
    let screen = received_from(&sim, bob, TrackSource::ScreenShare);
    let camera = received_from(&sim, bob, TrackSource::Camera);
    sim.run(Duration::from_secs(1), true);
    assert_eq!(
        received_from(&sim, bob, TrackSource::ScreenShare),
        screen,
        "no more screen"
    );
    assert!(received_from(&sim, bob, TrackSource::Camera) > camera);
    assert_eq!(published_sources(&sim, "alice"), ["camera", "microphone"]);
}

/// What `name` publishes, by source, sorted (the admin view).
fn published_sources(sim: &Sim, name: &str) -> Vec<&'static str> {
    let view = room_view(sim);
    let p = view.participants.iter().find(|p| p.name == name).unwrap();
    let mut sources: Vec<_> = p.published.iter().map(|t| t.source).collect();
    sources.sort();
    sources
}

/// The id of the track of `source` that `viewer` was told of.
fn published_id(sim: &Sim, viewer: usize, source: TrackSource) -> String {
    sim.clients[viewer]
        .messages
        .iter()
        .find_map(|m| match m {
            ServerMessage::TrackPublished { track, .. } if track.source == Some(source) => {
                Some(track.id.clone())
            }
            _ => None,
        })
        .expect("told of the track")
}
