#!/usr/bin/python3
"""invicti_sim: a simulator of the Invicti Platform / Acunetix scan API (v1).

What it is for
    Every test, benchmark and demo of the invicti_scan PostgreSQL extension
    talks to this server instead of a real Invicti instance (none is reachable
    from the build machines).  It implements, over real HTTP/1.1 on loopback,
    what a client of the API calls: launch, monitor (both known response
    shapes), abort / pause / resume / delete, results, vulnerabilities, lists
    with both pagination styles, targets, scanning profiles and /me.  Scans
    follow a deterministic timeline measured in "time units" whose length is
    configurable, so a multi-hour scan can run in a second.

    A second, plain-HTTP listener (the control API, paths /_sim/...) lets
    tests add targets, inject faults (latency, error statuses, dropped or
    truncated responses, garbage, HTML, huge or slow bodies), simulate an
    outage (connection refused), pin scan states, and read the request log.

What it must never do
    * Listen anywhere but the address it is given (default 127.0.0.1), or
      call out to the network.
    * Log, echo or return the X-Auth token (or any configured token) in any
      response, log entry, log file or error message.
    * Depend on anything outside the Python 3.11 standard library.
    * Be the bottleneck of a benchmark: the hot path (GET of a scan) is a
      hand-written asyncio.Protocol with cached response bodies.
    * Behave non-deterministically where tests need determinism: every random
      choice comes from a random.Random seeded by --seed.

Run it with /usr/bin/python3 test/simulator/invicti_sim.py --help.
See test/simulator/README.md for the control API and fault rules.
"""

import argparse
import asyncio
import base64
import bisect
import hashlib
import json
import os
import random
import re
import signal
import socket
import ssl
import struct
import sys
import time
import uuid
from datetime import datetime, timezone
from email.utils import formatdate
from http import HTTPStatus
from typing import NamedTuple
from urllib.parse import parse_qs

# ---------------------------------------------------------------------------
# Constants: built-in data, statuses, vulnerability catalogue
# ---------------------------------------------------------------------------

BUILTIN_TARGET_ID = "2df49409-ee21-4080-9640-eb46f4610054"
BUILTIN_TARGET = {
    "target_id": BUILTIN_TARGET_ID,
    "address": "https://demo.testfire.net",
    "description": "Built-in demo target",
    "criticality": 10,
    "outcome": "completed",
    "duration_scale": 1.0,
}

SCANNING_PROFILES = [
    ("11111111-1111-1111-1111-111111111111", "Full Scan"),
    ("11111111-1111-1111-1111-111111111112", "High Risk"),
    ("11111111-1111-1111-1111-111111111113", "SQL Injection"),
    ("11111111-1111-1111-1111-111111111115", "Weak Passwords"),
    ("11111111-1111-1111-1111-111111111116", "Cross-site Scripting"),
    ("11111111-1111-1111-1111-111111111117", "Crawl Only"),
]
PROFILE_NAMES = dict(SCANNING_PROFILES)

OUTCOMES = ("completed", "failed", "aborted", "paused", "unknown", "stuck_unknown")
TERMINAL = frozenset(("completed", "failed", "aborted"))
PRE_SESSION = frozenset(("scheduled", "queued"))
UNKNOWN_STATUS = "under_review"   # a status no client knows

SEVERITY_KEYS = ("critical", "high", "medium", "low", "info")
SEVERITY_LEVEL = {"critical": 4, "high": 3, "medium": 2, "low": 1, "info": 0}
SEVERITY_MAX = {"critical": 3, "high": 6, "medium": 8, "low": 10, "info": 12}
PROGRESS_PER_UNIT = 9.9   # processing runs 0 -> 99 over 10 time units

# (vt_name, severity, tags, parameter or "", impact)
VULN_TYPES = [
    ("SQL injection", 4, ["CWE-89", "sql_injection"], "username",
     "An attacker can read or modify the database."),
    ("Blind SQL injection", 4, ["CWE-89", "sql_injection"], "id",
     "An attacker can infer database contents."),
    ("OS command injection", 4, ["CWE-78", "code_execution"], "host",
     "An attacker can run commands on the server."),
    ("XML external entity injection", 4, ["CWE-611", "xxe"], "xml",
     "An attacker can read local files."),
    ("Cross-site scripting", 3, ["CWE-79", "xss"], "q",
     "An attacker can run script in a victim's browser."),
    ("Directory traversal", 3, ["CWE-22", "path_traversal"], "file",
     "An attacker can read arbitrary files."),
    ("Server-side request forgery", 3, ["CWE-918", "ssrf"], "url",
     "An attacker can reach internal services."),
    ("Weak password", 3, ["CWE-521", "weak_credentials"], "password",
     "An attacker can guess a valid password."),
    ("Cross-site request forgery", 2, ["CWE-352", "csrf"], "",
     "An attacker can act on behalf of a victim."),
    ("Vulnerable JavaScript libraries", 2, ["CWE-1104", "outdated_software"], "",
     "Known vulnerabilities in a client-side library."),
    ("Application error message", 2, ["CWE-209", "error_handling"], "id",
     "Error messages disclose internal details."),
    ("Directory listing", 2, ["CWE-548", "information_disclosure"], "",
     "Directory contents are visible."),
    ("TLS 1.0 enabled", 2, ["CWE-327", "tls"], "",
     "A deprecated protocol version is accepted."),
    ("Clickjacking: X-Frame-Options header missing", 1, ["CWE-1021"], "",
     "The site can be framed by another site."),
    ("Cookies without Secure flag set", 1, ["CWE-614"], "",
     "Cookies may be sent over plain HTTP."),
    ("Cookies without HttpOnly flag set", 1, ["CWE-1004"], "",
     "Cookies are readable from script."),
    ("HTTP Strict Transport Security (HSTS) not implemented", 1, ["CWE-523"], "",
     "Connections can be downgraded."),
    ("Login page password-guessing attack", 1, ["CWE-307"], "username",
     "No rate limit on login attempts."),
    ("Content Security Policy (CSP) not implemented", 0, ["CWE-1021"], "",
     "No CSP header: less defence in depth."),
    ("Email addresses", 0, ["CWE-200"], "",
     "Email addresses are published."),
    ("Password type input with auto-complete enabled", 0, ["CWE-200"], "password",
     "Browsers may store the password."),
    ("Reverse proxy detected", 0, ["CWE-200"], "",
     "The site sits behind a reverse proxy."),
    ("Web server version disclosure", 0, ["CWE-200"], "",
     "The server announces its version."),
]
VULN_TYPES_BY_SEVERITY = {
    level: [vt for vt in VULN_TYPES if vt[1] == level] for level in range(5)}
VULN_PATHS = ["/login", "/search", "/admin/index.php", "/api/items", "/cart",
              "/profile/edit", "/download", "/feedback", "/", "/static/js/app.js"]
VULN_STATUSES = ["open"] * 17 + ["fixed", "ignored", "false_positive"]

ME = {
    "user_id": "0b5a55e6-4b1e-4b8c-9a43-5f0d2c1e7a10",
    "email": "simulator@invicti.test",
    "first_name": "Invicti",
    "last_name": "Simulator",
    "company": "invicti_sim",
    "role": "master",
    "enabled": True,
    "totp_enabled": False,
}

PROXY_HTML = (b"<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n"
              b"<center><h1>%d %s</h1></center>\r\n<hr><center>nginx</center>\r\n"
              b"</body>\r\n</html>\r\n")

JSON_CT = b"application/json; charset=utf-8"
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 10 * 1024 * 1024
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")

# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

_json_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode_json(obj):
    return _json_encoder.encode(obj).encode("utf-8")


def iso(ts):
    """Epoch seconds -> ISO 8601 with microseconds and +00:00, like the seed."""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="microseconds")


def random_uuid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def hash_uuid(text):
    return str(uuid.UUID(bytes=hashlib.sha256(text.encode()).digest()[:16], version=4))


def is_uuid(value):
    return isinstance(value, str) and UUID_RE.match(value) is not None


def status_phrase(code):
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"


ERROR_REASONS = {
    400: "Bad request", 401: "Unauthorized", 403: "Forbidden",
    404: "Object not found", 405: "Method not allowed", 409: "Conflict",
    411: "Length required", 413: "Request entity too large",
    422: "Validation error", 429: "Too many requests",
    431: "Request header fields too large",
    500: "Internal server error", 502: "Bad gateway",
    503: "Service unavailable", 504: "Gateway timeout",
}


class DateHeader:
    """The Date header value, formatted at most once a second, and the
    common response-head prefixes that embed it (rebuilt with it)."""
    _second = -1
    _value = b""
    _prefixes = {}

    @classmethod
    def get(cls):
        now = int(time.time())
        if now != cls._second:
            cls._second = now
            cls._value = formatdate(now, usegmt=True).encode()
            cls._prefixes = {}
        return cls._value

    @classmethod
    def prefix(cls, status, ctype):
        """Everything up to the Content-Length value, for a plain keep-alive response."""
        date = cls.get()
        key = (status, ctype)
        prefix = cls._prefixes.get(key)
        if prefix is None:
            prefix = cls._prefixes[key] = b"".join([
                STATUS_LINES.get(status) or
                b"HTTP/1.1 %d %s\r\n" % (status, status_phrase(status).encode()),
                b"Server: invicti_sim\r\nDate: ", date, b"\r\nContent-Type: ", ctype,
                b"\r\nContent-Length: "])
        return prefix


