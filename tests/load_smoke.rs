//! The load generator's own smoke test: short runs of its scenarios against
//! an in-process server on loopback, so `cascade-load` cannot rot. Asserts
//! what must hold on loopback (everyone receives every stream, nothing is
//! lost or stalls), never how fast anything was.

use cascade_test_support as common;

use std::time::Duration;

use cascade_load::load::{self, LoadOptions, Scenario, Target};
use cascade_load::summary::LoadResult;

fn short(scenario: Scenario, participants: usize) -> LoadOptions {
    LoadOptions {
        scenario,
        participants,
        rooms: if scenario == Scenario::Rooms { 2 } else { 1 },
        video_bitrate_bps: 500_000,
        duration: Duration::from_secs(3),
        warmup: Duration::from_secs(1),
        join_timeout: Duration::from_secs(15),
        progress: false,
        ..LoadOptions::default()
    }
}

fn assert_clean(r: &LoadResult) {
    assert_eq!(r.bots_failed, 0, "no bot failed: {:?}", r.errors);
    assert_eq!(
        r.bots_incomplete, 0,
        "every subscriber received every stream it expected"
    );
    assert_eq!(r.streams_stalled, 0, "no stream stopped early");
    assert_eq!(
        r.streams_unexpected, 0,
        "nobody hears another room or itself"
    );
    assert_eq!(r.window_lost_packets, 0, "no loss on loopback once joined");
    // Joins renegotiate everyone's subscribe connection; an audio packet
    // lost then (not retransmitted) is reported, not fatal here.
    assert!(
        r.loss_ratio < 0.001,
        "loss over the whole run: {}",
        r.loss_ratio
    );
    assert!(r.errors.is_empty(), "no server errors: {:?}", r.errors);
    assert!(r.packets_per_second > 0.0 && r.received_packets > 0);
    assert!(r.latency_ms.is_some() && r.join_ms.is_some());
    assert!(r.is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_meeting_and_webinar_run_clean() {
    let server = common::server::start(2, |_| {}).await;
    let target = Target::Cascade {
        http_addr: server.http_addr(),
    };

    let meeting = load::run(&target, &short(Scenario::Meeting, 3))
        .await
        .expect("meeting runs");
    assert_clean(&meeting);
    assert_eq!((meeting.participants, meeting.publishers), (3, 3));
    // 3 publishers x 2 subscribers each x (audio + video) all arrived.
    assert!(meeting.received_packets > 6 * 50);

    let webinar = load::run(&target, &short(Scenario::Webinar, 3))
        .await
        .expect("webinar runs");
    assert_clean(&webinar);
    assert_eq!((webinar.participants, webinar.publishers), (4, 1));

    let json = serde_json::to_value(&webinar).expect("results serialize");
    assert_eq!(json["scenario"], "webinar");
    assert!(json["latency_ms"]["p99"].as_f64().is_some());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_rooms_stay_apart() {
    let server = common::server::start(2, |_| {}).await;
    let target = Target::Cascade {
        http_addr: server.http_addr(),
    };
    let rooms = load::run(&target, &short(Scenario::Rooms, 2))
        .await
        .expect("rooms run");
    assert_clean(&rooms);
    assert_eq!((rooms.participants, rooms.rooms), (4, 2));
    server.shutdown().await;
}
