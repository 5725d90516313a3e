//! Prometheus metrics: definitions, the registry, and how per-worker plain
//! counters get into it.
//!
//! The packet path never touches anything here. Each media core counts in
//! plain integers ([`CoreStats`]); its worker thread folds the growth since the
//! last fold into these counters about once a second and right before every
//! scrape ([`WorkerMetrics::fold`]), and observes histogram samples into
//! thread-local buffers ([`LocalHistogram`]) that it flushes at the same time.
//! The control plane counts signaling (atomics, off the packet path).
//!
//! - `counters`: the table of per-worker counters, which drives their
//!   registration, their zero series and the fold;
//! - `process`: the standard `process_*` metrics from `/proc/self`.
//!
//! Naming: `cascade_<subsystem>_<name>_<unit>`, counters end in `_total`.
//! Labels are low-cardinality: `worker` (index), `kind` (`audio`/`video`),
//! `reason`, `code` — never room or participant ids.
//!
//! For other signaling front ends (WHIP, WHEP): count each HTTP request with
//! [`Metrics::count_request`], each error with [`Metrics::count_error`], and
//! hold the guard from [`Metrics::open_session`] for as long as a session lives.

mod counters;
mod process;

use std::sync::Arc;
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::local::LocalHistogram;
use prometheus::{
    CounterVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::media::stats::{CoreStats, Sample};
use crate::media::views::Occupancy;
use cascade_protocol::{ErrorCode, CLIENT_MESSAGE_TYPES};
use counters::WorkerCounters;
use process::ProcessMetrics;

/// Label values of `kind`, in `CoreStats` array order.
pub const KINDS: [&str; 2] = ["audio", "video"];

/// Signaling request kinds counted from the start (so they show as 0): the
/// protocol's message types plus `invalid` for messages that did not parse.
const EXTRA_REQUEST_KINDS: &[&str] = &["invalid"];

/// Buckets of `cascade_worker_forward_delay_seconds`: fine below 2 ms, where
/// a healthy worker lives.
pub const FORWARD_DELAY_BUCKETS: [f64; 16] = [
    0.000025, 0.00005, 0.0001, 0.00015, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.0015, 0.002,
    0.003, 0.005, 0.01, 0.025, 0.1,
];

/// Content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A signaling front end, for session counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// The bundled client's WebSocket.
    Ws,
    /// A WHIP publisher.
    Whip,
    /// A WHEP viewer.
    Whep,
}

impl SessionKind {
    pub const ALL: [SessionKind; 3] = [SessionKind::Ws, SessionKind::Whip, SessionKind::Whep];

    pub fn as_str(&self) -> &'static str {
        match self {
            SessionKind::Ws => "ws",
            SessionKind::Whip => "whip",
            SessionKind::Whep => "whep",
        }
    }
}

/// Every metric Cascade exports, in one registry per server.
pub struct Metrics {
    registry: Registry,
    /// Everything a worker counts, from one table (`counters`).
    worker_counters: WorkerCounters,

    // media: what the cores hold and do
    rooms: IntGaugeVec,
    participants: IntGaugeVec,
    peer_connections: IntGaugeVec,
    published_tracks: IntGaugeVec,
    subscribed_tracks: IntGaugeVec,
    paused_videos: IntGaugeVec,
    dynacast_paused_layers: IntGaugeVec,
    ice_tcp_open: IntGaugeVec,
    join_duration: Histogram,

    // rtp

    // rtcp
    rtt: Histogram,

    // bandwidth estimation
    bwe: Histogram,

    // workers
    worker_forward_delay: HistogramVec,
    worker_busy: CounterVec,
    worker_timer_lag: HistogramVec,
    worker_ready: IntGaugeVec,
    worker_queue_depth: IntGaugeVec,

    // signaling
    signal_requests: IntCounterVec,
    signal_errors: IntCounterVec,
    sessions_total: IntCounterVec,
    active_sessions: IntGaugeVec,

    // process
    process: ProcessMetrics,
}

