//! [`DownTrack`]: one subscription's outgoing stream, and everything that is
//! rewritten on the way out to it.
//!
//! Publisher and subscriber negotiate separately, and one subscriber stream
//! may be fed by different sources over its life (a WHEP slot switching
//! publisher; later, simulcast layers). The down track makes the subscriber
//! see one continuous stream: its own sequence numbers (which also drive the
//! SRTP rollover counter), continuous timestamps, the subscriber's payload
//! type for the codec, and only the header extensions that belong end to end.
//! A layer selector plugs in here: it decides which source packets reach
//! [`DownTrack::forward`], and switches at a keyframe, where the rewriters
//! already rebase.

use str0m::format::PayloadParams;
use str0m::media::{MediaKind, Mid, Pt};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, Ssrc};
use str0m::Rtc;

use super::rewrite::{match_payload_type, PtMap, SeqRewriter, TimestampRewriter};
use super::stats::DropReason;

/// The rewriting state of one subscription's outgoing stream.
#[derive(Debug, Default)]
pub struct DownTrack {
    seq: SeqRewriter,
    timestamps: TimestampRewriter,
    pts: PtMap,
}

/// A publisher packet as the forwarder hands it to each down track: the
/// packet, its codec and the extension values carried end to end (both
/// looked up once per packet, not once per subscriber).
pub struct SourcePacket<'a> {
    pub packet: &'a RtpPacket,
    pub kind: MediaKind,
    pub params: &'a PayloadParams,
    pub extensions: &'a ExtensionValues,
}

impl DownTrack {
    /// Rewrites `source` for this subscriber and writes it into `rtc`'s send
    /// stream on `mid`. The packet leaves at the subscriber's next flush.
    pub fn forward(
        &mut self,
        rtc: &mut Rtc,
        mid: Mid,
        source: &SourcePacket<'_>,
    ) -> Result<(), DropReason> {
        let packet = source.packet;
        let pt = self.payload_type(rtc, mid, packet.header.payload_type, source.params)?;
        let (seq, timestamp) = self
            .rewrite(
                packet.header.ssrc,
                *packet.seq_no,
                packet.header.timestamp,
                frame_step(source.params),
            )
            .ok_or(DropReason::TooOld)?;
        let mut api = rtc.direct_api();
        let stream = api
            .stream_tx_by_mid(mid, None)
            .ok_or(DropReason::NoStream)?;
        stream.write_rtp(
            RtpWrite::new(
                pt,
                seq.into(),
                timestamp,
                packet.timestamp,
                packet.payload.clone(),
            )
            .marker(packet.header.marker)
            .ext_vals(source.extensions.clone())
            .nackable(source.kind == MediaKind::Video),
        );
        Ok(())
    }

    /// The m-line was renegotiated: payload types may have changed.
    pub fn renegotiated(&mut self) {
        self.pts.clear();
    }

    /// The output sequence number and timestamp for a source packet, or
    /// `None` when it is older than this stream can express.
    fn rewrite(&mut self, ssrc: Ssrc, seq: u64, timestamp: u32, step: u32) -> Option<(u64, u32)> {
        let seq = self.seq.rewrite(ssrc, seq)?;
        Some((seq, self.timestamps.rewrite(ssrc, timestamp, step)))
    }

    /// The subscriber's payload type for the source's `pt`, looked up in the
    /// subscriber's negotiated codecs once and cached.
    fn payload_type(
        &mut self,
        rtc: &Rtc,
        mid: Mid,
        pt: Pt,
        params: &PayloadParams,
    ) -> Result<Pt, DropReason> {
        let out = match self.pts.get(pt) {
            Some(out) => out,
            None => {
                let accepted = rtc
                    .media(mid)
                    .map(|m| m.remote_pts().to_vec())
                    .unwrap_or_default();
                let out = match_payload_type(params, rtc.codec_config().params(), &accepted);
                self.pts.insert(pt, out);
                out
            }
        };
        out.ok_or(DropReason::CodecUnsupported)
    }
}

/// A plausible RTP timestamp gap between frames of `params`' codec: one
/// 20 ms audio frame, one 30 fps video frame. Keeps timestamps moving
/// forward when the source changes.
fn frame_step(params: &PayloadParams) -> u32 {
    let rate = params.spec().clock_rate.get();
    match params.spec().codec.is_audio() {
        true => rate / 50,
        false => rate / 30,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_switch_continues_sequence_numbers_and_timestamps() {
        let mut down = DownTrack::default();
        let (a, b) = (Ssrc::from(1), Ssrc::from(2));
        assert_eq!(down.rewrite(a, 5000, 90_000, 3000), Some((1, 90_000)));
        assert_eq!(down.rewrite(a, 5001, 93_000, 3000), Some((2, 93_000)));
        // A new source with unrelated bases lands right after the last packet.
        assert_eq!(down.rewrite(b, 17, 7, 3000), Some((3, 96_000)));
        assert_eq!(down.rewrite(b, 18, 3007, 3000), Some((4, 99_000)));
    }

    #[test]
    fn a_packet_from_before_the_stream_started_is_dropped() {
        let mut down = DownTrack::default();
        let a = Ssrc::from(1);
        assert_eq!(down.rewrite(a, 100, 0, 3000), Some((1, 0)));
        assert_eq!(down.rewrite(a, 99, 0, 3000), None);
        assert_eq!(down.rewrite(a, 101, 3000, 3000), Some((2, 3000)));
    }

    #[test]
    fn frame_steps_follow_the_clock_rate() {
        let config = str0m::format::CodecConfig::new_with_defaults();
        let find = |codec| {
            *config
                .params()
                .iter()
                .find(|p| p.spec().codec == codec)
                .unwrap()
        };
        assert_eq!(frame_step(&find(str0m::format::Codec::Opus)), 960);
        assert_eq!(frame_step(&find(str0m::format::Codec::Vp8)), 3000);
    }
}
