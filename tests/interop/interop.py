"""Cascade WHIP/WHEP interop tests against independent WebRTC stacks.

Run by tests/interop/run.sh with the venv's python, inside a network
namespace that has only loopback. Starts the Cascade server(s) itself, runs
each test with a time limit, always stops the servers, prints one PASS/FAIL
line per test and a closing `interop: N passed, M failed`.

Peers: aiortc (venv, aiortc_peer.py), GStreamer webrtcbin (Debian's
/usr/bin/python3, gst_peer.py) and, for the simulcast tests, headless
Chromium running the bundled client (node + playwright-core,
chromium_peer.mjs). Every role is a subprocess reporting `@event {json}`
lines; logs of every process go to --logs.
"""

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import traceback
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import httpc  # noqa: E402

VENV_PY = sys.executable
GST_PY = os.environ.get("INTEROP_GST_PYTHON", "/usr/bin/python3")
AIORTC = os.path.join(HERE, "aiortc_peer.py")
GST = os.path.join(HERE, "gst_peer.py")
CHROMIUM_PEER = os.path.join(HERE, "chromium_peer.mjs")
NODE = os.environ.get("INTEROP_NODE", "node")
# INTEROP_BROWSER=0 leaves out the tests that need headless Chromium.
BROWSER = os.environ.get("INTEROP_BROWSER", "1") != "0"

# Frame thresholds: the sources run at 30 fps video / 50 fps audio and each
# viewer watches for several seconds, so these leave ample room for a slow,
# shared machine while still failing when media does not flow.
MIN_VIDEO = 60
MIN_AUDIO = 100
VIEW_SECS = 6
API_KEY, API_SECRET = "APIinterop", "interop-secret-0123456789abcdef0123456789"


def mint(binary, room, identity, *flags):
    """An access token from `cascade token create` (its first line)."""
    env = dict(os.environ, CASCADE_API_KEY=API_KEY, CASCADE_API_SECRET=API_SECRET)
    out = subprocess.run([binary, "token", "create", "--room", room, "--identity", identity, *flags],
                         env=env, capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0]

LOGS = None


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


# ------------------------------------------------------------------ server


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, name, extra):
        self.binary, self.name, self.extra = binary, name, extra
        self.proc = None
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        self.ws = "ws://127.0.0.1:%d/ws" % self.port
        self.log = os.path.join(LOGS, "server-%s.log" % name)

    async def start(self):
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "cascade=debug,str0m=warn,warn")
        args = [self.binary, "--http-addr", "127.0.0.1:%d" % self.port, "--media-addr", "127.0.0.1"]
        args += self.extra
        print("  server %s: %s" % (self.name, " ".join(args)), flush=True)
        self.logf = open(self.log, "wb")
        self.proc = await asyncio.create_subprocess_exec(
            *args, stdout=self.logf, stderr=asyncio.subprocess.STDOUT, env=env, start_new_session=True
        )
        end = time.monotonic() + 15
        while time.monotonic() < end:
            if self.proc.returncode is not None:
                raise Failure("server %s exited with %s (see %s)" % (self.name, self.proc.returncode, self.log))
            try:
                r = await asyncio.to_thread(httpc.request, "GET", self.base + "/healthz", None, None, 2)
                if r.status == 200:
                    return
            except OSError:
                pass
            await asyncio.sleep(0.1)
        raise Failure("server %s not healthy after 15s" % self.name)

    async def stop(self):
        if self.proc and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)  # stop now, no drain
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self.proc:
            self.logf.close()

    def log_tail(self, n=15):
        try:
            with open(self.log, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            ansi = re.compile(r"\x1b\[[0-9;]*m")
            return "\n".join("      | " + ansi.sub("", l) for l in lines[-n:])
        except OSError:
            return ""


# ------------------------------------------------------------------ roles


class Role:
    """A peer subprocess; collects its @event lines."""

    def __init__(self, label, py, script, args):
        self.label, self.py, self.script, self.args = label, py, script, args
        self.events = []
        self.changed = asyncio.Event()
        self.proc = None
        self.log = os.path.join(LOGS, "%s.log" % label)

    async def start(self):
        self.logf = open(self.log, "wb")
        cmd = [self.py, self.script] + self.args + ["--stop-on-stdin"]
        self.logf.write(("$ " + " ".join(cmd) + "\n").encode())
        self.proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self.logf,
            start_new_session=True,
        )
        self.reader = asyncio.ensure_future(self._read())
        return self

    async def _read(self):
        async for line in self.proc.stdout:
            self.logf.write(line)
            self.logf.flush()
            text = line.decode("utf-8", "replace").strip()
            if text.startswith("@event "):
                try:
                    self.events.append(json.loads(text[7:]))
                except ValueError:
                    continue
                self.changed.set()
        self.changed.set()

    def find(self, pred):
        for e in self.events:
            if pred(e):
                return e
        return None

    async def wait_for(self, pred, timeout, what):
        end = time.monotonic() + timeout
        while True:
            e = self.find(pred)
            if e is not None:
                return e
            r = self.find(lambda e: e["event"] == "result")
            if r is not None or self.reader.done():
                raise Failure("%s ended before %s: %s" % (self.label, what, short(r)))
            left = end - time.monotonic()
            if left <= 0:
                raise Failure("%s: no %s within %.0fs (log %s)" % (self.label, what, timeout, self.log))
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def wait_progress(self, pred, timeout, what):
        """Wait until the latest progress snapshot satisfies pred."""
        end = time.monotonic() + timeout
        while True:
            snaps = [e for e in self.events if e["event"] in ("progress", "result")]
            if snaps and pred(snaps[-1]):
                return snaps[-1]
            if self.find(lambda e: e["event"] == "result") or self.reader.done():
                raise Failure("%s ended before %s: %s" % (self.label, what, short(snaps[-1] if snaps else None)))
            left = end - time.monotonic()
            if left <= 0:
                raise Failure("%s: not %s within %.0fs; last %s" % (self.label, what, timeout, short(snaps[-1] if snaps else None)))
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def stop(self, timeout=20):
        """Close stdin (the role then DELETEs / leaves and reports); return its result."""
        if self.proc is None:
            return None
        if self.proc.stdin and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
            await asyncio.wait_for(self.reader, 5)
        except asyncio.TimeoutError:
            self.kill()
            await self.proc.wait()
        self.logf.close()
        return self.find(lambda e: e["event"] == "result")

    async def result(self, timeout):
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
            await asyncio.wait_for(self.reader, 5)
        except asyncio.TimeoutError:
            self.kill()
            raise Failure("%s did not finish within %.0fs (log %s)" % (self.label, timeout, self.log))
        r = self.find(lambda e: e["event"] == "result")
        check(r is not None, "%s exited %s without a result (log %s)" % (self.label, self.proc.returncode, self.log))
        return r

    def kill(self):
        if self.proc and self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def short(obj, n=600):
    s = json.dumps(obj) if not isinstance(obj, str) else obj
    return s if len(s) <= n else s[:n] + "..."


