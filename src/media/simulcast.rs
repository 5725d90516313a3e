//! Simulcast layers of a published track: which encodings a publisher sends
//! (by rid), in which order of quality, what each costs, and where a layer's
//! keyframes start.
//!
//! A publisher that does not simulcast has one layer without a rid. Layers
//! are ordered from lowest to highest quality, so a layer's index is its
//! quality: the down tracks and the allocator speak in indices. The ordering
//! comes from the rid names when they follow a known scheme (`q`/`h`/`f`,
//! `l`/`m`/`h`, `low`/`mid`/`high`), else from the order of the SDP's
//! `a=simulcast` line (browsers list encodings as the application gave them,
//! and the convention is low to high).

use std::time::{Duration, Instant};

use str0m::format::{
    detect_av1_keyframe, detect_h264_nalu, detect_vp8_keyframe, detect_vp9_keyframe, Codec,
};
use str0m::media::{Mid, Rid};
use str0m::rtp::Ssrc;

use super::core::MediaCore;
use super::ids::ParticipantId;
use super::membership::TrackRef;

/// Bytes a packet costs on the wire beyond its payload: RTP header with
/// extensions, SRTP tag, UDP and IP headers.
pub const PACKET_OVERHEAD: usize = 60;

/// The most layers a track may have; more rids than this are ignored.
pub const MAX_LAYERS: usize = 4;

/// One encoding of a published track.
#[derive(Debug)]
pub struct Layer {
    pub rid: Option<Rid>,
    /// Its SSRC, once a packet was seen.
    pub ssrc: Option<Ssrc>,
    /// Whether packets flow (str0m's `StreamPaused` says when they stop).
    pub flowing: bool,
    pub meter: BitrateMeter,
    /// Frame size from the latest keyframe, where the codec carries it (VP8).
    pub size: Option<(u16, u16)>,
    /// RTP timestamp of the latest packet, to tell where frames start.
    last_timestamp: Option<u32>,
}

impl Layer {
    pub fn new(rid: Option<Rid>) -> Self {
        Layer {
            rid,
            ssrc: None,
            flowing: false,
            meter: BitrateMeter::default(),
            size: None,
            last_timestamp: None,
        }
    }

    /// Records a packet with `timestamp`; returns whether it starts a frame.
    pub fn on_packet(&mut self, timestamp: u32, bytes: usize) -> bool {
        self.meter.add(bytes + PACKET_OVERHEAD);
        let starts_frame = self.last_timestamp != Some(timestamp);
        self.last_timestamp = Some(timestamp);
        starts_frame
    }
}

/// The layers for `rids` (none: one layer without a rid), lowest quality first.
pub fn layers_for(rids: &[Rid]) -> Vec<Layer> {
    if rids.is_empty() {
        return vec![Layer::new(None)];
    }
    let mut ordered: Vec<Rid> = rids.iter().copied().take(MAX_LAYERS).collect();
    let known = RID_SCHEMES
        .iter()
        .find(|names| ordered.iter().all(|rid| names.contains(&&**rid)));
    if let Some(names) = known {
        ordered.sort_by_key(|rid| names.iter().position(|n| *n == &**rid));
    }
    ordered
        .into_iter()
        .map(|rid| Layer::new(Some(rid)))
        .collect()
}

/// Rid names whose order of quality is known, lowest first.
const RID_SCHEMES: [&[&str]; 3] = [&["q", "h", "f"], &["l", "m", "h"], &["low", "mid", "high"]];

/// Whether `payload` (of `codec`) begins a keyframe, given whether its
/// packet starts a frame. Layer switches happen only here.
pub fn starts_keyframe(codec: Codec, payload: &[u8], starts_frame: bool) -> bool {
    const IDR: u8 = 5;
    const SPS: u8 = 7;
    match codec {
        // True only for the first packet of a keyframe.
        Codec::Vp8 => detect_vp8_keyframe(payload),
        // Chrome opens an H.264 keyframe with SPS/PPS, then the IDR slice.
        Codec::H264 => {
            starts_frame && (detect_h264_nalu(payload, SPS) || detect_h264_nalu(payload, IDR))
        }
        Codec::Vp9 => starts_frame && detect_vp9_keyframe(payload),
        Codec::Av1 => starts_frame && detect_av1_keyframe(payload),
        _ => false,
    }
}

