/**
 * Headless Chromium roles for the Cascade interop tests: the bundled client
 * (client/, served by the server) in a real browser, driven by
 * playwright-core from tests/browser/node_modules (installed by
 * scripts/install-test-deps.sh), with the flags of tests/browser/support.mjs.
 *
 *   publish    joins `/?room=R&name=N` with the fake camera (1280x720,
 *              30 fps) and microphone; the client publishes the camera as
 *              simulcast layers q/h/f. Reports `joined` (participant id),
 *              `connected` (publish connection), `layers` once the publish
 *              connection's outbound-rtp stats show bytes sent on three
 *              rids, then a `progress` snapshot of every layer each second.
 *   subscribe  joins the same way with getUserMedia refused (it publishes
 *              nothing) and reports, each second, the remote tiles
 *              (videoWidth) and each publisher's inbound-rtp video on the
 *              subscribe connection (framesDecoded, frame size).
 *
 * Same contract as aiortc_peer.py and gst_peer.py: `@event {json}` lines on
 * stdout, one `result` line at the end, bounded in time (--duration, or EOF
 * on stdin with --stop-on-stdin). Run inside a loopback-only network
 * namespace (tests/interop/run.sh), where Chromium needs
 * --allow-loopback-in-peer-connection (in CHROMIUM_ARGS).
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHROMIUM, CHROMIUM_ARGS, sleep } from '../browser/support.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
// playwright-core lives in tests/browser/node_modules, not on this script's resolution path.
const require = createRequire(path.join(HERE, '..', 'browser', 'package.json'));
const { chromium } = require('playwright-core');

function emit(event, fields = {}) {
  process.stdout.write(`@event ${JSON.stringify({ event, ...fields })}\n`);
}

function parseArgs(argv) {
  const [role, ...rest] = argv;
  const a = { role, url: null, room: 'interop', name: 'Chromium', duration: 30, stopOnStdin: false };
  for (let i = 0; i < rest.length; i++) {
    const k = rest[i];
    const next = () => {
      if (i + 1 >= rest.length) throw new Error(`${k} needs a value`);
      return rest[++i];
    };
    if (k === '--url') a.url = next();
    else if (k === '--room') a.room = next();
    else if (k === '--name') a.name = next();
    else if (k === '--duration') a.duration = Number(next());
    else if (k === '--stop-on-stdin') a.stopOnStdin = true;
    else throw new Error(`unknown argument ${k}`);
  }
  if (!['publish', 'subscribe'].includes(a.role)) throw new Error(`role must be publish or subscribe, got ${a.role}`);
  if (!a.url) throw new Error('--url (the server base URL) is required');
  return a;
}

/** Subscribers publish nothing: getUserMedia is refused in their pages, as if no camera existed. */
function refuseCamera() {
  const refuse = () => Promise.reject(new DOMException('receive-only test participant', 'NotFoundError'));
  if (navigator.mediaDevices) navigator.mediaDevices.getUserMedia = refuse;
}

/** In the publisher's page: its state and what each layer of the camera sends. */
async function publisherView() {
  const c = window.cascade;
  const pc = c && c.publishPc;
  const sender = pc && pc.getSenders().find((s) => s.track && s.track.kind === 'video');
  const layers = [];
  if (sender) {
    (await sender.getStats()).forEach((s) => {
      if (s.type !== 'outbound-rtp' || s.kind !== 'video') return;
      layers.push({
        rid: s.rid || null,
        active: s.active,
        bytesSent: s.bytesSent || 0,
        framesEncoded: s.framesEncoded || 0,
        frameWidth: s.frameWidth || 0,
        frameHeight: s.frameHeight || 0,
        qualityLimitationReason: s.qualityLimitationReason,
      });
    });
  }
  layers.sort((x, y) => String(x.rid).localeCompare(String(y.rid)));
  return {
    participantId: c ? c.participantId : null,
    publishState: pc ? pc.connectionState : null,
    capture: sender && sender.track ? sender.track.getSettings() : null,
    encodings: c ? c.publishEncodings.map((e) => `${e.rid}/${e.scaleResolutionDownBy}`) : [],
    layers,
    errors: [...document.querySelectorAll('[data-testid="error"]')].map((e) => e.textContent),
  };
}

