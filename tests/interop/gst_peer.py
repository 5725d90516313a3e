"""GStreamer webrtcbin roles for the Cascade interop tests.

Run with Debian's /usr/bin/python3 (python3-gi and the GStreamer typelibs
belong to it), not the venv.

    whip-publish  videotestsrc ! vp8enc ! rtpvp8pay ! webrtcbin (+ Opus tone)
                  via WHIP; with --simulcast q,h,f one vp8enc per layer,
                  sent as simulcast with rids on one transceiver
    whep-view     webrtcbin with recvonly transceivers via WHEP; decodebin and
                  a fakesink per stream count decoded frames
    version       print the GStreamer and libnice versions as JSON

Non-trickle: the offer is POSTed once ICE gathering is complete. Reports
through `@event {json}` lines like aiortc_peer.py, bounded in time.
"""

import argparse
import json
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gi  # noqa: E402

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstRtp", "1.0")
gi.require_version("Nice", "0.1")
from gi.repository import GLib, Gst, GstRtp, GstSdp, GstWebRTC, Nice  # noqa: E402

import httpc  # noqa: E402
from httpc import emit  # noqa: E402

VP8_CAPS = "application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000"
OPUS_CAPS = "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000,encoding-params=(string)2"


class Peer:
    """One webrtcbin in a pipeline, negotiated with a WHIP/WHEP endpoint."""

    def __init__(self, args):
        self.args = args
        self.loop = GLib.MainLoop()
        self.result = None
        self.session = None
        self.counts = {}
        self.sizes = {}
        self.lock = threading.Lock()
        self.connected = False
        self.pipe = None
        self.webrtc = None
        self.fingerprint = None

    # ----------------------------------------------------------- plumbing

    def fail(self, msg):
        if self.result is None:
            self.result = {"ok": False, "error": msg}
        self.loop.quit()

    def finish(self):
        if self.result is None:
            self.result = {"ok": True}
        self.loop.quit()

    def on_bus(self, bus, msg):
        if msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            self.fail("GStreamer error from %s: %s (%s)" % (msg.src.get_name(), err.message, dbg))
        elif msg.type == Gst.MessageType.WARNING:
            err, dbg = msg.parse_warning()
            emit("gst_warning", src=msg.src.get_name(), message=err.message)
        return True

    def setup_webrtc(self):
        self.webrtc = self.pipe.get_by_name("webrtc")
        self.webrtc.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
        # libnice leaves out loopback addresses and, in a namespace that has
        # nothing else, gathers no candidate and never completes: hand it
        # 127.0.0.1 explicitly (needs gir1.2-nice-0.1).
        self.ice = self.webrtc.get_property("ice-agent")
        self.nice_agent = self.ice.get_property("agent")
        addr = Nice.Address.new()
        addr.set_from_string("127.0.0.1")
        self.nice_agent.add_local_address(addr)
        self.webrtc.connect("on-negotiation-needed", self.on_negotiation_needed)
        self.webrtc.connect("notify::ice-gathering-state", self.on_gathering)
        self.webrtc.connect("notify::ice-connection-state", self.on_ice_state)
        self.webrtc.connect("notify::connection-state", self.on_conn_state)
        if self.args.ecdsa_cert:
            self.use_ecdsa_certificate()
        self.pipe.get_bus().add_signal_watch()
        self.pipe.get_bus().connect("message", self.on_bus)

    def use_ecdsa_certificate(self):
        """Give webrtcbin's DTLS an ECDSA P-256 certificate instead of the RSA
        one GStreamer generates. (webrtcbin has no API for it: set the `pem`
        of each dtlssrtpdec as webrtcbin adds it, before it reads the
        fingerprint for the offer.)"""
        import subprocess

        key = subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout"],
                             capture_output=True, check=True, timeout=30).stdout
        cert = subprocess.run(["openssl", "req", "-new", "-x509", "-key", "/dev/stdin", "-days", "2",
                               "-subj", "/CN=interop"], input=key, capture_output=True, check=True,
                              timeout=30).stdout
        pem = (cert + key).decode()

        def visit(element):
            factory = element.get_factory()
            if factory is not None and factory.get_name() == "dtlssrtpdec":
                element.set_property("pem", pem)
                # The DTLS connection was made with the old certificate when
                # the connection id was set: set it again to remake it.
                cid = element.get_property("connection-id")
                if cid:
                    element.set_property("connection-id", cid)
                fp = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256"], input=cert,
                                    capture_output=True, timeout=30).stdout.decode().strip()
                self.fingerprint = fp.split("=", 1)[1]
                emit("ecdsa_certificate", element=element.get_name(), fingerprint=fp)
            if isinstance(element, Gst.Bin):
                for child in element.children:
                    visit(child)

        self.webrtc.connect("element-added", lambda _bin, el: visit(el))

    def on_negotiation_needed(self, element):
        promise = Gst.Promise.new_with_change_func(self.on_offer_created, element, None)
        element.emit("create-offer", None, promise)

    def on_offer_created(self, promise, element, _):
        promise.wait()
        reply = promise.get_reply()
        offer = reply.get_value("offer")
        if offer is None:
            GLib.idle_add(self.fail, "create-offer failed: %s" % reply.to_string())
            return
        element.emit("set-local-description", offer, Gst.Promise.new())

    def on_gathering(self, element, _pspec):
        state = element.get_property("ice-gathering-state")
        if state == GstWebRTC.WebRTCICEGatheringState.COMPLETE and self.session is None:
            GLib.idle_add(self.post_offer)

    def post_offer(self):
        if self.session is not None:
            return False
        offer = self.webrtc.get_property("local-description").sdp.as_text()
        if self.fingerprint:
            # webrtcbin computed the offer's fingerprint from its RSA
            # certificate before use_ecdsa_certificate() swapped it.
            offer = re.sub(r"(?m)^a=fingerprint:.*$", "a=fingerprint:sha-256 " + self.fingerprint, offer)
        emit("offer", candidates=[l for l in offer.splitlines() if l.startswith("a=candidate")],
             fingerprints=sorted({l for l in offer.splitlines() if l.startswith("a=fingerprint")}),
             **({"sdp": offer} if getattr(self.args, "simulcast", None) else {}))
        try:
            answer, self.session, etag = httpc.post_offer(self.args.url, offer, self.args.token)
        except Exception as e:
            self.session = ""
            self.fail(str(e))
            return False
        emit("published", session=self.session, etag=etag,
             **({"answer": answer} if getattr(self.args, "simulcast", None) else {}))
        res, sdp = GstSdp.SDPMessage.new_from_text(answer)
        if res != GstSdp.SDPResult.OK:
            self.fail("cannot parse answer SDP")
            return False
        desc = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, sdp)
        self.webrtc.emit("set-remote-description", desc, Gst.Promise.new())
        return False

    def on_ice_state(self, element, _pspec):
        emit("state", what="ice", state=element.get_property("ice-connection-state").value_nick)

    def on_conn_state(self, element, _pspec):
        state = element.get_property("connection-state")
        emit("state", what="pc", state=state.value_nick)
        if state == GstWebRTC.WebRTCPeerConnectionState.CONNECTED and not self.connected:
            self.connected = True
            GLib.idle_add(self.on_connected)
        elif state == GstWebRTC.WebRTCPeerConnectionState.FAILED:
            GLib.idle_add(self.fail, "peer connection failed")

    def on_connected(self):
        emit("connected")
        GLib.timeout_add(int(self.args.duration * 1000), self.finish)
        if self.args.stop_on_stdin:
            GLib.io_add_watch(sys.stdin.fileno(), GLib.PRIORITY_DEFAULT, GLib.IO_IN | GLib.IO_HUP, self.on_stdin)
        return False

    def on_stdin(self, fd, _cond):
        if not os.read(fd, 4096):
            self.finish()
            return False
        return True

    def check_connected(self):
        if not self.connected:
            self.fail("not connected after 15s")
        return False

    def run(self):
        GLib.timeout_add(15000, self.check_connected)
        GLib.timeout_add(int((self.args.duration + 40) * 1000), self.fail, "timed out")
        self.pipe.set_state(Gst.State.PLAYING)
        self.loop.run()
        status = None
        if self.session and not self.args.no_delete:
            try:
                status = httpc.delete(self.session, self.args.token).status
            except Exception as e:
                status = str(e)
        self.pipe.set_state(Gst.State.NULL)
        with self.lock:
            self.result.update(delete_status=status, counts=dict(self.counts), sizes=dict(self.sizes))
        return self.result


