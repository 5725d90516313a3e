//! Headless participants ("bots") for tests and the load generator.
//!
//! A bot is what a browser tab is to an SFU: it joins through the server's
//! real signaling API, publishes synthetic audio/video on a publish
//! connection and receives everyone else on a subscribe connection, each a
//! str0m `Rtc` on its own UDP socket. It records what arrived (per sender,
//! with loss and end-to-end latency from the send time carried in each
//! payload). Many bots run as tokio tasks in one process.
//!
//! - [`run`]: a bot speaking Cascade's WebSocket protocol (`cascade.rs`);
//! - [`janus`]: the same bot speaking the Janus VideoRoom HTTP API;
//! - [`load`]: scenarios, the runner, its progress line and summary;
//! - [`payload`]: what the synthetic packets carry;
//! - [`simulcast`]: the three layers a `--simulcast` bot publishes;
//! - [`record`]: loss bitmaps, simulcast layer following, latency
//!   histograms, live counters;
//! - [`summary`]: a run's results, tables, JSON, Janus/Cascade ratios;
//! - [`procfs`]: CPU and memory of a local server process;
//! - `media.rs`, `publisher.rs`, `pc.rs`: the connections, the streams a
//!   bot sends and the event loop both flavours share.

mod cascade;
pub mod http;
pub mod janus;
pub mod load;
mod media;
pub mod pacer;
pub mod payload;
mod pc;
pub mod procfs;
mod progress;
mod publisher;
pub mod record;
pub mod scrape;
pub mod simulcast;
pub mod summary;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use str0m::media::MediaKind;
use tokio::sync::watch;

pub use record::{Histogram, LayerFollower, LayerTotal, LiveCounters, StreamReport};
pub use simulcast::Layer;

/// What a bot does.
#[derive(Debug, Clone)]
pub struct BotOptions {
    /// Cascade's HTTP address (ignored by the Janus flavour).
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
    /// Video is paced at this multiple of its bitrate, as WebRTC senders do
    /// (libwebrtc's default is 2.5); 0 writes each frame at once.
    pub pacing_factor: f64,
    /// Publish the video as three simulcast layers (rids `q`, `h`, `f`; the
    /// top one at `video_bitrate_bps`, the others at their share of it).
    /// Cascade only: the Janus flavour always publishes one layer.
    pub simulcast: bool,
    /// Ask the server for at most this layer of every remote video, with a
    /// `video_preference` of its size; `None` sends no preference (the
    /// server then picks what the bandwidth allows). Cascade only.
    pub max_layer: Option<Layer>,
    pub audio_packet_bytes: usize,
    /// How long to stay after joining, at most.
    pub duration: Duration,
    /// Stop sending this long before leaving, so in-flight media can land.
    pub drain: Duration,
    /// How many (sender, kind) streams this bot should receive; it counts
    /// as ready for the run once all have arrived. 0: not counted.
    pub expected_streams: usize,
    /// Phases and live counters of a load run, if the bot is part of one.
    pub control: Option<BotControl>,
}

/// libwebrtc's pace multiplier: its pacer lets media out at 2.5 times the
/// target bitrate, so a frame's packets are spread over part of the frame
/// interval and a keyframe over several.
pub const DEFAULT_PACING_FACTOR: f64 = 2.5;

impl BotOptions {
    /// A publishing bot with realistic defaults (~1.7 Mbit/s VP8-shaped video
    /// in 1150-byte packets at 30 frames/s, keyframes every 3 s, paced like
    /// libwebrtc, Opus-shaped audio at 50 packets/s).
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
            pacing_factor: DEFAULT_PACING_FACTOR,
            simulcast: false,
            max_layer: None,
            audio_packet_bytes: 100,
            duration: Duration::from_secs(5),
            drain: Duration::from_millis(500),
            expected_streams: 0,
            control: None,
        }
    }

    /// RTP payload size of every video packet (at least 64 bytes).
    pub fn video_packet_size(&self) -> usize {
        self.video_packet_bytes.max(64)
    }

    /// Time between two paced packets of a single-layer video; zero when
    /// pacing is off.
    pub fn pacing_interval(&self) -> Duration {
        publisher::pacing_interval(
            self.video_packet_size(),
            self.video_bitrate_bps,
            self.pacing_factor,
        )
    }
}

