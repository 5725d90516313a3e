/**
 * Browser end-to-end test of Cascade with its bundled client.
 *
 * Starts the real server (CASCADE_BIN, default target/release/cascade) on a
 * free 127.0.0.1 port, then drives three headless Chromium participants
 * (one browser, three contexts, fake camera and microphone) through the
 * bundled client's auto-join URL `/?room=R&name=N`:
 *
 *   1. the server serves every file of the bundled client (client/);
 *   2. all three join at once; each page renders two remote tiles whose
 *      <video> has a picture (videoWidth > 0) and whose subscribe-connection
 *      inbound-rtp video `framesDecoded` keeps rising;
 *      the camera goes out as simulcast layers q/h/f, and each remote video's
 *      tile sends a `video_preference` (visible, with its size);
 *   3. A turns the camera off (and on again): B and C see it on A's tile and
 *      report A's video hidden (and shown again);
 *   4. A mutes the microphone (and unmutes): B and C see it;
 *      then data (the relayed channels), chat typed on one page reaching the
 *      others in order with an unread badge, the active-speaker marker
 *      following the one unmuted microphone (the fake microphone plays a
 *      speech-like WAV), the invite link, and screenshots of the desktop and
 *      phone layouts (written to target/e2e-desktop.png, e2e-phone.png);
 *   5. C clicks Leave: A's and B's grids shrink to one remote tile;
 *   6. A and B still decode each other's video;
 *   7. C joins again (now a late joiner): all three play each other again;
 *   8. an invalid room name is refused in the page, with a visible error;
 *   9. the server going away shows a visible error on the remaining pages.
 *
 * Each step asserts; once one fails the later ones are skipped, and the
 * failure prints the pages' console logs, their tile state and the server's
 * log tail. Every wait is bounded; nothing asserts on how fast things happen.
 *
 * Run it through tests/browser/run.sh, which provides a loopback-only network
 * namespace (Chromium would otherwise pick the machine's external address).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { chromium } from 'playwright-core';
import {
  ARTIFACTS, CASCADE_BIN, CHROMIUM, CHROMIUM_ARGS, CLIENT_FROM_DISK, clientFiles, freePort, serveClientFromDisk, startServer, sleep,
  waitFor as waitForWithin, writeSpeechWav,
} from './support.mjs';

/** Bounds for the waits below (not performance expectations). */
const SERVER_START_MS = 30_000;
const MEDIA_WAIT_MS = 30_000;
const STATE_WAIT_MS = 15_000;
const STEP_TIMEOUT_MS = 120_000;

const ROOM = `e2e-${Date.now().toString(36)}`;
/** The server requires access tokens; the pages join with links `cascade token create` prints. */
const API_KEYS = { CASCADE_API_KEY: 'E2Ekey', CASCADE_API_SECRET: 'e2e-secret-0123456789abcdef0123456789' };
const NAMES = ['Alice', 'Bob', 'Carol'];

/** Shared state across the steps. */
const ctx = {
  /** The server handle from support.mjs's startServer: {child, tail, stop()}. */
  server: null,
  baseUrl: null,
  browser: null,
  /** name -> {name, page, logs: string[], id} */
  peers: new Map(),
};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/** support.mjs's waitFor with this test's default bound. */
function waitFor(what, probe, { timeoutMs = STATE_WAIT_MS, intervalMs = 300 } = {}) {
  return waitForWithin(what, probe, { timeoutMs, intervalMs });
}

function peer(name) {
  const p = ctx.peers.get(name);
  assert.ok(p, `participant ${name} has no page`);
  return p;
}

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

/** Starts the server on a free 127.0.0.1 port; resolves once it serves the client page. */
async function startCascade() {
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  ctx.server = await startServer({
    // A disconnected peer may wait 30 s before removal (default 5): the UDP
    // blip below lasts longer than 5 s, and ICE restarts must bring it back.
    args: ['--http-addr', `127.0.0.1:${port}`, '--media-addr', '127.0.0.1', '--disconnect-grace-secs', '30',
      '--api-key', API_KEYS.CASCADE_API_KEY, '--api-secret', API_KEYS.CASCADE_API_SECRET],
    baseUrl,
    logPath: path.join(ARTIFACTS, 'e2e-server.log'),
    timeoutMs: SERVER_START_MS,
  });
  ctx.baseUrl = baseUrl;
  return baseUrl;
}

/** Stops the server if it runs. Always resolves. */
async function stopServer() {
  if (ctx.server) await ctx.server.stop();
}

// ---------------------------------------------------------------------------
// Pages
// ---------------------------------------------------------------------------

