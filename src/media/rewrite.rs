//! The arithmetic of rewriting forwarded RTP, the parts a [`DownTrack`](super::downtrack::DownTrack) is made of: sequence numbers, timestamps, payload types, header extensions.
//!
//! str0m derives the SRTP rollover counter from the extended sequence number we
//! pass to `write_rtp`, so every subscriber stream keeps its own counter that
//! starts near zero. A publisher's extended sequence number is never passed
//! through. This module is pure arithmetic: no str0m state, no time.

use str0m::format::{CodecConfig, PayloadParams};
use str0m::media::Pt;
use str0m::rtp::{ExtensionValues, Ssrc, Vp8Descriptor, Vp8Patch};

/// Maps a source's extended sequence numbers onto one subscriber stream.
///
/// The mapping is an offset, so retransmitted and reordered packets land on
/// the same output number as the original would have. When the source SSRC
/// changes (publisher restarted its encoder, or a later simulcast layer
/// switch), the offset is rebased so the output continues without a gap.
#[derive(Debug, Default, Clone)]
pub struct SeqRewriter {
    source: Option<Ssrc>,
    offset: i64,
    highest_out: u64,
}

impl SeqRewriter {
    /// The output sequence number for `seq` from `ssrc`, or `None` when the
    /// packet is older than anything this stream can still express (it came
    /// before the stream started).
    pub fn rewrite(&mut self, ssrc: Ssrc, seq: u64) -> Option<u64> {
        if self.source != Some(ssrc) {
            self.source = Some(ssrc);
            // Continue right after the highest number sent so far (start at 1).
            self.offset = (self.highest_out as i64 + 1) - seq as i64;
        }
        let out = seq as i64 + self.offset;
        if out < 1 {
            return None;
        }
        let out = out as u64;
        self.highest_out = self.highest_out.max(out);
        Some(out)
    }

    /// The next packet continues right after the highest number sent, even
    /// from the same source (forwarding resumes after a pause).
    pub fn rebase(&mut self) {
        self.source = None;
    }
}

/// Keeps a subscriber stream's RTP timestamps continuous across source changes.
///
/// The first source passes through unchanged. When the SSRC changes (a WHEP
/// viewer switching publisher), the offset is rebased so the new source's
/// first packet lands one `step` after the last timestamp sent.
#[derive(Debug, Default, Clone)]
pub struct TimestampRewriter {
    source: Option<Ssrc>,
    offset: u32,
    last_out: Option<u32>,
}

impl TimestampRewriter {
    pub fn rewrite(&mut self, ssrc: Ssrc, timestamp: u32, step: u32) -> u32 {
        if self.source != Some(ssrc) {
            self.source = Some(ssrc);
            self.offset = match self.last_out {
                Some(last) => last.wrapping_add(step).wrapping_sub(timestamp),
                None => 0,
            };
        }
        let out = timestamp.wrapping_add(self.offset);
        self.last_out = Some(out);
        out
    }

    /// The next packet lands one `step` after the last, even from the same
    /// source (forwarding resumes after a pause).
    pub fn rebase(&mut self) {
        self.source = None;
    }
}

/// Keeps a subscriber's VP8 picture ids and TL0PICIDX continuous when its
/// source changes (a simulcast layer switch): each layer counts its own, and
/// a decoder seeing a jump takes it for lost frames.
///
/// The first source passes through unpatched; after a change, the offsets
/// make the new source's first picture follow the last one sent.
#[derive(Debug, Default, Clone)]
pub struct Vp8Rewriter {
    source: Option<Ssrc>,
    picture_offset: u16,
    tl0_offset: u8,
    last_picture: Option<u16>,
    last_tl0: Option<u8>,
}

