/**
 * Call statistics: a per-tile overlay (`data-testid="stats-overlay"`,
 * toggled by `toggle-stats`) and a connection-quality badge on every tile
 * (`data-testid="connection-quality"`, `data-quality` = excellent, good or
 * poor), both from `getStats()` once a second.
 *
 * A remote tile shows what its video arrives as on the subscribe
 * connection: resolution, frames per second, bitrate, loss, jitter, and the
 * simulcast layer that resolution is (inferred from the usual q/h/f ladder
 * under a 1280×720 top: the server does not say); our own tile shows what
 * the publish connection sends (the largest active layer, the layers sent,
 * why the encoder limits quality). Both show the connection's round-trip
 * time.
 */
import { currentSession } from './session.js';
import { tracksByMid } from './subscribe.js';

const INTERVAL_MS = 1000;
const toggle = document.getElementById('toggle-stats');
let shown = false;
let timer = null;
/** Byte and packet counts of the last round, by stats id: the deltas make rates. */
let previous = new Map();

export function initStats() {
  toggle.addEventListener('click', () => {
    shown = !shown;
    toggle.setAttribute('aria-pressed', String(shown));
    document.body.dataset.stats = String(shown);
    update();
  });
}

/** Starts the rounds for a call (and stops them when it ends). */
export function startStats() {
  stopStats();
  previous = new Map();
  timer = setInterval(update, INTERVAL_MS);
}

export function stopStats() {
  clearInterval(timer);
  timer = null;
}

/** Rate in bits per second of a counter since the last round. */
function rate(id, bytes, timestamp) {
  const before = previous.get(id);
  previous.set(id, { bytes, timestamp });
  if (!before || timestamp <= before.timestamp) return null;
  return ((bytes - before.bytes) * 8 * 1000) / (timestamp - before.timestamp);
}

/** Loss share since the last round, from received and lost packet counts. */
function lossShare(id, received, lost) {
  const key = `${id}/loss`;
  const before = previous.get(key);
  previous.set(key, { received, lost });
  if (!before) return 0;
  const got = received - before.received;
  const missed = Math.max(0, lost - before.lost);
  return got + missed > 0 ? missed / (got + missed) : 0;
}

/** The q/h/f ladder a frame height is (see the module comment). */
function layerOf(height) {
  if (!height) return '';
  return height >= 540 ? 'f' : height >= 270 ? 'h' : 'q';
}

/** Excellent, good or poor, LiveKit-style, from loss, round trip and frame rate. */
export function quality({ loss = 0, rtt = 0, fps = null }) {
  if (loss > 0.1 || rtt > 0.5 || (fps !== null && fps < 5)) return 'poor';
  if (loss > 0.02 || rtt > 0.2 || (fps !== null && fps < 15)) return 'good';
  return 'excellent';
}

/** One round: one getStats() per connection. */
async function update() {
  const s = currentSession();
  if (!s) return;
  if (s.subscribePc) updateRemote(s, await s.subscribePc.getStats());
  if (s.publishPc && s.localTile) updateLocal(s, await s.publishPc.getStats());
}

/** The selected candidate pair's current round-trip time in seconds, from a stats report. */
function roundTrip(report) {
  let seconds = null;
  report.forEach((r) => {
    if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded' && r.currentRoundTripTime != null) {
      seconds = r.currentRoundTripTime;
    }
  });
  return seconds;
}

