//! The result of a load run: what the bots saw and what the server spent,
//! as a plain table for people and JSON for scripts, and two runs side by
//! side with their ratio.
//!
//! "Forwarded" means received by bots: a packet counts once per subscriber
//! that got it, which is what an SFU is paid to do. Rates and CPU cost are
//! taken over the measurement window only; loss both over the whole run
//! (joins and renegotiations included) and from the window's start on; bit
//! rates count RTP payload bytes. With simulcast, a video is one stream
//! whichever layer arrives; the layers received are reported beside.

use serde::Serialize;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::load::{LoadOptions, PlannedBot, Scenario};
use super::procfs::{ProcSample, ProcUsage};
use super::record::{Histogram, LiveSnapshot, LAYERS};
use super::scrape::{Buckets, ForwardDelay};
use super::simulcast::Layer;
use super::BotReport;

/// What the runner measured at the edges of the window.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    pub seconds: f64,
    pub start: LiveSnapshot,
    pub end: LiveSnapshot,
    /// Server samples: before anyone joined, window start, window end.
    pub server: Option<(ProcSample, ProcSample, ProcSample)>,
    /// The load generator's own samples at the window edges.
    pub own: Option<(ProcSample, ProcSample)>,
    /// The server's forward-delay histogram over the window.
    pub server_delay: Option<Buckets>,
    /// Busy CPU seconds of the whole machine during the window.
    pub machine_busy_seconds: Option<f64>,
    /// From the first bot starting to everyone receiving everything.
    pub join_seconds: f64,
    /// When the window closed.
    pub end_at: Instant,
}

/// A stream whose last packet arrived this long before the window closed
/// has stalled (the sender or the subscription went away).
const STALL: Duration = Duration::from_secs(1);

/// Quantiles in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Millis {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// Server resource use, when the server is a local process.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct ServerUse {
    /// CPU seconds (user + system, all threads) during the window.
    pub cpu_seconds: f64,
    /// Average cores busy during the window.
    pub cores: f64,
    /// CPU microseconds per forwarded packet.
    pub cpu_us_per_packet: f64,
    /// The kernel's part of it (system calls, the network stack; on
    /// loopback also delivering into the receivers' sockets).
    pub kernel_us_per_packet: f64,
    pub rss_mib: f64,
    /// RSS before any bot joined.
    pub rss_baseline_mib: f64,
    /// (RSS - baseline) / participants.
    pub rss_per_participant_kib: f64,
}

/// What subscribers received of one simulcast layer.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct LayerReception {
    pub layer: Layer,
    /// In the window.
    pub packets_per_second: f64,
    pub bits_per_second: f64,
    /// This layer's part of the simulcast packets received in the window.
    pub share: f64,
    /// Over the whole run.
    pub packets: u64,
}

/// One run, summarised.
#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    pub target: String,
    pub scenario: Scenario,
    pub participants: usize,
    pub rooms: usize,
    pub publishers: usize,
    pub video_bitrate_bps: u64,
    pub video_packet_bytes: usize,
    /// Video pacing as a multiple of its bitrate (0: each frame at once).
    pub pacing_factor: f64,
    /// Publishers sent three simulcast layers (q, h, f).
    pub simulcast: bool,
    /// The largest layer subscribers asked for (`video_preference`), if any.
    pub max_layer: Option<Layer>,
    /// Simulcast only: what subscribers received of each layer, q to f.
    pub layers: Vec<LayerReception>,
    /// Changes of a video's layer on its way to a subscriber, resumes after
    /// the server paused it, and switches not at a keyframe (always a bug).
    pub layer_switches: u64,
    pub layer_resumes: u64,
    pub unclean_layer_switches: u64,
    /// `track_paused` / `track_resumed` messages bots got.
    pub tracks_paused: u64,
    pub tracks_resumed: u64,
    /// Layers publishers were told to stop (dynacast `publish_layers`).
    pub layers_stopped: u64,
    pub bots_failed: usize,
    /// Subscribers that never received every stream they expected.
    pub bots_incomplete: usize,
    /// Streams that stopped arriving before the window closed.
    pub streams_stalled: usize,
    /// Streams received that the bot should not get (another room's, its
    /// own): always a bug.
    pub streams_unexpected: usize,
    /// A few distinct error messages, if any.
    pub errors: Vec<String>,
    pub join_phase_seconds: f64,
    pub window_seconds: f64,
    pub sent_packets_per_second: f64,
    /// Forwarded (received by bots) during the window.
    pub packets_per_second: f64,
    pub bits_per_second: f64,
    pub received_packets: u64,
    /// Lost over the whole run, joins included.
    pub lost_packets: u64,
    pub loss_ratio: f64,
    /// Lost from the start of the measurement window on.
    pub window_lost_packets: u64,
    /// One-way latency sender -> SFU -> receiver, in the window.
    pub latency_ms: Option<Millis>,
    /// Signaling start to first media.
    pub join_ms: Option<Millis>,
    /// Signaling start to the first subscribe offer, and to the subscribe
    /// connection being up (ICE + DTLS): where join time goes.
    pub first_offer_ms: Option<Millis>,
    pub subscribe_connected_ms: Option<Millis>,
    pub server: Option<ServerUse>,
    /// The server's own measure of the delay it adds (Cascade only).
    pub server_forward_delay_ms: Option<ForwardDelay>,
    /// Cores the load generator itself used during the window.
    pub loadgen_cores: Option<f64>,
    /// Cores busy with anything else on the machine during the window
    /// (other processes compete with the server and the bots: results
    /// with a large value here are not comparable).
    pub background_cores: Option<f64>,
}

