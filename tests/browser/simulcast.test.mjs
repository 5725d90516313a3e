/**
 * Simulcast and congestion control in real browsers over a shaped link.
 *
 * Runs inside tests/browser/shaped-link.sh's server namespace (10.99.0.1),
 * beside the real server (CASCADE_BIN, `--media-addr 0.0.0.0 --public-ip
 * 10.99.0.1`). One headless Chromium there carries the publisher (fake
 * camera at 1280×720, 30 fps, published as three simulcast layers by the
 * bundled client) and the unshaped subscriber; a second Chromium runs in the
 * client namespace, the only one behind the 700 kbit/s tbf link: the shaped
 * subscriber. The subscribers publish nothing (getUserMedia is refused in
 * their pages), so each receives exactly one video: the publisher's.
 *
 *   1. the server starts in the server namespace;
 *   2. all three join; the publisher sends q/h/f from a 1280×720 capture,
 *      and both subscribers play its video;
 *   3. after a warm-up (the bandwidth estimates settle), over a 20 s window
 *      (inbound-rtp of the publisher's video, sampled every second):
 *        shaped:   ≥ 15 fps decoded on average, totalFreezesDuration grows
 *                  by < 2 s, and at most ~700 kbit/s arrive (the shaping is
 *                  in effect);
 *        unshaped: median frameWidth ≥ 640 and ≥ 20 fps;
 *      the figures are printed either way;
 *   4. a Firefox subscriber (firefox-esr over WebDriver BiDi, puppeteer-core)
 *      decodes the simulcast publisher's video (framesDecoded rising,
 *      videoWidth > 0); then, with the publisher's Chromium page, chat both
 *      ways, 90 lossy and 90 reliable messages each way at 30 a second
 *      (lossy >= 90 % arrive, reliable all and in order), and the
 *      publisher's screen share appearing on Firefox as a tile and going;
 *   5. a second server with `--tls-self-signed` (its certificate names
 *      10.99.0.1): a publisher page in the server namespace and a
 *      subscriber page in the client namespace (certificate errors ignored,
 *      as a visitor who accepted the warning) load the client over
 *      `https://`, signal over `wss://`, and the subscriber plays;
 *   6. Debian's coturn on 10.99.0.1 (`use-auth-secret`) and a third server
 *      with `--turn-url`/`--turn-secret`: a subscriber in the client
 *      namespace joins with `&relay=1` (`iceTransportPolicy: 'relay'`) and
 *      plays with its subscribe connection's selected pair on a `relay`
 *      local candidate, and coturn logs a successful allocation;
 *   7. nftables in the client namespace drops every outgoing UDP packet (a
 *      firewall that lets only TCP out); a new Chromium subscriber there
 *      plays the publisher (framesDecoded rising) with its subscribe
 *      connection's selected pair on a local `tcp` candidate and the
 *      server's host candidate, and the firewall's counter shows it did drop
 *      the UDP the browser tried. (The shaped subscriber behind it loses its
 *      UDP path then; nothing after this step needs it.)
 *
 * A step whose precondition failed is skipped; a failure prints the pages'
 * console logs, their state, the shaped link's tc counters and the server's
 * log tail. Every wait and loop is bounded; only the fps/freeze/width figures
 * above are asserted, nothing about how fast things happen.
 *
 * Environment (besides shaped-link.sh's): CASCADE_BIN, CHROMIUM_PATH,
 * FIREFOX_PATH (default /usr/bin/firefox-esr), SIMULCAST_FIREFOX=0 skips
 * step 4, SIMULCAST_CODEC=h264 makes the publisher offer H.264 only (the
 * default leaves the codec to negotiation: VP8), SIMULCAST_WARMUP_S
 * (default 10), SIMULCAST_WINDOW_S (default 20), SIMULCAST_SERVER_ARGS (more
 * flags for the main server, space-separated),
 * E2E_ARTIFACTS, E2E_CLIENT_FROM_DISK, E2E_VERBOSE=1.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import puppeteer from 'puppeteer-core';
import {
  ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, CLIENT_FROM_DISK, clientFiles, serveClientFromDisk, serveClientFromDiskToPuppeteer,
  freePort, sleep, startCoturn, startServer, stopProcess, waitFor,
} from './support.mjs';

const SERVER_IP = process.env.SIMULCAST_SERVER_IP;
const CLIENT_NETNS = process.env.SIMULCAST_CLIENT_NETNS;
const SHAPED_DEV = process.env.SIMULCAST_SHAPED_DEV;
const SHAPING = process.env.SIMULCAST_SHAPING || 'tbf (unknown parameters)';
const FIREFOX = process.env.FIREFOX_PATH || '/usr/bin/firefox-esr';
const WITH_FIREFOX = process.env.SIMULCAST_FIREFOX !== '0';
/** The publisher's video codec: "vp8" (what negotiation picks by default) or "h264". */
const CODEC = (process.env.SIMULCAST_CODEC || 'vp8').toLowerCase();
const WARMUP_S = Number(process.env.SIMULCAST_WARMUP_S || 10);
/** More flags for the main server, for experiments (e.g. `--no-ice-tcp`). */
const EXTRA_SERVER_ARGS = (process.env.SIMULCAST_SERVER_ARGS || '').split(' ').filter(Boolean);
const WINDOW_S = Number(process.env.SIMULCAST_WINDOW_S || 20);