/// Width and height of a VP8 keyframe whose first packet is `payload`
/// (RFC 6386 §9.1: 3-byte frame tag, start code, 14-bit sizes).
pub fn vp8_keyframe_size(payload: &[u8], descriptor_len: usize) -> Option<(u16, u16)> {
    let frame = payload.get(descriptor_len..)?;
    if frame.len() < 10 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff;
    let height = u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff;
    (width > 0 && height > 0).then_some((width, height))
}

/// The length of a VP8 payload descriptor (RFC 7741 §4.2), if well formed.
pub fn vp8_descriptor_len(payload: &[u8]) -> Option<usize> {
    let first = *payload.first()?;
    if first & 0x80 == 0 {
        return Some(1);
    }
    let ext = *payload.get(1)?;
    let mut len = 2;
    if ext & 0x80 != 0 {
        len += if *payload.get(len)? & 0x80 != 0 { 2 } else { 1 };
    }
    if ext & 0x40 != 0 {
        len += 1;
    }
    if ext & 0x30 != 0 {
        len += 1;
    }
    (len < payload.len()).then_some(len)
}

/// How often every subscriber's allocation is redone even when nothing
/// announced a change (layer prices drift).
pub const ALLOCATION_INTERVAL: Duration = Duration::from_millis(500);

impl MediaCore {
    /// str0m saw a publisher's layer start (`flowing`) or stop.
    pub(super) fn on_layer_paused(
        &mut self,
        owner: ParticipantId,
        mid: Mid,
        rid: Option<Rid>,
        flowing: bool,
    ) {
        let Some(p) = self.members.participants.get_mut(&owner) else {
            return;
        };
        let Some(t) = p.published.iter_mut().find(|t| t.mid == mid) else {
            return;
        };
        if let Some(layer) = t.layers.iter_mut().find(|l| l.rid == rid) {
            tracing::debug!(participant = %owner, %mid, ?rid, flowing, "layer");
            layer.flowing = flowing;
            self.layers_changed = true;
        }
    }

    /// The simulcast part of housekeeping: closes meter windows, redoes
    /// allocations (at once when layers started or stopped, else every
    /// [`ALLOCATION_INTERVAL`]), asks again for keyframes that switches
    /// still wait for (the throttle spaces them), and updates dynacast.
    pub(super) fn simulcast_round(&mut self, now: Instant) {
        for p in self.members.participants.values_mut() {
            for t in &mut p.published {
                for l in &mut t.layers {
                    l.meter.tick(now);
                }
            }
        }
        if !self.layers_changed && now < self.next_allocation {
            return;
        }
        self.layers_changed = false;
        self.next_allocation = now + ALLOCATION_INTERVAL;
        self.allocate_all(now);
        let waiting: Vec<(TrackRef, usize)> = self
            .members
            .participants
            .values()
            .flat_map(|p| &p.subscriptions)
            .filter_map(|s| Some((s.source?, s.down.waiting_for()?)))
            .collect();
        for (source, layer) in waiting {
            self.request_keyframe(now, source, Some(layer));
        }
        self.update_dynacast();
    }
}

/// How often a meter turns bytes into a rate.
const METER_WINDOW: Duration = Duration::from_millis(500);

/// A layer's bitrate, from the bytes seen over half-second windows and
/// smoothed over a few of them. A layer that stops keeps its last rate, so
/// the allocator can still price it when it comes back.
#[derive(Debug, Default)]
pub struct BitrateMeter {
    bytes: u64,
    since: Option<Instant>,
    bps: u64,
}

impl BitrateMeter {
    pub fn add(&mut self, bytes: usize) {
        self.bytes += bytes as u64;
    }

