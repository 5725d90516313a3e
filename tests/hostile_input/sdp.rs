//! SDP offers, answers and candidates into the media core, mutated from real
//! ones (str0m's own offers and a Chrome-shaped simulcast offer): each is
//! answered or refused with a typed error, a refused one leaves no trace, and
//! the core keeps taking valid joins. Mutated WHIP/WHEP bodies against a real
//! server get a 201 or a 4xx.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cascade::media::{
    server_rtc, CoreConfig, CoreEvent, DisplayName, JoinError, JoinRequest, LeaveReason, MediaCore,
    MediaGrants, OfferError, ParticipantEvent, ParticipantId, ParticipantMode, PeerRole, RoomName,
};
use cascade_test_support::http::request;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, MediaKind, Simulcast, SimulcastLayer};
use str0m::{Candidate, Rtc};

use crate::mutate::{apply, edit, mutated, Edit, Text};
use crate::run;

/// An offer shaped like Chrome's for a camera and microphone with three
/// simulcast layers (rids, RTX, many header extensions), as WHIP clients
/// built on libwebrtc send; kept with LF line ends, sent with CRLF.
fn chrome_simulcast_offer() -> String {
    include_str!("chrome-simulcast-offer.sdp").replace('\n', "\r\n")
}

/// A trickled candidate as a browser sends it.
const CANDIDATE: &str =
    "candidate:1467250027 1 udp 2122260223 192.0.2.10 54321 typ host generation 0 network-id 1";

/// A str0m client's offer of audio and video in `direction`, the video as
/// three simulcast layers if `simulcast`.
fn str0m_offer(direction: Direction, simulcast: bool) -> String {
    let mut rtc = Rtc::builder().set_rtp_mode(true).build(Instant::now());
    let addr: SocketAddr = "192.0.2.20:40000".parse().expect("valid address");
    rtc.add_local_candidate(Candidate::host(addr, "udp").expect("host candidate"));
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Audio, direction, None, None, None);
    let layers = simulcast.then(|| {
        let mut layers = Simulcast::new();
        for rid in ["q", "h", "f"] {
            layers.add_send_layer(SimulcastLayer::new(rid));
        }
        layers
    });
    api.add_media(MediaKind::Video, direction, None, None, layers);
    let (offer, _pending) = api.apply().expect("an offer");
    offer.to_sdp_string()
}

/// Publishing offers (WHIP, a bundled client's publish connection), valid.
fn publish_offers() -> Vec<String> {
    vec![
        str0m_offer(Direction::SendOnly, false),
        str0m_offer(Direction::SendOnly, true),
        chrome_simulcast_offer(),
    ]
}

/// What the participant counts of a core are; they must come back after
/// every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    participants: usize,
    peers: usize,
    rooms: usize,
    routes: usize,
}

/// A media core driven by hand with fake time, and one bystander in its own
/// room who must stay through everything.
struct Harness {
    core: MediaCore,
    now: Instant,
    valid: String,
    case: u64,
}

impl Harness {
    fn new() -> Self {
        let now = Instant::now();
        let addr = "127.0.0.1:3478".parse().expect("valid address");
        let mut config = CoreConfig::new(addr);
        // Fuzz runs take long in fake time; nobody must time out meanwhile.
        config.connect_timeout = Duration::from_secs(365 * 86_400);
        let mut harness = Harness {
            core: MediaCore::new(config, now),
            now,
            valid: str0m_offer(Direction::SendOnly, false),
            case: 0,
        };
        let bystander = harness.request("bystander", ParticipantMode::Full);
        let rtc = server_rtc(now, PeerRole::Subscribe);
        harness
            .core
            .join(now, bystander, rtc)
            .expect("bystander joins");
        harness.drain();
        harness
    }

    fn counts(&self) -> Counts {
        Counts {
            participants: self.core.participant_count(),
            peers: self.core.peer_count(),
            rooms: self.core.room_count(),
            routes: self.core.routed_address_count(),
        }
    }

    /// A fresh room name, so cases do not meet.
    fn room(&mut self, prefix: &str) -> String {
        self.case += 1;
        format!("{prefix}-{}", self.case)
    }

    fn request(&self, room: &str, mode: ParticipantMode) -> JoinRequest {
        JoinRequest {
            id: ParticipantId::random(),
            room: RoomName::parse(room).expect("valid room name"),
            name: DisplayName::parse("hostile").expect("valid name"),
            mode,
            identity: None,
            grants: MediaGrants::ALL,
        }
    }

