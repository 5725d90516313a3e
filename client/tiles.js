/**
 * The tiles in the call grid, one per participant, cloned from the page's
 * tile template: the local preview and the remote tiles, their media
 * elements, mute indicators, connection state and paused video (as data
 * attributes the styles and the browser tests read), and the prompt that
 * unblocks autoplay.
 */
import { log, errorText } from './log.js';
import { arrangeTiles } from './pages.js';

const grid = document.getElementById('grid');
const spotlight = document.getElementById('spotlight');
const callScreen = document.getElementById('call-screen');
const tileTemplate = document.getElementById('tile-template');
const audioUnlock = document.getElementById('audio-unlock');

function createTile() {
  return tileTemplate.content.firstElementChild.cloneNode(true);
}

function initial(name) {
  return ([...name.trim()][0] || '?').toUpperCase();
}

/** Puts our own preview first in the grid; it plays `stream` if we have one. */
export function addLocalTile(name, stream) {
  const tile = createTile();
  tile.classList.add('local');
  tile.dataset.testid = 'local-tile';
  tile.dataset.participantName = name;
  tile.querySelector('.name').textContent = `${name} (you)`;
  tile.querySelector('.avatar').textContent = initial(name);
  // Without a camera the preview shows the avatar rather than a black box.
  tile.dataset.hasVideo = String(!!stream && stream.getVideoTracks().length > 0);
  if (stream) {
    const video = tile.querySelector('video');
    video.srcObject = stream; // the <video> is muted: no echo of ourselves
    playMedia(video);
  }
  grid.prepend(tile);
  updateGridSize();
  return tile;
}

export function addRemoteTile(participantId, name) {
  const tile = createTile();
  tile.dataset.testid = 'remote-tile';
  tile.dataset.participantId = participantId;
  tile.dataset.participantName = name;
  tile.querySelector('.name').textContent = name;
  tile.querySelector('.avatar').textContent = initial(name);
  grid.append(tile);
  updateGridSize();
  return tile;
}

/**
 * A shared screen's tile, shown large in the spotlight while the grid
 * becomes a strip; `participantId` null for our own share (a muted preview).
 */
export function addScreenTile(participantId, name, stream = null) {
  const tile = createTile();
  tile.classList.add('screen');
  tile.dataset.testid = participantId ? 'screen-tile' : 'local-screen-tile';
  if (participantId) tile.dataset.participantId = participantId;
  tile.dataset.participantName = name;
  tile.querySelector('.name').textContent = participantId ? `${name}'s screen` : 'Your screen';
  tile.querySelector('.avatar').textContent = initial(name);
  tile.dataset.hasVideo = 'true';
  if (stream) {
    const video = tile.querySelector('video');
    video.srcObject = stream;
    playMedia(video);
  }
  spotlight.append(tile);
  updateSpotlight();
  return tile;
}

export function removeScreenTile(tile) {
  detachMedia(tile);
  tile.remove();
  updateSpotlight();
}

/** The call screen's layout: a spotlight with a strip while a screen is shared. */
function updateSpotlight() {
  const shared = spotlight.children.length > 0;
  spotlight.hidden = !shared;
  callScreen.dataset.layout = shared ? 'spotlight' : 'grid';
}

export function removeTile(tile) {
  detachMedia(tile);
  tile.remove();
  updateGridSize();
}

/** Empties the grid (the tiles' media must be detached already). */
export function clearTiles() {
  grid.replaceChildren();
  spotlight.replaceChildren();
  updateGridSize();
  updateSpotlight();
}

/** Lets the CSS pick column counts from the number of tiles shown (pages.js). */
function updateGridSize() {
  arrangeTiles();
}

/** Gives a tile these receiver tracks, touching the elements only on change. */
export function setTileMedia(tile, tracks) {
  const video = tile.querySelector('video');
  const audio = tile.querySelector('audio');
  setElementTracks(video, tracks.filter((t) => t.kind === 'video'));
  setElementTracks(audio, tracks.filter((t) => t.kind === 'audio'));
  tile.dataset.hasVideo = String(tracks.some((t) => t.kind === 'video'));
}

function setElementTracks(element, tracks) {
  const current = element.srcObject ? element.srcObject.getTracks() : [];
  const same = current.length === tracks.length && tracks.every((t) => current.includes(t));
  if (same) return;
  element.srcObject = tracks.length ? new MediaStream(tracks) : null;
  if (element.tagName === 'AUDIO' && audioOutput && element.sinkId !== audioOutput) {
    element.setSinkId(audioOutput).catch((err) => log('setSinkId failed', errorText(err)));
  }
  if (tracks.length) playMedia(element);
}