/** What the window must show. */
const SHAPED_MIN_FPS = 15;
const SHAPED_MAX_FREEZE_S = 2;
/** The link's 700 kbit/s plus headroom for tbf's burst: more means the shaping is not in effect. */
const SHAPED_MAX_KBPS = 800;
const UNSHAPED_MIN_WIDTH = 640;
const UNSHAPED_MIN_FPS = 20;
/** How long the Firefox subscriber's playback is sampled for the printout. */
const FIREFOX_SAMPLE_S = 5;
/** The publisher's capture, and its fake camera's frame rate. */
const CAPTURE = { width: 1280, height: 720, fps: 30 };

/** Bounds for the waits (not performance expectations). */
const SERVER_START_MS = 30_000;
const MEDIA_WAIT_MS = 45_000;
const STEP_TIMEOUT_MS = Math.max(180_000, (WARMUP_S + WINDOW_S) * 1000 + 120_000);

const ROOM = `simulcast-${Date.now().toString(36)}`;
const PUBLISHER = 'Publisher';

/** Shared state across the steps. */
const ctx = {
  server: null,
  baseUrl: null,
  /** The https servers of the TLS and TURN steps (stopping twice is harmless). */
  sideServers: [],
  tmpDir: null,
  /** name -> Playwright or Puppeteer browser */
  browsers: new Map(),
  /** name -> {name, page, logs, id} */
  peers: new Map(),
  passed: new Set(),
};

// ---------------------------------------------------------------------------
// Setup helpers
// ---------------------------------------------------------------------------

/** A Chromium wrapper that starts it in network namespace `ns` (Playwright talks to it over a pipe). */
function chromiumIn(ns) {
  const wrapper = path.join(ctx.tmpDir, `chromium-in-${ns}`);
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec '${ns}' '${CHROMIUM}' "$@"\n`, { mode: 0o755 });
  return wrapper;
}

function chromiumArgs() {
  return [
    ...CHROMIUM_ARGS.filter((a) => a !== '--use-fake-device-for-media-stream'),
    `--use-fake-device-for-media-stream=fps=${CAPTURE.fps}`,
    // Camera access on the http origin of the private subnet.
    `--unsafely-treat-insecure-origin-as-secure=${ctx.baseUrl}`,
    // Subscribers never get media permission: keep their host candidates plain addresses.
    '--disable-features=WebRtcHideLocalIpsWithMdns',
  ];
}

/** The server's simulcast and congestion-control series (no histogram buckets), for the printout. */
async function serverCongestionMetrics() {
  try {
    const text = await (await fetch(`${ctx.baseUrl}/metrics`)).text();
    return text.split('\n')
      .filter((l) => /^cascade_(bwe|simulcast|dynacast)_/.test(l) && !/_bucket\{/.test(l))
      .join('\n    ') || '(none exported)';
  } catch (err) {
    return `(unavailable: ${err.message})`;
  }
}

/** The shaped link's tc counters (sent, dropped, overlimits). */
function shapedLinkStats() {
  if (!SHAPED_DEV) return '(no shaped device given)';
  try {
    return execFileSync('tc', ['-s', 'qdisc', 'show', 'dev', SHAPED_DEV], { encoding: 'utf8' }).trim().replace(/\s+/g, ' ');
  } catch (err) {
    return `(tc failed: ${err.message})`;
  }
}

function stamp() {
  return new Date().toISOString().slice(11, 23);
}

/** A page's console, kept for the diagnostics. */
function keepLogs(page, logs) {
  page.on('console', (m) => logs.push(`${stamp()} ${typeof m.type === 'function' ? m.type() : m.type}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`${stamp()} pageerror: ${e.message || e}`));
}

/** Subscribers publish nothing: their pages' getUserMedia is refused, as if no camera existed. */
function refuseCamera() {
  const refuse = () => Promise.reject(new DOMException('receive-only test participant', 'NotFoundError'));
  if (navigator.mediaDevices) navigator.mediaDevices.getUserMedia = refuse;
}

/**
 * Subscribers' screens: with three tiles in the grid (their own, the
 * publisher's, the other subscriber's) the publisher's tile is about
 * 1250×700 device pixels, so by size alone both would get the full layer and
 * only the bandwidth estimate holds the shaped one back.
 */
const SUBSCRIBER_SCREEN = { viewport: { width: 1920, height: 1080 }, deviceScaleFactor: 2 };
const PUBLISHER_SCREEN = { viewport: { width: 1280, height: 720 }, deviceScaleFactor: 1 };

/**
 * In the publisher's page: offers `mimeType` as the only video codec of
 * every video transceiver (with RTX and the FEC formats), so the server
 * cannot answer with another.
 */
function offerOnlyVideoCodec(mimeType) {
  const addTransceiver = RTCPeerConnection.prototype.addTransceiver;
  const helpers = ['video/rtx', 'video/red', 'video/ulpfec'];
  RTCPeerConnection.prototype.addTransceiver = function offeringOnly(trackOrKind, init) {
    const transceiver = addTransceiver.call(this, trackOrKind, init);
    const kind = typeof trackOrKind === 'string' ? trackOrKind : trackOrKind.kind;
    if (kind === 'video') {
      const codecs = RTCRtpSender.getCapabilities('video').codecs.filter((c) =>
        [mimeType.toLowerCase(), ...helpers].includes(c.mimeType.toLowerCase()));
      transceiver.setCodecPreferences(codecs);
      console.log(`[test] offering only ${mimeType} (${codecs.length} formats)`);
    }
    return transceiver;
  };
}