async function openParticipant(name) {
  const context = await ctx.browser.newContext({ viewport: { width: 1280, height: 720 } });
  await context.grantPermissions(['camera', 'microphone'], { origin: ctx.baseUrl });
  await serveClientFromDisk(context, ctx.baseUrl);
  const page = await context.newPage();
  const logs = [];
  const stamp = () => new Date().toISOString().slice(11, 23);
  page.on('console', (m) => logs.push(`${stamp()} ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`${stamp()} pageerror: ${e.message}`));
  page.on('crash', () => logs.push(`${stamp()} page crashed`));
  const p = { name, context, page, logs, id: null };
  ctx.peers.set(name, p);
  return p;
}

/** The join link `cascade token create` prints for `name` (its second line). */
function joinUrl(name) {
  const out = execFileSync(CASCADE_BIN, ['token', 'create', '--room', ROOM, '--identity', name, '--url', ctx.baseUrl], {
    env: { ...process.env, ...API_KEYS },
    encoding: 'utf8',
  });
  const link = out.trim().split('\n')[1];
  assert.ok(link && link.includes('token='), `token create printed a join link: ${out}`);
  return link;
}

/** A link without a token, as an old bookmark would be. */
function joinUrlWithoutToken(name) {
  return `${ctx.baseUrl}/?room=${encodeURIComponent(ROOM)}&name=${encodeURIComponent(name)}`;
}

/**
 * Everything the assertions look at, read in the page: remote tiles, their
 * video size and mute attributes, and per publisher the video frames decoded
 * on the subscribe connection (mapped mid -> participant by the offer's table).
 */
function snapshot(page) {
  return page.evaluate(async () => {
    const c = window.cascade;
    const framesDecoded = {};
    const audioPackets = {};
    /** participant id -> the last video_preference sent for their video */
    const preferences = {};
    const pc = c && c.subscribePc;
    if (pc) {
      const table = c.tracksByMid;
      for (const tr of pc.getTransceivers()) {
        const owner = tr.mid != null && table[tr.mid] ? table[tr.mid].participant_id : null;
        if (!owner) continue;
        if (table[tr.mid].kind === 'video') preferences[owner] = c.videoPreferences[table[tr.mid].track_id] || null;
        const stats = await tr.receiver.getStats();
        stats.forEach((s) => {
          if (s.type !== 'inbound-rtp') return;
          if (s.kind === 'video') framesDecoded[owner] = (framesDecoded[owner] || 0) + (s.framesDecoded || 0);
          if (s.kind === 'audio') audioPackets[owner] = (audioPackets[owner] || 0) + (s.packetsReceived || 0);
        });
      }
    }
    const tiles = [...document.querySelectorAll('[data-testid="remote-tile"]')].map((t) => ({
      id: t.dataset.participantId,
      name: t.dataset.participantName,
      videoWidth: t.querySelector('video').videoWidth,
      videoMuted: t.dataset.videoMuted,
      audioMuted: t.dataset.audioMuted,
      connection: t.dataset.connectionState,
      paused: t.dataset.paused,
    }));
    return {
      participantId: c ? c.participantId : null,
      joinScreenVisible: !document.querySelector('[data-testid="join-screen"]').hidden,
      tiles,
      framesDecoded,
      audioPackets,
      preferences,
      /** The camera's simulcast encodings, as rid/scale. */
      publishEncodings: c ? c.publishEncodings.map((e) => `${e.rid}/${e.scaleResolutionDownBy}`) : [],
      subscribeState: pc ? pc.connectionState : null,
      publishState: c && c.publishPc ? c.publishPc.connectionState : null,
      errors: [...document.querySelectorAll('[data-testid="error"]')].map((e) => e.textContent),
    };
  });
}

/** Tiles of `viewer` showing `publisher`'s name. */
function tileOf(snap, publisherName) {
  return snap.tiles.find((t) => t.name === publisherName);
}

/**
 * Waits until `viewer` has exactly the remote tiles `expected` (names), each
 * connected, with a picture and decoded frames; then until every one's video
 * frames decoded and audio packets received both rise.
 */
async function expectPlaying(viewer, expected) {
  const p = peer(viewer);
  const first = await waitFor(`${viewer} to play video from ${expected.join(' and ')}`, async () => {
    const snap = await snapshot(p.page);
    const names = snap.tiles.map((t) => t.name).sort();
    const ok = names.join() === [...expected].sort().join() &&
      snap.tiles.every((t) => t.connection === 'connected' && t.videoWidth > 0 && snap.framesDecoded[t.id] > 0);
    return { ok, detail: snap, snap };
  }, { timeoutMs: MEDIA_WAIT_MS });

  const { framesDecoded: frames0, audioPackets: audio0 } = first.snap;
  await waitFor(`${viewer}'s video framesDecoded and audio packetsReceived to rise for ${expected.join(' and ')}`,
    async () => {
      const snap = await snapshot(p.page);
      const rising = (now, before, id) => (now[id] || 0) > (before[id] || 0);
      const ok = snap.tiles.length === expected.length && snap.tiles.every((t) =>
        rising(snap.framesDecoded, frames0, t.id) && rising(snap.audioPackets, audio0, t.id));
      return {
        ok,
        detail: { framesBefore: frames0, framesNow: snap.framesDecoded, audioBefore: audio0, audioNow: snap.audioPackets },
      };
    }, { timeoutMs: MEDIA_WAIT_MS, intervalMs: 500 });
}

/** Waits until every viewer's last video_preference for `publisher`'s video says `visible`. */
async function expectPreference(viewers, publisher, visible) {
  for (const viewer of viewers) {
    await waitFor(`${viewer} to report ${publisher}'s video as ${visible ? 'visible' : 'hidden'}`, async () => {
      const pref = (await snapshot(peer(viewer).page)).preferences[peer(publisher).id];
      const ok = !!pref && pref.visible === visible && (!visible || (pref.width > 0 && pref.height > 0));
      return { ok, detail: pref };
    });
  }
}

/** Waits until every viewer shows `attr` = `value` on `publisher`'s tile. */
async function expectTileAttr(viewers, publisher, attr, value) {
  for (const viewer of viewers) {
    await waitFor(`${viewer} to show ${attr}=${value} on ${publisher}'s tile`, async () => {
      const snap = await snapshot(peer(viewer).page);
      const tile = tileOf(snap, publisher);
      return { ok: !!tile && tile[attr] === value, detail: snap.tiles };
    });
  }
}

/** Which tiles of `name`'s page carry the active-speaker marker: names, "self" for our own. */
function speakerMarks(name) {
  return peer(name).page.evaluate(() => [...document.querySelectorAll('[data-testid="active-speaker"]')]
    .map((m) => m.closest('.tile'))
    .map((t) => (t.classList.contains('local') ? 'self' : t.dataset.participantName)));
}

/** The chat messages on `name`'s page: "from: text". */
function chatLines(name) {
  return peer(name).page.evaluate(() => [...document.querySelectorAll('[data-testid="chat-message"]')]
    .map((m) => `${m.dataset.from}: ${m.querySelector('.chat-text').textContent}`));
}

async function click(name, testid) {
  await peer(name).page.click(`[data-testid="${testid}"]`, { timeout: STATE_WAIT_MS });
}

// ---------------------------------------------------------------------------
// Diagnostics
// ---------------------------------------------------------------------------

async function dumpDiagnostics(step, err) {
  const out = [`\n======== E2E FAILURE in step "${step}" ========`, String(err && err.stack || err)];
  for (const p of ctx.peers.values()) {
    out.push(`\n---- ${p.name} (${p.id || 'no id'}): page state ----`);
    try {
      out.push(JSON.stringify(await snapshot(p.page), null, 2));
      const file = path.join(ARTIFACTS, `e2e-failure-${p.name}.png`);
      await p.page.screenshot({ path: file, timeout: 5000 });
      out.push(`screenshot: ${file}`);
    } catch (e) {
      out.push(`(page state unavailable: ${e.message})`);
    }
    out.push(`---- ${p.name}: console (last 150 lines) ----`, ...p.logs.slice(-150));
  }
  const serverTail = ctx.server ? ctx.server.tail : [];
  out.push('\n---- server log (last 150 lines; full log in e2e-server.log) ----', ...serverTail.slice(-150));
  out.push('======== end of diagnostics ========\n');
  console.error(out.join('\n'));
}

let failedStep = null;

/** A test step: skipped once an earlier one failed, dumps diagnostics when it fails. */
function step(name, fn) {
  test(name, { timeout: STEP_TIMEOUT_MS }, async (t) => {
    if (failedStep) {
      t.skip(`earlier step failed: ${failedStep}`);
      return;
    }
    try {
      await fn(t);
    } catch (err) {
      failedStep = name;
      await dumpDiagnostics(name, err);
      throw err;
    }
  });
}

// ---------------------------------------------------------------------------
// Setup / teardown
// ---------------------------------------------------------------------------

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
});