function updateRemote(s, report) {
  const rtt = roundTrip(report);
  const table = tracksByMid(s);
  const byParticipant = new Map();
  report.forEach((r) => {
    if (r.type !== 'inbound-rtp' || r.mid == null || !table[r.mid]) return;
    const entry = table[r.mid];
    const key = entry.source === 'screen_share' || entry.source === 'screen_share_audio'
      ? `${entry.participant_id}/screen` : entry.participant_id;
    if (!byParticipant.has(key)) byParticipant.set(key, { bps: 0, loss: 0, video: null, jitter: null });
    const agg = byParticipant.get(key);
    agg.bps += rate(r.id, r.bytesReceived || 0, r.timestamp) || 0;
    agg.loss = Math.max(agg.loss, lossShare(r.id, r.packetsReceived || 0, r.packetsLost || 0));
    if (r.kind === 'video') {
      agg.video = { width: r.frameWidth, height: r.frameHeight, fps: r.framesPerSecond || 0 };
      agg.jitter = r.jitter;
    }
  });
  for (const p of s.participants.values()) {
    for (const [tile, key] of [[p.tile, p.id], [p.screenTile, `${p.id}/screen`]]) {
      if (!tile) continue;
      const agg = byParticipant.get(key);
      if (!agg) continue;
      const v = agg.video;
      const videoShown = tile.dataset.videoMuted !== 'true' && tile.dataset.paused !== 'true' && v;
      render(tile, [
        v && v.width ? `${v.width}×${v.height} ${layerOf(v.height)}` : 'no video',
        v ? `${Math.round(v.fps)} fps` : null,
        `${Math.round(agg.bps / 1000)} kbit/s`,
        `loss ${(agg.loss * 100).toFixed(1)} %`,
        agg.jitter != null ? `jitter ${Math.round(agg.jitter * 1000)} ms` : null,
        rtt != null ? `rtt ${Math.round(rtt * 1000)} ms` : null,
      ], quality({ loss: agg.loss, rtt: rtt || 0, fps: videoShown ? v.fps : null }));
    }
  }
}

function updateLocal(s, report) {
  const rtt = roundTrip(report);
  let top = null;
  let bps = 0;
  const layers = [];
  let limited = 'none';
  report.forEach((r) => {
    if (r.type !== 'outbound-rtp') return;
    bps += rate(r.id, r.bytesSent || 0, r.timestamp) || 0;
    if (r.kind !== 'video' || !r.frameWidth) return;
    const camera = s.publishTransceivers.get('video');
    if (camera && r.mid != null && r.mid !== camera.mid) return; // not the camera (a screen share)
    layers.push(r.rid || 'single');
    if (r.qualityLimitationReason && r.qualityLimitationReason !== 'none') limited = r.qualityLimitationReason;
    if (!top || r.frameWidth > top.width) top = { width: r.frameWidth, height: r.frameHeight, fps: r.framesPerSecond || 0 };
  });
  render(s.localTile, [
    top ? `sending ${top.width}×${top.height}` : 'no video sent',
    top ? `${Math.round(top.fps)} fps` : null,
    layers.length ? `layers ${layers.sort().join(' ')}` : null,
    `${Math.round(bps / 1000)} kbit/s`,
    limited !== 'none' ? `limited by ${limited}` : null,
    rtt != null ? `rtt ${Math.round(rtt * 1000)} ms` : null,
  ], quality({ rtt: rtt || 0 }));
}

/** Writes a tile's overlay lines (when shown) and its quality badge. */
function render(tile, lines, level) {
  let badge = tile.querySelector('[data-testid="connection-quality"]');
  if (!badge) {
    badge = document.createElement('span');
    badge.className = 'quality';
    badge.dataset.testid = 'connection-quality';
    tile.querySelector('.caption').append(badge);
  }
  badge.dataset.quality = level;
  badge.title = `Connection: ${level}`;
  badge.textContent = { excellent: '▂▄▆', good: '▂▄', poor: '▂' }[level];
  let overlay = tile.querySelector('[data-testid="stats-overlay"]');
  if (!shown) {
    if (overlay) overlay.remove();
    return;
  }
  if (!overlay) {
    overlay = document.createElement('pre');
    overlay.className = 'stats-overlay';
    overlay.dataset.testid = 'stats-overlay';
    tile.append(overlay);
  }
  overlay.textContent = lines.filter(Boolean).join('\n');
}
