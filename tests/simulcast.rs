//! Simulcast and congestion control in the deterministic simulation: a
//! publisher sends q/h/f layers (VP8-shaped, see `cascade_test_support::vp8`)
//! and one subscriber's downlink is a bottleneck (`Link`: a fixed rate and a
//! bounded queue that drops when full). The subscriber's str0m client sends
//! TWCC feedback like a browser; the core's bandwidth estimate and allocator
//! must find the layer the link carries.

use std::time::{Duration, Instant};

use cascade::media::{TrackId, VideoPreference};
use cascade_protocol::{PauseReason, ServerMessage};
use cascade_test_support as common;
use common::sim::{Received, Sim};
use common::vp8::{tag_of, Tag};

/// Alice publishes simulcast; Bob only watches. Returns the sim and Bob's index.
fn call() -> (Sim, usize) {
    let mut sim = Sim::new();
    let alice = sim.join("room", "alice");
    sim.publish_simulcast(alice);
    let bob = sim.join("room", "bob");
    let up = sim.run_until(Duration::from_secs(10), |s| {
        s.clients[alice]
            .publish
            .as_ref()
            .is_some_and(|p| p.connected)
            && s.clients[bob]
                .subscribe
                .as_ref()
                .is_some_and(|p| p.connected)
    });
    assert!(up, "both connect");
    (sim, bob)
}

/// Bob's received video packets, with their tags, since `since`.
fn video_since(sim: &Sim, bob: usize, since: Instant) -> Vec<(Received, Tag)> {
    sim.clients[bob]
        .received
        .iter()
        .filter(|r| r.at >= since)
        .filter_map(|r| Some((r.clone(), tag_of(&r.payload)?)))
        .collect()
}

/// Runs `duration` with media; returns when Bob's video last changed layer
/// (relative to the start) and the layer it was on at the end.
fn run_and_watch(sim: &mut Sim, bob: usize, duration: Duration) -> (Duration, Option<usize>) {
    let start = sim.now;
    sim.run(duration, true);
    let video = video_since(sim, bob, start);
    let mut settled = Duration::ZERO;
    for pair in video.windows(2) {
        if pair[0].1.layer != pair[1].1.layer {
            settled = pair[1].0.at - start;
        }
    }
    (settled, video.last().map(|(_, t)| t.layer))
}

/// Every layer change in Bob's stream, as his jitter buffer orders it (by
/// sequence number, retransmissions filling gaps), lands on a keyframe's
/// first packet with the sequence number, timestamp and picture id
/// continuing from the packet before. Changes next to a packet the link
/// lost for good cannot be checked; at least one must be.
fn assert_switches_are_seamless(sim: &Sim, bob: usize) {
    let mut video = video_since(sim, bob, sim.clients[bob].received[0].at);
    video.sort_by_key(|(r, _)| r.seq);
    video.dedup_by_key(|(r, _)| r.seq);
    let mut checked = 0;
    for pair in video.windows(2) {
        let ((a, at), (b, bt)) = (&pair[0], &pair[1]);
        if at.layer == bt.layer || b.seq != a.seq + 1 {
            continue;
        }
        checked += 1;
        assert!(
            bt.keyframe && bt.first,
            "switch to L{} not on a keyframe start: {bt:?}",
            bt.layer
        );
        // Real time between the two packets: up to the 1.5 s it takes to
        // notice a stopped layer plus the wait for a keyframe.
        let step = b.timestamp.wrapping_sub(a.timestamp);
        assert!(
            (1..450_000).contains(&step),
            "timestamp step {step} at a switch"
        );
        assert_eq!(
            bt.picture_id,
            (at.picture_id + 1) & 0x7fff,
            "picture ids continue"
        );
    }
    assert!(checked > 0, "no layer switch could be checked");
}