after(async () => {
  if (process.env.E2E_VERBOSE) {
    for (const p of ctx.peers.values()) console.log(`---- ${p.name}: console ----\n${p.logs.join('\n')}`);
  }
  if (ctx.browser) await ctx.browser.close().catch(() => {});
  await stopServer();
});

// ---------------------------------------------------------------------------
// Steps
// ---------------------------------------------------------------------------

step('server starts and serves the bundled client', async () => {
  const base = await startCascade();
  // Every file under client/ must be served (the binary embeds them all).
  for (const [file, , type] of clientFiles()) {
    const res = await fetch(base + file);
    if (CLIENT_FROM_DISK && res.status === 404) {
      console.log(`E2E_CLIENT_FROM_DISK: the server does not serve ${file}; the pages get it from client/`);
      continue;
    }
    assert.equal(res.status, 200, `GET ${file}`);
    assert.match(res.headers.get('content-type') || '', new RegExp(type.split('/')[1]), `content-type of ${file}`);
  }
  const speech = writeSpeechWav(path.join(ARTIFACTS, 'e2e-speech.wav'));
  ctx.browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Fake cameras to switch between in the device settings (of three, the
    // second is Y16: a <video> shows it, but the WebRTC encoder takes no
    // frames from it, so the test switches to the third).
    args: [...CHROMIUM_ARGS.map((a) => (a === '--use-fake-device-for-media-stream' ? `${a}=device-count=3` : a)),
      `--use-file-for-fake-audio-capture=${speech}`],
  });
});

step('three participants join and each plays two remote videos', async () => {
  const peers = await Promise.all(NAMES.map(openParticipant));
  // All at once: joins racing each other is the case that must work.
  await Promise.all(peers.map((p) => p.page.goto(joinUrl(p.name))));
  for (const p of peers) {
    await waitFor(`${p.name} to be joined`, async () => {
      const snap = await snapshot(p.page);
      return { ok: !!snap.participantId, detail: snap };
    });
    p.id = (await snapshot(p.page)).participantId;
  }
  const ids = peers.map((p) => p.id);
  assert.equal(new Set(ids).size, 3, `participant ids must differ: ${ids}`);
  for (const name of NAMES) {
    await expectPlaying(name, NAMES.filter((n) => n !== name));
  }
  // Tiles carry the right ids, and nobody shows an error.
  for (const name of NAMES) {
    const snap = await snapshot(peer(name).page);
    for (const tile of snap.tiles) assert.equal(tile.id, peer(tile.name).id, `${name}'s tile for ${tile.name}`);
    assert.deepEqual(snap.errors, [], `${name} shows errors`);
    assert.deepEqual(snap.publishEncodings, ['q/4', 'h/2', 'f/1'], `${name} publishes the camera as simulcast q, h, f`);
    for (const tile of snap.tiles) assert.equal(tile.paused, 'false', `${name}'s tile for ${tile.name} is not paused`);
  }
  // Adaptive stream: every remote video's tile reported as shown, with its size.
  for (const name of NAMES) {
    for (const other of NAMES.filter((n) => n !== name)) await expectPreference([name], other, true);
  }
  const shot = path.join(ARTIFACTS, 'e2e-screenshot.png');
  await peer('Alice').page.screenshot({ path: shot });
  console.log(`screenshot of Alice's page: ${shot}`);
});

step('camera off on A shows video-muted on B and C, and back on', async () => {
  for (const viewer of ['Bob', 'Carol']) {
    const tile = tileOf(await snapshot(peer(viewer).page), 'Alice');
    assert.equal(tile && tile.videoMuted, 'false', `${viewer} sees Alice's camera on at first`);
  }
  await click('Alice', 'toggle-camera');
  await expectTileAttr(['Bob', 'Carol'], 'Alice', 'videoMuted', 'true');
  // The avatar replaces the video: nothing of it needs forwarding.
  await expectPreference(['Bob', 'Carol'], 'Alice', false);
  await click('Alice', 'toggle-camera');
  await expectTileAttr(['Bob', 'Carol'], 'Alice', 'videoMuted', 'false');
  await expectPreference(['Bob', 'Carol'], 'Alice', true);
});

