//! Codecs: subscribers receive each codec under their own payload types.
//!
//! Deterministic scenarios of the media core: str0m clients, fake time, no
//! sockets (`cascade_test_support::sim`).

use cascade_test_support as common;

use std::time::Duration;

use common::sim::Sim;
use str0m::media::MediaKind;

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
