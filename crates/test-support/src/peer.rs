//! An independent str0m endpoint over real UDP, for WHIP/WHEP tests: it
//! offers, gets its answer over HTTP, publishes stamped media and records
//! the stamps of what it receives.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cascade_load::payload::{self, Stamp};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::watch;

/// Stamps of received media, shared with the test.
pub type Received = Arc<Mutex<Vec<(MediaKind, Stamp)>>>;

/// A peer running in a background task.
pub struct Peer {
    pub received: Received,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Peer {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    pub fn senders(&self, kind: MediaKind) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .received
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, s)| s.sender)
            .collect();
        v.dedup();
        v
    }

    pub fn count_from(&self, sender: u32, kind: MediaKind) -> usize {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, s)| *k == kind && s.sender == sender)
            .count()
    }
}

/// An offer not yet answered.
pub struct Offering {
    rtc: Rtc,
    socket: UdpSocket,
    pending: SdpPendingOffer,
    mids: Vec<(MediaKind, Mid)>,
    pub sdp: String,
}

/// Creates a peer offering audio+video in `direction` (SendOnly for WHIP,
/// RecvOnly for WHEP).
pub async fn offer(direction: Direction) -> Offering {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = socket.local_addr().unwrap();
    let mut rtc = Rtc::builder().set_rtp_mode(true).build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
    let mut api = rtc.sdp_api();
    let audio = api.add_media(MediaKind::Audio, direction, None, None, None);
    let video = api.add_media(MediaKind::Video, direction, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    Offering {
        rtc,
        socket,
        pending,
        mids: vec![(MediaKind::Audio, audio), (MediaKind::Video, video)],
        sdp: offer.to_sdp_string(),
    }
}

impl Offering {
    /// Applies the server's answer and runs the peer; when `sender` is set
    /// it publishes stamped audio and video as that sender index.
    pub fn start(mut self, answer: &str, sender: Option<u32>) -> Peer {
        let answer = SdpAnswer::from_sdp_string(answer).expect("answer parses");
        self.rtc
            .sdp_api()
            .accept_answer(self.pending, answer)
            .expect("answer accepted");
        let received: Received = Arc::default();
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(
            self.rtc,
            self.socket,
            self.mids,
            sender,
            received.clone(),
            stopped,
        ));
        Peer {
            received,
            stop,
            task,
        }
    }
}

async fn run(
    mut rtc: Rtc,
    socket: UdpSocket,
    mids: Vec<(MediaKind, Mid)>,
    sender: Option<u32>,
    received: Received,
    mut stopped: watch::Receiver<bool>,
) {
    let local = socket.local_addr().unwrap();
    let mut buf = vec![0u8; 2048];
    let mut deadline = Instant::now();
    let mut connected = false;
    let mut next_media = Instant::now();
    let mut counter = 0u64;
    loop {
        let wake = if connected && sender.is_some() {
            deadline.min(next_media)
        } else {
            deadline
        };
        tokio::select! {
            _ = stopped.changed() => return,
            r = socket.recv_from(&mut buf) => {
                let Ok((n, source)) = r else { return };
                if let Ok(contents) = buf[..n].try_into() {
                    let input = Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source, destination: local, contents });
                    if rtc.handle_input(input).is_err() { return; }
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                if rtc.handle_input(Input::Timeout(now)).is_err() { return; }
                if let (true, Some(index)) = (connected && now >= next_media, sender) {
                    counter += 1;
                    write_media(&mut rtc, &mids, index, counter, now);
                    next_media = now + Duration::from_millis(20);
                    if rtc.handle_input(Input::Timeout(now)).is_err() { return; }
                }
            }
        }
        loop {
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    deadline = t;
                    break;
                }
                Ok(Output::Transmit(t)) => {
                    let _ = socket.try_send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(Event::Connected)) => connected = true,
                Ok(Output::Event(Event::RtpPacket(p))) => {
                    if let Some(stamp) = payload::parse(&p.payload) {
                        let kind = if p.payload.starts_with(b"CSCD") {
                            MediaKind::Audio
                        } else {
                            MediaKind::Video
                        };
                        received.lock().unwrap().push((kind, stamp));
                    }
                }
                Ok(Output::Event(_)) => {}
                Err(_) => return,
            }
        }
    }
}

fn write_media(rtc: &mut Rtc, mids: &[(MediaKind, Mid)], sender: u32, counter: u64, now: Instant) {
    for (kind, mid) in mids {
        let codec = if *kind == MediaKind::Audio {
            Codec::Opus
        } else {
            Codec::Vp8
        };
        let Some(pt) = payload_type(rtc, codec) else {
            continue;
        };
        let stamp = Stamp {
            sender,
            counter,
            sent_micros: payload::now_micros(),
        };
        let data = match kind {
            MediaKind::Audio => payload::audio(stamp, 80),
            MediaKind::Video => payload::video(stamp, true, counter % 50 == 1, 900),
        };
        let mut api = rtc.direct_api();
        if let Some(stream) = api.stream_tx_by_mid(*mid, None) {
            let time = (counter * 960) as u32;
            stream.write_rtp(
                RtpWrite::new(pt, counter.into(), time, now, data)
                    .marker(true)
                    .nackable(true),
            );
        }
    }
}

fn payload_type(rtc: &Rtc, codec: Codec) -> Option<Pt> {
    rtc.codec_config()
        .params()
        .iter()
        .find(|p| p.spec().codec == codec)
        .map(|p| p.pt())
}

/// The `Content-Type` of an SDP body.
pub const SDP: (&str, &str) = ("Content-Type", "application/sdp");

/// POSTs a fresh offer in `direction` to a WHIP/WHEP `path`, expects `201`,
/// and starts the peer (publishing as `sender`, if set).
pub async fn post_offer(
    server: &cascade::server::Server,
    path: &str,
    direction: Direction,
    sender: Option<u32>,
) -> (crate::http::Response, Peer) {
    let offering = offer(direction).await;
    let response = crate::http::request(
        server.http_addr(),
        "POST",
        path,
        &[SDP],
        offering.sdp.as_bytes(),
    )
    .await;
    assert_eq!(response.status, 201, "POST {path}: {}", response.body);
    let peer = offering.start(&response.body, sender);
    (response, peer)
}