def aiortc(label, *args):
    return Role(label, VENV_PY, AIORTC, list(args))


# GStreamer 1.22's webrtcbin makes an RSA DTLS certificate. Cascade's DTLS
# (OpenSSL, src/media/dtls) accepts it; str0m's built-in DTLS (dimpl) would
# not. The tests marked [RSA] use the stock certificate; every other
# GStreamer role gets an ECDSA certificate (gst_peer.py --ecdsa-cert) unless
# INTEROP_GST_CERT=rsa, so both key types are proven on every run.
GST_CERT = os.environ.get("INTEROP_GST_CERT", "ecdsa")


def gst(label, *args, cert=None):
    args = list(args)
    if (cert or GST_CERT) == "ecdsa":
        args.append("--ecdsa-cert")
    return Role(label, GST_PY, GST, args)


def chromium(label, *args):
    """Headless Chromium with the bundled client (chromium_peer.mjs)."""
    return Role(label, NODE, CHROMIUM_PEER, list(args))


def require_result_ok(r, label):
    check(r is not None, "%s gave no result" % label)
    check(r.get("ok"), "%s failed: %s" % (label, short(r.get("error", r))))


def count(r, key):
    return r.get("counts", {}).get(key, 0)


# ------------------------------------------------------------------ tests


async def test_aiortc_whip_to_gst_whep(ctx, cert):
    """aiortc publishes via WHIP; GStreamer webrtcbin watches via WHEP."""
    s = ctx.server
    room = "a-" + cert
    pub = await ctx.role(aiortc("%s-aiortc-whip" % room, "whip-publish", "--url", s.base + "/whip/%s?name=aiortc" % room, "--duration", "60"))
    await pub.wait_for(lambda e: e["event"] == "connected", 20, "ICE/DTLS connection")
    view = await ctx.role(gst("%s-gst-whep" % room, "whep-view", "--url", s.base + "/whep/" + room, "--duration", str(VIEW_SECS), cert=cert))
    r = await view.result(VIEW_SECS + 40)
    require_result_ok(r, "GStreamer WHEP viewer")
    check(r.get("delete_status") == 200, "viewer DELETE gave %s" % r.get("delete_status"))
    v, a = count(r, "video"), count(r, "audio")
    check(v >= MIN_VIDEO, "GStreamer decoded %d video frames (want >= %d): %s" % (v, MIN_VIDEO, short(r)))
    check(a >= MIN_AUDIO, "GStreamer decoded %d audio buffers (want >= %d)" % (a, MIN_AUDIO))
    check("320x240" in r.get("sizes", {}), "decoded video size %s, published 320x240" % r.get("sizes"))
    pr = await pub.stop()
    require_result_ok(pr, "aiortc WHIP publisher")
    check(pr.get("delete_status") == 200, "publisher DELETE gave %s" % pr.get("delete_status"))
    return "GStreamer decoded %d video frames, %d audio buffers" % (v, a)


async def test_gst_whip_to_aiortc_whep(ctx, cert):
    """GStreamer webrtcbin publishes via WHIP; aiortc watches via WHEP."""
    s = ctx.server
    room = "b-" + cert
    pub = await ctx.role(gst("%s-gst-whip" % room, "whip-publish", "--url", s.base + "/whip/%s?name=gstreamer" % room, "--duration", "60", "--width", "352", "--height", "288", cert=cert))
    await pub.wait_for(lambda e: e["event"] == "connected", 20, "ICE/DTLS connection")
    view = await ctx.role(aiortc("%s-aiortc-whep" % room, "whep-view", "--url", s.base + "/whep/" + room, "--duration", str(VIEW_SECS)))
    r = await view.result(VIEW_SECS + 40)
    require_result_ok(r, "aiortc WHEP viewer")
    check(r.get("delete_status") == 200, "viewer DELETE gave %s" % r.get("delete_status"))
    v, a = count(r, "whep/video"), count(r, "whep/audio")
    check(v >= MIN_VIDEO, "aiortc decoded %d video frames (want >= %d): %s" % (v, MIN_VIDEO, short(r)))
    check(a >= MIN_AUDIO, "aiortc decoded %d audio frames (want >= %d)" % (a, MIN_AUDIO))
    sizes = r.get("sizes", {}).get("whep/video", {})
    check("352x288" in sizes, "decoded video size %s, published 352x288" % sizes)
    pr = await pub.stop()
    require_result_ok(pr, "GStreamer WHIP publisher")
    check(pr.get("delete_status") == 200, "publisher DELETE gave %s" % pr.get("delete_status"))
    return "aiortc decoded %d video frames, %d audio frames" % (v, a)


