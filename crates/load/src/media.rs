//! The media side of a bot, shared by every signaling flavour (Cascade's
//! WebSocket API, Janus' HTTP API): two client peer connections on their own
//! UDP sockets, the synthetic publisher (`publisher.rs`) and the receiving
//! recorder, and the event loop that drives them next to a [`Signaling`]
//! implementation.
//!
//! It knows nothing about how offers and answers travel: the signaling side
//! calls [`Media::create_publish_offer`], [`Media::accept_publish_answer`]
//! and [`Media::accept_subscribe_offer`] with SDP strings.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequest, MediaKind, Mid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpPacket;
use str0m::{Event, Input};

use super::payload;
use super::pc::ClientPc;
use super::publisher::Outgoing;
use super::record::PendingCounts;
use super::simulcast::Layer;
use super::{BotError, BotOptions, BotReport, Phase};

/// Datagrams read back to back from one socket before other work.
const RECV_BATCH: usize = 64;

/// How often a bot publishes its counters to the run's [`LiveCounters`].
///
/// [`LiveCounters`]: super::record::LiveCounters
const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// Which of the two connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Publish,
    Subscribe,
}

/// A bot's connections, what it sends and what it saw.
pub(crate) struct Media {
    pub opts: BotOptions,
    pub report: BotReport,
    publish: Option<ClientPc>,
    subscribe: Option<ClientPc>,
    /// One per audio track, video track or simulcast layer.
    outgoing: Vec<Outgoing>,
    publish_connected: bool,
    /// When the bot started signaling.
    pub opened_at: Instant,
    phase: Phase,
    events: Vec<Event>,
    pending: PendingCounts,
    last_flush: Instant,
    ready: bool,
}

/// A signaling channel that drives a [`Media`]: how a bot talks to a server.
pub(crate) trait Signaling {
    type Message;

    /// The next message from the server; `None` once it closed the channel.
    /// Must be cancel-safe (it runs inside `select!`).
    async fn recv(&mut self) -> Result<Option<Self::Message>, BotError>;

    /// Acts on one message, usually by calling into `media` and replying.
    async fn handle(&mut self, media: &mut Media, message: Self::Message) -> Result<(), BotError>;

    /// Says goodbye (best effort).
    async fn close(&mut self);
}

impl Media {
    pub fn new(opts: BotOptions, opened_at: Instant) -> Self {
        Media {
            opts,
            report: BotReport::default(),
            publish: None,
            subscribe: None,
            outgoing: Vec::new(),
            publish_connected: false,
            opened_at,
            phase: Phase::Warmup,
            events: Vec::new(),
            pending: PendingCounts::default(),
            last_flush: opened_at,
            ready: false,
        }
    }

    /// Whether this bot sends anything.
    pub fn publishes(&self) -> bool {
        self.opts.publish_audio || self.opts.publish_video
    }

    /// Whether the subscribe connection exists (the first offer came).
    pub fn has_subscribe_connection(&self) -> bool {
        self.subscribe.is_some()
    }

