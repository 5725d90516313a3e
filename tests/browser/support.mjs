/**
 * What the browser tests share: the Chromium flags that work on these
 * machines, bounded polling, the Cascade server process (started, its log
 * kept, always stopped), and the bundled client's files.
 *
 * `E2E_CLIENT_FROM_DISK=1` makes the pages load the client's scripts
 * and styles from `client/` instead of the copies compiled into the server
 * binary (Playwright or Puppeteer answers those requests), so a client change can
 * be tried against a binary built before it. The page itself (index.html)
 * still comes from the server: a document Playwright answered would count as
 * a public one, and Chromium's local network access checks would then block
 * its WebSocket to the server's private or loopback address.
 */
import { spawn } from 'node:child_process';
import { get as httpsGet } from 'node:https';
import { createServer } from 'node:net';
import { createWriteStream, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(HERE, '..', '..');
export const CASCADE_BIN = process.env.CASCADE_BIN || path.join(ROOT, 'target', 'release', 'cascade');
export const ARTIFACTS = process.env.E2E_ARTIFACTS || path.join(ROOT, 'target');
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const CLIENT_DIR = path.join(ROOT, 'client');
export const CLIENT_FROM_DISK = !!process.env.E2E_CLIENT_FROM_DISK;

/** DESIGN.md's Chromium flags (Playwright adds --headless and the user data dir). */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
];

/**
 * Writes a speech-like WAV file (48 kHz mono 16-bit): 10 s of "syllables",
 * 200 ms of voiced sound (a few harmonics of a wandering pitch, around
 * -12 dBFS) then 100 ms of silence, for Chromium's
 * `--use-file-for-fake-audio-capture` (it loops the file). The default fake
 * microphone only beeps 20 ms twice a second, which is no speech; and a
 * steady tone would be taken for noise by the noise suppressor.
 */
