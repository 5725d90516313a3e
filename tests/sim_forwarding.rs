//! Deterministic scenarios of the media core: str0m clients, fake time, no
//! sockets (see `common/sim.rs`).

use cascade_test_support as common;

use std::time::Duration;

use cascade_protocol::ServerMessage;
use common::sim::Sim;
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
fn forwarded_packets_leave_at_the_flush_and_are_counted_until_then() {
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
    let mut flushed = 0;
    while let Some(t) = sim.core.poll_transmit() {
        flushed += usize::from(is_video(&t));
    }
    assert_eq!(flushed, 3 * 2, "the flush sends every written video packet");
}

fn counter_of(payload: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(&payload[..40.min(payload.len())]).to_string();
    text.split(':').nth(2).unwrap().parse().unwrap()
}

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

#[test]
fn h264_reaches_subscribers_under_their_own_payload_type() {
    let mut sim = Sim::new();
    sim.video_codec = str0m::format::Codec::H264;
    for name in ["alice", "bob"] {
        let i = sim.join("room", name);
        sim.publish(i);
    }
    sim.run(Duration::from_secs(2), true);
    let alice = sim.clients[0].id;
    let bob = &sim.clients[1];
    let video = bob.payloads_from(alice, MediaKind::Video);
    assert!(video.len() > 50, "bob got {} H.264 packets", video.len());
    let sub = bob.subscribe.as_ref().unwrap();
    let pts: std::collections::BTreeSet<_> = bob
        .received
        .iter()
        .filter(|r| {
            bob.subscribed
                .get(&r.mid)
                .is_some_and(|t| t.kind == cascade_protocol::TrackKind::Video)
        })
        .map(|r| r.pt)
        .collect();
    for pt in pts {
        assert_eq!(
            common::sim::codec_of(&sub.rtc, pt),
            Some(str0m::format::Codec::H264),
            "video arrives as H.264 in bob's numbering"
        );
    }
}

#[test]
fn a_lone_publisher_is_not_removed_while_its_media_flows() {
    // Its subscribe connection carries only a data channel and may never
    // connect; that must not count as the participant going away.
    let mut sim = Sim::new();
    let a = sim.join("room", "alone");
    sim.publish(a);
    sim.run(Duration::from_secs(40), true);
    assert!(!sim.clients[a].removed, "still in the room after 40 s");
    assert_eq!(sim.core.participant_count(), 1);
}

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

    let offers = |index: usize| -> Vec<String> {
        sim.clients[index]
            .messages
            .iter()
            .filter_map(|m| match m {
                ServerMessage::SubscribeOffer { sdp, .. } => Some(sdp.clone()),
                _ => None,
            })
            .collect()
    };
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