impl Metrics {
    /// A registry with every metric, labelled series pre-created for
    /// `workers` workers so that dashboards see zeros rather than gaps.
    pub fn new(workers: usize) -> Arc<Metrics> {
        let r = Registry::new();
        let m = Metrics {
            rooms: gauge(&r, "cascade_media_rooms", "Rooms hosted", &["worker"]),
            participants: gauge(&r, "cascade_media_participants", "Participants in rooms", &["worker"]),
            peer_connections: gauge(
                &r,
                "cascade_media_peer_connections",
                "Live peer connections (publish and subscribe)",
                &["worker"],
            ),
            published_tracks: gauge(&r, "cascade_media_published_tracks", "Tracks being published", &["worker", "kind"]),
            paused_videos: gauge(&r, "cascade_bwe_paused_tracks", "Remote videos paused for a subscriber (lowest layer does not fit, or no layer flows)", &["worker"]),
            dynacast_paused_layers: gauge(&r, "cascade_dynacast_paused_layers", "Simulcast layers publishers were asked not to send because no subscriber needs them", &["worker"]),
            ice_tcp_open: gauge(&r, "cascade_ice_tcp_open_connections", "Open ICE-TCP connections", &["worker"]),
            subscribed_tracks: gauge(
                &r,
                "cascade_media_subscribed_tracks",
                "Negotiated subscriptions (one per receiving participant and track)",
                &["worker", "kind"],
            ),
            join_duration: histogram(
                &r,
                "cascade_media_join_duration_seconds",
                "From a join reaching its worker to the first media packet forwarded to that participant",
                vec![0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0],
            ),


            rtt: histogram(
                &r,
                "cascade_rtcp_rtt_seconds",
                "Round-trip time to subscribers from RTCP receiver reports, per stream and stats interval",
                vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0],
            ),
            bwe: histogram(
                &r,
                "cascade_bwe_estimate_bits_per_second",
                "Send-side bandwidth estimate of subscribe connections, per connection and stats interval",
                vec![
                    100e3, 250e3, 500e3, 750e3, 1e6, 1.5e6, 2e6, 3e6, 5e6, 8e6, 12e6, 20e6, 50e6,
                ],
            ),

            worker_forward_delay: reg(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "cascade_worker_forward_delay_seconds",
                        "Time from the kernel receiving a datagram to the end of the send carrying what it caused (socket queueing + processing; one sample per datagram)",
                    )
                    .buckets(FORWARD_DELAY_BUCKETS.to_vec()),
                    &["worker"],
                ),
            ),
            worker_busy: reg(
                &r,
                CounterVec::new(
                    Opts::new(
                        "cascade_worker_busy_seconds_total",
                        "Time a media worker spent working rather than waiting (rate = load, 1.0 = saturated)",
                    ),
                    &["worker"],
                ),
            ),
            worker_timer_lag: reg(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "cascade_worker_timer_lag_seconds",
                        "How late a media worker woke for its timer (grows when it is overloaded)",
                    )
                    .buckets(vec![
                        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    ]),
                    &["worker"],
                ),
            ),
            worker_ready: gauge(
                &r,
                "cascade_worker_ready",
                "1 if the worker answered the last scrape or readiness check in time",
                &["worker"],
            ),
            worker_queue_depth: gauge(
                &r,
                "cascade_worker_command_queue_depth",
                "Signaling commands waiting for a media worker",
                &["worker"],
            ),

            signal_requests: counter(
                &r,
                "cascade_signal_requests_total",
                "Signaling requests by kind (WebSocket message type; WHIP/WHEP request)",
                &["kind"],
            ),
            signal_errors: counter(
                &r,
                "cascade_signal_errors_total",
                "Signaling errors answered, by protocol error code",
                &["code"],
            ),
            sessions_total: counter(
                &r,
                "cascade_signal_sessions_total",
                "Signaling sessions opened, by kind (ws, whip, whep)",
                &["kind"],
            ),
            active_sessions: gauge(
                &r,
                "cascade_signal_active_sessions",
                "Signaling sessions open now, by kind (ws, whip, whep)",
                &["kind"],
            ),

            worker_counters: WorkerCounters::register(&r, workers),
            process: ProcessMetrics::new(&r),
            registry: r,
        };
        let build = IntGauge::with_opts(
            Opts::new(
                "cascade_build_info",
                "Always 1; the labels say which build runs",
            )
            .const_label("version", env!("CARGO_PKG_VERSION")),
        )
        .expect("valid metric options");
        build.set(1);
        reg(&m.registry, Ok::<_, prometheus::Error>(build));
        m.precreate(workers);
        Arc::new(m)
    }

    /// Creates every labelled series that dashboards expect, at zero (the
    /// worker counters' own are made by `WorkerCounters::register`).
    fn precreate(&self, workers: usize) {
        for w in 0..workers {
            let w = w.to_string();
            let w = w.as_str();
            for v in [
                &self.rooms,
                &self.participants,
                &self.peer_connections,
                &self.paused_videos,
                &self.dynacast_paused_layers,
                &self.ice_tcp_open,
                &self.worker_ready,
                &self.worker_queue_depth,
            ] {
                v.with_label_values(&[w]);
            }
            self.worker_busy.with_label_values(&[w]);
            self.worker_timer_lag.with_label_values(&[w]);
            self.worker_forward_delay.with_label_values(&[w]);
            for kind in KINDS {
                for v in [&self.published_tracks, &self.subscribed_tracks] {
                    v.with_label_values(&[w, kind]);
                }
            }
        }
        for kind in CLIENT_MESSAGE_TYPES.iter().chain(EXTRA_REQUEST_KINDS) {
            self.signal_requests.with_label_values(&[kind]);
        }
        for code in ErrorCode::ALL {
            self.signal_errors.with_label_values(&[code.as_str()]);
        }
        for kind in SessionKind::ALL {
            self.sessions_total.with_label_values(&[kind.as_str()]);
            self.active_sessions.with_label_values(&[kind.as_str()]);
        }
    }

    /// The registry, in the Prometheus text format.
    pub fn encode(&self) -> String {
        self.process.refresh();
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            // Only fails on metric families without metrics of their type,
            // which the typed constructors above cannot produce.
            .unwrap_or_default()
    }

    /// Counts one signaling request of `kind` (a message type, `whip`, ...).
    pub fn count_request(&self, kind: &str) {
        self.signal_requests.with_label_values(&[kind]).inc();
    }

    /// Counts one signaling error answered with `code` (a protocol error
    /// code such as `invalid_sdp`, or a front end's own).
    pub fn count_error(&self, code: &str) {
        self.signal_errors.with_label_values(&[code]).inc();
    }

    /// Counts one signaling error answered with a protocol [`ErrorCode`].
    pub fn count_error_code(&self, code: ErrorCode) {
        self.count_error(code.as_str());
    }

    /// Counts a session of `kind` as opened; it counts as closed when the
    /// returned guard is dropped.
    pub fn open_session(self: &Arc<Self>, kind: SessionKind) -> SessionGuard {
        self.sessions_total
            .with_label_values(&[kind.as_str()])
            .inc();
        self.active_sessions
            .with_label_values(&[kind.as_str()])
            .inc();
        SessionGuard {
            metrics: self.clone(),
            kind,
        }
    }

    /// Sessions of `kind` open now.
    pub fn active_sessions(&self, kind: SessionKind) -> i64 {
        self.active_sessions
            .with_label_values(&[kind.as_str()])
            .get()
    }

    /// Records whether worker `index` answered in time and how many commands
    /// wait in its queue.
    pub fn set_worker_state(&self, index: usize, ready: bool, queue_depth: usize) {
        let w = index.to_string();
        self.worker_ready.with_label_values(&[&w]).set(ready as i64);
        self.worker_queue_depth
            .with_label_values(&[&w])
            .set(queue_depth as i64);
    }

    /// The fold state for worker `index`, owned by that worker's thread.
    pub fn worker(self: &Arc<Self>, index: usize) -> WorkerMetrics {
        let worker = index.to_string();
        WorkerMetrics {
            rtt: self.rtt.local(),
            bwe: self.bwe.local(),
            join_duration: self.join_duration.local(),
            timer_lag: self.worker_timer_lag.with_label_values(&[&worker]).local(),
            forward_delay: self
                .worker_forward_delay
                .with_label_values(&[&worker])
                .local(),
            metrics: self.clone(),
            worker,
            folded: CoreStats::default(),
            folded_io: WorkerIo::default(),
        }
    }
}

