"""The HTTP/1.1 server: messages, one asyncio.Protocol per connection,
listeners and the router.  Knows nothing of Invicti.

It must never know about scans or tokens: it parses requests and writes
responses, nothing else.

Part of invicti_sim (see ../invicti_sim.py and ../README.md)."""

import asyncio
import json
import socket
import struct
import time
from email.utils import formatdate
from http import HTTPStatus
from urllib.parse import parse_qs

# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

_json_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode_json(obj):
    return _json_encoder.encode(obj).encode("utf-8")



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



PROXY_HTML = (b"<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n"
              b"<center><h1>%d %s</h1></center>\r\n<hr><center>nginx</center>\r\n"
              b"</body>\r\n</html>\r\n")

JSON_CT = b"application/json; charset=utf-8"
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 10 * 1024 * 1024


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
    __slots__ = ("status", "body", "headers", "ctype", "auth", "template", "created",
                 "off_spec", "listed")

    def __init__(self, status, body=b"", headers=(), ctype=JSON_CT):
        self.status = status
        self.body = body
        self.headers = headers          # sequence of (name, value) str pairs
        self.ctype = ctype
        self.auth = "ok"
        self.template = None
        self.created = None              # Scan created by this request, if any
        self.off_spec = None             # why this answer knowingly departs from the spec
        self.listed = None               # GET /scans: the scan ids it carried

    def carry_meta(self, other):
        self.auth, self.template, self.created = other.auth, other.template, other.created
        self.off_spec, self.listed = other.off_spec, other.listed
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