#[test]
fn a_narrow_link_settles_on_the_low_layer_and_a_wide_one_climbs_to_the_top() {
    let (mut sim, bob) = call();
    let (_, layer) = run_and_watch(&mut sim, bob, Duration::from_secs(15));
    assert_eq!(layer, Some(2), "an open link climbs to the top layer");
    sim.shape_downlink(bob, 400_000, 30_000);
    let (settled, layer) = run_and_watch(&mut sim, bob, Duration::from_secs(12));
    println!("400 kbit/s: last switch {settled:?} after shaping, on L{layer:?}");
    assert_eq!(layer, Some(0), "the low layer fits 400 kbit/s");
    assert!(
        settled < Duration::from_secs(6),
        "settles within a few seconds: {settled:?}"
    );
    // No sustained loss: the last seconds on the low layer drop nothing.
    let drops = sim.downlink(bob).unwrap().dropped;
    sim.run(Duration::from_secs(3), true);
    assert_eq!(
        sim.downlink(bob).unwrap().dropped,
        drops,
        "no loss once settled"
    );
    let recent = video_since(&sim, bob, sim.now - Duration::from_secs(3));
    assert!(
        recent.len() > 100,
        "the low layer keeps playing: {} packets",
        recent.len()
    );
    assert!(recent.iter().all(|(_, t)| t.layer == 0));

    sim.shape_downlink(bob, 5_000_000, 60_000);
    let (climbed, layer) = run_and_watch(&mut sim, bob, Duration::from_secs(25));
    println!("5 Mbit/s: last switch {climbed:?} after widening, on L{layer:?}");
    assert_eq!(layer, Some(2), "the top layer fits 5 Mbit/s");
    assert_switches_are_seamless(&sim, bob);
    let stats = sim.core.stats();
    assert!(
        stats.layer_switches_up >= 1 && stats.layer_switches_down >= 1,
        "{stats:?}"
    );
}

#[test]
fn a_link_too_slow_for_the_lowest_layer_pauses_the_video_and_tells_the_client() {
    let (mut sim, bob) = call();
    sim.shape_downlink(bob, 120_000, 15_000);
    let paused = sim.run_until(Duration::from_secs(20), |s| {
        s.send_media_due();
        s.clients[bob].messages.iter().any(|m| {
            matches!(
                m,
                ServerMessage::TrackPaused {
                    reason: PauseReason::Bandwidth,
                    ..
                }
            )
        })
    });
    assert!(paused, "bob is told his video is paused for bandwidth");
    // The server forwards no more video. (Packets written before still
    // drain from the pacer, and padding may repeat old ones from the send
    // history, so arrivals are no measure.)
    let forwarded = sim.core.stats().rtp_packets_forwarded[1];
    sim.run(Duration::from_secs(8), true);
    assert_eq!(
        sim.core.stats().rtp_packets_forwarded[1],
        forwarded,
        "nothing forwarded while paused"
    );

    sim.shape_downlink(bob, 5_000_000, 60_000);
    let resumed = sim.run_until(Duration::from_secs(30), |s| {
        s.send_media_due();
        s.clients[bob]
            .messages
            .iter()
            .any(|m| matches!(m, ServerMessage::TrackResumed { .. }))
    });
    assert!(resumed, "bob is told it resumed");
    let from = sim.now;
    sim.run(Duration::from_secs(2), true);
    let video = video_since(&sim, bob, from);
    assert!(video.len() > 50, "video flows again");
    assert!(
        video[0].1.keyframe && video[0].1.first,
        "resumes at a keyframe"
    );
}

#[test]
fn a_layer_the_publisher_stops_moves_its_subscribers_to_another() {
    let (mut sim, bob) = call();
    let (_, layer) = run_and_watch(&mut sim, bob, Duration::from_secs(15));
    assert_eq!(layer, Some(2), "an open link gets the top layer");
    sim.clients[0].layers[2].stopped = true;
    let (_, layer) = run_and_watch(&mut sim, bob, Duration::from_secs(5));
    assert_eq!(layer, Some(1), "moved to the next layer down");
    assert!(
        !sim.clients[bob]
            .messages
            .iter()
            .any(|m| matches!(m, ServerMessage::TrackPaused { .. })),
        "a layer stopping is no pause"
    );
    assert_switches_are_seamless(&sim, bob);
}

