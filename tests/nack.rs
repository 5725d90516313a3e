//! NACK: a subscriber's lost packet is retransmitted from the server's history.
//!
//! Deterministic scenarios of the media core: str0m clients, fake time, no
//! sockets (`cascade_test_support::sim`).

use cascade_test_support as common;

use std::time::Duration;

use common::sim::{counter_of, Sim};
use str0m::media::MediaKind;

#[test]
fn a_lost_video_packet_is_retransmitted_after_nack() {
    let mut sim = Sim::room_of(&["alice", "bob"]);
    sim.run(Duration::from_secs(1), true);
    // Drop the 5th large (video) datagram the server sends to bob's
    // subscribe connection.
    let bob_sub = sim.clients[1].subscribe.as_ref().unwrap().addr;
    sim.drop_nth_video_datagram_to(bob_sub, 5);
    let before = sim.clients[1]
        .payloads_from(sim.clients[0].id, MediaKind::Video)
        .len();
    sim.run(Duration::from_secs(2), true);
    sim.run(Duration::from_millis(500), false);
    let got = sim.clients[1].payloads_from(sim.clients[0].id, MediaKind::Video);
    let counters: Vec<u64> = got[before..].iter().map(|p| counter_of(p)).collect();
    let mut sorted = counters.clone();
    sorted.sort_unstable();
    sorted.dedup();
    let (lo, hi) = (sorted[0], *sorted.last().unwrap());
    assert_eq!(
        sorted.len() as u64,
        hi - lo + 1,
        "no gap in bob's video after the loss: the dropped packet was resent"
    );
    assert!(
        counters != sorted,
        "the resent packet arrived out of order, as a retransmission does"
    );
}
