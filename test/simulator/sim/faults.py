"""Fault injection: the rules, and how a rule changes an answer.

Faults stand for what a network or a broken server does; none of them is
claimed to be the real API's behaviour, and none may leak a token except
the "mutate" echo modes, whose purpose is to test redaction.

Part of invicti_sim (see ../invicti_sim.py and ../README.md)."""

import asyncio
import json
import random
import re
import time
from email.utils import formatdate

from .httpserver import PROXY_HTML, Response, encode_json, error_response, status_phrase

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
#                  body and in error reasons; a 201's Location and id field
#                  (scan_id, target_id, profile_id, report_id) carry it
#                  instead of the new object's id
#   escaped_token  the same value spelled with \\u escapes in an "echo" field
#   long_vuln_id   the first finding of a page gets a vuln_id of `bytes` bytes
#   cursor_cycle   list pages never end: the next cursor alternates between
#                  "cycle-A" and "cycle-B", each serving the first page
#   bad_counts     current_session.severity_counts becomes `counts`
# the id field of what a 201 created, by the collection in its Location
CREATED_ID_KEYS = {"scans": "scan_id", "targets": "target_id",
                   "scanning_profiles": "profile_id", "reports": "report_id"}

MUTATIONS = ("echo_token", "escaped_token", "long_vuln_id", "cursor_cycle", "bad_counts")

# kind -> {param: (default, validator)}
FAULT_PARAMS = {
    "latency": {"ms": (1000, _number), "jitter_ms": (0, _number),
                "when": ("before", lambda v, n: _choice(v, n, ("before", "after")))},
    "status": {"status": (500, lambda v, n: _integer(v, n, 200, 599)),
               "reason": (None, lambda v, n: _string(v, n)),
               # a list as the spec has it; an object too (a delay: retry_after)
               "details": (None, lambda v, n: v if isinstance(v, (list, dict)) else _string(v, n)),
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




class FaultInjection:
    """Mixed into the API app: applies the fault rule picked for a request."""

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
            sent_query = req.query
            req.query = "&".join(p for p in req.query.split("&") if not p.startswith("c="))
        resp = self.process(req)
        if mutation == "cursor_cycle":
            req.query = sent_query      # the request log shows what the client sent
        token = (req.headers.get(b"x-auth") or b"").decode("latin-1")
        id_key = None
        if mutation == "echo_token" and resp.status == 201:
            # the token instead of the new object's id: in Location (added
            # for a launch that had none) and in its id field
            location = next((v for n, v in resp.headers if n == "Location"),
                            f"{self.PREFIX}/scans/")
            collection = location.rsplit("/", 1)[0]
            id_key = CREATED_ID_KEYS.get(collection.rsplit("/", 1)[1])
            resp.headers = [(n, v) for n, v in resp.headers if n != "Location"] + [
                ("Location", f"{collection}/{token}")]
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
            if id_key is not None:
                body[id_key] = token
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
            # a single scan, or every scan of a list page
            items = body["scans"] if isinstance(body.get("scans"), list) else [body]
            for item in items:
                session = item.get("current_session") if isinstance(item, dict) else None
                if isinstance(session, dict):
                    session["severity_counts"] = prm["counts"]
        resp.body = encode_json(body)
        return resp

    def _respond(self, conn, req, resp, fault):
        closed = conn.closed
        conn.send(resp.head(req.keep_alive, req.http10) + resp.body, req.keep_alive)
        self.sim.record(req, resp.status, fault, resp, closed)

    async def _send_huge(self, conn, req, resp, size):
        """Valid JSON padded to `size` bytes, streamed in chunks (a body that
        is not JSON, such as a report file, gets the padding after it)."""
        if resp.body and not resp.ctype.startswith(b"application/json"):
            prefix, suffix = resp.body, b""
            status = resp.status
        elif resp.body:
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
