//! What a bot sends: one outgoing RTP stream per published audio track, and
//! for video either one stream or, with simulcast, one per layer (`q`, `h`,
//! `f`). Each stream has its own sequence numbers, payload counter, RTP
//! timestamps, VP8 picture ids, keyframe clock and pacer, as the encodings
//! of a browser's simulcast sender do.
//!
//! Video frames are sized from the stream's bitrate (keyframes 4 times a
//! delta frame) and cut into whole packets of the configured payload size;
//! a simulcast layer's frames smaller than one packet go out as one smaller
//! packet, as an encoder's would. A stream sends a keyframe first, then
//! every keyframe interval (jittered) and when the server asks for one, at
//! most every [`MIN_KEYFRAME_SPACING`]. Dynacast can switch a layer off: its
//! encoder stops, and starts again with a keyframe.

use std::time::{Duration, Instant};

use str0m::media::{MediaKind, Mid, Pt, Rid};
use str0m::rtp::{RtpWrite, StreamTx};

use super::pacer::{Frame, Pacer};
use super::payload::{self, LayeredPacket, Stamp};
use super::simulcast::Layer;
use super::BotOptions;

/// A keyframe request is answered at once unless a keyframe went out this
/// recently (encoders rate-limit them the same way).
pub const MIN_KEYFRAME_SPACING: Duration = Duration::from_millis(300);

/// Audio packets are 20 ms of 48 kHz Opus.
const AUDIO_INTERVAL: Duration = Duration::from_millis(20);
const AUDIO_TICKS_PER_PACKET: u64 = 960;

/// A keyframe is this many delta frames' worth of bytes.
const KEYFRAME_SCALE: usize = 4;

/// When a stream's next keyframe is due.
#[derive(Debug)]
struct KeyframeClock {
    interval: Duration,
    last: Option<Instant>,
    /// Time from `last` to the next periodic keyframe.
    gap: Duration,
    requested: bool,
}

impl KeyframeClock {
    fn new(interval: Duration) -> Self {
        KeyframeClock {
            interval,
            last: None,
            gap: jittered(interval),
            requested: false,
        }
    }

    /// Whether the next frame is a keyframe: the first one, a periodic one,
    /// or one asked for (rate-limited).
    fn due(&self, now: Instant) -> bool {
        let Some(last) = self.last else {
            return true;
        };
        now >= last + self.gap || (self.requested && now >= last + MIN_KEYFRAME_SPACING)
    }

    fn sent(&mut self, now: Instant) {
        self.last = Some(now);
        self.gap = jittered(self.interval);
        self.requested = false;
    }
}

/// Sender state for one outgoing RTP stream.
pub(crate) struct Outgoing {
    pub mid: Mid,
    /// The simulcast layer's rid; `None` for a stream without simulcast.
    pub rid: Option<Rid>,
    pub kind: MediaKind,
    pt: Pt,
    /// The simulcast layer it carries (video with simulcast only).
    layer: Option<Layer>,
    /// Video bits per second of this stream.
    bitrate_bps: u64,
    seq: u64,
    counter: u64,
    /// Added to every RTP timestamp: each simulcast layer has its own base.
    timestamp_base: u32,
    /// The picture id of the frame being written (simulcast layers).
    picture_id: u16,
    /// When the next frame (or audio packet) is due.
    next_at: Instant,
    /// Video frames waiting to go out.
    pacer: Pacer,
    keyframes: KeyframeClock,
    /// Dynacast: whether the server wants this layer (its encoder runs).
    active: bool,
}

impl Outgoing {
    /// The streams for one published track of `kind` on `mid`: one, or one
    /// per layer for video with `opts.simulcast`.
    pub fn for_track(
        mid: Mid,
        kind: MediaKind,
        pt: Pt,
        opts: &BotOptions,
        now: Instant,
    ) -> Vec<Outgoing> {
        let layers: Vec<Option<Layer>> = match (kind, opts.simulcast) {
            (MediaKind::Video, true) => Layer::ALL.into_iter().map(Some).collect(),
            _ => vec![None],
        };
        layers
            .into_iter()
            .map(|layer| {
                let bitrate_bps = match layer {
                    Some(l) => l.bitrate(opts.video_bitrate_bps),
                    None => opts.video_bitrate_bps,
                };
                let mut o = Outgoing {
                    mid,
                    rid: layer.map(|l| Rid::from(l.rid())),
                    kind,
                    pt,
                    layer,
                    bitrate_bps,
                    seq: rand::random::<u16>() as u64 / 2,
                    counter: 0,
                    // A single stream keeps the timestamps it always had.
                    timestamp_base: layer.map_or(0, |_| rand::random()),
                    picture_id: rand::random::<u16>() & 0x7fff,
                    next_at: now,
                    pacer: Pacer::new(Duration::ZERO, now),
                    keyframes: KeyframeClock::new(opts.keyframe_interval),
                    active: true,
                };
                o.pacer = Pacer::new(o.pacing_interval(opts), now);
                o
            })
            .collect()
    }

