//! Deterministic simulation: one [`MediaCore`] and any number of str0m client
//! peers in one process, a fake clock and a fake network with 1 ms one-way
//! latency. No sockets, no sleeps: time jumps to the next thing that happens.
//! A client's downlink can be made a bottleneck ([`Sim::shape_downlink`],
//! see [`Link`]), and a client can publish VP8-shaped simulcast
//! ([`Sim::publish_simulcast`], see [`crate::vp8`]).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cascade::media::data::envelope::{LOSSY_LABEL, RELIABLE_LABEL};
use cascade::media::{
    CoreConfig, CoreEvent, DisplayName, Identity, JoinRequest, LeaveReason, MediaCore, MediaGrants,
    ParticipantEvent, ParticipantId, ParticipantMode, PeerRole, RoomName, TrackSource,
};
use cascade::signal::protocol::server_message;
use cascade_protocol::{ServerMessage, SubscribedTrack};
use str0m::change::{SdpAnswer, SdpApi, SdpOffer};
use str0m::channel::{ChannelConfig, ChannelId, Reliability};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::rtp::{ExtensionValues, RtpWrite};
use str0m::{Candidate, Event, Input, Output, Rtc};

use crate::link::Link;
use crate::vp8::{ladder, next_frame, LayerSource};

const LATENCY: Duration = Duration::from_millis(1);
const MAX_STEP: Duration = Duration::from_millis(5);

/// A packet a subscriber received, identified by the m-line it came on.
#[derive(Debug, Clone)]
pub struct Received {
    pub mid: Mid,
    pub seq: u64,
    pub timestamp: u32,
    pub pt: Pt,
    pub payload: Vec<u8>,
    pub at: Instant,
    /// Datagrams the client's shaped downlink had dropped when this arrived.
    pub link_drops: u64,
}

/// A client peer connection inside the simulation.
pub struct ClientPc {
    pub rtc: Rtc,
    pub addr: SocketAddr,
    deadline: Instant,
    pub connected: bool,
}

/// One simulated participant (like a browser tab).
pub struct SimClient {
    pub name: String,
    pub id: ParticipantId,
    pub publish: Option<ClientPc>,
    pub subscribe: Option<ClientPc>,
    /// Mids of the client's own audio and video on its publish connection.
    pub publish_mids: Vec<(MediaKind, Mid)>,
    pub messages: Vec<ServerMessage>,
    /// mid -> which remote track it carries, from the latest subscribe offer.
    pub subscribed: HashMap<Mid, SubscribedTrack>,
    pub received: Vec<Received>,
    pub keyframe_requests: usize,
    /// Why the core removed this participant, once it has.
    pub removal: Option<LeaveReason>,
    /// Never answers subscribe offers (a client that joins and goes quiet).
    pub silent: bool,
    /// Its simulcast video layers, lowest first, if it publishes simulcast.
    pub layers: Vec<LayerSource>,
    /// Data channels open on its publish connection, by label.
    pub channels: HashMap<String, ChannelId>,
    /// Data-channel messages received: (label, binary, bytes).
    pub data: Vec<(String, bool, Vec<u8>)>,
    /// The RFC 6464 level (-dBov) its audio packets carry, if any: what its
    /// microphone hears.
    pub audio_level: Option<i8>,
    sent: u64,
}

impl SimClient {
    /// The SDP of every subscribe offer the client was sent, in order.
    pub fn subscribe_offers(&self) -> Vec<String> {
        self.messages
            .iter()
            .filter_map(|m| match m {
                ServerMessage::SubscribeOffer { sdp, .. } => Some(sdp.clone()),
                _ => None,
            })
            .collect()
    }

    /// All payloads received from `participant`'s tracks of `kind`.
    pub fn payloads_from(&self, participant: ParticipantId, kind: MediaKind) -> Vec<Vec<u8>> {
        let pid = participant.to_string();
        let want = match kind {
            MediaKind::Audio => cascade_protocol::TrackKind::Audio,
            MediaKind::Video => cascade_protocol::TrackKind::Video,
        };
        self.received
            .iter()
            .filter(|r| {
                self.subscribed
                    .get(&r.mid)
                    .is_some_and(|t| t.participant_id == pid && t.kind == want)
            })
            .map(|r| r.payload.clone())
            .collect()
    }
}