async def test_ws_publisher_to_whep_viewers(ctx):
    """A bundled-client-protocol participant (aiortc over the WebSocket of
    docs/PROTOCOL.md) publishes; a GStreamer viewer on /whep/{room} and an
    aiortc viewer on /whep/{room}/{participant} both decode its video."""
    s = ctx.server
    pub = await ctx.role(aiortc("d-ws-publisher", "ws", "--ws", s.ws, "--room", "d", "--name", "Alice", "--publish", "--duration", "60", "--width", "320", "--height", "180"))
    joined = await pub.wait_for(lambda e: e["event"] == "ws" and e["msg"]["type"] == "joined", 15, "joined")
    pid = joined["msg"]["participant_id"]
    await pub.wait_for(lambda e: e["event"] == "connected", 20, "publish connection")
    v1 = await ctx.role(gst("d-gst-whep-room", "whep-view", "--url", s.base + "/whep/d", "--duration", str(VIEW_SECS)))
    v2 = await ctx.role(aiortc("d-aiortc-whep-participant", "whep-view", "--url", "%s/whep/d/%s" % (s.base, pid), "--duration", str(VIEW_SECS)))
    r1 = await v1.result(VIEW_SECS + 40)
    r2 = await v2.result(VIEW_SECS + 40)
    require_result_ok(r1, "GStreamer WHEP viewer (/whep/d)")
    require_result_ok(r2, "aiortc WHEP viewer (/whep/d/%s)" % pid)
    g, a = count(r1, "video"), count(r2, "whep/video")
    check(g >= MIN_VIDEO, "GStreamer (/whep/d) decoded %d video frames (want >= %d): %s" % (g, MIN_VIDEO, short(r1)))
    check(a >= MIN_VIDEO, "aiortc (/whep/d/%s) decoded %d video frames (want >= %d): %s" % (pid, a, MIN_VIDEO, short(r2)))
    check("320x180" in r1.get("sizes", {}), "GStreamer saw sizes %s, published 320x180" % r1.get("sizes"))
    check("320x180" in r2.get("sizes", {}).get("whep/video", {}), "aiortc saw sizes %s" % r2.get("sizes"))
    # The viewers were participants of the room: the WebSocket client saw them come and go.
    pr = await pub.stop()
    require_result_ok(pr, "WebSocket publisher")
    types = pr.get("types", [])
    check(types.count("participant_joined") >= 2 and types.count("participant_left") >= 2,
          "WebSocket client did not see both WHEP viewers join and leave: %s" % types)
    return "GStreamer /whep/d: %d frames, aiortc /whep/d/{id}: %d frames" % (g, a)


def layer_bytes(e):
    return {l["rid"]: l["bytesSent"] for l in e.get("layers", []) if l.get("rid")}


def is_camera_layer(size):
    """A frame size the 1280x720 fake camera's layers can have: 16:9 (to
    the encoder's rounding), at most 1280x720. (Chromium may scale every
    layer down when the machine is busy, so not only 320x180, 640x360 and
    1280x720.)"""
    w, h = (int(x) for x in size.split("x"))
    return 0 < w <= 1280 and 0 < h <= 720 and abs(w * 9 - h * 16) <= 16


async def test_chromium_simulcast_to_whep_viewers(ctx):
    """Headless Chromium with the bundled client publishes its fake camera
    (1280x720) as VP8 simulcast q/h/f; a GStreamer viewer on /whep/{room}
    and an aiortc viewer on /whep/{room}/{participant} both decode it. Alone
    in the room the publisher is told (dynacast) to send q only; the viewers
    make the server turn h and f back on."""
    s = ctx.server
    pub = await ctx.role(chromium("g-chromium-publisher", "publish", "--url", s.base, "--room", "g", "--name", "Chromium", "--duration", "100"))
    joined = await pub.wait_for(lambda e: e["event"] == "joined", 30, "joined")
    pid = joined["participant_id"]
    conn = await pub.wait_for(lambda e: e["event"] == "connected", 20, "publish connection")
    check(conn.get("encodings") == ["q/4", "h/2", "f/1"], "publisher encodings %s, want q/4 h/2 f/1" % conn.get("encodings"))
    cap = conn.get("capture") or {}
    check((cap.get("width"), cap.get("height")) == (1280, 720), "fake camera captures %sx%s, want 1280x720" % (cap.get("width"), cap.get("height")))
    def active(e):
        return {l["rid"]: l.get("active") for l in e.get("layers", []) if l.get("rid")}

    await pub.wait_progress(lambda e: active(e).get("q") and active(e).get("h") is False and active(e).get("f") is False,
                            15, "dynacast: q only while nobody watches")
    # The viewers are stopped (stdin closed) once everything below is seen.
    v1 = await ctx.role(gst("g-gst-whep-room", "whep-view", "--url", s.base + "/whep/g", "--duration", "90"))
    v2 = await ctx.role(aiortc("g-aiortc-whep-participant", "whep-view", "--url", "%s/whep/g/%s" % (s.base, pid), "--duration", "90"))
    for v, key in ((v1, ""), (v2, "whep/")):
        await v.wait_progress(lambda e: e.get("counts", {}).get(key + "video", 0) >= MIN_VIDEO
                              and e.get("counts", {}).get(key + "audio", 0) >= MIN_AUDIO,
                              30, "decoding %d video frames and %d audio frames" % (MIN_VIDEO, MIN_AUDIO))
    # Chromium's own uplink estimate holds f back until it has ramped up
    # (seconds; longer on a busy machine).
    layers = await pub.wait_for(lambda e: e["event"] == "layers", 40, "three simulcast layers sent (outbound-rtp with rids)")
    check(sorted(layer_bytes(layers)) == ["f", "h", "q"], "publisher layers %s" % short(layers))
    # While both watch, all three layers keep flowing.
    before = layer_bytes([e for e in pub.events if e["event"] == "progress"][-1])
    await pub.wait_progress(lambda e: all(layer_bytes(e).get(r, 0) > before.get(r, 0) for r in ("q", "h", "f")),
                            10, "all three layers sending while the viewers watch")
    r1 = await v1.stop()
    r2 = await v2.stop()
    require_result_ok(r1, "GStreamer WHEP viewer (/whep/g)")
    require_result_ok(r2, "aiortc WHEP viewer (/whep/g/%s)" % pid)
    check(r1.get("delete_status") == 200 and r2.get("delete_status") == 200,
          "viewer DELETEs gave %s, %s" % (r1.get("delete_status"), r2.get("delete_status")))
    g, a = count(r1, "video"), count(r2, "whep/video")
    gs, as_ = r1.get("sizes", {}), r2.get("sizes", {}).get("whep/video", {})
    for who, sizes in (("GStreamer", gs), ("aiortc", as_)):
        odd = [sz for sz in sizes if not is_camera_layer(sz)]
        check(not odd, "%s decoded sizes %s: %s cannot be a layer of the 1280x720 camera" % (who, sizes, odd))
    sent = sorted({"%s:%dx%d" % (l["rid"], l["frameWidth"], l["frameHeight"])
                   for e in pub.events if e["event"] == "progress" for l in e.get("layers", []) if l.get("frameWidth")})
    pr = await pub.stop()
    require_result_ok(pr, "Chromium publisher")
    return "GStreamer /whep/g: %d video frames %s, %d audio; aiortc /whep/g/{id}: %d video frames %s, %d audio; publisher sent %s" % (
        g, gs, count(r1, "audio"), a, as_, count(r2, "whep/audio"), " ".join(sent))


