//! What receiving bots record: which packets of each stream arrived (for
//! loss), how a sender's video moved between simulcast layers, a latency
//! histogram, and live counters shared with the load runner.
//!
//! Everything here is cheap per packet and bounded in memory: a bit per
//! expected packet for loss, a fixed array of buckets for latency, and a few
//! atomics that each bot updates once per batch of datagrams.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

use super::simulcast::Layer;

/// Simulcast layers the counters here know.
pub const LAYERS: usize = Layer::ALL.len();

/// Packet counters a bot has seen from one stream, as a bitmap starting at
/// the first counter received (bots number packets 1, 2, 3, ... per track).
#[derive(Debug, Default, Clone)]
pub struct StreamReport {
    pub packets: u64,
    pub bytes: u64,
    /// Packets that arrived a second time (retransmissions of packets that
    /// were not lost after all).
    pub duplicates: u64,
    /// When the latest new packet arrived.
    pub last_at: Option<Instant>,
    /// The first counter received inside a load run's measurement window.
    pub window_first: Option<u64>,
    base: u64,
    seen: Vec<u64>,
    lowest: Option<u64>,
    highest: Option<u64>,
}

/// How far before the first counter received a late packet is still
/// accepted as part of the stream (reordering at the very start).
const EARLY_SLACK: u64 = 64;

impl StreamReport {
    /// Records packet `counter` of `bytes` bytes that arrived at `now`;
    /// returns false for a duplicate or a packet from before the stream's
    /// first one.
    pub fn record_at(&mut self, now: Instant, counter: u64, bytes: usize) -> bool {
        let new = self.record(counter, bytes);
        if new {
            self.last_at = Some(now);
        }
        new
    }

