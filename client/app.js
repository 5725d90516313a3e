/**
 * Cascade bundled client: the entry module.
 *
 * Joins a room on a Cascade SFU using signaling protocol version 1
 * (docs/PROTOCOL.md): one WebSocket at `/ws` carrying JSON messages, and two
 * RTCPeerConnections per participant, so that each connection has exactly one
 * offerer and offers never cross:
 *
 *   - publish PC:   the client offers; it sends our microphone and camera
 *                   (`sendonly` transceivers) to the server, and carries the
 *                   relayed data channels both ways (data.js).
 *   - subscribe PC: the server offers (first right after `joined`, then again
 *                   whenever the room's set of tracks changes); the client
 *                   answers on the same connection every time. It receives
 *                   everybody else's tracks, plus a data channel.
 *
 * This module owns the join form, the call controls, the status line, the
 * error banner and leaving, and wires the others together:
 *
 *   session.js       the current call's state
 *   signaling.js     the WebSocket and its message queue
 *   ice.js           peer connection setup and trickle candidates
 *   publish.js       local media, the publish PC, mute and camera
 *   data.js          the relayed data channels: sendData / onData
 *   simulcast.js     the camera's simulcast layers and `publish_layers` (dynacast)
 *   subscribe.js     the subscribe PC, the mid -> track table
 *   adaptive.js      `video_preference`: how each remote video is shown
 *   participants.js  the room's other participants, their tracks and paused videos
 *   speakers.js      `active_speakers`: the speaking tiles' highlight
 *   pages.js         pages of tiles beyond 16, speakers brought to the first
 *   chat.js          the chat panel (reliable data channel, topic "chat")
 *   devices.js       camera, microphone and speaker pickers, the join preview
 *   stats.js         per-tile stats overlays and connection-quality badges
 *   tiles.js         the grid's tiles for local and remote participants, and
 *                    shared screens' tiles in the spotlight
 *   log.js           console logging
 *
 * URL parameters: `?room=NAME` prefills the room, `?room=NAME&name=ME` joins at once,
 * `&token=JWT` is the access token a server with API keys requires (made by
 * `cascade token create`, which prints such a link).
 *
 * A peer connection that loses its path while the WebSocket lives restarts
 * ICE (the publish connection with a new offer, the subscribe connection by
 * `restart_ice`); only when that fails, or the socket is gone, is the room
 * joined again.
 *
 * Test hooks: `data-testid` attributes on the page, remote tiles carry
 * `data-participant-id`, `data-participant-name`, `data-video-muted`,
 * `data-audio-muted`, `data-connection-state`, `data-speaking` (with a
 * `data-testid="active-speaker"` marker while speaking) and `data-paused`
 * (with a `data-testid="track-paused"` overlay while paused); the chat's
 * hooks are listed in chat.js; `toggle-screen` shares the screen, shown to
 * the others as a `screen-tile` (ours as `local-screen-tile`); `copy-link` copies the room's invite link
 * (`data-link` holds the last one copied); `window.cascade` exposes
 * `participantId`, `publishPc`, `subscribePc`, `tracksByMid`,
 * `publishEncodings` (the camera's simulcast layers), `videoPreferences`
 * (the last `video_preference` sent per remote track id), `dataChannels`
 * (their states), and the data API `sendData` / `onData` (data.js).
 *
 * Plain browser JavaScript modules, no build step, no external resources.
 */