/**
 * Opens a participant's page in a Playwright Chromium browser, for the server
 * at `baseUrl` (certificate errors ignored: `--tls-self-signed`); a
 * subscriber watches the participant named `source`.
 */
async function openChromiumPeer(browserName, name, { publishes, baseUrl = ctx.baseUrl, source = PUBLISHER }) {
  const screen = publishes ? PUBLISHER_SCREEN : SUBSCRIBER_SCREEN;
  const context = await ctx.browsers.get(browserName).newContext({ ...screen, ignoreHTTPSErrors: baseUrl.startsWith('https:') });
  if (publishes) {
    await context.grantPermissions(['camera', 'microphone'], { origin: baseUrl });
    if (CODEC === 'h264') await context.addInitScript(offerOnlyVideoCodec, 'video/H264');
  } else {
    await context.addInitScript(refuseCamera);
  }
  await serveClientFromDisk(context, baseUrl);
  const page = await context.newPage();
  const p = { name, page, logs: [], id: null, publishes, source };
  keepLogs(page, p.logs);
  page.on('crash', () => p.logs.push(`${stamp()} page crashed`));
  ctx.peers.set(name, p);
  return p;
}

function joinUrl(name, baseUrl = ctx.baseUrl, extra = '') {
  return `${baseUrl}/?room=${encodeURIComponent(ROOM)}&name=${encodeURIComponent(name)}${extra}`;
}

function peer(name) {
  const p = ctx.peers.get(name);
  assert.ok(p, `${name} has no page`);
  return p;
}

// ---------------------------------------------------------------------------
// What the pages show (evaluated in the page; Chromium and Firefox alike)
// ---------------------------------------------------------------------------

/**
 * In the page: the remote tiles, and the inbound-rtp stats of `publisherId`'s
 * video on the subscribe connection (found through the offer's mid table).
 */
async function subscriberView(publisherId) {
  const c = window.cascade;
  const pc = c && c.subscribePc;
  let video = null;
  if (pc && publisherId) {
    const table = c.tracksByMid;
    for (const tr of pc.getTransceivers()) {
      const entry = tr.mid != null ? table[tr.mid] : null;
      if (!entry || entry.participant_id !== publisherId || entry.kind !== 'video') continue;
      const stats = await tr.receiver.getStats();
      stats.forEach((s) => {
        if (s.type !== 'inbound-rtp' || s.kind !== 'video') return;
        const codec = s.codecId ? stats.get(s.codecId) : null;
        video = {
          trackId: entry.track_id,
          codec: codec ? codec.mimeType : null,
          timestamp: s.timestamp,
          framesDecoded: s.framesDecoded || 0,
          framesDropped: s.framesDropped || 0,
          frameWidth: s.frameWidth || 0,
          frameHeight: s.frameHeight || 0,
          framesPerSecond: s.framesPerSecond || 0,
          freezeCount: s.freezeCount || 0,
          totalFreezesDuration: s.totalFreezesDuration || 0,
          pauseCount: s.pauseCount || 0,
          bytesReceived: s.bytesReceived || 0,
          packetsLost: s.packetsLost || 0,
          nackCount: s.nackCount || 0,
          pliCount: s.pliCount || 0,
        };
      });
    }
  }
  const tiles = [...document.querySelectorAll('[data-testid="remote-tile"]')].map((t) => ({
    id: t.dataset.participantId,
    name: t.dataset.participantName,
    videoWidth: t.querySelector('video').videoWidth,
    connection: t.dataset.connectionState,
    paused: t.dataset.paused,
  }));
  return {
    participantId: c ? c.participantId : null,
    subscribeState: pc ? pc.connectionState : null,
    tiles,
    video,
    preferences: c ? c.videoPreferences : {},
    errors: [...document.querySelectorAll('[data-testid="error"]')].map((e) => e.textContent),
  };
}

/** In the publisher's page: its capture, its encodings, and what each layer sends. */
async function publisherView() {
  const c = window.cascade;
  const pc = c && c.publishPc;
  const sender = pc && pc.getSenders().find((s) => s.track && s.track.kind === 'video');
  const layers = [];
  if (sender) {
    const stats = await sender.getStats();
    stats.forEach((s) => {
      if (s.type !== 'outbound-rtp' || s.kind !== 'video') return;
      const codec = s.codecId ? stats.get(s.codecId) : null;
      layers.push({
        rid: s.rid || null,
        codec: codec ? codec.mimeType : null,
        active: s.active,
        frameWidth: s.frameWidth || 0,
        frameHeight: s.frameHeight || 0,
        framesPerSecond: s.framesPerSecond || 0,
        bytesSent: s.bytesSent || 0,
        qualityLimitationReason: s.qualityLimitationReason,
        encoderImplementation: s.encoderImplementation,
      });
    });
  }
  layers.sort((a, b) => String(a.rid).localeCompare(String(b.rid)));
  // The browser's own uplink estimate: what it lets the encoders use.
  let availableOutgoingBitrate = null;
  if (pc) {
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'candidate-pair' && s.nominated && s.availableOutgoingBitrate) {
        availableOutgoingBitrate = s.availableOutgoingBitrate;
      }
    });
  }
  return {
    participantId: c ? c.participantId : null,
    publishState: pc ? pc.connectionState : null,
    availableOutgoingBitrate,
    capture: sender ? sender.track.getSettings() : null,
    encodings: c ? c.publishEncodings : [],
    layers,
    errors: [...document.querySelectorAll('[data-testid="error"]')].map((e) => e.textContent),
  };
}

