//! Renegotiation: server-made subscribe offers and the ICE checks racing their answers.
//!
//! Deterministic scenarios of the media core: str0m clients, fake time, no
//! sockets (`cascade_test_support::sim`).

use cascade_test_support as common;

use std::time::Duration;

use common::sim::Sim;
use str0m::media::MediaKind;

#[test]
fn ice_checks_that_beat_the_answer_are_answered_once_it_arrives() {
    // The client starts ICE as soon as it has answered; its answer reaches
    // the server later, through signaling. The early checks must not be
    // lost, or connecting waits for the 250 ms STUN retransmission.
    let mut sim = Sim::new();
    let publisher = sim.join("room", "publisher");
    sim.publish(publisher);
    sim.run(Duration::from_millis(500), true);
    sim.hold_answers = true;
    let a = sim.join("room", "a");
    sim.run(Duration::from_millis(20), true); // checks arrive, answer doesn't
    let released_at = sim.now;
    sim.hold_answers = false;
    sim.release_answers();
    let connected = sim.run_until(Duration::from_secs(2), |s| {
        s.clients[a].subscribe.as_ref().is_some_and(|p| p.connected)
    });
    assert!(connected, "the subscribe connection connects");
    let took = sim.now - released_at;
    assert!(
        took < Duration::from_millis(200),
        "connected {took:?} after the answer, without waiting for a STUN retransmission"
    );
}

#[test]
fn only_a_subscribe_offer_without_tracks_carries_a_data_channel() {
    // The first joiner's subscribe offer has nothing else to negotiate, so
    // it gets a data channel to connect with. Later joiners' offers carry
    // the published tracks instead: an idle SCTP association would cost
    // str0m a poll on every packet forwarded to them.
    let mut sim = Sim::new();
    let first = sim.join("room", "first");
    sim.publish(first);
    sim.run(Duration::from_secs(1), true);
    let second = sim.join("room", "second");
    sim.run(Duration::from_secs(2), true);

    let offers = |index: usize| sim.clients[index].subscribe_offers();
    let first_offers = offers(first);
    assert!(
        first_offers
            .first()
            .is_some_and(|sdp| sdp.contains("m=application")),
        "the lone joiner's first offer carries a data channel: {first_offers:?}"
    );
    let second_offers = offers(second);
    assert!(!second_offers.is_empty(), "the second joiner got an offer");
    assert!(
        second_offers
            .iter()
            .all(|sdp| !sdp.contains("m=application")),
        "no data channel next to tracks: {second_offers:?}"
    );
    let first_id = sim.clients[first].id;
    assert!(
        !sim.clients[second]
            .payloads_from(first_id, MediaKind::Video)
            .is_empty(),
        "media reaches the subscriber whose connection has no data channel"
    );
}