/** In a subscriber's page: remote tiles and each publisher's inbound video on the subscribe connection. */
async function subscriberView() {
  const c = window.cascade;
  const pc = c && c.subscribePc;
  const video = {};
  if (pc) {
    const table = c.tracksByMid;
    for (const tr of pc.getTransceivers()) {
      const entry = tr.mid != null ? table[tr.mid] : null;
      if (!entry || entry.kind !== 'video') continue;
      (await tr.receiver.getStats()).forEach((s) => {
        if (s.type !== 'inbound-rtp' || s.kind !== 'video') return;
        video[entry.participant_id] = {
          framesDecoded: s.framesDecoded || 0,
          frameWidth: s.frameWidth || 0,
          frameHeight: s.frameHeight || 0,
          bytesReceived: s.bytesReceived || 0,
        };
      });
    }
  }
  const tiles = [...document.querySelectorAll('[data-testid="remote-tile"]')].map((t) => ({
    id: t.dataset.participantId,
    name: t.dataset.participantName,
    videoWidth: t.querySelector('video') ? t.querySelector('video').videoWidth : 0,
    videoHeight: t.querySelector('video') ? t.querySelector('video').videoHeight : 0,
    connection: t.dataset.connectionState,
  }));
  return {
    participantId: c ? c.participantId : null,
    subscribeState: pc ? pc.connectionState : null,
    tiles,
    video,
    errors: [...document.querySelectorAll('[data-testid="error"]')].map((e) => e.textContent),
  };
}

/** Resolves when stdin reaches EOF (the orchestrator closes it to stop a role early). */
function stdinClosed() {
  return new Promise((resolve) => {
    process.stdin.on('data', () => {});
    process.stdin.on('end', resolve);
    process.stdin.on('close', resolve);
    process.stdin.resume();
  });
}

async function run(a) {
  const logs = [];
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      ...CHROMIUM_ARGS.filter((x) => x !== '--use-fake-device-for-media-stream'),
      '--use-fake-device-for-media-stream=fps=30',
    ],
  });
  try {
    // A subscriber's screen is large (its tiles ask the server for the full
    // layer by size), so only the bandwidth estimate picks its layer.
    const context = await browser.newContext(a.role === 'publish'
      ? { viewport: { width: 1280, height: 720 }, deviceScaleFactor: 1 }
      : { viewport: { width: 1920, height: 1080 }, deviceScaleFactor: 2 });
    if (a.role === 'publish') await context.grantPermissions(['camera', 'microphone'], { origin: a.url });
    else await context.addInitScript(refuseCamera);
    const page = await context.newPage();
    const stamp = () => new Date().toISOString().slice(11, 23);
    page.on('console', (m) => logs.push(`${stamp()} ${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => logs.push(`${stamp()} pageerror: ${e.message}`));
    page.on('crash', () => logs.push(`${stamp()} page crashed`));
    const url = `${a.url}/?room=${encodeURIComponent(a.room)}&name=${encodeURIComponent(a.name)}`;
    emit('open', { url, chromium: browser.version() });
    await page.goto(url);

    const stop = a.stopOnStdin ? stdinClosed() : new Promise(() => {});
    let stopped = false;
    stop.then(() => { stopped = true; });
    const end = Date.now() + a.duration * 1000;
    const view = a.role === 'publish' ? publisherView : subscriberView;
    const seen = { joined: false, connected: false, layers: false };
    let last = null;
    let lastErrors = '[]';
    while (!stopped && Date.now() < end) {
      last = await page.evaluate(view);
      if (last.participantId && !seen.joined) {
        seen.joined = true;
        emit('joined', { participant_id: last.participantId });
      }
      if (a.role === 'publish') {
        if (last.publishState === 'connected' && !seen.connected) {
          seen.connected = true;
          emit('connected', { capture: last.capture, encodings: last.encodings });
        }
        const sending = last.layers.filter((l) => l.rid && l.active !== false && l.bytesSent > 0);
        if (sending.length >= 3 && !seen.layers) {
          seen.layers = true;
          emit('layers', { participant_id: last.participantId, capture: last.capture, layers: last.layers });
        }
      } else if (last.subscribeState === 'connected' && !seen.connected) {
        seen.connected = true;
        emit('connected');
      }
      if (last.errors.length && JSON.stringify(last.errors) !== lastErrors) emit('page_error', { errors: last.errors });
      lastErrors = JSON.stringify(last.errors);
      emit('progress', last);
      await Promise.race([sleep(1000), stop]);
    }
    // Leave like a user would (the WebSocket closes; the server drops the participant).
    await page.evaluate(() => window.cascade && window.cascade.leave()).catch(() => {});
    emit('result', { ok: true, stopped_early: stopped, last, console: logs.slice(-40) });
  } finally {
    await Promise.race([browser.close().catch(() => {}), sleep(10_000)]);
  }
}

async function main() {
  let a;
  try {
    a = parseArgs(process.argv.slice(2));
  } catch (err) {
    emit('result', { ok: false, error: String(err.message || err) });
    process.exit(2);
  }
  // The whole role is bounded, whatever Chromium does.
  const guard = setTimeout(() => {
    emit('result', { ok: false, error: `timed out after ${a.duration + 45} s` });
    process.exit(1);
  }, (a.duration + 45) * 1000);
  guard.unref();
  try {
    await run(a);
    process.exit(0);
  } catch (err) {
    emit('result', { ok: false, error: String(err && err.stack || err) });
    process.exit(1);
  }
}

main();
