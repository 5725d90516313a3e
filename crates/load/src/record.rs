//! What receiving bots record: which packets of each stream arrived (for
//! loss), a latency histogram, and live counters shared with the load runner.
//!
//! Everything here is cheap per packet and bounded in memory: a bit per
//! expected packet for loss, a fixed array of buckets for latency, and a few
//! atomics that each bot updates once per batch of datagrams.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

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
        }
    }
}

/// A bot's not yet published additions to [`LiveCounters`].
#[derive(Debug, Default)]
pub(crate) struct PendingCounts {
    pub sent_packets: u64,
    pub received_packets: u64,
    pub received_bytes: u64,
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
