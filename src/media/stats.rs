//! Plain per-core counters: incremented on the packet path without locks or
//! atomics, read by the worker and folded into the metrics registry
//! (`crate::metrics`). Also the samples the core hands out for histograms.
//!
//! Nothing here knows about Prometheus: the core stays sans-IO and cheap.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;
use str0m::media::{MediaKind, Mid, Rid};
use str0m::stats::{MediaEgressStats, MediaIngressStats};

use super::data::DataRefusal;
use super::errors::LeaveReason;
use super::ids::{ParticipantId, PeerKey};

/// Counters of one media core since it started.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CoreStats {
    pub datagrams_in: u64,
    pub bytes_in: u64,
    pub datagrams_unroutable: u64,
    pub datagrams_malformed: u64,
    /// RTP packets received from publishers, by kind (`[audio, video]`).
    pub rtp_packets_in: [u64; 2],
    pub rtp_bytes_in: [u64; 2],
    /// RTP packets written to subscriber streams, by kind.
    pub rtp_packets_forwarded: [u64; 2],
    pub rtp_bytes_forwarded: [u64; 2],
    /// Packets not forwarded to some subscriber (codec unsupported, stream
    /// not negotiated, too old).
    pub rtp_dropped: u64,
    /// The part of `rtp_dropped` whose kind is known, by kind and [`DropReason`].
    /// The rest had no published track (unknown stream).
    pub rtp_dropped_by_reason: [[u64; DropReason::ALL.len()]; 2],
    /// RTP packets and payload bytes str0m sent on subscriber streams,
    /// retransmissions included (from its egress stats, once per interval).
    pub rtp_packets_sent: [u64; 2],
    pub rtp_bytes_sent: [u64; 2],
    /// Packets sent beyond those forwarded: retransmissions answering NACKs
    /// (a lower bound while packets wait in a pacer queue).
    pub rtp_retransmitted: [u64; 2],
    /// Packets subscribers reported lost in their receiver reports.
    pub rtp_lost_by_subscribers: [u64; 2],
    /// NACK messages received from subscribers, by kind.
    pub nacks_received: [u64; 2],
    /// NACK messages sent to publishers, by kind.
    pub nacks_sent: [u64; 2],
    /// PLI and FIR messages received from subscribers.
    pub plis_received: u64,
    pub firs_received: u64,
    /// Keyframe requests from subscribers the core acted on (str0m merges
    /// requests that arrive between two polls).
    pub keyframe_requests_received: u64,
    pub keyframe_requests_sent: u64,
    pub subscribe_offers: u64,
    pub subscribers_connected: u64,
    pub peer_errors: u64,
    pub joins: u64,
    pub leaves: u64,
    /// `leaves` by `LeaveReason::index`.
    pub leaves_by_reason: [u64; LeaveReason::ALL.len()],
    /// Histogram samples dropped because nobody polled them.
    pub samples_dropped: u64,
    /// Down tracks that moved to a higher / lower simulcast layer.
    pub layer_switches_up: u64,
    pub layer_switches_down: u64,
    /// Times a subscriber's allocation started leaving a video short of its
    /// best allowed layer (or paused it) for want of bandwidth.
    pub allocation_deficits: u64,
    /// Speaker rounds that told some room a new list of active speakers.
    pub speaker_updates: u64,
    /// Data-channel messages and bytes received on relayed channels, by
    /// channel (`[reliable, lossy]`).
    pub data_messages_in: [u64; 2],
    pub data_bytes_in: [u64; 2],
    /// Relayed copies written to receivers' channels, one per receiver.
    pub data_messages_relayed: [u64; 2],
    pub data_bytes_relayed: [u64; 2],
    /// Relayed copies dropped because a receiver's SCTP send buffer was full.
    pub data_dropped_backlog: [u64; 2],
    /// Messages not relayed, by `DataRefusal::index`.
    pub data_refused: [u64; DataRefusal::ALL.len()],
}

/// Why a packet with a known kind was not forwarded to a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The publisher's payload type is not in its negotiated codecs.
    UnknownCodec,
    /// The subscriber did not accept the publisher's codec.
    CodecUnsupported,
    /// Older than the first packet of the subscriber's stream.
    TooOld,
    /// The subscriber's m-line has no send stream.
    NoStream,
    /// An operator muted the track.
    Muted,
    /// The subscriber's connection is not up yet (ICE and DTLS still
    /// connecting): str0m would queue the packet until it is, without
    /// bound, and send it stale.
    NotConnected,
}

