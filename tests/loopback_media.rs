//! The real server on loopback with real str0m bots over UDP and the
//! WebSocket protocol.

use cascade_test_support as common;

use std::time::Duration;

use cascade_load::{self as bot, BotOptions};
use str0m::media::MediaKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bots_in_a_room_receive_each_other_and_rooms_stay_apart() {
    let server = common::server::start(2, |_| {}).await;
    let addr = server.http_addr();
    let mut tasks = Vec::new();
    for index in 0..3 {
        let mut opts = BotOptions::new(addr, "meeting", index);
        opts.video_bitrate_bps = 500_000;
        opts.duration = Duration::from_secs(5);
        tasks.push(tokio::spawn(bot::run(opts)));
    }
    let mut lonely = BotOptions::new(addr, "other-room", 9);
    lonely.duration = Duration::from_secs(5);
    let lonely = tokio::spawn(bot::run(lonely));

    let mut reports = Vec::new();
    for t in tasks {
        reports.push(t.await.unwrap().expect("bot ran"));
    }
    let lonely = lonely.await.unwrap().expect("bot ran");

    for (me, report) in reports.iter().enumerate() {
        assert!(
            report.errors.is_empty(),
            "bot {me} got errors: {:?}",
            report.errors
        );
        for sender in 0..3u32 {
            if sender as usize == me {
                assert!(
                    report.from_sender(sender, MediaKind::Audio).is_none(),
                    "no echo"
                );
                continue;
            }
            for kind in [MediaKind::Audio, MediaKind::Video] {
                let stream = report
                    .from_sender(sender, kind)
                    .unwrap_or_else(|| panic!("bot {me} got no {kind:?} from bot {sender}"));
                let minimum = if kind == MediaKind::Audio { 50 } else { 100 };
                assert!(
                    stream.packets >= minimum,
                    "bot {me} got {} {kind:?} packets from {sender}",
                    stream.packets
                );
                assert_eq!(
                    stream.lost(),
                    0,
                    "bot {me} lost {kind:?} from {sender} on loopback"
                );
            }
        }
        assert!(report.join_to_first_media.is_some());
    }
    assert!(
        lonely.received.is_empty(),
        "a bot alone in another room receives nothing, got {:?}",
        lonely.received.keys().collect::<Vec<_>>()
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_that_never_connects_is_removed_and_the_room_is_told() {
    let server = common::server::start(1, |c| c.connect_timeout = Duration::from_secs(2)).await;
    // A well-behaved bot stays for a while.
    let mut opts = BotOptions::new(server.http_addr(), "room", 1);
    opts.duration = Duration::from_secs(6);
    let watcher = tokio::spawn(bot::run(opts));
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A client that joins but never answers the subscribe offer nor sends media.
    let mut ghost = common::server::Ws::connect(&server).await;
    let ghost_id = ghost.join("room", "ghost").await;
    let message = ghost.expect_error("fatal").await;
    assert!(message.contains("connect_timeout"), "told why: {message}");
    assert!(ghost.recv().await.is_none(), "socket closed after removal");

    let report = watcher.await.unwrap().expect("bot ran");
    assert!(
        report.participants_left.contains(&ghost_id),
        "room was told the ghost left"
    );
    server.shutdown().await;
}
