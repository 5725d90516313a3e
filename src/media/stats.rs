//! Plain per-core counters: incremented on the packet path without locks or
//! atomics, read by the worker and folded into the metrics registry.

use str0m::media::MediaKind;

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
    pub keyframe_requests_received: u64,
    pub keyframe_requests_sent: u64,
    pub subscribe_offers: u64,
    pub subscribers_connected: u64,
    pub peer_errors: u64,
    pub joins: u64,
    pub leaves: u64,
}

fn kind_index(kind: MediaKind) -> usize {
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
}
