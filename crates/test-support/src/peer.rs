//! An independent str0m endpoint over real UDP, or over ICE-TCP (an active
//! TCP candidate, RFC 4571 framing), for WHIP/WHEP tests: it offers, gets its
//! answer over HTTP, publishes stamped media and records the stamps of what
//! it receives.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cascade_load::payload::{self, Stamp};
use std::net::SocketAddr;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt};

use cascade::worker::framing::{self, Decoded, FrameDecoder};
use str0m::net::{Protocol, Receive, TcpType, Transmit};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};

/// Stamps of received media, shared with the test.
pub type Received = Arc<Mutex<Vec<(MediaKind, Stamp)>>>;

/// A peer running in a background task.
pub struct Peer {
    pub received: Received,
    stop: watch::Sender<bool>,
    stall: watch::Sender<bool>,
    /// Set by the task once it stopped reading.
    stalled: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Peer {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Stops reading from the network (and sending), keeping the socket
    /// open: a peer that hangs. Returns once the peer has stopped (what it
    /// received is final from then on).
    pub async fn stall(&self) {
        let _ = self.stall.send(true);
        for _ in 0..500 {
            if self.stalled.load(std::sync::atomic::Ordering::SeqCst) || self.task.is_finished() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the peer did not stall within 5 s");
    }

    /// Whether the peer's task ended (its ICE-TCP connection was closed, or
    /// its `Rtc` failed).
    pub fn has_ended(&self) -> bool {
        self.task.is_finished()
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

/// How a peer reaches the server.
pub enum Transport {
    Udp(UdpSocket),
    /// ICE-TCP: connects to the answer's passive TCP candidate.
    Tcp,
}

/// An offer not yet answered.
pub struct Offering {
    rtc: Rtc,
    transport: Transport,
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
    offer_media(rtc, Transport::Udp(socket), direction)
}

/// Like [`offer`], with no UDP candidate at all: the peer can only connect
/// over ICE-TCP, as a client whose network drops UDP.
pub async fn offer_over_tcp(direction: Direction) -> Offering {
    let rtc = Rtc::builder().set_rtp_mode(true).build(Instant::now());
    offer_media(rtc, Transport::Tcp, direction)
}

fn offer_media(mut rtc: Rtc, transport: Transport, direction: Direction) -> Offering {
    let mut api = rtc.sdp_api();
    let audio = api.add_media(MediaKind::Audio, direction, None, None, None);
    let video = api.add_media(MediaKind::Video, direction, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    Offering {
        rtc,
        transport,
        pending,
        mids: vec![(MediaKind::Audio, audio), (MediaKind::Video, video)],
        sdp: offer.to_sdp_string(),
    }
}

impl Offering {
    /// Applies the server's answer and runs the peer; when `sender` is set
    /// it publishes stamped audio and video as that sender index.
    pub fn start(mut self, answer: &str, sender: Option<u32>) -> Peer {
        let tcp_candidate = passive_tcp_candidate(answer);
        let answer = SdpAnswer::from_sdp_string(answer).expect("answer parses");
        self.rtc
            .sdp_api()
            .accept_answer(self.pending, answer)
            .expect("answer accepted");
        let received: Received = Arc::default();
        let (stop, stopped) = watch::channel(false);
        let (stall, stall_rx) = watch::channel(false);
        let stalled: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let stalled_ack = stalled.clone();
        let (rtc, mids, got) = (self.rtc, self.mids, received.clone());
        let task = match self.transport {
            Transport::Udp(socket) => {
                let local = socket.local_addr().unwrap();
                tokio::spawn(run(
                    rtc,
                    Link::Udp { socket, local },
                    mids,
                    sender,
                    got,
                    stopped,
                    (stall_rx, stalled_ack),
                ))
            }
            Transport::Tcp => {
                let server = tcp_candidate.expect("the answer has a passive TCP candidate");
                tokio::spawn(async move {
                    let Some(link) = Link::connect(server).await else {
                        return;
                    };
                    let mut rtc = rtc;
                    let Link::Tcp { local, .. } = &link else {
                        unreachable!()
                    };
                    let candidate = Candidate::builder()
                        .tcp()
                        .host(*local)
                        .tcptype(TcpType::Active)
                        .build()
                        .unwrap();
                    rtc.add_local_candidate(candidate);
                    run(
                        rtc,
                        link,
                        mids,
                        sender,
                        got,
                        stopped,
                        (stall_rx, stalled_ack),
                    )
                    .await;
                })
            }
        };
        Peer {
            received,
            stop,
            stall,
            stalled,
            task,
        }
    }
}

/// The address of an SDP's `tcptype passive` candidate, if it has one.
pub fn passive_tcp_candidate(sdp: &str) -> Option<SocketAddr> {
    sdp.lines().find_map(|line| {
        let c = line.trim().strip_prefix("a=candidate:")?;
        let f: Vec<&str> = c.split_whitespace().collect();
        let passive = f.windows(2).any(|w| w == ["tcptype", "passive"]);
        if f.get(2)?.eq_ignore_ascii_case("tcp") && passive {
            format!("{}:{}", f.get(4)?, f.get(5)?).parse().ok()
        } else {
            None
        }
    })
}

/// A peer's network side.
enum Link {
    Udp {
        socket: UdpSocket,
        local: SocketAddr,
    },
    Tcp {
        reader: tokio::net::tcp::OwnedReadHalf,
        decoder: FrameDecoder,
        frames: std::collections::VecDeque<Vec<u8>>,
        /// Framed packets for the writer task.
        writer: mpsc::UnboundedSender<Vec<u8>>,
        local: SocketAddr,
        server: SocketAddr,
    },
}

impl Link {
    /// Connects to the server's passive candidate. The receive buffer is
    /// small, so a stalled peer's unread data backs up to the server soon.
    async fn connect(server: SocketAddr) -> Option<Link> {
        let socket = tokio::net::TcpSocket::new_v4().ok()?;
        socket.set_recv_buffer_size(16 * 1024).ok()?;
        let stream: TcpStream = socket.connect(server).await.ok()?;
        stream.set_nodelay(true).ok()?;
        let local = stream.local_addr().ok()?;
        let (reader, mut write_half) = stream.into_split();
        let (writer, mut queue) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            while let Some(frame) = queue.recv().await {
                if write_half.write_all(&frame).await.is_err() {
                    return;
                }
            }
        });
        Some(Link::Tcp {
            reader,
            decoder: FrameDecoder::new(4096),
            frames: Default::default(),
            writer,
            local,
            server,
        })
    }

    /// The next packet in: (protocol, source, destination, bytes). `None`
    /// when the connection is gone.
    async fn recv(
        &mut self,
        buf: &mut [u8],
    ) -> Option<(Protocol, SocketAddr, SocketAddr, Vec<u8>)> {
        match self {
            Link::Udp { socket, local } => {
                let (n, source) = socket.recv_from(buf).await.ok()?;
                Some((Protocol::Udp, source, *local, buf[..n].to_vec()))
            }
            Link::Tcp {
                reader,
                decoder,
                frames,
                local,
                server,
                ..
            } => loop {
                if let Some(frame) = frames.pop_front() {
                    return Some((Protocol::Tcp, *server, *local, frame));
                }
                let n = reader.read(buf).await.ok().filter(|n| *n > 0)?;
                let mut rest = &buf[..n];
                while !rest.is_empty() {
                    let taken = decoder.push(rest);
                    rest = &rest[taken..];
                    while let Some(d) = decoder.next_frame() {
                        if let Decoded::Frame(f) = d {
                            frames.push_back(f.to_vec());
                        }
                    }
                }
            },
        }
    }

    fn send(&self, t: &Transmit) {
        match self {
            Link::Udp { socket, .. } => {
                let _ = socket.try_send_to(&t.contents, t.destination);
            }
            Link::Tcp { writer, .. } => {
                let mut frame = Vec::new();
                if framing::encode_into(&t.contents, &mut frame).is_some() {
                    let _ = writer.send(frame);
                }
            }
        }
    }
}

async fn run(
    mut rtc: Rtc,
    mut link: Link,
    mids: Vec<(MediaKind, Mid)>,
    sender: Option<u32>,
    received: Received,
    mut stopped: watch::Receiver<bool>,
    (stall, stalled): (watch::Receiver<bool>, Arc<std::sync::atomic::AtomicBool>),
) {
    let mut buf = vec![0u8; 2048];
    let mut deadline = Instant::now();
    let mut connected = false;
    let mut next_media = Instant::now();
    let mut counter = 0u64;
    loop {
        if *stall.borrow() {
            // Hang with the socket open until told to stop.
            stalled.store(true, std::sync::atomic::Ordering::SeqCst);
            let _ = stopped.changed().await;
            return;
        }
        let wake = if connected && sender.is_some() {
            deadline.min(next_media)
        } else {
            deadline
        };
        tokio::select! {
            _ = stopped.changed() => return,
            r = link.recv(&mut buf) => {
                let Some((proto, source, destination, bytes)) = r else { return };
                if let Ok(contents) = bytes.as_slice().try_into() {
                    let input = Input::Receive(Instant::now(), Receive { proto, source, destination, contents });
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
                Ok(Output::Transmit(t)) => link.send(&t),
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
    post_offering(server, path, offer(direction).await, sender).await
}

/// Like [`post_offer`], for an offer already made ([`offer_over_tcp`]).
pub async fn post_offering(
    server: &cascade::server::Server,
    path: &str,
    offering: Offering,
    sender: Option<u32>,
) -> (crate::http::Response, Peer) {
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