# Header extension ids of the simulcast publisher (the offer's a=extmap).
EXT_MID, EXT_RID = 1, 2
URI_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
URI_RID = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"


def simulcast_layers(a):
    """[(rid, width, height, ssrc, bitrate)] for --simulcast, in the order
    given (low to high): the last layer at --width x --height, each one
    below at half the size of the next."""
    rids = [r for r in a.simulcast.split(",") if r]
    n = len(rids)
    out = []
    for i, rid in enumerate(rids):
        div = 2 ** (n - 1 - i)
        w, h = a.width // div, a.height // div
        out.append((rid, w - w % 2, h - h % 2, 0x51C0000 + i, max(100_000, 1_200_000 // (div * div))))
    return out


def simulcast_video(a):
    """One VP8 transceiver sending every layer with its own SSRC, each packet
    carrying the mid and rid header extensions: payloaders into an
    rtpfunnel, whose output caps carry the a=rid / a=simulcast / a=extmap
    lines webrtcbin (1.22) puts into the offer (rid-<id>, a-simulcast,
    extmap-<n>, a-mid caps fields; webrtcbin's own test_simulcast does the
    same)."""
    layers = simulcast_layers(a)
    rids = [l[0] for l in layers]
    caps = VP8_CAPS + ",a-mid=(string)video0,extmap-{m}=(string){um},extmap-{r}=(string){ur}".format(
        m=EXT_MID, um=URI_MID, r=EXT_RID, ur=URI_RID)
    caps += "".join(",rid-%s=(string)send" % rid for rid in rids)
    caps += ',a-simulcast=(string)"send %s"' % ";".join(rids)
    desc = (
        "rtpfunnel name=funnel ! capsfilter name=simulcast_caps ! webrtc. "
        "videotestsrc is-live=true pattern=ball ! video/x-raw,width={w},height={h},framerate=30/1 ! "
        "videoconvert ! tee name=split "
    ).format(w=a.width, h=a.height)
    for rid, w, h, ssrc, rate in layers:
        desc += (
            "split. ! queue ! videoscale ! video/x-raw,width={w},height={h} ! "
            "vp8enc deadline=1 keyframe-max-dist=60 target-bitrate={rate} ! "
            "rtpvp8pay name=pay_{rid} picture-id-mode=15-bit ! {vcaps},ssrc=(uint){ssrc} ! funnel. "
        ).format(rid=rid, w=w, h=h, rate=rate, vcaps=VP8_CAPS, ssrc=ssrc)
    return desc, layers, Gst.Caps.from_string(caps)


def add_simulcast_extensions(p, layers):
    for rid, *_ in layers:
        pay = p.pipe.get_by_name("pay_" + rid)
        for uri, ext_id, prop in ((URI_MID, EXT_MID, ("mid", "video0")), (URI_RID, EXT_RID, ("rid", rid))):
            ext = GstRtp.RTPHeaderExtension.create_from_uri(uri)
            if ext is None:
                raise RuntimeError("no GStreamer RTP header extension for %s" % uri)
            ext.set_id(ext_id)
            ext.set_property(*prop)
            pay.emit("add-extension", ext)


def whip_publish(a):
    p = Peer(a)
    layers = None
    if a.simulcast:
        video, layers, sim_caps = simulcast_video(a)
        desc = "webrtcbin name=webrtc " + video
    else:
        desc = (
            "webrtcbin name=webrtc "
            "videotestsrc is-live=true pattern=ball ! video/x-raw,width={w},height={h},framerate=30/1 ! "
            "videoconvert ! queue ! vp8enc deadline=1 keyframe-max-dist=60 target-bitrate=600000 ! "
            "rtpvp8pay picture-id-mode=15-bit ! {vcaps} ! webrtc. "
        ).format(w=a.width, h=a.height, vcaps=VP8_CAPS)
    if not a.no_audio:
        desc += (
            "audiotestsrc is-live=true wave=sine freq=400 ! audioconvert ! audioresample ! "
            "queue ! opusenc ! rtpopuspay ! {acaps} ! webrtc. "
        ).format(acaps=OPUS_CAPS)
    p.pipe = Gst.parse_launch(desc)
    if layers:
        p.pipe.get_by_name("simulcast_caps").set_property("caps", sim_caps)
        add_simulcast_extensions(p, layers)
        emit("simulcast", layers=[{"rid": r, "width": w, "height": h, "ssrc": ss, "bitrate": b} for r, w, h, ss, b in layers])
    p.setup_webrtc()
    # Publish only: make every transceiver sendonly before the offer is made.
    # (on-negotiation-needed fires from PLAYING, after the pads are linked.)
    orig = p.on_negotiation_needed

    def sendonly_then_offer(element):
        for i in range(8):
            t = element.emit("get-transceiver", i)
            if t is None:
                break
            t.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
        orig(element)

    p.webrtc.disconnect_by_func(p.on_negotiation_needed)
    p.webrtc.connect("on-negotiation-needed", sendonly_then_offer)
    return p.run()


def whep_view(a):
    p = Peer(a)
    p.pipe = Gst.Pipeline.new("whep")
    webrtc = Gst.ElementFactory.make("webrtcbin", "webrtc")
    p.pipe.add(webrtc)
    p.setup_webrtc()
    recvonly = GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY
    if not a.no_video:
        webrtc.emit("add-transceiver", recvonly, Gst.Caps.from_string(VP8_CAPS))
    if not a.no_audio:
        webrtc.emit("add-transceiver", recvonly, Gst.Caps.from_string(OPUS_CAPS))

    def on_handoff(sink, buf, pad, key):
        with p.lock:
            p.counts[key] = p.counts.get(key, 0) + 1
            if key == "video":
                s = pad.get_current_caps().get_structure(0)
                size = "%dx%d" % (s.get_value("width"), s.get_value("height"))
                p.sizes[size] = p.sizes.get(size, 0) + 1

    def on_decoded_pad(_dbin, pad):
        caps = pad.get_current_caps() or pad.query_caps(None)
        name = caps.get_structure(0).get_name()
        if name.startswith("video/"):
            key, conv = "video", "videoconvert"
        elif name.startswith("audio/"):
            key, conv = "audio", "audioconvert"
        else:
            return
        q = Gst.ElementFactory.make("queue")
        c = Gst.ElementFactory.make(conv)
        sink = Gst.ElementFactory.make("fakesink")
        sink.set_property("sync", False)
        sink.set_property("signal-handoffs", True)
        sink.connect("handoff", on_handoff, key)
        for e in (q, c, sink):
            p.pipe.add(e)
            e.sync_state_with_parent()
        q.link(c)
        c.link(sink)
        pad.link(q.get_static_pad("sink"))
        emit("decoding", kind=key, caps=caps.to_string())

    def on_incoming(_webrtc, pad):
        if pad.direction != Gst.PadDirection.SRC:
            return
        dbin = Gst.ElementFactory.make("decodebin")
        dbin.connect("pad-added", on_decoded_pad)
        p.pipe.add(dbin)
        dbin.sync_state_with_parent()
        pad.link(dbin.get_static_pad("sink"))

    webrtc.connect("pad-added", on_incoming)

    def progress():
        with p.lock:
            emit("progress", counts=dict(p.counts), sizes=dict(p.sizes))
        return True

    GLib.timeout_add(1000, progress)
    return p.run()


def version(_a):
    gi.require_version("GstWebRTC", "1.0")
    nice = Gst.Registry.get().find_plugin("nice")
    out = {
        "gstreamer": Gst.version_string(),
        "webrtcbin": Gst.Registry.get().find_plugin("webrtc").get_version(),
        "libnice_gst_plugin": nice.get_version() if nice else None,
        "gst_python": sys.version.split()[0],
    }
    print(json.dumps(out))
    return {"ok": True}


def main():
    ap = argparse.ArgumentParser()
    sp = ap.add_subparsers(dest="role", required=True)
    for name in ("whip-publish", "whep-view", "version"):
        p = sp.add_parser(name)
        p.add_argument("--url")
        p.add_argument("--token")
        p.add_argument("--duration", type=float, default=8)
        p.add_argument("--width", type=int, default=320)
        p.add_argument("--height", type=int, default=240)
        p.add_argument("--no-audio", action="store_true")
        p.add_argument("--no-video", action="store_true")
        p.add_argument("--no-delete", action="store_true")
        p.add_argument("--stop-on-stdin", action="store_true")
        p.add_argument("--simulcast", metavar="RIDS",
                       help="whip-publish: send the video as simulcast layers with these rids, low to high (e.g. q,h,f)")
        p.add_argument("--ecdsa-cert", action="store_true",
                       help="replace webrtcbin's RSA DTLS certificate by an ECDSA P-256 one")
    a = ap.parse_args()
    Gst.init(None)
    role = {"whip-publish": whip_publish, "whep-view": whep_view, "version": version}[a.role]
    result = role(a)
    if a.role != "version":
        emit("result", **result)
    sys.exit(0 if result.get("ok") else 1)


if __name__ == "__main__":
    main()
