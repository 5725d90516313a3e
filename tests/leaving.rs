//! Leaving: participants that leave, never connect or vanish are removed, and the room is told.
//!
//! Deterministic scenarios of the media core: str0m clients, fake time, no
//! sockets (`cascade_test_support::sim`).

use cascade_test_support as common;

use std::time::Duration;

use cascade::media::LeaveReason;
use cascade_protocol::ServerMessage;
use common::sim::Sim;

#[test]
fn leaving_removes_the_participant_and_its_tracks() {
    let mut sim = Sim::room_of(&["alice", "bob", "carol"]);
    sim.run(Duration::from_secs(1), true);
    let carol_id = sim.clients[2].id.to_string();
    sim.leave(2);
    sim.run(Duration::from_secs(1), true);

    for i in 0..2 {
        let told = sim.clients[i].messages.iter().any(|m| {
            matches!(m, ServerMessage::ParticipantLeft { participant_id } if *participant_id == carol_id)
        });
        assert!(told, "{} was told carol left", sim.clients[i].name);
        let last_offer = sim.clients[i]
            .messages
            .iter()
            .rev()
            .find_map(|m| match m {
                ServerMessage::SubscribeOffer { tracks, .. } => Some(tracks.clone()),
                _ => None,
            })
            .expect("a subscribe offer");
        assert!(
            last_offer.iter().all(|t| t.participant_id != carol_id),
            "carol's tracks are gone from the last offer"
        );
        assert_eq!(
            last_offer.len(),
            2,
            "the other publisher's two tracks remain"
        );
    }
    assert_eq!(sim.core.participant_count(), 2);
    assert_eq!(sim.core.peer_count(), 4);

    sim.leave(0);
    sim.leave(1);
    sim.run(Duration::from_millis(100), false);
    assert_eq!(sim.core.participant_count(), 0);
    assert_eq!(sim.core.room_count(), 0, "empty room is freed");
    assert_eq!(sim.core.peer_count(), 0);
}

/// The connect timeout in fake time: a participant whose subscribe
/// connection never comes up is removed once it passes, with that reason,
/// and the room is told; a connected one stays.
#[test]
fn a_participant_that_never_connects_is_removed_at_the_connect_timeout() {
    let mut sim = Sim::room_of(&["alice", "bob"]);
    let timeout = sim.core_config.connect_timeout;
    let ghost = sim.join_silent("room", "ghost");
    let ghost_id = sim.clients[ghost].id.to_string();

    sim.run(timeout - Duration::from_millis(500), true);
    assert_eq!(sim.clients[ghost].removal, None, "not before the timeout");
    sim.run(Duration::from_secs(1), true);
    assert_eq!(
        sim.clients[ghost].removal,
        Some(LeaveReason::ConnectTimeout)
    );
    let told = sim.clients[0].messages.iter().any(|m| {
        matches!(m, ServerMessage::ParticipantLeft { participant_id } if *participant_id == ghost_id)
    });
    assert!(told, "alice was told the ghost left");
    assert_eq!(sim.clients[0].removal, None, "alice stays");
    assert_eq!(sim.core.participant_count(), 2);
}

/// The ICE-disconnect grace in fake time: a connected participant whose
/// network goes away is removed for it once ICE has stayed disconnected for
/// the grace period. Two runs that differ only in the grace must remove it
/// that much apart.
#[test]
fn a_participant_whose_network_vanishes_is_removed_after_the_ice_grace() {
    let removed_after = |grace: Duration| {
        let mut sim = Sim::room_of_with(&["alice", "bob"], |c| c.disconnect_grace = grace);
        sim.run(Duration::from_secs(1), true);
        sim.vanish(1);
        let gone_at = sim.now;
        let removed = sim.run_until(Duration::from_secs(30), |s| s.clients[1].removal.is_some());
        assert!(removed, "bob is removed");
        assert_eq!(sim.clients[1].removal, Some(LeaveReason::IceDisconnected));
        assert_eq!(sim.clients[0].removal, None, "alice stays");
        assert_eq!(sim.core.participant_count(), 1);
        assert_eq!(sim.core.peer_count(), 2, "bob's connections are gone");
        sim.now - gone_at
    };
    let short = removed_after(Duration::from_secs(1));
    let long = removed_after(Duration::from_secs(4));
    let gap = long.saturating_sub(short);
    assert!(
        gap >= Duration::from_millis(2800) && gap <= Duration::from_millis(3200),
        "the grace decides when: removed after {short:?} and {long:?}"
    );
}
