//! [`DownTrack`]: one subscription's outgoing stream, which layer of its
//! source it forwards, and everything that is rewritten on the way out.
//!
//! Publisher and subscriber negotiate separately, and one subscriber stream
//! is fed by different sources over its life: simulcast layers of one track,
//! or a WHEP slot switching publisher. The down track makes the subscriber
//! see one continuous stream: its own sequence numbers (which also drive the
//! SRTP rollover counter), continuous timestamps and VP8 picture ids, the
//! subscriber's payload type for the codec, and only the header extensions
//! that belong end to end.
//!
//! Layer selection: the forwarder hands every layer's packets to every down
//! track of the track; the down track forwards exactly one layer, `current`.
//! The allocator sets `target`; the switch happens at the first keyframe of
//! the target layer, so the subscriber's decoder never sees a frame that
//! refers to another layer. Pausing (target `None`) stops at once; resuming
//! waits for a keyframe too. Only a single-layer track's very first packet
//! goes out without one, as before simulcast.

use std::time::Instant;

use str0m::format::PayloadParams;
use str0m::media::{MediaKind, Mid, Pt};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, Ssrc, Vp8Descriptor};
use str0m::Rtc;

use super::rewrite::{match_payload_type, PtMap, SeqRewriter, TimestampRewriter, Vp8Rewriter};
use super::stats::DropReason;

/// The rewriting and layer state of one subscription's outgoing stream.
#[derive(Debug)]
pub struct DownTrack {
    seq: SeqRewriter,
    timestamps: TimestampRewriter,
    vp8: Vp8Rewriter,
    pts: PtMap,
    /// The layer being forwarded, if any.
    current: Option<usize>,
    /// The layer the allocator chose; `None` pauses the stream.
    target: Option<usize>,
    /// Set once the stream was paused: resuming waits for a keyframe and
    /// continues the numbering after the gap.
    paused_once: bool,
    /// The source and arrival time of the last packet sent, for the
    /// timestamp step across a switch.
    last_sent: Option<(Ssrc, Instant)>,
}

impl Default for DownTrack {
    fn default() -> Self {
        DownTrack {
            seq: SeqRewriter::default(),
            timestamps: TimestampRewriter::default(),
            vp8: Vp8Rewriter::default(),
            pts: PtMap::default(),
            current: None,
            target: Some(0),
            paused_once: false,
            last_sent: None,
        }
    }
}

/// A publisher packet as the forwarder hands it to each down track: the
/// packet, its codec, layer and keyframe flag, and the extension values
/// carried end to end (all worked out once per packet, not per subscriber).
pub struct SourcePacket<'a> {
    pub packet: &'a RtpPacket,
    pub kind: MediaKind,
    pub params: &'a PayloadParams,
    pub extensions: &'a ExtensionValues,
    /// Index of the packet's layer (0 = lowest quality).
    pub layer: usize,
    /// Whether the track has more than one layer.
    pub simulcast: bool,
    /// Whether this packet begins a keyframe.
    pub keyframe: bool,
    /// The VP8 payload descriptor, for VP8.
    pub vp8: Option<Vp8Descriptor>,
}

/// What [`DownTrack::forward`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarded {
    /// Written, on the layer already forwarded.
    Sent,
    /// Written, and forwarding moved to this packet's layer: from `from`
    /// (`None`: the stream started or resumed).
    Switched { from: Option<usize>, to: usize },
    /// Not for this subscriber (another layer, or paused).
    Skipped,
}

impl DownTrack {
    /// Rewrites `source` for this subscriber and writes it into `rtc`'s send
    /// stream on `mid`, if its layer is the one forwarded. The packet leaves
    /// at the subscriber's next flush.
    pub fn forward(
        &mut self,
        rtc: &mut Rtc,
        mid: Mid,
        source: &SourcePacket<'_>,
    ) -> Result<Forwarded, DropReason> {
        let outcome = self.select(source.layer, source.simulcast, source.keyframe);
        if outcome == Forwarded::Skipped {
            return Ok(outcome);
        }
        let packet = source.packet;
        let pt = self.payload_type(rtc, mid, packet.header.payload_type, source.params)?;
        let ssrc = packet.header.ssrc;
        let step = match self.last_sent {
            Some((last, at)) if last != ssrc || outcome != Forwarded::Sent => {
                elapsed_ticks(at, packet.timestamp, source.params)
            }
            _ => frame_step(source.params),
        };
        let (seq, timestamp) = self
            .rewrite(ssrc, *packet.seq_no, packet.header.timestamp, step)
            .ok_or(DropReason::TooOld)?;
        let patch = source.vp8.as_ref().and_then(|d| self.vp8.rewrite(ssrc, d));
        let mut api = rtc.direct_api();
        let stream = api
            .stream_tx_by_mid(mid, None)
            .ok_or(DropReason::NoStream)?;
        let mut write = RtpWrite::new(
            pt,
            seq.into(),
            timestamp,
            packet.timestamp,
            packet.payload.clone(),
        )
        .marker(packet.header.marker)
        .ext_vals(source.extensions.clone())
        .nackable(source.kind == MediaKind::Video);
        if let Some(patch) = patch {
            write = write.vp8_patch(patch);
        }
        // Forwarded media is not paced: the allocator keeps what is sent
        // within the estimate, as mediasoup and LiveKit do, and a pacer
        // queue would only add latency (and a timeout per packet). str0m
        // still runs TWCC estimation and paces its own probes.
        stream.set_unpaced(true);
        stream.write_rtp(write);
        self.last_sent = Some((ssrc, packet.timestamp));
        Ok(outcome)
    }

