/**
 * The other participants in the room, as the server announces them
 * (`joined`, `participant_joined`/`participant_left`,
 * `track_published`/`track_updated`/`track_removed`): each with its tracks
 * and mute states, and its tile.
 */
import { log } from './log.js';
import { addRemoteTile, removeTile, renderRemoteIndicators, renderRemoteConnectionState } from './tiles.js';
import { syncRemoteMedia } from './subscribe.js';

/** Adds a participant (or the tracks of a known one); never ourselves. */
export function addParticipant(s, info) {
  if (!info || !info.id || info.id === s.participantId) return;
  let p = s.participants.get(info.id);
  if (!p) {
    const name = info.name || info.id;
    p = { id: info.id, name, tracks: new Map(), tile: addRemoteTile(info.id, name) };
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
  removeTile(p.tile);
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
  renderRemoteIndicators(p.tile, p.tracks);
}