step('mic mute on A shows audio-muted on B and C, and unmuted again', async () => {
  await click('Alice', 'toggle-mic');
  await expectTileAttr(['Bob', 'Carol'], 'Alice', 'audioMuted', 'true');
  for (const viewer of ['Bob', 'Carol']) {
    const tile = tileOf(await snapshot(peer(viewer).page), 'Alice');
    assert.equal(tile.videoMuted, 'false', `${viewer}: Alice's camera unaffected by the mic`);
  }
  await click('Alice', 'toggle-mic');
  await expectTileAttr(['Bob', 'Carol'], 'Alice', 'audioMuted', 'false');
});

step('data: A\'s reliable messages reach B and C in order and its lossy binary arrives; oversize and flooding get errors and harm no one', async () => {
  const everyone = ['Alice', 'Bob', 'Carol'];
  for (const name of everyone) {
    await waitFor(`${name}'s data channels to open`, async () => {
      const states = await peer(name).page.evaluate(() => window.cascade.dataChannels);
      return { ok: !!states && states.reliable === 'open' && states.lossy === 'open', detail: states };
    });
    await peer(name).page.evaluate(() => {
      window.__data = [];
      window.cascade.onData((m) => window.__data.push({
        ...m, data: typeof m.data === 'string' ? m.data : Array.from(new Uint8Array(m.data)),
      }));
    });
  }
  const aliceId = await peer('Alice').page.evaluate(() => window.cascade.participantId);
  await peer('Alice').page.evaluate(() => {
    for (let i = 0; i < 20; i++) window.cascade.sendData(`m${i}`, { topic: 'test' });
    window.cascade.sendData(new Uint8Array([0, 1, 254, 255]), { reliable: false, topic: 'state' });
  });
  const expected = Array.from({ length: 20 }, (_, i) => `m${i}`);
  for (const viewer of ['Bob', 'Carol']) {
    await waitFor(`${viewer} to get Alice's 20 messages and her binary state`, async () => {
      const got = await peer(viewer).page.evaluate(() => window.__data);
      const texts = got.filter((m) => m.reliable).map((m) => m.data);
      const binary = got.find((m) => !m.reliable);
      const ok = JSON.stringify(texts) === JSON.stringify(expected)
        && got.every((m) => m.from === aliceId && m.name === 'Alice')
        && !!binary && JSON.stringify(binary.data) === '[0,1,254,255]' && binary.topic === 'state';
      return { ok, detail: got.slice(-3) };
    });
  }
  assert.deepEqual(await peer('Alice').page.evaluate(() => window.__data), [], 'no echo to the sender');

  // Carol: sendData refuses an oversize message itself; sent raw, the server refuses it.
  const refusedLocally = await peer('Carol').page.evaluate(() => {
    try { window.cascade.sendData('x'.repeat(17000)); return false; } catch (e) { return e instanceof RangeError; }
  });
  assert.ok(refusedLocally, 'sendData throws a RangeError over 16 KiB');
  await peer('Carol').page.evaluate(() => window.cascade.rawDataChannel('reliable').send(JSON.stringify({ data: 'x'.repeat(17000) })));
  // ... and a flood of 400 lossy messages is cut to the rate limit.
  await peer('Carol').page.evaluate(() => {
    for (let i = 0; i < 400; i++) window.cascade.sendData(`flood${i}`, { reliable: false });
  });
  await waitFor('Carol to be told of the oversize message and the flood', async () => {
    const snap = await snapshot(peer('Carol').page);
    const ok = snap.errors.some((e) => /data_too_large/.test(e)) && snap.errors.some((e) => /data_rate_limited/.test(e));
    return { ok, detail: snap.errors };
  });
  await peer('Alice').page.evaluate(() => window.cascade.sendData('after the flood'));
  await waitFor('Bob to get Alice\'s message after the flood', async () => {
    const got = await peer('Bob').page.evaluate(() => window.__data);
    return { ok: got.some((m) => m.data === 'after the flood'), detail: got.length };
  });
  const bobGot = await peer('Bob').page.evaluate(() => window.__data);
  const flood = bobGot.filter((m) => String(m.data).startsWith('flood')).length;
  assert.ok(flood >= 50 && flood <= 250, `Bob got the rate-limited part of the flood only: ${flood} of 400`);
  assert.ok(!bobGot.some((m) => String(m.data).length > 16000), 'the oversize message reached nobody');
  for (const name of ['Alice', 'Bob']) {
    assert.deepEqual((await snapshot(peer(name).page)).errors, [], `${name} shows no error`);
  }
  await expectPlaying('Bob', ['Alice', 'Carol']);
});