    /// Whether a packet of `layer` (of a track with several layers if
    /// `simulcast`; beginning a keyframe if `keyframe`) is forwarded, and
    /// whether forwarding switches to it.
    fn select(&mut self, layer: usize, simulcast: bool, keyframe: bool) -> Forwarded {
        if self.current == Some(layer) {
            return Forwarded::Sent;
        }
        if self.target != Some(layer) {
            return Forwarded::Skipped;
        }
        let first_of_single = self.current.is_none() && !self.paused_once && !simulcast;
        if !keyframe && !first_of_single {
            return Forwarded::Skipped;
        }
        let from = self.current.replace(layer);
        if from.is_none() && self.paused_once {
            self.seq.rebase();
            self.timestamps.rebase();
            self.vp8.rebase();
        }
        Forwarded::Switched { from, to: layer }
    }

    /// Sets the layer to forward (`None` pauses at once). Returns whether
    /// forwarding now waits for a keyframe on the target layer.
    pub fn set_target(&mut self, target: Option<usize>) -> bool {
        self.target = target;
        if target.is_none() && self.current.take().is_some() {
            self.paused_once = true;
        }
        self.waiting_for().is_some()
    }

    /// The layer whose keyframe forwarding waits for, if it waits.
    pub fn waiting_for(&self) -> Option<usize> {
        self.target.filter(|t| self.current != Some(*t))
    }

    /// The layer the allocator chose (`None`: paused).
    pub fn target(&self) -> Option<usize> {
        self.target
    }

    /// The layer being forwarded, if any.
    pub fn current(&self) -> Option<usize> {
        self.current
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

/// The RTP timestamp distance matching the wall-clock time from `from` to
/// `to` in `params`' clock (at least one tick), so a switch or resume keeps
/// media time in step with real time.
fn elapsed_ticks(from: Instant, to: Instant, params: &PayloadParams) -> u32 {
    let rate = u64::from(params.spec().clock_rate.get());
    let micros = to.saturating_duration_since(from).as_micros() as u64;
    ((micros * rate / 1_000_000) as u32).max(1)
}

/// A plausible RTP timestamp gap between frames of `params`' codec: one
/// 20 ms audio frame, one 30 fps video frame: the step when a source changes
/// and no packet was sent before.
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
    fn a_layer_switch_waits_for_a_keyframe_of_the_target_layer() {
        let mut down = DownTrack::default();
        assert!(down.set_target(Some(0)));
        assert_eq!(
            down.select(1, true, true),
            Forwarded::Skipped,
            "not the target"
        );
        assert_eq!(
            down.select(0, true, false),
            Forwarded::Skipped,
            "simulcast starts at a keyframe"
        );
        assert_eq!(
            down.select(0, true, true),
            Forwarded::Switched { from: None, to: 0 }
        );
        assert_eq!(down.select(0, true, false), Forwarded::Sent);
        assert!(down.set_target(Some(2)));
        assert_eq!(down.waiting_for(), Some(2));
        assert_eq!(
            down.select(0, true, false),
            Forwarded::Sent,
            "old layer until the switch"
        );
        assert_eq!(down.select(2, true, false), Forwarded::Skipped);
        assert_eq!(
            down.select(2, true, true),
            Forwarded::Switched {
                from: Some(0),
                to: 2
            }
        );
        assert_eq!(
            down.select(0, true, true),
            Forwarded::Skipped,
            "old layer dropped"
        );
        assert_eq!(down.waiting_for(), None);
    }

    #[test]
    fn pausing_stops_at_once_and_resuming_waits_for_a_keyframe() {
        let mut down = DownTrack::default();
        assert_eq!(
            down.select(0, false, false),
            Forwarded::Switched { from: None, to: 0 },
            "a single layer starts at once"
        );
        assert!(!down.set_target(None));
        assert_eq!(down.current(), None);
        assert_eq!(down.select(0, false, true), Forwarded::Skipped);
        assert!(down.set_target(Some(0)));
        assert_eq!(down.select(0, false, false), Forwarded::Skipped);
        assert_eq!(
            down.select(0, false, true),
            Forwarded::Switched { from: None, to: 0 }
        );
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
