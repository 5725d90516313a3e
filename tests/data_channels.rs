//! The data relay: messages on a participant's `cascade-reliable` and
//! `cascade-lossy` channels reach the room's other participants (or the ones
//! named), tagged with the sender, and what breaks the limits is refused,
//! told to the sender, and harms no one else.
//!
//! Deterministic scenarios of the media core: str0m clients, fake time, no
//! sockets (`cascade_test_support::sim`).

use cascade_test_support as common;

use std::borrow::Cow;
use std::time::Duration;

use cascade::media::data::envelope::{
    self, ClientData, Payload, LOSSY_LABEL, MAX_DATA_MESSAGE_BYTES, RELIABLE_LABEL,
};
use cascade::media::MediaGrants;
use cascade_protocol::{ErrorCode, ServerMessage};
use common::sim::Sim;
use str0m::media::MediaKind;

/// `names` join one room, each publishing media and both data channels,
/// and every channel is open.
fn room_with_data(sim: &mut Sim, room: &str, names: &[&str]) -> Vec<usize> {
    let indexes: Vec<usize> = names
        .iter()
        .map(|name| {
            let i = sim.join(room, name);
            sim.publish_with_data(i);
            i
        })
        .collect();
    let open = sim.run_until(Duration::from_secs(10), |s| {
        indexes.iter().all(|i| s.clients[*i].channels.len() == 2)
    });
    assert!(open, "every client's data channels open");
    indexes
}

fn text(data: &str, to: &[&str], topic: Option<&str>) -> Vec<u8> {
    let message = ClientData {
        topic: topic.map(Cow::Borrowed),
        to: to.iter().map(|t| Cow::Borrowed(*t)).collect(),
        payload: Payload::Text(data.into()),
    };
    let mut out = Vec::new();
    assert!(!envelope::encode_client(&message, &mut out));
    out
}

/// The texts `index` received on `label`, with their senders.
fn texts(sim: &Sim, index: usize, label: &str) -> Vec<(String, String)> {
    sim.clients[index]
        .data
        .iter()
        .filter(|(l, _, _)| l == label)
        .map(|(_, binary, bytes)| {
            let relayed = envelope::parse_relayed(*binary, bytes).expect("relayed envelope");
            let Payload::Text(text) = relayed.payload else {
                panic!("a text message arrived as binary");
            };
            (relayed.from.into_owned(), text.into_owned())
        })
        .collect()
}