step('chat typed on A reaches B and C in order, with an unread badge while closed; C answers', async () => {
  const alice = peer('Alice').page;
  await click('Alice', 'toggle-chat');
  await alice.fill('[data-testid="chat-input"]', 'hello 1');
  await click('Alice', 'chat-send');
  await alice.fill('[data-testid="chat-input"]', 'hello 2');
  await alice.press('[data-testid="chat-input"]', 'Enter');
  await alice.fill('[data-testid="chat-input"]', 'hello 3 <b>not bold</b>');
  await click('Alice', 'chat-send');
  const sent = ['Alice: hello 1', 'Alice: hello 2', 'Alice: hello 3 <b>not bold</b>'];
  for (const viewer of ['Bob', 'Carol']) {
    await waitFor(`${viewer} to get Alice's three chat lines in order, counted unread`, async () => {
      const lines = await chatLines(viewer);
      const unread = await peer(viewer).page.evaluate(() => {
        const badge = document.querySelector('[data-testid="chat-unread"]');
        return badge.hidden ? null : badge.textContent;
      });
      return { ok: JSON.stringify(lines) === JSON.stringify(sent) && unread === '3', detail: { lines, unread } };
    });
  }
  assert.deepEqual(await chatLines('Alice'), sent.map((l) => l.replace('Alice:', 'Alice (you):')), 'Alice sees her own lines');
  const bold = await peer('Bob').page.evaluate(() => document.querySelectorAll('.chat-text b').length);
  assert.equal(bold, 0, 'chat text is text, not HTML');
  // Bob opens the panel: the badge goes.
  await click('Bob', 'toggle-chat');
  const bobPanel = await peer('Bob').page.evaluate(() => ({
    open: !document.querySelector('[data-testid="chat-panel"]').hidden,
    badge: document.querySelector('[data-testid="chat-unread"]').hidden,
    times: [...document.querySelectorAll('[data-testid="chat-message"] time')].map((t) => t.textContent),
  }));
  assert.ok(bobPanel.open && bobPanel.badge, `Bob's panel opens and clears the badge: ${JSON.stringify(bobPanel)}`);
  assert.ok(bobPanel.times.length === 3 && bobPanel.times.every((t) => /\d/.test(t)), `each line has a time: ${bobPanel.times}`);
  await click('Carol', 'toggle-chat');
  await peer('Carol').page.fill('[data-testid="chat-input"]', 'hi from Carol');
  await peer('Carol').page.press('[data-testid="chat-input"]', 'Enter');
  for (const viewer of ['Alice', 'Bob']) {
    await waitFor(`${viewer} to get Carol's answer after Alice's lines`, async () => {
      const lines = await chatLines(viewer);
      return { ok: lines.length === 4 && lines[3] === 'Carol: hi from Carol', detail: lines };
    });
  }
});

step('the active-speaker marker follows the one participant whose microphone is on', async () => {
  await click('Bob', 'toggle-mic');
  await click('Carol', 'toggle-mic');
  const expectMarks = async (speaker) => {
    for (const viewer of NAMES) {
      const want = viewer === speaker ? ['self'] : [speaker];
      await waitFor(`${viewer} to mark ${speaker} alone as speaking`, async () => {
        const marks = await speakerMarks(viewer);
        return { ok: JSON.stringify(marks) === JSON.stringify(want), detail: marks };
      });
    }
  };
  await expectMarks('Alice');
  await click('Alice', 'toggle-mic');
  await click('Bob', 'toggle-mic');
  await expectMarks('Bob');
  // Everyone's microphone on again for the steps that follow.
  await click('Alice', 'toggle-mic');
  await click('Carol', 'toggle-mic');
  const speaking = await peer('Bob').page.evaluate(() => document.querySelector('.tile.local').dataset.speaking);
  assert.equal(speaking, 'true', 'the speaking tile is highlighted');
});

/** `name`'s screen tiles: [{name, width}] (the local one named "self"). */
function screenTiles(name) {
  return peer(name).page.evaluate(() => ({
    layout: document.querySelector('[data-testid="call-screen"]').dataset.layout,
    tiles: [...document.querySelectorAll('[data-testid="screen-tile"], [data-testid="local-screen-tile"]')].map((t) => ({
      name: t.dataset.testid === 'local-screen-tile' ? 'self' : t.dataset.participantName,
      width: t.querySelector('video').videoWidth,
    })),
  }));
}

step('a screen share appears large on the others and goes on stop, by the button or the browser\'s own control', async () => {
  const expectShare = async (sharing) => {
    for (const viewer of NAMES) {
      const want = !sharing ? [] : [viewer === 'Alice' ? 'self' : 'Alice'];
      await waitFor(`${viewer} to show ${sharing ? 'Alice\'s screen' : 'no screen'}`, async () => {
        const state = await screenTiles(viewer);
        const ok = JSON.stringify(state.tiles.map((t) => t.name)) === JSON.stringify(want)
          && state.tiles.every((t) => t.width > 0)
          && state.layout === (sharing ? 'spotlight' : 'grid');
        return { ok, detail: state };
      }, { timeoutMs: MEDIA_WAIT_MS });
    }
  };
  const pressed = () => peer('Alice').page.evaluate(() =>
    document.querySelector('[data-testid="toggle-screen"]').getAttribute('aria-pressed'));
  await click('Alice', 'toggle-screen');
  await expectShare(true);
  assert.equal(await pressed(), 'true');
  // Cameras still play beside the share.
  await expectPlaying('Bob', ['Alice', 'Carol']);
  const shot = path.join(ARTIFACTS, 'e2e-screen-share.png');
  await peer('Bob').page.screenshot({ path: shot });
  console.log(`screenshot: ${shot}`);
  await click('Alice', 'toggle-screen');
  await expectShare(false);
  assert.equal(await pressed(), 'false');
  // Again, ended from the browser's own "stop sharing" control (the track ends).
  await click('Alice', 'toggle-screen');
  await expectShare(true);
  await peer('Alice').page.evaluate(() => {
    const track = window.cascade.screenTrack;
    track.stop();
    track.dispatchEvent(new Event('ended'));
  });
  await expectShare(false);
  assert.equal(await pressed(), 'false');
  for (const name of NAMES) {
    // (Carol still shows the data step's refusals.)
    const errors = (await snapshot(peer(name).page)).errors.filter((e) => !/data_too_large|data_rate_limited/.test(e));
    assert.deepEqual(errors, [], `${name} shows no error`);
  }
});

/** Alice's outgoing camera and microphone as her publish connection sends them. */
function outgoing() {
  return peer('Alice').page.evaluate(() => {
    const pc = window.cascade.publishPc;
    const sent = (kind) => {
      const sender = pc.getSenders().find((s) => s.track && s.track.kind === kind);
      return sender ? { id: sender.track.id, deviceId: sender.track.getSettings().deviceId } : null;
    };
    return { video: sent('video'), audio: sent('audio'), signaling: pc.signalingState, sdp: pc.localDescription.sdp };
  });
}