import { log } from './log.js';
import { startSession, currentSession, isCurrent, endSession } from './session.js';
import { PROTOCOL_VERSION, connectSocket, closeSocket, socketState, send } from './signaling.js';
import { onRemoteCandidate } from './ice.js';
import {
  getLocalMedia, stopStream, startPublishing, onPublishAnswer, localTrack, toggleLocalTrack,
  onMutedByOperator, canShareScreen, startScreenShare, stopScreenShare, restartPublishIce,
} from './publish.js';
import { onPublishLayers, publishEncodings } from './simulcast.js';
import { sendData, onData } from './data.js';
import { onActiveSpeakers } from './speakers.js';
import { initChat, resetChat } from './chat.js';
import { initDevices, showInJoinForm, closeDialog } from './devices.js';
import { initStats, startStats, stopStats } from './stats.js';
import { onSubscribeOffer, tracksByMid } from './subscribe.js';
import { isPreferenceError, sentPreferences, stopAdaptiveStream } from './adaptive.js';
import {
  addParticipant, removeParticipant, setTrack, removeTrack, pauseTrack, resumeTrack,
} from './participants.js';
import {
  addLocalTile, addScreenTile, removeScreenTile, clearTiles, detachMedia, hideAudioUnlock, unlockAudio,
  renderLocalIndicators, renderLocalConnectionState, renderRemoteConnectionState,
} from './tiles.js';

const ROOM_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const MAX_NAME_CHARS = 64;
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS_RE = /[\u0000-\u001f\u007f-\u009f]/;
const MAX_ERRORS_SHOWN = 5;

const byId = (id) => document.getElementById(id);
const ui = {
  joinScreen: byId('join-screen'),
  joinForm: byId('join-form'),
  roomInput: byId('room-input'),
  nameInput: byId('name-input'),
  joinButton: byId('join-button'),
  callScreen: byId('call-screen'),
  roomLabel: byId('room-label'),
  status: byId('status'),
  errors: byId('errors'),
  micButton: byId('toggle-mic'),
  cameraButton: byId('toggle-camera'),
  screenButton: byId('toggle-screen'),
  leaveButton: byId('leave'),
  copyLinkButton: byId('copy-link'),
  reconnecting: byId('reconnecting'),
  audioUnlockButton: byId('audio-unlock-button'),
};

/** What the socket tells (signaling.js's listener). */
const socketListener = {
  get handlers() { return HANDLERS; },
  onStateChange: () => updateStatus(),
  onError: (text) => showError(text),
  onClose: (s, event) => onSocketClose(s, event),
};

/** Server message type -> handler(session, message). */
const HANDLERS = {
  joined: onJoined,
  publish_answer: onPublishAnswer,
  subscribe_offer: (s, m) => onSubscribeOffer(s, m, onPcStateChange),
  participant_joined: (s, m) => addParticipant(s, m.participant),
  participant_left: (s, m) => removeParticipant(s, m.participant_id),
  track_published: (s, m) => setTrack(s, m.participant_id, m.track),
  track_updated: (s, m) => setTrack(s, m.participant_id, m.track),
  track_removed: (s, m) => removeTrack(s, m.participant_id, m.track_id),
  track_paused: (s, m) => pauseTrack(s, m.participant_id, m.track_id, m.reason),
  track_resumed: (s, m) => resumeTrack(s, m.participant_id, m.track_id),
  publish_layers: onPublishLayers,
  active_speakers: onActiveSpeakers,
  muted_by_operator: (s, m) => {
    const kind = onMutedByOperator(s, m);
    if (!kind) return;
    renderLocalControls(s);
    showNotice(`An operator muted your ${kind === 'audio' ? 'microphone' : 'camera'}; unmute it when you are ready`);
  },
  candidate: onRemoteCandidate,
  error: onServerError,
  pong: () => {},
};

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/** Shows an error banner in the page (and the console); keeps the last few. */
function showError(text) {
  console.error('[cascade] error:', text);
  showBanner(text, 'error');
}

/** Shows a notice (something the user should know that is no error). */
function showNotice(text) {
  console.info('[cascade] notice:', text);
  showBanner(text, 'notice');
}

/** A dismissable banner of `kind` ("error" or "notice", its class and test id). */
function showBanner(text, kind) {
  const item = document.createElement('div');
  item.className = kind;
  item.dataset.testid = kind;
  const message = document.createElement('span');
  message.textContent = text;
  const close = document.createElement('button');
  close.type = 'button';
  close.className = 'dismiss';
  close.textContent = '×';
  close.title = 'Dismiss';
  close.addEventListener('click', () => item.remove());
  item.append(message, close);
  ui.errors.append(item);
  while (ui.errors.children.length > MAX_ERRORS_SHOWN) ui.errors.firstElementChild.remove();
}