impl LoadResult {
    pub(crate) fn new(
        target: &str,
        opts: &LoadOptions,
        bots: &[PlannedBot],
        reports: &[Result<BotReport, String>],
        w: &Window,
    ) -> Self {
        let mut latency = Histogram::default();
        let mut joins = Histogram::default();
        let mut offers = Histogram::default();
        let mut connects = Histogram::default();
        let mut errors: Vec<String> = Vec::new();
        let (mut lost, mut received, mut failed, mut incomplete) = (0, 0, 0, 0);
        let (mut stalled, mut unexpected, mut window_lost) = (0, 0, 0);
        let (mut switches, mut resumes, mut unclean) = (0, 0, 0);
        let (mut paused, mut resumed, mut layers_stopped) = (0, 0, 0);
        let mut layer_packets = [0u64; LAYERS];
        let stall_before = w.end_at.checked_sub(STALL).unwrap_or(w.end_at);
        for (bot, report) in bots.iter().zip(reports) {
            let report = match report {
                Ok(r) => r,
                Err(e) => {
                    failed += 1;
                    note(&mut errors, e);
                    continue;
                }
            };
            latency.merge(&report.latency);
            stalled += report
                .received
                .values()
                .filter(|s| s.last_at.is_some_and(|t| t < stall_before))
                .count();
            lost += report.lost_packets();
            window_lost += report
                .received
                .values()
                .filter_map(|s| s.window_first.map(|f| s.lost_from(f)))
                .sum::<u64>();
            received += report.received_packets();
            let (s, r, u) = report.layer_changes();
            (switches, resumes, unclean) = (switches + s, resumes + r, unclean + u);
            paused += report.tracks_paused;
            resumed += report.tracks_resumed;
            layers_stopped += report.layers_stopped;
            for (sum, layer) in layer_packets.iter_mut().zip(&report.received_layers) {
                *sum += layer.packets;
            }
            for e in &report.errors {
                note(&mut errors, e);
            }
            unexpected += report.received.len().saturating_sub(bot.expected_streams);
            if bot.expected_streams > 0 {
                for (h, d) in [
                    (&mut joins, report.join_to_first_media),
                    (&mut offers, report.join_to_first_offer),
                    (&mut connects, report.join_to_subscribe_connected),
                ] {
                    if let Some(d) = d {
                        h.record(d.as_micros() as u64);
                    }
                }
                if report.received.len() < bot.expected_streams {
                    incomplete += 1;
                }
            }
        }
        let secs = w.seconds.max(1e-9);
        let layers = match opts.simulcast {
            true => layer_receptions(&w.start, &w.end, secs, &layer_packets),
            false => Vec::new(),
        };
        let loadgen_cores = w.own.map(|(a, b)| ProcUsage::between(&a, &b).cores());
        let window_packets = w.end.received_packets - w.start.received_packets;
        let server = w.server.map(|(baseline, start, end)| {
            let usage = ProcUsage::between(&start, &end);
            let participants = bots.len().max(1) as f64;
            ServerUse {
                cpu_seconds: usage.cpu_seconds,
                cores: usage.cores(),
                cpu_us_per_packet: usage.cpu_seconds * 1e6 / window_packets.max(1) as f64,
                kernel_us_per_packet: usage.system_seconds * 1e6 / window_packets.max(1) as f64,
                rss_mib: mib(end.rss_bytes),
                rss_baseline_mib: mib(baseline.rss_bytes),
                rss_per_participant_kib: end.rss_bytes.saturating_sub(baseline.rss_bytes) as f64
                    / 1024.0
                    / participants,
            }
        });
        LoadResult {
            target: target.to_string(),
            scenario: opts.scenario,
            participants: bots.len(),
            rooms: bots.iter().map(|b| b.room).max().map_or(0, |r| r + 1),
            publishers: bots.iter().filter(|b| b.audio || b.video).count(),
            video_bitrate_bps: opts.video_bitrate_bps,
            video_packet_bytes: opts.video_packet_bytes,
            pacing_factor: opts.pacing_factor,
            simulcast: opts.simulcast,
            max_layer: opts.max_layer,
            layers,
            layer_switches: switches,
            layer_resumes: resumes,
            unclean_layer_switches: unclean,
            tracks_paused: paused,
            tracks_resumed: resumed,
            layers_stopped,
            bots_failed: failed,
            bots_incomplete: incomplete,
            streams_stalled: stalled,
            streams_unexpected: unexpected,
            errors,
            join_phase_seconds: w.join_seconds,
            window_seconds: w.seconds,
            sent_packets_per_second: (w.end.sent_packets - w.start.sent_packets) as f64 / secs,
            packets_per_second: window_packets as f64 / secs,
            bits_per_second: (w.end.received_bytes - w.start.received_bytes) as f64 * 8.0 / secs,
            received_packets: received,
            lost_packets: lost,
            loss_ratio: lost as f64 / (received + lost).max(1) as f64,
            window_lost_packets: window_lost,
            latency_ms: millis(&latency),
            join_ms: millis(&joins),
            first_offer_ms: millis(&offers),
            subscribe_connected_ms: millis(&connects),
            server,
            server_forward_delay_ms: w.server_delay.as_ref().and_then(Buckets::summary),
            loadgen_cores,
            background_cores: w.machine_busy_seconds.map(|busy| {
                let ours =
                    server.map_or(0.0, |s| s.cpu_seconds) + loadgen_cores.unwrap_or(0.0) * secs;
                ((busy - ours) / secs).max(0.0)
            }),
        }
    }

