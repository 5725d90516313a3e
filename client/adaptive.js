/**
 * Adaptive stream: tells the server, with `video_preference`, how each remote
 * video is shown, so that it forwards no simulcast layer larger than the
 * tile and nothing for a video nobody can see (docs/PROTOCOL.md).
 *
 * A remote video counts as visible while its tile is in the document, on
 * screen (IntersectionObserver), not hidden and not showing the avatar
 * instead (camera muted), and the page itself is visible. Its size is the
 * tile's video box in device pixels. Observations (ResizeObserver, the
 * intersection, the tile's attributes, the page's visibility) are debounced;
 * a preference is sent only when visibility changes or the size moves to
 * another bucket (quarter octaves), and one at once when a video first
 * appears in a tile.
 *
 * A server that does not know `video_preference` answers it with an
 * `unknown_type` error: then preferences are off for the rest of the call.
 */
import { log } from './log.js';
import { send } from './signaling.js';

const DEBOUNCE_MS = 300;
/** Size buckets per octave: a preference is resent when a side changes by about 19 %. */
const BUCKETS_PER_OCTAVE = 4;
/** Tile attributes that decide whether its video is shown. */
const TILE_ATTRIBUTES = ['hidden', 'data-video-muted'];

/** The session's adaptive-stream state, created on first use. */
function state(s) {
  if (s.adaptive) return s.adaptive;
  const a = {
    /** tile -> {trackIds: string[], intersecting: boolean, timer} */
    tiles: new Map(),
    /** track id -> the last preference sent {visible, width, height} */
    sent: new Map(),
    disabled: false,
    resizeObserver: null,
    intersectionObserver: null,
    mutationObserver: null,
    onPageVisibility: null,
  };
  a.resizeObserver = new ResizeObserver((entries) => {
    for (const entry of entries) schedule(s, entry.target.closest('.tile'));
  });
  a.intersectionObserver = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      const watched = a.tiles.get(entry.target);
      if (!watched) continue;
      watched.intersecting = entry.isIntersecting;
      schedule(s, entry.target);
    }
  });
  a.mutationObserver = new MutationObserver((records) => {
    for (const record of records) schedule(s, record.target);
  });
  a.onPageVisibility = () => {
    for (const tile of a.tiles.keys()) schedule(s, tile);
  };
  document.addEventListener('visibilitychange', a.onPageVisibility);
  s.adaptive = a;
  return a;
}

/**
 * The remote videos `tile` now shows, by track id (the first is the one its
 * <video> plays). Starts watching a tile when it gets its first video,
 * stops when it has none; sends a preference at once for a new video.
 */
export function showVideosInTile(s, tile, trackIds) {
  if (!s.adaptive && trackIds.length === 0) return;
  const a = state(s);
  let watched = a.tiles.get(tile);
  if (trackIds.length === 0) {
    if (watched) unwatch(a, tile, watched);
    return;
  }
  if (!watched) {
    watched = { trackIds: [], intersecting: onScreen(tile), timer: null };
    a.tiles.set(tile, watched);
    a.resizeObserver.observe(tile.querySelector('video'));
    a.intersectionObserver.observe(tile);
    a.mutationObserver.observe(tile, { attributes: true, attributeFilter: TILE_ATTRIBUTES });
  }
  const before = watched.trackIds;
  watched.trackIds = [...trackIds];
  for (const id of before) {
    if (!trackIds.includes(id)) a.sent.delete(id);
  }
  const changed = before.length !== trackIds.length || trackIds.some((id, i) => id !== before[i]);
  if (changed) report(s, tile);
}

/** Stops watching a tile that is going away. */
export function forgetTile(s, tile) {
  const a = s.adaptive;
  const watched = a && a.tiles.get(tile);
  if (watched) unwatch(a, tile, watched);
}

function unwatch(a, tile, watched) {
  clearTimeout(watched.timer);
  for (const id of watched.trackIds) a.sent.delete(id);
  a.tiles.delete(tile);
  a.resizeObserver.unobserve(tile.querySelector('video'));
  a.intersectionObserver.unobserve(tile);
  // MutationObserver cannot drop one target: re-observe the remaining tiles.
  a.mutationObserver.disconnect();
  for (const other of a.tiles.keys()) {
    a.mutationObserver.observe(other, { attributes: true, attributeFilter: TILE_ATTRIBUTES });
  }
}