function clearErrors() {
  ui.errors.replaceChildren();
}

// ---------------------------------------------------------------------------
// Join / leave
// ---------------------------------------------------------------------------

/** Checks the join inputs; returns an error text or null. */
function validateJoin(room, name) {
  if (!ROOM_RE.test(room)) {
    return 'Room must be 1–64 characters of letters, digits, "_", "-" or ".".';
  }
  const chars = [...name].length;
  if (chars < 1 || chars > MAX_NAME_CHARS) return `Name must be 1–${MAX_NAME_CHARS} characters.`;
  if (CONTROL_CHARS_RE.test(name)) return 'Name must not contain control characters.';
  return null;
}

async function join(room, name) {
  if (currentSession()) return;
  const problem = validateJoin(room, name);
  if (problem) {
    showError(problem);
    startPreview();
    return;
  }
  clearErrors();
  const s = startSession(room, name, accessToken());
  ui.joinButton.disabled = true;
  showCallScreen(s);
  rememberRoomInUrl(room);
  // The join screen's preview becomes the call's camera and microphone.
  const preview = await previewReady;
  const live = preview && preview.getTracks().some((t) => t.readyState === 'live');
  previewStream = null;
  s.localStream = live ? preview : await getLocalMedia(showError);
  if (!isCurrent(s)) {
    stopStream(s.localStream);
    return;
  }
  s.localTile = addLocalTile(s.name, s.localStream);
  renderLocalControls(s);
  startStats();
  connectSocket(s, socketListener);
}

/** Leaves on the user's request: tells the server, then tears everything down. */
function leave() {
  if (pendingRejoin) {
    cancelRejoin();
    return;
  }
  const s = currentSession();
  if (!s) return;
  send(s, { type: 'leave' });
  teardown(s);
  log('left room', s.room);
}

/** Releases everything the session holds and returns to the join screen. */
function teardown(s) {
  if (!release(s)) return;
  stopStream(s.localStream);
  resetChat();
  setReconnecting(false);
  showJoinScreen();
}

/** Ends `s` and frees its connections (not the camera and microphone); false if ended already. */
function release(s) {
  if (!endSession(s)) return false;
  stopStats();
  for (const under of Object.values(s.iceRestart)) {
    clearTimeout(under.timer);
    clearTimeout(under.wait);
  }
  stopAdaptiveStream(s);
  for (const pc of [s.publishPc, s.subscribePc]) {
    if (pc) pc.close();
  }
  if (s.screen) stopStream(s.screen.stream);
  closeSocket(s);
  for (const p of s.participants.values()) detachMedia(p.tile);
  if (s.localTile) detachMedia(s.localTile);
  return true;
}

// ---------------------------------------------------------------------------
// Reconnect
// ---------------------------------------------------------------------------

/** Waits before each rejoin attempt in a row (the last one repeats). */
const REJOIN_DELAYS_MS = [200, 500, 1000, 2000, 4000];
/** How long to keep trying before giving up and showing the join screen. */
const REJOIN_GIVE_UP_MS = 60_000;
/** The rejoin waiting for its timer: {timer, stream, room, name, token, attempt, since}. */
let pendingRejoin = null;

/**
 * The call broke (the WebSocket closed, or a peer connection failed): ends
 * the session but keeps the camera, microphone and chat, and joins the same
 * room again after a short wait (a new participant; the server replaces the
 * old one of the same identity). Gives up after REJOIN_GIVE_UP_MS.
 */