function viewOf(p) {
  return p.name === PUBLISHER || p.publishes
    ? p.page.evaluate(publisherView)
    : p.page.evaluate(subscriberView, peer(p.source || PUBLISHER).id);
}

/** Waits until `name` plays its publisher's video: connected, a picture, frames decoded. */
async function expectPlaysPublisher(name) {
  const p = peer(name);
  const source = p.source || PUBLISHER;
  return waitFor(`${name} to play ${source}'s video`, async () => {
    const view = await viewOf(p);
    const tile = view.tiles.find((t) => t.id === peer(source).id);
    const ok = !!tile && tile.connection === 'connected' && tile.videoWidth > 0 &&
      !!view.video && view.video.framesDecoded > 0;
    return { ok, detail: view, view };
  }, { timeoutMs: MEDIA_WAIT_MS, intervalMs: 500 });
}

// ---------------------------------------------------------------------------
// Measuring the window
// ---------------------------------------------------------------------------

/** Samples both subscribers once a second for WINDOW_S seconds. */
async function sampleWindow(names) {
  const samples = new Map(names.map((n) => [n, []]));
  for (let i = 0; i <= WINDOW_S; i++) {
    const views = await Promise.all(names.map((n) => viewOf(peer(n))));
    views.forEach((view, k) => samples.get(names[k]).push(view.video));
    if (i < WINDOW_S) await sleep(1000);
  }
  return samples;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : 0;
}

/** The window's figures from one subscriber's samples (null samples: no stats yet). */
function figures(samples) {
  const present = samples.filter(Boolean);
  if (present.length < 2) return { samples: present.length };
  const first = present[0];
  const last = present[present.length - 1];
  const seconds = (last.timestamp - first.timestamp) / 1000;
  return {
    seconds: Number(seconds.toFixed(1)),
    fps: Number(((last.framesDecoded - first.framesDecoded) / seconds).toFixed(1)),
    freezeSeconds: Number((last.totalFreezesDuration - first.totalFreezesDuration).toFixed(2)),
    freezes: last.freezeCount - first.freezeCount,
    kbps: Math.round(((last.bytesReceived - first.bytesReceived) * 8) / seconds / 1000),
    medianWidth: median(present.map((s) => s.frameWidth)),
    widths: [...new Set(present.map((s) => `${s.frameWidth}x${s.frameHeight}`))].join(' '),
    packetsLost: last.packetsLost - first.packetsLost,
    plis: last.pliCount - first.pliCount,
    samples: present.length,
  };
}

// ---------------------------------------------------------------------------
// Diagnostics and steps
// ---------------------------------------------------------------------------

async function dumpDiagnostics(stepName, err) {
  const out = [`\n======== SIMULCAST FAILURE in step "${stepName}" ========`, String((err && err.stack) || err)];
  for (const p of ctx.peers.values()) {
    out.push(`\n---- ${p.name} (${p.id || 'no id'}): page state ----`);
    try {
      out.push(JSON.stringify(await viewOf(p), null, 2));
      const file = path.join(ARTIFACTS, `simulcast-failure-${p.name}.png`);
      await p.page.screenshot({ path: file });
      out.push(`screenshot: ${file}`);
    } catch (e) {
      out.push(`(page state unavailable: ${e.message})`);
    }
    out.push(`---- ${p.name}: console (last 100 lines) ----`, ...p.logs.slice(-100));
  }
  out.push(`\n---- shaped link: ${shapedLinkStats()}`);
  const tail = ctx.server ? ctx.server.tail : [];
  out.push('\n---- server log (last 150 lines; full log in simulcast-server.log) ----', ...tail.slice(-150));
  out.push('======== end of diagnostics ========\n');
  console.error(out.join('\n'));
}

/** A test step that runs only when the steps it `needs` passed; dumps diagnostics when it fails. */
function step(name, needs, fn) {
  test(name, { timeout: STEP_TIMEOUT_MS }, async (t) => {
    const missing = needs.filter((n) => !ctx.passed.has(n));
    if (missing.length) {
      t.skip(`needs: ${missing.join(', ')}`);
      return;
    }
    try {
      await fn(t);
      ctx.passed.add(name);
    } catch (err) {
      await dumpDiagnostics(name, err);
      throw err;
    }
  });
}

before(() => {
  mkdirSync(ARTIFACTS, { recursive: true });
  ctx.tmpDir = mkdtempSync(path.join(os.tmpdir(), 'cascade-simulcast-'));
});

after(async () => {
  if (process.env.E2E_VERBOSE) {
    for (const p of ctx.peers.values()) console.log(`---- ${p.name}: console ----\n${p.logs.join('\n')}`);
  }
  for (const browser of ctx.browsers.values()) {
    await Promise.race([browser.close().catch(() => {}), sleep(10_000)]);
  }
  if (ctx.server) await ctx.server.stop();
  for (const server of ctx.sideServers) await server.stop();
  if (ctx.coturn) await stopProcess(ctx.coturn);
  if (ctx.tmpDir) rmSync(ctx.tmpDir, { recursive: true, force: true });
});