    /// The earliest moment this stream has something to do.
    pub fn wake_at(&self) -> Option<Instant> {
        let frame = (self.active || self.kind == MediaKind::Audio).then_some(self.next_at);
        match (frame, self.pacer.due_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether anything is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.wake_at().is_some_and(|at| at <= now)
    }

    /// The server asked for a keyframe on this stream.
    pub fn request_keyframe(&mut self) {
        self.keyframes.requested = true;
    }

    /// Dynacast: starts or stops this layer's encoder. Returns whether it
    /// was stopped now. A layer that starts again begins with a keyframe.
    pub fn set_active(&mut self, active: bool, now: Instant) -> bool {
        let stopped = self.active && !active;
        if active && !self.active {
            self.keyframes.last = None;
            self.next_at = self.next_at.max(now);
        }
        self.active = active;
        stopped
    }

    /// Advances the sequence number and counter for one more packet and
    /// stamps it with the send time.
    fn next_stamp(&mut self, sender: u32) -> Stamp {
        self.counter += 1;
        self.seq += 1;
        Stamp {
            sender,
            counter: self.counter,
            sent_micros: payload::now_micros(),
        }
    }

    /// Starts the frame or audio packet whose time has come and writes the
    /// packets the pacer lets out; returns how many were written.
    pub fn send_due(
        &mut self,
        stream: &mut StreamTx,
        now: Instant,
        opened_at: Instant,
        opts: &BotOptions,
    ) -> u64 {
        let mut sent = 0;
        if self.next_at <= now {
            match self.kind {
                MediaKind::Audio => {
                    let stamp = self.next_stamp(opts.index);
                    let time = (self.counter * AUDIO_TICKS_PER_PACKET) as u32;
                    let data = payload::audio(stamp, opts.audio_packet_bytes);
                    stream.write_rtp(
                        RtpWrite::new(self.pt, self.seq.into(), time, now, data).marker(true),
                    );
                    sent += 1;
                    self.next_at += AUDIO_INTERVAL;
                }
                MediaKind::Video => {
                    let fps = opts.video_fps.max(1) as u64;
                    if self.active {
                        let keyframe = self.keyframes.due(now);
                        if keyframe {
                            self.keyframes.sent(now);
                        }
                        let ticks =
                            self.next_at.duration_since(opened_at).as_micros() as u64 * 9 / 100;
                        let frame = Frame {
                            rtp_time: self.timestamp_base.wrapping_add(ticks as u32),
                            packets: self.frame_packets(keyframe, opts),
                            keyframe,
                        };
                        self.pacer.push(frame, now);
                    }
                    self.next_at += Duration::from_micros(1_000_000 / fps);
                }
            }
            // Don't try to catch up after a stall: skip missed slots.
            if self.next_at < now {
                self.next_at = now;
            }
        }
        while let Some(packet) = self.pacer.poll(now) {
            let bytes = self.packet_bytes(packet.keyframe, opts);
            let stamp = self.next_stamp(opts.index);
            let data = match self.layer {
                None => payload::video(stamp, packet.first, packet.keyframe, bytes),
                Some(layer) => {
                    if packet.first {
                        self.picture_id = (self.picture_id + 1) & 0x7fff;
                    }
                    let place = LayeredPacket {
                        layer,
                        picture_id: self.picture_id,
                        first: packet.first,
                        keyframe: packet.keyframe,
                    };
                    payload::layered_video(stamp, place, bytes)
                }
            };
            stream.write_rtp(
                RtpWrite::new(self.pt, self.seq.into(), packet.rtp_time, now, data)
                    .marker(packet.last)
                    .nackable(true),
            );
            sent += 1;
        }
        sent
    }

    /// Bytes of one frame of this stream.
    fn frame_bytes(&self, keyframe: bool, opts: &BotOptions) -> usize {
        let fps = opts.video_fps.max(1) as u64;
        let delta = (self.bitrate_bps / 8 / fps) as usize;
        if keyframe {
            delta * KEYFRAME_SCALE
        } else {
            delta
        }
    }

    /// Whole packets of the configured size in one frame: the bitrate is
    /// met within half a packet per frame.
    fn frame_packets(&self, keyframe: bool, opts: &BotOptions) -> usize {
        let size = opts.video_packet_size();
        ((self.frame_bytes(keyframe, opts) + size / 2) / size).max(1)
    }

    /// Payload bytes of each packet of a frame: the configured size; for a
    /// simulcast layer, less when the frame is smaller than its packets.
    fn packet_bytes(&self, keyframe: bool, opts: &BotOptions) -> usize {
        let size = opts.video_packet_size();
        if self.layer.is_none() {
            return size;
        }
        let share = self.frame_bytes(keyframe, opts) / self.frame_packets(keyframe, opts);
        share.clamp(payload::MIN_LAYERED_BYTES, size)
    }

    /// Time between two paced packets of this stream (zero: no pacing).
    fn pacing_interval(&self, opts: &BotOptions) -> Duration {
        match self.layer {
            None => opts.pacing_interval(),
            Some(_) => pacing_interval(
                self.packet_bytes(false, opts),
                self.bitrate_bps,
                opts.pacing_factor,
            ),
        }
    }
}

/// Time between packets of `packet_bytes` paced at `factor` times
/// `bitrate_bps`; zero when pacing is off.
pub(crate) fn pacing_interval(packet_bytes: usize, bitrate_bps: u64, factor: f64) -> Duration {
    if factor <= 0.0 || bitrate_bps == 0 {
        return Duration::ZERO;
    }
    let bits = packet_bytes as f64 * 8.0;
    Duration::from_secs_f64(bits / (bitrate_bps as f64 * factor))
}

/// `interval` give or take up to 20 %, drawn anew for every keyframe. A
/// keyframe request (a subscriber joining) makes every publisher in a room
/// send a keyframe at once; with one fixed interval they would then stay in
/// step and burst together for the rest of the run, which real encoders,
/// each on its own camera clock, do not.
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.8 + 0.4 * rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(opts: &BotOptions, now: Instant) -> Vec<Outgoing> {
        Outgoing::for_track(Mid::from("1"), MediaKind::Video, Pt::from(96), opts, now)
    }