#[test]
fn preferences_cap_the_layer_hide_the_video_and_pause_unneeded_layers_at_the_publisher() {
    let (mut sim, bob) = call();
    let (_, layer) = run_and_watch(&mut sim, bob, Duration::from_secs(15));
    assert_eq!(layer, Some(2));
    let track: TrackId = sim.clients[bob]
        .subscribed
        .values()
        .find(|t| t.kind == cascade_protocol::TrackKind::Video)
        .expect("bob subscribes alice's video")
        .track_id
        .parse()
        .unwrap();
    let id = sim.clients[bob].id;
    let small = VideoPreference {
        visible: true,
        width: 320,
        height: 180,
    };
    sim.core
        .set_video_preference(sim.now, id, track, small)
        .unwrap();
    let (_, layer) = run_and_watch(&mut sim, bob, Duration::from_secs(3));
    assert_eq!(layer, Some(0), "a 320x180 tile gets the 320x180 layer");
    let told = sim.clients[0].messages.iter().rev().find_map(|m| match m {
        ServerMessage::PublishLayers { layers, .. } => Some(layers.clone()),
        _ => None,
    });
    let active: Vec<(String, bool)> = told
        .expect("alice is told which layers are needed")
        .into_iter()
        .map(|l| (l.rid, l.active))
        .collect();
    assert_eq!(
        active,
        [("q".into(), true), ("h".into(), false), ("f".into(), false)]
    );

    let hidden = VideoPreference {
        visible: false,
        width: 0,
        height: 0,
    };
    sim.core
        .set_video_preference(sim.now, id, track, hidden)
        .unwrap();
    sim.run(Duration::from_millis(200), true);
    let from = sim.now;
    sim.run(Duration::from_secs(2), true);
    assert!(
        video_since(&sim, bob, from).is_empty(),
        "a hidden tile gets nothing"
    );
    assert!(
        !sim.clients[bob]
            .messages
            .iter()
            .any(|m| matches!(m, ServerMessage::TrackPaused { .. })),
        "hiding is the client's own doing: no pause notice"
    );
    let unknown = sim
        .core
        .set_video_preference(sim.now, id, TrackId(999), small);
    assert!(
        unknown.is_err(),
        "a preference for no such track is refused"
    );
}

#[test]
fn an_open_link_pauses_no_video_while_the_estimate_climbs_to_what_a_big_room_needs() {
    // Nine single-layer publishers: every subscriber wants eight videos,
    // several times the first estimate. P0 first hides them all, so its
    // estimate settles on audio alone, then shows them at once: the
    // estimate must climb to what they need without a video paused.
    let names: Vec<String> = (0..9).map(|i| format!("p{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut sim = Sim::room_of(&names);
    let p0 = sim.clients[0].id;
    let videos: Vec<TrackId> = sim.clients[0]
        .subscribed
        .values()
        .filter(|t| t.kind == cascade_protocol::TrackKind::Video)
        .map(|t| t.track_id.parse().unwrap())
        .collect();
    assert_eq!(videos.len(), 8);
    let show_all = |sim: &mut Sim, visible| {
        for &track in &videos {
            let shown = VideoPreference {
                visible,
                width: 0,
                height: 0,
            };
            let now = sim.now;
            sim.core
                .set_video_preference(now, p0, track, shown)
                .unwrap();
        }
    };
    show_all(&mut sim, false);
    sim.run(Duration::from_secs(10), true);
    show_all(&mut sim, true);
    sim.run(Duration::from_secs(15), true);
    for (i, client) in sim.clients.iter().enumerate() {
        let paused = client
            .messages
            .iter()
            .filter(|m| matches!(m, ServerMessage::TrackPaused { .. }))
            .count();
        assert_eq!(paused, 0, "{} was told of {paused} paused videos", names[i]);
    }
    let from = sim.now;
    sim.run(Duration::from_secs(2), true);
    for client in &sim.clients {
        let senders: std::collections::HashSet<&[u8]> = client
            .received
            .iter()
            .filter(|r| r.at >= from && r.payload.len() > 1000)
            .map(|r| &r.payload[..2])
            .collect();
        assert_eq!(senders.len(), 8, "{} plays every other video", client.name);
    }
}