struct InFlight {
    at: Instant,
    transmit: Transmit,
}

/// Puts `flight` in `network`, which is kept in order of arrival.
fn enqueue(network: &mut VecDeque<InFlight>, flight: InFlight) {
    let at = network.partition_point(|f| f.at <= flight.at);
    network.insert(at, flight);
}

/// Predicate that drops a server->client datagram when it returns true.
pub type DropFilter = Box<dyn FnMut(&Transmit) -> bool>;

/// The simulated world.
pub struct Sim {
    pub now: Instant,
    pub core: MediaCore,
    /// The settings `core` runs with.
    pub core_config: CoreConfig,
    pub server_addr: SocketAddr,
    pub clients: Vec<SimClient>,
    network: VecDeque<InFlight>,
    next_port: u16,
    pub drop_filter: Option<DropFilter>,
    /// Codec the clients publish video with (VP8 unless a test changes it).
    pub video_codec: Codec,
    /// Keep clients' subscribe answers (as if signaling were slow) until
    /// [`Sim::release_answers`]; clients still start ICE at once.
    pub hold_answers: bool,
    held_answers: Vec<(ParticipantId, SdpAnswer)>,
    next_media: Instant,
    /// Bottlenecks on the way from the server to these addresses.
    pub links: HashMap<SocketAddr, Link>,
}

impl Default for Sim {
    fn default() -> Self {
        Self::new()
    }
}

impl Sim {
    pub fn new() -> Self {
        Sim::with_config(|_| {})
    }

    /// A simulation whose core runs with settings `adjust` changed.
    pub fn with_config(adjust: impl FnOnce(&mut CoreConfig)) -> Self {
        let now = Instant::now();
        let server_addr: SocketAddr = "127.0.0.1:3478".parse().unwrap();
        let mut core_config = CoreConfig::new(server_addr);
        adjust(&mut core_config);
        Sim {
            now,
            core: MediaCore::new(core_config.clone(), now),
            core_config,
            server_addr,
            clients: Vec::new(),
            network: VecDeque::new(),
            next_port: 40000,
            drop_filter: None,
            video_codec: Codec::Vp8,
            hold_answers: false,
            held_answers: Vec::new(),
            next_media: now,
            links: HashMap::new(),
        }
    }

    fn client_pc(&mut self) -> ClientPc {
        let mut rtc = Rtc::builder().set_rtp_mode(true).build(self.now);
        let addr: SocketAddr = format!("127.0.0.1:{}", self.next_port).parse().unwrap();
        self.next_port += 1;
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        ClientPc {
            rtc,
            addr,
            deadline: self.now,
            connected: false,
        }
    }

    /// Joins `names` into one room, publishes from each, and waits until
    /// every client's connections are up.
    pub fn room_of(names: &[&str]) -> Sim {
        Sim::room_of_with(names, |_| {})
    }

    /// [`Sim::room_of`] with core settings `adjust` changed.
    pub fn room_of_with(names: &[&str], adjust: impl FnOnce(&mut CoreConfig)) -> Sim {
        let mut sim = Sim::with_config(adjust);
        for name in names {
            let i = sim.join("room", name);
            sim.publish(i);
        }
        let connected = sim.run_until(Duration::from_secs(10), |s| {
            s.clients.iter().all(|c| {
                c.publish.as_ref().is_some_and(|p| p.connected)
                    && c.subscribe.as_ref().is_some_and(|p| p.connected)
            })
        });
        assert!(connected, "all peer connections connect");
        sim
    }

    /// A new participant joins `room`; returns its index in `clients`.
    pub fn join(&mut self, room: &str, name: &str) -> usize {
        self.add_client(room, name, false, None, MediaGrants::ALL)
    }

    /// Joins as a token's `identity` with its media `grants`.
    pub fn join_as(
        &mut self,
        room: &str,
        name: &str,
        identity: &str,
        grants: MediaGrants,
    ) -> usize {
        let identity = Identity::parse(identity).expect("valid identity");
        self.add_client(room, name, false, Some(identity), grants)
    }