function rejoin(s, why) {
  const attempt = s.rejoin ? s.rejoin.attempt + 1 : 0;
  const since = s.rejoin ? s.rejoin.since : Date.now();
  send(s, { type: 'leave' }); // if the socket is still open (a failed peer connection)
  const stream = s.localStream;
  release(s);
  if (Date.now() - since > REJOIN_GIVE_UP_MS) {
    showError(`Could not reconnect (${why}).`);
    stopStream(stream);
    resetChat();
    setReconnecting(false);
    showJoinScreen();
    return;
  }
  log('reconnecting:', why, 'attempt', attempt + 1);
  setReconnecting(true);
  const delay = REJOIN_DELAYS_MS[Math.min(attempt, REJOIN_DELAYS_MS.length - 1)];
  pendingRejoin = {
    stream, room: s.room, name: s.name, token: s.token, attempt, since,
    timer: setTimeout(rejoinNow, delay),
  };
}

function rejoinNow() {
  const r = pendingRejoin;
  pendingRejoin = null;
  if (!r || currentSession()) return;
  const s = startSession(r.room, r.name, r.token);
  s.rejoin = { attempt: r.attempt, since: r.since };
  s.localStream = r.stream;
  clearTiles();
  s.localTile = addLocalTile(s.name, s.localStream);
  renderLocalControls(s);
  renderScreenButton(s);
  startStats();
  connectSocket(s, socketListener);
}

/** Leave while waiting to rejoin: back to the join screen. */
function cancelRejoin() {
  clearTimeout(pendingRejoin.timer);
  stopStream(pendingRejoin.stream);
  pendingRejoin = null;
  resetChat();
  setReconnecting(false);
  showJoinScreen();
}

/** The "Reconnecting…" banner and the call screen's state. */
function setReconnecting(on) {
  ui.reconnecting.hidden = !on;
  ui.callScreen.dataset.reconnecting = String(on);
}

// ---------------------------------------------------------------------------
// Server messages and connection state
// ---------------------------------------------------------------------------

async function onJoined(s, msg) {
  if (msg.version !== PROTOCOL_VERSION) {
    log(`server speaks protocol version ${msg.version}, we speak ${PROTOCOL_VERSION}`);
  }
  s.participantId = msg.participant_id;
  s.iceServers = msg.ice_servers || [];
  if (s.rejoin) {
    log('reconnected after', Date.now() - s.rejoin.since, 'ms');
    s.rejoin = null;
    setReconnecting(false);
  }
  ui.roomLabel.textContent = `Room: ${msg.room || s.room}`;
  for (const p of msg.participants || []) addParticipant(s, p);
  log('joined', s.room, 'as', s.participantId);
  await startPublishing(s, onPcStateChange);
}

/** Error codes that answer a `join` the server turned down. */
const JOIN_REFUSALS = new Set(['unauthorized', 'forbidden', 'rate_limited', 'server_draining']);

/** Removals (`fatal` errors) after which joining again is the cure: the network broke. */
const REJOIN_AFTER = /removed from the room: (ice_disconnected|peer_failed|connect_timeout|slow_consumer)/;

function onServerError(s, msg) {
  if (isPreferenceError(s, msg)) return; // adaptive stream is an optimisation: nothing to show
  if (msg.code === 'fatal' && s.participantId && REJOIN_AFTER.test(msg.message || '')) {
    rejoin(s, msg.message);
    return;
  }
  showError(`Server error ${msg.code || '?'}: ${msg.message || ''}`);
  // A refused join leaves nothing to go on with; so does a fatal error.
  if (msg.code === 'fatal' || (!s.participantId && JOIN_REFUSALS.has(msg.code))) teardown(s);
}

function onSocketClose(s, event) {
  const reason = event.reason ? `: ${event.reason}` : '';
  const why = `connection to the server closed (code ${event.code}${reason})`;
  // A call that was up, or is being rebuilt, is rejoined; a first join that
  // never got through (no server there) is an error.
  if (s.participantId || s.rejoin) {
    rejoin(s, why);
    return;
  }
  showError(`Connection to the server closed (code ${event.code}${reason}).`);
  teardown(s);
}

/** How long a connection may stay disconnected before its ICE restarts. */
const ICE_RESTART_AFTER_MS = 1500;
/** How long an ICE restart may take before the call is joined again instead. */
const ICE_RESTART_TIMEOUT_MS = 12_000;