impl Vp8Rewriter {
    /// The patch that rewrites `descriptor` (of a packet from `ssrc`) for
    /// this subscriber, or `None` when it goes out unchanged.
    pub fn rewrite(&mut self, ssrc: Ssrc, descriptor: &Vp8Descriptor) -> Option<Vp8Patch> {
        let picture = descriptor.picture_id();
        let tl0 = descriptor.tl0_pic_idx();
        if self.source != Some(ssrc) {
            self.source = Some(ssrc);
            self.picture_offset = match (self.last_picture, picture) {
                (Some(last), Some(first)) => {
                    last.wrapping_add(1).wrapping_sub(first) & PICTURE_ID_MASK
                }
                _ => 0,
            };
            self.tl0_offset = match (self.last_tl0, tl0) {
                (Some(last), Some(first)) => last.wrapping_add(1).wrapping_sub(first),
                _ => 0,
            };
        }
        let picture = picture.map(|p| p.wrapping_add(self.picture_offset) & PICTURE_ID_MASK);
        let tl0 = tl0.map(|t| t.wrapping_add(self.tl0_offset));
        if picture.is_some() {
            self.last_picture = picture;
        }
        if tl0.is_some() {
            self.last_tl0 = tl0;
        }
        if self.picture_offset == 0 && self.tl0_offset == 0 {
            return None;
        }
        let mut patch = descriptor.patch();
        if let Some(p) = picture {
            // A 7-bit picture id wraps at 128; its patch takes the low bits.
            patch = match descriptor.patch().picture_id(p).build() {
                Ok(_) => patch.picture_id(p),
                Err(_) => patch.picture_id(p & 0x7f),
            };
        }
        if let Some(t) = tl0 {
            patch = patch.tl0_pic_idx(t);
        }
        patch.build().ok()
    }

    /// The next packet follows the last picture sent, even from the same source.
    pub fn rebase(&mut self) {
        self.source = None;
    }
}

/// VP8 picture ids are 15 bits.
const PICTURE_ID_MASK: u16 = 0x7fff;

/// Caches which subscriber payload type carries a publisher payload type.
///
/// Publisher and subscriber negotiate their payload type numbers separately,
/// so VP8 may be 96 on one and 120 on the other. A handful of entries covers
/// any real stream; a linear scan beats hashing at this size.
#[derive(Debug, Default, Clone)]
pub struct PtMap {
    entries: Vec<(Pt, Option<Pt>)>,
}

impl PtMap {
    /// Cached mapping for `source`, if known: `Some(None)` means "the
    /// subscriber cannot receive this codec".
    pub fn get(&self, source: Pt) -> Option<Option<Pt>> {
        self.entries
            .iter()
            .find(|(s, _)| *s == source)
            .map(|(_, t)| *t)
    }

    /// Remember the mapping for `source`.
    pub fn insert(&mut self, source: Pt, target: Option<Pt>) {
        self.entries.retain(|(s, _)| *s != source);
        self.entries.push((source, target));
    }

