//! The simulcast layers a bot publishes with `--simulcast`: three encodings
//! of its video with rids `q`, `h` and `f` (quarter, half and full size), as
//! the bundled client sends its camera, and what each one costs.
//!
//! Sizes and rates are those of a 720p camera in libwebrtc's simulcast
//! table: 320×180 at 150 kbit/s, 640×360 at 500 kbit/s, 1280×720 at
//! 1.7 Mbit/s. The top layer gets the configured video bitrate (what a
//! single-layer bot sends, so `f` alone is comparable with a single-layer
//! run) and the others the same share of it as in that table.

use serde::Serialize;

/// One simulcast layer, lowest quality first (the order is the index the
/// payloads and the reports use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// Quarter size, 320×180.
    Q,
    /// Half size, 640×360.
    H,
    /// Full size, 1280×720.
    F,
}

/// Nominal rates of the layers in kbit/s; the last is the top layer's.
const NOMINAL_KBPS: [u64; 3] = [150, 500, 1700];

impl Layer {
    /// Every layer, lowest first.
    pub const ALL: [Layer; 3] = [Layer::Q, Layer::H, Layer::F];

    /// 0 for `q` up to 2 for `f`.
    pub const fn index(self) -> usize {
        self as usize
    }

    pub fn from_index(index: usize) -> Option<Layer> {
        Layer::ALL.get(index).copied()
    }

    /// The rid it is sent with.
    pub const fn rid(self) -> &'static str {
        match self {
            Layer::Q => "q",
            Layer::H => "h",
            Layer::F => "f",
        }
    }

    pub fn from_rid(rid: &str) -> Option<Layer> {
        Layer::ALL.into_iter().find(|l| l.rid() == rid)
    }

    /// Width and height of its frames, as its keyframes say.
    pub const fn size(self) -> (u16, u16) {
        match self {
            Layer::Q => (320, 180),
            Layer::H => (640, 360),
            Layer::F => (1280, 720),
        }
    }

    /// Its bitrate when the top layer sends `top_bps`.
    pub fn bitrate(self, top_bps: u64) -> u64 {
        let top = NOMINAL_KBPS[NOMINAL_KBPS.len() - 1];
        top_bps * NOMINAL_KBPS[self.index()] / top
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_layer_gets_the_configured_rate_and_the_others_their_share() {
        let rates: Vec<u64> = Layer::ALL.iter().map(|l| l.bitrate(1_700_000)).collect();
        assert_eq!(rates, [150_000, 500_000, 1_700_000]);
        let half: Vec<u64> = Layer::ALL.iter().map(|l| l.bitrate(850_000)).collect();
        assert_eq!(half, [75_000, 250_000, 850_000]);
        assert_eq!(Layer::Q.bitrate(0), 0);
    }

    #[test]
    fn layers_are_named_by_rid_and_ordered_by_index() {
        for (i, layer) in Layer::ALL.into_iter().enumerate() {
            assert_eq!(layer.index(), i);
            assert_eq!(Layer::from_index(i), Some(layer));
            assert_eq!(Layer::from_rid(layer.rid()), Some(layer));
        }
        assert_eq!(Layer::from_rid("x"), None);
        assert_eq!(Layer::from_index(3), None);
        assert!(Layer::Q < Layer::F);
        assert_eq!(Layer::H.size(), (640, 360));
    }
}
