//! Synthetic media payloads that look like real ones to the server and carry
//! what a receiving bot needs to check them.
//!
//! Every payload carries a stamp: a marker, the sender's index, a per-stream
//! counter and the send time in microseconds since the Unix epoch (bots and
//! server share the host clock), padded to the requested size. Audio
//! payloads are just that. Video payloads put a VP8 payload descriptor
//! (RFC 7741) and, on a frame's first packet, a VP8 frame header (RFC 6386
//! §9.1) in front of it, so `detect_vp8_keyframe`, `Vp8Descriptor` and the
//! server's keyframe size reader see real structure. Two shapes:
//!
//! - [`video`], a single-layer stream: a one-byte descriptor (no picture id)
//!   and a 3-byte frame tag on every packet, what bots sent before
//!   simulcast (kept so single-layer figures stay comparable);
//! - [`layered_video`], one simulcast layer: a descriptor with a 15-bit
//!   picture id, on a frame's first packet the frame tag, and on a
//!   keyframe's also the start code and the layer's frame size; the stamp
//!   is followed by the layer's index.

use std::time::{SystemTime, UNIX_EPOCH};

use str0m::media::MediaKind;

use super::simulcast::Layer;

/// Marks the stamp of audio and single-layer video.
const MAGIC: &[u8; 4] = b"CSCD";
/// Marks the stamp of a simulcast layer's payload (a layer index follows).
const LAYERED_MAGIC: &[u8; 4] = b"CSCL";
/// Bytes of VP8 descriptor + frame tag before the stamp of single-layer video.
const VP8_PREFIX: usize = 4;
/// A simulcast payload's descriptor: X=1, then I=1, then a 15-bit picture id.
const LAYERED_DESCRIPTOR: usize = 4;
/// The VP8 frame tag on an interframe's first packet.
const FRAME_TAG: usize = 3;
/// Frame tag, start code and sizes on a keyframe's first packet.
const KEYFRAME_HEADER: usize = 10;
/// The keyframe start code (RFC 6386 §9.1).
const START_CODE: [u8; 3] = [0x9d, 0x01, 0x2a];
const HEADER: usize = 4 + 4 + 8 + 8;

/// The smallest simulcast payload: the longest prefix, stamp and layer byte.
pub const MIN_LAYERED_BYTES: usize = LAYERED_DESCRIPTOR + KEYFRAME_HEADER + HEADER + 1;

/// What a bot writes into each payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub sender: u32,
    pub counter: u64,
    pub sent_micros: u64,
}

/// Where a simulcast video packet belongs: its layer, its frame's picture
/// id, and whether it is the first packet of that frame and of a keyframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayeredPacket {
    pub layer: Layer,
    /// 15 bits; counts the layer's frames.
    pub picture_id: u16,
    /// The frame's first packet (S=1: carries the frame header).
    pub first: bool,
    pub keyframe: bool,
}

/// Everything a received payload built here says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contents {
    pub stamp: Stamp,
    pub kind: MediaKind,
    /// The simulcast layer, for [`layered_video`] payloads.
    pub layer: Option<Layer>,
    /// Whether it begins a keyframe.
    pub keyframe: bool,
}

/// Microseconds since the Unix epoch now.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Builds a single-layer video payload of `size` bytes (at least the header).
pub fn video(stamp: Stamp, start_of_frame: bool, keyframe: bool, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size.max(VP8_PREFIX + HEADER));
    // X=0, R=0, N=0, S=start of partition, PID=0.
    out.push(if start_of_frame { 0x10 } else { 0x00 });
    // VP8 frame tag: bit 0 is the inverse key-frame flag; show_frame set.
    out.push(if keyframe { 0x10 } else { 0x11 });
    out.extend_from_slice(&[0x00, 0x00]);
    write_header(&mut out, MAGIC, stamp);
    out.resize(size.max(out.len()), (stamp.counter % 251) as u8);
    out
}