    /// [`StreamReport::record_at`] without the arrival time.
    pub fn record(&mut self, counter: u64, bytes: usize) -> bool {
        if self.lowest.is_none() {
            self.base = counter.saturating_sub(EARLY_SLACK);
        }
        let Some(offset) = counter.checked_sub(self.base) else {
            return false;
        };
        let (word, bit) = ((offset / 64) as usize, offset % 64);
        if word >= self.seen.len() {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & (1 << bit) != 0 {
            self.duplicates += 1;
            return false;
        }
        self.seen[word] |= 1 << bit;
        self.packets += 1;
        self.bytes += bytes as u64;
        self.lowest = Some(self.lowest.map_or(counter, |l| l.min(counter)));
        self.highest = Some(self.highest.map_or(counter, |h| h.max(counter)));
        true
    }

    /// Up to `limit` missing counters between the first and the last packet
    /// received, lowest first (to see where loss happens).
    pub fn missing(&self, limit: usize) -> Vec<u64> {
        let (Some(low), Some(high)) = (self.lowest, self.highest) else {
            return Vec::new();
        };
        (low..=high)
            .filter(|c| {
                let offset = c - self.base;
                self.seen[(offset / 64) as usize] & (1 << (offset % 64)) == 0
            })
            .take(limit)
            .collect()
    }

    /// The first counter received, if any.
    pub fn first(&self) -> Option<u64> {
        self.lowest
    }

    /// Packets missing from `from` (a counter) to the last one received.
    pub fn lost_from(&self, from: u64) -> u64 {
        let Some(high) = self.highest else {
            return 0;
        };
        let from = from.max(self.base);
        (from..=high)
            .filter(|c| {
                let offset = c - self.base;
                self.seen[(offset / 64) as usize] & (1 << (offset % 64)) == 0
            })
            .count() as u64
    }

    /// Packets missing between the first and the last one received.
    pub fn lost(&self) -> u64 {
        match (self.lowest, self.highest) {
            (Some(l), Some(h)) => (h - l + 1).saturating_sub(self.packets),
            _ => 0,
        }
    }
}

/// How one sender's video reaches a subscriber as one stream although it
/// is sent as several: the server forwards one simulcast layer at a time,
/// switches layer (or resumes after pausing the video) at a keyframe, and
/// every layer numbers its packets itself. The follower maps each layer's
/// counters onto one continuous counter space for the sender's
/// [`StreamReport`], so a switch or a resume is no loss while a gap inside
/// a layer still is.
///
/// A packet starts a new run of its layer when it comes from another layer
/// than the one followed (and is newer than what that layer sent before),
/// or when the followed layer jumps ahead at a keyframe whose RTP sequence
/// number (the subscriber stream's own) follows the previous packet's: the
/// server skipped those packets on purpose, a pause. The same jump with a
/// gap in the sequence numbers is loss. A single-layer stream is layer 0
/// throughout and maps every counter onto itself until it is paused.
#[derive(Debug, Default, Clone)]
pub struct LayerFollower {
    /// The layer whose packets arrive now.
    current: Option<usize>,
    /// Each layer's latest run.
    runs: [Option<Run>; LAYERS],
    /// The stream counter after the highest one handed out.
    next: u64,
    /// The highest RTP sequence number received.
    highest_seq: Option<u64>,
    /// Changes of layer.
    pub switches: u64,
    /// Runs of the same layer after a pause.
    pub resumes: u64,
    /// Switches that did not start at a keyframe: the subscriber's decoder
    /// got a frame referring to another layer's pictures.
    pub unclean_switches: u64,
}

/// Packets `first..=last` of one layer, numbered from `base` in the stream.
#[derive(Debug, Clone, Copy)]
struct Run {
    first: u64,
    last: u64,
    base: u64,
    /// The stream's first run: its counters are the stream's (`base` is
    /// `first`), so a packet reordered before the first one still maps and
    /// [`StreamReport`]'s early slack decides about it.
    opening: bool,
}

impl LayerFollower {
    /// The stream counter of packet `counter` of `layer` (an index, 0 for a
    /// single-layer stream) that arrived with RTP sequence number `seq` and
    /// begins a keyframe if `keyframe`; `None` for a packet from before the
    /// run it belongs to (late, not counted).
    pub fn follow(&mut self, layer: usize, counter: u64, seq: u64, keyframe: bool) -> Option<u64> {
        let layer = layer.min(LAYERS - 1);
        let contiguous = self.highest_seq.is_some_and(|h| seq == h.wrapping_add(1));
        self.highest_seq = Some(self.highest_seq.map_or(seq, |h| h.max(seq)));
        let run = self.runs[layer];
        let starts_run = match run {
            Some(run) if self.current == Some(layer) => {
                counter > run.last + 1 && contiguous && keyframe
            }
            Some(run) => counter > run.last,
            None => true,
        };
        if starts_run {
            match self.current {
                Some(c) if c == layer => self.resumes += 1,
                Some(_) => {
                    self.switches += 1;
                    if !keyframe {
                        self.unclean_switches += 1;
                    }
                }
                None => {}
            }
            self.current = Some(layer);
            let opening = self.next == 0;
            self.runs[layer] = Some(Run {
                first: counter,
                last: counter,
                base: if opening { counter } else { self.next },
                opening,
            });
        }
        let run = self.runs[layer].as_mut()?;
        if counter < run.first {
            return run.opening.then_some(counter);
        }
        run.last = run.last.max(counter);
        let mapped = run.base + (counter - run.first);
        self.next = self.next.max(mapped + 1);
        Some(mapped)
    }

    /// The layer whose packets arrive now.
    pub fn current(&self) -> Option<usize> {
        self.current
    }
}

/// Packets and payload bytes received on one simulcast layer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LayerTotal {
    pub packets: u64,
    pub bytes: u64,
}

/// A latency histogram in microseconds with ~1.6 % resolution (64 buckets
/// per power of two), fixed size, mergeable.
#[derive(Clone)]
pub struct Histogram {
    buckets: Box<[u64]>,
    count: u64,
    max: u64,
}

/// Sub-buckets per power of two.
const SUB: u64 = 64;
/// Values are clamped to 2^27 µs (~134 s).
const MAX_OCTAVE: u32 = 27;
const BUCKETS: usize = ((MAX_OCTAVE as u64 - 5) * SUB) as usize;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: vec![0; BUCKETS].into_boxed_slice(),
            count: 0,
            max: 0,
        }
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count)
            .field("p50", &self.quantile(0.5))
            .field("max", &self.max)
            .finish()
    }
}