    /// A participant in both directions joins a fresh room; its subscribe
    /// offer waits in the events.
    fn join_full(&mut self, prefix: &str) -> ParticipantId {
        let room = self.room(prefix);
        let request = self.request(&room, ParticipantMode::Full);
        let id = request.id;
        let rtc = server_rtc(self.now, PeerRole::Subscribe);
        self.core.join(self.now, request, rtc).expect("join");
        id
    }

    /// Drains transmits; returns the events.
    fn drain(&mut self) -> Vec<CoreEvent> {
        while self.core.poll_transmit().is_some() {}
        std::iter::from_fn(|| self.core.poll_event()).collect()
    }

    /// Lets a millisecond of fake time pass.
    fn tick(&mut self) {
        self.now += Duration::from_millis(1);
        self.core.handle_timeout(self.now);
        self.drain();
    }

    /// A WHIP publisher with a valid offer joins a room of its own and
    /// leaves again, and the counts are as before.
    fn check_valid_whip_join(&mut self) -> TestCaseResult {
        let before = self.counts();
        let room = self.room("healthy");
        let request = self.request(&room, ParticipantMode::PublishOnly);
        let id = request.id;
        let offer = SdpOffer::from_sdp_string(&self.valid).expect("the valid offer parses");
        let rtc = server_rtc(self.now, PeerRole::Publish);
        let joined = self.core.join_with_offer(self.now, request, rtc, offer);
        prop_assert!(
            joined.is_ok(),
            "a valid join is refused: {:?}",
            joined.err()
        );
        prop_assert_eq!(self.core.participant_count(), before.participants + 1);
        self.core.leave(self.now, id, LeaveReason::Left);
        self.drain();
        prop_assert_eq!(self.counts(), before);
        Ok(())
    }

    /// The subscribe offer the core sent `id`, from `events`.
    fn subscribe_offer(events: Vec<CoreEvent>, id: ParticipantId) -> Option<SdpOffer> {
        events.into_iter().find_map(|e| match e {
            CoreEvent::Participant(to, ParticipantEvent::SubscribeOffer { offer, .. })
                if to == id =>
            {
                Some(offer)
            }
            _ => None,
        })
    }
}

/// A str0m client's subscribe connection, which answers the server.
fn subscriber() -> Rtc {
    let mut rtc = Rtc::builder().set_rtp_mode(true).build(Instant::now());
    let addr: SocketAddr = "192.0.2.30:40000".parse().expect("valid address");
    rtc.add_local_candidate(Candidate::host(addr, "udp").expect("host candidate"));
    rtc
}

/// The answer `rtc` gives to `offer`.
fn answer(rtc: &mut Rtc, offer: SdpOffer) -> String {
    let answer = rtc
        .sdp_api()
        .accept_offer(offer)
        .expect("a client accepts the server's offer");
    answer.to_sdp_string()
}

fn edits(text: Text) -> impl Strategy<Value = Vec<Edit>> {
    vec(edit(text), 1..5)
}

/// The offers the properties mutate are valid as they are: each joins as a
/// WHIP publisher, and the WHEP offer as a viewer.
#[test]
fn the_offers_before_mutation_are_accepted() {
    let mut h = Harness::new();
    let viewer = (
        str0m_offer(Direction::RecvOnly, false),
        ParticipantMode::Viewer { follow: None },
    );
    let publishers = publish_offers()
        .into_iter()
        .map(|o| (o, ParticipantMode::PublishOnly));
    for (offer, mode) in publishers.chain([viewer]) {
        let role = match mode {
            ParticipantMode::PublishOnly => PeerRole::Publish,
            _ => PeerRole::Subscribe,
        };
        let room = h.room("pristine");
        let request = h.request(&room, mode);
        let offer = SdpOffer::from_sdp_string(&offer).expect("the offer parses");
        let rtc = server_rtc(h.now, role);
        let joined = h.core.join_with_offer(h.now, request, rtc, offer);
        assert!(joined.is_ok(), "{mode:?}: {:?}", joined.err());
    }
}

