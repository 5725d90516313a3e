//! What a token's identity and media grants change in the core: who
//! receives tracks, and which connection of an identity stays.
//!
//! Deterministic scenarios of the media core: str0m clients, fake time, no
//! sockets (`cascade_test_support::sim`).

use cascade_test_support as common;

use std::time::Duration;

use cascade::media::{LeaveReason, MediaGrants};
use cascade_protocol::ServerMessage;
use common::sim::Sim;
use str0m::media::MediaKind;

#[test]
fn a_participant_without_can_subscribe_receives_no_tracks() {
    let mut sim = Sim::new();
    let publisher = sim.join("room", "publisher");
    sim.publish(publisher);
    sim.run(Duration::from_millis(500), true);
    let grants = MediaGrants {
        publish: true,
        subscribe: false,
        publish_data: true,
    };
    let deaf = sim.join_as("room", "deaf", "deaf-user", grants);
    let listener = sim.join("room", "listener");
    sim.run(Duration::from_secs(2), true);

    let publisher_id = sim.clients[publisher].id;
    assert!(
        !sim.clients[listener]
            .payloads_from(publisher_id, MediaKind::Video)
            .is_empty(),
        "an ordinary subscriber gets the video"
    );
    assert!(
        sim.clients[deaf]
            .payloads_from(publisher_id, MediaKind::Video)
            .is_empty(),
        "no media for a participant that may not subscribe"
    );
    let offered_tracks = sim.clients[deaf]
        .messages
        .iter()
        .filter_map(|m| match m {
            ServerMessage::SubscribeOffer { tracks, .. } => Some(tracks.len()),
            _ => None,
        })
        .sum::<usize>();
    assert_eq!(offered_tracks, 0, "its subscribe offers carry no tracks");
    // It still sees who is in the room and what they publish.
    assert!(sim.clients[deaf].messages.iter().any(
        |m| matches!(m, ServerMessage::Joined { participants, .. } if participants.len() == 1)
    ));
}

#[test]
fn a_second_join_with_the_same_identity_replaces_the_first() {
    let mut sim = Sim::new();
    let watcher = sim.join("room", "watcher");
    let first = sim.join_as("room", "Alice", "alice", MediaGrants::ALL);
    sim.publish(first);
    sim.run(Duration::from_secs(1), true);
    let second = sim.join_as("room", "Alice again", "alice", MediaGrants::ALL);
    // Another room's "alice" is someone else.
    let elsewhere = sim.join_as("other", "Alice", "alice", MediaGrants::ALL);
    sim.run(Duration::from_secs(1), true);

    assert_eq!(sim.clients[first].removal, Some(LeaveReason::Replaced));
    assert_eq!(sim.clients[second].removal, None);
    assert_eq!(sim.clients[elsewhere].removal, None);
    let first_id = sim.clients[first].id.to_string();
    assert!(
        sim.clients[watcher].messages.iter().any(
            |m| matches!(m, ServerMessage::ParticipantLeft { participant_id } if *participant_id == first_id)
        ),
        "the room hears the replaced connection leave"
    );
    let identity_seen = sim.clients[watcher].messages.iter().any(|m| {
        matches!(m, ServerMessage::ParticipantJoined { participant }
            if participant.identity.as_deref() == Some("alice") && participant.name == "Alice again")
    });
    assert!(identity_seen, "others see the newcomer's identity");
}
