//! Forwarding: every participant receives every other's media, byte for byte, at the flush.
//!
//! Deterministic scenarios of the media core: str0m clients, fake time, no
//! sockets (`cascade_test_support::sim`).

use cascade_test_support as common;

use std::time::Duration;

use cascade::media::stats::DropReason;
use common::sim::{counter_of, Sim};
use str0m::media::MediaKind;

#[test]
fn three_participants_receive_each_others_media_byte_for_byte() {
    let mut sim = Sim::room_of(&["alice", "bob", "carol"]);
    sim.run(Duration::from_secs(3), true);
    sim.run(Duration::from_millis(200), false); // let the last packets land

    for receiver in 0..3 {
        for sender in 0..3 {
            if receiver == sender {
                continue;
            }
            let sender_id = sim.clients[sender].id;
            let sender_name = sim.clients[sender].name.clone();
            for kind in [MediaKind::Audio, MediaKind::Video] {
                let got = sim.clients[receiver].payloads_from(sender_id, kind);
                assert!(
                    got.len() >= 100,
                    "{} got only {} {kind:?} packets from {sender_name}",
                    sim.clients[receiver].name,
                    got.len()
                );
                // Every payload is exactly what the sender wrote, in order
                // and without gaps from the first one received.
                let first: u64 = counter_of(&got[0]);
                for (i, payload) in got.iter().enumerate() {
                    let n = first + i as u64;
                    let mut expected = format!("{sender_name}:{kind:?}:{n}:").into_bytes();
                    expected.resize(payload.len(), (n % 251) as u8);
                    assert_eq!(payload, &expected, "payload {n} from {sender_name} differs");
                }
            }
        }
        // Nobody receives their own media back.
        let own = sim.clients[receiver].id;
        assert!(sim.clients[receiver]
            .payloads_from(own, MediaKind::Audio)
            .is_empty());
    }
    let stats = sim.core.stats();
    assert!(stats.rtp_packets_forwarded[1] >= 2 * stats.rtp_packets_in[1] - 12);
}

#[test]
fn forwarded_packets_are_counted_when_written_and_leave_after_the_flush() {
    let mut sim = Sim::room_of(&["alice", "bob", "carol"]);
    sim.run(Duration::from_secs(1), true);
    assert_eq!(sim.core.unflushed_writes(), 0, "a step ends with a flush");
    while sim.core.poll_transmit().is_some() {}

    let before: u64 = sim.core.stats().rtp_packets_forwarded.iter().sum();
    sim.send_media(); // one audio and one video packet from each of the three
    sim.deliver_to_server_unflushed();
    let written = sim.core.stats().rtp_packets_forwarded.iter().sum::<u64>() - before;
    assert_eq!(
        written,
        3 * 2 * 2,
        "each packet is written to the two others"
    );
    assert_eq!(sim.core.unflushed_writes(), 12);
    let is_video = |t: &str0m::net::Transmit| t.contents.len() > 1000;
    let mut early = 0;
    while let Some(t) = sim.core.poll_transmit() {
        early += usize::from(is_video(&t));
    }
    assert_eq!(early, 0, "no forwarded video leaves before the flush");

    sim.core.flush(sim.now);
    assert_eq!(sim.core.unflushed_writes(), 0);
    // The flush hands the packets to each subscriber's pacer (bandwidth
    // estimation is on); they leave at the deadlines it sets, within a few
    // milliseconds, with no further input.
    let start = sim.now;
    let mut now = sim.now;
    let mut flushed = 0;
    while now < start + Duration::from_millis(50) {
        while let Some(t) = sim.core.poll_transmit() {
            flushed += usize::from(is_video(&t));
        }
        now = sim
            .core
            .next_deadline()
            .max(now + Duration::from_micros(100));
        sim.core.handle_timeout(now);
    }
    assert_eq!(
        flushed,
        3 * 2,
        "every written video packet leaves after the flush"
    );
}

#[test]
fn a_lone_publisher_is_not_removed_while_its_media_flows() {
    // Its subscribe connection carries only a data channel and may never
    // connect; that must not count as the participant going away.
    let mut sim = Sim::new();
    let a = sim.join("room", "alone");
    sim.publish(a);
    sim.run(Duration::from_secs(40), true);
    assert_eq!(sim.clients[a].removal, None, "still in the room after 40 s");
    assert_eq!(sim.core.participant_count(), 1);
}

#[test]
fn a_subscriber_still_connecting_is_sent_nothing_stale_once_it_connects() {
    let mut sim = Sim::new();
    let alice = sim.join("room", "alice");
    sim.publish(alice);
    let up = sim.run_until(Duration::from_secs(10), |s| {
        s.clients[alice]
            .publish
            .as_ref()
            .is_some_and(|pc| pc.connected)
    });
    assert!(up, "alice's publish connection connects");
    let alice_addr = sim.clients[alice].publish.as_ref().unwrap().addr;
    // Nothing the server sends reaches anyone but alice: bob's subscribe
    // connection answers but cannot come up (its ICE checks go unanswered).
    sim.drop_filter = Some(Box::new(move |t| t.destination != alice_addr));
    let bob = sim.join("room", "bob");
    sim.run(Duration::from_secs(2), true);
    let stats = sim.core.stats();
    let not_connected = DropReason::NotConnected as usize;
    assert_eq!(
        stats.rtp_packets_forwarded,
        [0, 0],
        "nothing is written to a connection that is not up"
    );
    let held = stats.rtp_dropped_by_reason[0][not_connected];
    assert!(
        held >= 50,
        "alice's audio for bob is dropped, not queued: {held}"
    );
    assert!(
        !sim.clients[bob].subscribe.as_ref().unwrap().connected,
        "bob's connection stays down while the server cannot reach it"
    );

    // The way opens: bob connects and gets alice's media from then on, not
    // the two seconds he missed.
    sim.drop_filter = None;
    let connected = sim.run_until(Duration::from_secs(10), |s| {
        s.clients[bob]
            .subscribe
            .as_ref()
            .is_some_and(|pc| pc.connected)
    });
    assert!(connected, "bob connects once the server reaches him");
    sim.run(Duration::from_secs(1), true);
    sim.run(Duration::from_millis(200), false);
    let alice_id = sim.clients[alice].id;
    let audio = sim.clients[bob].payloads_from(alice_id, MediaKind::Audio);
    assert!(
        audio.len() >= 20,
        "bob hears alice: {} packets",
        audio.len()
    );
    let first = counter_of(&audio[0]);
    assert!(
        first > held,
        "bob's first audio packet (#{first}) was sent after he connected, not one of the {held} \
         alice sent while he was connecting"
    );
}
