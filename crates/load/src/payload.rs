//! Synthetic media payloads that look like real ones to the server and carry
//! what a receiving bot needs to check them.
//!
//! Video payloads start with a VP8 payload descriptor (RFC 7741) and, on the
//! first packet of a frame, a VP8 frame tag whose inverse key-frame bit marks
//! keyframes, so `detect_vp8_keyframe` and friends see real structure. After
//! that comes a marker, the sender's index, a per-track counter and the send
//! time in microseconds since the Unix epoch (bots and server share the host
//! clock), padded to the requested size.

use std::time::{SystemTime, UNIX_EPOCH};

use str0m::media::MediaKind;

const MAGIC: &[u8; 4] = b"CSCD";
/// Bytes of VP8 descriptor + frame tag before our header.
const VP8_PREFIX: usize = 4;
const HEADER: usize = 4 + 4 + 8 + 8;

/// What a bot writes into each payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub sender: u32,
    pub counter: u64,
    pub sent_micros: u64,
}

/// Microseconds since the Unix epoch now.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Builds a video payload of `size` bytes (at least the header).
pub fn video(stamp: Stamp, start_of_frame: bool, keyframe: bool, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size.max(VP8_PREFIX + HEADER));
    // X=0, R=0, N=0, S=start of partition, PID=0.
    out.push(if start_of_frame { 0x10 } else { 0x00 });
    // VP8 frame tag: bit 0 is the inverse key-frame flag; show_frame set.
    out.push(if keyframe { 0x10 } else { 0x11 });
    out.extend_from_slice(&[0x00, 0x00]);
    write_header(&mut out, stamp);
    out.resize(size.max(out.len()), (stamp.counter % 251) as u8);
    out
}

/// Builds an audio payload of `size` bytes (at least the header).
pub fn audio(stamp: Stamp, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size.max(HEADER));
    write_header(&mut out, stamp);
    out.resize(size.max(out.len()), (stamp.counter % 251) as u8);
    out
}

fn write_header(out: &mut Vec<u8>, stamp: Stamp) {
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&stamp.sender.to_be_bytes());
    out.extend_from_slice(&stamp.counter.to_be_bytes());
    out.extend_from_slice(&stamp.sent_micros.to_be_bytes());
}

/// Reads the stamp back from an audio or video payload built here.
pub fn parse(payload: &[u8]) -> Option<Stamp> {
    let start = [0, VP8_PREFIX]
        .into_iter()
        .find(|&at| payload.get(at..at + 4) == Some(MAGIC))?;
    let h = payload.get(start + 4..start + HEADER)?;
    Some(Stamp {
        sender: u32::from_be_bytes(h[0..4].try_into().ok()?),
        counter: u64::from_be_bytes(h[4..12].try_into().ok()?),
        sent_micros: u64::from_be_bytes(h[12..20].try_into().ok()?),
    })
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

/// Whether a payload from [`video`] carries a keyframe start.
pub fn is_keyframe(payload: &[u8]) -> bool {
    payload.len() > 1 && payload[0] & 0x10 != 0 && payload[1] & 0x01 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_in_both_shapes() {
        let stamp = Stamp {
            sender: 7,
            counter: 123_456,
            sent_micros: 1_700_000_000_000_000,
        };
        let v = video(stamp, true, true, 1150);
        assert_eq!(v.len(), 1150);
        assert_eq!(parse(&v), Some(stamp));
        assert!(is_keyframe(&v));
        assert!(str0m::format::detect_vp8_keyframe(&v));
        assert!(!is_keyframe(&video(stamp, true, false, 1150)));
        assert!(!is_keyframe(&video(stamp, false, true, 1150)));
        let a = audio(stamp, 90);
        assert_eq!(a.len(), 90);
        assert_eq!(parse(&a), Some(stamp));
        assert_eq!(kind_of(&a), MediaKind::Audio);
        assert_eq!(kind_of(&v), MediaKind::Video);
        assert_eq!(parse(b"garbage"), None);
    }
}
