//! Active speakers: the server decides who speaks from the RFC 6464 audio
//! level on each publisher's audio and tells the room (`active_speakers`)
//! only when that changes, at most once per 300 ms round.
//!
//! Deterministic scenarios of the media core: str0m clients sending audio
//! levels, fake time, no sockets (`cascade_test_support::sim`).

use cascade_test_support as common;

use std::time::{Duration, Instant};

use cascade_protocol::ServerMessage;
use common::sim::Sim;
use str0m::media::MediaKind;

const LOUD: Option<i8> = Some(-25);
const SILENT: Option<i8> = Some(-127);

/// `names` join one room and publish audio and video, all silent.
fn room(sim: &mut Sim, names: &[&str]) -> Vec<usize> {
    let indexes: Vec<usize> = names
        .iter()
        .map(|name| {
            let i = sim.join("room", name);
            sim.publish(i);
            sim.clients[i].audio_level = SILENT;
            i
        })
        .collect();
    let up = sim.run_until(Duration::from_secs(10), |s| {
        s.send_media_due();
        indexes.iter().all(|i| {
            s.clients[*i]
                .subscribe
                .as_ref()
                .is_some_and(|p| p.connected)
        })
    });
    assert!(up, "everyone connects");
    indexes
}

/// Every `active_speakers` list `index` received after `from`, as names.
fn lists(sim: &Sim, index: usize, from: usize) -> Vec<Vec<String>> {
    sim.clients[index].messages[from..]
        .iter()
        .filter_map(|m| match m {
            ServerMessage::ActiveSpeakers { speakers } => Some(
                speakers
                    .iter()
                    .map(|s| name_of(sim, &s.participant_id))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

fn name_of(sim: &Sim, id: &str) -> String {
    sim.clients
        .iter()
        .find(|c| c.id.to_string() == id)
        .map_or_else(|| format!("unknown {id}"), |c| c.name.clone())
}

/// Runs `duration` with media, noting when `watcher` got each speaker list.
fn run_watching(sim: &mut Sim, watcher: usize, duration: Duration) -> Vec<(Instant, Vec<String>)> {
    let mut seen = sim.clients[watcher].messages.len();
    let mut updates = Vec::new();
    let end = sim.now + duration;
    while sim.now < end {
        sim.send_media_due();
        sim.step();
        for list in lists(sim, watcher, seen) {
            updates.push((sim.now, list));
        }
        seen = sim.clients[watcher].messages.len();
    }
    updates
}

#[test]
fn the_speaker_is_the_one_whose_microphone_hears_speech_and_updates_come_only_on_change() {
    let mut sim = Sim::new();
    let [alice, bob, carol] = room(&mut sim, &["alice", "bob", "carol"])[..] else {
        unreachable!()
    };
    // Silence: nobody is told anything.
    let quiet = run_watching(&mut sim, carol, Duration::from_secs(2));
    assert!(quiet.is_empty(), "no speaker news in silence: {quiet:?}");

    sim.clients[alice].audio_level = LOUD;
    let start = sim.now;
    let updates = run_watching(&mut sim, carol, Duration::from_secs(5));
    assert_eq!(
        updates.iter().map(|(_, l)| l.clone()).collect::<Vec<_>>(),
        [vec!["alice".to_string()]],
        "one update while alice talks on"
    );
    assert!(
        updates[0].0 - start <= Duration::from_millis(700),
        "noticed within two rounds: {:?}",
        updates[0].0 - start
    );
    // Everyone in the room is told, the speaker too.
    for i in [alice, bob] {
        assert_eq!(lists(&sim, i, 0).last(), Some(&vec!["alice".to_string()]));
    }

    // Alice stops, Bob starts: the marker moves to Bob.
    sim.clients[alice].audio_level = SILENT;
    sim.clients[bob].audio_level = LOUD;
    let updates = run_watching(&mut sim, carol, Duration::from_secs(5));
    let last = updates.last().map(|(_, l)| l.clone());
    assert_eq!(last, Some(vec!["bob".to_string()]), "{updates:?}");
    assert!(updates.len() <= 3, "only changes are sent: {updates:?}");
    for pair in updates.windows(2) {
        assert!(
            pair[1].0 - pair[0].0 >= Duration::from_millis(300),
            "at most one update per round: {updates:?}"
        );
    }
}

#[test]
fn a_muted_microphone_is_not_a_speaker_and_a_newcomer_hears_who_speaks() {
    let mut sim = Sim::new();
    let [alice, bob] = room(&mut sim, &["alice", "bob"])[..] else {
        unreachable!()
    };
    sim.clients[alice].audio_level = LOUD;
    run_watching(&mut sim, bob, Duration::from_secs(2));
    assert_eq!(lists(&sim, bob, 0).last(), Some(&vec!["alice".to_string()]));

    // A newcomer is told the current list once, without a change.
    let dave = sim.join("room", "dave");
    let told = sim.run_until(Duration::from_secs(3), |s| {
        s.send_media_due();
        !lists(s, dave, 0).is_empty()
    });
    assert!(told, "the newcomer hears who speaks");
    assert_eq!(lists(&sim, dave, 0), [vec!["alice".to_string()]]);
    let others = lists(&sim, bob, 0).len();

    // Alice mutes her microphone (still loud): she is no speaker.
    let mid = sim.clients[alice]
        .publish_mids
        .iter()
        .find(|(k, _)| *k == MediaKind::Audio)
        .map(|(_, mid)| mid.to_string())
        .unwrap();
    let (now, id) = (sim.now, sim.clients[alice].id);
    sim.core.set_muted(now, id, &mid, true).unwrap();
    run_watching(&mut sim, bob, Duration::from_secs(3));
    assert_eq!(lists(&sim, bob, 0).last(), Some(&Vec::<String>::new()));
    assert_eq!(lists(&sim, bob, 0).len(), others + 1, "one update: nobody");
    assert_eq!(lists(&sim, dave, 0).last(), Some(&Vec::<String>::new()));
    assert!(sim.core.stats().speaker_updates >= 2);
}

#[test]
fn rooms_hear_only_their_own_speakers() {
    let mut sim = Sim::new();
    let [alice, bob] = room(&mut sim, &["alice", "bob"])[..] else {
        unreachable!()
    };
    let elsewhere = sim.join("other", "eve");
    sim.publish(elsewhere);
    sim.clients[elsewhere].audio_level = SILENT;
    sim.clients[alice].audio_level = LOUD;
    run_watching(&mut sim, elsewhere, Duration::from_secs(4));
    assert!(
        lists(&sim, elsewhere, 0).is_empty(),
        "another room's speaker is no news here"
    );
    assert_eq!(lists(&sim, bob, 0), [vec!["alice".to_string()]]);
}
