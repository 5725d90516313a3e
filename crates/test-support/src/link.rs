//! A fake bottleneck link for the simulation: a FIFO drained at a fixed rate
//! with a bounded queue, dropping what does not fit (a token bucket with a
//! queue, like a home router's uplink or `tc tbf`).
//!
//! Each datagram leaves the queue when the link has sent everything before
//! it at `rate`; a datagram that would wait longer than the queue holds is
//! dropped. The rate can change mid-run, as a real link's does.

use std::time::{Duration, Instant};

/// A rate-limited link with a bounded queue.
#[derive(Debug, Clone)]
pub struct Link {
    /// Bits per second.
    pub rate_bps: u64,
    /// The most bytes that may wait in the queue.
    pub queue_bytes: usize,
    /// When the link has sent everything accepted so far.
    free_at: Option<Instant>,
    /// Datagrams dropped because the queue was full.
    pub dropped: u64,
    /// Datagrams and bytes accepted.
    pub sent: u64,
    pub sent_bytes: u64,
}

impl Link {
    pub fn new(rate_bps: u64, queue_bytes: usize) -> Self {
        Link {
            rate_bps,
            queue_bytes,
            free_at: None,
            dropped: 0,
            sent: 0,
            sent_bytes: 0,
        }
    }

    /// When a datagram of `len` bytes offered at `now` has crossed the link,
    /// or `None` if the queue is full and it is dropped.
    pub fn offer(&mut self, now: Instant, len: usize) -> Option<Instant> {
        let start = self.free_at.map_or(now, |t| t.max(now));
        let queued_bytes = self.bytes_in(start.saturating_duration_since(now));
        if queued_bytes + len > self.queue_bytes {
            self.dropped += 1;
            return None;
        }
        let done = start + self.time_for(len);
        self.free_at = Some(done);
        self.sent += 1;
        self.sent_bytes += len as u64;
        Some(done)
    }

    fn time_for(&self, len: usize) -> Duration {
        Duration::from_nanos(len as u64 * 8 * 1_000_000_000 / self.rate_bps.max(1))
    }

    fn bytes_in(&self, wait: Duration) -> usize {
        (wait.as_nanos() as u64 * self.rate_bps / 8 / 1_000_000_000) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_leave_at_the_link_rate_and_a_full_queue_drops() {
        let t0 = Instant::now();
        // 8 kbit/s: 1000 bytes take one second; the queue holds 2000 bytes.
        let mut link = Link::new(8_000, 2_000);
        assert_eq!(link.offer(t0, 1000), Some(t0 + Duration::from_secs(1)));
        assert_eq!(link.offer(t0, 1000), Some(t0 + Duration::from_secs(2)));
        assert_eq!(link.offer(t0, 1000), None, "2000 bytes already wait");
        assert_eq!(link.dropped, 1);
        let later = t0 + Duration::from_secs(5);
        assert_eq!(
            link.offer(later, 500),
            Some(later + Duration::from_millis(500))
        );
    }
}
