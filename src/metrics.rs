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
//! Naming: `cascade_<subsystem>_<name>_<unit>`, counters end in `_total`.
//! Labels are low-cardinality: `worker` (index), `kind` (`audio`/`video`),
//! `reason`, `code` — never room or participant ids.
//!
//! For other signaling front ends (WHIP, WHEP): count each HTTP request with
//! [`Metrics::count_request`], each error with [`Metrics::count_error`], and
//! hold the guard from [`Metrics::open_session`] for as long as a session lives.

use std::sync::Arc;
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::local::LocalHistogram;
use prometheus::{
    Counter, CounterVec, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::media::stats::{CoreStats, DropReason, Sample};
use crate::media::views::Occupancy;
use crate::media::LeaveReason;
use cascade_protocol::{ErrorCode, CLIENT_MESSAGE_TYPES};

/// Label values of `kind`, in `CoreStats` array order.
pub const KINDS: [&str; 2] = ["audio", "video"];

/// Signaling request kinds counted from the start (so they show as 0): the
/// protocol's message types plus `invalid` for messages that did not parse.
const EXTRA_REQUEST_KINDS: &[&str] = &["invalid"];

/// Protocol error codes (docs/PROTOCOL.md), counted from the start.
const ERROR_CODES: &[&str] = &[
    "bad_message",
    "unknown_type",
    "unsupported_version",
    "invalid_room",
    "invalid_name",
    "not_joined",
    "already_joined",
    "invalid_sdp",
    "invalid_candidate",
    "no_pending_offer",
    "unknown_track",
    "server_busy",
    "fatal",
];

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

    // media: what the cores hold and do
    rooms: IntGaugeVec,
    participants: IntGaugeVec,
    peer_connections: IntGaugeVec,
    published_tracks: IntGaugeVec,
    subscribed_tracks: IntGaugeVec,
    joins: IntCounterVec,
    leaves: IntCounterVec,
    subscribe_offers: IntCounterVec,
    connections: IntCounterVec,
    peer_errors: IntCounterVec,
    join_duration: Histogram,

    // rtp
    rtp_received_packets: IntCounterVec,
    rtp_received_bytes: IntCounterVec,
    rtp_forwarded_packets: IntCounterVec,
    rtp_forwarded_bytes: IntCounterVec,
    rtp_sent_packets: IntCounterVec,
    rtp_sent_bytes: IntCounterVec,
    rtp_retransmitted_packets: IntCounterVec,
    rtp_dropped_packets: IntCounterVec,
    rtp_subscriber_lost_packets: IntCounterVec,

    // rtcp
    nacks_received: IntCounterVec,
    nacks_sent: IntCounterVec,
    plis_received: IntCounterVec,
    firs_received: IntCounterVec,
    keyframe_requests_sent: IntCounterVec,
    rtt: Histogram,

    // bandwidth estimation
    bwe: Histogram,

    // workers
    worker_received_datagrams: IntCounterVec,
    worker_received_bytes: IntCounterVec,
    worker_sent_datagrams: IntCounterVec,
    worker_sent_bytes: IntCounterVec,
    worker_dropped_datagrams: IntCounterVec,
    worker_send_calls: IntCounterVec,
    worker_forward_delay: HistogramVec,
    worker_busy: CounterVec,
    worker_iterations: IntCounterVec,
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
            subscribed_tracks: gauge(
                &r,
                "cascade_media_subscribed_tracks",
                "Negotiated subscriptions (one per receiving participant and track)",
                &["worker", "kind"],
            ),
            joins: counter(&r, "cascade_media_joins_total", "Participants that joined a room", &["worker"]),
            leaves: counter(&r, "cascade_media_leaves_total", "Participants that left, by reason", &["worker", "reason"]),
            subscribe_offers: counter(
                &r,
                "cascade_media_subscribe_offers_total",
                "Server-initiated subscribe offers (renegotiations)",
                &["worker"],
            ),
            connections: counter(
                &r,
                "cascade_media_subscribe_connections_total",
                "Subscribe connections that came up (ICE + DTLS), WHEP viewers included",
                &["worker"],
            ),
            peer_errors: counter(
                &r,
                "cascade_media_peer_errors_total",
                "Peer connections that failed inside str0m (participant removed)",
                &["worker"],
            ),
            join_duration: histogram(
                &r,
                "cascade_media_join_duration_seconds",
                "From a join reaching its worker to the first media packet forwarded to that participant",
                vec![0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0],
            ),

            rtp_received_packets: counter(
                &r,
                "cascade_rtp_received_packets_total",
                "RTP packets received from publishers",
                &["worker", "kind"],
            ),
            rtp_received_bytes: counter(
                &r,
                "cascade_rtp_received_bytes_total",
                "RTP payload bytes received from publishers",
                &["worker", "kind"],
            ),
            rtp_forwarded_packets: counter(
                &r,
                "cascade_rtp_forwarded_packets_total",
                "RTP packets forwarded, one per receiving subscriber",
                &["worker", "kind"],
            ),
            rtp_forwarded_bytes: counter(
                &r,
                "cascade_rtp_forwarded_bytes_total",
                "RTP payload bytes forwarded, one copy per receiving subscriber",
                &["worker", "kind"],
            ),
            rtp_sent_packets: counter(
                &r,
                "cascade_rtp_sent_packets_total",
                "RTP packets sent to subscribers including retransmissions (str0m stats, 1 s granularity)",
                &["worker", "kind"],
            ),
            rtp_sent_bytes: counter(
                &r,
                "cascade_rtp_sent_bytes_total",
                "RTP payload bytes sent to subscribers including retransmissions (str0m stats, 1 s granularity)",
                &["worker", "kind"],
            ),
            rtp_retransmitted_packets: counter(
                &r,
                "cascade_rtp_retransmitted_packets_total",
                "RTP packets retransmitted to subscribers after NACKs",
                &["worker", "kind"],
            ),
            rtp_dropped_packets: counter(
                &r,
                "cascade_rtp_dropped_packets_total",
                "RTP packets not forwarded to a subscriber, by reason (kind unknown for unknown streams)",
                &["worker", "kind", "reason"],
            ),
            rtp_subscriber_lost_packets: counter(
                &r,
                "cascade_rtp_subscriber_lost_packets_total",
                "Packets subscribers reported lost in RTCP receiver reports",
                &["worker", "kind"],
            ),

            nacks_received: counter(&r, "cascade_rtcp_nacks_received_total", "NACKs received from subscribers", &["worker", "kind"]),
            nacks_sent: counter(&r, "cascade_rtcp_nacks_sent_total", "NACKs sent to publishers", &["worker", "kind"]),
            plis_received: counter(&r, "cascade_rtcp_plis_received_total", "PLIs received from subscribers", &["worker"]),
            firs_received: counter(&r, "cascade_rtcp_firs_received_total", "FIRs received from subscribers", &["worker"]),
            keyframe_requests_sent: counter(
                &r,
                "cascade_rtcp_keyframe_requests_sent_total",
                "Keyframe requests (PLI) sent to publishers, after throttling",
                &["worker"],
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

            worker_received_datagrams: counter(
                &r,
                "cascade_worker_received_datagrams_total",
                "UDP datagrams a media worker received",
                &["worker"],
            ),
            worker_received_bytes: counter(
                &r,
                "cascade_worker_received_bytes_total",
                "UDP bytes a media worker received",
                &["worker"],
            ),
            worker_sent_datagrams: counter(
                &r,
                "cascade_worker_sent_datagrams_total",
                "UDP datagrams a media worker sent",
                &["worker"],
            ),
            worker_sent_bytes: counter(&r, "cascade_worker_sent_bytes_total", "UDP bytes a media worker sent", &["worker"]),
            worker_dropped_datagrams: counter(
                &r,
                "cascade_worker_dropped_datagrams_total",
                "UDP datagrams dropped: unroutable, malformed or oversize on receive, send_error on send",
                &["worker", "reason"],
            ),
            worker_send_calls: counter(
                &r,
                "cascade_worker_send_calls_total",
                "Send system calls a media worker made (sent datagrams / calls = batching)",
                &["worker"],
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
            worker_iterations: counter(
                &r,
                "cascade_worker_loop_iterations_total",
                "Event loop iterations of a media worker",
                &["worker"],
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

    /// Creates every labelled series that dashboards expect, at zero.
    fn precreate(&self, workers: usize) {
        for w in 0..workers {
            let w = w.to_string();
            let w = w.as_str();
            for v in [
                &self.rooms,
                &self.participants,
                &self.peer_connections,
                &self.worker_ready,
                &self.worker_queue_depth,
            ] {
                v.with_label_values(&[w]);
            }
            for v in [
                &self.joins,
                &self.subscribe_offers,
                &self.connections,
                &self.peer_errors,
                &self.plis_received,
                &self.firs_received,
                &self.keyframe_requests_sent,
                &self.worker_received_datagrams,
                &self.worker_received_bytes,
                &self.worker_sent_datagrams,
                &self.worker_sent_bytes,
                &self.worker_send_calls,
                &self.worker_iterations,
            ] {
                v.with_label_values(&[w]);
            }
            self.worker_busy.with_label_values(&[w]);
            self.worker_timer_lag.with_label_values(&[w]);
            self.worker_forward_delay.with_label_values(&[w]);
            for reason in ["unroutable", "malformed", "oversize", "send_error"] {
                self.worker_dropped_datagrams
                    .with_label_values(&[w, reason]);
            }
            for reason in LeaveReason::ALL {
                self.leaves.with_label_values(&[w, reason.as_str()]);
            }
            for kind in KINDS {
                for v in [&self.published_tracks, &self.subscribed_tracks] {
                    v.with_label_values(&[w, kind]);
                }
                for v in [
                    &self.rtp_received_packets,
                    &self.rtp_received_bytes,
                    &self.rtp_forwarded_packets,
                    &self.rtp_forwarded_bytes,
                    &self.rtp_sent_packets,
                    &self.rtp_sent_bytes,
                    &self.rtp_retransmitted_packets,
                    &self.rtp_subscriber_lost_packets,
                    &self.nacks_received,
                    &self.nacks_sent,
                ] {
                    v.with_label_values(&[w, kind]);
                }
                for reason in DropReason::ALL {
                    self.rtp_dropped_packets
                        .with_label_values(&[w, kind, reason.as_str()]);
                }
            }
            self.rtp_dropped_packets
                .with_label_values(&[w, "unknown", "unknown_stream"]);
        }
        for kind in CLIENT_MESSAGE_TYPES.iter().chain(EXTRA_REQUEST_KINDS) {
            self.signal_requests.with_label_values(&[kind]);
        }
        for code in ERROR_CODES {
            self.signal_errors.with_label_values(&[code]);
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

    /// The registry, for embedding Cascade in a process with its own metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
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
        // An ErrorCode serializes to its snake_case name.
        match serde_json::to_value(code) {
            Ok(serde_json::Value::String(name)) => self.count_error(&name),
            _ => self.count_error("unknown"),
        }
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
        let (s, old) = (stats, &self.folded);

        add(
            &m.worker_received_datagrams,
            &[w],
            s.datagrams_in,
            old.datagrams_in,
        );
        add(&m.worker_received_bytes, &[w], s.bytes_in, old.bytes_in);
        add(
            &m.worker_dropped_datagrams,
            &[w, "unroutable"],
            s.datagrams_unroutable,
            old.datagrams_unroutable,
        );
        add(
            &m.worker_dropped_datagrams,
            &[w, "malformed"],
            s.datagrams_malformed,
            old.datagrams_malformed,
        );
        for (i, kind) in KINDS.into_iter().enumerate() {
            let l = [w, kind];
            add(
                &m.rtp_received_packets,
                &l,
                s.rtp_packets_in[i],
                old.rtp_packets_in[i],
            );
            add(
                &m.rtp_received_bytes,
                &l,
                s.rtp_bytes_in[i],
                old.rtp_bytes_in[i],
            );
            add(
                &m.rtp_forwarded_packets,
                &l,
                s.rtp_packets_forwarded[i],
                old.rtp_packets_forwarded[i],
            );
            add(
                &m.rtp_forwarded_bytes,
                &l,
                s.rtp_bytes_forwarded[i],
                old.rtp_bytes_forwarded[i],
            );
            add(
                &m.rtp_sent_packets,
                &l,
                s.rtp_packets_sent[i],
                old.rtp_packets_sent[i],
            );
            add(
                &m.rtp_sent_bytes,
                &l,
                s.rtp_bytes_sent[i],
                old.rtp_bytes_sent[i],
            );
            add(
                &m.rtp_retransmitted_packets,
                &l,
                s.rtp_retransmitted[i],
                old.rtp_retransmitted[i],
            );
            add(
                &m.rtp_subscriber_lost_packets,
                &l,
                s.rtp_lost_by_subscribers[i],
                old.rtp_lost_by_subscribers[i],
            );
            add(
                &m.nacks_received,
                &l,
                s.nacks_received[i],
                old.nacks_received[i],
            );
            add(&m.nacks_sent, &l, s.nacks_sent[i], old.nacks_sent[i]);
            for reason in DropReason::ALL {
                let (now, before) = (
                    s.rtp_dropped_by_reason[i][reason as usize],
                    old.rtp_dropped_by_reason[i][reason as usize],
                );
                add(
                    &m.rtp_dropped_packets,
                    &[w, kind, reason.as_str()],
                    now,
                    before,
                );
            }
            m.published_tracks
                .with_label_values(&l)
                .set(occupancy.published_tracks[i] as i64);
            m.subscribed_tracks
                .with_label_values(&l)
                .set(occupancy.subscribed_tracks[i] as i64);
        }
        add(
            &m.rtp_dropped_packets,
            &[w, "unknown", "unknown_stream"],
            unknown_stream_drops(s),
            unknown_stream_drops(old),
        );
        add(&m.plis_received, &[w], s.plis_received, old.plis_received);
        add(&m.firs_received, &[w], s.firs_received, old.firs_received);
        add(
            &m.keyframe_requests_sent,
            &[w],
            s.keyframe_requests_sent,
            old.keyframe_requests_sent,
        );
        add(&m.joins, &[w], s.joins, old.joins);
        for reason in LeaveReason::ALL {
            let i = reason.index();
            add(
                &m.leaves,
                &[w, reason.as_str()],
                s.leaves_by_reason[i],
                old.leaves_by_reason[i],
            );
        }
        add(
            &m.subscribe_offers,
            &[w],
            s.subscribe_offers,
            old.subscribe_offers,
        );
        add(
            &m.connections,
            &[w],
            s.subscribers_connected,
            old.subscribers_connected,
        );
        add(&m.peer_errors, &[w], s.peer_errors, old.peer_errors);

        let old_io = &self.folded_io;
        add(
            &m.worker_sent_datagrams,
            &[w],
            io.sent_datagrams,
            old_io.sent_datagrams,
        );
        add(&m.worker_sent_bytes, &[w], io.sent_bytes, old_io.sent_bytes);
        add(
            &m.worker_dropped_datagrams,
            &[w, "send_error"],
            io.send_errors,
            old_io.send_errors,
        );
        add(
            &m.worker_dropped_datagrams,
            &[w, "oversize"],
            io.recv_truncated,
            old_io.recv_truncated,
        );
        add(&m.worker_send_calls, &[w], io.send_calls, old_io.send_calls);
        add(&m.worker_iterations, &[w], io.iterations, old_io.iterations);
        let busy = io.busy.saturating_sub(old_io.busy).as_secs_f64();
        if busy > 0.0 {
            m.worker_busy.with_label_values(&[w]).inc_by(busy);
        }

        m.rooms.with_label_values(&[w]).set(occupancy.rooms as i64);
        m.participants
            .with_label_values(&[w])
            .set(occupancy.participants as i64);
        m.peer_connections
            .with_label_values(&[w])
            .set(occupancy.peers as i64);

        self.rtt.flush();
        self.bwe.flush();
        self.join_duration.flush();
        self.timer_lag.flush();
        self.forward_delay.flush();
        self.folded.clone_from(stats);
        self.folded_io.clone_from(io);
    }
}

/// Drops counted in the total but not by reason: packets of no known track.
fn unknown_stream_drops(s: &CoreStats) -> u64 {
    let known: u64 = s.rtp_dropped_by_reason.iter().flatten().sum();
    s.rtp_dropped.saturating_sub(known)
}

/// Adds the growth from `before` to `now` to the series `labels` of `vec`.
fn add(vec: &IntCounterVec, labels: &[&str], now: u64, before: u64) {
    let delta = now.saturating_sub(before);
    if delta > 0 {
        vec.with_label_values(labels).inc_by(delta);
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

/// The standard `process_*` metrics, read from `/proc/self` at scrape time
/// (Linux only; elsewhere they stay at zero).
struct ProcessMetrics {
    cpu_seconds: Counter,
    resident_memory: Gauge,
    open_fds: Gauge,
    threads: Gauge,
    start_time: Gauge,
}

impl ProcessMetrics {
    fn new(r: &Registry) -> Self {
        let g = |name: &str, help: &str| reg(r, Gauge::with_opts(Opts::new(name, help)));
        let p = ProcessMetrics {
            cpu_seconds: reg(
                r,
                Counter::with_opts(Opts::new(
                    "process_cpu_seconds_total",
                    "Total user and system CPU time spent in seconds",
                )),
            ),
            resident_memory: g(
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
            ),
            open_fds: g("process_open_fds", "Number of open file descriptors"),
            threads: g("process_threads", "Number of OS threads in the process"),
            start_time: g(
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds",
            ),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        p.start_time.set(now.as_secs_f64());
        p
    }

    fn refresh(&self) {
        let Some(stat) = proc_stat() else {
            return;
        };
        let grown = stat.cpu_seconds - self.cpu_seconds.get();
        if grown > 0.0 {
            self.cpu_seconds.inc_by(grown);
        }
        self.resident_memory.set(stat.resident_bytes);
        self.threads.set(stat.threads);
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(fds.count() as f64);
        }
    }
}

struct ProcStat {
    cpu_seconds: f64,
    resident_bytes: f64,
    threads: f64,
}

/// Parses `/proc/self/stat` (see proc(5)); `None` where there is none.
fn proc_stat() -> Option<ProcStat> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may contain spaces: split after its ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field N is fields[N - 3].
    let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
    // USER_HZ is 100 on every Linux platform Cascade targets; the page size
    // 4096 on x86_64 and most aarch64 kernels.
    const TICKS_PER_SECOND: f64 = 100.0;
    const PAGE_BYTES: f64 = 4096.0;
    Some(ProcStat {
        cpu_seconds: (field(14)? + field(15)?) / TICKS_PER_SECOND,
        threads: field(20)?,
        resident_bytes: field(24)? * PAGE_BYTES,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn process_metrics_read_proc_on_linux() {
        if cfg!(target_os = "linux") {
            let stat = proc_stat().expect("/proc/self/stat parses");
            assert!(stat.resident_bytes > 0.0 && stat.threads >= 1.0);
        }
    }
}