impl DropReason {
    pub const ALL: [DropReason; 6] = [
        DropReason::UnknownCodec,
        DropReason::CodecUnsupported,
        DropReason::TooOld,
        DropReason::NoStream,
        DropReason::Muted,
        DropReason::NotConnected,
    ];

    /// The metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            DropReason::UnknownCodec => "unknown_codec",
            DropReason::CodecUnsupported => "codec_unsupported",
            DropReason::TooOld => "too_old",
            DropReason::NoStream => "no_stream",
            DropReason::Muted => "muted",
            DropReason::NotConnected => "not_connected",
        }
    }
}

/// Index of `kind` in the `[audio, video]` arrays.
pub fn kind_index(kind: MediaKind) -> usize {
    match kind {
        MediaKind::Audio => 0,
        MediaKind::Video => 1,
    }
}

impl CoreStats {
    pub fn count_rtp_in(&mut self, kind: MediaKind, payload_bytes: usize) {
        let i = kind_index(kind);
        self.rtp_packets_in[i] += 1;
        self.rtp_bytes_in[i] += payload_bytes as u64;
    }

    pub fn count_rtp_forwarded(&mut self, kind: MediaKind, payload_bytes: usize) {
        let i = kind_index(kind);
        self.rtp_packets_forwarded[i] += 1;
        self.rtp_bytes_forwarded[i] += payload_bytes as u64;
    }

    pub fn count_dropped(&mut self, kind: MediaKind, reason: DropReason) {
        self.rtp_dropped += 1;
        self.rtp_dropped_by_reason[kind_index(kind)][reason as usize] += 1;
    }
}

/// A measurement for a histogram, handed out by `MediaCore::poll_sample`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sample {
    /// Round-trip time of a subscriber stream, from RTCP receiver reports.
    Rtt(Duration),
    /// Send-side bandwidth estimate of a subscribe connection, bits/s.
    BandwidthEstimate(f64),
    /// From the worker accepting a join to the first media packet forwarded
    /// to that participant.
    JoinToFirstMedia(Duration),
}

/// What was already counted of one subscriber send stream. str0m reports
/// cumulative totals per stream; the core adds the deltas to [`CoreStats`].
#[derive(Debug, Clone)]
pub struct EgressStream {
    kind: MediaKind,
    /// Packets the core wrote into the stream (incremented per packet).
    pub written: u64,
    packets: u64,
    bytes: u64,
    retransmitted: u64,
    nacks: u64,
    plis: u64,
    firs: u64,
    lost: u64,
}

impl EgressStream {
    pub fn new(kind: MediaKind) -> Self {
        EgressStream {
            kind,
            written: 0,
            packets: 0,
            bytes: 0,
            retransmitted: 0,
            nacks: 0,
            plis: 0,
            firs: 0,
            lost: 0,
        }
    }

    /// Adds what changed since the last report to `totals`.
    pub fn update(&mut self, report: &MediaEgressStats, totals: &mut CoreStats) {
        let i = kind_index(self.kind);
        totals.rtp_packets_sent[i] += advance(&mut self.packets, report.packets);
        totals.rtp_bytes_sent[i] += advance(&mut self.bytes, report.bytes);
        // Everything sent beyond what was written is a retransmission. Packets
        // still queued make this an underestimate, never an overestimate, and
        // `advance` keeps the total from going backwards.
        let retransmitted = report.packets.saturating_sub(self.written);
        totals.rtp_retransmitted[i] += advance(&mut self.retransmitted, retransmitted);
        totals.nacks_received[i] += advance(&mut self.nacks, report.nacks);
        totals.plis_received += advance(&mut self.plis, report.plis);
        totals.firs_received += advance(&mut self.firs, report.firs);
        if let Some(remote) = &report.remote {
            totals.rtp_lost_by_subscribers[i] += advance(&mut self.lost, remote.packets_lost);
        }
    }
}

/// What was already counted of one publisher receive stream.
#[derive(Debug, Clone)]
pub struct IngressStream {
    kind: MediaKind,
    nacks: u64,
}

