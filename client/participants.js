/**
 * The other participants in the room, as the server announces them
 * (`joined`, `participant_joined`/`participant_left`,
 * `track_published`/`track_updated`/`track_removed`,
 * `track_paused`/`track_resumed`): each with its tracks, their mute states,
 * which of its videos the server paused and why, and its tile.
 */
import { log } from './log.js';
import {
  addRemoteTile, removeTile, removeScreenTile, renderRemoteIndicators, renderRemoteConnectionState,
  renderRemotePaused,
} from './tiles.js';
import { syncRemoteMedia } from './subscribe.js';
import { forgetTile } from './adaptive.js';

/** Adds a participant (or the tracks of a known one); never ourselves. */
export function addParticipant(s, info) {
  if (!info || !info.id || info.id === s.participantId) return;
  let p = s.participants.get(info.id);
  if (!p) {
    const name = info.name || info.id;
    p = {
      id: info.id, name, tracks: new Map(), paused: new Map(), tile: addRemoteTile(info.id, name), screenTile: null,
    };
    s.participants.set(p.id, p);
    log('participant', p.name, p.id);
  }
  for (const t of info.tracks || []) p.tracks.set(t.id, t);
  renderRemoteIndicators(p.tile, p.tracks);
  syncRemoteMedia(s);
  renderRemoteConnectionState(p.tile, s.subscribePc);
}

export function removeParticipant(s, id) {
  const p = s.participants.get(id);
  if (!p) return;
  s.participants.delete(id);
  forgetTile(s, p.tile);
  removeTile(p.tile);
  if (p.screenTile) {
    forgetTile(s, p.screenTile);
    removeScreenTile(p.screenTile);
  }
  log('participant left', p.name, id);
}

/** track_published / track_updated: record the track and its mute state. */
export function setTrack(s, participantId, track) {
  const p = s.participants.get(participantId);
  if (!p || !track || !track.id) return;
  p.tracks.set(track.id, track);
  renderRemoteIndicators(p.tile, p.tracks);
}

export function removeTrack(s, participantId, trackId) {
  const p = s.participants.get(participantId);
  if (!p) return;
  p.tracks.delete(trackId);
  p.paused.delete(trackId);
  renderRemoteIndicators(p.tile, p.tracks);
  renderPaused(p);
}

/** track_paused: the server stopped forwarding one of the participant's videos. */
export function pauseTrack(s, participantId, trackId, reason) {
  const p = s.participants.get(participantId);
  if (!p || trackId == null) return;
  p.paused.set(String(trackId), reason === 'bandwidth' ? 'bandwidth' : 'publisher');
  log('video paused', p.name, trackId, reason);
  renderPaused(p);
}

/** track_resumed: forwarding of a paused video started again. */
export function resumeTrack(s, participantId, trackId) {
  const p = s.participants.get(participantId);
  if (!p || !p.paused.delete(String(trackId))) return;
  log('video resumed', p.name, trackId);
  renderPaused(p);
}

/** The tile is paused while any of its videos is; "bandwidth" wins over "publisher". */
function renderPaused(p) {
  const reasons = [...p.paused.values()];
  const reason = reasons.includes('bandwidth') ? 'bandwidth' : reasons[0] || null;
  renderRemotePaused(p.tile, reason);
}
