/**
 * Active speakers (`active_speakers`, docs/PROTOCOL.md): the server decides
 * who speaks from the audio levels it forwards. A speaking tile gets
 * `data-speaking="true"`, a highlight and a marker
 * (`data-testid="active-speaker"`) in its caption; the pages (pages.js)
 * bring a speaker that is off screen to the first page.
 */
import { arrangeTiles } from './pages.js';

/** Marks the tiles of `msg.speakers` (loudest first) and unmarks the others. */
export function onActiveSpeakers(s, msg) {
  const speaking = new Set((msg.speakers || []).map((sp) => sp.participant_id));
  s.speakers = speaking;
  const now = Date.now();
  if (s.localTile) markTile(s.localTile, speaking.has(s.participantId));
  for (const p of s.participants.values()) {
    const on = speaking.has(p.id);
    if (on) p.lastSpoke = now;
    markTile(p.tile, on);
  }
  arrangeTiles(s, { speakersFirst: true });
}

function markTile(tile, on) {
  tile.dataset.speaking = String(on);
  let marker = tile.querySelector('[data-testid="active-speaker"]');
  if (!on) {
    if (marker) marker.remove();
    return;
  }
  if (marker) return;
  marker = document.createElement('span');
  marker.className = 'badge speaking';
  marker.dataset.testid = 'active-speaker';
  marker.title = 'Speaking';
  marker.textContent = 'speaking';
  tile.querySelector('.name').after(marker);
}