impl IngressStream {
    pub fn new(kind: MediaKind) -> Self {
        IngressStream { kind, nacks: 0 }
    }

    /// Adds what changed since the last report to `totals`.
    pub fn update(&mut self, report: &MediaIngressStats, totals: &mut CoreStats) {
        totals.nacks_sent[kind_index(self.kind)] += advance(&mut self.nacks, report.nacks);
    }
}

/// Moves `seen` up to `now` and returns by how much (0 if `now` went down).
fn advance(seen: &mut u64, now: u64) -> u64 {
    let delta = now.saturating_sub(*seen);
    *seen = (*seen).max(now);
    delta
}

/// Identifies one send stream of a core: its peer connection and m-line.
pub type StreamKey = (PeerKey, Mid);

/// Histogram samples kept for the worker; older ones are dropped beyond this.
const MAX_PENDING_SAMPLES: usize = 4096;

/// What a core measures about itself: its counters, what str0m's cumulative
/// stream statistics already contributed, and histogram samples waiting for
/// the worker.
#[derive(Default)]
pub struct Telemetry {
    pub stats: CoreStats,
    /// Per subscriber send stream: what str0m's stats already reported.
    pub egress: FxHashMap<StreamKey, EgressStream>,
    /// Per publisher receive stream (and simulcast layer), likewise.
    pub ingress: FxHashMap<(PeerKey, Mid, Option<Rid>), IngressStream>,
    /// Participants that joined and have not been forwarded media yet.
    pub awaiting_media: FxHashMap<ParticipantId, Instant>,
    samples: VecDeque<Sample>,
}

impl Telemetry {
    /// Lets go of the table capacity departed streams left.
    pub fn shrink_to_fit(&mut self) {
        self.egress.shrink_to_fit();
        self.ingress.shrink_to_fit();
        self.awaiting_media.shrink_to_fit();
    }

    /// Counts one packet written to `subscriber`'s stream `stream`.
    pub fn forwarded(
        &mut self,
        now: Instant,
        subscriber: ParticipantId,
        stream: StreamKey,
        kind: MediaKind,
        payload_bytes: usize,
    ) {
        self.stats.count_rtp_forwarded(kind, payload_bytes);
        match self.egress.get_mut(&stream) {
            Some(s) => s.written += 1,
            None => {
                let mut s = EgressStream::new(kind);
                s.written = 1;
                self.egress.insert(stream, s);
            }
        }
        if !self.awaiting_media.is_empty() {
            if let Some(joined) = self.awaiting_media.remove(&subscriber) {
                self.push_sample(Sample::JoinToFirstMedia(
                    now.saturating_duration_since(joined),
                ));
            }
        }
    }

    /// Forgets the streams of peers that are gone.
    pub fn forget_peers(&mut self, peers: &[PeerKey]) {
        self.egress.retain(|(k, _), _| !peers.contains(k));
        self.ingress.retain(|(k, _, _), _| !peers.contains(k));
    }

    pub fn push_sample(&mut self, sample: Sample) {
        if self.samples.len() >= MAX_PENDING_SAMPLES {
            self.samples.pop_front();
            self.stats.samples_dropped += 1;
        }
        self.samples.push_back(sample);
    }

    pub fn poll_sample(&mut self) -> Option<Sample> {
        self.samples.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_counts_growth_once_and_ignores_shrinking() {
        let mut seen = 0;
        assert_eq!(advance(&mut seen, 5), 5);
        assert_eq!(advance(&mut seen, 5), 0);
        assert_eq!(advance(&mut seen, 3), 0, "a smaller report adds nothing");
        assert_eq!(advance(&mut seen, 7), 2);
    }

    #[test]
    fn drops_with_a_kind_count_in_the_total_and_by_reason() {
        let mut s = CoreStats::default();
        s.count_dropped(MediaKind::Video, DropReason::TooOld);
        s.rtp_dropped += 1; // an unknown stream
        assert_eq!(s.rtp_dropped, 2);
        assert_eq!(s.rtp_dropped_by_reason[1][DropReason::TooOld as usize], 1);
        assert_eq!(s.rtp_dropped_by_reason[0], [0; DropReason::ALL.len()]);
    }
}