const START = 'the server starts in the server namespace';
const JOIN = 'publisher and both subscribers join; the publisher sends three layers and both subscribers play it';
const WINDOW = `over ${WINDOW_S} s the shaped subscriber decodes >= ${SHAPED_MIN_FPS} fps with < ${SHAPED_MAX_FREEZE_S} s of freezes; the unshaped one gets >= ${UNSHAPED_MIN_WIDTH} px at >= ${UNSHAPED_MIN_FPS} fps`;
const FIREFOX_STEP = 'a Firefox subscriber decodes the simulcast publisher\'s video';
const FIREFOX_MEETING_STEP = 'Firefox in the meeting: chat both ways, data at 30 messages/s (lossy >= 90 %, reliable in order), and a screen share shows up and goes';
const HTTPS_STEP = 'a Chromium subscriber in the client namespace loads the client over https:// against --tls-self-signed and plays';
const TURN_STEP = 'coturn on the server namespace\'s address relays a Chromium subscriber in the client namespace forced to relay, and it plays';
const ICE_TCP_STEP = 'with all outgoing UDP dropped in the client namespace, a Chromium subscriber there connects over ICE-TCP and plays';

step(START, [], async () => {
  assert.ok(SERVER_IP && CLIENT_NETNS,
    'run this test through tests/browser/run.sh or tests/browser/shaped-link.sh (it needs their network namespaces)');
  const port = await freePort(SERVER_IP);
  ctx.baseUrl = `http://${SERVER_IP}:${port}`;
  ctx.server = await startServer({
    args: ['--http-addr', `${SERVER_IP}:${port}`, '--media-addr', '0.0.0.0', '--public-ip', SERVER_IP, '--insecure-open',
      ...EXTRA_SERVER_ARGS],
    baseUrl: ctx.baseUrl,
    logPath: path.join(ARTIFACTS, 'simulcast-server.log'),
    timeoutMs: SERVER_START_MS,
  });
  console.log(`server at ${ctx.baseUrl}; shaped subscriber in ${CLIENT_NETNS} behind ${SHAPING}`);
  // A binary that does not embed every client file would fail later as "never joined".
  for (const [file] of clientFiles()) {
    const { status } = await fetch(ctx.baseUrl + file);
    if (CLIENT_FROM_DISK && status === 404) continue;
    assert.equal(status, 200, `GET ${file}: the server binary does not serve the current client/ ` +
      '(a row missing in src/signal/assets.rs, or a stale binary; E2E_CLIENT_FROM_DISK=1 works around it)');
  }
});

step(JOIN, [START], async () => {
  const args = chromiumArgs();
  ctx.browsers.set('server-side', await chromium.launch({ executablePath: CHROMIUM, headless: true, args }));
  ctx.browsers.set('client-side', await chromium.launch({ executablePath: chromiumIn(CLIENT_NETNS), headless: true, args }));

  const publisher = await openChromiumPeer('server-side', PUBLISHER, { publishes: true });
  await publisher.page.goto(joinUrl(PUBLISHER));
  const sending = await waitFor(`${PUBLISHER} to publish its camera`, async () => {
    const view = await viewOf(publisher);
    const ok = !!view.participantId && view.publishState === 'connected' && view.layers.some((l) => l.bytesSent > 0);
    return { ok, detail: view, view };
  }, { timeoutMs: MEDIA_WAIT_MS, intervalMs: 500 });
  publisher.id = sending.view.participantId;
  const { capture, encodings } = sending.view;
  console.log(`${PUBLISHER}: capture ${capture.width}x${capture.height}@${capture.frameRate}, encodings ` +
    encodings.map((e) => `${e.rid}/${e.scaleResolutionDownBy}@${e.maxBitrate}`).join(' '));
  assert.equal(`${capture.width}x${capture.height}`, `${CAPTURE.width}x${CAPTURE.height}`, 'the fake camera captures 1280x720');
  assert.deepEqual(encodings.map((e) => [e.rid, e.scaleResolutionDownBy]), [['q', 4], ['h', 2], ['f', 1]],
    'the camera is published as simulcast layers q, h, f (low to high)');

  const unshaped = await openChromiumPeer('server-side', 'Unshaped', { publishes: false });
  const shaped = await openChromiumPeer('client-side', 'Shaped', { publishes: false });
  await Promise.all([unshaped.page.goto(joinUrl(unshaped.name)), shaped.page.goto(joinUrl(shaped.name))]);
  for (const p of [unshaped, shaped]) {
    const { view } = await expectPlaysPublisher(p.name);
    p.id = view.participantId;
  }
  const layers = (await viewOf(publisher)).layers;
  console.log(`${PUBLISHER} sends: ` + layers.map((l) =>
    `${l.rid} ${l.frameWidth}x${l.frameHeight}@${l.framesPerSecond} (${l.encoderImplementation}, limit ${l.qualityLimitationReason})`).join('; '));
});