    /// Closes the window if it is over (the core's housekeeping calls this).
    pub fn tick(&mut self, now: Instant) {
        let Some(since) = self.since else {
            self.since = Some(now);
            self.bytes = 0;
            return;
        };
        let elapsed = now.saturating_duration_since(since);
        if elapsed < METER_WINDOW {
            return;
        }
        if self.bytes > 0 {
            let rate = (self.bytes as f64 * 8.0 / elapsed.as_secs_f64()) as u64;
            // Rise at once (a keyframe or a layer coming up must not be
            // under-priced), fall gently (one quiet window is no trend).
            self.bps = match self.bps {
                0 => rate,
                old if rate > old => rate,
                old => (old * 3 + rate) / 4,
            };
        }
        self.bytes = 0;
        self.since = Some(now);
    }

    /// Bits per second; 0 until a window closed with bytes in it.
    pub fn bps(&self) -> u64 {
        self.bps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rids(names: &[&str]) -> Vec<Rid> {
        names.iter().map(|n| Rid::from(*n)).collect()
    }

    fn order(names: &[&str]) -> Vec<String> {
        layers_for(&rids(names))
            .iter()
            .map(|l| l.rid.unwrap().to_string())
            .collect()
    }

    #[test]
    fn known_rid_schemes_are_ordered_low_to_high_and_others_keep_sdp_order() {
        assert_eq!(order(&["f", "q", "h"]), ["q", "h", "f"]);
        assert_eq!(order(&["h", "m", "l"]), ["l", "m", "h"]);
        assert_eq!(order(&["high", "low"]), ["low", "high"]);
        assert_eq!(order(&["2", "0", "1"]), ["2", "0", "1"]);
        let single = layers_for(&[]);
        assert_eq!(single.len(), 1);
        assert!(single[0].rid.is_none());
    }

    #[test]
    fn frames_start_where_the_timestamp_changes() {
        let mut layer = Layer::new(None);
        assert!(layer.on_packet(3000, 1000));
        assert!(!layer.on_packet(3000, 1000));
        assert!(layer.on_packet(6000, 1000));
    }

    #[test]
    fn h264_keyframes_start_at_sps_or_idr_on_a_frame_start() {
        let sps = [0x67, 0x42, 0x00, 0x1f];
        let idr = [0x65, 0x88, 0x84];
        let slice = [0x41, 0x9a, 0x00];
        assert!(starts_keyframe(Codec::H264, &sps, true));
        assert!(starts_keyframe(Codec::H264, &idr, true));
        assert!(!starts_keyframe(Codec::H264, &idr, false));
        assert!(!starts_keyframe(Codec::H264, &slice, true));
    }

    #[test]
    fn vp8_keyframe_sizes_are_read_past_the_descriptor() {
        // X=1, S=1, PID=0; I=1 with a 15-bit picture id.
        let mut payload = vec![0x90, 0x80, 0x80, 0x01];
        // Frame tag (keyframe), start code, 640 x 360.
        payload.extend_from_slice(&[0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01]);
        let len = vp8_descriptor_len(&payload).unwrap();
        assert_eq!(len, 4);
        assert!(starts_keyframe(Codec::Vp8, &payload, true));
        assert_eq!(vp8_keyframe_size(&payload, len), Some((640, 360)));
        assert_eq!(vp8_keyframe_size(&payload[..8], len), None);
    }

    #[test]
    fn a_meter_rises_at_once_falls_gently_and_remembers_when_stopped() {
        let t0 = Instant::now();
        let mut m = BitrateMeter::default();
        m.tick(t0);
        m.add(62_500); // 500 kbit in 1 s
        m.tick(t0 + Duration::from_secs(1));
        assert_eq!(m.bps(), 500_000);
        m.add(250_000); // 2 Mbit/s
        m.tick(t0 + Duration::from_secs(2));
        assert_eq!(m.bps(), 2_000_000);
        m.add(62_500);
        m.tick(t0 + Duration::from_secs(3));
        assert_eq!(m.bps(), 1_625_000);
        m.tick(t0 + Duration::from_secs(4));
        assert_eq!(m.bps(), 1_625_000, "a stopped layer keeps its price");
    }
}