    /// Whether every bot ran, every subscriber got everything, nothing was
    /// lost in the measurement window and every layer switch was at a
    /// keyframe.
    pub fn is_clean(&self) -> bool {
        self.bots_failed == 0
            && self.bots_incomplete == 0
            && self.streams_stalled == 0
            && self.streams_unexpected == 0
            && self.window_lost_packets == 0
            && self.unclean_layer_switches == 0
    }

    /// A human-readable table.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} · {:?} · {} participants in {} room(s), {} publishing · {} · {}",
            self.target,
            self.scenario,
            self.participants,
            self.rooms,
            self.publishers,
            self.video_label(),
            pacing_label(self.pacing_factor)
        );
        for (name, value) in self.rows().into_iter().chain(self.simulcast_rows()) {
            let _ = writeln!(out, "  {name:<28} {value}");
        }
        out
    }

    /// How the bots sent and asked for video, for table headers.
    fn video_label(&self) -> String {
        match (self.simulcast, self.max_layer) {
            (false, None) => "single-layer video".to_string(),
            (false, Some(l)) => format!("single-layer video, subscribers ask ≤ {}", l.rid()),
            (true, None) => "simulcast q/h/f".to_string(),
            (true, Some(l)) => format!("simulcast q/h/f, subscribers ask ≤ {}", l.rid()),
        }
    }

    /// The rows only a simulcast run has.
    fn simulcast_rows(&self) -> Vec<(&'static str, String)> {
        if !self.simulcast {
            return Vec::new();
        }
        let layers = self
            .layers
            .iter()
            .map(|l| {
                format!(
                    "{} {:.0} %, {:.1} Mbit/s",
                    l.layer.rid(),
                    l.share * 100.0,
                    l.bits_per_second / 1e6
                )
            })
            .collect::<Vec<_>>()
            .join(" · ");
        vec![
            ("layers received (window)", layers),
            (
                "switches / resumes / unclean",
                format!(
                    "{} / {} / {}",
                    self.layer_switches, self.layer_resumes, self.unclean_layer_switches
                ),
            ),
            ("layers stopped (dynacast)", self.layers_stopped.to_string()),
        ]
    }

    fn rows(&self) -> Vec<(&'static str, String)> {
        let opt = |v: Option<f64>, unit: &str, digits: usize| {
            v.map_or_else(|| "-".to_string(), |v| format!("{v:.digits$}{unit}"))
        };
        let q = |m: Option<Millis>| {
            m.map_or_else(
                || "-".to_string(),
                |m| format!("{:.2} / {:.2} / {:.2} ms", m.p50, m.p95, m.p99),
            )
        };
        let s = self.server;
        vec![
            (
                "bots failed / incomplete",
                format!("{} / {}", self.bots_failed, self.bots_incomplete),
            ),
            (
                "streams stalled / unexpected",
                format!("{} / {}", self.streams_stalled, self.streams_unexpected),
            ),
            (
                "forwarded packets/s",
                format!("{:.0}", self.packets_per_second),
            ),
            (
                "forwarded bits/s",
                format!("{:.1} Mbit/s", self.bits_per_second / 1e6),
            ),
            (
                "sent packets/s",
                format!("{:.0}", self.sent_packets_per_second),
            ),
            (
                "loss (whole run)",
                format!(
                    "{} of {} ({:.4} %)",
                    self.lost_packets,
                    self.received_packets + self.lost_packets,
                    self.loss_ratio * 100.0
                ),
            ),
            ("lost in the window", self.window_lost_packets.to_string()),
            (
                "tracks paused / resumed",
                format!("{} / {}", self.tracks_paused, self.tracks_resumed),
            ),
            ("latency p50 / p95 / p99", q(self.latency_ms)),
            ("join p50 / p95 / p99", q(self.join_ms)),
            (
                "join p50: offer / connected",
                match (self.first_offer_ms, self.subscribe_connected_ms) {
                    (Some(o), Some(c)) => format!("{:.1} / {:.1} ms", o.p50, c.p50),
                    _ => "-".to_string(),
                },
            ),
            ("server cores", opt(s.map(|s| s.cores), "", 2)),
            (
                "server CPU per packet",
                s.map_or("-".to_string(), |s| {
                    format!(
                        "{:.2} µs (user {:.2}, kernel {:.2})",
                        s.cpu_us_per_packet,
                        s.cpu_us_per_packet - s.kernel_us_per_packet,
                        s.kernel_us_per_packet
                    )
                }),
            ),
            (
                "server delay p50 / p90 / p99",
                self.server_forward_delay_ms.map_or("-".to_string(), |d| {
                    format!("{:.3} / {:.3} / {:.3} ms", d.p50, d.p90, d.p99)
                }),
            ),
            ("server RSS", opt(s.map(|s| s.rss_mib), " MiB", 1)),
            (
                "server RSS per participant",
                opt(s.map(|s| s.rss_per_participant_kib), " KiB", 0),
            ),
            ("load generator cores", opt(self.loadgen_cores, "", 2)),
            (
                "other load on the machine",
                opt(self.background_cores, " cores", 2),
            ),
        ]
    }
}