step(WINDOW, [JOIN], async () => {
  await sleep(WARMUP_S * 1000);
  const linkBefore = shapedLinkStats();
  const samples = await sampleWindow(['Shaped', 'Unshaped']);
  const shaped = figures(samples.get('Shaped'));
  const unshaped = figures(samples.get('Unshaped'));
  const views = await Promise.all(['Shaped', 'Unshaped'].map((n) => viewOf(peer(n))));
  const publisher = await viewOf(peer(PUBLISHER));
  console.log([
    `==== simulcast figures over ${WINDOW_S} s (after ${WARMUP_S} s warm-up; ${SHAPING}; ` +
      `publisher codec ${publisher.layers.map((l) => l.codec).find(Boolean)}, receivers ${samples.get('Shaped').concat(samples.get('Unshaped')).map((v) => v && v.codec).find(Boolean)}) ====`,
    `shaped subscriber:   ${JSON.stringify(shaped)}`,
    `unshaped subscriber: ${JSON.stringify(unshaped)}`,
    `preferences sent:    shaped ${JSON.stringify(views[0].preferences)} unshaped ${JSON.stringify(views[1].preferences)}`,
    `paused tiles:        shaped ${views[0].tiles.map((t) => t.paused)} unshaped ${views[1].tiles.map((t) => t.paused)}`,
    `publisher layers:    ${publisher.layers.map((l) => `${l.rid}:${l.active ? 'on' : 'off'} ${l.frameWidth}x${l.frameHeight}@${l.framesPerSecond}`).join(', ')}` +
      ` (uplink estimate ${Math.round((publisher.availableOutgoingBitrate || 0) / 1000)} kbit/s, limit ${publisher.layers.map((l) => l.qualityLimitationReason)[0]})`,
    `shaped link before:  ${linkBefore}`,
    `shaped link after:   ${shapedLinkStats()}`,
    `server metrics:\n    ${await serverCongestionMetrics()}`,
  ].join('\n'));

  assert.ok(shaped.samples >= 2 && unshaped.samples >= 2, 'both subscribers report inbound video stats');
  assert.ok(shaped.kbps <= SHAPED_MAX_KBPS,
    `the shaped subscriber receives ${shaped.kbps} kbit/s: more than the link carries, so the shaping is not in effect`);
  assert.ok(shaped.fps >= SHAPED_MIN_FPS, `shaped subscriber decodes ${shaped.fps} fps (want >= ${SHAPED_MIN_FPS})`);
  assert.ok(shaped.freezeSeconds < SHAPED_MAX_FREEZE_S,
    `shaped subscriber froze for ${shaped.freezeSeconds} s (want < ${SHAPED_MAX_FREEZE_S})`);
  const full = publisher.layers.find((l) => l.rid === 'f');
  assert.ok(unshaped.medianWidth >= UNSHAPED_MIN_WIDTH,
    `unshaped subscriber gets ${unshaped.medianWidth} px wide video (want >= ${UNSHAPED_MIN_WIDTH}); ` +
    `the publisher sends f at ${full ? `${full.frameWidth}x${full.frameHeight}, limited by ${full.qualityLimitationReason}` : 'no f'}, ` +
    `its uplink estimate is ${Math.round((publisher.availableOutgoingBitrate || 0) / 1000)} kbit/s`);
  assert.ok(unshaped.fps >= UNSHAPED_MIN_FPS, `unshaped subscriber decodes ${unshaped.fps} fps (want >= ${UNSHAPED_MIN_FPS})`);
});

step(FIREFOX_STEP, [JOIN], async (t) => {
  if (!WITH_FIREFOX) {
    t.skip('SIMULCAST_FIREFOX=0');
    return;
  }
  if (CODEC === 'h264') {
    // Firefox gets H.264 from Cisco's OpenH264 plugin, downloaded at run time: not here.
    t.skip('this Firefox has no H.264 (RTCRtpReceiver.getCapabilities lists VP8, VP9, AV1 only)');
    return;
  }
  // Firefox's BiDi endpoint is on 127.0.0.1 of this (the server) namespace, which has a veth:
  // Firefox gathers no loopback candidates, but 10.99.0.1 is a real interface here.
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    headless: true,
    timeout: 60_000,
    extraPrefsFirefox: {
      'media.navigator.streams.fake': true,
      'media.navigator.permission.disabled': true,
      'media.devices.insecure.enabled': true,
      'media.getusermedia.insecure.enabled': true,
      'media.peerconnection.ice.obfuscate_host_addresses': false,
      'media.autoplay.default': 0,
    },
  });
  ctx.browsers.set('firefox', browser);
  const page = await browser.newPage();
  await page.setViewport(SUBSCRIBER_SCREEN.viewport);
  const p = { name: 'Firefox', page, logs: [], id: null };
  keepLogs(page, p.logs);
  ctx.peers.set(p.name, p);
  await page.evaluateOnNewDocument(refuseCamera);
  await serveClientFromDiskToPuppeteer(page, ctx.baseUrl);
  await page.goto(joinUrl(p.name));
  const first = await expectPlaysPublisher(p.name);
  p.id = first.view.participantId;
  const before = first.view.video.framesDecoded;
  const rising = await waitFor('Firefox\'s framesDecoded to rise', async () => {
    const view = await viewOf(p);
    return { ok: !!view.video && view.video.framesDecoded > before, detail: view, view };
  }, { timeoutMs: MEDIA_WAIT_MS, intervalMs: 500 });
  assert.ok(rising.view.tiles.find((tile) => tile.id === peer(PUBLISHER).id).videoWidth > 0, 'Firefox shows a picture');
  // For the printout only: how well Firefox plays it over a few seconds.
  const samples = [];
  for (let i = 0; i <= FIREFOX_SAMPLE_S; i++) {
    samples.push((await viewOf(p)).video);
    if (i < FIREFOX_SAMPLE_S) await sleep(1000);
  }
  console.log(`Firefox subscriber: framesDecoded ${before} -> ${rising.view.video.framesDecoded}; over ${FIREFOX_SAMPLE_S} s: ` +
    JSON.stringify(figures(samples)));
});

/** Sends a chat line from `p`'s page (Chromium or Firefox alike): opens the panel if closed, types, sends. */
function chatFrom(p, text) {
  return p.page.evaluate((line) => {
    if (document.querySelector('[data-testid="chat-panel"]').hidden) document.querySelector('[data-testid="toggle-chat"]').click();
    document.querySelector('[data-testid="chat-input"]').value = line;
    document.querySelector('[data-testid="chat-send"]').click();
  }, text);
}