export function writeSpeechWav(file) {
  const rate = 48_000;
  const samples = rate * 10;
  const data = Buffer.alloc(samples * 2);
  let phase = 0;
  for (let i = 0; i < samples; i++) {
    const t = i / rate;
    const inSyllable = t % 0.3;
    const syllable = Math.floor(t / 0.3);
    let v = 0;
    if (inSyllable < 0.2) {
      const pitch = 140 + 60 * Math.sin(syllable * 1.7) + 40 * Math.sin(t * 9);
      phase += (2 * Math.PI * pitch) / rate;
      const envelope = Math.sin((Math.PI * inSyllable) / 0.2);
      v = envelope * 0.25 * (Math.sin(phase) + 0.6 * Math.sin(2 * phase) + 0.4 * Math.sin(3 * phase) + 0.2 * Math.sin(5 * phase));
    }
    data.writeInt16LE(Math.max(-32767, Math.min(32767, Math.round(v * 32767))), i * 2);
  }
  const header = Buffer.alloc(44);
  header.write('RIFF', 0);
  header.writeUInt32LE(36 + data.length, 4);
  header.write('WAVE', 8);
  header.write('fmt ', 12);
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(rate, 24);
  header.writeUInt32LE(rate * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36);
  header.writeUInt32LE(data.length, 40);
  writeFileSync(file, Buffer.concat([header, data]));
  return file;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A TCP port free on `host` just now (for a server the test starts). */
export async function freePort(host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Polls `probe` until it returns {ok: true}, at most `timeoutMs`.
 * On timeout throws with `what` and the last observed `detail`.
 */
export async function waitFor(what, probe, { timeoutMs = 15_000, intervalMs = 300 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await probe();
    if (result.ok) return result;
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n` +
        `last observed: ${JSON.stringify(result.detail, null, 2)}`);
    }
    await sleep(intervalMs);
  }
}

// ---------------------------------------------------------------------------
// The bundled client's files
// ---------------------------------------------------------------------------

const CONTENT_TYPES = { '.html': 'text/html', '.css': 'text/css', '.js': 'text/javascript' };

/** Every file of client/ as [URL path, file, content type]; index.html is served at "/". */
export function clientFiles() {
  return readdirSync(CLIENT_DIR)
    .filter((f) => CONTENT_TYPES[path.extname(f)])
    .sort()
    .map((f) => [f === 'index.html' ? '/' : `/${f}`, path.join(CLIENT_DIR, f), CONTENT_TYPES[path.extname(f)]]);
}

/** URL path -> {file, type} of the client's scripts and styles (not the page). */
function clientSubresources() {
  return new Map(clientFiles()
    .filter(([urlPath]) => urlPath !== '/')
    .map(([urlPath, file, type]) => [urlPath, { file, type: `${type}; charset=utf-8` }]));
}

/** With E2E_CLIENT_FROM_DISK, answers a Playwright context's requests for client scripts and styles from client/. */
export async function serveClientFromDisk(context, baseUrl) {
  if (!CLIENT_FROM_DISK) return;
  const files = clientSubresources();
  const origin = new URL(baseUrl).origin;
  await context.route((url) => url.origin === origin && files.has(url.pathname), (route) => {
    const { file, type } = files.get(new URL(route.request().url()).pathname);
    return route.fulfill({ path: file, contentType: type, headers: { 'cache-control': 'no-cache' } });
  });
}

/** The same for a Puppeteer page (Firefox over WebDriver BiDi). */
export async function serveClientFromDiskToPuppeteer(page, baseUrl) {
  if (!CLIENT_FROM_DISK) return;
  const files = clientSubresources();
  const origin = new URL(baseUrl).origin;
  await page.setRequestInterception(true);
  page.on('request', (request) => {
    const url = new URL(request.url());
    const hit = url.origin === origin ? files.get(url.pathname) : undefined;
    const answer = hit
      ? request.respond({ status: 200, contentType: hit.type, headers: { 'cache-control': 'no-cache' }, body: readFileSync(hit.file) })
      : request.continue();
    Promise.resolve(answer).catch(() => {}); // the page may be gone meanwhile
  });
}

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

/**
 * Starts `command args` (the server, possibly behind a wrapper), writing its
 * output to `logPath` and keeping the last lines; resolves once `baseUrl`/
 * answers with 200. The returned handle's `stop()` always resolves.
 */
export async function startServer({ command = CASCADE_BIN, args, baseUrl, logPath, timeoutMs = 30_000 }) {
  const logFile = createWriteStream(logPath);
  const child = spawn(command, args, {
    env: { RUST_LOG: 'info', ...process.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const server = { child, tail: [], exited: null, baseUrl, stop: () => stopProcess(child) };
  const keep = (chunk) => {
    logFile.write(chunk);
    for (const line of chunk.toString().split('\n')) {
      if (line) server.tail.push(line);
    }
    if (server.tail.length > 400) server.tail.splice(0, server.tail.length - 400);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.once('exit', (code, signal) => {
    server.exited = { code, signal };
    server.tail.push(`[test] server exited: code=${code} signal=${signal}`);
  });
  child.once('error', (err) => {
    server.exited = { error: err.message };
  });
  // Last resort if the runner is torn down without running `after`.
  process.once('exit', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });

  await waitFor(`the server (${command} ${args.join(' ')}) to serve ${baseUrl}/`, async () => {
    if (server.exited) throw new Error(`server exited before serving: ${JSON.stringify(server.exited)}`);
    try {
      const status = await probeStatus(`${baseUrl}/`);
      return { ok: status >= 200 && status < 300, detail: `HTTP ${status}` };
    } catch (err) {
      return { ok: false, detail: err.cause ? err.cause.code || err.cause.message : err.message };
    }
  }, { timeoutMs, intervalMs: 200 });
  return server;
}

const TURNSERVER = process.env.TURNSERVER_PATH || '/usr/bin/turnserver';

/**
 * Starts Debian's coturn on `ip` (`use-auth-secret` with `secret`, UDP only,
 * relay ports 49160-49400) and resolves once its listeners are up, with
 * `{ child, log, url }`: `log` keeps its output (also written to
 * `<logName>.log` in the artifacts), `url` is the `turn:` URL to give Cascade.
 */
export async function startCoturn({ ip, secret, logName, extraArgs = [] }) {
  const port = await freePort(ip);
  const logFile = createWriteStream(path.join(ARTIFACTS, `${logName}.log`));
  const child = spawn(TURNSERVER, [
    '-n', `--listening-ip=${ip}`, `--listening-port=${port}`, `--relay-ip=${ip}`,
    '--min-port=49160', '--max-port=49400', '--use-auth-secret', `--static-auth-secret=${secret}`,
    '--realm=cascade.test', '--no-tls', '--no-dtls', '--no-cli', '--no-tcp-relay',
    '--fingerprint', '--log-file=stdout', '--simple-log', '--verbose',
    `--pidfile=${path.join(ARTIFACTS, `${logName}.pid`)}`, `--db=${path.join(ARTIFACTS, `${logName}.sqlite`)}`,
    ...extraArgs,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  const log = [];
  const keep = (chunk) => {
    logFile.write(chunk);
    log.push(...chunk.toString().split('\n').filter(Boolean));
    if (log.length > 5000) log.splice(0, log.length - 5000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  process.once('exit', () => child.exitCode === null && child.kill('SIGKILL'));
  await waitFor(`coturn to start its listeners on ${ip}`, async () => {
    if (child.exitCode !== null) throw new Error(`coturn exited: ${log.slice(-20).join('\n')}`);
    return { ok: log.some((l) => l.includes('Total General servers')), detail: log.slice(-5) };
  }, { timeoutMs: 15_000, intervalMs: 200 });
  return { child, log, url: `turn:${ip}:${port}?transport=udp` };
}

/** The status `url` answers with. An `https://` server is probed without
 * verifying its certificate: the tests start servers with `--tls-self-signed`,
 * and the browsers they drive ignore certificate errors the same way. */
async function probeStatus(url) {
  if (!url.startsWith('https:')) return (await fetch(url)).status;
  return new Promise((resolve, reject) => {
    const req = httpsGet(url, { rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.once('error', reject);
    req.setTimeout(2_000, () => req.destroy(new Error('timed out')));
  });
}

/** SIGINT (Cascade stops at once, no drain), then SIGKILL if the process
 * lingers. Always resolves. */
export async function stopProcess(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGINT');
  const result = await Promise.race([gone.then(() => 'exited'), sleep(5000).then(() => 'timeout')]);
  if (result === 'timeout') {
    child.kill('SIGKILL');
    await Promise.race([gone, sleep(2000)]);
  }
}
