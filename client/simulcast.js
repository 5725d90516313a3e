/**
 * Simulcast for the published camera: the layer ladder (rids `q`, `h`, `f`,
 * scaled down by 4, 2 and 1, in that order, low to high, as
 * docs/PROTOCOL.md names them), each layer's bit rate cap for the capture
 * size, adding the camera's transceiver with those encodings, and dynacast:
 * `publish_layers` from the server turns layers nobody needs off and on
 * (`RTCRtpSender.setParameters`), so they cost no encoder time or uplink.
 *
 * The codec is left to negotiation (VP8 and H.264 both simulcast). When the
 * browser refuses the encodings, or the capture is too small for more than
 * one layer, the camera is published as a single encoding instead.
 */
import { log, errorText } from './log.js';

/** The layer ladder at a 1280×720 capture, low to high (the order Chrome sends them in). */
const LADDER = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrateAt720p: 150_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrateAt720p: 500_000 },
  { rid: 'f', scaleResolutionDownBy: 1, maxBitrateAt720p: 1_700_000 },
];
const PIXELS_720P = 1280 * 720;
/** Bit rate caps scale with the capture's pixel count, up to that of 1920×1080. */
const MAX_PIXEL_FACTOR = (1920 * 1080) / PIXELS_720P;
/** No layer's cap goes below this, whatever the capture size. */
const MIN_LAYER_BITRATE = 50_000;
/** A layer narrower than this is left out (Chrome would not encode it anyway). */
const MIN_LAYER_WIDTH = 160;
/** Capture size assumed when the track cannot tell its own. */
const DEFAULT_CAPTURE = { width: 640, height: 480 };

/** The capture size of a camera track, from its settings. */
function captureSize(track) {
  const settings = typeof track.getSettings === 'function' ? track.getSettings() : {};
  const width = settings.width > 0 ? settings.width : DEFAULT_CAPTURE.width;
  const height = settings.height > 0 ? settings.height : DEFAULT_CAPTURE.height;
  return { width, height };
}

/**
 * The send encodings for a camera captured at `width`×`height`: the ladder's
 * layers that are at least MIN_LAYER_WIDTH wide (the full one always), each
 * with its bit rate cap scaled to the capture's pixel count.
 */
export function simulcastEncodings({ width, height }) {
  const factor = Math.min(MAX_PIXEL_FACTOR, (width * height) / PIXELS_720P);
  return LADDER
    .filter((layer) => layer.scaleResolutionDownBy === 1 || width / layer.scaleResolutionDownBy >= MIN_LAYER_WIDTH)
    .map((layer) => ({
      rid: layer.rid,
      active: true,
      scaleResolutionDownBy: layer.scaleResolutionDownBy,
      maxBitrate: Math.max(MIN_LAYER_BITRATE, Math.round(layer.maxBitrateAt720p * factor)),
    }));
}

/**
 * Adds the `sendonly` transceiver for the camera `track`: simulcast when the
 * capture allows more than one layer and the browser accepts the encodings,
 * otherwise one encoding capped at the full layer's bit rate.
 */
export function addCameraTransceiver(pc, track, streams) {
  const size = captureSize(track);
  const encodings = simulcastEncodings(size);
  if (encodings.length > 1) {
    try {
      const transceiver = pc.addTransceiver(track, { direction: 'sendonly', streams, sendEncodings: encodings });
      log(`camera ${size.width}x${size.height}: simulcast`, encodings.map((e) => `${e.rid}@${e.maxBitrate}`).join(' '));
      return transceiver;
    } catch (err) {
      log('simulcast refused, publishing one encoding:', errorText(err));
    }
  } else {
    log(`camera ${size.width}x${size.height}: too small for simulcast, publishing one encoding`);
  }
  const single = { active: true, maxBitrate: encodings[encodings.length - 1].maxBitrate };
  try {
    return pc.addTransceiver(track, { direction: 'sendonly', streams, sendEncodings: [single] });
  } catch (err) {
    log('encoding parameters refused, publishing with defaults:', errorText(err));
    return pc.addTransceiver(track, { direction: 'sendonly', streams });
  }
}

/** Logs how many layers the browser kept once the offer is made (it may drop some). */
export function logNegotiatedLayers(transceiver) {
  if (!transceiver) return;
  const { encodings = [] } = transceiver.sender.getParameters();
  const rids = encodings.map((e) => e.rid).filter(Boolean);
  log(`camera publishes ${encodings.length} encoding(s)`, rids.length ? `rids ${rids.join(',')}` : '');
}

/**
 * `publish_layers`: sets `active` on the encodings of the publish transceiver
 * with that mid, by rid; rids the message does not name keep their state.
 * Never throws: a failure is logged and the layers stay as they were.
 */
export async function onPublishLayers(s, msg) {
  try {
    const pc = s.publishPc;
    const transceiver = pc && pc.getTransceivers().find((t) => t.mid != null && t.mid === String(msg.mid));
    if (!transceiver) {
      log('publish_layers for unknown mid', msg.mid);
      return;
    }
    const wanted = new Map((Array.isArray(msg.layers) ? msg.layers : [])
      .filter((l) => l && typeof l.rid === 'string')
      .map((l) => [l.rid, !!l.active]));
    const params = transceiver.sender.getParameters();
    let changed = false;
    for (const encoding of params.encodings || []) {
      if (!encoding.rid || !wanted.has(encoding.rid)) continue;
      if (encoding.active !== wanted.get(encoding.rid)) {
        encoding.active = wanted.get(encoding.rid);
        changed = true;
      }
    }
    if (!changed) return;
    await transceiver.sender.setParameters(params);
    log('publish layers', (params.encodings || []).map((e) => `${e.rid}:${e.active ? 'on' : 'off'}`).join(' '));
  } catch (err) {
    log('publish_layers could not be applied:', errorText(err));
  }
}

/** The camera sender's encodings as plain objects (a test and console hook). */
export function publishEncodings(s) {
  const transceiver = s.publishTransceivers.get('video');
  if (!transceiver) return [];
  const { encodings = [] } = transceiver.sender.getParameters();
  return encodings.map(({ rid, active, scaleResolutionDownBy, maxBitrate }) =>
    ({ rid, active, scaleResolutionDownBy, maxBitrate }));
}