/** The options of one of `name`'s device pickers, once it lists at least two (it fills in asynchronously). */
async function deviceOptions(name, testid) {
  const { options } = await waitFor(`${name}'s ${testid} to list two devices`, async () => {
    const listed = await peer(name).page.evaluate((id) => [...document.querySelectorAll(`[data-testid="${id}"] option`)]
      .map((o) => ({ value: o.value, selected: o.selected, label: o.textContent })), testid);
    return { ok: listed.length >= 2 && listed.some((o) => o.selected), detail: listed, options: listed };
  });
  return options;
}

step('device settings: a new camera and microphone replace the outgoing tracks without renegotiation; the speaker is set', async () => {
  const alice = peer('Alice').page;
  await click('Alice', 'device-settings');
  const before = await outgoing();
  assert.ok(before.video && before.audio, `Alice sends camera and microphone: ${JSON.stringify(before)}`);
  for (const [testid, kind] of [['camera-select', 'video'], ['mic-select', 'audio']]) {
    const options = await deviceOptions('Alice', testid);
    assert.ok(options.length >= 2, `two devices to pick from in ${testid}: ${JSON.stringify(options)}`);
    const selected = options.find((o) => o.selected);
    assert.equal(selected && selected.value, before[kind].deviceId, `${testid} shows the device in use`);
    const other = options.find((o) => !o.selected && o.label !== 'fake_device_1');
    await alice.selectOption(`[data-testid="${testid}"]`, other.value);
    await waitFor(`Alice's outgoing ${kind} to come from ${other.label}`, async () => {
      const now = await outgoing();
      return { ok: now[kind].deviceId === other.value && now[kind].id !== before[kind].id, detail: now[kind] };
    });
  }
  const after = await outgoing();
  assert.equal(after.signaling, 'stable', 'no offer pending');
  assert.equal(after.sdp, before.sdp, 'no renegotiation: the publish connection\'s local description is unchanged');
  await expectPlaying('Bob', ['Alice', 'Carol']);
  await click('Alice', 'device-close');

  // Bob picks another speaker: every remote sound plays there.
  await click('Bob', 'device-settings');
  const speakers = await deviceOptions('Bob', 'speaker-select');
  const speaker = speakers.find((o) => !o.selected);
  assert.ok(speaker, `a second speaker: ${JSON.stringify(speakers)}`);
  await peer('Bob').page.selectOption('[data-testid="speaker-select"]', speaker.value);
  await waitFor('Bob\'s remote audio to play on the picked speaker', async () => {
    const sinks = await peer('Bob').page.evaluate(() =>
      [...document.querySelectorAll('[data-testid="remote-tile"] audio')].map((a) => a.sinkId));
    return { ok: sinks.length === 2 && sinks.every((id) => id === speaker.value), detail: sinks };
  });
  await click('Bob', 'device-close');
});

step('stats: every tile\'s overlay shows what arrives or is sent, and a connection-quality badge', async () => {
  const read = () => peer('Bob').page.evaluate(() => [...document.querySelectorAll('[data-testid="grid"] .tile')].map((t) => ({
    name: t.dataset.participantName,
    local: t.classList.contains('local'),
    text: (t.querySelector('[data-testid="stats-overlay"]') || {}).textContent || '',
    quality: (t.querySelector('[data-testid="connection-quality"]') || { dataset: {} }).dataset.quality,
  })));
  await click('Bob', 'toggle-stats');
  await waitFor('Bob\'s stats overlays to show resolution, fps, bitrate, loss and rtt', async () => {
    const tiles = await read();
    const remote = tiles.filter((t) => !t.local);
    const local = tiles.find((t) => t.local);
    const ok = tiles.length === 3 && remote.length === 2
      && remote.every((t) => /\d+×\d+ [qhf]/.test(t.text) && /[1-9]\d* fps/.test(t.text)
        && /[1-9]\d* kbit\/s/.test(t.text) && /loss \d/.test(t.text) && /rtt \d+ ms/.test(t.text))
      && !!local && /sending \d+×\d+/.test(local.text) && /layers /.test(local.text)
      && tiles.every((t) => t.quality === 'excellent' || t.quality === 'good');
    return { ok, detail: tiles };
  });
  const shot = path.join(ARTIFACTS, 'e2e-stats.png');
  await peer('Bob').page.screenshot({ path: shot });
  await click('Bob', 'toggle-stats');
  await waitFor('Bob\'s overlays to go, the badges to stay', async () => {
    const tiles = await read();
    return { ok: tiles.every((t) => t.text === '' && t.quality), detail: tiles };
  });
});

step('the invite link names the room and no token; desktop and phone layouts are captured', async () => {
  await peer('Alice').context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: ctx.baseUrl });
  await click('Alice', 'copy-link');
  const expected = `${ctx.baseUrl}/?room=${encodeURIComponent(ROOM)}`;
  await waitFor('Alice to be shown the invite link', async () => {
    const notices = await peer('Alice').page.evaluate(() =>
      [...document.querySelectorAll('[data-testid="notice"]')].map((n) => n.textContent));
    return { ok: notices.some((n) => n.includes(expected)), detail: notices };
  });
  const copied = await peer('Alice').page.evaluate(() => navigator.clipboard.readText().catch((e) => `unreadable: ${e}`));
  assert.equal(copied, expected, 'the clipboard holds the invite link, without a token');

  const desktop = path.join(ARTIFACTS, 'e2e-desktop.png');
  await peer('Alice').page.screenshot({ path: desktop });
  const bob = peer('Bob').page;
  await bob.setViewportSize({ width: 390, height: 844 });
  await click('Bob', 'toggle-chat'); // closes the panel over the call
  await sleep(1500);
  const phone = path.join(ARTIFACTS, 'e2e-phone.png');
  await bob.screenshot({ path: phone });
  const layout = await bob.evaluate(() => {
    const columns = getComputedStyle(document.querySelector('[data-testid="grid"]')).gridTemplateColumns.split(' ').length;
    const controls = document.querySelector('.controls').getBoundingClientRect();
    const leave = document.querySelector('[data-testid="leave"]').getBoundingClientRect();
    return { columns, controlsBottom: controls.bottom, leaveHeight: leave.height, height: innerHeight };
  });
  assert.equal(layout.columns, 1, `one column of tiles on a phone: ${JSON.stringify(layout)}`);
  assert.ok(layout.controlsBottom <= layout.height + 1 && layout.controlsBottom >= layout.height - 60,
    `controls at the bottom, within thumb reach: ${JSON.stringify(layout)}`);
  assert.ok(layout.leaveHeight >= 44, `buttons big enough to tap: ${JSON.stringify(layout)}`);
  console.log(`screenshots: ${desktop} ${phone}`);
  await bob.setViewportSize({ width: 1280, height: 720 });
});