/// Two runs of the same scenario, side by side.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub cascade: LoadResult,
    pub janus: LoadResult,
    /// Janus divided by Cascade, for the figures where both exist.
    pub janus_over_cascade: Ratios,
}

/// Janus / Cascade.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Ratios {
    pub cpu_per_packet: Option<f64>,
    pub rss_per_participant: Option<f64>,
    pub latency_p50: Option<f64>,
    pub latency_p99: Option<f64>,
    pub packets_per_second: Option<f64>,
}

impl Comparison {
    pub fn new(cascade: LoadResult, janus: LoadResult) -> Self {
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(j), Some(c)) if c > 0.0 => Some(j / c),
            _ => None,
        };
        let server = |r: &LoadResult, f: fn(&ServerUse) -> f64| r.server.as_ref().map(f);
        let lat = |r: &LoadResult, f: fn(&Millis) -> f64| r.latency_ms.as_ref().map(f);
        let janus_over_cascade = Ratios {
            cpu_per_packet: ratio(
                server(&janus, |s| s.cpu_us_per_packet),
                server(&cascade, |s| s.cpu_us_per_packet),
            ),
            rss_per_participant: ratio(
                server(&janus, |s| s.rss_per_participant_kib),
                server(&cascade, |s| s.rss_per_participant_kib),
            ),
            latency_p50: ratio(lat(&janus, |m| m.p50), lat(&cascade, |m| m.p50)),
            latency_p99: ratio(lat(&janus, |m| m.p99), lat(&cascade, |m| m.p99)),
            packets_per_second: ratio(
                Some(janus.packets_per_second),
                Some(cascade.packets_per_second),
            ),
        };
        Comparison {
            cascade,
            janus,
            janus_over_cascade,
        }
    }

    /// Both runs in one table with a ratio column.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let c = &self.cascade;
        let _ = writeln!(
            out,
            "{:?} · {} participants in {} room(s), {} publishing · {:.0} s window · {}",
            c.scenario,
            c.participants,
            c.rooms,
            c.publishers,
            c.window_seconds,
            pacing_label(c.pacing_factor)
        );
        let _ = writeln!(
            out,
            "  video: cascade {}; janus {}",
            c.video_label(),
            self.janus.video_label()
        );
        let _ = writeln!(
            out,
            "  {:<28} {:<30} {:<30} janus/cascade",
            "", "cascade", "janus"
        );
        let r = self.janus_over_cascade;
        let ratios = [
            ("forwarded packets/s", r.packets_per_second),
            ("server CPU per packet", r.cpu_per_packet),
            ("server RSS per participant", r.rss_per_participant),
        ];
        for ((name, a), (_, b)) in self.cascade.rows().into_iter().zip(self.janus.rows()) {
            let ratio = ratios
                .iter()
                .find(|(n, _)| *n == name)
                .and_then(|(_, v)| *v)
                .map_or_else(String::new, |v| format!("{v:.2}x"));
            let _ = writeln!(out, "  {name:<28} {a:<30} {b:<30} {ratio}");
        }
        for (name, value) in self.cascade.simulcast_rows() {
            let _ = writeln!(out, "  {name:<28} {value:<30} {:<30}", "(single layer)");
        }
        if let (Some(p50), Some(p99)) = (r.latency_p50, r.latency_p99) {
            let _ = writeln!(out, "  latency ratio p50 {p50:.2}x, p99 {p99:.2}x");
        }
        out
    }
}

