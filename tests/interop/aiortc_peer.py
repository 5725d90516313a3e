"""aiortc roles for the Cascade interop tests (run with the venv's python).

    whip-publish  publish a moving test pattern (VP8) and a tone (Opus) via WHIP
    whep-view     receive via WHEP and count decoded frames
    ws            a participant speaking docs/PROTOCOL.md over the WebSocket:
                  optionally publishes like whip-publish, always answers the
                  server's subscribe offers and counts decoded frames per
                  publisher; reports every server message it got
    offer         print a real recvonly/sendonly SDP offer (for the HTTP checks)

Every role reports through `@event {json}` lines on stdout (see httpc.emit),
ends with an `@event {"event": "result", ...}` line and is bounded in time.

aioice (the ICE stack under aiortc) never gathers 127.0.0.1; the tests run in
a network namespace that has nothing but loopback, so host candidate
gathering is patched to offer exactly 127.0.0.1.
"""

import argparse
import array
import asyncio
import fractions
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import aioice.ice  # noqa: E402
import av  # noqa: E402
from aiortc import (  # noqa: E402
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack  # noqa: E402

import httpc  # noqa: E402
from httpc import emit  # noqa: E402


def _loopback_host_addresses(use_ipv4, use_ipv6):
    return ["127.0.0.1"] if use_ipv4 else []


aioice.ice.get_host_addresses = _loopback_host_addresses


def new_pc():
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


# ---------------------------------------------------------------- sources


class PatternTrack(VideoStreamTrack):
    """A bright vertical bar sweeping over a grey background, 30 fps."""

    def __init__(self, width, height):
        super().__init__()
        self.width, self.height = width, height
        self.frames = 0

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        w, h = self.width, self.height
        frame = av.VideoFrame(w, h, "yuv420p")
        y, u, v = frame.planes
        bar = max(2, w // 8)
        x0 = (self.frames * 4) % (w - bar)
        row = bytes([90]) * x0 + bytes([235]) * bar + bytes([90]) * (w - bar - x0)
        row += bytes(y.line_size - w)
        y.update(row * h)
        for p in (u, v):
            p.update(bytes([128]) * (p.line_size * (h // 2)))
        frame.pts, frame.time_base = pts, time_base
        self.frames += 1
        return frame


class ToneTrack(MediaStreamTrack):
    """A 400 Hz tone, 20 ms frames of 48 kHz mono."""

    kind = "audio"
    RATE, SAMPLES = 48000, 960

    def __init__(self):
        super().__init__()
        self._pcm = array.array(
            "h", (int(8000 * math.sin(2 * math.pi * 400 * i / self.RATE)) for i in range(self.SAMPLES))
        ).tobytes()
        self._start = None
        self._ts = 0

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.time()
        else:
            self._ts += self.SAMPLES
            await asyncio.sleep(max(0, self._start + self._ts / self.RATE - time.time()))
        frame = av.AudioFrame(format="s16", layout="mono", samples=self.SAMPLES)
        frame.planes[0].update(self._pcm)
        frame.pts = self._ts
        frame.sample_rate = self.RATE
        frame.time_base = fractions.Fraction(1, self.RATE)
        return frame


def add_publish_tracks(pc, width, height, audio):
    video = pc.addTransceiver(PatternTrack(width, height), direction="sendonly")
    caps = RTCRtpSender.getCapabilities("video").codecs
    video.setCodecPreferences([c for c in caps if c.mimeType in ("video/VP8", "video/rtx")])
    if audio:
        pc.addTransceiver(ToneTrack(), direction="sendonly")


# ---------------------------------------------------------------- sinks


class FrameCounter:
    """Counts decoded frames per (label, kind) and video sizes."""

    def __init__(self):
        self.counts = {}
        self.sizes = {}
        self.tasks = []

    def consume(self, track, label):
        async def run():
            key = "%s/%s" % (label, track.kind)
            self.counts.setdefault(key, 0)
            while True:
                try:
                    frame = await track.recv()
                except MediaStreamError:
                    return
                self.counts[key] += 1
                if track.kind == "video":
                    size = "%dx%d" % (frame.width, frame.height)
                    self.sizes.setdefault(key, {}).setdefault(size, 0)
                    self.sizes[key][size] += 1

        self.tasks.append(asyncio.ensure_future(run()))

    def snapshot(self):
        return {"counts": dict(self.counts), "sizes": json.loads(json.dumps(self.sizes))}

    async def progress(self, every=1.0):
        while True:
            await asyncio.sleep(every)
            emit("progress", **self.snapshot())


def watch_state(pc, label):
    @pc.on("connectionstatechange")
    def _():
        emit("state", pc=label, state=pc.connectionState)


async def wait_connected(pc, timeout):
    end = time.monotonic() + timeout
    while pc.connectionState != "connected":
        if pc.connectionState in ("failed", "closed"):
            raise RuntimeError("connection %s" % pc.connectionState)
        if time.monotonic() > end:
            raise RuntimeError("not connected after %.0fs (state %s)" % (timeout, pc.connectionState))
        await asyncio.sleep(0.05)


async def hold(duration, stop_on_stdin):
    """Sleep `duration` seconds, or less when --stop-on-stdin is given and
    stdin reaches EOF (the orchestrator closes it to stop a role early)."""
    if not stop_on_stdin:
        await asyncio.sleep(duration)
        return
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    fd = sys.stdin.fileno()

    def readable():
        if not os.read(fd, 4096):
            loop.remove_reader(fd)
            stop.set()

    loop.add_reader(fd, readable)
    try:
        await asyncio.wait_for(stop.wait(), duration)
    except asyncio.TimeoutError:
        pass
    finally:
        loop.remove_reader(fd)


# ---------------------------------------------------------------- roles


async def whip_publish(a):
    pc = new_pc()
    watch_state(pc, "whip")
    add_publish_tracks(pc, a.width, a.height, not a.no_audio)
    await pc.setLocalDescription(await pc.createOffer())  # gathers completely
    answer, session, etag = await asyncio.to_thread(
        httpc.post_offer, a.url, pc.localDescription.sdp, a.token
    )
    emit("published", session=session, etag=etag)
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    await wait_connected(pc, 15)
    emit("connected")
    await hold(a.duration, a.stop_on_stdin)
    sent = pc.getTransceivers()[0].sender.track.frames
    status = None
    if not a.no_delete:
        status = (await asyncio.to_thread(httpc.delete, session, a.token)).status
    await pc.close()
    emit("result", ok=True, frames_sent=sent, delete_status=status)


async def whep_view(a):
    pc = new_pc()
    watch_state(pc, "whep")
    counter = FrameCounter()
    pc.on("track", lambda track: counter.consume(track, "whep"))
    if not a.no_video:
        pc.addTransceiver("video", direction="recvonly")
    if not a.no_audio:
        pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    answer, session, etag = await asyncio.to_thread(
        httpc.post_offer, a.url, pc.localDescription.sdp, a.token
    )
    emit("published", session=session, etag=etag)
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    await wait_connected(pc, 15)
    emit("connected")
    prog = asyncio.ensure_future(counter.progress())
    await hold(a.duration, a.stop_on_stdin)
    prog.cancel()
    status = (await asyncio.to_thread(httpc.delete, session, a.token)).status
    await pc.close()
    emit("result", ok=True, delete_status=status, **counter.snapshot())


async def ws_participant(a):
    import websockets

    messages = []
    counter = FrameCounter()
    pub = None
    sub = None
    mids = {}  # subscribe mid -> publisher participant id
    published = asyncio.get_running_loop().create_future()

    async with websockets.connect(a.ws, open_timeout=10, max_size=2**20) as ws:

        async def send(**msg):
            await ws.send(json.dumps(msg))

        await send(type="join", version=1, room=a.room, name=a.name)

        async def start_publish():
            nonlocal pub
            pub = new_pc()
            watch_state(pub, "publish")
            add_publish_tracks(pub, a.width, a.height, not a.no_audio)
            await pub.setLocalDescription(await pub.createOffer())
            await send(type="publish_offer", sdp=pub.localDescription.sdp)

        async def on_subscribe_offer(msg):
            nonlocal sub
            for t in msg.get("tracks", []):
                mids[t["mid"]] = t["participant_id"]
            if sub is None:
                sub = new_pc()
                watch_state(sub, "subscribe")

                @sub.on("track")
                def on_track(track):
                    tr = next(t for t in sub.getTransceivers() if t.receiver.track is track)
                    counter.consume(track, mids.get(tr.mid, "mid" + str(tr.mid)))

            await sub.setRemoteDescription(RTCSessionDescription(msg["sdp"], "offer"))
            await sub.setLocalDescription(await sub.createAnswer())
            await send(type="subscribe_answer", sdp=sub.localDescription.sdp)

        async def reader():
            async for raw in ws:
                msg = json.loads(raw)
                t = msg.get("type")
                messages.append(msg)
                brief = {k: v for k, v in msg.items() if k not in ("sdp",)}
                emit("ws", msg=brief)
                if t == "joined":
                    if a.publish:
                        await start_publish()
                elif t == "publish_answer":
                    await pub.setRemoteDescription(RTCSessionDescription(msg["sdp"], "answer"))
                    if not published.done():
                        published.set_result(True)
                elif t == "subscribe_offer":
                    await on_subscribe_offer(msg)
                elif t == "error":
                    emit("ws_error", msg=msg)

        rd = asyncio.ensure_future(reader())
        prog = asyncio.ensure_future(counter.progress())
        try:
            if a.publish:
                await asyncio.wait_for(asyncio.shield(published), 15)
                await wait_connected(pub, 15)
                emit("connected")
            held = asyncio.ensure_future(hold(a.duration, a.stop_on_stdin))
            await asyncio.wait({rd, held}, return_when=asyncio.FIRST_COMPLETED)
            held.cancel()
            if rd.done():
                rd.result()  # raises what ended the reader
                raise RuntimeError("server closed the WebSocket early")
            await send(type="leave")
        finally:
            prog.cancel()
            rd.cancel()
    for pc in (pub, sub):
        if pc:
            await pc.close()
    types = [m.get("type") for m in messages]
    emit("result", ok=True, types=types, messages=[
        {k: v for k, v in m.items() if k != "sdp"} for m in messages
    ], **counter.snapshot())


async def offer(a):
    pc = new_pc()
    if a.send:
        add_publish_tracks(pc, 320, 240, True)
    else:
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    sys.stdout.write(pc.localDescription.sdp)
    await pc.close()


def main():
    ap = argparse.ArgumentParser()
    sp = ap.add_subparsers(dest="role", required=True)
    for name in ("whip-publish", "whep-view", "ws", "offer"):
        p = sp.add_parser(name)
        p.add_argument("--url")
        p.add_argument("--ws")
        p.add_argument("--room", default="interop")
        p.add_argument("--name", default="aiortc")
        p.add_argument("--token")
        p.add_argument("--duration", type=float, default=8)
        p.add_argument("--width", type=int, default=320)
        p.add_argument("--height", type=int, default=240)
        p.add_argument("--no-audio", action="store_true")
        p.add_argument("--no-video", action="store_true")
        p.add_argument("--no-delete", action="store_true")
        p.add_argument("--publish", action="store_true")
        p.add_argument("--send", action="store_true")
        p.add_argument("--stop-on-stdin", action="store_true")
    a = ap.parse_args()
    role = {"whip-publish": whip_publish, "whep-view": whep_view, "ws": ws_participant, "offer": offer}[a.role]
    try:
        asyncio.run(asyncio.wait_for(role(a), a.duration + 45))
    except Exception as e:  # report, don't hang
        emit("result", ok=False, error="%s: %s" % (type(e).__name__, e))
        sys.exit(1)


if __name__ == "__main__":
    main()