/** Ends adaptive stream for a session that is over. */
export function stopAdaptiveStream(s) {
  const a = s.adaptive;
  if (!a) return;
  for (const watched of a.tiles.values()) clearTimeout(watched.timer);
  a.tiles.clear();
  a.resizeObserver.disconnect();
  a.intersectionObserver.disconnect();
  a.mutationObserver.disconnect();
  document.removeEventListener('visibilitychange', a.onPageVisibility);
  s.adaptive = null;
}

/**
 * Errors carry no reference to the message they answer, so these are told
 * by their text: the type named in `unknown_type`, and the server's wording
 * for a preference about a video it does not send us (`unknown_track`).
 */
const PREFERENCE_ERROR_RE = /video_preference|no remote video|^no track /;

/**
 * An `error` from the server about `video_preference`: true if it was one
 * (the caller then shows nothing). `unknown_type` means the server predates
 * adaptive stream, so no more preferences are sent in this call; any other
 * (a video that went away meanwhile) is only logged.
 */
export function isPreferenceError(s, msg) {
  if (!PREFERENCE_ERROR_RE.test(String(msg.message || ''))) return false;
  if (msg.code === 'unknown_type') {
    log('server does not take video_preference; adaptive stream off');
    state(s).disabled = true;
  } else {
    log('video_preference refused:', msg.code, msg.message);
  }
  return true;
}

/** The last preference sent per track id (a test and console hook). */
export function sentPreferences(s) {
  return s.adaptive ? Object.fromEntries(s.adaptive.sent) : {};
}

function schedule(s, tile) {
  const a = s.adaptive;
  const watched = tile && a && a.tiles.get(tile);
  if (!watched) return;
  clearTimeout(watched.timer);
  watched.timer = setTimeout(() => {
    watched.timer = null;
    report(s, tile);
  }, DEBOUNCE_MS);
}

/** Sends the tile's preferences that changed meaningfully since the last ones sent. */
function report(s, tile) {
  const a = s.adaptive;
  const watched = a && a.tiles.get(tile);
  if (!watched || a.disabled) return;
  const shown = measure(tile, watched);
  watched.trackIds.forEach((trackId, i) => {
    // Only the first video plays in the tile's <video>; any other is not shown.
    const pref = i === 0 ? shown : { visible: false, width: 0, height: 0 };
    const last = a.sent.get(trackId);
    if (last && !meaningfullyDifferent(last, pref)) return;
    a.sent.set(trackId, pref);
    send(s, { type: 'video_preference', track_id: trackId, ...pref });
  });
}

/** How the tile shows its video now: visibility and size in device pixels. */
function measure(tile, watched) {
  const video = tile.querySelector('video');
  const ratio = window.devicePixelRatio || 1;
  const width = Math.round(video.clientWidth * ratio);
  const height = Math.round(video.clientHeight * ratio);
  const visible = tile.isConnected &&
    !tile.hidden &&
    tile.dataset.videoMuted !== 'true' &&
    document.visibilityState === 'visible' &&
    watched.intersecting &&
    width > 0 && height > 0;
  return { visible, width, height };
}

function meaningfullyDifferent(last, now) {
  if (last.visible !== now.visible) return true;
  if (!now.visible) return false; // sizes do not matter while hidden
  return bucket(last.width) !== bucket(now.width) || bucket(last.height) !== bucket(now.height);
}

function bucket(px) {
  return px > 0 ? Math.round(Math.log2(px) * BUCKETS_PER_OCTAVE) : 0;
}

/** Whether the tile overlaps the viewport now (until the IntersectionObserver reports). */
function onScreen(tile) {
  const r = tile.getBoundingClientRect();
  return r.width > 0 && r.height > 0 && r.bottom > 0 && r.right > 0 &&
    r.top < window.innerHeight && r.left < window.innerWidth;
}
