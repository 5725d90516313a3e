//! The media core's counters and samples, checked in the deterministic
//! simulation (`common/sim.rs`): exact numbers, fake time, no sockets.

use cascade_test_support as common;

use std::time::Duration;

use cascade::media::stats::Sample;
use cascade::media::LeaveReason;
use common::sim::Sim;

const AUDIO: usize = 0;
const VIDEO: usize = 1;

fn samples(sim: &mut Sim) -> Vec<Sample> {
    std::iter::from_fn(|| sim.core.poll_sample()).collect()
}

#[test]
fn a_clean_call_counts_traffic_and_no_loss_or_retransmissions() {
    let mut sim = Sim::room_of(&["alice", "bob"]);
    sim.run(Duration::from_secs(3), true);
    sim.run(Duration::from_millis(1500), false); // one more stats interval

    let stats = sim.core.stats().clone();
    for kind in [AUDIO, VIDEO] {
        assert!(stats.rtp_packets_in[kind] >= 250, "{stats:?}");
        // Two participants: each packet goes to the one other participant,
        // except those that arrived before its subscription opened.
        assert!(stats.rtp_packets_forwarded[kind] <= stats.rtp_packets_in[kind]);
        assert!(stats.rtp_packets_forwarded[kind] + 20 >= stats.rtp_packets_in[kind]);
        // str0m's egress stats saw every forwarded packet go out, no more.
        assert_eq!(
            stats.rtp_packets_sent[kind],
            stats.rtp_packets_forwarded[kind]
        );
        assert_eq!(stats.rtp_bytes_sent[kind], stats.rtp_bytes_forwarded[kind]);
        assert_eq!(stats.rtp_retransmitted[kind], 0, "nothing was lost");
        assert_eq!(stats.nacks_received[kind], 0);
        assert_eq!(stats.rtp_lost_by_subscribers[kind], 0);
    }
    assert_eq!(stats.rtp_dropped, 0);

    let samples = samples(&mut sim);
    let joins: Vec<Duration> = samples
        .iter()
        .filter_map(|s| match s {
            Sample::JoinToFirstMedia(d) => Some(*d),
            _ => None,
        })
        .collect();
    assert_eq!(joins.len(), 2, "one join time per participant: {samples:?}");
    assert!(joins
        .iter()
        .all(|d| !d.is_zero() && *d < Duration::from_secs(10)));
    let rtts: Vec<Duration> = samples
        .iter()
        .filter_map(|s| match s {
            Sample::Rtt(d) => Some(*d),
            _ => None,
        })
        .collect();
    assert!(!rtts.is_empty(), "receiver reports give RTTs: {samples:?}");
    // The simulated network has 1 ms one-way latency.
    assert!(
        rtts.iter().all(|d| *d < Duration::from_millis(50)),
        "{rtts:?}"
    );
}

#[test]
fn a_lost_video_packet_counts_a_nack_and_a_retransmission() {
    let mut sim = Sim::room_of(&["alice", "bob"]);
    sim.run(Duration::from_secs(1), true);
    // Drop the 5th large (video) datagram the server sends to bob.
    let bob_sub = sim.clients[1].subscribe.as_ref().unwrap().addr;
    sim.drop_nth_video_datagram_to(bob_sub, 5);
    sim.run(Duration::from_secs(2), true);
    sim.run(Duration::from_millis(1500), false);

    let stats = sim.core.stats();
    assert!(stats.nacks_received[VIDEO] >= 1, "{stats:?}");
    assert!(stats.rtp_retransmitted[VIDEO] >= 1, "{stats:?}");
    assert!(
        stats.rtp_retransmitted[VIDEO] <= 3,
        "one loss, a few resends at most: {stats:?}"
    );
    assert_eq!(stats.rtp_retransmitted[AUDIO], 0);
    assert_eq!(
        stats.rtp_packets_sent[VIDEO],
        stats.rtp_packets_forwarded[VIDEO] + stats.rtp_retransmitted[VIDEO],
        "sent = forwarded + retransmitted"
    );
}

#[test]
fn occupancy_and_views_follow_joins_and_leaves() {
    let mut sim = Sim::room_of(&["alice", "bob", "carol"]);
    sim.run(Duration::from_millis(500), true);

    let o = sim.core.occupancy();
    assert_eq!((o.rooms, o.participants, o.peers), (1, 3, 6));
    assert_eq!(o.published_tracks, [3, 3]);
    assert_eq!(
        o.subscribed_tracks,
        [6, 6],
        "each of 3 gets 2 others' tracks"
    );

    let rooms = sim.core.rooms_view();
    assert_eq!(rooms.len(), 1);
    assert_eq!(rooms[0].name, "room");
    let names: Vec<&str> = rooms[0]
        .participants
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
    let alice = &rooms[0].participants[0];
    assert_eq!(alice.id, sim.clients[0].id.to_string());
    assert!(alice.connected);
    let kinds: Vec<&str> = alice.published.iter().map(|t| t.kind).collect();
    assert_eq!(kinds, ["audio", "video"]);
    assert!(alice.published.iter().all(|t| t.subscribers == 2));
    assert_eq!(alice.subscribed.len(), 4);
    assert!(alice.subscribed.iter().all(|s| s.state == "open"));

    sim.leave(2);
    sim.run(Duration::from_millis(500), true);
    let o = sim.core.occupancy();
    assert_eq!((o.participants, o.published_tracks), (2, [2, 2]));
    assert_eq!(o.subscribed_tracks, [2, 2]);

    sim.leave(0);
    sim.leave(1);
    sim.run(Duration::from_millis(100), false);
    assert_eq!(sim.core.occupancy(), Default::default());
    assert!(sim.core.rooms_view().is_empty());
    let stats = sim.core.stats();
    assert_eq!(stats.joins, 3);
    assert_eq!(stats.leaves_by_reason[LeaveReason::Left.index()], 3);
    assert_eq!(stats.leaves_by_reason.iter().sum::<u64>(), stats.leaves);
}