fn errors(sim: &Sim, index: usize, code: ErrorCode) -> Vec<String> {
    sim.clients[index]
        .messages
        .iter()
        .filter_map(|m| match m {
            ServerMessage::Error { code: c, message } if *c == code => Some(message.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn reliable_messages_reach_everyone_else_in_the_room_in_order() {
    let mut sim = Sim::new();
    let [alice, bob, carol] = room_with_data(&mut sim, "room", &["alice", "bob", "carol"])[..]
    else {
        unreachable!()
    };
    let [elsewhere] = room_with_data(&mut sim, "other", &["dave"])[..] else {
        unreachable!()
    };
    for n in 0..50 {
        assert!(sim.send_data(
            alice,
            RELIABLE_LABEL,
            false,
            &text(&format!("m{n}"), &[], None)
        ));
    }
    sim.run(Duration::from_secs(1), false);

    let alice_id = sim.clients[alice].id.to_string();
    let want: Vec<(String, String)> = (0..50)
        .map(|n| (alice_id.clone(), format!("m{n}")))
        .collect();
    assert_eq!(
        texts(&sim, bob, RELIABLE_LABEL),
        want,
        "bob gets all, in order"
    );
    assert_eq!(
        texts(&sim, carol, RELIABLE_LABEL),
        want,
        "carol gets all, in order"
    );
    assert!(sim.clients[alice].data.is_empty(), "no echo to the sender");
    assert!(
        sim.clients[elsewhere].data.is_empty(),
        "nothing leaks to another room"
    );
    let stats = sim.core.stats();
    assert_eq!(stats.data_messages_in[0], 50);
    assert_eq!(stats.data_messages_relayed[0], 100);
}

#[test]
fn messages_naming_destinations_reach_only_those_by_identity_or_id() {
    let mut sim = Sim::new();
    let [alice, bob] = room_with_data(&mut sim, "room", &["alice", "bob"])[..] else {
        unreachable!()
    };
    let carol = sim.join_as("room", "carol", "carol-identity", MediaGrants::ALL);
    sim.publish_with_data(carol);
    assert!(
        sim.run_until(Duration::from_secs(10), |s| s.clients[carol].channels.len()
            == 2)
    );

    let bob_id = sim.clients[bob].id.to_string();
    sim.send_data(
        alice,
        RELIABLE_LABEL,
        false,
        &text("to bob", &[&bob_id], None),
    );
    sim.send_data(
        alice,
        RELIABLE_LABEL,
        false,
        &text("to carol", &["carol-identity"], None),
    );
    sim.send_data(
        alice,
        RELIABLE_LABEL,
        false,
        &text("to nobody", &["stranger"], None),
    );
    sim.run(Duration::from_millis(500), false);

    let got = |i| -> Vec<String> {
        texts(&sim, i, RELIABLE_LABEL)
            .into_iter()
            .map(|t| t.1)
            .collect()
    };
    assert_eq!(got(bob), ["to bob"]);
    assert_eq!(got(carol), ["to carol"]);
    // What carol sends names her identity.
    sim.send_data(carol, LOSSY_LABEL, false, &text("hi", &[], Some("chat")));
    sim.run(Duration::from_millis(500), false);
    let (binary, bytes) = sim.clients[alice]
        .data
        .iter()
        .find(|(l, _, _)| l == LOSSY_LABEL)
        .map(|(_, b, d)| (*b, d.clone()))
        .expect("alice got carol's lossy message");
    let relayed = envelope::parse_relayed(binary, &bytes).unwrap();
    assert_eq!(relayed.identity.as_deref(), Some("carol-identity"));
    assert_eq!(relayed.topic.as_deref(), Some("chat"));
    assert_eq!(relayed.from, sim.clients[carol].id.to_string());
}

#[test]
fn binary_payloads_cross_the_lossy_channel_untouched() {
    let mut sim = Sim::new();
    let [alice, bob] = room_with_data(&mut sim, "room", &["alice", "bob"])[..] else {
        unreachable!()
    };
    let state: Vec<u8> = (0..=255u8).collect();
    let message = ClientData {
        topic: Some("state".into()),
        to: vec![],
        payload: Payload::Binary(&state),
    };
    let mut bytes = Vec::new();
    assert!(envelope::encode_client(&message, &mut bytes));
    for _ in 0..30 {
        sim.send_data(alice, LOSSY_LABEL, true, &bytes);
        sim.run(Duration::from_millis(33), false);
    }
    let received: Vec<_> = sim.clients[bob]
        .data
        .iter()
        .filter(|(l, binary, _)| l == LOSSY_LABEL && *binary)
        .map(
            |(_, _, d)| match envelope::parse_relayed(true, d).unwrap().payload {
                Payload::Binary(bytes) => bytes.to_vec(),
                Payload::Text(_) => panic!("a binary message arrived as text"),
            },
        )
        .collect();
    assert_eq!(received.len(), 30, "a lossless link loses nothing");
    assert!(received.iter().all(|p| *p == state));
}

#[test]
fn an_oversize_or_malformed_message_is_refused_and_the_sender_told() {
    let mut sim = Sim::new();
    let [alice, bob] = room_with_data(&mut sim, "room", &["alice", "bob"])[..] else {
        unreachable!()
    };
    let just_fits = text(&"x".repeat(MAX_DATA_MESSAGE_BYTES - 11), &[], None);
    assert_eq!(just_fits.len(), MAX_DATA_MESSAGE_BYTES);
    let too_big = text(&"x".repeat(MAX_DATA_MESSAGE_BYTES - 10), &[], None);
    sim.send_data(alice, RELIABLE_LABEL, false, &too_big);
    sim.send_data(alice, RELIABLE_LABEL, false, b"not an envelope");
    sim.send_data(alice, RELIABLE_LABEL, false, &just_fits);
    sim.send_data(alice, RELIABLE_LABEL, false, &text("after", &[], None));
    sim.run(Duration::from_millis(500), false);

    let got: Vec<usize> = texts(&sim, bob, RELIABLE_LABEL)
        .iter()
        .map(|t| t.1.len())
        .collect();
    assert_eq!(
        got,
        [MAX_DATA_MESSAGE_BYTES - 11, 5],
        "only the valid messages, in order"
    );
    let too_large = errors(&sim, alice, ErrorCode::DataTooLarge);
    assert_eq!(too_large.len(), 1, "{too_large:?}");
    assert!(too_large[0].contains("16384"), "{}", too_large[0]);
    assert_eq!(errors(&sim, alice, ErrorCode::DataMalformed).len(), 1);
    assert!(errors(&sim, bob, ErrorCode::DataTooLarge).is_empty());
    let stats = sim.core.stats();
    assert_eq!(stats.data_refused, [0, 1, 0, 1]);
}

#[test]
fn a_flood_is_cut_to_the_rate_limit_with_one_notice_and_harms_no_one_else() {
    let mut sim = Sim::with_config(|c| c.data_limits.messages_per_second = 50);
    let [flooder, bob, carol] = room_with_data(&mut sim, "room", &["flooder", "bob", "carol"])[..]
    else {
        unreachable!()
    };
    sim.run(Duration::from_secs(1), true);
    let carol_id = sim.clients[carol].id;
    let video_before = sim.clients[bob]
        .payloads_from(carol_id, MediaKind::Video)
        .len();
    // 500 messages in half a second, while carol chats and publishes media.
    for n in 0..500 {
        sim.send_data(
            flooder,
            LOSSY_LABEL,
            false,
            &text(&format!("f{n}"), &[], None),
        );
        if n % 50 == 0 {
            sim.send_data(
                carol,
                RELIABLE_LABEL,
                false,
                &text(&format!("c{n}"), &[], None),
            );
        }
        if n % 10 == 0 {
            sim.run(Duration::from_millis(10), true);
        }
    }
    sim.run(Duration::from_secs(1), true);

    let flood = texts(&sim, bob, LOSSY_LABEL).len();
    assert!(
        (50..=80).contains(&flood),
        "a burst of 50 then 50/s for ~0.5 s is relayed, not 500: got {flood}"
    );
    let notices = errors(&sim, flooder, ErrorCode::DataRateLimited);
    assert!(
        (1..=2).contains(&notices.len()),
        "told at most once a second: {notices:?}"
    );
    let carol_msgs: Vec<String> = texts(&sim, bob, RELIABLE_LABEL)
        .into_iter()
        .map(|t| t.1)
        .collect();
    let want: Vec<String> = (0..10).map(|i| format!("c{}", i * 50)).collect();
    assert_eq!(carol_msgs, want, "carol's messages all arrive in order");
    assert!(
        sim.clients[bob]
            .payloads_from(carol_id, MediaKind::Video)
            .len()
            > video_before + 30,
        "media keeps flowing"
    );
    assert!(errors(&sim, carol, ErrorCode::DataRateLimited).is_empty());
}

#[test]
fn a_participant_without_can_publish_data_is_refused_but_still_receives() {
    let mut sim = Sim::new();
    let [alice] = room_with_data(&mut sim, "room", &["alice"])[..] else {
        unreachable!()
    };
    let grants = MediaGrants {
        publish_data: false,
        ..MediaGrants::ALL
    };
    let mute = sim.join_as("room", "listener", "listener", grants);
    sim.publish_with_data(mute);
    assert!(
        sim.run_until(Duration::from_secs(10), |s| s.clients[mute].channels.len()
            == 2)
    );

    sim.send_data(mute, RELIABLE_LABEL, false, &text("let me talk", &[], None));
    sim.send_data(alice, RELIABLE_LABEL, false, &text("hello", &[], None));
    sim.run(Duration::from_millis(500), false);

    assert!(
        sim.clients[alice].data.is_empty(),
        "nothing relayed from the listener"
    );
    let refused = errors(&sim, mute, ErrorCode::Forbidden);
    assert_eq!(refused.len(), 1);
    assert!(refused[0].contains("canPublishData"), "{}", refused[0]);
    assert_eq!(
        texts(&sim, mute, RELIABLE_LABEL).len(),
        1,
        "it still receives"
    );
}
