/**
 * The publish connection (the client offers): the data channels, local camera and microphone,
 * one `sendonly` transceiver per local track (the camera's as simulcast
 * layers, see simulcast.js), `publish_offer` (naming each m-line's source)
 * and `publish_answer`, muting, which flips a local track's `enabled` and
 * tells the server with `mute`, and the screen share: its video (and sound,
 * when the browser shares some) on m-lines of their own, added by a
 * renegotiation and made `inactive` when the share stops (the m-lines are
 * reused by the next share).
 */
import { log, errorText } from './log.js';
import { send } from './signaling.js';
import { newPeerConnection, releaseOutgoingCandidates, flushIncomingCandidates } from './ice.js';
import { addCameraTransceiver, logNegotiatedLayers } from './simulcast.js';
import { openDataChannels } from './data.js';
import { constraintsFor } from './devices.js';

/** Publish order fixes the publish mids: audio gets "0", video "1" in practice. */
const KIND_ORDER = ['audio', 'video'];

/**
 * Camera and microphone, falling back to whichever one works, or none;
 * `onUnavailable(text)` hears why when it is none.
 */
export async function getLocalMedia(onUnavailable) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    onUnavailable('Camera and microphone need a secure page (https or localhost); joining without publishing.');
    return null;
  }
  // 1280×720 where the camera offers it (room for all three simulcast
  // layers), from the devices picked in the settings.
  const audio = constraintsFor('audio');
  const video = constraintsFor('video');
  const attempts = [{ audio, video }, { audio }, { video }];
  let lastError = null;
  for (const constraints of attempts) {
    try {
      return await navigator.mediaDevices.getUserMedia(constraints);
    } catch (err) {
      lastError = err;
    }
  }
  onUnavailable(`Camera and microphone unavailable (${errorText(lastError)}); joining without publishing.`);
  return null;
}

export function stopStream(stream) {
  if (stream) stream.getTracks().forEach((t) => t.stop());
}

/**
 * Creates the publish PC for the local tracks and the data channels (see
 * data.js), and sends `publish_offer`. Without camera or microphone it
 * still carries the data channels.
 */
export async function startPublishing(s, onStateChange) {
  const tracks = s.localStream ? sortByKind(s.localStream.getTracks()) : [];
  if (tracks.length === 0) log('no local media: the publish connection carries data only');
  const pc = newPeerConnection(s, 'publish', onStateChange);
  s.publishPc = pc;
  openDataChannels(s, pc);
  const streams = [s.localStream];
  for (const track of tracks) {
    const transceiver = track.kind === 'video'
      ? addCameraTransceiver(pc, track, streams)
      : pc.addTransceiver(track, { direction: 'sendonly', streams });
    s.publishTransceivers.set(track.kind, transceiver);
  }
  await pc.setLocalDescription(await pc.createOffer());
  logNegotiatedLayers(s.publishTransceivers.get('video'));
  sendPublishOffer(s, pc);
  releaseOutgoingCandidates(s, 'publish');
}

function sendPublishOffer(s, pc) {
  send(s, { type: 'publish_offer', sdp: pc.localDescription.sdp, sources: publishSources(s) });
}

/** mid -> source of every publish m-line (docs/PROTOCOL.md, `Source`). */
function publishSources(s) {
  const sources = {};
  const name = (transceiver, source) => {
    if (transceiver && transceiver.mid != null) sources[transceiver.mid] = source;
  };
  name(s.publishTransceivers.get('audio'), 'microphone');
  name(s.publishTransceivers.get('video'), 'camera');
  if (s.screen) {
    name(s.screen.video, 'screen_share');
    name(s.screen.audio, 'screen_share_audio');
  }
  return sources;
}

/**
 * Renegotiates the publish connection (a new offer); while an offer waits
 * for its answer, once more after the answer.
 */
async function renegotiatePublish(s, { iceRestart = false } = {}) {
  const pc = s.publishPc;
  if (!pc) return;
  if (iceRestart) s.publishIceRestart = true;
  if (pc.signalingState !== 'stable') {
    s.publishRenegotiate = true;
    return;
  }
  const restart = s.publishIceRestart;
  s.publishIceRestart = false;
  await pc.setLocalDescription(await pc.createOffer({ iceRestart: restart }));
  sendPublishOffer(s, pc);
}