/**
 * A peer connection lost its path (a network change or blip) while the
 * WebSocket lives on: restart its ICE (new credentials, new checks) rather
 * than rejoining: the call, its tracks and ids stay. The publish connection
 * offers anew; the subscribe connection asks the server for an offer.
 * Returns false when a restart is no use (no socket, or one already failed).
 */
function restartIce(s, pcName) {
  const under = s.iceRestart[pcName];
  if (under && under.started) return Date.now() - under.started < ICE_RESTART_TIMEOUT_MS;
  if (!s.ws || s.ws.readyState !== WebSocket.OPEN) return false;
  log(`restarting ICE on the ${pcName} connection`);
  s.iceRestart[pcName] = {
    started: Date.now(),
    timer: setTimeout(() => {
      if (isCurrent(s) && s.iceRestart[pcName]) rejoin(s, `the ${pcName} connection did not come back`);
    }, ICE_RESTART_TIMEOUT_MS),
  };
  if (pcName === 'publish') {
    restartPublishIce(s).catch((err) => log('publish ICE restart failed', err));
  } else {
    send(s, { type: 'restart_ice', pc: 'subscribe' });
  }
  return true;
}

/** Tracks one connection's state for ICE restarts. */
function watchIce(s, pcName, pc) {
  const state = pc.connectionState;
  const under = s.iceRestart[pcName];
  if (state === 'connected') {
    if (under) {
      clearTimeout(under.timer);
      clearTimeout(under.wait);
      if (under.started) {
        s.iceRestarts[pcName] += 1;
        log(`ICE restart brought the ${pcName} connection back after ${Date.now() - under.started} ms`);
      }
      delete s.iceRestart[pcName];
    }
    return true;
  }
  if (state === 'disconnected' && !under) {
    // Often a blip that heals by itself; restart only if it lasts.
    s.iceRestart[pcName] = {
      wait: setTimeout(() => {
        if (!isCurrent(s) || pc.connectionState === 'connected') return;
        delete s.iceRestart[pcName];
        if (!restartIce(s, pcName)) rejoin(s, `the ${pcName} connection was lost`);
      }, ICE_RESTART_AFTER_MS),
    };
    return true;
  }
  if (state === 'failed') {
    if (under && !under.started) {
      clearTimeout(under.wait);
      delete s.iceRestart[pcName];
    }
    return restartIce(s, pcName);
  }
  return true;
}

function onPcStateChange(s, pcName, pc) {
  log(`${pcName} connection`, pc.connectionState);
  if (!isCurrent(s)) return;
  if (pcName === 'publish' && s.localTile) renderLocalConnectionState(s.localTile, pc.connectionState);
  if (pcName === 'subscribe') {
    for (const p of s.participants.values()) renderRemoteConnectionState(p.tile, pc);
  }
  if (!watchIce(s, pcName, pc)) {
    log(`the ${pcName} connection failed`);
    rejoin(s, `the ${pcName} connection failed`);
    return;
  }
  updateStatus();
}

function updateStatus() {
  const s = currentSession();
  if (!s) {
    ui.status.textContent = '';
    return;
  }
  const parts = {
    signaling: socketState(s),
    publish: s.publishPc ? s.publishPc.connectionState : 'none',
    subscribe: s.subscribePc ? s.subscribePc.connectionState : 'none',
  };
  ui.status.textContent = Object.entries(parts).map(([k, v]) => `${k}: ${v}`).join(' · ');
  Object.assign(ui.status.dataset, parts);
}

// ---------------------------------------------------------------------------
// Mute / camera
// ---------------------------------------------------------------------------

function onToggleLocal(kind) {
  const s = currentSession();
  if (toggleLocalTrack(s, kind)) renderLocalControls(s);
}