function chatLinesOf(p) {
  return p.page.evaluate(() => [...document.querySelectorAll('[data-testid="chat-message"]')]
    .map((m) => `${m.dataset.from}: ${m.querySelector('.chat-text').textContent}`));
}

/** Starts collecting relayed data on `p`'s page into window.__data. */
function collectData(p) {
  return p.page.evaluate(() => {
    window.__data = [];
    window.cascade.onData((m) => { if (m.topic === 'game') window.__data.push({ data: m.data, reliable: m.reliable, from: m.name }); });
  });
}

/** Sends `count` messages from `p` at 30 a second (a game's state), lossy or reliable. */
function sendAt30(p, count, reliable) {
  return p.page.evaluate(({ n, rel }) => new Promise((resolve) => {
    let i = 0;
    const timer = setInterval(() => {
      window.cascade.sendData(`s${i}`, { reliable: rel, topic: 'game' });
      i += 1;
      if (i === n) {
        clearInterval(timer);
        resolve();
      }
    }, 1000 / 30);
  }), { n: count, rel: reliable });
}

step(FIREFOX_MEETING_STEP, [FIREFOX_STEP], async () => {
  const firefox = peer('Firefox');
  const chromium = peer(PUBLISHER);
  // Chat both ways.
  await chatFrom(firefox, 'hello from Firefox');
  await chatFrom(chromium, 'hello from Chromium');
  for (const [viewer, line] of [[chromium, 'Firefox: hello from Firefox'], [firefox, `${PUBLISHER}: hello from Chromium`]]) {
    await waitFor(`${viewer.name} to show the other's chat line`, async () => {
      const lines = await chatLinesOf(viewer);
      return { ok: lines.includes(line), detail: lines };
    });
  }
  // Data at a game's 30 messages a second, each way: lossy arrives >= 90 %, reliable all and in order.
  await collectData(firefox);
  await collectData(chromium);
  const COUNT = 90;
  for (const [from, to] of [[chromium, firefox], [firefox, chromium]]) {
    await sendAt30(from, COUNT, false);
    await sendAt30(from, COUNT, true);
    const got = await waitFor(`${to.name} to get ${from.name}'s ${COUNT} reliable messages`, async () => {
      const data = await to.page.evaluate(() => window.__data.splice(0));
      to.received = (to.received || []).concat(data);
      const reliable = to.received.filter((m) => m.reliable).map((m) => m.data);
      return { ok: reliable.length >= COUNT, detail: { reliable: reliable.length, lossy: to.received.length - reliable.length } };
    });
    const reliable = to.received.filter((m) => m.reliable).map((m) => m.data);
    const lossy = to.received.filter((m) => !m.reliable).length;
    assert.deepEqual(reliable, Array.from({ length: COUNT }, (_, i) => `s${i}`), `${from.name} -> ${to.name}: reliable in order`);
    assert.ok(lossy >= COUNT * 0.9, `${from.name} -> ${to.name}: lossy at 30/s arrives >= 90 %: ${lossy} of ${COUNT}`);
    console.log(`data ${from.name} -> ${to.name}: lossy ${lossy}/${COUNT}, reliable ${reliable.length}/${COUNT} in order (${JSON.stringify(got.detail)})`);
    to.received = [];
  }
  // A screen share from Chromium appears on Firefox as its own tile, and goes on stop.
  const screenOnFirefox = () => firefox.page.evaluate(() =>
    [...document.querySelectorAll('[data-testid="screen-tile"]')].map((t) => t.querySelector('video').videoWidth));
  await chromium.page.click('[data-testid="toggle-screen"]');
  await waitFor('Firefox to show the Chromium page\'s screen share', async () => {
    const widths = await screenOnFirefox();
    return { ok: widths.length === 1 && widths[0] > 0, detail: widths };
  }, { timeoutMs: MEDIA_WAIT_MS });
  await chromium.page.click('[data-testid="toggle-screen"]');
  await waitFor('the screen share to leave Firefox\'s page', async () => {
    const widths = await screenOnFirefox();
    return { ok: widths.length === 0, detail: widths };
  });
});

/**
 * Starts one more server in the server namespace (https with
 * `--tls-self-signed`, plus `extraArgs`) and a publisher page `name` on it in
 * the server-side browser; resolves with the server and its URL once the
 * publisher is connected. (https: the browser grants camera access on the
 * main server's http origin only, which --unsafely-treat-insecure-origin-as-secure
 * names.)
 */
async function startSidePublisher(name, logName, extraArgs = []) {
  const port = await freePort(SERVER_IP);
  const baseUrl = `https://${SERVER_IP}:${port}`;
  const server = await startServer({
    args: ['--http-addr', `${SERVER_IP}:${port}`, '--media-addr', '0.0.0.0', '--public-ip', SERVER_IP, '--insecure-open',
      '--tls-self-signed', ...extraArgs],
    baseUrl,
    logPath: path.join(ARTIFACTS, `${logName}.log`),
    timeoutMs: SERVER_START_MS,
  });
  ctx.sideServers.push(server);
  const publisher = await openChromiumPeer('server-side', name, { publishes: true, baseUrl });
  await publisher.page.goto(joinUrl(publisher.name, baseUrl));
  const sending = await waitFor(`${name} to publish`, async () => {
    const view = await viewOf(publisher);
    return { ok: !!view.participantId && view.publishState === 'connected', detail: view, view };
  }, { timeoutMs: MEDIA_WAIT_MS, intervalMs: 500 });
  publisher.id = sending.view.participantId;
  return { server, baseUrl };
}