async def bwe_metrics(server):
    """The server's bandwidth-estimation series, for a failure message."""
    try:
        r = await asyncio.to_thread(httpc.request, "GET", server.base + "/metrics", None, None, 5)
    except OSError as e:
        return "metrics unavailable: %s" % e
    return "; ".join(l for l in r.text.splitlines()
                     if l.startswith(("cascade_bwe", "cascade_dynacast")) and "_bucket" not in l)


# What the receive-only Chromium page shows anyway (it has no camera on purpose).
NO_CAMERA_NOTE = "Camera and microphone unavailable"


async def test_gst_simulcast_whip_to_chromium(ctx):
    """GStreamer webrtcbin publishes VP8 simulcast over WHIP (three encoders,
    one SSRC each, a=rid q/h/f + a=simulcast + the mid/rid header
    extensions); a headless Chromium subscriber with the bundled client
    decodes it (framesDecoded rising, videoWidth > 0), and gets more than
    the lowest layer at some point."""
    s = ctx.server
    name = "GStreamer simulcast"
    sub = await ctx.role(chromium("h-chromium-subscriber", "subscribe", "--url", s.base, "--room", "h", "--name", "Viewer", "--duration", "100"))
    await sub.wait_for(lambda e: e["event"] == "joined", 30, "joined")
    await sub.wait_for(lambda e: e["event"] == "connected", 20, "subscribe connection")
    pub = await ctx.role(gst("h-gst-whip-simulcast", "whip-publish", "--url", s.base + "/whip/h?name=" + urllib.parse.quote(name),
                             "--simulcast", "q,h,f", "--width", "640", "--height", "360", "--duration", "60"))
    sim = await pub.wait_for(lambda e: e["event"] == "simulcast", 15, "simulcast layers set up")
    sizes = {l["rid"]: "%dx%d" % (l["width"], l["height"]) for l in sim["layers"]}
    offer = (await pub.wait_for(lambda e: e["event"] == "offer", 20, "offer")).get("sdp", "")
    for line in ("a=rid:q send", "a=rid:h send", "a=rid:f send", "a=simulcast:send q;h;f"):
        check(line in offer.splitlines(), "GStreamer's offer lacks %r" % line)
    answer = (await pub.wait_for(lambda e: e["event"] == "published", 20, "WHIP answer")).get("answer", "")
    recv = [l for l in answer.splitlines() if l.startswith("a=simulcast:")]
    check(recv and recv[0].startswith("a=simulcast:recv") and all(r in recv[0] for r in "qhf"),
          "WHIP answer's simulcast line %s, want a=simulcast:recv with q, h, f" % recv)
    await pub.wait_for(lambda e: e["event"] == "connected", 20, "ICE/DTLS connection")

    def video(e):
        tile = next((t for t in e.get("tiles", []) if t.get("name") == name), None)
        v = e.get("video", {}).get(tile["id"]) if tile else None
        return tile, v

    def playing(e):
        tile, v = video(e)
        return bool(tile and tile.get("videoWidth", 0) > 0 and v and v["framesDecoded"] >= MIN_VIDEO)

    first = await sub.wait_progress(playing, 30, "playing %d frames of the simulcast publisher" % MIN_VIDEO)
    frames0 = video(first)[1]["framesDecoded"]
    await sub.wait_progress(lambda e: playing(e) and video(e)[1]["framesDecoded"] > frames0, 10, "framesDecoded rising")

    def seen():
        out = {}
        for e in sub.events:
            if e["event"] == "progress":
                v = video(e)[1]
                if v and v["frameWidth"]:
                    k = "%dx%d" % (v["frameWidth"], v["frameHeight"])
                    out[k] = out.get(k, 0) + 1
        return out

    # Which layer is the server's choice from its estimate of the
    # subscriber's link: above q within a few seconds on loopback (once,
    # in about 25 runs, only after 16 s).
    try:
        await sub.wait_progress(lambda e: any(k != sizes["q"] for k in seen()), 30,
                                "a layer above q (%s) decoded" % sizes["q"])
    except Failure as e:
        raise Failure("%s; sizes seen %s; server %s" % (e, seen(), await bwe_metrics(s)))
    got = seen()
    odd = [k for k in got if k not in sizes.values()]
    check(not odd, "Chromium decoded sizes %s: %s are not the published layers %s" % (got, odd, sizes))
    last = [e for e in sub.events if e["event"] == "progress"][-1]
    errors = [x for x in last.get("errors", []) if NO_CAMERA_NOTE not in x]
    check(not errors, "subscriber page shows errors: %s" % errors)
    pr = await pub.stop()
    require_result_ok(pr, "GStreamer simulcast WHIP publisher")
    check(pr.get("delete_status") == 200, "publisher DELETE gave %s" % pr.get("delete_status"))
    r = await sub.stop()
    require_result_ok(r, "Chromium subscriber")
    tile, v = video(last)
    return "Chromium decoded %d frames, sizes seen (1 s samples) %s, last %dx%d; layers %s" % (
        v["framesDecoded"], got, tile["videoWidth"], tile.get("videoHeight", 0), sizes)