/// Keeps a session counted as active until dropped.
pub struct SessionGuard {
    metrics: Arc<Metrics>,
    kind: SessionKind,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.metrics
            .active_sessions
            .with_label_values(&[self.kind.as_str()])
            .dec();
    }
}

/// Plain counters a worker keeps about its own I/O and loop.
#[derive(Debug, Default, Clone)]
pub struct WorkerIo {
    pub sent_datagrams: u64,
    pub sent_bytes: u64,
    pub send_errors: u64,
    /// Send system calls (one `sendmmsg` carries many datagrams).
    pub send_calls: u64,
    /// Datagrams longer than the receive buffer, dropped.
    pub recv_truncated: u64,
    /// Time spent handling wake-ups, as opposed to waiting for them.
    pub busy: Duration,
    pub iterations: u64,
    /// The ICE-TCP side's counters (all zero with ICE-TCP off).
    pub tcp: crate::worker::ice_tcp::TcpStats,
    /// Open ICE-TCP connections.
    pub tcp_open: usize,
}

/// One worker's side of the metrics: what it already folded, and its
/// thread-local histogram buffers.
pub struct WorkerMetrics {
    metrics: Arc<Metrics>,
    worker: String,
    folded: CoreStats,
    folded_io: WorkerIo,
    rtt: LocalHistogram,
    bwe: LocalHistogram,
    join_duration: LocalHistogram,
    timer_lag: LocalHistogram,
    forward_delay: LocalHistogram,
}