/** The mic and camera buttons, and the local tile's mute indicators. */
function renderLocalControls(s) {
  const mic = localTrack(s, 'audio');
  const cam = localTrack(s, 'video');
  const micOff = !!mic && !mic.enabled;
  const camOff = !!cam && !cam.enabled;
  ui.micButton.disabled = !mic;
  ui.cameraButton.disabled = !cam;
  ui.micButton.setAttribute('aria-pressed', String(micOff));
  ui.cameraButton.setAttribute('aria-pressed', String(camOff));
  ui.micButton.textContent = micOff ? 'Unmute mic' : 'Mute mic';
  ui.cameraButton.textContent = camOff ? 'Camera on' : 'Camera off';
  if (s.localTile) renderLocalIndicators(s.localTile, mic, cam);
}

// ---------------------------------------------------------------------------
// Screen share
// ---------------------------------------------------------------------------

async function onToggleScreen() {
  const s = currentSession();
  if (!s || !s.publishPc) return;
  ui.screenButton.disabled = true;
  try {
    if (s.screen && s.screen.stream) {
      await stopSharing(s);
    } else {
      const stream = await startScreenShare(s, () => stopSharing(s));
      if (stream && isCurrent(s)) s.localScreenTile = addScreenTile(null, s.name, stream);
    }
  } catch (err) {
    if (err.name !== 'NotAllowedError') showError(`Screen share failed: ${err.message || err}`);
  } finally {
    ui.screenButton.disabled = false;
    renderScreenButton(s);
  }
}

/** Stops our share (the button, or the browser's own stop control). */
async function stopSharing(s) {
  if (s.localScreenTile) {
    removeScreenTile(s.localScreenTile);
    s.localScreenTile = null;
  }
  await stopScreenShare(s);
  renderScreenButton(s);
}

function renderScreenButton(s) {
  const sharing = !!(s && s.screen && s.screen.stream);
  ui.screenButton.setAttribute('aria-pressed', String(sharing));
  ui.screenButton.textContent = sharing ? 'Stop sharing' : 'Share screen';
}

// ---------------------------------------------------------------------------
// Screens and URL
// ---------------------------------------------------------------------------

function showCallScreen(s) {
  renderScreenButton(null);
  ui.joinScreen.hidden = true;
  ui.callScreen.hidden = false;
  ui.roomLabel.textContent = `Room: ${s.room}`;
  clearTiles();
  updateStatus();
}

/** The camera and microphone shown on the join screen, kept for the call. */
let previewStream = null;
/** Settles once the preview's getUserMedia did (a join waits for it). */
let previewReady = Promise.resolve(null);

/** Opens the camera and microphone for the join screen's preview. */
function startPreview() {
  if (previewStream || currentSession()) return;
  previewReady = getLocalMedia(() => {}).then((stream) => {
    if (currentSession()) return stream; // a join took it meanwhile
    previewStream = stream;
    showInJoinForm(stream);
    return stream;
  });
}

/** Puts a newly picked camera or microphone track into the call (no renegotiation). */
async function switchTrack(kind, track) {
  const s = currentSession();
  if (!s) return; // the join screen: the preview stream is all there is
  const transceiver = s.publishTransceivers.get(kind);
  if (!transceiver) {
    track.stop();
    throw new Error(`joined without a ${kind === 'video' ? 'camera' : 'microphone'}; rejoin to add one`);
  }
  await transceiver.sender.replaceTrack(track);
  renderLocalControls(s);
}

function showJoinScreen() {
  closeDialog();
  clearTiles();
  ui.callScreen.hidden = true;
  hideAudioUnlock();
  ui.joinScreen.hidden = false;
  ui.joinButton.disabled = false;
  ui.roomLabel.textContent = '';
  updateStatus();
  startPreview();
}

function rememberRoomInUrl(room) {
  const url = new URL(location.href);
  url.searchParams.set('room', room);
  url.searchParams.delete('name'); // a reload should not re-join by itself
  history.replaceState(null, '', url);
}

/**
 * The link that invites someone to this room: the page with `?room=`, and
 * no token (an access token is personal; a server that needs one hands
 * each guest their own).
 */
function inviteLink(room) {
  const url = new URL(location.pathname, location.origin);
  url.searchParams.set('room', room);
  return url.href;
}