/// WHIP publishers and WHEP viewers join with a mutated offer: answered (and
/// the answer is valid SDP) or refused as invalid SDP without a trace; the
/// bystander stays and a valid join still works.
#[test]
fn mutated_offers_join_as_whip_or_whep_or_leave_no_trace() {
    let bases = publish_offers();
    let viewer_base = str0m_offer(Direction::RecvOnly, false);
    let harness = RefCell::new(Harness::new());
    run((0..=bases.len(), edits(Text::Unicode)), |(base, edits)| {
        let h = &mut *harness.borrow_mut();
        let before = h.counts();
        let (text, mode, role) = match bases.get(base) {
            Some(b) => (
                apply(b, &edits),
                ParticipantMode::PublishOnly,
                PeerRole::Publish,
            ),
            None => {
                let mode = ParticipantMode::Viewer { follow: None };
                (apply(&viewer_base, &edits), mode, PeerRole::Subscribe)
            }
        };
        if let Ok(offer) = SdpOffer::from_sdp_string(&text) {
            let room = h.room("hostile");
            let request = h.request(&room, mode);
            let id = request.id;
            let rtc = server_rtc(h.now, role);
            match h.core.join_with_offer(h.now, request, rtc, offer) {
                Ok(answer) => {
                    let answer = answer.to_sdp_string();
                    prop_assert!(SdpAnswer::from_sdp_string(&answer).is_ok(), "{answer}");
                    prop_assert_eq!(h.core.participant_count(), before.participants + 1);
                    h.core.leave(h.now, id, LeaveReason::Left);
                }
                Err(JoinError::InvalidSdp(_)) => {}
                Err(other) => prop_assert!(false, "unexpected refusal {other}"),
            }
        }
        h.tick();
        prop_assert_eq!(h.counts(), before, "after {:?}", text);
        h.check_valid_whip_join()
    });
}

/// A bundled client's first publish offer, mutated: answered or refused as
/// invalid SDP; after a refusal the same participant can still publish a
/// valid offer (the server reuses the connection); leaving cleans up.
#[test]
fn mutated_publish_offers_are_answered_or_refused_and_publishing_still_works() {
    let bases = publish_offers();
    let harness = RefCell::new(Harness::new());
    run((0..bases.len(), edits(Text::Unicode)), |(base, edits)| {
        let h = &mut *harness.borrow_mut();
        let before = h.counts();
        let text = apply(&bases[base], &edits);
        let id = h.join_full("publisher");
        if let Ok(offer) = SdpOffer::from_sdp_string(&text) {
            let rtc = Some(server_rtc(h.now, PeerRole::Publish));
            match h.core.publish_offer(h.now, id, rtc, offer) {
                Ok(answer) => {
                    let answer = answer.to_sdp_string();
                    prop_assert!(SdpAnswer::from_sdp_string(&answer).is_ok(), "{answer}");
                }
                Err(OfferError::InvalidSdp(_)) => {
                    let valid = SdpOffer::from_sdp_string(&h.valid).expect("valid offer parses");
                    let rtc = Some(server_rtc(h.now, PeerRole::Publish));
                    let again = h.core.publish_offer(h.now, id, rtc, valid);
                    prop_assert!(again.is_ok(), "refused after {text:?}: {:?}", again.err());
                }
                Err(other) => prop_assert!(false, "unexpected refusal {other}"),
            }
        }
        h.tick();
        h.core.leave(h.now, id, LeaveReason::Left);
        h.drain();
        prop_assert_eq!(h.counts(), before, "after {:?}", text);
        h.check_valid_whip_join()
    });
}

/// A mutated answer to the server's first subscribe offer: accepted or
/// refused as invalid SDP; after a refusal the participant stays, the
/// server offers again, and other rooms are unharmed.
///
/// Not checked: that the client can answer the new offer. It cannot: str0m
/// keeps the refused answer's ICE credentials, and the new offer lacks the
/// m-line the client already applied ("Mid in answer is not in offer"), so
/// such a participant waits for its connect timeout.
#[test]
fn mutated_subscribe_answers_are_accepted_or_refused_and_offered_again() {
    let harness = RefCell::new(Harness::new());
    run(edits(Text::Unicode), |edits| {
        let h = &mut *harness.borrow_mut();
        let before = h.counts();
        let id = h.join_full("subscriber");
        let offer = Harness::subscribe_offer(h.drain(), id).expect("a first subscribe offer");
        let text = apply(&answer(&mut subscriber(), offer), &edits);
        if let Ok(mutated) = SdpAnswer::from_sdp_string(&text) {
            if let Err(refused) = h.core.subscribe_answer(h.now, id, mutated) {
                prop_assert!(
                    matches!(refused, cascade::media::AnswerError::InvalidSdp(_)),
                    "unexpected refusal {refused}"
                );
                let offer = Harness::subscribe_offer(h.drain(), id);
                prop_assert!(offer.is_some(), "no new offer after refusing {text:?}");
                prop_assert_eq!(h.core.participant_count(), before.participants + 1);
            }
        }
        h.tick();
        h.check_valid_whip_join()?;
        h.core.leave(h.now, id, LeaveReason::Left);
        h.drain();
        prop_assert_eq!(h.counts(), before, "after {:?}", text);
        Ok(())
    });
}

