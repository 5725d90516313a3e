/**
 * Reachable from other networks, end to end in headless Chromium: a call
 * forced through TURN (`iceTransportPolicy: 'relay'`, the bundled client's
 * `&relay=1`) plays through Debian's coturn with the credentials Cascade
 * minted, and a call over `https://`/`wss://` plays against
 * `--tls-self-signed`.
 *
 * Runs in tests/browser/run.sh's loopback-only network namespace. The test
 * starts coturn itself on 127.0.0.1 (`use-auth-secret`, the same
 * `static-auth-secret` as Cascade's `--turn-secret`, loopback peers allowed
 * since the SFU is on loopback too) and the real server with `--turn-url`:
 *
 *   1. coturn and Cascade start;
 *   2. Alice and Bob join with `&relay=1`: each decodes the other's video
 *      (framesDecoded rising), and the selected candidate pair of both
 *      peer connections of both pages has a `relay` local candidate, so the
 *      media went through coturn; coturn's log shows allocations for the
 *      usernames `expiry:alice` and `expiry:bob` (the tokens' identities);
 *   3. a third page, joined with a link to a Cascade whose `--turn-secret`
 *      is wrong, gathers no relay candidate and gets no media: coturn
 *      checks the credentials, so step 2 could not have passed without
 *      valid ones;
 *   4. a Cascade with `--tls-self-signed`: two pages (certificate errors
 *      ignored, as a visitor who accepted the warning) load the client over
 *      `https://`, signal over `wss://` (a secure page may not open `ws://`)
 *      and play each other.
 *
 * What this does not prove: TURN over TCP or TLS (`turns:`), a TURN server on
 * another host, NAT traversal (there is no NAT here, only a browser not
 * allowed to use anything but the relay); HTTPS from another network
 * namespace or host (this runs on loopback).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import {
  ARTIFACTS, CASCADE_BIN, CHROMIUM, CHROMIUM_ARGS, freePort, serveClientFromDisk, sleep, startCoturn, startServer, stopProcess, waitFor,
} from './support.mjs';

const ROOM = `turn-${Date.now().toString(36)}`;
const API_KEYS = { CASCADE_API_KEY: 'TURNkey', CASCADE_API_SECRET: 'turn-test-secret-0123456789abcdef0123456789' };
const TURN_SECRET = 'coturn-shared-secret-for-the-test';
const MEDIA_WAIT_MS = 40_000;
const STEP_TIMEOUT_MS = 120_000;

const ctx = { coturn: null, coturnLog: [], turnUrl: null, servers: [], browser: null, pages: new Map() };

/** Starts coturn on 127.0.0.1 (loopback peers allowed: the SFU is on loopback too). */
async function startLoopbackCoturn() {
  const turn = await startCoturn({ ip: '127.0.0.1', secret: TURN_SECRET, logName: 'turn-coturn', extraArgs: ['--allow-loopback-peers'] });
  ctx.coturn = turn.child;
  ctx.coturnLog = turn.log;
  ctx.turnUrl = turn.url;
}

/** A Cascade with API keys and `extra` flags. */
async function startCascade(name, extra, scheme = 'http') {
  const port = await freePort();
  const baseUrl = `${scheme}://127.0.0.1:${port}`;
  const server = await startServer({
    args: ['--http-addr', `127.0.0.1:${port}`, '--media-addr', '127.0.0.1',
      '--api-key', API_KEYS.CASCADE_API_KEY, '--api-secret', API_KEYS.CASCADE_API_SECRET, ...extra],
    baseUrl,
    logPath: path.join(ARTIFACTS, `turn-${name}-server.log`),
  });
  ctx.servers.push(server);
  return baseUrl;
}

/** `cascade token create`'s join link for `identity`, forced to relay if `relay`. */
function joinLink(baseUrl, identity, relay) {
  const out = execFileSync(CASCADE_BIN, ['token', 'create', '--room', ROOM, '--identity', identity, '--url', baseUrl], {
    env: { ...process.env, ...API_KEYS },
    encoding: 'utf8',
  });
  const link = out.trim().split('\n')[1];
  assert.ok(link && link.includes('token='), `token create printed a join link: ${out}`);
  return relay ? `${link}&relay=1` : link;
}

async function openPage(name, baseUrl, { relay = true } = {}) {
  const context = await ctx.browser.newContext({ viewport: { width: 960, height: 540 }, ignoreHTTPSErrors: true });
  await context.grantPermissions(['camera', 'microphone'], { origin: baseUrl });
  await serveClientFromDisk(context, baseUrl);
  const page = await context.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  ctx.pages.set(name, { page, logs });
  await page.goto(joinLink(baseUrl, name.toLowerCase(), relay));
  return page;
}

/** Video frames decoded on the subscribe connection, and each connection's selected local candidate type. */
function relayState(page) {
  return page.evaluate(async () => {
    const c = window.cascade;
    const out = { framesDecoded: 0, publish: null, subscribe: null, iceServers: null, relayCandidates: 0 };
    if (!c) return out;
    for (const [name, pc] of [['publish', c.publishPc], ['subscribe', c.subscribePc]]) {
      if (!pc) continue;
      out.iceServers = pc.getConfiguration().iceServers.map((s) => ({ urls: s.urls, username: s.username }));
      const stats = await pc.getStats();
      let pair = null;
      stats.forEach((s) => {
        if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
        if (s.type === 'local-candidate' && s.candidateType === 'relay') out.relayCandidates += 1;
        if (name === 'subscribe' && s.type === 'inbound-rtp' && s.kind === 'video') out.framesDecoded += s.framesDecoded || 0;
      });
      const local = pair && stats.get(pair.localCandidateId);
      out[name] = local ? { type: local.candidateType, state: pair.state } : { type: null, state: pc.connectionState };
    }
    return out;
  });
}