/** The speaker remote audio plays on ('' = the default), set by the device settings. */
let audioOutput = '';

/** Plays every remote tile's sound on speaker `deviceId` (setSinkId), now and for new tiles. */
export async function setAudioOutput(deviceId) {
  audioOutput = deviceId;
  const elements = [...callScreen.querySelectorAll('audio')].filter((el) => typeof el.setSinkId === 'function');
  await Promise.all(elements.map((el) => el.setSinkId(deviceId)));
}

export function detachMedia(tile) {
  for (const el of tile.querySelectorAll('video, audio')) el.srcObject = null;
}

/** play(), and if autoplay with sound is blocked, offer a button that unblocks it. */
function playMedia(element) {
  const attempt = element.play();
  if (!attempt) return;
  attempt.catch((err) => {
    if (err.name === 'NotAllowedError') {
      audioUnlock.hidden = false;
    } else if (err.name !== 'AbortError') {
      log('play() failed', errorText(err));
    }
  });
}

/** The unblock button: plays every tile's media again, now with a user gesture. */
export function unlockAudio() {
  hideAudioUnlock();
  for (const el of callScreen.querySelectorAll('video, audio')) {
    if (el.srcObject) playMedia(el);
  }
}

export function hideAudioUnlock() {
  audioUnlock.hidden = true;
}

/** Remote mute indicators: a kind counts as muted when it has tracks and all are muted. */
export function renderRemoteIndicators(tile, tracks) {
  for (const kind of ['audio', 'video']) {
    const ofKind = [...tracks.values()].filter((t) => t.kind === kind);
    const muted = ofKind.length > 0 && ofKind.every((t) => t.muted);
    setIndicator(tile, kind, ofKind.length === 0 ? 'none' : muted ? 'muted' : 'on');
  }
}

/** Local mute indicators, from our own microphone and camera tracks (either may be missing). */
export function renderLocalIndicators(tile, mic, camera) {
  setIndicator(tile, 'audio', localTrackState(mic));
  setIndicator(tile, 'video', localTrackState(camera));
}

function localTrackState(track) {
  if (!track) return 'none';
  return track.enabled ? 'on' : 'muted';
}

/** `state` is "none", "muted" or "on". */
function setIndicator(tile, kind, state) {
  tile.dataset[`${kind}Muted`] = String(state === 'muted');
  tile.dataset[`${kind}State`] = state;
}

/** What a paused remote video's overlay says, by the server's pause reason. */
const PAUSED_TEXT = {
  bandwidth: 'Video paused — poor connection',
  publisher: 'Video unavailable',
};

/**
 * Shows that the server paused a remote tile's video (`reason` "bandwidth"
 * or "publisher") with an overlay over the last frame, or removes the
 * overlay (`reason` null) once it is resumed.
 */
export function renderRemotePaused(tile, reason) {
  let overlay = tile.querySelector('[data-testid="track-paused"]');
  tile.dataset.paused = String(!!reason);
  if (!reason) {
    if (overlay) overlay.remove();
    delete tile.dataset.pausedReason;
    return;
  }
  tile.dataset.pausedReason = reason;
  if (!overlay) {
    overlay = document.createElement('div');
    overlay.className = 'paused-overlay';
    overlay.dataset.testid = 'track-paused';
    overlay.setAttribute('role', 'status');
    tile.querySelector('.caption').before(overlay);
  }
  overlay.textContent = PAUSED_TEXT[reason] || PAUSED_TEXT.publisher;
}

/** The local tile shows the publish connection's state. */
export function renderLocalConnectionState(tile, state) {
  tile.dataset.connectionState = state;
  tile.querySelector('.conn').textContent = state === 'connected' ? '' : state;
}

/** A remote tile shows the subscribe connection's state once it has media. */
export function renderRemoteConnectionState(tile, subscribePc) {
  const hasMedia = tile.querySelector('video').srcObject || tile.querySelector('audio').srcObject;
  const state = !subscribePc || !hasMedia ? 'waiting' : subscribePc.connectionState;
  tile.dataset.connectionState = state;
  tile.querySelector('.conn').textContent = state === 'connected' ? '' : state === 'waiting' ? 'waiting for media' : state;
}
