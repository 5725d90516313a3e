//! Headless participants ("bots") for tests and the load generator.
//!
//! A bot is what a browser tab is to Cascade: it joins through the real
//! WebSocket API, publishes synthetic audio/video on a publish connection and
//! receives everyone else on a subscribe connection, each a str0m `Rtc` on
//! its own UDP socket. It records what arrived (per sender, with loss and
//! end-to-end latency from the send time carried in each payload).

pub mod payload;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;

use crate::protocol::{ClientMessage, ServerMessage, PROTOCOL_VERSION};
use payload::Stamp;

/// What a bot does.
#[derive(Debug, Clone)]
pub struct BotOptions {
    pub http_addr: SocketAddr,
    pub room: String,
    pub name: String,
    /// Written into every payload so receivers know who sent it.
    pub index: u32,
    pub publish_audio: bool,
    pub publish_video: bool,
    pub video_bitrate_bps: u64,
    pub video_packet_bytes: usize,
    pub video_fps: u32,
    pub keyframe_interval: Duration,
    pub audio_packet_bytes: usize,
    /// How long to stay after joining.
    pub duration: Duration,
    /// Stop sending this long before leaving, so in-flight media can land.
    pub drain: Duration,
}

impl BotOptions {
    /// A publishing bot with realistic defaults (~1.7 Mbit/s VP8-shaped video
    /// in ~1150-byte packets, keyframes every 3 s, Opus-shaped audio at 50
    /// packets/s).
    pub fn new(http_addr: SocketAddr, room: &str, index: u32) -> Self {
        BotOptions {
            http_addr,
            room: room.to_string(),
            name: format!("bot-{index}"),
            index,
            publish_audio: true,
            publish_video: true,
            video_bitrate_bps: 1_700_000,
            video_packet_bytes: 1150,
            video_fps: 30,
            keyframe_interval: Duration::from_secs(3),
            audio_packet_bytes: 100,
            duration: Duration::from_secs(5),
            drain: Duration::from_millis(500),
        }
    }
}

/// Media received from one sender on one kind.
#[derive(Debug, Default, Clone)]
pub struct StreamReport {
    pub packets: u64,
    pub bytes: u64,
    counters: HashSet<u64>,
    lowest: Option<u64>,
    highest: Option<u64>,
}

impl StreamReport {
    fn record(&mut self, counter: u64, bytes: usize) {
        if self.counters.insert(counter) {
            self.packets += 1;
            self.bytes += bytes as u64;
            self.lowest = Some(self.lowest.map_or(counter, |l| l.min(counter)));
            self.highest = Some(self.highest.map_or(counter, |h| h.max(counter)));
        }
    }

    /// Packets missing between the first and the last one received.
    pub fn lost(&self) -> u64 {
        match (self.lowest, self.highest) {
            (Some(l), Some(h)) => (h - l + 1).saturating_sub(self.counters.len() as u64),
            _ => 0,
        }
    }
}

/// What a bot saw.
#[derive(Debug, Default, Clone)]
pub struct BotReport {
    pub participant_id: Option<String>,
    /// From opening the WebSocket to the first media packet received.
    pub join_to_first_media: Option<Duration>,
    pub sent_packets: u64,
    /// Per (sender index, kind).
    pub received: HashMap<(u32, MediaKind), StreamReport>,
    /// One-way latency of each received packet, in microseconds.
    pub latencies_micros: Vec<u64>,
    /// `error` messages from the server.
    pub errors: Vec<String>,
    pub participants_left: Vec<String>,
}

impl BotReport {
    pub fn from_sender(&self, sender: u32, kind: MediaKind) -> Option<&StreamReport> {
        self.received.get(&(sender, kind))
    }
}