/// Builds the payload of one packet of a simulcast layer, `size` bytes (at
/// least [`MIN_LAYERED_BYTES`]).
pub fn layered_video(stamp: Stamp, packet: LayeredPacket, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size.max(MIN_LAYERED_BYTES));
    // X=1, S=start of the frame's first partition, PID=0.
    out.push(if packet.first { 0x90 } else { 0x80 });
    // I=1: a picture id follows; no TL0PICIDX, TID or KEYIDX.
    out.push(0x80);
    let picture_id = packet.picture_id & 0x7fff;
    // M=1: the picture id has 15 bits.
    out.push(0x80 | (picture_id >> 8) as u8);
    out.push(picture_id as u8);
    if packet.first {
        // Frame tag: bit 0 is the inverse key-frame flag, version 0,
        // show_frame set, first partition size left 0.
        out.extend_from_slice(&[if packet.keyframe { 0x10 } else { 0x11 }, 0x00, 0x00]);
        if packet.keyframe {
            let (width, height) = packet.layer.size();
            out.extend_from_slice(&START_CODE);
            // 14-bit sizes, little endian, no scaling.
            out.extend_from_slice(&(width & 0x3fff).to_le_bytes());
            out.extend_from_slice(&(height & 0x3fff).to_le_bytes());
        }
    }
    write_header(&mut out, LAYERED_MAGIC, stamp);
    out.push(packet.layer.index() as u8);
    out.resize(size.max(out.len()), (stamp.counter % 251) as u8);
    out
}

/// Builds an audio payload of `size` bytes (at least the header).
pub fn audio(stamp: Stamp, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size.max(HEADER));
    write_header(&mut out, MAGIC, stamp);
    out.resize(size.max(out.len()), (stamp.counter % 251) as u8);
    out
}

fn write_header(out: &mut Vec<u8>, magic: &[u8; 4], stamp: Stamp) {
    out.extend_from_slice(magic);
    out.extend_from_slice(&stamp.sender.to_be_bytes());
    out.extend_from_slice(&stamp.counter.to_be_bytes());
    out.extend_from_slice(&stamp.sent_micros.to_be_bytes());
}

/// Where the stamp of a payload built here starts, from its shape: at 0 for
/// audio, after the fixed prefix for single-layer video, after the
/// descriptor and the frame header (if the packet starts a frame) for a
/// simulcast layer.
fn stamp_offset(payload: &[u8]) -> Option<usize> {
    if payload.get(0..4) == Some(MAGIC) {
        return Some(0);
    }
    let first = *payload.first()?;
    if first & 0x80 == 0 {
        return Some(VP8_PREFIX);
    }
    if first & 0x10 == 0 {
        return Some(LAYERED_DESCRIPTOR);
    }
    let tag = *payload.get(LAYERED_DESCRIPTOR)?;
    let header = if tag & 0x01 == 0 {
        KEYFRAME_HEADER
    } else {
        FRAME_TAG
    };
    Some(LAYERED_DESCRIPTOR + header)
}

/// Reads a payload built here back; `None` for anything else.
pub fn read(payload: &[u8]) -> Option<Contents> {
    let start = stamp_offset(payload)?;
    let magic = payload.get(start..start + 4)?;
    let layered = magic == LAYERED_MAGIC;
    if !layered && magic != MAGIC {
        return None;
    }
    let h = payload.get(start + 4..start + HEADER)?;
    let stamp = Stamp {
        sender: u32::from_be_bytes(h[0..4].try_into().ok()?),
        counter: u64::from_be_bytes(h[4..12].try_into().ok()?),
        sent_micros: u64::from_be_bytes(h[12..20].try_into().ok()?),
    };
    let layer = match layered {
        true => Some(Layer::from_index(usize::from(
            *payload.get(start + HEADER)?,
        ))?),
        false => None,
    };
    let kind = if start == 0 {
        MediaKind::Audio
    } else {
        MediaKind::Video
    };
    Some(Contents {
        stamp,
        kind,
        layer,
        keyframe: kind == MediaKind::Video && str0m::format::detect_vp8_keyframe(payload),
    })
}

/// Reads the stamp back from any payload built here.
pub fn parse(payload: &[u8]) -> Option<Stamp> {
    read(payload).map(|c| c.stamp)
}

/// Whether a payload built here is audio (marker at offset 0) or video
/// (marker after the VP8 prefix).
pub fn kind_of(payload: &[u8]) -> MediaKind {
    if payload.get(0..4) == Some(MAGIC) {
        MediaKind::Audio
    } else {
        MediaKind::Video
    }
}