impl WorkerMetrics {
    /// Buffers a sample from the core (no atomics, no allocation).
    pub fn observe(&mut self, sample: Sample) {
        match sample {
            Sample::Rtt(d) => self.rtt.observe(d.as_secs_f64()),
            Sample::BandwidthEstimate(bps) => self.bwe.observe(bps),
            Sample::JoinToFirstMedia(d) => self.join_duration.observe(d.as_secs_f64()),
        }
    }

    /// Buffers how late the worker woke for a timer.
    pub fn timer_lag(&mut self, lag: Duration) {
        self.timer_lag.observe(lag.as_secs_f64());
    }

    /// Buffers one datagram's time from kernel receipt to the end of the
    /// send that followed its processing.
    pub fn forward_delay(&mut self, delay: Duration) {
        self.forward_delay.observe(delay.as_secs_f64());
    }

    /// Adds everything counted since the last fold to the registry, sets the
    /// gauges and flushes the histogram buffers.
    pub fn fold(&mut self, stats: &CoreStats, io: &WorkerIo, occupancy: &Occupancy) {
        let m = &*self.metrics;
        let w = self.worker.as_str();
        m.worker_counters
            .fold(w, (stats, io), (&self.folded, &self.folded_io));
        let busy = io.busy.saturating_sub(self.folded_io.busy).as_secs_f64();
        if busy > 0.0 {
            m.worker_busy.with_label_values(&[w]).inc_by(busy);
        }
        for (i, kind) in KINDS.into_iter().enumerate() {
            let l = [w, kind];
            m.published_tracks
                .with_label_values(&l)
                .set(occupancy.published_tracks[i] as i64);
            m.subscribed_tracks
                .with_label_values(&l)
                .set(occupancy.subscribed_tracks[i] as i64);
        }
        m.rooms.with_label_values(&[w]).set(occupancy.rooms as i64);
        m.participants
            .with_label_values(&[w])
            .set(occupancy.participants as i64);
        m.peer_connections
            .with_label_values(&[w])
            .set(occupancy.peers as i64);
        m.paused_videos
            .with_label_values(&[w])
            .set(occupancy.paused_videos as i64);
        m.dynacast_paused_layers
            .with_label_values(&[w])
            .set(occupancy.dynacast_paused_layers as i64);
        m.ice_tcp_open
            .with_label_values(&[w])
            .set(io.tcp_open as i64);

        self.rtt.flush();
        self.bwe.flush();
        self.join_duration.flush();
        self.timer_lag.flush();
        self.forward_delay.flush();
        self.folded.clone_from(stats);
        self.folded_io.clone_from(io);
    }
}