/// Trickled candidates, mutated, read the way the server reads them: what
/// parses is added to a negotiated connection and refused for one that
/// does not exist.
#[test]
fn mutated_candidates_are_added_or_refused() {
    let harness = RefCell::new(Harness::new());
    run(mutated(CANDIDATE.to_string(), 4, Text::Unicode), |text| {
        let h = &mut *harness.borrow_mut();
        let before = h.counts();
        let id = h.join_full("trickle");
        let line = text.trim();
        let line = line.strip_prefix("a=").unwrap_or(line);
        if let Ok(candidate) = Candidate::from_sdp_string(line) {
            let added =
                h.core
                    .add_remote_candidate(h.now, id, PeerRole::Subscribe, candidate.clone());
            prop_assert!(added.is_ok(), "{:?}", added.err());
            let unpublished = h
                .core
                .add_remote_candidate(h.now, id, PeerRole::Publish, candidate);
            prop_assert!(matches!(
                unpublished,
                Err(cascade::media::CandidateError::NoSuchConnection)
            ));
        }
        h.tick();
        h.core.leave(h.now, id, LeaveReason::Left);
        h.drain();
        prop_assert_eq!(h.counts(), before, "after {:?}", text);
        Ok(())
    });
}

/// A client that trickles candidate after candidate is refused once the
/// connection holds the most Cascade keeps: str0m never forgets a remote
/// candidate, so without the cap its list would grow with every message.
#[test]
fn trickled_candidates_are_bounded_per_connection() {
    let mut h = Harness::new();
    let before = h.counts();
    let id = h.join_full("trickle-flood");
    let candidate = |port: u16| {
        Candidate::host(SocketAddr::from(([192, 0, 2, 10], port)), "udp").expect("host candidate")
    };
    let limit = cascade::media::MAX_REMOTE_CANDIDATES;
    for port in 0..limit {
        let added = h.core.add_remote_candidate(
            h.now,
            id,
            PeerRole::Subscribe,
            candidate(1000 + port as u16),
        );
        assert!(added.is_ok(), "candidate {port} refused: {:?}", added.err());
    }
    for port in limit..limit + 3 {
        let refused = h.core.add_remote_candidate(
            h.now,
            id,
            PeerRole::Subscribe,
            candidate(1000 + port as u16),
        );
        assert!(
            matches!(refused, Err(cascade::media::CandidateError::TooMany(n)) if n == limit),
            "candidate {port} past the cap: {refused:?}"
        );
    }
    h.tick();
    h.core.leave(h.now, id, LeaveReason::Left);
    h.drain();
    assert_eq!(h.counts(), before);
}

/// WHIP and WHEP bodies, mutated or arbitrary bytes, against a real server:
/// 201 (then the session is deleted) or a 4xx, never a 5xx; PATCH bodies
/// on a live session likewise.
#[test]
fn mutated_whip_and_whep_bodies_get_a_201_or_a_4xx() {
    let (runtime, server) = crate::served();
    let addr = server.http_addr();
    let bases = publish_offers();
    let body = prop_oneof![
        3 => (0..bases.len(), edits(Text::Unicode)).prop_map(|(b, e)| apply(&bases[b], &e).into_bytes()),
        1 => vec(any::<u8>(), 0..2048),
    ];
    let sdp = ("Content-Type", "application/sdp");
    let frag = ("Content-Type", "application/trickle-ice-sdpfrag");
    let fragment =
        format!("a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdefghijkl\r\na={CANDIDATE}\r\n");
    let fragment = mutated(fragment, 4, Text::Unicode);
    run((any::<bool>(), body, fragment), |(whep, body, fragment)| {
        runtime.block_on(async {
            let path = if whep {
                "/whep/hostile"
            } else {
                "/whip/hostile"
            };
            let created = request(addr, "POST", path, &[sdp], &body).await;
            prop_assert!(
                created.status == 201 || (400..500).contains(&created.status),
                "{} {}: {}",
                created.status,
                path,
                created.body
            );
            if created.status != 201 {
                return Ok(());
            }
            let location = created
                .header("location")
                .expect("a 201 has a Location")
                .to_string();
            let patched = request(addr, "PATCH", &location, &[frag], fragment.as_bytes()).await;
            prop_assert!(
                [200, 204].contains(&patched.status) || (400..500).contains(&patched.status),
                "PATCH {}: {}",
                patched.status,
                patched.body
            );
            let deleted = request(addr, "DELETE", &location, &[], b"").await;
            prop_assert_eq!(deleted.status, 200, "{}", deleted.body);
            Ok(())
        })
    });
    let valid = runtime.block_on(request(
        addr,
        "POST",
        "/whip/healthy",
        &[sdp],
        bases[0].as_bytes(),
    ));
    assert_eq!(
        valid.status, 201,
        "a valid WHIP offer still works: {}",
        valid.body
    );
    runtime.block_on(server.shutdown());
}
