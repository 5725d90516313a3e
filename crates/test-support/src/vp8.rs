//! VP8-shaped RTP payloads for simulated simulcast publishers: a real
//! payload descriptor (RFC 7741) with a 15-bit picture id, a VP8 payload
//! header saying keyframe or not (with the keyframe's frame size), then a
//! readable tag naming sender, layer and frame, so a receiver can tell which
//! layer each packet came from and check it byte for byte.

/// One layer of a simulated simulcast publisher.
#[derive(Debug, Clone)]
pub struct LayerSource {
    pub rid: &'static str,
    /// Bytes per 20 ms frame.
    pub frame_bytes: usize,
    pub size: (u16, u16),
    pub picture_id: u16,
    pub frame: u64,
    pub seq: u64,
    /// The next frame is a keyframe (asked for, or the first).
    pub keyframe_due: bool,
    /// The publisher stopped sending this layer.
    pub stopped: bool,
}

/// The q/h/f ladder at 150 / 500 / 1700 kbit/s at 50 frames per second.
pub fn ladder() -> Vec<LayerSource> {
    [
        ("q", 150_000, (320, 180)),
        ("h", 500_000, (640, 360)),
        ("f", 1_700_000, (1280, 720)),
    ]
    .into_iter()
    .map(|(rid, bps, size)| LayerSource {
        rid,
        frame_bytes: bps / 8 / 50,
        size,
        picture_id: 0,
        frame: 0,
        seq: 1000,
        keyframe_due: true,
        stopped: false,
    })
    .collect()
}

/// Largest payload per packet.
const MAX_PAYLOAD: usize = 1100;

/// The packets of `layer`'s next frame (payloads), advancing its counters;
/// the last one carries the marker bit.
pub fn next_frame(sender: &str, layer_index: usize, layer: &mut LayerSource) -> Vec<Vec<u8>> {
    let keyframe = std::mem::take(&mut layer.keyframe_due);
    let frame_bytes = if keyframe {
        layer.frame_bytes * 3
    } else {
        layer.frame_bytes
    };
    let count = frame_bytes.div_ceil(MAX_PAYLOAD).max(1);
    let mut packets = Vec::with_capacity(count);
    for i in 0..count {
        let first = i == 0;
        let pid = layer.picture_id;
        let mut p = vec![
            if first { 0x90 } else { 0x80 },
            0x80,
            0x80 | (pid >> 8) as u8,
            pid as u8,
        ];
        if first {
            if keyframe {
                let (w, h) = layer.size;
                p.extend_from_slice(&[0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a]);
                p.extend_from_slice(&w.to_le_bytes());
                p.extend_from_slice(&h.to_le_bytes());
            } else {
                p.extend_from_slice(&[0x01, 0x00, 0x00]);
            }
        }
        let kind = if keyframe { "K" } else { "D" };
        p.extend_from_slice(
            format!("{sender}:L{layer_index}:{kind}:{}:{i}:", layer.frame).as_bytes(),
        );
        let size = (frame_bytes / count).max(p.len());
        p.resize(size, (layer.frame % 251) as u8);
        packets.push(p);
    }
    layer.frame += 1;
    layer.picture_id = (layer.picture_id + 1) & 0x7fff;
    packets
}

/// What a receiver reads back from a payload [`next_frame`] made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    pub layer: usize,
    pub keyframe: bool,
    /// First packet of its frame.
    pub first: bool,
    pub frame: u64,
    pub picture_id: u16,
}

/// Parses a payload made by [`next_frame`].
pub fn tag_of(payload: &[u8]) -> Option<Tag> {
    let first = *payload.first()? == 0x90;
    let picture_id = (u16::from(*payload.get(2)? & 0x7f) << 8) | u16::from(*payload.get(3)?);
    let text_at = match (first, payload.get(4)?) {
        (false, _) => 4,
        (true, 0x00) => 14,
        (true, _) => 7,
    };
    let text = String::from_utf8_lossy(payload.get(text_at..(text_at + 60).min(payload.len()))?);
    let mut fields = text.split(':');
    fields.next()?;
    let layer = fields.next()?.strip_prefix('L')?.parse().ok()?;
    let keyframe = fields.next()? == "K";
    let frame = fields.next()?.parse().ok()?;
    Some(Tag {
        layer,
        keyframe,
        first,
        frame,
        picture_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::format::detect_vp8_keyframe;
    use str0m::rtp::Vp8Descriptor;

    #[test]
    fn frames_parse_as_vp8_and_tag_their_layer() {
        let mut layers = ladder();
        let key = next_frame("alice", 2, &mut layers[2]);
        let delta = next_frame("alice", 2, &mut layers[2]);
        assert!(key.len() > 1);
        assert!(detect_vp8_keyframe(&key[0]));
        assert!(
            !detect_vp8_keyframe(&key[1]),
            "only the first packet starts it"
        );
        assert!(!detect_vp8_keyframe(&delta[0]));
        let d = Vp8Descriptor::parse(&delta[0]).unwrap();
        assert_eq!(d.picture_id(), Some(1));
        let tag = tag_of(&key[0]).unwrap();
        assert_eq!(
            (tag.layer, tag.keyframe, tag.first, tag.frame),
            (2, true, true, 0)
        );
        let tag = tag_of(&delta[1]).unwrap();
        assert_eq!(
            (tag.layer, tag.keyframe, tag.first, tag.frame),
            (2, false, false, 1)
        );
    }
}