    /// Bits per second a stream's delta frames carry.
    fn delta_bps(o: &Outgoing, opts: &BotOptions) -> u64 {
        let per_frame = o.frame_packets(false, opts) * o.packet_bytes(false, opts);
        per_frame as u64 * 8 * opts.video_fps as u64
    }

    #[test]
    fn a_single_stream_sends_the_configured_rate_in_full_packets() {
        let opts = BotOptions::new(([127, 0, 0, 1], 0).into(), "r", 0);
        let streams = video(&opts, Instant::now());
        assert_eq!(streams.len(), 1);
        let o = &streams[0];
        assert_eq!(o.rid, None);
        assert_eq!(o.frame_packets(false, &opts), 6);
        assert_eq!(o.packet_bytes(false, &opts), 1150);
        assert_eq!(o.frame_packets(true, &opts), 25);
        assert_eq!(o.pacing_interval(&opts), opts.pacing_interval());
    }

    #[test]
    fn simulcast_splits_the_video_into_three_layers_at_their_share() {
        let mut opts = BotOptions::new(([127, 0, 0, 1], 0).into(), "r", 0);
        opts.simulcast = true;
        let streams = video(&opts, Instant::now());
        let rids: Vec<String> = streams.iter().map(|o| o.rid.unwrap().to_string()).collect();
        assert_eq!(rids, ["q", "h", "f"]);
        let rates: Vec<u64> = streams.iter().map(|o| o.bitrate_bps).collect();
        assert_eq!(rates, [150_000, 500_000, 1_700_000]);
        // The top layer is packetized exactly like a single stream.
        let f = &streams[2];
        assert_eq!(f.frame_packets(false, &opts), 6);
        assert_eq!(f.packet_bytes(false, &opts), 1150);
        // The small layers send smaller packets rather than overshoot.
        for (o, want) in streams.iter().zip([150_000u64, 500_000]) {
            let got = delta_bps(o, &opts);
            assert!(got <= want && got * 100 >= want * 95, "{got} vs {want}");
        }
        assert_eq!(streams[0].frame_packets(false, &opts), 1);
        assert_eq!(streams[0].packet_bytes(false, &opts), 625);
        // Each layer is paced at the factor times its own rate.
        let q = &streams[0];
        let want = pacing_interval(625, 150_000, opts.pacing_factor);
        assert_eq!(q.pacing_interval(&opts), want);
        assert!(streams.iter().all(|o| o.keyframes.due(Instant::now())));
    }

    #[test]
    fn keyframes_come_first_then_periodically_or_on_request_but_spaced() {
        let t0 = Instant::now();
        let mut clock = KeyframeClock::new(Duration::from_secs(3));
        assert!(clock.due(t0));
        clock.sent(t0);
        assert!(!clock.due(t0 + Duration::from_millis(100)));
        clock.requested = true;
        assert!(!clock.due(t0 + Duration::from_millis(100)), "spaced");
        assert!(clock.due(t0 + MIN_KEYFRAME_SPACING));
        clock.sent(t0 + MIN_KEYFRAME_SPACING);
        assert!(clock.due(t0 + MIN_KEYFRAME_SPACING + Duration::from_millis(3600)));
    }

    #[test]
    fn a_layer_switched_back_on_starts_with_a_keyframe_and_does_not_wake_while_off() {
        let mut opts = BotOptions::new(([127, 0, 0, 1], 0).into(), "r", 0);
        opts.simulcast = true;
        let now = Instant::now();
        let mut f = video(&opts, now).pop().unwrap();
        f.keyframes.sent(now);
        assert!(f.set_active(false, now), "stopped now");
        assert!(!f.set_active(false, now), "already stopped");
        assert_eq!(f.wake_at(), None, "nothing queued, nothing to encode");
        assert!(!f.set_active(true, now));
        assert!(f.keyframes.due(now));
        assert!(f.due(now));
    }
}