async function copyInviteLink() {
  const s = currentSession();
  if (!s) return;
  const link = inviteLink(s.room);
  ui.copyLinkButton.dataset.link = link;
  try {
    await navigator.clipboard.writeText(link);
    showNotice(`Invite link copied: ${link}`);
  } catch {
    showNotice(`Copy this invite link: ${link}`);
  }
}

/** The access token of the join link (`?token=`), if it has one. */
function accessToken() {
  return new URLSearchParams(location.search).get('token');
}

function onJoinSubmit(event) {
  event.preventDefault();
  join(ui.roomInput.value.trim(), ui.nameInput.value.trim());
}

function init() {
  const params = new URLSearchParams(location.search);
  const room = params.get('room') || '';
  const name = params.get('name') || '';
  ui.roomInput.value = room;
  ui.nameInput.value = name;
  ui.joinForm.addEventListener('submit', onJoinSubmit);
  ui.micButton.addEventListener('click', () => onToggleLocal('audio'));
  ui.cameraButton.addEventListener('click', () => onToggleLocal('video'));
  ui.leaveButton.addEventListener('click', leave);
  ui.screenButton.addEventListener('click', onToggleScreen);
  ui.screenButton.hidden = !canShareScreen();
  ui.copyLinkButton.addEventListener('click', copyInviteLink);
  initChat(showError);
  initStats();
  initDevices({
    currentStream: () => fromSession((s) => s.localStream, previewStream),
    onSwitch: switchTrack,
    onProblem: showError,
  });
  ui.audioUnlockButton.addEventListener('click', unlockAudio);
  window.addEventListener('pagehide', () => currentSession() && leave());
  if (room && name) {
    join(room.trim(), name.trim());
  } else {
    (room ? ui.nameInput : ui.roomInput).focus();
    startPreview();
  }
}

/** Reads the current session with `read`, or gives `otherwise` on the join screen. */
function fromSession(read, otherwise = null) {
  const s = currentSession();
  return s ? read(s) : otherwise;
}

/** Hooks for tests and debugging in the console. */
window.cascade = {
  get participantId() { return fromSession((s) => s.participantId); },
  get publishPc() { return fromSession((s) => s.publishPc); },
  get subscribePc() { return fromSession((s) => s.subscribePc); },
  get room() { return fromSession((s) => s.room); },
  /** mid -> {participant_id, track_id, kind} for the subscribe connection. */
  get tracksByMid() { return fromSession(tracksByMid, {}); },
  /** The camera's send encodings: [{rid, active, scaleResolutionDownBy, maxBitrate}]. */
  get publishEncodings() { return fromSession(publishEncodings, []); },
  /** Remote track id -> the last {visible, width, height} sent in video_preference. */
  get videoPreferences() { return fromSession(sentPreferences, {}); },
  /** Sends app data to the room (data.js): sendData(data, {reliable, to, topic}). */
  sendData(data, options) {
    const s = currentSession();
    if (!s) throw new Error('not in a room');
    sendData(s, data, options);
  },
  /** ICE restarts that brought a connection back: {publish, subscribe}. */
  get iceRestarts() { return fromSession((s) => ({ ...s.iceRestarts }), null); },
  /** Test hook: our screen share's video track while sharing (to end it as the browser's stop control does). */
  get screenTrack() {
    return fromSession((s) => (s.screen && s.screen.stream ? s.screen.stream.getVideoTracks()[0] : null));
  },
  /** Registers a callback for relayed data (data.js); returns the unsubscribe function. */
  onData,
  /** Test hook: the raw RTCDataChannel ("reliable" or "lossy"), bypassing sendData's checks. */
  rawDataChannel(kind) { return fromSession((s) => s.channels && s.channels[kind]); },
  /** The publish connection's data channels' states: {reliable, lossy}. */
  get dataChannels() {
    return fromSession((s) => s.channels && {
      reliable: s.channels.reliable.readyState, lossy: s.channels.lossy.readyState,
    });
  },
  join,
  leave,
};

init();