/// Why a bot stopped early.
#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error("websocket: {0}")]
    WebSocket(#[from] Box<tokio_tungstenite::tungstenite::Error>),
    #[error("udp: {0}")]
    Io(#[from] std::io::Error),
    #[error("webrtc: {0}")]
    Rtc(#[from] str0m::RtcError),
    #[error("protocol: {0}")]
    Protocol(String),
}

/// One client peer connection on its own socket.
struct Pc {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    deadline: Instant,
    pending: Option<SdpPendingOffer>,
}

impl From<tokio_tungstenite::tungstenite::Error> for BotError {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        BotError::WebSocket(Box::new(e))
    }
}

impl Pc {
    async fn new(now: Instant) -> Result<Self, BotError> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let local = socket.local_addr()?;
        let mut rtc = Rtc::builder().set_rtp_mode(true).build(now);
        let candidate =
            Candidate::host(local, "udp").map_err(|e| BotError::Protocol(e.to_string()))?;
        rtc.add_local_candidate(candidate);
        Ok(Pc {
            rtc,
            socket,
            local,
            deadline: now,
            pending: None,
        })
    }

    fn receive(&mut self, now: Instant, source: SocketAddr, data: &[u8]) -> Result<(), BotError> {
        let Ok(contents) = data.try_into() else {
            return Ok(());
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.local,
                contents,
            },
        );
        self.rtc.handle_input(input)?;
        Ok(())
    }

    /// Polls until str0m waits for time; returns the events.
    fn drain(&mut self, events: &mut Vec<Event>) -> Result<(), BotError> {
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(t) => {
                    self.deadline = t;
                    return Ok(());
                }
                Output::Transmit(t) => {
                    // Loopback rarely pushes back; a dropped datagram is
                    // what a real network would do too.
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Output::Event(e) => events.push(e),
            }
        }
    }
}

/// Sender state for one published track.
struct Outgoing {
    mid: Mid,
    kind: MediaKind,
    pt: Pt,
    seq: u64,
    counter: u64,
    next_at: Instant,
}

/// Runs a bot until its duration is over; returns what it saw.
pub async fn run(opts: BotOptions) -> Result<BotReport, BotError> {
    Bot::new(opts).run().await
}

struct Bot {
    opts: BotOptions,
    report: BotReport,
    publish: Option<Pc>,
    subscribe: Option<Pc>,
    outgoing: Vec<Outgoing>,
    opened_at: Instant,
    connected: bool,
    last_keyframe: Option<Instant>,
    events: Vec<Event>,
}