fn bucket_of(value: u64) -> usize {
    let v = value.min((1 << MAX_OCTAVE) - 1);
    if v < SUB {
        return v as usize;
    }
    let octave = 63 - v.leading_zeros(); // >= 6
    let shift = octave - 6;
    ((octave as u64 - 5) * SUB + ((v >> shift) - SUB)) as usize
}

/// The middle of the values that land in `bucket`.
fn value_of(bucket: usize) -> u64 {
    let b = bucket as u64;
    if b < SUB {
        return b;
    }
    let octave = b / SUB + 5;
    let shift = octave - 6;
    let low = (SUB + b % SUB) << shift;
    low + (1 << shift) / 2
}

impl Histogram {
    pub fn record(&mut self, micros: u64) {
        self.buckets[bucket_of(micros)] += 1;
        self.count += 1;
        self.max = self.max.max(micros);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += b;
        }
        self.count += other.count;
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value below which a fraction `q` (0..=1) of the samples fall, or
    /// `None` without samples.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        if rank >= self.count {
            return Some(self.max);
        }
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(value_of(i).min(self.max));
            }
        }
        Some(self.max)
    }
}

/// Counters every bot of a run adds to, read by the progress line and at
/// the edges of the measurement window. Bots add per batch, not per packet.
#[derive(Debug, Default)]
pub struct LiveCounters {
    pub sent_packets: AtomicU64,
    pub received_packets: AtomicU64,
    pub received_bytes: AtomicU64,
    /// Bots that received their first media packet.
    pub first_media: AtomicU64,
    /// Bots that receive every stream they expect.
    pub ready: AtomicU64,
    /// Bots that stopped with an error.
    pub failed: AtomicU64,
    /// Simulcast video received per layer (q, h, f).
    pub received_layer_packets: [AtomicU64; LAYERS],
    pub received_layer_bytes: [AtomicU64; LAYERS],
}

/// A consistent-enough copy of [`LiveCounters`] at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LiveSnapshot {
    pub sent_packets: u64,
    pub received_packets: u64,
    pub received_bytes: u64,
    pub first_media: u64,
    pub ready: u64,
    pub failed: u64,
    pub received_layer_packets: [u64; LAYERS],
    pub received_layer_bytes: [u64; LAYERS],
}

impl LiveCounters {
    pub fn snapshot(&self) -> LiveSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        LiveSnapshot {
            sent_packets: get(&self.sent_packets),
            received_packets: get(&self.received_packets),
            received_bytes: get(&self.received_bytes),
            first_media: get(&self.first_media),
            ready: get(&self.ready),
            failed: get(&self.failed),
            received_layer_packets: self.received_layer_packets.each_ref().map(get),
            received_layer_bytes: self.received_layer_bytes.each_ref().map(get),
        }
    }
}

/// A bot's not yet published additions to [`LiveCounters`].
#[derive(Debug, Default)]
pub(crate) struct PendingCounts {
    pub sent_packets: u64,
    pub received_packets: u64,
    pub received_bytes: u64,
    pub received_layer_packets: [u64; LAYERS],
    pub received_layer_bytes: [u64; LAYERS],
}