function dump() {
  for (const [name, { logs }] of ctx.pages) {
    console.log(`---- ${name}: console (last 40 lines) ----\n${logs.slice(-40).join('\n')}`);
  }
  console.log(`---- coturn log (last 40 lines) ----\n${ctx.coturnLog.slice(-40).join('\n')}`);
  for (const s of ctx.servers) console.log(`---- server ${s.baseUrl} (last 30 lines) ----\n${s.tail.slice(-30).join('\n')}`);
}

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  ctx.browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});

after(async () => {
  if (ctx.browser) await ctx.browser.close();
  for (const s of ctx.servers) await s.stop();
  await stopProcess(ctx.coturn);
});

let started = false;
let relayed = false;

test('coturn and a Cascade with --turn-url/--turn-secret start', { timeout: STEP_TIMEOUT_MS }, async () => {
  await startLoopbackCoturn();
  ctx.good = await startCascade('good', ['--turn-url', ctx.turnUrl, '--turn-secret', TURN_SECRET]);
  started = true;
});

test('two pages forced to relay play each other through coturn', { timeout: STEP_TIMEOUT_MS }, async (t) => {
  if (!started) return t.skip('the servers did not start');
  try {
    await Promise.all(['Alice', 'Bob'].map((n) => openPage(n, ctx.good)));
    const first = {};
    for (const name of ['Alice', 'Bob']) {
      const { page } = ctx.pages.get(name);
      const r = await waitFor(`${name} to decode video over relayed connections`, async () => {
        const s = await relayState(page);
        const ok = s.framesDecoded > 0 && s.publish?.type === 'relay' && s.subscribe?.type === 'relay';
        return { ok, detail: s };
      }, { timeoutMs: MEDIA_WAIT_MS, intervalMs: 500 });
      first[name] = r.detail.framesDecoded;
      assert.ok(r.detail.iceServers.some((s) => s.username && s.username.endsWith(`:${name.toLowerCase()}`)),
        `${name}'s peer connections use the TURN credentials of its identity: ${JSON.stringify(r.detail.iceServers)}`);
    }
    await sleep(2000);
    for (const name of ['Alice', 'Bob']) {
      const s = await relayState(ctx.pages.get(name).page);
      assert.ok(s.framesDecoded > first[name], `${name}'s video keeps decoding (${first[name]} -> ${s.framesDecoded})`);
    }
    for (const identity of ['alice', 'bob']) {
      assert.ok(ctx.coturnLog.some((l) => new RegExp(`user <\\d+:${identity}>: incoming packet ALLOCATE processed, success`).test(l)),
        `coturn's log shows an allocation for ${identity}'s REST-API username`);
    }
    relayed = true;
  } catch (err) {
    dump();
    throw err;
  }
});

test('with a wrong --turn-secret coturn refuses the credentials and no media flows', { timeout: STEP_TIMEOUT_MS }, async (t) => {
  if (!relayed) return t.skip('relaying did not work to begin with');
  try {
    const bad = await startCascade('bad', ['--turn-url', ctx.turnUrl, '--turn-secret', 'not-the-secret-coturn-has']);
    const page = await openPage('Mallory', bad);
    // Give it as long as the good pages needed, and more: gathering ends in seconds.
    await waitFor('Mallory to finish ICE gathering', async () => {
      const state = await page.evaluate(() => window.cascade?.publishPc?.iceGatheringState ?? null);
      return { ok: state === 'complete', detail: state };
    }, { timeoutMs: MEDIA_WAIT_MS });
    await sleep(3000);
    const s = await relayState(page);
    assert.equal(s.relayCandidates, 0, `no relay candidate with refused credentials: ${JSON.stringify(s)}`);
    assert.notEqual(s.publish?.type, 'relay', JSON.stringify(s));
    assert.ok(ctx.coturnLog.some((l) => /user <\d+:mallory>: .*error 401: Unauthorized/.test(l)),
      "coturn's log shows Mallory's credentials refused");
    assert.ok(!ctx.coturnLog.some((l) => /user <\d+:mallory>: incoming packet ALLOCATE processed, success/.test(l)),
      'coturn allocated nothing for Mallory');
  } catch (err) {
    dump();
    throw err;
  }
});

test('over https:// and wss:// with --tls-self-signed, two pages play each other', { timeout: STEP_TIMEOUT_MS }, async (t) => {
  if (!started) return t.skip('coturn or the first server did not start');
  try {
    const secure = await startCascade('tls', ['--tls-self-signed'], 'https');
    const fingerprint = ctx.servers.at(-1).tail.find((l) => l.includes('fingerprint'));
    assert.ok(fingerprint && /([0-9A-F]{2}:){31}[0-9A-F]{2}/.test(fingerprint), `the server logs the certificate's SHA-256: ${fingerprint}`);
    await Promise.all(['Carol', 'Dave'].map((n) => openPage(n, secure, { relay: false })));
    for (const name of ['Carol', 'Dave']) {
      const { page } = ctx.pages.get(name);
      assert.equal(new URL(page.url()).protocol, 'https:');
      const r = await waitFor(`${name} to decode video over https`, async () => {
        const s = await relayState(page);
        return { ok: s.framesDecoded > 0 && s.subscribe?.state === 'succeeded', detail: s };
      }, { timeoutMs: MEDIA_WAIT_MS, intervalMs: 500 });
      const before = r.detail.framesDecoded;
      await sleep(1500);
      const s = await relayState(page);
      assert.ok(s.framesDecoded > before, `${name}'s video keeps decoding (${before} -> ${s.framesDecoded})`);
    }
  } catch (err) {
    dump();
    throw err;
  }
});