/// Whether a video payload built here begins a keyframe.
pub fn is_keyframe(payload: &[u8]) -> bool {
    kind_of(payload) == MediaKind::Video && str0m::format::detect_vp8_keyframe(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::format::detect_vp8_keyframe;
    use str0m::rtp::Vp8Descriptor;

    const STAMP: Stamp = Stamp {
        sender: 7,
        counter: 123_456,
        sent_micros: 1_700_000_000_000_000,
    };

    fn packet(layer: Layer, first: bool, keyframe: bool) -> LayeredPacket {
        LayeredPacket {
            layer,
            picture_id: 0x1234,
            first,
            keyframe,
        }
    }

    #[test]
    fn stamps_round_trip_in_both_shapes() {
        let v = video(STAMP, true, true, 1150);
        assert_eq!(v.len(), 1150);
        assert_eq!(parse(&v), Some(STAMP));
        assert!(is_keyframe(&v));
        assert!(detect_vp8_keyframe(&v));
        assert!(!is_keyframe(&video(STAMP, true, false, 1150)));
        assert!(!is_keyframe(&video(STAMP, false, true, 1150)));
        let a = audio(STAMP, 90);
        assert_eq!(a.len(), 90);
        assert_eq!(parse(&a), Some(STAMP));
        assert_eq!(kind_of(&a), MediaKind::Audio);
        assert!(!is_keyframe(&a));
        assert_eq!(kind_of(&v), MediaKind::Video);
        assert_eq!(parse(b"garbage"), None);
        assert_eq!(read(&v).unwrap().layer, None);
    }

    #[test]
    fn simulcast_descriptors_parse_with_their_picture_id() {
        for (first, keyframe) in [(true, true), (true, false), (false, true), (false, false)] {
            let p = layered_video(STAMP, packet(Layer::H, first, keyframe), 1000);
            assert_eq!(p.len(), 1000);
            assert_eq!(p[0], if first { 0x90 } else { 0x80 });
            assert_eq!(p[1], 0x80);
            let d = Vp8Descriptor::parse(&p).expect("descriptor parses");
            assert_eq!(d.picture_id(), Some(0x1234));
            assert_eq!(d.tl0_pic_idx(), None);
            assert_eq!(d.starts_keyframe(&p), first && keyframe);
        }
        let wrapped = LayeredPacket {
            picture_id: 0x8001,
            ..packet(Layer::Q, true, false)
        };
        let d = Vp8Descriptor::parse(&layered_video(STAMP, wrapped, 100)).unwrap();
        assert_eq!(d.picture_id(), Some(1), "15 bits");
    }

    #[test]
    fn keyframes_are_detected_exactly_on_a_keyframes_first_packet() {
        for layer in Layer::ALL {
            for (first, keyframe) in [(true, true), (true, false), (false, true), (false, false)] {
                let p = layered_video(STAMP, packet(layer, first, keyframe), 200);
                assert_eq!(
                    detect_vp8_keyframe(&p),
                    first && keyframe,
                    "{first} {keyframe}"
                );
                assert_eq!(is_keyframe(&p), first && keyframe);
            }
        }
    }

    #[test]
    fn keyframes_carry_the_start_code_and_the_layers_size() {
        for layer in Layer::ALL {
            let p = layered_video(STAMP, packet(layer, true, true), 300);
            let frame = &p[LAYERED_DESCRIPTOR..];
            assert_eq!(frame[0] & 0x01, 0, "P=0: keyframe");
            assert_eq!(frame[3..6], START_CODE);
            let width = u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff;
            let height = u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff;
            assert_eq!((width, height), layer.size());
        }
        let inter = layered_video(STAMP, packet(Layer::F, true, false), 300);
        assert_eq!(inter[LAYERED_DESCRIPTOR] & 0x01, 1, "P=1: interframe");
    }

    #[test]
    fn simulcast_payloads_read_back_with_their_layer_wherever_the_stamp_sits() {
        for layer in Layer::ALL {
            for (first, keyframe) in [(true, true), (true, false), (false, false)] {
                let p = layered_video(STAMP, packet(layer, first, keyframe), 64);
                assert_eq!(p.len(), 64);
                let c = read(&p).expect("reads back");
                assert_eq!(c.stamp, STAMP);
                assert_eq!(c.kind, MediaKind::Video);
                assert_eq!(c.layer, Some(layer));
                assert_eq!(c.keyframe, first && keyframe);
                assert_eq!(kind_of(&p), MediaKind::Video);
            }
        }
        let tiny = layered_video(STAMP, packet(Layer::F, true, true), 0);
        assert_eq!(
            tiny.len(),
            MIN_LAYERED_BYTES,
            "never shorter than its header"
        );
        assert!(read(&tiny).is_some());
    }
}