    fn add_client(
        &mut self,
        room: &str,
        name: &str,
        silent: bool,
        identity: Option<Identity>,
        grants: MediaGrants,
    ) -> usize {
        let id = ParticipantId::random();
        let server_rtc = cascade::media::server_rtc(self.now, PeerRole::Subscribe);
        let request = JoinRequest {
            id,
            room: RoomName::parse(room).expect("valid room name"),
            name: DisplayName::parse(name).expect("valid display name"),
            mode: ParticipantMode::Full,
            identity,
            grants,
        };
        self.core.join(self.now, request, server_rtc).expect("join");
        self.clients.push(SimClient {
            name: name.to_string(),
            id,
            publish: None,
            subscribe: None,
            publish_mids: Vec::new(),
            messages: Vec::new(),
            subscribed: HashMap::new(),
            received: Vec::new(),
            keyframe_requests: 0,
            removal: None,
            silent,
            layers: Vec::new(),
            channels: HashMap::new(),
            data: Vec::new(),
            audio_level: None,
            sent: 0,
        });
        let index = self.clients.len() - 1;
        self.pump();
        index
    }

    /// The client offers audio + video on a new publish connection.
    pub fn publish(&mut self, index: usize) {
        self.publish_with_layers(index, Vec::new());
    }

    /// The client offers audio and a q/h/f simulcast video (see
    /// [`crate::vp8::ladder`]) on a new publish connection.
    pub fn publish_simulcast(&mut self, index: usize) {
        self.publish_with_layers(index, ladder());
    }

    /// The client offers audio + video and the two relayed data channels
    /// (`cascade-reliable`, and `cascade-lossy` unordered without
    /// retransmissions) on a new publish connection, as the bundled client does.
    pub fn publish_with_data(&mut self, index: usize) {
        self.publish_offering(index, Vec::new(), true);
    }

    /// Sends `bytes` on the client's open data channel `label`; returns
    /// whether str0m took it.
    pub fn send_data(&mut self, index: usize, label: &str, binary: bool, bytes: &[u8]) -> bool {
        let client = &mut self.clients[index];
        let id = *client.channels.get(label).expect("channel open");
        let pc = client.publish.as_mut().expect("publish connection");
        let taken = pc
            .rtc
            .channel(id)
            .expect("channel open")
            .write(binary, bytes)
            .expect("write");
        self.pump();
        taken
    }

    /// Publishes audio and video, the video as `layers` (none: one stream).
    fn publish_with_layers(&mut self, index: usize, layers: Vec<LayerSource>) {
        self.publish_offering(index, layers, false);
    }

