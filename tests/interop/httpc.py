"""Tiny WHIP/WHEP HTTP client on the standard library only.

Shared by the aiortc roles (venv python), the GStreamer roles (Debian's
/usr/bin/python3, which has no third-party HTTP client) and the HTTP
semantics checks. Every request has a timeout.
"""

import http.client
import json
import sys
import urllib.parse


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # list of (name, value), names as sent
        self.body = body  # bytes

    def header(self, name):
        """First value of a header (case-insensitive), or None."""
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "<%d %s %r>" % (self.status, dict(self.headers), self.body[:200])


def request(method, url, body=None, headers=None, timeout=10.0):
    """Send one request; return a Response. `url` is absolute (http://...)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    path = u.path + ("?" + u.query if u.query else "")
    if isinstance(body, str):
        body = body.encode("utf-8")
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, r.getheaders(), data)
    finally:
        conn.close()


def resolve(base, location):
    """Absolute URL of a Location header (relative to the request URL)."""
    return urllib.parse.urljoin(base, location)


def post_offer(url, sdp, token=None, timeout=10.0):
    """WHIP/WHEP POST of an SDP offer. Returns (answer_sdp, session_url, etag)
    and raises RuntimeError with the full response on anything but 201."""
    headers = {"Content-Type": "application/sdp"}
    if token:
        headers["Authorization"] = "Bearer " + token
    r = request("POST", url, sdp, headers, timeout)
    if r.status != 201:
        raise RuntimeError("POST %s -> %d %s" % (url, r.status, r.text.strip()))
    loc = r.header("Location")
    if not loc:
        raise RuntimeError("POST %s -> 201 without Location" % url)
    return r.text, resolve(url, loc), r.header("ETag")


def delete(session_url, token=None, timeout=10.0):
    headers = {}
    if token:
        headers["Authorization"] = "Bearer " + token
    return request("DELETE", session_url, None, headers, timeout)


def emit(kind, **fields):
    """One machine-readable line for the orchestrator (tests/interop/interop.py)."""
    fields["event"] = kind
    sys.stdout.write("@event " + json.dumps(fields) + "\n")
    sys.stdout.flush()