/// Per-layer reception over the window (from the live counters) and the
/// whole run (`packets`).
fn layer_receptions(
    start: &LiveSnapshot,
    end: &LiveSnapshot,
    secs: f64,
    packets: &[u64; LAYERS],
) -> Vec<LayerReception> {
    let window = |l: usize| end.received_layer_packets[l] - start.received_layer_packets[l];
    let total: u64 = (0..LAYERS).map(window).sum();
    Layer::ALL
        .into_iter()
        .map(|layer| {
            let l = layer.index();
            let bytes = end.received_layer_bytes[l] - start.received_layer_bytes[l];
            LayerReception {
                layer,
                packets_per_second: window(l) as f64 / secs,
                bits_per_second: bytes as f64 * 8.0 / secs,
                share: window(l) as f64 / total.max(1) as f64,
                packets: packets[l],
            }
        })
        .collect()
}

fn note(errors: &mut Vec<String>, e: &str) {
    if errors.len() < 5 && !errors.iter().any(|x| x == e) {
        errors.push(e.to_string());
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn millis(h: &Histogram) -> Option<Millis> {
    let ms = |q: f64| h.quantile(q).unwrap_or(0) as f64 / 1000.0;
    (h.count() > 0).then(|| Millis {
        p50: ms(0.5),
        p95: ms(0.95),
        p99: ms(0.99),
        max: h.max() as f64 / 1000.0,
    })
}

/// How the bots paced their video, for table headers.
fn pacing_label(factor: f64) -> String {
    if factor > 0.0 {
        format!("video paced at {factor}x its bitrate")
    } else {
        "video unpaced (frames sent at once)".to_string()
    }
}
