/**
 * The subscribe connection (the server offers, the client answers): it is
 * created on the first `subscribe_offer` and answers every later re-offer on
 * the same connection. It receives everybody else's tracks, plus a data
 * channel. Owns the mid -> track table of the latest offer, which maps each
 * receiver to its participant (`ontrack`'s `streams[0].id`, the participant
 * id, is the fallback when the server sends no table), and puts every
 * received track into its participant's tile (and, by track id, into the
 * adaptive stream's watch list, see adaptive.js); a participant's shared
 * screen (the table's `source`) goes into a screen tile of its own, shown
 * large (tiles.js).
 */
import { log } from './log.js';
import { send } from './signaling.js';
import { newPeerConnection, releaseOutgoingCandidates, flushIncomingCandidates } from './ice.js';
import {
  setTileMedia, renderRemoteConnectionState, addScreenTile, removeScreenTile,
} from './tiles.js';
import { showVideosInTile } from './adaptive.js';

function createSubscribePc(s, onStateChange) {
  const pc = newPeerConnection(s, 'subscribe', onStateChange);
  s.subscribePc = pc;
  pc.ontrack = (e) => onRemoteTrack(s, e);
  pc.ondatachannel = (e) => {
    s.dataChannel = e.channel;
    e.channel.onmessage = (m) => log('data channel message', m.data);
    log('data channel', e.channel.label);
  };
  return pc;
}

/** Answers a `subscribe_offer`, creating the subscribe PC on the first one. */
export async function onSubscribeOffer(s, msg, onStateChange) {
  const pc = s.subscribePc || createSubscribePc(s, onStateChange);
  // The table must be in place before setRemoteDescription fires ontrack.
  s.haveTrackTable = Array.isArray(msg.tracks);
  s.subscribeTracks = new Map((msg.tracks || []).map((t) => [String(t.mid), t]));
  await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
  await flushIncomingCandidates(s, 'subscribe', pc);
  await pc.setLocalDescription(await pc.createAnswer());
  send(s, { type: 'subscribe_answer', sdp: pc.localDescription.sdp });
  releaseOutgoingCandidates(s, 'subscribe');
  syncRemoteMedia(s);
}

/** mid -> {mid, participant_id, track_id, kind}, as a plain object. */
export function tracksByMid(s) {
  return Object.fromEntries(s.subscribeTracks);
}

function onRemoteTrack(s, event) {
  const mid = event.transceiver && event.transceiver.mid;
  const stream = event.streams && event.streams[0];
  if (mid != null && stream) s.midOwners.set(mid, stream.id);
  log('remote track', event.track.kind, 'mid', mid, 'stream', stream && stream.id);
  syncRemoteMedia(s);
}

/** The latest offer's table row for a subscribe transceiver (none without a table). */
function tableEntry(s, transceiver) {
  return s.haveTrackTable ? s.subscribeTracks.get(transceiver.mid) || null : null;
}

/** Which participant a subscribe transceiver currently carries, if any. */
function ownerOf(s, transceiver) {
  if (s.haveTrackTable) {
    const entry = tableEntry(s, transceiver);
    return entry ? entry.participant_id : null;
  }
  const receiving = transceiver.currentDirection === 'recvonly' || transceiver.currentDirection === 'sendrecv';
  return receiving ? s.midOwners.get(transceiver.mid) || null : null;
}

/**
 * The server's track id of the video on a subscribe transceiver, from the
 * offer's table (none without one: then no preferences are sent for it).
 */
function videoTrackIdOf(s, transceiver) {
  const entry = tableEntry(s, transceiver);
  return entry && transceiver.receiver.track.kind === 'video' ? String(entry.track_id) : null;
}

/** Whether a subscribe transceiver carries a shared screen (or its sound). */
function isScreen(s, transceiver) {
  const entry = tableEntry(s, transceiver);
  return !!entry && (entry.source === 'screen_share' || entry.source === 'screen_share_audio');
}

/** Puts every active receiver track into its participant's tile, or screen tile. */
export function syncRemoteMedia(s) {
  const pc = s.subscribePc;
  if (!pc) return;
  const byOwner = new Map();
  const empty = () => ({ tracks: [], videoTrackIds: [] });
  for (const transceiver of pc.getTransceivers()) {
    if (transceiver.mid == null || transceiver.currentDirection === 'stopped') continue;
    const owner = ownerOf(s, transceiver);
    if (!owner) continue;
    if (!byOwner.has(owner)) byOwner.set(owner, { camera: empty(), screen: empty() });
    const media = byOwner.get(owner)[isScreen(s, transceiver) ? 'screen' : 'camera'];
    media.tracks.push(transceiver.receiver.track);
    const videoTrackId = videoTrackIdOf(s, transceiver);
    if (videoTrackId) media.videoTrackIds.push(videoTrackId);
  }
  // Preferences wait for the answer: ontrack fires while an offer is still being answered.
  const answered = pc.signalingState === 'stable';
  for (const p of s.participants.values()) {
    const media = byOwner.get(p.id) || { camera: empty(), screen: empty() };
    setTileMedia(p.tile, media.camera.tracks);
    if (answered) showVideosInTile(s, p.tile, media.camera.videoTrackIds);
    renderRemoteConnectionState(p.tile, pc);
    const sharing = media.screen.tracks.some((t) => t.kind === 'video');
    if (sharing && !p.screenTile) p.screenTile = addScreenTile(p.id, p.name);
    if (p.screenTile) {
      setTileMedia(p.screenTile, sharing ? media.screen.tracks : []);
      if (answered || !sharing) showVideosInTile(s, p.screenTile, sharing ? media.screen.videoTrackIds : []);
      if (!sharing) {
        removeScreenTile(p.screenTile);
        p.screenTile = null;
      }
    }
  }
}