class Interner:
    """Decodes and shares small repeated header strings (bounded table)."""

    def __init__(self, limit=10000):
        self._table = {}
        self._limit = limit

    def __call__(self, raw):
        if raw is None:
            return None
        value = self._table.get(raw)
        if value is None:
            value = raw.decode("latin-1")
            if len(self._table) < self._limit:
                self._table[raw] = value
        return value


# ---------------------------------------------------------------------------
# HTTP messages
# ---------------------------------------------------------------------------

class ApiError(Exception):
    def __init__(self, status, details, reason=None):
        super().__init__(status)
        self.status = status
        self.reason = reason
        self.details = details

    def response(self):
        return error_response(self.status, self.details, self.reason)


class Request:
    __slots__ = ("method", "path", "query", "headers", "body", "keep_alive",
                 "http10", "arrived", "started", "processed")

    def query_args(self):
        """Query string -> {name: last value}."""
        return {k: v[-1] for k, v in parse_qs(self.query, keep_blank_values=True).items()}

    def json_body(self):
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, [f"Malformed JSON body: {exc}"]) from None


class Response:
    """A response plus what the request log needs to know about it."""
    __slots__ = ("status", "body", "headers", "ctype", "auth", "template", "created")

    def __init__(self, status, body=b"", headers=(), ctype=JSON_CT):
        self.status = status
        self.body = body
        self.headers = headers          # sequence of (name, value) str pairs
        self.ctype = ctype
        self.auth = "ok"
        self.template = None
        self.created = None              # Scan created by this request, if any

    def carry_meta(self, other):
        self.auth, self.template, self.created = other.auth, other.template, other.created
        return self

    def head(self, keep_alive, http10=False, length=None):
        """Status line and headers; length overrides len(body)."""
        if keep_alive and not http10 and not self.headers and self.status != 204:
            return b"%s%d\r\n\r\n" % (DateHeader.prefix(self.status, self.ctype),
                                        len(self.body) if length is None else length)
        parts = [STATUS_LINES.get(self.status) or
                 b"HTTP/1.1 %d %s\r\n" % (self.status, status_phrase(self.status).encode()),
                 b"Server: invicti_sim\r\nDate: ", DateHeader.get(), b"\r\n"]
        if self.status != 204:
            parts += [b"Content-Type: ", self.ctype, b"\r\nContent-Length: ",
                      str(len(self.body) if length is None else length).encode(), b"\r\n"]
        for name, value in self.headers:
            parts.append(f"{name}: {value}\r\n".encode("latin-1"))
        if not keep_alive:
            parts.append(b"Connection: close\r\n")
        elif http10:
            parts.append(b"Connection: keep-alive\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)


STATUS_LINES = {code: b"HTTP/1.1 %d %s\r\n" % (code, status_phrase(code).encode())
                for code in (200, 201, 204, 400, 401, 403, 404, 405, 409, 422)}


def json_response(obj, status=200, headers=()):
    return Response(status, encode_json(obj), headers)


def error_response(status, details, reason=None, headers=()):
    reason = reason or ERROR_REASONS.get(status) or status_phrase(status)
    return Response(status, encode_json({"code": status, "reason": reason, "details": details}),
                    headers)


# ---------------------------------------------------------------------------
# HTTP/1.1 server plumbing: one asyncio.Protocol per connection
# ---------------------------------------------------------------------------

class HttpConnection(asyncio.Protocol):
    """Parses pipelined HTTP/1.1 requests and hands them to the app in order.

    The app answers synchronously with send(), or takes over the connection
    with run_async() (fault injection): while that coroutine runs, further
    pipelined requests stay buffered so responses keep their order.
    """

    def __init__(self, listener):
        self._listener = listener
        self._app = listener.app
        self.transport = None
        self._buf = bytearray()
        self._busy = False
        self._continue_sent = False
        self._read_paused = False
        self._write_paused = False
        self._drain_waiters = []
        self._closed = False

    @property
    def closed(self):
        """True once either side closed (asyncio drops writes to a dead peer)."""
        return self._closed or self.transport.is_closing()

    # -- asyncio callbacks --
    def connection_made(self, transport):
        self.transport = transport
        self._listener.connections.add(self)

    def connection_lost(self, exc):
        self._closed = True
        self._listener.connections.discard(self)
        self._wake_drainers()

    def pause_writing(self):
        self._write_paused = True

    def resume_writing(self):
        self._write_paused = False
        self._wake_drainers()

    def data_received(self, data):
        self._buf += data
        if not self._busy:
            self._process()
        elif len(self._buf) > MAX_BODY_BYTES and not self._read_paused:
            self._read_paused = True
            self.transport.pause_reading()

    # -- output --
    def send(self, data, keep_alive=True):
        if self.closed:
            return
        self.transport.write(data)
        if not keep_alive:
            self.close()

    def close(self):
        """Graceful close: flush what was written, then FIN."""
        if not self.closed:
            self._closed = True
            self.transport.close()

    def reset(self):
        """Abortive close: the peer gets a TCP RST."""
        if self.closed:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._closed = True
        self.transport.abort()

    async def drain(self):
        if self._write_paused and not self.closed:
            waiter = asyncio.get_running_loop().create_future()
            self._drain_waiters.append(waiter)
            await waiter
        if self.closed:
            raise ConnectionResetError("client closed the connection")

    def _wake_drainers(self):
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -- request handling --
    def run_async(self, coro):
        self._busy = True
        task = asyncio.ensure_future(self._run(coro))
        self._listener.tasks.add(task)
        task.add_done_callback(self._listener.tasks.discard)

    async def _run(self, coro):
        try:
            await coro
        except ConnectionError:
            pass
        finally:
            self._busy = False
        if self._read_paused and not self.closed:
            self._read_paused = False
            self.transport.resume_reading()
        if self._buf and not self.closed:
            self._process()

    def _process(self):
        while self._buf and not self._busy and not self.closed:
            req = self._parse()
            if req is None:
                return
            self._app.handle(self, req)

    def _fail(self, status, detail):
        resp = error_response(status, [detail])
        self.send(resp.head(False) + resp.body, keep_alive=False)

    def _parse(self):
        buf = self._buf
        while buf.startswith(b"\r\n"):   # tolerated empty lines between requests
            del buf[:2]
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEADER_BYTES:
                self._fail(431, "Request headers too large")
            return None
        lines = bytes(buf[:end]).split(b"\r\n")
        request_line = lines[0].split(b" ")
        if len(request_line) != 3 or not request_line[2].startswith(b"HTTP/1."):
            self._fail(400, "Malformed request line")
            return None
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                self._fail(400, "Malformed header line")
                return None
            headers[name.strip().lower()] = value.strip()
        if b"transfer-encoding" in headers:
            self._fail(411, "Chunked request bodies are not supported; send Content-Length")
            return None
        length = headers.get(b"content-length")
        try:
            length = int(length) if length is not None else 0
        except ValueError:
            self._fail(400, "Invalid Content-Length")
            return None
        if length > MAX_BODY_BYTES or length < 0:
            self._fail(413, "Request body too large")
            return None
        total = end + 4 + length
        if len(buf) < total:
            if (not self._continue_sent
                    and headers.get(b"expect", b"").lower() == b"100-continue"):
                self._continue_sent = True
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            return None
        self._continue_sent = False
        req = Request()
        req.started = time.perf_counter()
        req.arrived = time.time()
        intern = self._listener.intern
        req.method = intern(request_line[0])
        path, _, query = request_line[1].partition(b"?")
        req.path = intern(path)
        req.query = query.decode("latin-1")
        req.headers = headers
        req.body = bytes(buf[end + 4:total]) if length else b""
        del buf[:total]
        connection = headers.get(b"connection", b"").lower()
        req.http10 = request_line[2] == b"HTTP/1.0"
        if req.http10:
            req.keep_alive = connection == b"keep-alive"
        else:
            req.keep_alive = connection != b"close"
        return req


class Listener:
    """One listening socket (API or control) and its open connections."""

    def __init__(self, app, host, port, ssl_context=None):
        self.app = app
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.server = None
        self.connections = set()
        self.tasks = set()
        self.intern = Interner()

    async def start(self):
        self.server = await asyncio.get_running_loop().create_server(
            lambda: HttpConnection(self), self.host, self.port,
            ssl=self.ssl_context, reuse_address=True, backlog=1024)
        self.port = self.server.sockets[0].getsockname()[1]

    @property
    def up(self):
        return self.server is not None

    def stop(self):
        """Close the listening socket and reset every open connection."""
        if self.server is not None:
            self.server.close()
            self.server = None
        for conn in list(self.connections):
            conn.reset()
        for task in list(self.tasks):
            task.cancel()


class Router:
    """Maps paths like /api/v1/scans/{scan_id} to per-method handlers."""

    class Route:
        __slots__ = ("parts", "template", "methods")

    def __init__(self):
        self._by_length = {}

    def add(self, template, **methods):
        route = Router.Route()
        route.parts = template.split("/")[1:]
        route.template = template
        route.methods = {name.upper(): handler for name, handler in methods.items()}
        self._by_length.setdefault(len(route.parts), []).append(route)

    def match(self, path):
        """-> (route, params) or (None, None)."""
        parts = path.split("/")[1:]
        for route in self._by_length.get(len(parts), ()):
            params = []
            for want, got in zip(route.parts, parts):
                if want[0] == "{":
                    if not got:
                        break
                    params.append(got)
                elif want != got:
                    break
            else:
                return route, params
        return None, None

    def dispatch(self, req):
        """Route and call; returns (template, Response)."""
        route, params = self.match(req.path)
        if route is None:
            return None, error_response(404, [f"No such endpoint: {req.path}"])
        handler = route.methods.get(req.method)
        if handler is None:
            allow = ", ".join(sorted(route.methods))
            return route.template, error_response(
                405, [f"{req.method} is not allowed on {route.template}"],
                headers=[("Allow", allow)])
        try:
            return route.template, handler(req, *params)
        except ApiError as exc:
            return route.template, exc.response()


# ---------------------------------------------------------------------------
# Simulated time
# ---------------------------------------------------------------------------

class SimClock:
    """Simulation time in "time units"; the unit length may change at runtime.

    Piecewise linear in real time, so changing the scale never makes a scan
    jump; wall() maps a unit instant back to epoch seconds for dates.
    """

    def __init__(self, seconds_per_unit):
        self._mono0 = time.monotonic()
        self._wall0 = time.time()
        self._segments = [(0.0, 0.0, seconds_per_unit)]  # (elapsed s, units, s/unit)

    def now(self):
        elapsed0, units0, scale = self._segments[-1]
        return units0 + (time.monotonic() - self._mono0 - elapsed0) / scale

    def set_scale(self, seconds_per_unit):
        elapsed = time.monotonic() - self._mono0
        elapsed0, units0, scale = self._segments[-1]
        self._segments.append((elapsed, units0 + (elapsed - elapsed0) / scale,
                               seconds_per_unit))

    def wall(self, units):
        for elapsed0, units0, scale in reversed(self._segments):
            if units >= units0:
                return self._wall0 + elapsed0 + (units - units0) * scale
        return self._wall0


# ---------------------------------------------------------------------------
# Targets and scans
# ---------------------------------------------------------------------------

class Target:
    """Immutable once built: PUT /_sim/targets replaces the object."""
    __slots__ = ("target_id", "address", "description", "criticality", "outcome",
                 "duration_scale", "polls_to_finish", "final_counts", "order")

    FIELDS = {"target_id", "address", "description", "criticality", "outcome",
              "duration_scale", "polls_to_finish", "severity_counts"}

    def __init__(self, spec, order):
        if not isinstance(spec, dict):
            raise ValueError("a target must be an object")
        unknown = set(spec) - self.FIELDS
        if unknown:
            raise ValueError(f"unknown target fields: {sorted(unknown)}")
        tid = spec.get("target_id")
        if not is_uuid(tid):
            raise ValueError(f"target_id must be a uuid string, got {tid!r}")
        self.target_id = tid.lower()
        self.address = spec.get("address", f"https://{self.target_id[:8]}.sim.invicti.test")
        self.description = spec.get("description", "")
        self.criticality = spec.get("criticality", 10)
        self.outcome = spec.get("outcome", "completed")
        self.duration_scale = spec.get("duration_scale", 1.0)
        if not isinstance(self.address, str) or not isinstance(self.description, str):
            raise ValueError("address and description must be strings")
        if type(self.criticality) is not int:
            raise ValueError("criticality must be an integer")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {list(OUTCOMES)}")
        scale = self.duration_scale
        if not isinstance(scale, (int, float)) or isinstance(scale, bool) or scale <= 0:
            raise ValueError("duration_scale must be a positive number")
        self.duration_scale = float(self.duration_scale)
        # Benchmarks: the scan reaches the end of its timeline on this GET.
        self.polls_to_finish = spec.get("polls_to_finish")
        if self.polls_to_finish is not None and (type(self.polls_to_finish) is not int
                                                 or self.polls_to_finish < 1):
            raise ValueError("polls_to_finish must be a positive integer")
        counts = spec.get("severity_counts")
        if counts is None:
            digest = hashlib.sha256(self.target_id.encode()).digest()
            self.final_counts = {key: digest[i] % (SEVERITY_MAX[key] + 1)
                                 for i, key in enumerate(SEVERITY_KEYS)}
        else:
            if (not isinstance(counts, dict) or set(counts) - set(SEVERITY_KEYS)
                    or any(type(v) is not int or v < 0 for v in counts.values())):
                raise ValueError("severity_counts must map critical/high/medium/low/info "
                                 "to non-negative integers")
            self.final_counts = {key: counts.get(key, 0) for key in SEVERITY_KEYS}
        self.order = order

    def sim_json(self, builtin):
        return {"target_id": self.target_id, "address": self.address,
                "description": self.description, "criticality": self.criticality,
                "outcome": self.outcome, "duration_scale": self.duration_scale,
                "polls_to_finish": self.polls_to_finish,
                "severity_counts": dict(self.final_counts), "builtin": builtin}


class ScanState(NamedTuple):
    status: str
    progress: int
    start_u: float | None     # session start (None: no session yet)
    end_u: float | None       # set only in terminal states


class Scan:
    """One scan and its timeline.

    The timeline is a plan: a list of segments (start_unit, status, progress
    at start, progress per unit).  Actions (abort/pause/resume) cut the plan
    at "now" and append new segments; a pin (control API) overrides it.
    """

    def __init__(self, seq, scan_id, session_id, target, profile_id, schedule,
                 options, launch_u, created_at):
        self.seq = seq
        self.scan_id = scan_id
        self.session_id = session_id
        self.target = target
        self.profile_id = profile_id
        self.schedule = schedule
        self.options = options          # continuous, incremental, max_scan_time
        self.launch_u = launch_u
        self.created_at = created_at
        self.deleted_at = None
        self.request_seq = None
        self.pin = None                 # (status, progress or None, pinned_at_u)
        self.polls = 0                  # GETs of this scan (target.polls_to_finish)
        self.plan = self._base_plan()
        self.session_start_u = launch_u + 1 * target.duration_scale
        self.cache_key = None
        self.cache_body = None
        self._vulns = None

    def _base_plan(self):
        d = self.target.duration_scale
        rate = PROGRESS_PER_UNIT / d

        def at(units):
            return self.launch_u + units * d

        def progress(units):
            return PROGRESS_PER_UNIT * (units - 2)

        plan = [(at(0), "scheduled", 0.0, 0.0), (at(0.5), "queued", 0.0, 0.0),
                (at(1), "starting", 0.0, 0.0), (at(2), "processing", 0.0, rate)]
        outcome = self.target.outcome
        if outcome == "completed":
            plan.append((at(12), "completed", 100.0, 0.0))
        elif outcome == "failed":
            plan.append((at(8), "failed", progress(8), 0.0))
        elif outcome == "aborted":
            plan += [(at(8), "aborting", progress(8), 0.0), (at(9), "aborted", progress(8), 0.0)]
        elif outcome == "paused":
            plan += [(at(6), "pausing", progress(6), 0.0), (at(7), "paused", progress(6), 0.0)]
        elif outcome == "unknown":
            plan += [(at(12), UNKNOWN_STATUS, 99.0, 0.0), (at(15), "completed", 100.0, 0.0)]
        else:   # stuck_unknown
            plan.append((at(12), UNKNOWN_STATUS, 99.0, 0.0))
        return plan

    @property
    def deleted(self):
        return self.deleted_at is not None

    def _segment(self, u):
        plan = self.plan
        i = len(plan) - 1
        while i > 0 and plan[i][0] > u:
            i -= 1
        return plan[i]

    def _progress_float(self, u):
        if self.pin is not None and self.pin[1] is not None:
            return float(self.pin[1])
        start, _, p0, rate = self._segment(u)
        return min(99.0, p0 + rate * (u - start)) if rate else p0

    def state(self, u):
        start, status, p0, rate = self._segment(u)
        progress = int(min(99.0, p0 + rate * (u - start)) if rate else p0)
        ss = self.session_start_u
        start_u = ss if ss is not None and u >= ss else None
        end_u = start if status in TERMINAL else None
        if self.pin is not None:
            pin_status, pin_progress, pin_u = self.pin
            if pin_status in TERMINAL:
                end_u = end_u if end_u is not None and end_u <= pin_u else pin_u
            else:
                end_u = None
            if start_u is None and pin_status not in PRE_SESSION:
                start_u = pin_u
            status = pin_status
            if pin_progress is not None:
                progress = pin_progress
        return ScanState(status, progress, start_u, end_u)

    # -- actions --
    def replan(self, u, action):
        """Apply abort/pause/resume at unit u (the caller checked it is allowed)."""
        current = self.state(u)
        p = self._progress_float(u)
        self.pin = None
        plan = [seg for seg in self.plan if seg[0] < u]
        if action == "abort":
            plan += [(u, "aborting", p, 0.0), (u + 1, "aborted", p, 0.0)]
            if current.start_u is None:
                self.session_start_u = None
        else:
            if action == "pause":
                plan += [(u, "pausing", p, 0.0), (u + 1, "paused", p, 0.0)]
            else:
                rate = PROGRESS_PER_UNIT / self.target.duration_scale
                plan += [(u, "resuming", p, 0.0), (u + 1, "processing", p, rate),
                         (u + 1 + (99.0 - min(p, 99.0)) / rate, "completed", 100.0, 0.0)]
            self.session_start_u = current.start_u if current.start_u is not None else u
        self.plan = plan

    # -- derived data --
    def counts(self, progress):
        return {key: value * progress // 100 for key, value in self.target.final_counts.items()}

    def vuln_catalogue(self):
        """Every vulnerability the session will find, by severity (deterministic)."""
        if self._vulns is None:
            t = self.target
            rng = random.Random(f"{t.target_id}:{self.session_id}")
            catalogue = {}
            for key in SEVERITY_KEYS:
                level = SEVERITY_LEVEL[key]
                items = []
                for _ in range(t.final_counts[key]):
                    name, _, tags, param, impact = rng.choice(VULN_TYPES_BY_SEVERITY[level])
                    path = rng.choice(VULN_PATHS)
                    items.append({
                        "vuln_id": random_uuid(rng),
                        "vt_id": hash_uuid("vt:" + name),
                        "vt_name": name,
                        "severity": level,
                        "criticality": t.criticality,
                        "confidence": rng.choice((80, 95, 100)),
                        "affects_url": t.address.rstrip("/") + path,
                        "affects_detail": param,
                        "status": rng.choice(VULN_STATUSES),
                        "target_id": t.target_id,
                        "loc_id": rng.randint(1, 500),
                        "tags": list(tags),
                        "archived": False,
                        "_impact": impact,
                    })
                catalogue[key] = items
            self._vulns = catalogue
        return self._vulns


# ---------------------------------------------------------------------------
# Pagination
# ---------------------------------------------------------------------------

def parse_limit(args):
    raw = args.get("l")
    if raw is None:
        return 100
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise ApiError(400, [f"l: must be an integer between 1 and 100, got {raw!r}"])
    return limit


def encode_cursor(kind, qhash, key):
    raw = f"{kind}:{qhash[:8]}:{'-' if key is None else key}".encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor, kind, qhash):
    """-> key after which the page starts (None: first page); 400 if invalid."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        c_kind, c_hash, key = raw.split(":")
        if c_kind != kind:
            raise ValueError
        if c_hash != qhash[:8]:
            raise ApiError(400, ["c: cursor belongs to a different query"], "Invalid cursor")
        return None if key == "-" else int(key)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, [f"c: invalid cursor {cursor!r}"], "Invalid cursor") from None


def paginate(style, kind, items, keys, args, filter_sig, sort):
    """Page a list already ordered by ascending int keys.

    Cursors name the last key of the previous page, so new items added to the
    front (newest-first lists) never shift later pages.
    """
    limit = parse_limit(args)
    qhash = hashlib.md5(f"{kind}|{filter_sig}|{sort}".encode()).hexdigest()
    cursor = args.get("c")
    start = 0
    if cursor:
        anchor = decode_cursor(cursor, kind, qhash)
        if anchor is not None:
            start = bisect.bisect_right(keys, anchor)
    else:
        cursor = encode_cursor(kind, qhash, None)
    page = items[start:start + limit]
    next_cursor = (encode_cursor(kind, qhash, keys[start + limit - 1])
                   if start + limit < len(items) else None)
    pagination = {"count": len(items), "cursor_hash": qhash, "sort": sort}
    if style == "cursors":
        pagination["cursors"] = [cursor] if next_cursor is None else [cursor, next_cursor]
    else:
        pagination["next_cursor"] = next_cursor
    return page, pagination


def parse_scan_filter(q):
    """'key:value;key2:v1,v2' -> {key: set(values)}; 400 on bad syntax."""
    filters = {}
    for clause in filter(None, (c.strip() for c in q.split(";"))):
        key, sep, values = clause.partition(":")
        key = key.strip()
        if not sep or not values:
            raise ApiError(400, [f"q: expected key:value, got {clause!r}"])
        if key not in ("target_id", "profile_id", "status"):
            raise ApiError(400, [f"q: unsupported filter key {key!r} "
                                 "(supported: target_id, profile_id, status)"])
        vals = {v.strip() for v in values.split(",") if v.strip()}
        if key != "status":
            vals = {v.lower() for v in vals}
        filters[key] = filters[key] & vals if key in filters else vals
    return filters


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

class Config:
    CHOICES = {"shape": ("wrapped", "single"),
               "scan_id_in": ("body+location", "location", "body"),
               "pagination": ("cursors", "next_cursor")}

    def __init__(self, shape, scan_id_in, pagination, time_scale, token, forbidden_token):
        self.shape = shape
        self.scan_id_in = scan_id_in
        self.pagination = pagination
        self.time_scale = time_scale
        self.token = token
        self.forbidden_token = forbidden_token

    def copy(self):
        return Config(self.shape, self.scan_id_in, self.pagination, self.time_scale,
                      self.token, self.forbidden_token)

    def update(self, changes):
        """Validate every change, then apply all (control API)."""
        new = self.copy()
        for key, value in changes.items():
            if key in self.CHOICES:
                if value not in self.CHOICES[key]:
                    raise ValueError(f"{key} must be one of {list(self.CHOICES[key])}")
            elif key == "time_scale":
                if (not isinstance(value, (int, float)) or isinstance(value, bool)
                        or value <= 0):
                    raise ValueError("time_scale must be a positive number")
                value = float(value)
            elif key in ("token", "forbidden_token"):
                if value is not None and (not isinstance(value, str) or not value):
                    raise ValueError(f"{key} must be a non-empty string or null")
            else:
                raise ValueError(f"unknown config key {key!r}")
            setattr(new, key, value)
        return new

    def public(self):
        return {"shape": self.shape, "scan_id_in": self.scan_id_in,
                "pagination": self.pagination, "time_scale": self.time_scale,
                "token_set": self.token is not None,
                "forbidden_token_set": self.forbidden_token is not None}


# ---------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------

def _number(value, name, minimum=0):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be a number >= {minimum}")
    return value


def _integer(value, name, minimum=0, maximum=None):
    if type(value) is not int or value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be an integer in [{minimum}, {maximum or 'inf'}]")
    return value


def _choice(value, name, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}")
    return value


def _string(value, name):
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    return value


def _boolean(value, name):
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false")
    return value


# Hostile answers for the "mutate" fault.  None of them is something the
# real API is known to do: they stand for a broken or malicious server.
#   echo_token     the request's X-Auth value in an "echo" field of every JSON
#                  body and in error reasons; a launch's Location and scan_id
#                  carry it instead of the scan id
#   escaped_token  the same value spelled with \\u escapes in an "echo" field
#   long_vuln_id   the first finding of a page gets a vuln_id of `bytes` bytes
#   cursor_cycle   list pages never end: the next cursor alternates between
#                  "cycle-A" and "cycle-B", each serving the first page
#   bad_counts     current_session.severity_counts becomes `counts`
MUTATIONS = ("echo_token", "escaped_token", "long_vuln_id", "cursor_cycle", "bad_counts")

# kind -> {param: (default, validator)}
FAULT_PARAMS = {
    "latency": {"ms": (1000, _number), "jitter_ms": (0, _number),
                "when": ("before", lambda v, n: _choice(v, n, ("before", "after")))},
    "status": {"status": (500, lambda v, n: _integer(v, n, 200, 599)),
               "reason": (None, lambda v, n: _string(v, n)),
               "details": (None, lambda v, n: v if isinstance(v, list) else _string(v, n)),
               "retry_after": (None, lambda v, n: v if v == "date" else _number(v, n)),
               "seconds": (60, _number), "process": (False, _boolean)},
    "drop": {"when": ("before", lambda v, n: _choice(v, n, ("before", "after"))),
             "reset": (False, _boolean)},
    "truncate": {"bytes": (None, _integer)},
    "garbage": {"status": (200, lambda v, n: _integer(v, n, 200, 599)),
                "bytes": (256, lambda v, n: _integer(v, n, 2))},
    "html": {"status": (502, lambda v, n: _integer(v, n, 200, 599))},
    "empty": {},
    "huge": {"bytes": (50_000_000, _integer)},
    "slow_drip": {"bytes_per_sec": (10, lambda v, n: _number(v, n, 0.001))},
    # Hostile answers (see MUTATIONS): a server that is broken or attacks
    # its client.  Not a behaviour of the real API; for robustness tests.
    "mutate": {"mutation": ("echo_token", lambda v, n: _choice(v, n, MUTATIONS)),
               "bytes": (5000, lambda v, n: _integer(v, n, 1)),
               "counts": ({"critical": 2, "high": -2}, lambda v, n: v)},
}


class FaultRule:
    __slots__ = ("spec", "kind", "params", "method", "path_re", "probability",
                 "remaining", "applied")

    def __init__(self, spec):
        if not isinstance(spec, dict):
            raise ValueError("a rule must be an object")
        kind = spec.get("fault")
        if kind not in FAULT_PARAMS:
            raise ValueError(f"fault must be one of {sorted(FAULT_PARAMS)}, got {kind!r}")
        allowed = {"match", "probability", "count", "fault", "name"} | set(FAULT_PARAMS[kind])
        unknown = set(spec) - allowed
        if unknown:
            raise ValueError(f"unknown keys for fault {kind!r}: {sorted(unknown)}")
        match = spec.get("match") or {}
        if not isinstance(match, dict) or set(match) - {"method", "path"}:
            raise ValueError("match must be an object with optional method and path")
        self.method = match.get("method")
        if self.method is not None:
            if not isinstance(self.method, str):
                raise ValueError("match.method must be a string")
            self.method = self.method.upper()
        path = match.get("path")
        try:
            self.path_re = re.compile(path) if path is not None else None
        except (re.error, TypeError) as exc:
            raise ValueError(f"match.path is not a valid regex: {exc}") from None
        self.probability = _number(spec.get("probability", 1.0), "probability")
        if self.probability > 1:
            raise ValueError("probability must be in [0, 1]")
        count = spec.get("count")
        self.remaining = None if count is None else _integer(count, "count", 1)
        self.params = {}
        for name, (default, check) in FAULT_PARAMS[kind].items():
            value = spec.get(name, default)
            self.params[name] = value if value is None else check(value, name)
        if kind == "status" and self.params["retry_after"] == "date" and "seconds" not in spec:
            raise ValueError("retry_after \"date\" needs seconds")
        self.kind = kind
        self.spec = spec
        self.applied = 0

    def public(self):
        return dict(self.spec, remaining=self.remaining, applied=self.applied)


class FaultSet:
    def __init__(self, seed):
        self.rules = []
        self.rng = random.Random(f"{seed}:faults")

    def pick(self, method, path):
        """The first rule that matches and fires (counts and probability)."""
        for rule in self.rules:
            if rule.remaining == 0:
                continue
            if rule.method is not None and rule.method != method:
                continue
            if rule.path_re is not None and rule.path_re.search(path) is None:
                continue
            if rule.probability < 1 and self.rng.random() >= rule.probability:
                continue
            if rule.remaining is not None:
                rule.remaining -= 1
            rule.applied += 1
            return rule
        return None


# ---------------------------------------------------------------------------
# Request log and statistics
# ---------------------------------------------------------------------------

LOG_FIELDS = ("seq", "time", "method", "path", "query", "status", "fault", "duration_ms",
              "auth", "user_agent", "accept", "content_type", "client_closed")


class RequestLog:
    """Append-only, in seq order, capped (oldest entries dropped in chunks)."""

    def __init__(self, cap, log_file=None):
        self.cap = cap
        self._entries = []          # tuples: LOG_FIELDS + (launch tuple or None,)
        self.first_seq = 1
        self.next_seq = 1
        self.dropped = 0
        self._file = log_file

    def append(self, entry):
        self._entries.append(entry)
        self.next_seq += 1
        if len(self._entries) > self.cap + self.cap // 10:
            excess = len(self._entries) - self.cap
            del self._entries[:excess]
            self.first_seq += excess
            self.dropped += excess
        if self._file is not None:
            self._file.write(json.dumps(self.as_dict(entry)) + "\n")
            self._file.flush()

    @staticmethod
    def as_dict(entry):
        item = dict(zip(LOG_FIELDS, entry))
        item["duration_ms"] = round(item["duration_ms"], 3)
        launch = entry[-1]
        if launch is not None:
            item["target_id"], item["profile_id"], item["created_scan_id"] = launch
        return item

    def since(self, seq, limit):
        start = max(seq, self.first_seq) - self.first_seq
        chunk = self._entries[start:start + limit]
        return [self.as_dict(e) for e in chunk], start + len(chunk) < len(self._entries)

    def clear(self):
        self._entries = []
        self.first_seq = self.next_seq = 1
        self.dropped = 0


# ---------------------------------------------------------------------------
# The simulator state
# ---------------------------------------------------------------------------

class Simulator:
    def __init__(self, args, startup_targets):
        self.args = args
        self.startup_config = Config(args.shape, args.scan_id_in, args.pagination,
                                     args.time_scale, args.token, args.forbidden_token)
        self.startup_targets = startup_targets
        self.log = RequestLog(args.log_cap,
                              open(args.log_file, "a", encoding="utf-8") if args.log_file else None)
        self.api = ApiApp(self)
        self.control = ControlApp(self)
        ssl_context = None
        if args.tls_cert:
            ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ssl_context.load_cert_chain(args.tls_cert, args.tls_key)
        self.api_listener = Listener(self.api, args.host, args.port, ssl_context)
        self.control_listener = Listener(self.control, args.host, args.control_port)
        self.outage_until = None
        self._outage_handle = None
        self._intern = Interner()   # header values kept in the log
        self.reset_state()

    def reset_state(self):
        self.config = self.startup_config.copy()
        self.clock = SimClock(self.config.time_scale)
        self.id_rng = random.Random(f"{self.args.seed}:ids")
        self.faults = FaultSet(self.args.seed)
        self.targets = {}
        for spec in [BUILTIN_TARGET] + self.startup_targets:
            self.put_target(Target(spec, 0))
        self.scans = {}
        self.log.clear()
        self.stats = {}
        self.total_requests = 0
        self.api.configure(self.config)

    def put_target(self, target):
        old = self.targets.get(target.target_id)
        target.order = old.order if old else len(self.targets)
        self.targets[target.target_id] = target

    def set_config(self, config):
        if config.time_scale != self.config.time_scale:
            self.clock.set_scale(config.time_scale)
        self.config = config
        self.api.configure(config)

    # -- request log --
    def record(self, req, status, fault, meta, client_closed=False):
        seq = self.log.next_seq
        launch = None
        if meta.template == self.api.launch_template and req.method == "POST":
            target_id = profile_id = None
            try:
                body = json.loads(req.body)
                if isinstance(body, dict):
                    target_id, profile_id = body.get("target_id"), body.get("profile_id")
            except (ValueError, UnicodeDecodeError):
                pass
            created = meta.created
            launch = (target_id, profile_id, created.scan_id if created else None)
            if created is not None:
                created.request_seq = seq
        headers = req.headers
        intern = self._intern
        self.log.append((seq, req.arrived, req.method, req.path, req.query, status, fault,
                         (time.perf_counter() - req.started) * 1000, meta.auth,
                         intern(headers.get(b"user-agent")), intern(headers.get(b"accept")),
                         intern(headers.get(b"content-type")), client_closed, launch))
        key = (req.method, meta.template, status)
        self.stats[key] = self.stats.get(key, 0) + 1
        self.total_requests += 1

    # -- outage --
    def api_down(self, seconds=None):
        self._cancel_outage_timer()
        self.api_listener.stop()
        if seconds is None:
            self.outage_until = float("inf")
        else:
            self.outage_until = time.time() + seconds
            self._outage_handle = asyncio.get_running_loop().call_later(
                seconds, lambda: asyncio.ensure_future(self.api_up()))

    async def api_up(self):
        self._cancel_outage_timer()
        while not self.api_listener.up:
            try:
                await self.api_listener.start()
            except OSError as exc:
                print(f"invicti_sim: cannot reopen api port yet: {exc}", file=sys.stderr)
                await asyncio.sleep(0.2)
        self.outage_until = None

    def _cancel_outage_timer(self):
        if self._outage_handle is not None:
            self._outage_handle.cancel()
            self._outage_handle = None

    def outage_json(self):
        until = self.outage_until
        return {"down": not self.api_listener.up,
                "until": None if until is None or until == float("inf") else until}

    # -- lifecycle --
    async def start(self):
        await self.api_listener.start()
        await self.control_listener.start()

    def close(self):
        self._cancel_outage_timer()
        self.api_listener.stop()
        self.control_listener.stop()


# ---------------------------------------------------------------------------
# The Invicti API
# ---------------------------------------------------------------------------

class ApiApp:
    PREFIX = "/api/v1"

    def __init__(self, sim):
        self.sim = sim
        p = self.PREFIX
        self.launch_template = p + "/scans"
        router = self.router = Router()
        router.add(p + "/me", get=self.me)
        router.add(p + "/scans", get=self.list_scans, post=self.launch)
        router.add(p + "/scans/{scan_id}", get=self.get_scan, delete=self.delete_scan)
        router.add(p + "/scans/{scan_id}/abort", post=self.abort)
        router.add(p + "/scans/{scan_id}/pause", post=self.pause)
        router.add(p + "/scans/{scan_id}/resume", post=self.resume)
        router.add(p + "/scans/{scan_id}/results", get=self.results)
        router.add(p + "/scans/{scan_id}/results/{session_id}/vulnerabilities",
                   get=self.vulnerabilities)
        router.add(p + "/scans/{scan_id}/results/{session_id}/vulnerabilities/{vuln_id}",
                   get=self.vulnerability)
        router.add(p + "/targets", get=self.targets)
        router.add(p + "/scanning_profiles", get=self.scanning_profiles)
        self._me_body = encode_json(ME)
        self._token = self._forbidden = None
        self._shape = "wrapped"

    def configure(self, config):
        self._token = config.token.encode() if config.token is not None else None
        self._forbidden = (config.forbidden_token.encode()
                           if config.forbidden_token is not None else None)
        self._shape = config.shape

    # -- entry point from HttpConnection --
    def handle(self, conn, req):
        rule = self.sim.faults.pick(req.method, req.path) if self.sim.faults.rules else None
        if rule is None:
            resp = self.process(req)
            conn.send(resp.head(req.keep_alive, req.http10) + resp.body, req.keep_alive)
            self.sim.record(req, resp.status, None, resp)
        else:
            conn.run_async(self.apply_fault(conn, req, rule))

    def _auth(self, req):
        given = req.headers.get(b"x-auth") or None
        if given is not None and given == self._forbidden:
            return "forbidden"
        if self._token is None or given == self._token:
            return "ok"
        return "missing" if given is None else "bad"

    def process(self, req):
        """Run the request through auth and the router."""
        auth = self._auth(req)
        if auth == "ok":
            template, resp = self.router.dispatch(req)
        else:
            route, _ = self.router.match(req.path)
            template = route.template if route else None
            if auth == "forbidden":
                resp = error_response(403, ["The token lacks the permission for this request"])
            else:
                resp = error_response(401, ["Missing X-Auth header" if auth == "missing"
                                            else "Invalid X-Auth token"])
        resp.auth = auth
        resp.template = template
        req.processed = resp
        return resp

    def unprocessed(self, req):
        """Log metadata for a request answered without processing it."""
        route, _ = self.router.match(req.path)
        meta = Response(0)
        meta.auth = self._auth(req)
        meta.template = route.template if route else None
        return meta

    # -- faults --
    async def apply_fault(self, conn, req, rule):
        try:
            await self._apply_fault(conn, req, rule)
        except asyncio.CancelledError:
            # An outage cut the request short while a fault held it: log it,
            # with what it did (a launch may have created a scan already).
            meta = getattr(req, "processed", None) or self.unprocessed(req)
            self.sim.record(req, 0, "outage", meta, True)
            raise

    async def _apply_fault(self, conn, req, rule):
        kind, prm, sim = rule.kind, rule.params, self.sim
        if kind == "latency":
            delay = (prm["ms"] + sim.faults.rng.uniform(0, prm["jitter_ms"])) / 1000.0
            if prm["when"] == "before":
                await asyncio.sleep(delay)
                if conn.closed:     # the client gave up: nothing gets processed
                    sim.record(req, 0, kind, self.unprocessed(req), True)
                    return
                resp = self.process(req)
            else:
                resp = self.process(req)
                await asyncio.sleep(delay)
            self._respond(conn, req, resp, kind)
        elif kind == "status":
            meta = self.process(req) if prm["process"] else self.unprocessed(req)
            headers = []
            if prm["retry_after"] == "date":
                headers.append(("Retry-After", formatdate(time.time() + prm["seconds"],
                                                          usegmt=True)))
            elif prm["retry_after"] is not None:
                headers.append(("Retry-After", str(int(prm["retry_after"]))))
            details = prm["details"] if prm["details"] is not None else ["Simulated fault"]
            if isinstance(details, str):
                details = [details]
            resp = error_response(prm["status"], details, prm["reason"], headers=headers)
            self._respond(conn, req, resp.carry_meta(meta), kind)
        elif kind == "html":
            status = prm["status"]
            phrase = status_phrase(status).encode()
            resp = Response(status, PROXY_HTML % (status, phrase, status, phrase),
                            ctype=b"text/html")
            self._respond(conn, req, resp.carry_meta(self.unprocessed(req)), kind)
        elif kind == "drop":
            meta = self.process(req) if prm["when"] == "after" else self.unprocessed(req)
            if prm["reset"]:
                conn.reset()
            else:
                conn.close()
            sim.record(req, 0, kind, meta)
        elif kind == "truncate":
            resp = self.process(req)
            head = resp.head(True, req.http10)
            if resp.body:
                cut = prm["bytes"] if prm["bytes"] is not None else len(resp.body) // 2
                data = head + resp.body[:min(cut, len(resp.body) - 1)]
            else:
                data = head[:len(head) // 2]
            closed = conn.closed
            conn.send(data, keep_alive=False)
            sim.record(req, resp.status, kind, resp, closed)
        elif kind == "garbage":
            meta = self.process(req)
            body = b"\xff<" + sim.faults.rng.randbytes(prm["bytes"] - 2)
            resp = Response(prm["status"], body, ctype=b"application/json")
            self._respond(conn, req, resp.carry_meta(meta), kind)
        elif kind == "empty":
            resp = self.process(req)
            resp.body = b""
            self._respond(conn, req, resp, kind)
        elif kind == "mutate":
            self._respond(conn, req, self._mutate(req, prm), kind)
        elif kind == "huge":
            await self._send_huge(conn, req, self.process(req), prm["bytes"])
        else:   # slow_drip
            await self._send_slowly(conn, req, self.process(req), prm["bytes_per_sec"])

    def _mutate(self, req, prm):
        """Process the request, then make the answer hostile (MUTATIONS)."""
        mutation = prm["mutation"]
        if mutation == "cursor_cycle":
            # serve the first page whatever the cursor, and point to the other one
            given = req.query_args().get("c")
            req.query = "&".join(p for p in req.query.split("&") if not p.startswith("c="))
        resp = self.process(req)
        token = (req.headers.get(b"x-auth") or b"").decode("latin-1")
        if mutation == "echo_token":
            if resp.status == 201:
                resp.headers = [(n, v) for n, v in resp.headers if n != "Location"] + [
                    ("Location", f"{self.PREFIX}/scans/{token}")]
        try:
            body = json.loads(resp.body) if resp.body else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return resp
        if mutation == "echo_token":
            body["echo"] = token
            if "reason" in body:
                body["reason"] = f"{body['reason']} (token {token})"
            if resp.status == 201:
                body["scan_id"] = token
        elif mutation == "escaped_token":
            escaped = "".join(f"\\u{ord(ch):04x}" for ch in token)
            raw = encode_json(body)
            resp.body = b'{"echo":"' + escaped.encode() + b'",' + raw[1:] if len(raw) > 2 \
                else b'{"echo":"' + escaped.encode() + b'"}'
            return resp
        elif mutation == "long_vuln_id":
            for item in body.get("vulnerabilities", [])[:1]:
                item["vuln_id"] = "x" * prm["bytes"]
        elif mutation == "cursor_cycle":
            pagination = body.get("pagination")
            if isinstance(pagination, dict):
                nxt = "cycle-B" if given == "cycle-A" else "cycle-A"
                current = given or pagination.get("cursors", [None])[0]
                if "cursors" in pagination:
                    pagination["cursors"] = [current, nxt]
                else:
                    pagination["next_cursor"] = nxt
        elif mutation == "bad_counts":
            session = body.get("current_session")
            if session is None and isinstance(body.get("scans"), list) and body["scans"]:
                session = body["scans"][0].get("current_session")
            if isinstance(session, dict):
                session["severity_counts"] = prm["counts"]
        resp.body = encode_json(body)
        return resp

    def _respond(self, conn, req, resp, fault):
        closed = conn.closed
        conn.send(resp.head(req.keep_alive, req.http10) + resp.body, req.keep_alive)
        self.sim.record(req, resp.status, fault, resp, closed)

    async def _send_huge(self, conn, req, resp, size):
        """Valid JSON padded to `size` bytes, streamed in chunks."""
        if resp.body:
            prefix, suffix = b'{"_sim_padding":"', b'",' + resp.body[1:]
            status = resp.status
        else:
            prefix, suffix = b'{"_sim_padding":"', b'"}'
            status = 200 if resp.status == 204 else resp.status
        padding = max(0, size - len(prefix) - len(suffix))
        out = Response(status, ctype=resp.ctype, headers=resp.headers).carry_meta(resp)
        try:
            conn.send(out.head(req.keep_alive, req.http10,
                               len(prefix) + padding + len(suffix)) + prefix)
            chunk = b"x" * 262144
            while padding > 0 and not conn.closed:
                piece = chunk if padding >= len(chunk) else chunk[:padding]
                conn.send(piece)
                padding -= len(piece)
                await conn.drain()
            conn.send(suffix, req.keep_alive)
        finally:
            self.sim.record(req, status, "huge", out, conn.closed and padding > 0)

    async def _send_slowly(self, conn, req, resp, bytes_per_sec):
        """Headers at once, then the body (or the headers, if no body) dripped."""
        head = resp.head(req.keep_alive, req.http10)
        if resp.body:
            conn.send(head)
            data = resp.body
        else:
            data = head
        interval = max(0.05, 1.0 / bytes_per_sec)
        step = max(1, int(bytes_per_sec * interval))
        sent = 0
        try:
            while sent < len(data) and not conn.closed:
                conn.send(data[sent:sent + step])
                sent += step
                if sent < len(data):
                    await asyncio.sleep(interval)
            if not req.keep_alive:
                conn.close()
        finally:
            self.sim.record(req, resp.status, "slow_drip", resp, sent < len(data))

    # -- helpers --
    def _scan(self, scan_id):
        scan = self.sim.scans.get(scan_id.lower())
        if scan is None or scan.deleted:
            raise ApiError(404, [f"Scan {scan_id} not found"])
        return scan

    def _session_json(self, scan, st, single):
        clock = self.sim.clock
        counts = scan.counts(st.progress)
        session = {}
        if st.start_u is not None:
            session["scan_session_id"] = scan.session_id
        session["status"] = st.status
        session["progress"] = st.progress
        session["severity_counts"] = counts
        if single:
            session["threat"] = next(
                (SEVERITY_LEVEL[k] for k in SEVERITY_KEYS[:4] if counts[k]), 0)
            session["event_level"] = 2 if st.status == "failed" else 0
            session["acusensor"] = False
        if st.start_u is not None:
            session["start_date"] = iso(clock.wall(st.start_u))
        if st.end_u is not None:
            session["end_date"] = iso(clock.wall(st.end_u))
        return session

    def _scan_single(self, scan, st):
        t = scan.target
        return {
            "scan_id": scan.scan_id,
            "target_id": t.target_id,
            "profile_id": scan.profile_id,
            "profile_name": PROFILE_NAMES[scan.profile_id],
            "schedule": scan.schedule,
            "target": {"address": t.address, "description": t.description,
                       "criticality": t.criticality},
            "criticality": t.criticality,
            "manual_intervention": False,
            "next_run": iso(scan.created_at),
            "incremental": scan.options["incremental"],
            "max_scan_time": scan.options["max_scan_time"],
            "current_session": self._session_json(scan, st, True),
        }

    # -- handlers --
    def me(self, req):
        return Response(200, self._me_body)

    def launch(self, req):
        body = req.json_body()
        if not isinstance(body, dict):
            raise ApiError(422, ["body: must be a JSON object"])
        problems = []
        for field in ("target_id", "profile_id"):
            if field not in body:
                problems.append(f"{field}: required")
            elif not is_uuid(body[field]):
                problems.append(f"{field}: must be a uuid string")
        if body.get("user_authorized_to_scan") != "yes":
            problems.append('user_authorized_to_scan: must be "yes"')
        schedule = body.get("schedule")
        if not isinstance(schedule, dict):
            problems.append("schedule: required, must be an object")
        else:
            for flag in ("disable", "time_sensitive"):
                if flag in schedule and not isinstance(schedule[flag], bool):
                    problems.append(f"schedule.{flag}: must be a boolean")
        for flag in ("continuous", "incremental"):
            if flag in body and not isinstance(body[flag], bool):
                problems.append(f"{flag}: must be a boolean")
        if "max_scan_time" in body and (type(body["max_scan_time"]) is not int
                                        or body["max_scan_time"] < 0):
            problems.append("max_scan_time: must be a non-negative integer")
        if problems:
            raise ApiError(422, problems)
        target = self.sim.targets.get(body["target_id"].lower())
        if target is None:
            raise ApiError(404, [f"Target {body['target_id']} not found"], "Target not found")
        profile_id = body["profile_id"].lower()
        if profile_id not in PROFILE_NAMES:
            raise ApiError(404, [f"Scanning profile {body['profile_id']} not found"],
                           "Scanning profile not found")
        sim = self.sim
        scan_id = random_uuid(sim.id_rng)
        scan_schedule = {"disable": schedule.get("disable", False),
                         "time_sensitive": schedule.get("time_sensitive", False),
                         "triggerable": False}
        options = {"continuous": body.get("continuous", False),
                   "incremental": body.get("incremental", False),
                   "max_scan_time": body.get("max_scan_time", 0)}
        scan = Scan(len(sim.scans) + 1, scan_id, random_uuid(sim.id_rng), target, profile_id,
                    scan_schedule, options, sim.clock.now(), time.time())
        sim.scans[scan_id] = scan
        out = {"profile_id": profile_id, "schedule": dict(scan_schedule),
               "target_id": target.target_id, **options,
               "next_run": iso(scan.created_at), "user_authorized_to_scan": "yes"}
        mode = sim.config.scan_id_in
        if mode != "location":
            out["scan_id"] = scan_id
        headers = [] if mode == "body" else [("Location", f"{self.PREFIX}/scans/{scan_id}")]
        resp = json_response(out, 201, headers)
        resp.created = scan
        return resp

    def get_scan(self, req, scan_id):
        scan = self._scan(scan_id)
        now = self.sim.clock.now()
        scan.polls += 1
        if scan.polls == scan.target.polls_to_finish and scan.pin is None:
            _, status, progress, _ = scan.plan[-1]
            scan.pin = (status, int(progress), now)
        st = scan.state(now)
        key = (st, self._shape)
        if scan.cache_key != key:
            if self._shape == "single":
                body = self._scan_single(scan, st)
            else:
                body = {"scans": [{"scan_id": scan.scan_id, "target_id": scan.target.target_id,
                                   "profile_id": scan.profile_id,
                                   "current_session": self._session_json(scan, st, False)}]}
            scan.cache_body = encode_json(body)
            scan.cache_key = key
        return Response(200, scan.cache_body)

    def list_scans(self, req):
        args = req.query_args()
        q = args.get("q", "")
        filters = parse_scan_filter(q)
        now = self.sim.clock.now()
        rows = []
        for scan in reversed(list(self.sim.scans.values())):
            if scan.deleted:
                continue
            if "target_id" in filters and scan.target.target_id not in filters["target_id"]:
                continue
            if "profile_id" in filters and scan.profile_id not in filters["profile_id"]:
                continue
            st = scan.state(now)
            if "status" in filters and st.status not in filters["status"]:
                continue
            rows.append((scan, st))
        page, pagination = paginate(self.sim.config.pagination, "scans", rows,
                                    [-scan.seq for scan, _ in rows], args, q, "created:desc")
        return json_response({"scans": [self._scan_single(s, st) for s, st in page],
                              "pagination": pagination})

    def _action(self, scan_id, action, allowed, refusal):
        """abort/pause/resume: 204 if `allowed(status)`, else 409."""
        scan = self._scan(scan_id)
        now = self.sim.clock.now()
        status = scan.state(now).status
        if not allowed(status):
            raise ApiError(409, [refusal.format(status=status)])
        if not (action == "abort" and status == "aborting"):   # abort is idempotent
            scan.replan(now, action)
        return Response(204)

    def abort(self, req, scan_id):
        return self._action(scan_id, "abort", lambda s: s not in TERMINAL,
                            "Scan cannot be aborted: it is already {status}")

    def pause(self, req, scan_id):
        return self._action(scan_id, "pause",
                            lambda s: s in ("starting", "processing", "resuming"),
                            "Scan cannot be paused in status {status}")

    def resume(self, req, scan_id):
        return self._action(scan_id, "resume", lambda s: s == "paused",
                            "Scan cannot be resumed: it is {status}, not paused")

    def delete_scan(self, req, scan_id):
        self._scan(scan_id).deleted_at = time.time()
        return Response(204)

    def results(self, req, scan_id):
        scan = self._scan(scan_id)
        st = scan.state(self.sim.clock.now())
        rows = []
        if st.start_u is not None:
            row = {"scan_id": scan.scan_id, "result_id": scan.session_id,
                   "start_date": iso(self.sim.clock.wall(st.start_u)), "status": st.status}
            if st.end_u is not None:
                row["end_date"] = iso(self.sim.clock.wall(st.end_u))
            rows.append(row)
        page, pagination = paginate(self.sim.config.pagination, "results", rows,
                                    list(range(len(rows))), req.query_args(), scan.scan_id,
                                    "start_date:desc")
        return json_response({"results": page, "pagination": pagination})

    def _visible_vulns(self, scan_id, session_id):
        scan = self._scan(scan_id)
        st = scan.state(self.sim.clock.now())
        if st.start_u is None or session_id.lower() != scan.session_id:
            raise ApiError(404, [f"Scan session {session_id} not found"])
        seen = iso(self.sim.clock.wall(st.start_u))
        counts = scan.counts(st.progress)
        catalogue = scan.vuln_catalogue()
        return [dict(item, first_seen=seen, last_seen=seen)
                for key in SEVERITY_KEYS for item in catalogue[key][:counts[key]]]

    @staticmethod
    def _public_vuln(item):
        return {k: v for k, v in item.items() if k != "_impact"}

    def vulnerabilities(self, req, scan_id, session_id):
        items = self._visible_vulns(scan_id, session_id)
        page, pagination = paginate(self.sim.config.pagination, "vulns", items,
                                    list(range(len(items))), req.query_args(),
                                    f"{scan_id}/{session_id}", "severity:desc")
        return json_response({"vulnerabilities": [self._public_vuln(v) for v in page],
                              "pagination": pagination})

    def vulnerability(self, req, scan_id, session_id, vuln_id):
        for item in self._visible_vulns(scan_id, session_id):
            if item["vuln_id"] == vuln_id.lower():
                break
        else:
            raise ApiError(404, [f"Vulnerability {vuln_id} not found"])
        url = item["affects_url"]
        host, _, path = url.partition("://")[2].partition("/")
        param = item["affects_detail"]
        query = f"?{param}=%27%22%3E" if param else ""
        detail = self._public_vuln(item)
        detail.update({
            "description": f"{item['vt_name']} was detected on {url}.",
            "details": (f"<p>Parameter <strong>{param}</strong> is affected.</p>" if param
                        else f"<p>Detected on {url}.</p>"),
            "impact": item["_impact"],
            "recommendation": "Fix the issue and rescan the target.",
            "request": f"GET /{path}{query} HTTP/1.1\r\nHost: {host}\r\n"
                       "User-Agent: Mozilla/5.0 (invicti_sim)\r\n\r\n",
            "response_info": False,
            "highlights": [{"index": 4, "length": len(path) + 1, "in_response": False}],
            "references": [{"rel": item["tags"][0],
                            "href": "https://cwe.mitre.org/data/definitions/"
                                    f"{item['tags'][0].removeprefix('CWE-')}.html"}],
        })
        return json_response(detail)

    def targets(self, req):
        targets = sorted(self.sim.targets.values(), key=lambda t: t.order)
        last = {}
        for scan in self.sim.scans.values():
            if not scan.deleted:
                last[scan.target.target_id] = scan
        now = self.sim.clock.now()
        rows = []
        for t in targets:
            item = {"target_id": t.target_id, "address": t.address,
                    "description": t.description, "criticality": t.criticality,
                    "type": "default", "continuous_mode": False, "manual_intervention": False,
                    "last_scan_id": None, "last_scan_session_id": None,
                    "last_scan_session_status": None, "last_scan_date": None}
            scan = last.get(t.target_id)
            if scan is not None:
                st = scan.state(now)
                started = st.start_u is not None
                item.update(last_scan_id=scan.scan_id,
                            last_scan_session_id=scan.session_id if started else None,
                            last_scan_session_status=st.status,
                            last_scan_date=iso(scan.created_at))
            rows.append(item)
        page, pagination = paginate(self.sim.config.pagination, "targets", rows,
                                    [t.order for t in targets], req.query_args(), "", "order:asc")
        return json_response({"targets": page, "pagination": pagination})

    def scanning_profiles(self, req):
        return json_response({"scanning_profiles": [
            {"profile_id": pid, "name": name, "custom": False, "sort_order": i + 1}
            for i, (pid, name) in enumerate(SCANNING_PROFILES)]})


# ---------------------------------------------------------------------------
# The control API (/_sim/...)
# ---------------------------------------------------------------------------

class ControlApp:
    def __init__(self, sim):
        self.sim = sim
        r = self.router = Router()
        r.add("/_sim/health", get=self.health)
        r.add("/_sim/reset", post=self.reset)
        r.add("/_sim/targets", get=self.get_targets, put=self.put_targets)
        r.add("/_sim/scans", get=self.list_scans)
        r.add("/_sim/scans/{scan_id}", get=self.get_scan)
        r.add("/_sim/scans/{scan_id}/force", post=self.force)
        r.add("/_sim/log", get=self.get_log)
        r.add("/_sim/stats", get=self.stats)
        r.add("/_sim/config", get=self.get_config, post=self.post_config)
        r.add("/_sim/faults", get=self.get_faults, post=self.post_faults,
              delete=self.delete_faults)
        r.add("/_sim/outage", get=self.get_outage, post=self.post_outage)

    def handle(self, conn, req):
        _, resp = self.router.dispatch(req)
        if asyncio.iscoroutine(resp):
            conn.run_async(self._finish(conn, req, resp))
        else:
            conn.send(resp.head(req.keep_alive, req.http10) + resp.body, req.keep_alive)

    async def _finish(self, conn, req, coro):
        try:
            resp = await coro
        except ApiError as exc:
            resp = exc.response()
        conn.send(resp.head(req.keep_alive, req.http10) + resp.body, req.keep_alive)

    @staticmethod
    def _body(req, required=True):
        if not req.body.strip():
            if required:
                raise ApiError(400, ["a JSON object body is required"])
            return {}
        body = req.json_body()
        if not isinstance(body, dict):
            raise ApiError(400, ["the body must be a JSON object"])
        return body

    def health(self, req):
        sim = self.sim
        return json_response({"status": "ok", "pid": os.getpid(),
                              "api_port": sim.api_listener.port,
                              "control_port": sim.control_listener.port,
                              "api_down": not sim.api_listener.up})

    async def reset(self, req):
        self.sim.reset_state()
        if not self.sim.api_listener.up:
            await self.sim.api_up()
        return json_response({"reset": True})

    def get_targets(self, req):
        return json_response({"targets": [
            t.sim_json(t.target_id == BUILTIN_TARGET_ID)
            for t in sorted(self.sim.targets.values(), key=lambda t: t.order)]})

    def put_targets(self, req):
        specs = self._body(req).get("targets")
        if not isinstance(specs, list):
            raise ApiError(400, ["targets: must be a list"])
        try:
            targets = [Target(spec, 0) for spec in specs]
        except ValueError as exc:
            raise ApiError(400, [str(exc)]) from None
        for target in targets:
            self.sim.put_target(target)
        return self.get_targets(req)

    def _scan_json(self, scan, now):
        st = scan.state(now)
        clock = self.sim.clock
        return {"scan_id": scan.scan_id, "target_id": scan.target.target_id,
                "profile_id": scan.profile_id, "created_at": iso(scan.created_at),
                "status": st.status, "progress": st.progress,
                "scan_session_id": scan.session_id if st.start_u is not None else None,
                "start_date": iso(clock.wall(st.start_u)) if st.start_u is not None else None,
                "end_date": iso(clock.wall(st.end_u)) if st.end_u is not None else None,
                "severity_counts": scan.counts(st.progress),
                "outcome": scan.target.outcome,
                "deleted": scan.deleted, "request_seq": scan.request_seq,
                "pinned": scan.pin is not None}

    def list_scans(self, req):
        now = self.sim.clock.now()
        return json_response({"scans": [self._scan_json(s, now)
                                        for s in self.sim.scans.values()]})

    def _find_scan(self, scan_id):
        scan = self.sim.scans.get(scan_id.lower())
        if scan is None:
            raise ApiError(404, [f"Scan {scan_id} not found"])
        return scan

    def get_scan(self, req, scan_id):
        return json_response(self._scan_json(self._find_scan(scan_id), self.sim.clock.now()))

    def force(self, req, scan_id):
        scan = self._find_scan(scan_id)
        body = self._body(req)
        if "status" not in body or set(body) - {"status", "progress"}:
            raise ApiError(400, ["expected {\"status\": str|null, \"progress\": int}"])
        status, progress = body["status"], body.get("progress")
        if status is None:
            scan.pin = None
        else:
            if not isinstance(status, str) or not status:
                raise ApiError(400, ["status: must be a non-empty string or null"])
            if progress is not None and (type(progress) is not int or not 0 <= progress <= 100):
                raise ApiError(400, ["progress: must be an integer in [0, 100]"])
            scan.pin = (status, progress, self.sim.clock.now())
        return self.get_scan(req, scan_id)

    def get_log(self, req):
        args = req.query_args()
        try:
            since = int(args.get("since", 0))
            limit = int(args.get("limit", 100000))
            if limit < 1:
                raise ValueError
        except ValueError:
            raise ApiError(400, ["since and limit must be integers (limit >= 1)"]) from None
        log = self.sim.log
        entries, more = log.since(since, limit)
        next_seq = entries[-1]["seq"] + 1 if entries else max(since, log.first_seq)
        return json_response({"entries": entries, "next_seq": min(next_seq, log.next_seq),
                              "more": more, "first_seq": log.first_seq,
                              "dropped": log.dropped, "cap": log.cap})

    def stats(self, req):
        counts = {}
        for (method, template, status), n in sorted(
                self.sim.stats.items(), key=lambda kv: (kv[0][1] or "", kv[0][0], kv[0][2])):
            counts[f"{method} {template or '(unmatched)'} {status}"] = n
        return json_response({"total": self.sim.total_requests, "counts": counts})

    def get_config(self, req):
        sim = self.sim
        return json_response(dict(sim.config.public(), seed=sim.args.seed,
                                  tls=sim.api_listener.ssl_context is not None,
                                  host=sim.args.host, api_port=sim.api_listener.port,
                                  control_port=sim.control_listener.port))

    def post_config(self, req):
        try:
            self.sim.set_config(self.sim.config.update(self._body(req)))
        except ValueError as exc:
            raise ApiError(400, [str(exc)]) from None
        return self.get_config(req)

    def get_faults(self, req):
        return json_response({"rules": [r.public() for r in self.sim.faults.rules]})

    def post_faults(self, req):
        body = self._body(req)
        rules = body.get("rules")
        if not isinstance(rules, list) or set(body) - {"rules", "seed"}:
            raise ApiError(400, ['expected {"rules": [...], "seed": optional int}'])
        try:
            parsed = [FaultRule(spec) for spec in rules]
        except ValueError as exc:
            raise ApiError(400, [str(exc)]) from None
        if "seed" in body:
            self.sim.faults.rng.seed(f"{body['seed']}:faults")
        self.sim.faults.rules = parsed
        return self.get_faults(req)

    def delete_faults(self, req):
        self.sim.faults.rules = []
        return self.get_faults(req)

    def get_outage(self, req):
        return json_response(self.sim.outage_json())

    async def post_outage(self, req):
        body = self._body(req)
        sim = self.sim
        if "seconds" in body:
            try:
                seconds = _number(body["seconds"], "seconds")
            except ValueError as exc:
                raise ApiError(400, [str(exc)]) from None
            sim.api_down(seconds)
        elif isinstance(body.get("down"), bool):
            if body["down"]:
                sim.api_down()
            else:
                await sim.api_up()
        else:
            raise ApiError(400, ['expected {"seconds": N} or {"down": true|false}'])
        return json_response(sim.outage_json())


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(description="Invicti API simulator (test double).")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="API port (0: pick a free one)")
    ap.add_argument("--control-port", type=int, default=0,
                    help="control API port (0: pick a free one)")
    ap.add_argument("--port-file", help="write {api_port, control_port, pid} here when ready")
    ap.add_argument("--token", help="the valid X-Auth value")
    ap.add_argument("--no-auth", action="store_true", help="accept requests without X-Auth")
    ap.add_argument("--forbidden-token", help="a token that authenticates but gets 403")
    ap.add_argument("--shape", choices=Config.CHOICES["shape"], default="wrapped")
    ap.add_argument("--scan-id-in", choices=Config.CHOICES["scan_id_in"],
                    default="body+location")
    ap.add_argument("--pagination", choices=Config.CHOICES["pagination"], default="cursors")
    ap.add_argument("--time-scale", type=float, default=1.0,
                    help="seconds per time unit of the scan timeline")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--log-file", help="append every request-log entry as a JSON line")
    ap.add_argument("--log-cap", type=int, default=2_000_000,
                    help="request-log entries kept in memory")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--targets-file", help='JSON {"targets": [...]} preloaded at start')
    args = ap.parse_args(argv)
    if args.token is None and not args.no_auth:
        ap.error("--token is required unless --no-auth is given")
    if args.token is not None and args.no_auth:
        ap.error("--token and --no-auth are mutually exclusive")
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    if args.time_scale <= 0:
        ap.error("--time-scale must be positive")
    if args.log_cap < 1:
        ap.error("--log-cap must be positive")
    return ap, args


def load_targets_file(ap, path):
    if path is None:
        return []
    try:
        with open(path, encoding="utf-8") as f:
            specs = json.load(f)["targets"]
        for spec in specs:
            Target(spec, 0)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        ap.error(f"--targets-file {path}: {exc}")
    return specs


def write_port_file(path, data):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(tmp, path)


async def serve(args, startup_targets):
    sim = Simulator(args, startup_targets)
    await sim.start()
    api_port, control_port = sim.api_listener.port, sim.control_listener.port
    if args.port_file:
        write_port_file(args.port_file, {"api_port": api_port, "control_port": control_port,
                                         "pid": os.getpid()})
    scheme = "https" if args.tls_cert else "http"
    print(f"invicti_sim listening api={scheme}://{args.host}:{api_port} "
          f"control=http://{args.host}:{control_port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    sim.close()


def main(argv=None):
    ap, args = parse_args(argv)
    startup_targets = load_targets_file(ap, args.targets_file)
    asyncio.run(serve(args, startup_targets))


if __name__ == "__main__":
    main()