async fn recv_on(pc: &Option<Pc>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match pc {
        Some(pc) => pc.socket.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

impl Bot {
    fn new(opts: BotOptions) -> Self {
        Bot {
            opts,
            report: BotReport::default(),
            publish: None,
            subscribe: None,
            outgoing: Vec::new(),
            opened_at: Instant::now(),
            connected: false,
            last_keyframe: None,
            events: Vec::new(),
        }
    }

    async fn run(mut self) -> Result<BotReport, BotError> {
        self.opened_at = Instant::now();
        let url = format!("ws://{}/ws", self.opts.http_addr);
        let (ws, _) = tokio_tungstenite::connect_async(url).await?;
        let (mut ws_tx, mut ws_rx) = ws.split();
        send(
            &mut ws_tx,
            &ClientMessage::Join {
                version: PROTOCOL_VERSION,
                room: self.opts.room.clone(),
                name: self.opts.name.clone(),
            },
        )
        .await?;
        let end = self.opened_at + self.opts.duration;
        let stop_sending = end - self.opts.drain.min(self.opts.duration);
        let mut pub_buf = vec![0u8; 2048];
        let mut sub_buf = vec![0u8; 2048];
        loop {
            let now = Instant::now();
            if now >= end {
                break;
            }
            let mut wake = end;
            for pc in [&self.publish, &self.subscribe].into_iter().flatten() {
                wake = wake.min(pc.deadline);
            }
            if now < stop_sending {
                for o in &self.outgoing {
                    wake = wake.min(o.next_at);
                }
            }
            tokio::select! {
                message = ws_rx.next() => {
                    let Some(message) = message else { break };
                    if let Message::Text(text) = message? {
                        let parsed: ServerMessage = serde_json::from_str(text.as_str())
                            .map_err(|e| BotError::Protocol(e.to_string()))?;
                        if let Some(reply) = self.handle_server_message(parsed).await? {
                            send(&mut ws_tx, &reply).await?;
                        }
                    }
                }
                received = recv_on(&self.publish, &mut pub_buf) => {
                    let (n, source) = received?;
                    if let Some(pc) = self.publish.as_mut() {
                        pc.receive(Instant::now(), source, &pub_buf[..n])?;
                    }
                }
                received = recv_on(&self.subscribe, &mut sub_buf) => {
                    let (n, source) = received?;
                    if let Some(pc) = self.subscribe.as_mut() {
                        pc.receive(Instant::now(), source, &sub_buf[..n])?;
                    }
                }
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
            let now = Instant::now();
            if now < stop_sending {
                self.send_due_media(now);
            }
            self.poll_connections(now)?;
        }
        let _ = send(&mut ws_tx, &ClientMessage::Leave).await;
        let _ = ws_tx.close().await;
        Ok(self.report)
    }

    /// Feeds due timeouts and drains both connections, handling events.
    fn poll_connections(&mut self, now: Instant) -> Result<(), BotError> {
        for is_subscribe in [false, true] {
            let pc = if is_subscribe {
                self.subscribe.as_mut()
            } else {
                self.publish.as_mut()
            };
            let Some(pc) = pc else { continue };
            if pc.deadline <= now {
                pc.rtc.handle_input(Input::Timeout(now))?;
            }
            let mut events = std::mem::take(&mut self.events);
            pc.drain(&mut events)?;
            for event in events.drain(..) {
                match event {
                    Event::Connected if !is_subscribe => self.connected = true,
                    Event::RtpPacket(packet) if is_subscribe => self.record(now, &packet.payload),
                    _ => {}
                }
            }
            self.events = events;
        }
        Ok(())
    }

    fn record(&mut self, now: Instant, payload: &[u8]) {
        let Some(stamp) = payload::parse(payload) else {
            return;
        };
        // Audio payloads carry the marker at offset 0, video after the VP8 prefix.
        let kind = if payload.get(0..4) == Some(b"CSCD") {
            MediaKind::Audio
        } else {
            MediaKind::Video
        };
        self.report
            .received
            .entry((stamp.sender, kind))
            .or_default()
            .record(stamp.counter, payload.len());
        self.report
            .latencies_micros
            .push(payload::now_micros().saturating_sub(stamp.sent_micros));
        self.report
            .join_to_first_media
            .get_or_insert_with(|| now - self.opened_at);
    }

    async fn handle_server_message(
        &mut self,
        message: ServerMessage,
    ) -> Result<Option<ClientMessage>, BotError> {
        match message {
            ServerMessage::Joined { participant_id, .. } => {
                self.report.participant_id = Some(participant_id);
                if self.opts.publish_audio || self.opts.publish_video {
                    return self.offer_publish().await.map(Some);
                }
            }
            ServerMessage::PublishAnswer { sdp } => {
                let answer = SdpAnswer::from_sdp_string(&sdp)
                    .map_err(|e| BotError::Protocol(e.to_string()))?;
                if let Some(pc) = self.publish.as_mut() {
                    if let Some(pending) = pc.pending.take() {
                        pc.rtc.sdp_api().accept_answer(pending, answer)?;
                    }
                }
            }
            ServerMessage::SubscribeOffer { sdp, .. } => {
                if self.subscribe.is_none() {
                    self.subscribe = Some(Pc::new(Instant::now()).await?);
                }
                let offer = SdpOffer::from_sdp_string(&sdp)
                    .map_err(|e| BotError::Protocol(e.to_string()))?;
                let pc = self.subscribe.as_mut().expect("created above");
                let answer = pc.rtc.sdp_api().accept_offer(offer)?;
                return Ok(Some(ClientMessage::SubscribeAnswer {
                    sdp: answer.to_sdp_string(),
                }));
            }
            ServerMessage::ParticipantLeft { participant_id } => {
                self.report.participants_left.push(participant_id);
            }
            ServerMessage::Error { message, .. } => self.report.errors.push(message),
            _ => {}
        }
        Ok(None)
    }

    async fn offer_publish(&mut self) -> Result<ClientMessage, BotError> {
        let now = Instant::now();
        let mut pc = Pc::new(now).await?;
        let mut api = pc.rtc.sdp_api();
        let mut tracks = Vec::new();
        if self.opts.publish_audio {
            tracks.push((
                MediaKind::Audio,
                api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None),
            ));
        }
        if self.opts.publish_video {
            tracks.push((
                MediaKind::Video,
                api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None),
            ));
        }
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| BotError::Protocol("nothing to offer".into()))?;
        pc.pending = Some(pending);
        for (kind, mid) in tracks {
            let codec = if kind == MediaKind::Audio {
                Codec::Opus
            } else {
                Codec::Vp8
            };
            let pt = pc
                .rtc
                .codec_config()
                .params()
                .iter()
                .find(|p| p.spec().codec == codec)
                .map(|p| p.pt())
                .ok_or_else(|| BotError::Protocol(format!("{codec:?} not configured")))?;
            self.outgoing.push(Outgoing {
                mid,
                kind,
                pt,
                seq: rand::random::<u16>() as u64 / 2,
                counter: 0,
                next_at: now,
            });
        }
        self.publish = Some(pc);
        Ok(ClientMessage::PublishOffer {
            sdp: offer.to_sdp_string(),
        })
    }

    /// Writes every packet whose time has come (only once connected).
    fn send_due_media(&mut self, now: Instant) {
        if !self.connected {
            return;
        }
        let Some(pc) = self.publish.as_mut() else {
            return;
        };
        let keyframe_due = self
            .last_keyframe
            .is_none_or(|t| now >= t + self.opts.keyframe_interval);
        let mut sent_keyframe = false;
        for o in self.outgoing.iter_mut().filter(|o| o.next_at <= now) {
            let mut api = pc.rtc.direct_api();
            let Some(stream) = api.stream_tx_by_mid(o.mid, None) else {
                continue;
            };
            match o.kind {
                MediaKind::Audio => {
                    o.counter += 1;
                    let stamp = Stamp {
                        sender: self.opts.index,
                        counter: o.counter,
                        sent_micros: payload::now_micros(),
                    };
                    o.seq += 1;
                    let time = (o.counter * 960) as u32;
                    stream.write_rtp(
                        RtpWrite::new(
                            o.pt,
                            o.seq.into(),
                            time,
                            now,
                            payload::audio(stamp, self.opts.audio_packet_bytes),
                        )
                        .marker(true),
                    );
                    self.report.sent_packets += 1;
                    o.next_at += Duration::from_millis(20);
                }
                MediaKind::Video => {
                    let fps = self.opts.video_fps.max(1) as u64;
                    let mut frame_bytes = (self.opts.video_bitrate_bps / 8 / fps) as usize;
                    if keyframe_due {
                        frame_bytes *= 4;
                        sent_keyframe = true;
                    }
                    let size = self.opts.video_packet_bytes.max(64);
                    let packets = frame_bytes.div_ceil(size).max(1);
                    let frame_number =
                        o.next_at.duration_since(self.opened_at).as_millis() as u64 * 90;
                    for i in 0..packets {
                        o.counter += 1;
                        o.seq += 1;
                        let stamp = Stamp {
                            sender: self.opts.index,
                            counter: o.counter,
                            sent_micros: payload::now_micros(),
                        };
                        let data = payload::video(stamp, i == 0, keyframe_due, size);
                        stream.write_rtp(
                            RtpWrite::new(o.pt, o.seq.into(), frame_number as u32, now, data)
                                .marker(i + 1 == packets)
                                .nackable(true),
                        );
                        self.report.sent_packets += 1;
                    }
                    o.next_at += Duration::from_micros(1_000_000 / fps);
                }
            }
            // Don't try to catch up after a stall: skip missed slots.
            if o.next_at < now {
                o.next_at = now;
            }
        }
        if sent_keyframe {
            self.last_keyframe = Some(now);
        }
    }
}

async fn send<S>(sink: &mut S, message: &ClientMessage) -> Result<(), BotError>
where
    S: SinkExt<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    // Client messages are plain data and always serialize.
    let json = serde_json::to_string(message).expect("client messages serialize");
    sink.send(Message::Text(json.into())).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_report_counts_loss_between_first_and_last() {
        let mut r = StreamReport::default();
        for c in [5, 6, 8, 9, 9] {
            r.record(c, 100);
        }
        assert_eq!(r.packets, 4, "duplicate not counted twice");
        assert_eq!(r.lost(), 1);
    }
}