async def test_whip_publisher_in_ws_room(ctx):
    """A GStreamer WHIP publisher appears to a WebSocket (PROTOCOL.md) client
    as participant_joined + track_published, its media arrives on the
    client's subscribe connection, and DELETE makes it participant_left."""
    s = ctx.server
    obs = await ctx.role(aiortc("e-ws-observer", "ws", "--ws", s.ws, "--room", "e", "--name", "Bob", "--duration", "60"))
    await obs.wait_for(lambda e: e["event"] == "ws" and e["msg"]["type"] == "joined", 15, "joined")
    pub = await ctx.role(gst("e-gst-whip", "whip-publish", "--url", s.base + "/whip/e?name=GStreamer%20WHIP", "--duration", "60"))
    await pub.wait_for(lambda e: e["event"] == "connected", 20, "ICE/DTLS connection")
    pj = await obs.wait_for(lambda e: e["event"] == "ws" and e["msg"]["type"] == "participant_joined", 10, "participant_joined")
    who = pj["msg"]["participant"]
    check(who.get("name") == "GStreamer WHIP", "participant_joined name %r, want 'GStreamer WHIP' (?name=)" % who.get("name"))
    pid = who["id"]
    for kind in ("video", "audio"):
        await obs.wait_for(
            lambda e: e["event"] == "ws" and e["msg"]["type"] == "track_published"
            and e["msg"]["participant_id"] == pid and e["msg"]["track"]["kind"] == kind,
            10, "track_published(%s) for %s" % (kind, pid))
    snap = await obs.wait_progress(
        lambda e: e.get("counts", {}).get(pid + "/video", 0) >= MIN_VIDEO
        and e.get("counts", {}).get(pid + "/audio", 0) >= MIN_AUDIO,
        VIEW_SECS + 20, "decoding the WHIP publisher's media")
    pr = await pub.stop()
    require_result_ok(pr, "GStreamer WHIP publisher")
    check(pr.get("delete_status") == 200, "publisher DELETE gave %s" % pr.get("delete_status"))
    await obs.wait_for(lambda e: e["event"] == "ws" and e["msg"]["type"] == "participant_left"
                       and e["msg"]["participant_id"] == pid, 10, "participant_left after DELETE")
    r = await obs.stop()
    require_result_ok(r, "WebSocket observer")
    return "WebSocket client decoded %d video / %d audio frames from the WHIP publisher" % (
        snap["counts"][pid + "/video"], snap["counts"][pid + "/audio"])


async def test_whep_follows_next_publisher(ctx):
    """/whep/{room} follows the earliest publisher and switches to the next
    one when it leaves, on the same connection (different frame sizes tell
    the two apart)."""
    s = ctx.server
    a = await ctx.role(aiortc("f-aiortc-whip-first", "whip-publish", "--url", s.base + "/whip/f?name=first", "--duration", "60", "--width", "320", "--height", "240"))
    await a.wait_for(lambda e: e["event"] == "connected", 20, "first publisher connected")
    b = await ctx.role(gst("f-gst-whip-second", "whip-publish", "--url", s.base + "/whip/f?name=second", "--duration", "60", "--width", "176", "--height", "144"))
    await b.wait_for(lambda e: e["event"] == "connected", 20, "second publisher connected")
    view = await ctx.role(aiortc("f-aiortc-whep", "whep-view", "--url", s.base + "/whep/f", "--duration", "60"))

    def sizes(e):
        return e.get("sizes", {}).get("whep/video", {})

    await view.wait_progress(lambda e: sizes(e).get("320x240", 0) >= 30, 25, "30 frames of the first publisher (320x240)")
    last = [e for e in view.events if e["event"] == "progress"][-1]
    check(sizes(last).get("176x144", 0) == 0, "viewer got the second publisher before the first left: %s" % sizes(last))
    ra = await a.stop()
    require_result_ok(ra, "first publisher")
    snap = await view.wait_progress(lambda e: sizes(e).get("176x144", 0) >= 30, 25, "30 frames of the second publisher (176x144) after the first left")
    r = await view.stop()
    require_result_ok(r, "WHEP viewer")
    await b.stop()
    return "viewer switched on one connection: %s" % sizes(snap)


# ---------------------------------------------------------- HTTP semantics


def sdp_offer(send):
    import subprocess

    out = subprocess.run([VENV_PY, AIORTC, "offer"] + (["--send"] if send else []),
                         capture_output=True, timeout=30, check=True)
    return out.stdout.decode()


def ice_creds(sdp):
    u = re.search(r"^a=ice-ufrag:(\S+)", sdp, re.M).group(1)
    p = re.search(r"^a=ice-pwd:(\S+)", sdp, re.M).group(1)
    mid = re.search(r"^a=mid:(\S+)", sdp, re.M).group(1)
    return u, p, mid


def sdpfrag(ufrag, pwd, mid, candidate=True):
    lines = ["a=ice-ufrag:" + ufrag, "a=ice-pwd:" + pwd, "m=audio 9 UDP/TLS/RTP/SAVPF 0", "a=mid:" + mid]
    if candidate:
        lines.append("a=candidate:1 1 UDP 2130706431 127.0.0.1 9 typ host")
    return "\r\n".join(lines) + "\r\n"