    /// Forget everything (after renegotiation).
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

/// Picks the subscriber payload type for the publisher's codec `source`:
/// the best match among `local` params whose type the subscriber accepted.
///
/// Runs once per (subscription, payload type), so the small allocation here
/// stays off the per-packet path.
pub fn match_payload_type(
    source: &PayloadParams,
    local: &[PayloadParams],
    accepted: &[Pt],
) -> Option<Pt> {
    let candidates: Vec<PayloadParams> = local
        .iter()
        .filter(|p| accepted.contains(&p.pt()))
        .copied()
        .collect();
    CodecConfig::new_from_payload_params(candidates)
        .match_params(*source)
        .map(|p| p.pt())
}

/// The header extension values worth carrying from publisher to subscriber.
///
/// Transport-level values (mid, rid, transport-cc, abs-send-time) belong to
/// each hop and are written by str0m for the subscriber's connection.
pub fn forwarded_extensions(source: &ExtensionValues) -> ExtensionValues {
    ExtensionValues {
        audio_level: source.audio_level,
        voice_activity: source.voice_activity,
        video_orientation: source.video_orientation,
        video_content_type: source.video_content_type,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_packet_maps_to_one_and_keeps_spacing() {
        let mut rw = SeqRewriter::default();
        let ssrc = Ssrc::from(7);
        assert_eq!(rw.rewrite(ssrc, 70_000), Some(1));
        assert_eq!(rw.rewrite(ssrc, 70_001), Some(2));
        assert_eq!(rw.rewrite(ssrc, 70_005), Some(6));
    }

    #[test]
    fn retransmission_lands_on_original_number_and_older_is_dropped() {
        let mut rw = SeqRewriter::default();
        let ssrc = Ssrc::from(7);
        rw.rewrite(ssrc, 500);
        rw.rewrite(ssrc, 502);
        assert_eq!(rw.rewrite(ssrc, 501), Some(2));
        assert_eq!(rw.rewrite(ssrc, 499), None);
    }

    #[test]
    fn ssrc_change_continues_after_highest_output() {
        let mut rw = SeqRewriter::default();
        rw.rewrite(Ssrc::from(1), 10);
        rw.rewrite(Ssrc::from(1), 11);
        assert_eq!(rw.rewrite(Ssrc::from(2), 9_000), Some(3));
        assert_eq!(rw.rewrite(Ssrc::from(2), 9_001), Some(4));
    }

    #[test]
    fn timestamps_pass_through_then_continue_across_a_source_switch() {
        let mut ts = TimestampRewriter::default();
        assert_eq!(ts.rewrite(Ssrc::from(1), 1000, 3000), 1000);
        assert_eq!(ts.rewrite(Ssrc::from(1), 4000, 3000), 4000);
        assert_eq!(ts.rewrite(Ssrc::from(2), u32::MAX - 5, 3000), 7000);
        assert_eq!(ts.rewrite(Ssrc::from(2), 2, 3000), 7008, "wraps like RTP");
    }

    /// A VP8 payload descriptor with a 15-bit picture id and TL0PICIDX.
    fn vp8(picture: u16, tl0: u8) -> Vp8Descriptor {
        let payload = [
            0x90,
            0xe0,
            0x80 | (picture >> 8) as u8,
            picture as u8,
            tl0,
            0x00,
            0x00,
        ];
        Vp8Descriptor::parse(&payload).unwrap()
    }

    /// The patch that rewrites [`vp8`]`(picture, tl0)` to `(to_picture, to_tl0)`.
    fn expect(picture: u16, tl0: u8, to_picture: u16, to_tl0: u8) -> Option<Vp8Patch> {
        vp8(picture, tl0)
            .patch()
            .picture_id(to_picture)
            .tl0_pic_idx(to_tl0)
            .build()
            .ok()
    }

    #[test]
    fn vp8_picture_ids_continue_across_a_layer_switch() {
        let mut rw = Vp8Rewriter::default();
        let (a, b) = (Ssrc::from(1), Ssrc::from(2));
        assert!(
            rw.rewrite(a, &vp8(100, 7)).is_none(),
            "first source unpatched"
        );
        assert!(rw.rewrite(a, &vp8(101, 8)).is_none());
        assert_eq!(
            rw.rewrite(b, &vp8(32_000, 250)),
            expect(32_000, 250, 102, 9)
        );
        assert_eq!(
            rw.rewrite(b, &vp8(32_767, 251)),
            expect(32_767, 251, 869, 10)
        );
        assert_eq!(
            rw.rewrite(b, &vp8(0, 252)),
            expect(0, 252, 870, 11),
            "wraps at 15 bits"
        );
    }

    #[test]
    fn pt_map_caches_positive_and_negative_answers() {
        let mut map = PtMap::default();
        assert_eq!(map.get(96.into()), None);
        map.insert(96.into(), Some(120.into()));
        map.insert(100.into(), None);
        assert_eq!(map.get(96.into()), Some(Some(120.into())));
        assert_eq!(map.get(100.into()), Some(None));
        map.clear();
        assert_eq!(map.get(96.into()), None);
    }

    #[test]
    fn payload_type_match_respects_what_the_subscriber_accepted() {
        let config = str0m::format::CodecConfig::new_with_defaults();
        let params = config.params();
        let vp8 = *params
            .iter()
            .find(|p| p.spec().codec == str0m::format::Codec::Vp8)
            .unwrap();
        let all: Vec<Pt> = params.iter().map(|p| p.pt()).collect();
        assert_eq!(match_payload_type(&vp8, params, &all), Some(vp8.pt()));
        let without_vp8: Vec<Pt> = all.into_iter().filter(|pt| *pt != vp8.pt()).collect();
        assert_eq!(match_payload_type(&vp8, params, &without_vp8), None);
    }
}