    fn publish_offering(&mut self, index: usize, layers: Vec<LayerSource>, data: bool) {
        let mut pc = self.client_pc();
        let mut api = pc.rtc.sdp_api();
        if data {
            api.add_channel(RELIABLE_LABEL.to_string());
            api.add_channel_with_config(ChannelConfig {
                label: LOSSY_LABEL.to_string(),
                ordered: false,
                reliability: Reliability::MaxRetransmits { retransmits: 0 },
                ..Default::default()
            });
        }
        let audio = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let simulcast = (!layers.is_empty()).then(|| {
            let mut simulcast = Simulcast::new();
            for layer in &layers {
                simulcast.add_send_layer(SimulcastLayer::new(layer.rid));
            }
            simulcast
        });
        let video = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, simulcast);
        let (offer, pending) = api.apply().expect("offer");
        let offer = SdpOffer::from_sdp_string(&offer.to_sdp_string()).unwrap();
        let id = self.clients[index].id;
        let server_rtc = cascade::media::server_rtc(self.now, PeerRole::Publish);
        let answer = self
            .core
            .publish_offer(self.now, id, Some(server_rtc), offer)
            .expect("publish offer accepted");
        let answer = SdpAnswer::from_sdp_string(&answer.to_sdp_string()).unwrap();
        pc.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("answer");
        let client = &mut self.clients[index];
        client.publish = Some(pc);
        client.publish_mids = vec![(MediaKind::Audio, audio), (MediaKind::Video, video)];
        client.layers = layers;
        self.pump();
    }

    /// The client shares its screen: a new send-only video m-line on its
    /// publish connection, named `screen_share` with the re-offer, as the
    /// bundled client does. Returns its mid; its media goes out with the rest.
    pub fn share_screen(&mut self, index: usize) -> Mid {
        let mid = self.reoffer(index, |api| {
            let mid = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
            (mid, vec![(mid, TrackSource::ScreenShare)])
        });
        self.clients[index]
            .publish_mids
            .push((MediaKind::Video, mid));
        mid
    }

    /// The client stops sharing: the screen's m-line goes inactive in a re-offer.
    pub fn stop_screen_share(&mut self, index: usize, mid: Mid) {
        self.reoffer(index, |api| {
            api.set_direction(mid, Direction::Inactive);
            ((), Vec::new())
        });
        self.clients[index].publish_mids.retain(|(_, m)| *m != mid);
    }

    /// Renegotiates `index`'s publish connection after `change`, naming the
    /// sources it returns with the offer.
    fn reoffer<R>(
        &mut self,
        index: usize,
        change: impl FnOnce(&mut SdpApi) -> (R, Vec<(Mid, TrackSource)>),
    ) -> R {
        let id = self.clients[index].id;
        let pc = self.clients[index].publish.as_mut().expect("publishing");
        let mut api = pc.rtc.sdp_api();
        let (result, sources) = change(&mut api);
        let (offer, pending) = api.apply().expect("offer");
        self.core.name_track_sources(id, &sources);
        let offer = SdpOffer::from_sdp_string(&offer.to_sdp_string()).unwrap();
        let answer = self
            .core
            .publish_offer(self.now, id, None, offer)
            .expect("re-offer accepted");
        let answer = SdpAnswer::from_sdp_string(&answer.to_sdp_string()).unwrap();
        pc.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("answer");
        self.pump();
        result
    }

    /// Makes the way from the server to `index`'s subscribe connection a
    /// bottleneck of `rate_bps` with a queue of `queue_bytes` (or changes
    /// its rate).
    pub fn shape_downlink(&mut self, index: usize, rate_bps: u64, queue_bytes: usize) {
        let addr = self.clients[index]
            .subscribe
            .as_ref()
            .expect("a subscribe connection")
            .addr;
        let link = self
            .links
            .entry(addr)
            .or_insert_with(|| Link::new(rate_bps, queue_bytes));
        link.rate_bps = rate_bps;
        link.queue_bytes = queue_bytes;
    }

    /// The shaped downlink of `index`'s subscribe connection, if any.
    pub fn downlink(&self, index: usize) -> Option<&Link> {
        self.links
            .get(&self.clients[index].subscribe.as_ref()?.addr)
    }

    /// A participant joins `room` and then does nothing: it never answers
    /// its subscribe offer, so none of its connections ever comes up.
    pub fn join_silent(&mut self, room: &str, name: &str) -> usize {
        self.add_client(room, name, true, None, MediaGrants::ALL)
    }

    /// The client's machine drops off the network: its connections stop
    /// without a word to the server.
    pub fn vanish(&mut self, index: usize) {
        let client = &mut self.clients[index];
        client.publish = None;
        client.subscribe = None;
    }

    /// Leaves (as if the WebSocket closed).
    pub fn leave(&mut self, index: usize) {
        let id = self.clients[index].id;
        self.core
            .leave(self.now, id, cascade::media::LeaveReason::Left);
        let client = &mut self.clients[index];
        client.publish = None;
        client.subscribe = None;
        self.pump();
    }

    /// Writes one audio packet and one video packet from every publishing
    /// client. Payloads name the sender and a counter, so receivers can
    /// check them byte for byte.
    pub fn send_media(&mut self) {
        let now = self.now;
        let video_codec = self.video_codec;
        for client in self.clients.iter_mut() {
            let Some(pc) = client.publish.as_mut() else {
                continue;
            };
            if !pc.connected {
                continue;
            }
            client.sent += 1;
            let n = client.sent;
            let name = client.name.clone();
            for (index, layer) in client.layers.iter_mut().enumerate() {
                if layer.stopped {
                    continue;
                }
                let Some(&(_, mid)) = client
                    .publish_mids
                    .iter()
                    .find(|(k, _)| *k == MediaKind::Video)
                else {
                    continue;
                };
                let pt = payload_type(&pc.rtc, Codec::Vp8);
                // Each layer has its own timestamp base, as browsers' have.
                let time = (layer.frame * 1800) as u32 + index as u32 * 1_000_000;
                let packets = next_frame(&name, index, layer);
                let last = packets.len() - 1;
                let mut api = pc.rtc.direct_api();
                let stream = api
                    .stream_tx_by_mid(mid, Some(layer.rid.into()))
                    .expect("layer stream");
                for (i, payload) in packets.into_iter().enumerate() {
                    layer.seq += 1;
                    stream.write_rtp(
                        RtpWrite::new(pt, layer.seq.into(), time, now, payload)
                            .marker(i == last)
                            .nackable(true),
                    );
                }
            }
            for (kind, mid) in client.publish_mids.clone() {
                if kind == MediaKind::Video && !client.layers.is_empty() {
                    continue; // sent per layer above
                }
                let codec = if kind == MediaKind::Audio {
                    Codec::Opus
                } else {
                    video_codec
                };
                let pt = payload_type(&pc.rtc, codec);
                let mut payload = format!("{}:{:?}:{n}:", client.name, kind).into_bytes();
                // Video packets near full size, like real ones.
                let size = if kind == MediaKind::Video { 1100 } else { 120 };
                payload.resize(size, (n % 251) as u8);
                let mut api = pc.rtc.direct_api();
                let stream = api.stream_tx_by_mid(mid, None).expect("publish stream");
                let time = (n * 3000) as u32;
                let mut ext_vals = ExtensionValues::default();
                if kind == MediaKind::Audio {
                    ext_vals.audio_level = client.audio_level;
                    ext_vals.voice_activity = client.audio_level.map(|l| l > -50);
                }
                stream.write_rtp(
                    RtpWrite::new(pt, (1000 + n).into(), time, now, payload)
                        .marker(true)
                        .nackable(true)
                        .ext_vals(ext_vals),
                );
            }
        }
    }

    /// Sends media if 20 ms passed since the last send (for `run_until` loops).
    pub fn send_media_due(&mut self) {
        if self.now >= self.next_media {
            self.send_media();
            self.next_media = self.now + Duration::from_millis(20);
        }
    }

    /// Runs for `duration` of fake time, sending media every 20 ms when
    /// `media` is set.
    pub fn run(&mut self, duration: Duration, media: bool) {
        let end = self.now + duration;
        while self.now < end {
            if media {
                self.send_media_due();
            }
            self.step();
        }
    }

    /// Runs until `done` holds, for at most `limit` of fake time.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Sim) -> bool) -> bool {
        let end = self.now + limit;
        while self.now < end {
            if done(self) {
                return true;
            }
            self.step();
        }
        done(self)
    }

    /// Advances time to the next event and processes everything due.
    pub fn step(&mut self) {
        let mut next = self.core.next_deadline().min(self.now + MAX_STEP);
        for pc in self.pcs() {
            next = next.min(pc.deadline);
        }
        if let Some(f) = self.network.front() {
            next = next.min(f.at);
        }
        // Always move a little, so a peer asking for "now" cannot stall us.
        self.now = next.max(self.now + Duration::from_micros(100));
        let now = self.now;

        while self.network.front().is_some_and(|f| f.at <= now) {
            let InFlight { transmit, .. } = self.network.pop_front().unwrap();
            self.deliver(transmit);
        }
        self.core.flush(now);
        self.core.handle_timeout(now);
        for client in self.clients.iter_mut() {
            for pc in [client.publish.as_mut(), client.subscribe.as_mut()]
                .into_iter()
                .flatten()
            {
                if pc.deadline <= now {
                    pc.rtc
                        .handle_input(Input::Timeout(now))
                        .expect("client timeout");
                }
            }
        }
        self.pump();
    }

    fn pcs(&self) -> impl Iterator<Item = &ClientPc> {
        self.clients
            .iter()
            .flat_map(|c| [c.publish.as_ref(), c.subscribe.as_ref()])
            .flatten()
    }

    fn deliver(&mut self, transmit: Transmit) {
        let now = self.now;
        if transmit.destination == self.server_addr {
            self.core
                .handle_receive(now, transmit.source, &transmit.contents);
            return;
        }
        for client in self.clients.iter_mut() {
            let mut delivered = false;
            for pc in [client.publish.as_mut(), client.subscribe.as_mut()]
                .into_iter()
                .flatten()
            {
                if pc.addr == transmit.destination {
                    let input = Input::Receive(
                        now,
                        Receive {
                            proto: Protocol::Udp,
                            source: transmit.source,
                            destination: transmit.destination,
                            contents: (&*transmit.contents).try_into().unwrap(),
                        },
                    );
                    pc.rtc.handle_input(input).expect("client input");
                    delivered = true;
                }
            }
            if delivered {
                // str0m holds one received packet at a time: poll it out
                // before the next input.
                let drops = self
                    .links
                    .get(&transmit.destination)
                    .map_or(0, |l| l.dropped);
                drain_client_noting(client, now, &mut self.network, drops);
                return;
            }
        }
        // Destination gone (the client left): dropped like on a real network.
    }

    /// Moves everything queued anywhere to where it goes next, without
    /// advancing time.
    fn pump(&mut self) {
        loop {
            let now = self.now;
            let mut offers = Vec::new();
            for client in self.clients.iter_mut() {
                drain_client(client, now, &mut self.network);
            }
            while let Some(t) = self.core.poll_transmit() {
                if self.drop_filter.as_mut().is_some_and(|f| f(&t)) {
                    continue;
                }
                let at = match self.links.get_mut(&t.destination) {
                    Some(link) => match link.offer(now, t.contents.len()) {
                        Some(done) => done + LATENCY,
                        None => continue,
                    },
                    None => now + LATENCY,
                };
                enqueue(&mut self.network, InFlight { at, transmit: t });
            }
            while let Some(event) = self.core.poll_event() {
                let CoreEvent::Participant(to, event) = event else {
                    continue; // rooms opening and closing are the directory's
                };
                let Some(index) = self.clients.iter().position(|c| c.id == to) else {
                    continue;
                };
                if let ParticipantEvent::Removed(reason) = event {
                    self.clients[index].removal = Some(reason);
                }
                // Clients see what a WebSocket client would be sent.
                let Some(message) = server_message(event) else {
                    continue;
                };
                if let ServerMessage::SubscribeOffer { sdp, tracks } = &message {
                    offers.push((index, sdp.clone(), tracks.clone()));
                }
                self.clients[index].messages.push(message);
            }
            if offers.is_empty() {
                return;
            }
            for (index, sdp, tracks) in offers {
                self.answer_subscribe_offer(index, &sdp, tracks);
            }
        }
    }

    fn answer_subscribe_offer(&mut self, index: usize, sdp: &str, tracks: Vec<SubscribedTrack>) {
        if self.clients[index].silent {
            return;
        }
        if self.clients[index].subscribe.is_none() {
            let pc = self.client_pc();
            self.clients[index].subscribe = Some(pc);
        }
        let client = &mut self.clients[index];
        let pc = client.subscribe.as_mut().unwrap();
        let offer = SdpOffer::from_sdp_string(sdp).expect("server offer parses");
        let answer = pc
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .expect("client accepts server offer");
        for t in tracks {
            client.subscribed.insert(Mid::from(t.mid.as_str()), t);
        }
        let answer = SdpAnswer::from_sdp_string(&answer.to_sdp_string()).unwrap();
        let id = client.id;
        if self.hold_answers {
            self.held_answers.push((id, answer));
            return;
        }
        self.core
            .subscribe_answer(self.now, id, answer)
            .expect("server accepts answer");
    }

    /// Lets every client send what it has written and the network carry it,
    /// then hands everything addressed to the server to the core without the
    /// flush a [`Sim::step`] ends with (as a worker feeds a receive batch).
    pub fn deliver_to_server_unflushed(&mut self) {
        let now = self.now;
        for client in self.clients.iter_mut() {
            for pc in [client.publish.as_mut(), client.subscribe.as_mut()]
                .into_iter()
                .flatten()
            {
                pc.rtc
                    .handle_input(Input::Timeout(now))
                    .expect("client timeout");
            }
            drain_client(client, now, &mut self.network);
        }
        self.now += LATENCY;
        let server = self.server_addr;
        let (to_server, rest): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.network)
            .into_iter()
            .partition(|f| f.transmit.destination == server);
        self.network = rest;
        for f in to_server {
            self.deliver(f.transmit);
        }
    }

    /// Puts a datagram the server sent (taken from the core by the caller)
    /// on the network, to arrive after the usual latency.
    pub fn send_from_server(&mut self, transmit: Transmit) {
        enqueue(
            &mut self.network,
            InFlight {
                at: self.now + LATENCY,
                transmit,
            },
        );
    }

    /// Drops the `n`th video-sized (> 1000 bytes) datagram the server sends
    /// to `destination`, once.
    pub fn drop_nth_video_datagram_to(&mut self, destination: SocketAddr, n: usize) {
        let mut seen = 0;
        self.drop_filter = Some(Box::new(move |t| {
            if t.destination == destination && t.contents.len() > 1000 {
                seen += 1;
                return seen == n;
            }
            false
        }));
    }

    /// Delivers the subscribe answers held back by `hold_answers`.
    pub fn release_answers(&mut self) {
        for (id, answer) in std::mem::take(&mut self.held_answers) {
            self.core
                .subscribe_answer(self.now, id, answer)
                .expect("server accepts answer");
        }
        self.pump();
    }
}