/// Registers `metric` and returns it. Names are constants: a clash is a bug
/// that every test run would hit, hence the panic.
fn reg<M: Collector + Clone + 'static>(r: &Registry, metric: prometheus::Result<M>) -> M {
    let metric = metric.expect("valid metric options");
    r.register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    reg(r, IntCounterVec::new(Opts::new(name, help), labels))
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    reg(r, IntGaugeVec::new(Opts::new(name, help), labels))
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    reg(
        r,
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::stats::DropReason;

    fn sample_value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn fold_adds_only_the_growth_and_sets_gauges() {
        let metrics = Metrics::new(1);
        let mut worker = metrics.worker(0);
        let mut stats = CoreStats::default();
        stats.count_rtp_in(str0m::media::MediaKind::Video, 1000);
        stats.count_dropped(str0m::media::MediaKind::Audio, DropReason::TooOld);
        stats.rtp_dropped += 2; // unknown streams
        let occupancy = Occupancy {
            rooms: 1,
            participants: 2,
            ..Occupancy::default()
        };
        worker.fold(&stats, &WorkerIo::default(), &occupancy);
        stats.count_rtp_in(str0m::media::MediaKind::Video, 500);
        worker.observe(Sample::Rtt(Duration::from_millis(20)));
        worker.fold(&stats, &WorkerIo::default(), &Occupancy::default());

        let text = metrics.encode();
        let v = |s: &str| sample_value(&text, s).unwrap_or_else(|| panic!("{s} missing:\n{text}"));
        assert_eq!(
            v(r#"cascade_rtp_received_packets_total{kind="video",worker="0"}"#),
            2.0
        );
        assert_eq!(
            v(r#"cascade_rtp_received_bytes_total{kind="video",worker="0"}"#),
            1500.0
        );
        assert_eq!(
            v(r#"cascade_rtp_dropped_packets_total{kind="audio",reason="too_old",worker="0"}"#),
            1.0
        );
        assert_eq!(
            v(
                r#"cascade_rtp_dropped_packets_total{kind="unknown",reason="unknown_stream",worker="0"}"#
            ),
            2.0
        );
        assert_eq!(
            v(r#"cascade_media_rooms{worker="0"}"#),
            0.0,
            "gauges follow the last fold"
        );
        assert_eq!(v("cascade_rtcp_rtt_seconds_count"), 1.0);
        assert_eq!(v(r#"cascade_signal_errors_total{code="bad_message"}"#), 0.0);
    }

    #[test]
    fn session_guard_counts_open_sessions() {
        let metrics = Metrics::new(1);
        let guard = metrics.open_session(SessionKind::Whip);
        let text = metrics.encode();
        assert_eq!(
            sample_value(&text, r#"cascade_signal_active_sessions{kind="whip"}"#),
            Some(1.0)
        );
        drop(guard);
        let text = metrics.encode();
        assert_eq!(
            sample_value(&text, r#"cascade_signal_active_sessions{kind="whip"}"#),
            Some(0.0)
        );
        assert_eq!(
            sample_value(&text, r#"cascade_signal_sessions_total{kind="whip"}"#),
            Some(1.0)
        );
    }
}