step('an operator mutes A\'s mic: A is told and shows it muted, B and C see it; A unmutes', async () => {
  const admin = execFileSync(CASCADE_BIN, ['token', 'create', '--identity', 'ops', '--room-admin'], {
    env: { ...process.env, ...API_KEYS },
    encoding: 'utf8',
  }).trim().split('\n')[0];
  const headers = { Authorization: `Bearer ${admin}` };
  const rooms = await (await fetch(`${ctx.baseUrl}/admin/rooms`, { headers })).json();
  const alice = rooms.rooms.find((r) => r.name === ROOM).participants.find((p) => p.name === 'Alice');
  const audio = alice.published.find((t) => t.kind === 'audio');
  assert.ok(audio, `Alice publishes audio: ${JSON.stringify(alice)}`);
  const path = `/admin/rooms/${encodeURIComponent(ROOM)}/participants/${alice.id}/tracks/${audio.id}/mute`;
  const muted = await fetch(`${ctx.baseUrl}${path}`, { method: 'POST', headers });
  assert.equal(muted.status, 200, await muted.text());

  await expectTileAttr(['Bob', 'Carol'], 'Alice', 'audioMuted', 'true');
  await waitFor('Alice\'s page to show her mic muted by an operator', async () => {
    const state = await peer('Alice').page.evaluate(() => ({
      pressed: document.querySelector('[data-testid="toggle-mic"]').getAttribute('aria-pressed'),
      notices: [...document.querySelectorAll('[data-testid="notice"]')].map((n) => n.textContent),
    }));
    return { ok: state.pressed === 'true' && state.notices.some((n) => n.includes('operator muted')), detail: state };
  });
  await click('Alice', 'toggle-mic');
  await expectTileAttr(['Bob', 'Carol'], 'Alice', 'audioMuted', 'false');
  await waitFor('Bob to receive Alice\'s audio again', async () => {
    const before = (await snapshot(peer('Bob').page)).audioPackets[alice.id] || 0;
    await sleep(1000);
    const after = (await snapshot(peer('Bob').page)).audioPackets[alice.id] || 0;
    return { ok: after > before, detail: { before, after } };
  });
});

step('C leaves: A and B shrink to one remote tile', async () => {
  await click('Carol', 'leave');
  await waitFor('Carol to be back on the join screen', async () => {
    const snap = await snapshot(peer('Carol').page);
    return { ok: snap.joinScreenVisible && snap.tiles.length === 0, detail: snap };
  });
  for (const [viewer, other] of [['Alice', 'Bob'], ['Bob', 'Alice']]) {
    await waitFor(`${viewer}'s grid to shrink to ${other} alone`, async () => {
      const snap = await snapshot(peer(viewer).page);
      const names = snap.tiles.map((t) => t.name);
      return { ok: names.length === 1 && names[0] === other, detail: snap.tiles };
    });
  }
});

step('A and B still play each other after C left', async () => {
  await expectPlaying('Alice', ['Bob']);
  await expectPlaying('Bob', ['Alice']);
  for (const name of ['Alice', 'Bob']) {
    assert.deepEqual((await snapshot(peer(name).page)).errors, [], `${name} shows errors`);
  }
});

step('C joins again later: all three play each other again', async () => {
  const carol = peer('Carol');
  await carol.page.goto(joinUrl('Carol'));
  await waitFor('Carol to be joined again', async () => {
    const snap = await snapshot(carol.page);
    return { ok: !!snap.participantId && snap.participantId !== carol.id, detail: snap };
  });
  carol.id = (await snapshot(carol.page)).participantId;
  for (const name of NAMES) {
    await expectPlaying(name, NAMES.filter((n) => n !== name));
  }
  for (const name of NAMES) {
    assert.deepEqual((await snapshot(peer(name).page)).errors, [], `${name} shows errors`);
  }
});

step('WebSockets cut under every page: each shows it is reconnecting, rejoins and plays again, chat kept', async () => {
  const port = new URL(ctx.baseUrl).port;
  const before = {};
  const chatBefore = {};
  for (const name of NAMES) {
    before[name] = (await snapshot(peer(name).page)).participantId;
    chatBefore[name] = await chatLines(name);
  }
  assert.ok(chatBefore.Alice.length >= 4, 'Alice has chat to keep');
  const cutAt = Date.now();
  // Destroys the pages' TCP connections to the server (the kernel resets them): a real cut, not a close.
  execFileSync('ss', ['-K', 'dst', '127.0.0.1', 'dport', '=', `:${port}`]);
  await waitFor('a page to show that it is reconnecting', async () => {
    const shown = await Promise.all(NAMES.map((n) => peer(n).page.evaluate(() =>
      !document.querySelector('[data-testid="reconnecting"]').hidden ||
      document.querySelector('[data-testid="call-screen"]').dataset.reconnecting === 'true')));
    const again = await Promise.all(NAMES.map(async (n) => (await snapshot(peer(n).page)).participantId));
    // Either the banner is up, or a page already rejoined (with a new id).
    return { ok: shown.some(Boolean) || again.every((id, i) => id && id !== before[NAMES[i]]), detail: shown };
  }, { intervalMs: 50 });
  for (const name of NAMES) {
    await waitFor(`${name} to rejoin as a new participant`, async () => {
      const snap = await snapshot(peer(name).page);
      return { ok: !!snap.participantId && snap.participantId !== before[name] && !snap.joinScreenVisible, detail: snap };
    }, { timeoutMs: MEDIA_WAIT_MS });
    peer(name).id = (await snapshot(peer(name).page)).participantId;
  }
  for (const name of NAMES) await expectPlaying(name, NAMES.filter((n) => n !== name));
  console.log(`reconnect: all three pages played each other again ${Date.now() - cutAt} ms after the cut`);
  for (const name of NAMES) {
    const banner = await peer(name).page.evaluate(() => document.querySelector('[data-testid="reconnecting"]').hidden);
    assert.ok(banner, `${name}'s reconnecting banner is gone`);
    assert.deepEqual(await chatLines(name), chatBefore[name], `${name} keeps the chat across the reconnect`);
  }
  // Chat still works on the new connections.
  await peer('Alice').page.fill('[data-testid="chat-input"]', 'back again');
  await peer('Alice').page.press('[data-testid="chat-input"]', 'Enter');
  await waitFor('Bob to get Alice\'s message after the reconnect', async () => {
    const lines = await chatLines('Bob');
    return { ok: lines[lines.length - 1] === 'Alice: back again', detail: lines.slice(-2) };
  });
});

