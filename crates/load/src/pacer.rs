//! A bot's video pacer: frames go in whole, packets come out spaced.
//!
//! WebRTC senders do not put a frame's packets on the wire back to back:
//! libwebrtc's pacer lets media out at a multiple of the target bitrate (2.5
//! by default), so a frame is spread over part of the frame interval and a
//! keyframe over several. Bots that burst every frame would load the SFU
//! with arrival spikes real publishers do not cause (and flatter its
//! batching), so they pace the same way. A zero interval turns pacing off:
//! every packet of a frame is due at once.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A video frame being written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub rtp_time: u32,
    pub packets: usize,
    pub keyframe: bool,
}

/// One packet the pacer lets out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacedPacket {
    pub rtp_time: u32,
    pub keyframe: bool,
    /// The frame's first packet (carries the VP8 start bit).
    pub first: bool,
    /// The frame's last packet (carries the RTP marker).
    pub last: bool,
}

/// Frames waiting to go out, oldest first, and when the next packet may.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    frames: VecDeque<(Frame, usize)>,
    next_at: Instant,
}

impl Pacer {
    /// A pacer letting one packet out per `interval` (zero: no pacing).
    pub fn new(interval: Duration, now: Instant) -> Self {
        Pacer {
            interval,
            frames: VecDeque::new(),
            next_at: now,
        }
    }

    /// Queues a frame produced at `now`.
    pub fn push(&mut self, frame: Frame, now: Instant) {
        if frame.packets == 0 {
            return;
        }
        if self.frames.is_empty() {
            // An idle pacer saves no credit for later bursts.
            self.next_at = self.next_at.max(now);
        }
        self.frames.push_back((frame, 0));
    }

    /// The next packet, if one may leave at `now`. Call until `None`; a
    /// caller woken late gets every packet that became due meanwhile.
    pub fn poll(&mut self, now: Instant) -> Option<PacedPacket> {
        let (frame, written) = self.frames.front_mut()?;
        if self.next_at > now {
            return None;
        }
        let packet = PacedPacket {
            rtp_time: frame.rtp_time,
            keyframe: frame.keyframe,
            first: *written == 0,
            last: *written + 1 == frame.packets,
        };
        *written += 1;
        if packet.last {
            self.frames.pop_front();
        }
        self.next_at += self.interval;
        Some(packet)
    }

    /// When the next queued packet is due; `None` when nothing is queued.
    pub fn due_at(&self) -> Option<Instant> {
        (!self.frames.is_empty()).then_some(self.next_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(packets: usize) -> Frame {
        Frame {
            rtp_time: 90,
            packets,
            keyframe: false,
        }
    }

    /// Polls at 1 ms steps for `ms` milliseconds; returns how many packets
    /// left at each step.
    fn drain_by_ms(pacer: &mut Pacer, start: Instant, ms: u64) -> Vec<usize> {
        (0..ms)
            .map(|i| {
                let now = start + Duration::from_millis(i);
                std::iter::from_fn(|| pacer.poll(now)).count()
            })
            .collect()
    }

    #[test]
    fn packets_leave_one_per_interval_with_first_and_last_marked() {
        let start = Instant::now();
        let mut pacer = Pacer::new(Duration::from_millis(2), start);
        pacer.push(frame(3), start);
        let first = pacer.poll(start).unwrap();
        assert!(first.first && !first.last);
        assert_eq!(pacer.poll(start), None, "the second packet is not due yet");
        assert_eq!(pacer.due_at(), Some(start + Duration::from_millis(2)));
        let second = pacer.poll(start + Duration::from_millis(2)).unwrap();
        assert!(!second.first && !second.last);
        let third = pacer.poll(start + Duration::from_millis(4)).unwrap();
        assert!(third.last);
        assert_eq!(pacer.due_at(), None);
    }

    #[test]
    fn a_keyframe_spreads_over_several_frame_intervals() {
        let start = Instant::now();
        let mut pacer = Pacer::new(Duration::from_millis(2), start);
        pacer.push(frame(24), start);
        pacer.push(frame(6), start + Duration::from_millis(33));
        let per_ms = drain_by_ms(&mut pacer, start, 70);
        assert!(per_ms.iter().all(|&n| n <= 1), "{per_ms:?}");
        assert_eq!(per_ms.iter().sum::<usize>(), 30);
        // The last packet of the 30 leaves at 29 * 2 ms.
        assert_eq!(per_ms.iter().rposition(|&n| n == 1), Some(58));
    }

    #[test]
    fn a_late_caller_gets_what_became_due_but_idle_time_earns_no_burst() {
        let start = Instant::now();
        let mut pacer = Pacer::new(Duration::from_millis(2), start);
        pacer.push(frame(6), start);
        let late = start + Duration::from_millis(5);
        assert_eq!(std::iter::from_fn(|| pacer.poll(late)).count(), 3);
        // Drain the rest, then stay idle for a second.
        let rest = start + Duration::from_millis(20);
        assert_eq!(std::iter::from_fn(|| pacer.poll(rest)).count(), 3);
        let later = start + Duration::from_secs(1);
        pacer.push(frame(6), later);
        assert_eq!(std::iter::from_fn(|| pacer.poll(later)).count(), 1);
    }

    #[test]
    fn a_zero_interval_sends_every_frame_at_once() {
        let start = Instant::now();
        let mut pacer = Pacer::new(Duration::ZERO, start);
        pacer.push(frame(24), start);
        assert_eq!(std::iter::from_fn(|| pacer.poll(start)).count(), 24);
        pacer.push(frame(0), start);
        assert_eq!(pacer.due_at(), None, "an empty frame queues nothing");
    }
}