    /// Creates the publish connection with one send-only m-line per
    /// published kind (the video with three simulcast layers if asked) and
    /// returns its SDP offer.
    pub fn create_publish_offer(&mut self) -> Result<String, BotError> {
        let now = Instant::now();
        let mut pc = ClientPc::new(now)?;
        let mut api = pc.rtc.sdp_api();
        let mut tracks = Vec::new();
        for (kind, on) in [
            (MediaKind::Audio, self.opts.publish_audio),
            (MediaKind::Video, self.opts.publish_video),
        ] {
            if on {
                let simulcast = (kind == MediaKind::Video && self.opts.simulcast).then(|| {
                    let mut s = Simulcast::new();
                    for layer in Layer::ALL {
                        s.add_send_layer(SimulcastLayer::new(layer.rid()));
                    }
                    s
                });
                let mid = api.add_media(kind, Direction::SendOnly, None, None, simulcast);
                tracks.push((kind, mid));
            }
        }
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| BotError::Protocol("nothing to offer".into()))?;
        pc.pending = Some(pending);
        for (kind, mid) in tracks {
            let codec = match kind {
                MediaKind::Audio => Codec::Opus,
                MediaKind::Video => Codec::Vp8,
            };
            let pt = pc
                .rtc
                .codec_config()
                .params()
                .iter()
                .find(|p| p.spec().codec == codec)
                .map(|p| p.pt())
                .ok_or_else(|| BotError::Protocol(format!("{codec:?} not configured")))?;
            self.outgoing
                .extend(Outgoing::for_track(mid, kind, pt, &self.opts, now));
        }
        self.publish = Some(pc);
        Ok(offer.to_sdp_string())
    }

    /// Applies the server's answer to the publish offer.
    pub fn accept_publish_answer(&mut self, sdp: &str) -> Result<(), BotError> {
        let answer =
            SdpAnswer::from_sdp_string(sdp).map_err(|e| BotError::Protocol(e.to_string()))?;
        if let Some(pc) = self.publish.as_mut() {
            if let Some(pending) = pc.pending.take() {
                pc.rtc.sdp_api().accept_answer(pending, answer)?;
            }
        }
        Ok(())
    }

    /// Applies a server offer on the subscribe connection (created on the
    /// first one) and returns the answer.
    pub fn accept_subscribe_offer(&mut self, sdp: &str) -> Result<String, BotError> {
        let offer =
            SdpOffer::from_sdp_string(sdp).map_err(|e| BotError::Protocol(e.to_string()))?;
        self.report
            .join_to_first_offer
            .get_or_insert_with(|| self.opened_at.elapsed());
        let pc = match &mut self.subscribe {
            Some(pc) => pc,
            none => none.insert(ClientPc::new(Instant::now())?),
        };
        let answer = pc.rtc.sdp_api().accept_offer(offer)?;
        Ok(answer.to_sdp_string())
    }

    /// Dynacast: the server says which layers of the video on `mid` it
    /// needs; the others stop until it needs them again.
    pub fn set_publish_layers(&mut self, mid: &str, layers: &[(String, bool)]) {
        let now = Instant::now();
        let mid = Mid::from(mid);
        for o in self.outgoing.iter_mut().filter(|o| o.mid == mid) {
            let wanted = layers
                .iter()
                .find(|(rid, _)| o.rid.is_some_and(|r| &*r == rid.as_str()));
            if let Some(&(_, active)) = wanted {
                if o.set_active(active, now) {
                    self.report.layers_stopped += 1;
                }
            }
        }
    }

    /// Runs the bot until its duration is over, the run says leave, or the
    /// server closes the signaling channel.
    pub async fn drive<S: Signaling>(&mut self, signaling: &mut S) -> Result<(), BotError> {
        let end = self.opened_at + self.opts.duration;
        let stop_sending = end - self.opts.drain.min(self.opts.duration);
        let mut phases = self.opts.control.as_ref().map(|c| c.phase.clone());
        if let Some(rx) = &phases {
            self.phase = *rx.borrow();
        }
        let mut pub_buf = vec![0u8; 2048];
        let mut sub_buf = vec![0u8; 2048];
        loop {
            let now = Instant::now();
            if now >= end || self.phase == Phase::Leave {
                break;
            }
            let sending = now < stop_sending && self.phase < Phase::StopSending;
            let wake = self.wake_at(end, sending);
            tokio::select! {
                message = signaling.recv() => match message? {
                    Some(m) => signaling.handle(self, m).await?,
                    None => break,
                },
                received = recv_on(&self.publish, &mut pub_buf) => {
                    self.on_datagrams(Side::Publish, received, &mut pub_buf)?;
                }
                received = recv_on(&self.subscribe, &mut sub_buf) => {
                    self.on_datagrams(Side::Subscribe, received, &mut sub_buf)?;
                }
                phase = next_phase(&mut phases) => self.phase = phase,
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
            let now = Instant::now();
            let sending = now < stop_sending && self.phase < Phase::StopSending;
            self.tick(now, sending)?;
        }
        self.flush_counts(true);
        signaling.close().await;
        Ok(())
    }

    /// The earliest moment something is due.
    fn wake_at(&self, end: Instant, sending: bool) -> Instant {
        let mut wake = end;
        for pc in [&self.publish, &self.subscribe].into_iter().flatten() {
            wake = wake.min(pc.deadline);
        }
        if sending && self.publish_connected {
            for at in self.outgoing.iter().filter_map(Outgoing::wake_at) {
                wake = wake.min(at);
            }
        }
        if self.opts.control.is_some() {
            wake = wake.min(self.last_flush + FLUSH_INTERVAL);
        }
        wake
    }

    /// Handles the first datagram and whatever else already waits.
    fn on_datagrams(
        &mut self,
        side: Side,
        first: std::io::Result<(usize, SocketAddr)>,
        buf: &mut [u8],
    ) -> Result<(), BotError> {
        let mut received = first;
        for _ in 0..RECV_BATCH {
            match received {
                Ok((n, source)) => self.on_datagram(side, source, &buf[..n])?,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                // Loopback ICMP errors for earlier sends may surface here.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(e.into()),
            }
            let pc = match side {
                Side::Publish => &self.publish,
                Side::Subscribe => &self.subscribe,
            };
            let Some(pc) = pc else { break };
            received = pc.socket.try_recv_from(buf);
        }
        Ok(())
    }

    fn on_datagram(&mut self, side: Side, source: SocketAddr, data: &[u8]) -> Result<(), BotError> {
        let pc = match side {
            Side::Publish => self.publish.as_mut(),
            Side::Subscribe => self.subscribe.as_mut(),
        };
        let Some(pc) = pc else { return Ok(()) };
        let Ok(contents) = data.try_into() else {
            return Ok(());
        };
        let now = Instant::now();
        pc.rtc.handle_input(Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: pc.local,
                contents,
            },
        ))?;
        // str0m holds one received packet at a time: drain before the next.
        let mut events = std::mem::take(&mut self.events);
        pc.drain(&mut events)?;
        self.handle_events(side, now, &mut events);
        self.events = events;
        Ok(())
    }

    fn handle_events(&mut self, side: Side, now: Instant, events: &mut Vec<Event>) {
        for event in events.drain(..) {
            match (side, event) {
                (Side::Publish, Event::Connected) => self.publish_connected = true,
                (Side::Subscribe, Event::Connected) => {
                    let at = now.saturating_duration_since(self.opened_at);
                    self.report.join_to_subscribe_connected.get_or_insert(at);
                }
                (Side::Publish, Event::KeyframeRequest(request)) => {
                    self.on_keyframe_request(&request)
                }
                (Side::Subscribe, Event::RtpPacket(packet)) => self.record(now, &packet),
                _ => {}
            }
        }
    }

    /// Sends due media, feeds due timeouts, publishes counters.
    fn tick(&mut self, now: Instant, sending: bool) -> Result<(), BotError> {
        if sending {
            self.send_due_media(now);
        }
        let mut events = std::mem::take(&mut self.events);
        for side in [Side::Publish, Side::Subscribe] {
            let pc = match side {
                Side::Publish => self.publish.as_mut(),
                Side::Subscribe => self.subscribe.as_mut(),
            };
            if let Some(pc) = pc {
                pc.poke(now, &mut events)?;
                self.handle_events(side, now, &mut events);
            }
        }
        self.events = events;
        self.flush_counts(false);
        Ok(())
    }

    /// A PLI or FIR for one of our streams: a simulcast layer's by rid, or
    /// every layer of the video when it names none.
    fn on_keyframe_request(&mut self, request: &KeyframeRequest) {
        for o in &mut self.outgoing {
            let layer_matches = request.rid.is_none() || o.rid.is_none() || o.rid == request.rid;
            if o.mid == request.mid && o.kind == MediaKind::Video && layer_matches {
                o.request_keyframe();
            }
        }
    }

    fn record(&mut self, now: Instant, packet: &RtpPacket) {
        let payload = &packet.payload[..];
        let Some(contents) = payload::read(payload) else {
            return;
        };
        let stamp = contents.stamp;
        let kind = contents.kind;
        // Video goes through the sender's layer follower: simulcast layers
        // number their packets separately, and a pause skips some.
        let counter = match kind {
            MediaKind::Audio => Some(stamp.counter),
            MediaKind::Video => self
                .report
                .video_layers
                .entry(stamp.sender)
                .or_default()
                .follow(
                    contents.layer.map_or(0, Layer::index),
                    stamp.counter,
                    *packet.seq_no,
                    contents.keyframe,
                ),
        };
        let Some(counter) = counter else {
            return;
        };
        let measuring = self.opts.control.is_none() || self.phase == Phase::Measure;
        let stream = self
            .report
            .received
            .entry((stamp.sender, kind))
            .or_default();
        if !stream.record_at(now, counter, payload.len()) {
            return;
        }
        if measuring && stream.window_first.is_none() {
            stream.window_first = Some(counter);
        }
        self.pending.received_packets += 1;
        self.pending.received_bytes += payload.len() as u64;
        if let Some(layer) = contents.layer {
            let total = &mut self.report.received_layers[layer.index()];
            total.packets += 1;
            total.bytes += payload.len() as u64;
            self.pending.received_layer_packets[layer.index()] += 1;
            self.pending.received_layer_bytes[layer.index()] += payload.len() as u64;
        }
        // Without a run controlling phases every packet counts.
        if measuring {
            let latency = payload::now_micros().saturating_sub(stamp.sent_micros);
            self.report.latency.record(latency);
        }
        if self.report.join_to_first_media.is_none() {
            self.report.join_to_first_media = Some(now - self.opened_at);
            if let Some(c) = &self.opts.control {
                c.live.first_media.fetch_add(1, Ordering::Relaxed);
            }
        }
        if !self.ready
            && self.opts.expected_streams > 0
            && self.report.received.len() >= self.opts.expected_streams
        {
            self.ready = true;
            if let Some(c) = &self.opts.control {
                c.live.ready.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn flush_counts(&mut self, force: bool) {
        let Some(control) = &self.opts.control else {
            return;
        };
        let now = Instant::now();
        if force || now >= self.last_flush + FLUSH_INTERVAL {
            self.last_flush = now;
            self.pending.flush(&control.live);
        }
    }

    /// Starts every frame whose time has come and writes the packets the
    /// pacers let out (once the publish connection is up).
    fn send_due_media(&mut self, now: Instant) {
        if !self.publish_connected {
            return;
        }
        let Some(pc) = self.publish.as_mut() else {
            return;
        };
        let mut sent = 0;
        for o in self.outgoing.iter_mut().filter(|o| o.due(now)) {
            let mut api = pc.rtc.direct_api();
            let Some(stream) = api.stream_tx_by_mid(o.mid, o.rid) else {
                continue;
            };
            sent += o.send_due(stream, now, self.opened_at, &self.opts);
        }
        self.report.sent_packets += sent;
        self.pending.sent_packets += sent;
    }
}

async fn recv_on(pc: &Option<ClientPc>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match pc {
        Some(pc) => pc.socket.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

async fn next_phase(phases: &mut Option<tokio::sync::watch::Receiver<Phase>>) -> Phase {
    if let Some(rx) = phases {
        if rx.changed().await.is_ok() {
            return *rx.borrow_and_update();
        }
        // The run went away: nobody will change the phase again.
        *phases = None;
    }
    std::future::pending().await
}