/// Where a load run is; bots change behaviour as it moves on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Joining and settling: media flows but latency is not recorded.
    Warmup,
    /// The measurement window: latency is recorded.
    Measure,
    /// Stop sending; keep receiving what is in flight.
    StopSending,
    /// Leave now.
    Leave,
}

/// A bot's link to the run it belongs to.
#[derive(Debug, Clone)]
pub struct BotControl {
    pub phase: watch::Receiver<Phase>,
    pub live: Arc<LiveCounters>,
}

/// What a bot saw.
#[derive(Debug, Default, Clone)]
pub struct BotReport {
    pub participant_id: Option<String>,
    /// From the first signaling request to the first media packet received.
    pub join_to_first_media: Option<Duration>,
    /// From the first signaling request to the first subscribe offer, and to
    /// the subscribe connection being up (ICE + DTLS): where join time goes.
    pub join_to_first_offer: Option<Duration>,
    pub join_to_subscribe_connected: Option<Duration>,
    pub sent_packets: u64,
    /// Per (sender index, kind); a simulcast video's layers are one stream
    /// (see [`LayerFollower`]).
    pub received: HashMap<(u32, MediaKind), StreamReport>,
    /// Per sender index: how its video moved between layers and pauses.
    pub video_layers: HashMap<u32, LayerFollower>,
    /// Simulcast video received per layer (q, h, f), all senders.
    pub received_layers: [LayerTotal; record::LAYERS],
    /// `track_paused` / `track_resumed` messages from the server.
    pub tracks_paused: u64,
    pub tracks_resumed: u64,
    /// Times the server asked this bot to stop one of its layers (dynacast).
    pub layers_stopped: u64,
    /// One-way latency of received packets in microseconds (all of them, or
    /// only those in the measurement window of a load run).
    pub latency: Histogram,
    /// `error` messages from the server.
    pub errors: Vec<String>,
    pub participants_left: Vec<String>,
}

impl BotReport {
    pub fn from_sender(&self, sender: u32, kind: MediaKind) -> Option<&StreamReport> {
        self.received.get(&(sender, kind))
    }

    /// Packets received, all streams.
    pub fn received_packets(&self) -> u64 {
        self.received.values().map(|s| s.packets).sum()
    }

    /// Packets lost, all streams.
    pub fn lost_packets(&self) -> u64 {
        self.received.values().map(|s| s.lost()).sum()
    }

    /// Layer switches, resumes after pauses and switches that did not
    /// start at a keyframe, all senders.
    pub fn layer_changes(&self) -> (u64, u64, u64) {
        self.video_layers.values().fold((0, 0, 0), |(s, r, u), f| {
            (s + f.switches, r + f.resumes, u + f.unclean_switches)
        })
    }
}

/// Why a bot stopped early.
#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error("websocket: {0}")]
    WebSocket(#[from] Box<tokio_tungstenite::tungstenite::Error>),
    #[error("http: {0}")]
    Http(#[from] http::HttpError),
    #[error("udp: {0}")]
    Io(#[from] std::io::Error),
    #[error("webrtc: {0}")]
    Rtc(#[from] str0m::RtcError),
    #[error("protocol: {0}")]
    Protocol(String),
}

impl From<tokio_tungstenite::tungstenite::Error> for BotError {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        BotError::WebSocket(Box::new(e))
    }
}

/// A helper task (signaling reader, long poll) that ends with its bot.
pub(crate) struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs a bot against Cascade until its duration is over; returns what it saw.
pub async fn run(opts: BotOptions) -> Result<BotReport, BotError> {
    cascade::run(opts).await
}
