/**
 * Device settings: which camera, microphone and speaker the call uses.
 *
 * One panel (`data-testid="device-panel"`) with a preview of the camera and
 * three pickers (`camera-select`, `mic-select`, `speaker-select`). Before
 * joining it sits in the join form, previewing the camera the call will
 * start with; during a call it opens from `device-settings` in a dialog.
 * Switching a camera or microphone in a call replaces the outgoing track on
 * its sender (`RTCRtpSender.replaceTrack`: no renegotiation, the simulcast
 * layers stay); the speaker is every remote tile's `setSinkId`.
 */
import { log, errorText } from './log.js';
import { setAudioOutput } from './tiles.js';

const byId = (id) => document.getElementById(id);
const panel = byId('device-panel');
const preview = byId('device-preview');
const dialog = byId('device-dialog');
const selects = {
  video: byId('camera-select'),
  audio: byId('mic-select'),
  speaker: byId('speaker-select'),
};
/** enumerateDevices kind per picker. */
const DEVICE_KIND = { video: 'videoinput', audio: 'audioinput', speaker: 'audiooutput' };

/** The devices picked so far (deviceId per picker; '' = the browser's default). */
export const picked = { video: '', audio: '', speaker: '' };

/** getUserMedia constraints for `kind` with the picked device. */
export function constraintsFor(kind) {
  const base = kind === 'video' ? { width: { ideal: 1280 }, height: { ideal: 720 } } : {};
  return picked[kind] ? { ...base, deviceId: { exact: picked[kind] } } : (kind === 'video' ? base : true);
}

/**
 * Wires the pickers. `currentStream()` is the stream the preview shows and
 * a switch changes; `onSwitch(kind, track)` puts a new camera or
 * microphone track into the call (returns a promise).
 */
export function initDevices({ currentStream, onSwitch, onProblem }) {
  for (const [key, select] of Object.entries(selects)) {
    select.addEventListener('change', async () => {
      picked[key] = select.value;
      try {
        if (key === 'speaker') {
          await setAudioOutput(select.value);
        } else {
          await switchDevice(key, currentStream(), onSwitch);
        }
      } catch (err) {
        onProblem(`Could not switch to that device: ${errorText(err)}`);
      }
    });
  }
  byId('device-settings').addEventListener('click', () => openDialog(currentStream()));
  byId('device-close').addEventListener('click', () => closeDialog());
  navigator.mediaDevices?.addEventListener?.('devicechange', () => refreshDevices(currentStream()));
}

/** Shows the panel in the join form, previewing `stream`. */
export function showInJoinForm(stream) {
  byId('join-devices').append(panel);
  showPreview(stream);
  refreshDevices(stream);
}

function openDialog(stream) {
  byId('device-dialog-body').append(panel);
  showPreview(stream);
  refreshDevices(stream);
  if (!dialog.open) dialog.showModal();
}

export function closeDialog() {
  if (dialog.open) dialog.close();
}

function showPreview(stream) {
  const hasVideo = !!stream && stream.getVideoTracks().length > 0;
  preview.hidden = !hasVideo;
  if (preview.srcObject !== stream) preview.srcObject = hasVideo ? stream : null;
  if (hasVideo) preview.play().catch(() => {});
}

/** Fills the pickers from enumerateDevices, selecting what `stream` uses. */
async function refreshDevices(stream) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
  const devices = await navigator.mediaDevices.enumerateDevices();
  const inUse = {};
  for (const track of stream ? stream.getTracks() : []) inUse[track.kind] = track.getSettings().deviceId;
  for (const [key, select] of Object.entries(selects)) {
    const options = devices.filter((d) => d.kind === DEVICE_KIND[key]);
    select.replaceChildren(...options.map((d, i) => {
      const option = document.createElement('option');
      option.value = d.deviceId;
      option.textContent = d.label || `${key === 'video' ? 'Camera' : key === 'audio' ? 'Microphone' : 'Speaker'} ${i + 1}`;
      return option;
    }));
    const want = picked[key] || inUse[key];
    if (want && options.some((d) => d.deviceId === want)) select.value = want;
    // A browser that cannot pick the output (no setSinkId) plays to the default.
    select.disabled = options.length === 0 || (key === 'speaker' && !('setSinkId' in HTMLMediaElement.prototype));
  }
}

/** Replaces `stream`'s track of `kind` with one from the picked device. */
async function switchDevice(kind, stream, onSwitch) {
  const fresh = await navigator.mediaDevices.getUserMedia({ [kind]: constraintsFor(kind) });
  const track = fresh.getTracks()[0];
  const old = stream ? stream.getTracks().find((t) => t.kind === kind) : null;
  if (old) track.enabled = old.enabled; // a muted microphone stays muted
  await onSwitch(kind, track);
  if (stream) {
    if (old) {
      stream.removeTrack(old);
      old.stop();
    }
    stream.addTrack(track);
  }
  log(`switched ${kind} to`, track.label);
  showPreview(stream);
}