step(HTTPS_STEP, [START], async () => {
  const { server, baseUrl } = await startSidePublisher('TlsPublisher', 'simulcast-tls-server');
  const made = server.tail.find((l) => l.includes('self-signed TLS certificate'));
  assert.ok(made && made.includes(SERVER_IP), `the certificate names the public IP: ${made}`);
  const viewer = await openChromiumPeer('client-side', 'TlsViewer', { publishes: false, baseUrl, source: 'TlsPublisher' });
  await viewer.page.goto(joinUrl(viewer.name, baseUrl));
  const { view } = await expectPlaysPublisher(viewer.name);
  assert.equal(new URL(viewer.page.url()).protocol, 'https:', 'the page is served over https');
  console.log(`TlsViewer (client namespace) plays over ${baseUrl}: framesDecoded ${view.video.framesDecoded}`);
  await server.stop();
});

step(TURN_STEP, [START], async () => {
  const secret = 'simulcast-test-turn-secret';
  const turn = await startCoturn({ ip: SERVER_IP, secret, logName: 'simulcast-coturn' });
  ctx.coturn = turn.child;
  const { server, baseUrl } = await startSidePublisher('TurnPublisher', 'simulcast-turn-server',
    ['--turn-url', turn.url, '--turn-secret', secret]);
  const viewer = await openChromiumPeer('client-side', 'RelayViewer', { publishes: false, baseUrl, source: 'TurnPublisher' });
  await viewer.page.goto(joinUrl(viewer.name, baseUrl, '&relay=1'));
  const { view } = await expectPlaysPublisher(viewer.name);
  const route = await subscribePath(viewer);
  const allocations = turn.log.filter((l) => /ALLOCATE/.test(l) && /success/i.test(l)).length;
  console.log(`RelayViewer (client namespace) plays through coturn at ${turn.url}: framesDecoded ${view.video.framesDecoded}; ` +
    `selected pair ${JSON.stringify(route)}; coturn allocation successes ${allocations}`);
  assert.equal(route.local?.type, 'relay', `the subscribe connection goes through the relay: ${JSON.stringify(route)}`);
  assert.ok(allocations > 0, 'coturn logged a successful allocation (it checked the credentials Cascade minted)');
  await server.stop();
  await stopProcess(ctx.coturn);
  ctx.coturn = null;
});

/** nft ruleset that drops every UDP packet leaving the client namespace (a firewall that allows only TCP). */
const DROP_UDP = [
  'table inet cascade_no_udp {',
  '  chain out {',
  '    type filter hook output priority 0; policy accept;',
  '    meta l4proto udp counter drop',
  '  }',
  '}',
  '',
].join('\n');

/** The selected candidate pair of `p`'s subscribe connection: local and remote protocol, type, address. */
function subscribePath(p) {
  return p.page.evaluate(async () => {
    const pc = window.cascade && window.cascade.subscribePc;
    if (!pc) return null;
    const stats = await pc.getStats();
    let pair = null;
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
    });
    if (!pair) return { state: pc.connectionState };
    const local = stats.get(pair.localCandidateId) || {};
    const remote = stats.get(pair.remoteCandidateId) || {};
    return {
      state: pair.state,
      local: { protocol: local.protocol, type: local.candidateType, tcpType: local.tcpType },
      remote: { protocol: remote.protocol, type: remote.candidateType, address: `${remote.address}:${remote.port}` },
    };
  });
}

step(ICE_TCP_STEP, [JOIN], async () => {
  execFileSync('ip', ['netns', 'exec', CLIENT_NETNS, 'nft', '-f', '-'], { input: DROP_UDP });
  const udpDropped = () => {
    const out = execFileSync('ip', ['netns', 'exec', CLIENT_NETNS, 'nft', 'list', 'table', 'inet', 'cascade_no_udp'], { encoding: 'utf8' });
    const m = /counter packets (\d+)/.exec(out);
    return m ? Number(m[1]) : 0;
  };
  const p = await openChromiumPeer('client-side', 'TcpOnly', { publishes: false });
  await p.page.goto(joinUrl(p.name));
  const { view } = await expectPlaysPublisher(p.name);
  p.id = view.participantId;
  const before = view.video.framesDecoded;
  const rising = await waitFor('TcpOnly\'s framesDecoded to rise', async () => {
    const v = await viewOf(p);
    return { ok: !!v.video && v.video.framesDecoded > before, detail: v, view: v };
  }, { timeoutMs: MEDIA_WAIT_MS, intervalMs: 500 });
  const route = await subscribePath(p);
  const dropped = udpDropped();
  const tcpMetrics = (await (await fetch(`${ctx.baseUrl}/metrics`)).text())
    .split('\n').filter((l) => l.startsWith('cascade_ice_tcp_')).join('\n    ');
  console.log(`TcpOnly subscriber: framesDecoded ${before} -> ${rising.view.video.framesDecoded}; selected pair ` +
    `${JSON.stringify(route)}; UDP packets dropped in ${CLIENT_NETNS}: ${dropped}\n    ${tcpMetrics}`);
  assert.equal(route.local?.protocol, 'tcp', `the subscribe connection runs over TCP: ${JSON.stringify(route)}`);
  assert.equal(route.remote.type, 'host', 'to the server\'s host (passive TCP) candidate');
  assert.ok(dropped > 0, 'the firewall dropped UDP the browser tried (its UDP candidates were there and failed)');
});