/// Polls both of a client's connections until they wait for time.
fn drain_client(client: &mut SimClient, now: Instant, network: &mut VecDeque<InFlight>) {
    drain_client_noting(client, now, network, 0)
}

/// [`drain_client`], noting `link_drops` on what is received.
fn drain_client_noting(
    client: &mut SimClient,
    now: Instant,
    network: &mut VecDeque<InFlight>,
    link_drops: u64,
) {
    for (is_sub, pc) in [
        (false, client.publish.as_mut()),
        (true, client.subscribe.as_mut()),
    ] {
        let Some(pc) = pc else { continue };
        loop {
            match pc.rtc.poll_output().expect("client poll") {
                Output::Timeout(t) => {
                    pc.deadline = t;
                    break;
                }
                Output::Transmit(t) => enqueue(
                    network,
                    InFlight {
                        at: now + LATENCY,
                        transmit: t,
                    },
                ),
                Output::Event(Event::Connected) => pc.connected = true,
                Output::Event(Event::ChannelOpen(id, label)) if !is_sub => {
                    client.channels.insert(label, id);
                }
                Output::Event(Event::ChannelData(d)) if !is_sub => {
                    let label = client
                        .channels
                        .iter()
                        .find(|(_, c)| **c == d.id)
                        .map(|(l, _)| l.clone())
                        .unwrap_or_default();
                    client.data.push((label, d.binary, d.data));
                }
                Output::Event(Event::RtpPacket(p)) if is_sub => {
                    let mid = pc
                        .rtc
                        .direct_api()
                        .stream_rx(&p.header.ssrc)
                        .map(|s| s.mid());
                    if let Some(mid) = mid {
                        client.received.push(Received {
                            mid,
                            seq: *p.seq_no,
                            timestamp: p.header.timestamp,
                            pt: p.header.payload_type,
                            payload: p.payload.to_vec(),
                            at: now,
                            link_drops,
                        });
                    }
                }
                Output::Event(Event::KeyframeRequest(req)) if !is_sub => {
                    client.keyframe_requests += 1;
                    let layer = client
                        .layers
                        .iter_mut()
                        .find(|l| req.rid.is_some_and(|rid| &*rid == l.rid));
                    if let Some(layer) = layer {
                        layer.keyframe_due = true;
                    }
                }
                Output::Event(_) => {}
            }
        }
    }
}

/// The counter [`Sim::send_media`] wrote into a payload (`name:kind:N:`).
pub fn counter_of(payload: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(&payload[..40.min(payload.len())]).to_string();
    text.split(':').nth(2).unwrap().parse().unwrap()
}

/// The codec `rtc` has configured for payload type `pt`.
pub fn codec_of(rtc: &Rtc, pt: Pt) -> Option<Codec> {
    rtc.codec_config()
        .params()
        .iter()
        .find(|p| p.pt() == pt)
        .map(|p| p.spec().codec)
}

fn payload_type(rtc: &Rtc, codec: Codec) -> Pt {
    rtc.codec_config()
        .params()
        .iter()
        .find(|p| p.spec().codec == codec)
        .map(|p| p.pt())
        .expect("codec configured")
}