/** Restarts ICE on the publish connection: an offer with new ICE credentials. */
export function restartPublishIce(s) {
  return renegotiatePublish(s, { iceRestart: true });
}

/** Whether this browser can share a screen. */
export function canShareScreen() {
  return !!(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia);
}

/**
 * Shares a screen, window or tab (the browser asks which): adds its video,
 * and its sound if shared, to the publish connection. `onEnded` hears when
 * the browser's own "stop sharing" control ends it. Throws if the user
 * declines.
 */
export async function startScreenShare(s, onEnded) {
  const stream = await navigator.mediaDevices.getDisplayMedia({
    video: { frameRate: { ideal: 15, max: 30 } },
    audio: true,
  });
  if (!s.publishPc || s.closed) {
    stopStream(stream);
    return null;
  }
  const screen = s.screen || { video: null, audio: null };
  s.screen = screen;
  screen.stream = stream;
  const video = stream.getVideoTracks()[0];
  if (video) video.contentHint = 'detail'; // text stays sharp, frame rate gives
  for (const track of stream.getTracks()) {
    track.addEventListener('ended', () => onEnded(track));
    const transceiver = screen[track.kind];
    if (transceiver) {
      transceiver.direction = 'sendonly';
      await transceiver.sender.replaceTrack(track);
    } else {
      screen[track.kind] = s.publishPc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
    }
  }
  // A previous share's sound m-line, when this one shares no sound.
  if (!stream.getAudioTracks().length && screen.audio) screen.audio.direction = 'inactive';
  await renegotiatePublish(s);
  log('sharing the screen', stream.getTracks().map((t) => t.kind).join('+'));
  return stream;
}

/** Stops the screen share: its tracks end and its m-lines go inactive. */
export async function stopScreenShare(s) {
  const screen = s.screen;
  if (!screen || !screen.stream) return;
  stopStream(screen.stream);
  screen.stream = null;
  for (const transceiver of [screen.video, screen.audio]) {
    if (!transceiver || transceiver.currentDirection === 'stopped') continue;
    await transceiver.sender.replaceTrack(null);
    transceiver.direction = 'inactive';
  }
  await renegotiatePublish(s);
  log('stopped sharing the screen');
}

function sortByKind(tracks) {
  return [...tracks].sort((a, b) => KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind));
}

export async function onPublishAnswer(s, msg) {
  const pc = s.publishPc;
  if (!pc) throw new Error('publish_answer without a publish connection');
  await pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
  s.publishAnswered = true;
  await flushIncomingCandidates(s, 'publish', pc);
  if (s.publishRenegotiate) {
    s.publishRenegotiate = false;
    await renegotiatePublish(s);
  }
  // Tracks muted before the server knew our mids: tell it now.
  for (const track of s.localStream ? s.localStream.getTracks() : []) {
    if (!track.enabled) sendMute(s, track.kind);
  }
}

/** The local track of `kind` ("audio" or "video"), if the session has one. */
export function localTrack(s, kind) {
  return s && s.localStream ? s.localStream.getTracks().find((t) => t.kind === kind) : undefined;
}

/** Flips a local track on/off and tells the server; false if there is no such track. */
export function toggleLocalTrack(s, kind) {
  const track = localTrack(s, kind);
  if (!track) return false;
  track.enabled = !track.enabled;
  sendMute(s, kind);
  return true;
}

/**
 * `muted_by_operator`: an operator muted our track on `mid`. Switch it off
 * locally too, so the buttons say so; unmuting it (the button) tells the
 * server, which forwards it again. Returns the kind muted, if any.
 */
export function onMutedByOperator(s, msg) {
  for (const [kind, transceiver] of s.publishTransceivers) {
    if (transceiver.mid !== msg.mid) continue;
    const track = localTrack(s, kind);
    if (track) track.enabled = false;
    log(`an operator muted our ${kind}`);
    return kind;
  }
  return undefined;
}

/** Sends `mute` for one kind; before publish_answer it is sent on arrival instead. */
function sendMute(s, kind) {
  const transceiver = s.publishTransceivers.get(kind);
  const track = localTrack(s, kind);
  if (!transceiver || !track || transceiver.mid == null || !s.publishAnswered) return;
  send(s, { type: 'mute', mid: transceiver.mid, muted: !track.enabled });
}
