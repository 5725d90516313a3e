//! ICE restarts of a bundled client's subscribe connection under a live
//! signaling connection: on the client's `restart_ice` the server's next
//! offer carries new credentials, media flows on afterwards, and the
//! participant is the same. (The publish connection restarts with the
//! client's own offer; the browser e2e test covers both in Chromium.)
//!
//! Deterministic scenarios of the media core: str0m clients, fake time, no
//! sockets (`cascade_test_support::sim`).

use cascade_test_support as common;

use std::time::Duration;

use common::sim::Sim;
use str0m::media::MediaKind;

/// The `a=ice-ufrag` of an SDP.
fn ufrag(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:"))
        .map(str::to_string)
}

fn offers(sim: &Sim, index: usize) -> Vec<String> {
    sim.clients[index].subscribe_offers()
}

#[test]
fn a_subscribe_ice_restart_offers_new_credentials_and_media_flows_on() {
    let mut sim = Sim::new();
    let alice = sim.join("room", "alice");
    sim.publish(alice);
    let bob = sim.join("room", "bob");
    let up = sim.run_until(Duration::from_secs(10), |s| {
        s.send_media_due();
        s.clients[bob]
            .subscribe
            .as_ref()
            .is_some_and(|p| p.connected)
            && !s.clients[bob]
                .payloads_from(s.clients[alice].id, MediaKind::Video)
                .is_empty()
    });
    assert!(up, "bob plays alice");
    let before = offers(&sim, bob);
    let old = ufrag(before.last().unwrap()).expect("an ice-ufrag");

    let (now, id) = (sim.now, sim.clients[bob].id);
    sim.core
        .restart_subscribe_ice(now, id)
        .expect("bob's subscribe connection");
    let offered = sim.run_until(Duration::from_secs(2), |s| {
        s.send_media_due();
        offers(s, bob).len() > before.len()
    });
    assert!(offered, "bob gets a new subscribe offer");
    let new = ufrag(offers(&sim, bob).last().unwrap()).expect("an ice-ufrag");
    assert_ne!(new, old, "the offer restarts ICE with new credentials");

    let video = sim.clients[bob]
        .payloads_from(sim.clients[alice].id, MediaKind::Video)
        .len();
    sim.run(Duration::from_secs(3), true);
    assert!(
        sim.clients[bob]
            .payloads_from(sim.clients[alice].id, MediaKind::Video)
            .len()
            > video + 50,
        "media flows after the restart"
    );
    assert!(
        sim.clients[bob].removal.is_none(),
        "bob is still in the room"
    );
    // A restart asked for while an offer is pending waits for its answer.
    let count = offers(&sim, bob).len();
    let now = sim.now;
    sim.core.restart_subscribe_ice(now, id).unwrap();
    sim.core.restart_subscribe_ice(now, id).unwrap();
    sim.run(Duration::from_secs(2), true);
    assert!(offers(&sim, bob).len() > count);
    assert!(sim.clients[bob].removal.is_none());
}

#[test]
fn a_restart_for_someone_without_a_subscribe_connection_is_refused() {
    let mut sim = Sim::new();
    let alice = sim.join_silent("room", "alice");
    let (now, id) = (sim.now, sim.clients[alice].id);
    // Joined, but its subscribe connection was never answered: still there
    // in the core (the offer is pending), so a restart is queued; someone
    // unknown is refused.
    assert!(sim.core.restart_subscribe_ice(now, id).is_ok());
    let stranger = cascade::media::ParticipantId(u64::MAX);
    assert!(sim.core.restart_subscribe_ice(now, stranger).is_err());
}
