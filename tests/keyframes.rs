//! Keyframes: a subscriber that needs one gets it requested from the publisher.
//!
//! Deterministic scenarios of the media core: str0m clients, fake time, no
//! sockets (`cascade_test_support::sim`).

use cascade_test_support as common;

use std::time::Duration;

use common::sim::Sim;
use str0m::media::MediaKind;

#[test]
fn late_joiner_gets_a_keyframe_requested_from_the_publisher() {
    let mut sim = Sim::room_of(&["alice", "bob"]);
    sim.run(Duration::from_secs(2), true);
    let before = sim.clients[0].keyframe_requests;

    let carol = sim.join("room", "carol");
    let got_media = sim.run_until(Duration::from_secs(10), |s| {
        s.send_media_due();
        !s.clients[carol]
            .payloads_from(s.clients[0].id, MediaKind::Video)
            .is_empty()
    });
    assert!(got_media, "late joiner receives alice's video");
    sim.run(Duration::from_millis(600), true);
    assert!(
        sim.clients[0].keyframe_requests > before,
        "alice was asked for a keyframe when carol subscribed ({} before, {} after)",
        before,
        sim.clients[0].keyframe_requests
    );
}