class HttpChecks:
    """Each check is one named test in the summary."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.s = ctx.server
        self.recv_offer = None
        self.send_offer = None
        self.errors = []

    def req(self, method, path, body=None, headers=None, token=None):
        url = path if path.startswith("http") else self.s.base + path
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        return httpc.request(method, url, body, h, 10)

    def post(self, path, sdp, ctype="application/sdp", token=None, base=None):
        return self.req("POST", (base or self.s.base) + path, sdp, {"Content-Type": ctype}, token)

    def expect(self, r, status, what, strict=False):
        """Check a response's status (and that an error body is one line of
        text). Mismatches are collected, so one run reports all of them;
        strict ones (a later step depends on them) stop the check."""
        problems = []
        if r.status != status:
            problems.append("%s: got %d %r, want %d" % (what, r.status, r.text.strip()[:200], status))
        elif status >= 400:
            body = r.text.strip()
            if not body or "\n" in body or len(body) > 300:
                problems.append("%s: error body should be one line of text, got %r" % (what, body[:300]))
        if problems and strict:
            raise Failure("; ".join(self.errors + problems))
        self.errors += problems

    def create(self, kind="whep", room="c", send=False):
        sdp = self.send_offer if send else self.recv_offer
        r = self.post("/%s/%s" % (kind, room), sdp)
        self.expect(r, 201, "POST /%s/%s" % (kind, room), strict=True)
        return r, httpc.resolve(self.s.base + "/", r.header("Location"))

    async def run(self):
        self.recv_offer = await asyncio.to_thread(sdp_offer, False)
        self.send_offer = await asyncio.to_thread(sdp_offer, True)
        checks = [
            ("POST WHIP -> 201 + answer + Location + ETag + CORS", self.c_post_whip),
            ("POST WHEP -> 201 + answer + Location + ETag", self.c_post_whep),
            ("PATCH trickle sdpfrag with If-Match -> 204", self.c_trickle),
            ("PATCH wrong If-Match -> 412", self.c_wrong_etag),
            ("PATCH ICE restart -> 200 + sdpfrag + new ETag", self.c_ice_restart),
            ("wrong Content-Type -> 415 (POST and PATCH)", self.c_415),
            ("malformed SDP / sdpfrag, bad room -> 400", self.c_400),
            ("unknown session / participant -> 404", self.c_404),
            ("body over 64 KiB -> 413", self.c_413),
            ("DELETE -> 200, then PATCH/DELETE -> 404", self.c_delete),
            ("OPTIONS -> 204 with CORS headers", self.c_options),
        ]
        for name, fn in checks:
            await self.ctx.record("http: " + name, lambda fn=fn: asyncio.to_thread(self.soft, fn), timeout=60, server_tail=False)

    def soft(self, fn):
        self.errors = []
        detail = fn()
        if self.errors:
            raise Failure("; ".join(self.errors))
        return detail

    def cors(self, r, what):
        check(r.header("Access-Control-Allow-Origin") == "*", "%s: Access-Control-Allow-Origin %r" % (what, r.header("Access-Control-Allow-Origin")))

    def c_post_whip(self):
        r, loc = self.create("whip", "c1", send=True)
        check(r.header("Location").startswith("/whip/session/") or "/whip/session/" in r.header("Location"), "Location %r" % r.header("Location"))
        check(r.header("ETag"), "no ETag")
        check((r.header("Content-Type") or "").startswith("application/sdp"), "Content-Type %r" % r.header("Content-Type"))
        check(r.text.startswith("v=0"), "answer is not SDP: %r" % r.text[:80])
        check("a=recvonly" in r.text, "WHIP answer to a sendonly offer should be recvonly")
        self.cors(r, "POST")
        exposed = (r.header("Access-Control-Expose-Headers") or "").lower()
        check("location" in exposed and "etag" in exposed, "Access-Control-Expose-Headers %r" % exposed)
        self.expect(self.req("DELETE", loc), 200, "DELETE")
        return "Location %s" % r.header("Location")

    def c_post_whep(self):
        r, loc = self.create("whep", "c2")
        check("/whep/session/" in r.header("Location"), "Location %r" % r.header("Location"))
        check(r.header("ETag"), "no ETag")
        check(r.text.startswith("v=0"), "answer is not SDP: %r" % r.text[:80])
        check("a=sendonly" in r.text or "a=inactive" in r.text, "WHEP answer to a recvonly offer should be sendonly")
        self.expect(self.req("DELETE", loc), 200, "DELETE")

    def c_trickle(self):
        r, loc = self.create("whep", "c3")
        u, p, mid = ice_creds(self.recv_offer)
        frag = sdpfrag(u, p, mid)
        h = {"Content-Type": "application/trickle-ice-sdpfrag", "If-Match": r.header("ETag")}
        self.expect(self.req("PATCH", loc, frag, h), 204, "PATCH trickle with If-Match: ETag")
        h["If-Match"] = "*"
        self.expect(self.req("PATCH", loc, frag, h), 204, "PATCH trickle with If-Match: *")
        self.req("DELETE", loc)

    def c_wrong_etag(self):
        r, loc = self.create("whep", "c4")
        u, p, mid = ice_creds(self.recv_offer)
        h = {"Content-Type": "application/trickle-ice-sdpfrag", "If-Match": '"not-the-etag"'}
        self.expect(self.req("PATCH", loc, sdpfrag(u, p, mid), h), 412, "PATCH with a wrong If-Match")
        self.req("DELETE", loc)

    def c_ice_restart(self):
        r, loc = self.create("whip", "c5", send=True)
        old = r.header("ETag")
        _, _, mid = ice_creds(self.send_offer)
        h = {"Content-Type": "application/trickle-ice-sdpfrag", "If-Match": "*"}
        rr = self.req("PATCH", loc, sdpfrag("rstu", "restartpasswordrestartpw", mid, candidate=False), h)
        self.expect(rr, 200, "PATCH ICE restart (new ufrag/pwd)")
        check((rr.header("Content-Type") or "").startswith("application/trickle-ice-sdpfrag"), "restart answer Content-Type %r" % rr.header("Content-Type"))
        check("a=ice-ufrag:" in rr.text and "a=ice-pwd:" in rr.text, "restart answer lacks ice-ufrag/pwd: %r" % rr.text)
        new = rr.header("ETag")
        check(new and new != old, "restart ETag %r, old %r: want a new one" % (new, old))
        u, p, mid = ice_creds(self.send_offer)
        h = {"Content-Type": "application/trickle-ice-sdpfrag", "If-Match": old}
        self.expect(self.req("PATCH", loc, sdpfrag("rstu", "restartpasswordrestartpw", mid), h), 412, "PATCH with the pre-restart ETag")
        self.req("DELETE", loc)

    def c_415(self):
        self.expect(self.post("/whip/c6", self.send_offer, "text/plain"), 415, "POST text/plain")
        self.expect(self.post("/whep/c6", self.recv_offer, "application/json"), 415, "POST WHEP application/json")
        r, loc = self.create("whep", "c6")
        u, p, mid = ice_creds(self.recv_offer)
        self.expect(self.req("PATCH", loc, sdpfrag(u, p, mid), {"Content-Type": "application/sdp"}), 415, "PATCH application/sdp")
        self.req("DELETE", loc)

    def c_400(self):
        self.expect(self.post("/whip/c7", "hello, this is not SDP"), 400, "POST garbage")
        self.expect(self.post("/whep/c7", "v=0\r\nthis is=not valid\r\n"), 400, "POST broken SDP")
        self.expect(self.post("/whip/c7", ""), 400, "POST empty body")
        self.expect(self.post("/whip/" + "x" * 65, self.send_offer), 400, "POST room name of 65 chars")
        self.expect(self.post("/whip/bad%20room%21", self.send_offer), 400, "POST room name with space and '!'")
        r, loc = self.create("whep", "c7")
        self.expect(self.req("PATCH", loc, "a=candidate:garbage\r\n", {"Content-Type": "application/trickle-ice-sdpfrag"}), 400, "PATCH malformed sdpfrag")
        self.req("DELETE", loc)

    def c_404(self):
        h = {"Content-Type": "application/trickle-ice-sdpfrag"}
        u, p, mid = ice_creds(self.recv_offer)
        for kind in ("whip", "whep"):
            self.expect(self.req("PATCH", "/%s/session/nosuchsession" % kind, sdpfrag(u, p, mid), h), 404, "PATCH unknown %s session" % kind)
            self.expect(self.req("DELETE", "/%s/session/nosuchsession" % kind), 404, "DELETE unknown %s session" % kind)
        self.expect(self.post("/whep/c8/pnosuchparticipant", self.recv_offer), 404, "POST /whep/{room}/{malformed participant id}")
        self.expect(self.post("/whep/c8/p0123456789abcdef", self.recv_offer), 404, "POST /whep/{room}/{absent participant}")

    def c_413(self):
        body = self.send_offer + ("a=x-padding:" + "p" * 1000 + "\r\n") * 70
        check(len(body) > 64 * 1024, "test body too small")
        try:
            r = self.post("/whip/c9", body)
        except OSError as e:
            raise Failure("POST of %d bytes: connection error %s (no 413 response)" % (len(body), e))
        self.expect(r, 413, "POST %d bytes" % len(body))

    def c_delete(self):
        r, loc = self.create("whep", "c10")
        self.expect(self.req("DELETE", loc), 200, "DELETE")
        u, p, mid = ice_creds(self.recv_offer)
        h = {"Content-Type": "application/trickle-ice-sdpfrag"}
        self.expect(self.req("PATCH", loc, sdpfrag(u, p, mid), h), 404, "PATCH after DELETE")
        self.expect(self.req("DELETE", loc), 404, "second DELETE")

    def c_options(self):
        r, loc = self.create("whep", "c11")
        for path in ("/whip/c11", "/whep/c11", loc):
            o = self.req("OPTIONS", path, None, {
                "Origin": "https://player.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type, if-match",
            })
            self.expect(o, 204, "OPTIONS %s" % path)
            self.cors(o, "OPTIONS %s" % path)
            methods = (o.header("Access-Control-Allow-Methods") or "").upper()
            for m in ("POST", "PATCH", "DELETE", "OPTIONS"):
                check(m in methods, "OPTIONS %s: Allow-Methods %r lacks %s" % (path, methods, m))
            hdrs = (o.header("Access-Control-Allow-Headers") or "").lower()
            for hname in ("authorization", "content-type", "if-match"):
                check(hname in hdrs, "OPTIONS %s: Allow-Headers %r lacks %s" % (path, hdrs, hname))
        self.req("DELETE", loc)


async def test_auth_and_links(ctx, auth):
    """Server started with API keys and two --ice-server flags; tokens from `cascade token create`."""
    hc = HttpChecks(ctx)
    hc.s = auth
    hc.recv_offer = await asyncio.to_thread(sdp_offer, False)
    TOKEN = mint(auth.binary, "auth", "viewer")
    other_room = mint(auth.binary, "elsewhere", "viewer")
    no_subscribe = mint(auth.binary, "auth", "viewer", "--can-subscribe=false")
    someone_else = mint(auth.binary, "auth", "someone-else")

    def run():
        for token, what in ((None, "no token"), ("wrong", "wrong token")):
            r = hc.post("/whep/auth", hc.recv_offer, token=token)
            check(r.status == 401, "POST with %s: got %d, want 401" % (what, r.status))
            check((r.header("WWW-Authenticate") or "").lower().startswith("bearer"), "401 without WWW-Authenticate: Bearer")
            check(r.header("Location") is None and "v=0" not in r.text and TOKEN not in r.text,
                  "401 leaks something: %r %r" % (r.headers, r.text[:200]))
        r = hc.req("POST", "/whep/auth", hc.recv_offer, {"Content-Type": "application/sdp", "Authorization": "Basic " + TOKEN})
        check(r.status == 401, "POST with Basic auth: got %d" % r.status)
        o = hc.req("OPTIONS", "/whep/auth", None, {"Origin": "https://player.example", "Access-Control-Request-Method": "POST"})
        check(o.status == 204, "CORS preflight OPTIONS without token: got %d, want 204 (browsers never send Authorization on a preflight)" % o.status)
        for token, what in ((other_room, "a token for another room"), (no_subscribe, "a token without canSubscribe")):
            r = hc.post("/whep/auth", hc.recv_offer, token=token)
            check(r.status == 403 and r.text.count("\n") == 1, "POST with %s: got %d %r, want 403 and one line" % (what, r.status, r.text))
        r = hc.post("/whep/auth", hc.recv_offer, token=TOKEN)
        check(r.status == 201, "POST with the right token: got %d %r" % (r.status, r.text[:200]))
        links = r.all("Link")
        joined = ", ".join(links)
        check(len(re.findall(r'rel="ice-server"', joined)) == 2 and "stun:127.0.0.1:3478" in joined and "turn:127.0.0.1:3478?transport=udp" in joined,
              "Link headers for the two --ice-server flags: %r" % links)
        loc = httpc.resolve(auth.base + "/", r.header("Location"))
        u, p, mid = ice_creds(hc.recv_offer)
        h = {"Content-Type": "application/trickle-ice-sdpfrag"}
        check(hc.req("PATCH", loc, sdpfrag(u, p, mid), h).status == 401, "PATCH without token not 401")
        check(hc.req("PATCH", loc, sdpfrag(u, p, mid), h, token=someone_else).status == 403, "PATCH with another identity's token not 403")
        check(hc.req("PATCH", loc, sdpfrag(u, p, mid), h, token=TOKEN).status == 204, "PATCH with token not 204")
        check(hc.req("DELETE", loc, token="wrong").status == 401, "DELETE with wrong token not 401")
        check(hc.req("DELETE", loc, token=TOKEN).status == 200, "DELETE with token not 200")
        return "Link: %s" % joined

    return await asyncio.to_thread(run)


# ------------------------------------------------------------------ runner


class Context:
    def __init__(self):
        self.server = None
        self.roles = []
        self.passed = 0
        self.failed = 0
        self.failures = []

    async def role(self, r):
        self.roles.append(r)
        return await r.start()

    async def cleanup_roles(self):
        for r in self.roles:
            if r.proc and r.proc.returncode is None:
                await r.stop(timeout=8)
        self.roles = []

    async def record(self, name, coro_fn, timeout=120, server_tail=True):
        t0 = time.monotonic()
        try:
            detail = await asyncio.wait_for(coro_fn(), timeout)
            self.passed += 1
            print("PASS %s (%.1fs)%s" % (name, time.monotonic() - t0, " - " + detail if detail else ""), flush=True)
        except Exception as e:
            self.failed += 1
            if isinstance(e, asyncio.TimeoutError):
                msg = "timed out after %ds" % timeout
            elif isinstance(e, Failure):
                msg = str(e)
            else:
                msg = "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc())
            self.failures.append(name)
            print("FAIL %s (%.1fs): %s" % (name, time.monotonic() - t0, msg), flush=True)
            for r in self.roles:
                print("      log: %s" % r.log, flush=True)
            if self.server and server_tail:
                print("      server log tail (%s):\n%s" % (self.server.log, self.server.log_tail()), flush=True)
        finally:
            await self.cleanup_roles()


def versions():
    from importlib.metadata import version

    v = {p: version(p) for p in ("aiortc", "aioice", "av", "pylibsrtp", "websockets")}
    import subprocess

    out = subprocess.run([GST_PY, GST, "version"], capture_output=True, timeout=30)
    try:
        v.update(json.loads(out.stdout.decode().strip().splitlines()[-1]))
    except (ValueError, IndexError):
        v["gstreamer"] = "unknown: " + out.stderr.decode()[-300:]
    v["aiortc_python"] = sys.version.split()[0]
    if BROWSER:
        for key, cmd in (("node", [NODE, "--version"]), ("chromium", [os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"), "--version"])):
            try:
                v[key] = subprocess.run(cmd, capture_output=True, timeout=30).stdout.decode().strip()
            except (OSError, subprocess.TimeoutExpired) as e:
                v[key] = "unknown: %s" % e
        try:
            with open(os.path.join(HERE, "..", "browser", "node_modules", "playwright-core", "package.json")) as f:
                v["playwright_core"] = json.load(f)["version"]
        except (OSError, ValueError, KeyError) as e:
            v["playwright_core"] = "unknown: %s" % e
    v["gst_dtls_cert_for_other_tests"] = GST_CERT
    return v


async def main():
    global LOGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--cascade", required=True)
    ap.add_argument("--logs", required=True)
    ap.add_argument("--only", help="regex of test names to run")
    a = ap.parse_args()
    LOGS = a.logs
    os.makedirs(LOGS, exist_ok=True)

    v = await asyncio.to_thread(versions)
    with open(os.path.join(LOGS, "versions.json"), "w") as f:
        json.dump(v, f, indent=2)
    print("interop versions: " + ", ".join("%s %s" % kv for kv in v.items()), flush=True)

    ctx = Context()
    want = re.compile(a.only) if a.only else None
    # Stock GStreamer 1.22 (RSA certificate) against the server's OpenSSL
    # DTLS. On by default; INTEROP_RSA=0 leaves them out.
    rsa_tests = [
        ("aiortc WHIP -> GStreamer WHEP [stock RSA DTLS certificate]", lambda c: test_aiortc_whip_to_gst_whep(c, "rsa")),
        ("GStreamer WHIP -> aiortc WHEP [stock RSA DTLS certificate]", lambda c: test_gst_whip_to_aiortc_whep(c, "rsa")),
    ]
    tests = (rsa_tests if os.environ.get("INTEROP_RSA", "1") != "0" else []) + [
        ("aiortc WHIP -> GStreamer WHEP [ECDSA DTLS certificate]", lambda c: test_aiortc_whip_to_gst_whep(c, "ecdsa")),
        ("GStreamer WHIP -> aiortc WHEP [ECDSA DTLS certificate]", lambda c: test_gst_whip_to_aiortc_whep(c, "ecdsa")),
        ("WebSocket-protocol publisher -> GStreamer + aiortc WHEP", test_ws_publisher_to_whep_viewers),
        ("GStreamer WHIP publisher in a WebSocket room", test_whip_publisher_in_ws_room),
        ("WHEP viewer follows the next publisher", test_whep_follows_next_publisher),
    ]
    # Simulcast, with headless Chromium (the bundled client) on one end.
    # INTEROP_BROWSER=0 leaves them out.
    if BROWSER:
        tests += [
            ("Chromium simulcast publisher -> GStreamer + aiortc WHEP", test_chromium_simulcast_to_whep_viewers),
            ("GStreamer simulcast WHIP publisher -> Chromium", test_gst_simulcast_whip_to_chromium),
        ]
    main_srv = Server(a.cascade, "main", [])
    auth_srv = Server(a.cascade, "auth", ["--api-key", API_KEY, "--api-secret", API_SECRET,
                                          "--ice-server", "stun:127.0.0.1:3478",
                                          "--ice-server", "turn:127.0.0.1:3478?transport=udp"])
    try:
        try:
            await main_srv.start()
            ctx.server = main_srv
        except Failure as e:
            print("FAIL server start: %s\n%s" % (e, main_srv.log_tail()), flush=True)
            ctx.failed += 1
        if ctx.server:
            for name, fn in tests:
                if want and not want.search(name):
                    continue
                await ctx.record(name, lambda fn=fn: fn(ctx), timeout=120)
            if not want or want.search("http"):
                await HttpChecks(ctx).run()
        if not want or want.search("auth"):
            ctx.server = None
            try:
                await auth_srv.start()
                ctx.server = auth_srv
                await ctx.record("http: access tokens 401/403, --ice-server Link headers", lambda: test_auth_and_links(ctx, auth_srv), timeout=60)
            except Failure as e:
                print("FAIL auth server start: %s\n%s" % (e, auth_srv.log_tail()), flush=True)
                ctx.failed += 1
    finally:
        await ctx.cleanup_roles()
        await main_srv.stop()
        await auth_srv.stop()
    print("interop versions: " + ", ".join("%s %s" % kv for kv in v.items()))
    if ctx.failures:
        print("failed: " + "; ".join(ctx.failures))
    print("interop: %d passed, %d failed" % (ctx.passed, ctx.failed), flush=True)
    return 1 if ctx.failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
