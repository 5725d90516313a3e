/**
 * Pages of tiles: up to PAGE_SIZE tiles show at once; beyond that the grid
 * has pages (`page-prev` / `page-next`, `page-label` says "2 / 3"), and
 * tiles on other pages are `hidden`, which adaptive.js reports to the
 * server so it sends no video for them.
 *
 * Speaker first: our own tile stays first; when someone starts speaking on
 * a page that is not shown, their tile moves to the front of the first
 * page and the first page is shown. Speakers already on screen stay put,
 * so tiles do not jump around while people talk in turn.
 */
export const PAGE_SIZE = 16;

const grid = document.getElementById('grid');
const pager = document.getElementById('pager');
const prev = document.getElementById('page-prev');
const next = document.getElementById('page-next');
const label = document.getElementById('page-label');
let page = 0;

/** Lays the grid's tiles out on pages; `speakersFirst` brings hidden speakers forward. */
export function arrangeTiles(s, { speakersFirst = false } = {}) {
  const tiles = [...grid.children];
  if (speakersFirst && s && tiles.length > PAGE_SIZE) {
    const hiddenSpeakers = [...s.participants.values()]
      .filter((p) => p.tile.dataset.speaking === 'true' && p.tile.hidden)
      .sort((a, b) => (a.lastSpoke || 0) - (b.lastSpoke || 0));
    for (const p of hiddenSpeakers) {
      const first = s.localTile && s.localTile.parentNode === grid ? s.localTile.nextSibling : grid.firstChild;
      grid.insertBefore(p.tile, first);
    }
    if (hiddenSpeakers.length) page = 0;
  }
  render();
}

function render() {
  const tiles = [...grid.children];
  const pages = Math.max(1, Math.ceil(tiles.length / PAGE_SIZE));
  page = Math.min(page, pages - 1);
  tiles.forEach((tile, i) => {
    const shown = Math.floor(i / PAGE_SIZE) === page;
    if (tile.hidden === shown) tile.hidden = !shown;
  });
  grid.dataset.count = String(Math.min(tiles.length - page * PAGE_SIZE, PAGE_SIZE));
  pager.hidden = pages === 1;
  label.textContent = `${page + 1} / ${pages}`;
  prev.disabled = page === 0;
  next.disabled = page === pages - 1;
}

/** Shows the page `delta` pages away. */
function turn(delta) {
  page = Math.max(0, page + delta);
  render();
}

prev.addEventListener('click', () => turn(-1));
next.addEventListener('click', () => turn(1));