impl PendingCounts {
    pub fn flush(&mut self, live: &LiveCounters) {
        let add = |a: &AtomicU64, n: &mut u64| {
            if *n > 0 {
                a.fetch_add(std::mem::take(n), Ordering::Relaxed);
            }
        };
        add(&live.sent_packets, &mut self.sent_packets);
        add(&live.received_packets, &mut self.received_packets);
        add(&live.received_bytes, &mut self.received_bytes);
        for l in 0..LAYERS {
            add(
                &live.received_layer_packets[l],
                &mut self.received_layer_packets[l],
            );
            add(
                &live.received_layer_bytes[l],
                &mut self.received_layer_bytes[l],
            );
        }
    }
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
        assert_eq!(r.duplicates, 1);
        assert_eq!(r.lost(), 1);
        assert_eq!(r.missing(10), vec![7]);
        assert_eq!(r.lost_from(8), 0);
        assert_eq!(r.lost_from(6), 1);
        // A late packet from just before the first one still counts.
        assert!(r.record(3, 100));
        assert_eq!(r.lost(), 2, "3..=9 minus 5 received");
        assert!(r.record(10_000, 100), "far ahead grows the bitmap");
    }

    /// Follows packets `(layer, counter, seq, keyframe)`; returns the
    /// stream counters.
    fn follow(f: &mut LayerFollower, packets: &[(usize, u64, u64, bool)]) -> Vec<Option<u64>> {
        packets
            .iter()
            .map(|&(l, c, s, k)| f.follow(l, c, s, k))
            .collect()
    }

    #[test]
    fn a_single_layer_maps_every_counter_onto_itself() {
        let mut f = LayerFollower::default();
        let got = follow(
            &mut f,
            &[(0, 10, 1, true), (0, 11, 2, false), (0, 13, 4, false)],
        );
        assert_eq!(got, [Some(10), Some(11), Some(13)], "a gap stays a gap");
        assert_eq!(
            f.follow(0, 12, 3, false),
            Some(12),
            "a retransmission fills it"
        );
        assert_eq!(
            f.follow(0, 9, 0, false),
            Some(9),
            "reordered before the first"
        );
        assert_eq!((f.switches, f.resumes, f.unclean_switches), (0, 0, 0));
    }

    #[test]
    fn layer_switches_continue_the_stream_and_a_return_starts_a_new_run() {
        let mut f = LayerFollower::default();
        // q from 100, then h from its keyframe at 500, then q again at 140.
        let got = follow(
            &mut f,
            &[
                (0, 100, 1, true),
                (0, 101, 2, false),
                (1, 500, 3, true),
                (1, 501, 4, false),
                (0, 140, 5, true),
                (0, 141, 6, false),
            ],
        );
        let want = [100, 101, 102, 103, 104, 105].map(Some);
        assert_eq!(got, want, "no gap across switches");
        assert_eq!(f.switches, 2);
        assert_eq!(f.unclean_switches, 0);
        assert_eq!(f.current(), Some(0));
        // A late retransmission of h's run maps into that run; one from
        // before q's new run is not counted.
        assert_eq!(f.follow(1, 501, 4, false), Some(103));
        assert_eq!(f.follow(0, 139, 4, false), None);
        assert_eq!(f.switches, 2, "late packets are no switch");
    }

    #[test]
    fn a_switch_without_a_keyframe_is_unclean() {
        let mut f = LayerFollower::default();
        follow(&mut f, &[(2, 1, 1, true), (0, 50, 2, false)]);
        assert_eq!((f.switches, f.unclean_switches), (1, 1));
    }

    #[test]
    fn a_pause_is_a_jump_at_a_keyframe_with_no_gap_in_sequence_numbers() {
        let mut f = LayerFollower::default();
        // Paused after 11, resumed at the keyframe 40: seq 3 follows 2.
        let got = follow(
            &mut f,
            &[(0, 10, 1, true), (0, 11, 2, false), (0, 40, 3, true)],
        );
        assert_eq!(got, [Some(10), Some(11), Some(12)]);
        assert_eq!(f.resumes, 1);
        // A jump with a gap in the sequence numbers is loss, keyframe or not.
        assert_eq!(f.follow(0, 45, 8, true), Some(17));
        // So is a jump that does not start at a keyframe.
        assert_eq!(f.follow(0, 50, 9, false), Some(22));
        assert_eq!(f.resumes, 1);
    }

    #[test]
    fn histogram_quantiles_are_within_two_percent() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v);
        }
        for (q, want) in [(0.5, 5_000.0), (0.95, 9_500.0), (0.99, 9_900.0)] {
            let got = h.quantile(q).unwrap() as f64;
            assert!((got - want).abs() / want < 0.02, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.max(), 10_000);
        let mut other = Histogram::default();
        other.record(1_000_000_000);
        h.merge(&other);
        assert_eq!(h.count(), 10_001);
        assert_eq!(h.quantile(1.0), Some(1_000_000_000));
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    #[test]
    fn buckets_are_monotonic_and_small_values_exact() {
        let mut last = 0;
        for v in 0..200_000u64 {
            let b = bucket_of(v);
            assert!(b >= last);
            last = b;
        }
        assert_eq!(value_of(bucket_of(17)), 17);
        assert!(bucket_of(u64::MAX) < BUCKETS);
    }
}