step('a UDP blip under a live WebSocket: every connection restarts ICE and plays again as the same participant', async () => {
  const ids = {};
  const restarts = {};
  for (const name of NAMES) {
    ids[name] = (await snapshot(peer(name).page)).participantId;
    restarts[name] = await peer(name).page.evaluate(() => window.cascade.iceRestarts);
  }
  const cutAt = Date.now();
  // All UDP in this (loopback-only) namespace is dropped, and all TCP but
  // the HTTP port's (else ICE moves to the server's passive TCP candidate
  // without a hitch, which is good, but no restart): the WebSockets live on.
  const http = new URL(ctx.baseUrl).port;
  execFileSync('nft', ['-f', '-'], {
    input: `table inet cascade_blip {\n  chain out {\n    type filter hook output priority 0; policy accept;\n`
      + `    meta l4proto udp drop\n    tcp dport != ${http} tcp sport != ${http} drop\n  }\n}\n`,
  });
  try {
    await waitFor('every page to lose its connections', async () => {
      const states = await Promise.all(NAMES.map((n) => snapshot(peer(n).page)));
      const ok = states.every((st) => st.subscribeState !== 'connected' && st.publishState !== 'connected');
      return { ok, detail: states.map((st) => [st.publishState, st.subscribeState]) };
    }, { intervalMs: 200 });
    await sleep(3000); // the restarts start while UDP is still dropped
  } finally {
    execFileSync('nft', ['delete', 'table', 'inet', 'cascade_blip']);
  }
  const restoredAt = Date.now();
  for (const name of NAMES) {
    await waitFor(`${name}'s connections to come back by ICE restarts`, async () => {
      const snap = await snapshot(peer(name).page);
      const now = await peer(name).page.evaluate(() => window.cascade.iceRestarts);
      const ok = snap.participantId === ids[name] && snap.publishState === 'connected' && snap.subscribeState === 'connected'
        && !!now && now.publish > restarts[name].publish && now.subscribe > restarts[name].subscribe;
      return { ok, detail: { id: snap.participantId, was: ids[name], now, before: restarts[name], pc: [snap.publishState, snap.subscribeState] } };
    }, { timeoutMs: MEDIA_WAIT_MS });
  }
  for (const name of NAMES) await expectPlaying(name, NAMES.filter((n) => n !== name));
  console.log(`ICE restart: the cut lasted ${restoredAt - cutAt} ms; all three pages played each other again ${Date.now() - restoredAt} ms after it ended`);
  for (const name of NAMES) {
    const errors = (await snapshot(peer(name).page)).errors.filter((e) => !/data_too_large|data_rate_limited/.test(e));
    assert.deepEqual(errors, [], `${name} shows no error`);
  }
});

step('an invalid room name is refused with a visible error', async () => {
  const { page } = peer('Carol');
  await page.goto(`${ctx.baseUrl}/?room=${encodeURIComponent('no spaces allowed')}&name=Carol`);
  await waitFor('Carol to show an error about the room name', async () => {
    const snap = await snapshot(page);
    const ok = snap.joinScreenVisible && snap.errors.some((e) => /room/i.test(e)) && !snap.participantId;
    return { ok, detail: snap };
  });
  // The join screen previews the camera the call would use.
  await waitFor('Carol\'s join screen to preview her camera', async () => {
    const width = await page.evaluate(() => document.querySelector('[data-testid="device-preview"]').videoWidth);
    return { ok: width > 0, detail: width };
  });
});

step('a join link without a token is refused with a visible error', async () => {
  const { page } = peer('Carol');
  await page.goto(joinUrlWithoutToken('Carol'));
  await waitFor('Carol to show that a token is needed', async () => {
    const snap = await snapshot(page);
    const ok = snap.joinScreenVisible && snap.errors.some((e) => /unauthorized/.test(e)) && !snap.participantId;
    return { ok, detail: snap };
  });
});

step('the server going away shows an error on the remaining pages', async () => {
  await stopServer();
  for (const name of ['Alice', 'Bob']) {
    await waitFor(`${name} to show the lost connection`, async () => {
      const snap = await snapshot(peer(name).page);
      // The server's parting `error` (code fatal, shutdown), or the socket
      // close itself, which the page answers by trying to reconnect.
      const reconnecting = await peer(name).page.evaluate(() => !document.querySelector('[data-testid="reconnecting"]').hidden);
      const ok = (snap.joinScreenVisible && snap.errors.some((e) => /server|connection/i.test(e))) || reconnecting;
      return { ok, detail: { ...snap, reconnecting } };
    });
  }
});
