#!/usr/bin/python3
"""Tests of the Invicti API simulator (invicti_sim.py), stdlib unittest only.

Every test talks to a real simulator subprocess over loopback.  Run:
    /usr/bin/python3 -m unittest discover -s test/simulator -v
    /usr/bin/python3 test/simulator/test_invicti_sim.py

The defaults are the vendor's Swagger spec (test/contract/acunetix-api.yaml);
the *_KEYS sets below are the properties its schemas allow.
"""

import email.utils
import hashlib
import html.parser
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import threading
import subprocess
import sys
import tempfile
import time
import unittest
from datetime import datetime, timedelta, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
SIM = os.path.join(HERE, "invicti_sim.py")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
OPENSSL = shutil.which("openssl") or ("/usr/bin/openssl" if os.path.exists("/usr/bin/openssl")
                                      else None)

TOKEN = "eyJhbGciOiJIUzI1NiJ9.sim-test-token.c2lnbmF0dXJl"
FORBIDDEN = "0123456789abcdef-readonly"
BUILTIN_TARGET = "2df49409-ee21-4080-9640-eb46f4610054"
FULL_SCAN = "11111111-1111-1111-1111-111111111111"
HIGH_RISK = "11111111-1111-1111-1111-111111111112"
TIME_SCALE = 0.02          # seconds per time unit for the shared server
SEVERITIES = ("critical", "high", "medium", "low", "info")
LEVEL = {"critical": 4, "high": 3, "medium": 2, "low": 1, "info": 0}
TERMINAL = {"completed", "failed", "aborted"}
ISO_RE = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$"
DATE_RE = r"^\d{4}-\d\d-\d\d$"        # the spec's "date" fields (variant date_fields)
NAIVE_ISO_RE = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$"     # variant dates=naive
UUID_RE = r"^[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}$"

# What the spec's schemas allow (their properties; allOf merged).
SCAN_KEYS = {"target_id", "profile_id", "report_template_id", "schedule", "max_scan_time",
             "incremental", "next_run"}
SCAN_ITEM_KEYS = SCAN_KEYS | {"current_session", "previous_session", "target",
                              "criticality", "profile_name", "scan_id", "start_date",
                              "manual_intervention"}
SCAN_INFO_KEYS = {"status", "event_level", "severity_counts", "progress", "start_date",
                  "threat", "scan_session_id", "acusensor"}
SCAN_INFO_STATUSES = {"scheduled", "queued", "starting", "processing", "aborting", "aborted",
                      "pausing", "paused", "completed", "failed"}
SCHEDULE_KEYS = {"disable", "time_sensitive", "history_limit", "start_date", "recurrence",
                 "triggerable"}
TARGET_KEYS = {"address", "description", "type", "criticality", "fqdn_status",
               "fqdn_tm_hash", "deleted_at", "fqdn", "fqdn_hash",
               "default_scanning_profile_id", "agents", "default_overrides"}
TARGET_INFO_KEYS = {"target_id", "scan_authorization", "continuous_mode", "last_scan_date",
                    "last_scan_id", "last_scan_session_id", "last_scan_session_status",
                    "severity_counts", "threat", "links", "manual_intervention",
                    "verification"}
PAGINATION_KEYS = {"count", "cursors", "cursor_hash", "sort"}
RESULT_KEYS = {"scan_id", "result_id", "start_date", "end_date", "status"}
VULN_KEYS = {"status", "comment", "target_description", "vuln_id", "target_vuln_id",
             "issue_id", "issue_tracker_id", "issue_url", "vt_name", "criticality", "vt_id",
             "affects_detail", "affects_url", "source", "loc_id", "target_id", "first_seen",
             "last_seen", "severity", "tags", "continuous", "confidence", "vt_created",
             "vt_updated", "app", "archived"}
VULN_DETAIL_KEYS = VULN_KEYS | {"description", "cvss2", "cvss3", "cvss4", "cvss_score",
                                "cvss4_score", "impact", "recommendation", "long_description",
                                "references", "details", "request", "response_info",
                                "highlights"}
PROFILE_KEYS = {"name", "profile_id", "sort_order", "custom", "checks"}
ERROR_KEYS = {"code", "reason", "details"}
SCAN_FILTER_KEYS = ("target", "target_id", "scan_status", "threat", "business_criticality",
                    "profile_id", "group_id")


def tid(n):
    """A deterministic target uuid for test number n."""
    return f"aaaaaaaa-0000-4000-8000-{n:012d}"


def expected_final_counts(target_id):
    digest = hashlib.sha256(target_id.encode()).digest()
    maxima = (3, 6, 8, 10, 12)
    return {k: digest[i] % (maxima[i] + 1) for i, k in enumerate(SEVERITIES)}


def threat_of(counts):
    return next((LEVEL[k] for k in SEVERITIES[:4] if counts[k]), 0)


def rfc3339(seconds_from_now):
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds_from_now)).isoformat()


def wait_until(predicate, timeout=10.0, interval=0.02, message="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers          # lower-case names
        self.body = body

    def json(self):
        return json.loads(self.body)


class Simulator:
    """A simulator subprocess and HTTP helpers to talk to it."""

    def __init__(self, *extra, token=TOKEN, forbidden=FORBIDDEN, time_scale=TIME_SCALE):
        self.tmp = tempfile.mkdtemp(prefix="invicti_sim_test_")
        port_file = os.path.join(self.tmp, "ports.json")
        args = [PYTHON, SIM, "--port", "0", "--control-port", "0", "--port-file", port_file,
                "--time-scale", str(time_scale)]
        if token is not None:
            args += ["--token", token]
        if forbidden is not None:
            args += ["--forbidden-token", forbidden]
        self.token = token
        self.tls = "--tls-cert" in extra
        self.stderr_path = os.path.join(self.tmp, "stderr.log")
        with open(self.stderr_path, "w", encoding="utf-8") as stderr:
            self.proc = subprocess.Popen(args + list(extra), stdout=subprocess.PIPE,
                                         stderr=stderr, text=True)
        try:
            wait_until(lambda: os.path.exists(port_file) or self.proc.poll() is not None,
                       timeout=15, message="the port file")
            if self.proc.poll() is not None:
                raise RuntimeError(f"simulator exited: {self.stderr()}")
            with open(port_file, encoding="utf-8") as f:
                ports = json.load(f)
        except BaseException:
            self.stop()
            raise
        self.api_port = ports["api_port"]
        self.control_port = ports["control_port"]
        self.pid = ports["pid"]
        self.ready_line = self.proc.stdout.readline()

    def stderr(self):
        with open(self.stderr_path, encoding="utf-8") as f:
            return f.read()

    def stop(self):
        """Stop the process; returns what it wrote to stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        stderr = self.stderr()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return stderr

    # -- raw HTTP --
    def _connection(self, port, timeout, tls=False):
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=ctx)
        return http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def request(self, port, method, path, body=None, headers=None, timeout=10, tls=False):
        conn = self._connection(port, timeout, tls)
        try:
            data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
            hdrs = dict(headers or {})
            if data is not None or method in ("POST", "PUT", "PATCH"):
                hdrs.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def api(self, method, path, body=None, token="default", headers=None, **kw):
        hdrs = {"Accept": "application/json", "User-Agent": "sim-tests/1.0"}
        token = self.token if token == "default" else token
        if token is not None:
            hdrs["X-Auth"] = token
        hdrs.update(headers or {})
        return self.request(self.api_port, method, "/api/v1" + path, body, hdrs,
                            tls=self.tls, **kw)

    def ctl(self, method, path, body=None, expect=200):
        reply = self.request(self.control_port, method, "/_sim" + path, body)
        if expect is not None and reply.status != expect:
            raise AssertionError(f"control {method} {path}: {reply.status} {reply.body!r}")
        return reply.json()

    # -- scenario helpers --
    @staticmethod
    def launch_body(target_id=BUILTIN_TARGET, profile_id=FULL_SCAN, **extra):
        body = {"user_authorized_to_scan": "yes", "target_id": target_id,
                "profile_id": profile_id, "schedule": {"disable": False,
                                                       "time_sensitive": False}}
        body.update(extra)
        return body

    def launch(self, target_id=BUILTIN_TARGET, profile_id=FULL_SCAN, expect=201, **extra):
        reply = self.api("POST", "/scans", self.launch_body(target_id, profile_id, **extra))
        if reply.status != expect:
            raise AssertionError(f"launch: {reply.status} {reply.body!r}")
        return reply

    @staticmethod
    def scan_id_of(reply):
        """The spec: the id is in Location; a body-only server has it in the body."""
        location = reply.headers.get("location")
        if location is not None:
            return location.rsplit("/", 1)[1]
        return reply.json()["scan_id"]

    def launch_id(self, target_id=BUILTIN_TARGET, profile_id=FULL_SCAN, **extra):
        return self.scan_id_of(self.launch(target_id, profile_id, **extra))

    def add_targets(self, *specs):
        return self.ctl("PUT", "/targets", {"targets": list(specs)})

    def new_report(self, source, template_id="11111111-1111-1111-1111-111111111111"):
        reply = self.api("POST", "/reports", {"template_id": template_id, "source": source})
        if reply.status != 201:
            raise AssertionError(f"new report: {reply.status} {reply.body!r}")
        return reply.json()

    def wait_report(self, report_id, status="completed", timeout=15):
        return wait_until(lambda: (lambda r: r if r["status"] == status else None)(
            self.api("GET", f"/reports/{report_id}").json()), timeout=timeout,
            message=f"report {report_id} {status}")

    def config(self, **changes):
        return self.ctl("POST", "/config", changes)

    def session(self, scan_id):
        reply = self.api("GET", f"/scans/{scan_id}")
        assert reply.status == 200, (reply.status, reply.body)
        body = reply.json()
        return body["scans"][0]["current_session"] if "scans" in body else body["current_session"]

    def results(self, scan_id):
        reply = self.api("GET", f"/scans/{scan_id}/results")
        assert reply.status == 200, (reply.status, reply.body)
        return reply.json()["results"]

    def wait_status(self, scan_id, statuses, timeout=15):
        statuses = {statuses} if isinstance(statuses, str) else set(statuses)
        return wait_until(lambda: (lambda s: s if s.get("status") in statuses else None)(
            self.session(scan_id)), timeout=timeout, message=f"{scan_id} in {statuses}")

    def log(self, since=0):
        return self.ctl("GET", f"/log?since={since}")

    def faults(self, *rules, seed=None):
        body = {"rules": list(rules)}
        if seed is not None:
            body["seed"] = seed
        return self.ctl("POST", "/faults", body)


class SpecAssertions:
    """Checks of answers against the spec's schemas (mixed into test cases)."""

    def assertError(self, reply, status, reason=None):
        self.assertEqual(reply.status, status, reply.body)
        self.assertTrue(reply.headers["content-type"].startswith("application/json"))
        body = reply.json()
        self.assertLessEqual(set(body), ERROR_KEYS)
        self.assertEqual(body["code"], status)
        self.assertIsInstance(body["reason"], str)
        self.assertIsInstance(body["details"], list)
        if reason is not None:
            self.assertEqual(body["reason"], reason)
        return body

    def assertKeys(self, obj, allowed):
        """Every key of obj is a property of the spec's schema."""
        self.assertIsInstance(obj, dict)
        self.assertLessEqual(set(obj), allowed, obj)

    def assertScanInfo(self, session, end_date=False):
        allowed = SCAN_INFO_KEYS | ({"end_date"} if end_date else set())
        self.assertKeys(session, allowed)
        if not end_date:
            self.assertNotIn("end_date", session)

    def assertScanItem(self, item, end_date=False):
        self.assertKeys(item, SCAN_ITEM_KEYS)
        for key in ("target_id", "profile_id", "schedule"):     # the Scan schema's required
            self.assertIn(key, item)
        self.assertKeys(item["schedule"], SCHEDULE_KEYS)
        self.assertKeys(item["target"], TARGET_KEYS)
        self.assertIn("address", item["target"])                # Target's required
        self.assertScanInfo(item["current_session"], end_date)

    def assertPagination(self, pagination):
        self.assertKeys(pagination, PAGINATION_KEYS)
        self.assertTrue(all(isinstance(c, str) for c in pagination["cursors"]))


class SimTestCase(SpecAssertions, unittest.TestCase):
    """One shared simulator; state reset before each test."""
    sim = None

    @classmethod
    def setUpClass(cls):
        cls.sim = Simulator()

    @classmethod
    def tearDownClass(cls):
        stderr = cls.sim.stop()
        for marker in ("Traceback", "exception", "Error"):
            if marker in stderr:
                raise AssertionError(f"the simulator logged problems:\n{stderr[:3000]}")

    def setUp(self):
        self.sim.ctl("POST", "/reset")


# ---------------------------------------------------------------------------
# Endpoints
# ---------------------------------------------------------------------------

class EndpointTests(SimTestCase):

    def test_startup_line_and_health(self):
        self.assertIn(f"api=http://127.0.0.1:{self.sim.api_port}", self.sim.ready_line)
        self.assertIn(f"control=http://127.0.0.1:{self.sim.control_port}", self.sim.ready_line)
        health = self.sim.ctl("GET", "/health")
        self.assertEqual(health["status"], "ok")
        self.assertEqual(health["pid"], self.sim.pid)

    def test_me_and_pause_are_not_in_the_spec(self):
        reply = self.sim.api("GET", "/me")
        self.assertError(reply, 404, "Object not found")
        scan_id = self.sim.launch_id()
        self.assertError(self.sim.api("POST", f"/scans/{scan_id}/pause"), 404,
                         "Object not found")
        self.assertEqual(self.sim.ctl("GET", f"/scans/{scan_id}")["pinned"], False)
        stats = self.sim.ctl("GET", "/stats")["counts"]
        self.assertEqual(stats["GET (unmatched) 404"], 1)
        self.assertEqual(stats["POST (unmatched) 404"], 1)

    def test_auth_errors(self):
        body = self.assertError(self.sim.api("GET", "/scanning_profiles", token=None), 401,
                                "Unauthorized")
        self.assertNotIn(TOKEN, json.dumps(body))
        self.assertError(self.sim.api("GET", "/scans", token="wrong"), 401, "Unauthorized")
        self.assertError(self.sim.api("GET", "/scans/x", token=FORBIDDEN), 403, "Forbidden")
        self.assertError(self.sim.api("POST", "/scans", {}, token=FORBIDDEN), 403)
        auths = [e["auth"] for e in self.sim.log()["entries"]]
        self.assertEqual(auths, ["missing", "bad", "forbidden", "forbidden"])
        self.assertEqual(self.sim.ctl("GET", "/scans")["scans"], [])

    def test_auth_failure_400_variant(self):
        self.sim.config(auth_failure=400)
        for token, detail in ((None, "Missing X-Auth header"), ("wrong", "Invalid X-Auth token")):
            with self.subTest(token=token):
                body = self.assertError(self.sim.api("GET", "/scanning_profiles", token=token),
                                        400, "Invalid Authorization header")
                self.assertEqual(body["details"], [detail])
        self.assertError(self.sim.api("POST", "/scans", self.sim.launch_body(), token="wrong"),
                         400, "Invalid Authorization header")
        self.assertError(self.sim.api("GET", "/scans", token=FORBIDDEN), 403, "Forbidden")
        self.assertEqual(self.sim.api("GET", "/scans").status, 200)
        auths = [e["auth"] for e in self.sim.log()["entries"]]
        self.assertEqual(auths, ["missing", "bad", "bad", "forbidden", "ok"])
        self.assertEqual(self.sim.ctl("GET", "/scans")["scans"], [])
        self.sim.ctl("POST", "/reset")                     # back to the spec's 401
        self.assertError(self.sim.api("GET", "/scans", token=None), 401)

    def test_unknown_path_and_wrong_method(self):
        self.assertError(self.sim.api("GET", "/nothing/here"), 404, "Object not found")
        reply = self.sim.api("PUT", "/scans")
        self.assertError(reply, 405)
        self.assertEqual(reply.headers["allow"], "GET, POST")
        self.assertError(self.sim.api("GET", "/scans/x/abort"), 405)
        self.assertError(self.sim.api("GET", "/scans/00000000-0000-4000-8000-000000000000"),
                         404, "Object not found")

    def test_scanning_profiles(self):
        reply = self.sim.api("GET", "/scanning_profiles")
        self.assertEqual(reply.status, 200)
        self.assertEqual(reply.headers["content-type"], "application/json; charset=utf-8")
        profiles = reply.json()["scanning_profiles"]
        names = {p["profile_id"]: p["name"] for p in profiles}
        self.assertEqual(names, {
            FULL_SCAN: "Full Scan", HIGH_RISK: "High Risk",
            "11111111-1111-1111-1111-111111111113": "SQL Injection",
            "11111111-1111-1111-1111-111111111115": "Weak Passwords",
            "11111111-1111-1111-1111-111111111116": "Cross-site Scripting",
            "11111111-1111-1111-1111-111111111117": "Crawl Only"})
        for profile in profiles:
            self.assertKeys(profile, PROFILE_KEYS)
            self.assertEqual(profile["checks"], [])         # required by ScanningProfile
            self.assertIs(profile["custom"], False)
        self.assertEqual([p["sort_order"] for p in profiles], list(range(1, 7)))

    def _collect_pages(self, path, key, style, limit):
        """Follow a list to its end; self.trail gets each page's cursors."""
        items, pages, cursor = [], 0, None
        self.trail = []
        while True:
            sep = "&" if "?" in path else "?"
            url = f"{path}{sep}l={limit}" + (f"&c={cursor}" if cursor is not None else "")
            reply = self.sim.api("GET", url)
            self.assertEqual(reply.status, 200, reply.body)
            body = reply.json()
            pag = body["pagination"]
            self.assertLessEqual(len(body[key]), limit)
            self.assertIn("count", pag)
            self.assertIn("cursor_hash", pag)
            self.assertIn("sort", pag)
            items += body[key]
            pages += 1
            if style == "cursors":
                self.assertPagination(pag)
                self.assertNotIn("next_cursor", pag)
                self.trail.append(pag["cursors"])
                cursor = pag["cursors"][1] if len(pag["cursors"]) > 1 else None
            else:
                self.assertNotIn("cursors", pag)
                cursor = pag["next_cursor"]
                self.trail.append(cursor)
                if cursor is not None:
                    kind = int if style == "next_cursor_int" else str
                    self.assertIs(type(cursor), kind)
            if cursor is None:
                return items, pages, pag["count"]
            self.assertLess(pages, 100, "pagination does not end")

    def test_targets_paging_every_style(self):
        self.sim.add_targets(*[{"target_id": tid(i), "address": f"https://t{i}.test"}
                               for i in range(1, 231)])
        trails = {"cursors": [["0", "99"], ["99", "198"], ["198"]],
                  "next_cursor": ["99", "198", None],
                  "next_cursor_int": [99, 198, None]}
        for style, trail in trails.items():
            with self.subTest(style=style):
                self.sim.config(pagination=style)
                targets, pages, count = self._collect_pages("/targets", "targets", style, 99)
                self.assertEqual((pages, count), (3, 231))
                self.assertEqual(self.trail, trail)      # offsets, as the spec's ?c=2&l=1
                ids = [t["target_id"] for t in targets]
                self.assertEqual(ids, [BUILTIN_TARGET] + [tid(i) for i in range(1, 231)])
                for t in targets[:2]:
                    self.assertTrue(set(t) >= {"target_id", "address", "description",
                                               "criticality"})
        # The spec's example: ?c=2&l=1 is the third item.
        self.sim.config(pagination="cursors")
        page = self.sim.api("GET", "/targets?c=2&l=1").json()
        self.assertEqual([t["target_id"] for t in page["targets"]], [tid(2)])
        self.assertEqual(page["pagination"]["cursors"], ["2", "3"])
        past_end = self.sim.api("GET", "/targets?c=500").json()
        self.assertEqual((past_end["targets"], past_end["pagination"]["cursors"]), ([], ["500"]))
        for bad in ("abc", "-1", "1.5", "1234567890"):
            with self.subTest(cursor=bad):
                self.assertError(self.sim.api("GET", f"/targets?c={bad}"), 400, "Invalid cursor")

    def test_target_items_follow_the_spec(self):
        self.sim.add_targets({"target_id": tid(1), "duration_scale": 10000})
        before = self.sim.api("GET", "/targets").json()["targets"]
        for t in before:
            self.assertKeys(t, TARGET_KEYS | TARGET_INFO_KEYS)
            self.assertFalse([k for k in t if k.startswith("last_scan")], t)   # no nulls
            self.assertNotIn(None, t.values())
        scan_id = self.sim.launch_id(tid(1))
        t = self.sim.api("GET", "/targets").json()["targets"][1]
        self.assertEqual((t["last_scan_id"], t["last_scan_session_status"]),
                         (scan_id, "scheduled"))
        self.assertRegex(t["last_scan_date"], DATE_RE)          # TargetInfo: a date
        self.assertNotIn("last_scan_session_id", t)          # no session yet
        self.assertNotIn(None, t.values())
        self.sim.ctl("POST", f"/scans/{scan_id}/force", {"status": "processing"})
        t = self.sim.api("GET", "/targets").json()["targets"][1]
        self.assertEqual(t["last_scan_session_id"], self.sim.session(scan_id)["scan_session_id"])
        self.assertEqual(t["last_scan_session_status"], "processing")
        self.assertFalse([k for k in self.sim.api("GET", "/targets").json()["targets"][0]
                          if k.startswith("last_scan")])
        # Targets have no filter keys in the spec: any q is refused.
        self.assertError(self.sim.api("GET", f"/targets?q=target_id:{tid(1)}"), 400)
        self.assertEqual(self.sim.api("GET", "/targets?q=").status, 200)

    def test_launch_response_and_scan_id_modes(self):
        # The spec: the id only in Location; the body a ScanItemResponse without it.
        reply = self.sim.launch(profile_id=HIGH_RISK)
        body = reply.json()
        self.assertEqual(reply.status, 201)
        self.assertNotIn("scan_id", body)
        self.assertRegex(reply.headers["location"], r"^/api/v1/scans/[0-9a-f-]{36}$")
        scan_id = self.sim.scan_id_of(reply)
        self.assertRegex(scan_id, UUID_RE)
        self.assertScanItem(body)
        self.assertEqual(body["profile_id"], HIGH_RISK)
        self.assertEqual(body["profile_name"], "High Risk")
        self.assertEqual(body["target_id"], BUILTIN_TARGET)
        self.assertEqual(body["target"]["address"], "https://demo.testfire.net")
        self.assertEqual(body["schedule"], {"disable": False, "time_sensitive": False,
                                            "triggerable": False})
        self.assertEqual((body["incremental"], body["max_scan_time"]), (False, 0))
        self.assertNotIn("continuous", body)
        self.assertNotIn("user_authorized_to_scan", body)
        self.assertRegex(body["next_run"], DATE_RE)
        self.assertEqual(body["current_session"]["status"], "scheduled")
        self.assertEqual(self.sim.api("GET", f"/scans/{scan_id}").json()["scan_id"], scan_id)

        self.sim.config(scan_id_in="body+location")      # the seed: both
        reply = self.sim.launch()
        self.assertEqual(reply.headers["location"], f"/api/v1/scans/{reply.json()['scan_id']}")
        self.assertScanItem(reply.json())

        self.sim.config(scan_id_in="body")               # a server that forgets Location
        reply = self.sim.launch()
        self.assertNotIn("location", reply.headers)
        self.assertEqual(self.sim.api("GET", f"/scans/{reply.json()['scan_id']}").status, 200)
        self.assertEqual(len(self.sim.ctl("GET", "/scans")["scans"]), 3)

    def test_scan_ids_are_seeded(self):
        first = [self.sim.launch_id() for _ in range(3)]
        self.sim.ctl("POST", "/reset")
        self.assertEqual([self.sim.launch_id() for _ in range(3)], first)
        self.assertEqual(len(set(first)), 3)

    def test_launch_validation(self):
        good = {"user_authorized_to_scan": "yes", "target_id": BUILTIN_TARGET,
                "profile_id": FULL_SCAN, "schedule": {"disable": False}}

        def schedule(**fields):
            return dict(good, schedule=dict(good["schedule"], **fields))

        self.assertError(self.sim.api("POST", "/scans", b"{not json"), 400)
        self.assertError(self.sim.api("POST", "/scans", b"[1,2]"), 422)
        cases = [
            ({k: v for k, v in good.items() if k != "target_id"}, "target_id"),
            (dict(good, target_id="not-a-uuid"), "target_id"),
            (dict(good, profile_id=17), "profile_id"),
            ({k: v for k, v in good.items() if k != "profile_id"}, "profile_id"),
            (dict(good, user_authorized_to_scan="no"), "user_authorized_to_scan"),
            ({k: v for k, v in good.items() if k != "user_authorized_to_scan"},
             "user_authorized_to_scan"),
            ({k: v for k, v in good.items() if k != "schedule"}, "schedule"),
            (dict(good, schedule="now"), "schedule"),
            (dict(good, report_template_id="developer"), "report_template_id"),
            (dict(good, max_scan_time="60"), "max_scan_time"),
            (dict(good, max_scan_time=1.5), "max_scan_time"),
            (dict(good, incremental="yes"), "incremental"),
            (schedule(disable="no"), "schedule.disable"),
            (schedule(time_sensitive=1), "schedule.time_sensitive"),
            (schedule(triggerable=None), "schedule.triggerable"),
            (schedule(history_limit=50), "schedule.history_limit"),
            (schedule(history_limit=-1), "schedule.history_limit"),
            (schedule(history_limit=True), "schedule.history_limit"),
            (schedule(recurrence="R" * 300), "schedule.recurrence"),
            (schedule(recurrence=7), "schedule.recurrence"),
            (schedule(start_date="tomorrow"), "schedule.start_date"),
            (schedule(start_date="2030-01-01"), "schedule.start_date"),
            (schedule(start_date="2030-01-01 10:00:00Z"), "schedule.start_date"),
            (schedule(start_date="2030-01-01T10:00:00"), "schedule.start_date"),
            (schedule(start_date="2030-02-30T10:00:00Z"), "schedule.start_date"),
            (schedule(start_date="2030-01-01T25:00:00Z"), "schedule.start_date"),
            (schedule(start_date=20300101), "schedule.start_date"),
        ]
        for body, field in cases:
            with self.subTest(field=field, body=body):
                err = self.assertError(self.sim.api("POST", "/scans", body), 422,
                                       "Validation error")
                self.assertTrue(any(d.startswith(field + ":") for d in err["details"]),
                                err["details"])
        # Every problem is named at once.
        err = self.assertError(self.sim.api("POST", "/scans", {"schedule": {
            "history_limit": 11}}), 422)
        self.assertEqual(sorted(d.split(":")[0] for d in err["details"]),
                         ["profile_id", "schedule.history_limit", "target_id",
                          "user_authorized_to_scan"])
        self.assertError(self.sim.api("POST", "/scans", dict(good, target_id=tid(999))),
                         404, "Target not found")
        self.assertError(self.sim.api("POST", "/scans", dict(
            good, profile_id="11111111-1111-1111-1111-111111111114")),
            404, "Scanning profile not found")
        self.assertEqual(self.sim.ctl("GET", "/scans")["scans"], [])
        launches = [e for e in self.sim.log()["entries"] if "created_scan_id" in e]
        self.assertEqual(len(launches), 2 + len(cases) + 3)
        self.assertTrue(all(e["created_scan_id"] is None for e in launches))
        self.assertEqual(launches[-1]["profile_id"], "11111111-1111-1111-1111-111111111114")

        # The limits themselves are accepted, and the spec's fields echoed.
        recurrence = "DTSTART:20180112T003000Z\nFREQ=WEEKLY;INTERVAL=3;BYDAY=TH"
        full = dict(good, report_template_id="11111111-1111-1111-1111-11111111111A",
                    max_scan_time=60, incremental=True,
                    schedule={"disable": False, "time_sensitive": True, "triggerable": False,
                              "history_limit": 10, "start_date": None,
                              "recurrence": recurrence.ljust(256, ";")})
        reply = self.sim.api("POST", "/scans", full)
        self.assertEqual(reply.status, 201, reply.body)
        body = reply.json()
        self.assertScanItem(body)
        self.assertEqual(body["schedule"], {"disable": False, "time_sensitive": True,
                                            "triggerable": False, "history_limit": 10,
                                            "recurrence": recurrence.ljust(256, ";")})
        self.assertEqual((body["report_template_id"], body["max_scan_time"], body["incremental"]),
                         ("11111111-1111-1111-1111-11111111111a", 60, True))
        for start_date in ("2020-01-01T00:00:00Z", "2020-01-01T00:00:00.5+02:00",
                           "9999-12-31T23:59:59.999999Z"):
            with self.subTest(start_date=start_date):
                self.sim.launch(schedule={"disable": False, "start_date": start_date})
        self.assertEqual(self.sim.api("GET", "/scans").json()["pagination"]["count"], 4)

    def test_get_scan_every_shape(self):
        scan_id = self.sim.launch_id()
        self.sim.wait_status(scan_id, "completed")
        # The spec's ScanItemResponse; its ScanInfo has no end_date.
        single = self.sim.api("GET", f"/scans/{scan_id}").json()
        self.assertScanItem(single)
        for key in ("scan_id", "target_id", "profile_id", "profile_name", "schedule", "target",
                    "criticality", "manual_intervention", "next_run", "current_session",
                    "start_date", "incremental", "max_scan_time"):
            self.assertIn(key, single)
        self.assertEqual(single["scan_id"], scan_id)
        self.assertEqual(single["target"]["address"], "https://demo.testfire.net")
        self.assertEqual(single["profile_name"], "Full Scan")
        cs = single["current_session"]
        self.assertEqual(set(cs), SCAN_INFO_KEYS)
        self.assertEqual((cs["status"], cs["progress"]), ("completed", 100))
        self.assertEqual(cs["start_date"], single["start_date"][:10])   # a date; a date-time
        counts = expected_final_counts(BUILTIN_TARGET)
        self.assertEqual(cs["severity_counts"], counts)
        self.assertEqual(cs["threat"], threat_of(counts))
        self.assertEqual(cs["event_level"], 0)
        self.assertIs(cs["acusensor"], False)
        end_date = self.sim.results(scan_id)[0]["end_date"]   # the spec puts it here

        self.sim.config(session_end_date=True)                # the seed's ScanInfo
        cs2 = self.sim.api("GET", f"/scans/{scan_id}").json()["current_session"]
        self.assertEqual(cs2, dict(cs, end_date=end_date))

        self.sim.config(shape="wrapped", session_end_date=False)   # the seed's shape
        wrapped = self.sim.api("GET", f"/scans/{scan_id}").json()
        self.assertEqual(list(wrapped), ["scans"])
        self.assertEqual(len(wrapped["scans"]), 1)
        item = wrapped["scans"][0]
        self.assertEqual(set(item), {"scan_id", "current_session"})
        self.assertEqual(item["scan_id"], scan_id)
        self.assertEqual(item["current_session"], dict(cs, end_date=end_date))
        # The list keeps the spec's items whatever the shape of GET /scans/{id}.
        listed = self.sim.api("GET", "/scans").json()["scans"][0]
        self.assertScanItem(listed)
        self.assertEqual(listed["current_session"], cs)

    def test_dates_variant(self):
        self.sim.add_targets({"target_id": tid(6), "severity_counts": {"low": 1}})
        scan_id = self.sim.launch_id(tid(6))
        sid = self.sim.wait_status(scan_id, "completed")["scan_session_id"]
        vulns = f"/scans/{scan_id}/results/{sid}/vulnerabilities"

        def dates():
            item = self.sim.api("GET", f"/scans/{scan_id}").json()
            listed = self.sim.api("GET", "/scans").json()["scans"][0]
            result = self.sim.results(scan_id)[0]
            target = self.sim.api("GET", "/targets").json()["targets"][1]
            vuln = self.sim.api("GET", vulns).json()["vulnerabilities"][0]
            return [item["next_run"], item["start_date"], item["current_session"]["start_date"],
                    listed["start_date"], listed["current_session"]["start_date"],
                    result["start_date"], result["end_date"], target["last_scan_date"],
                    vuln["first_seen"], vuln["last_seen"]]

        # the spec types next_run, current_session.start_date, last_scan_date,
        # first_seen and last_seen as "date": the day only
        plain = (0, 2, 4, 7, 8, 9)
        spec = dates()
        for i, date in enumerate(spec):
            self.assertRegex(date, DATE_RE if i in plain else ISO_RE)
        self.sim.config(date_fields="date-time")         # as date-times, like the others
        full = dates()
        for date in full:                                # the date-times: with the UTC offset
            self.assertRegex(date, ISO_RE)
        self.assertEqual([d[:10] for d in full], [d[:10] for d in spec])
        self.sim.config(dates="naive")                   # no zone: UTC implied
        self.assertEqual(dates(), [date[:-len("+00:00")] for date in full])
        self.sim.config(dates="offset", date_fields="spec")
        self.assertEqual(dates(), spec)

    def test_session_before_start(self):
        self.sim.add_targets({"target_id": tid(4), "duration_scale": 10000})
        reply = self.sim.launch(tid(4))
        scan_id = self.sim.scan_id_of(reply)
        # Default: the status and counts, no session id or start date yet.
        for session in (reply.json()["current_session"], self.sim.session(scan_id)):
            self.assertScanInfo(session)
            self.assertEqual(set(session), {"status", "progress", "severity_counts", "threat",
                                            "event_level", "acusensor"})
            self.assertEqual((session["status"], session["progress"]), ("scheduled", 0))
        single = self.sim.api("GET", f"/scans/{scan_id}").json()
        self.assertNotIn("start_date", single)

        self.sim.config(session_before_start="empty")
        self.assertEqual(self.sim.session(scan_id), {})
        self.assertEqual(self.sim.api("GET", "/scans").json()["scans"][0]["current_session"], {})
        self.assertEqual(self.sim.launch(tid(4)).json()["current_session"], {})
        self.sim.config(shape="wrapped")
        self.assertEqual(self.sim.api("GET", f"/scans/{scan_id}").json(),
                         {"scans": [{"scan_id": scan_id, "current_session": {}}]})
        self.sim.config(shape="single")
        self.sim.ctl("POST", f"/scans/{scan_id}/force", {"status": "starting"})
        session = self.sim.session(scan_id)
        self.assertEqual(session["status"], "starting")
        self.assertRegex(session["scan_session_id"], UUID_RE)
        self.assertRegex(session["start_date"], DATE_RE)

    def test_list_scans_filter_and_paging(self):
        self.sim.add_targets({"target_id": tid(1), "criticality": 30},
                             {"target_id": tid(2), "outcome": "failed", "duration_scale": 1000})
        made = []
        for i in range(23):
            target = tid(1) if i % 2 else tid(2)
            profile = HIGH_RISK if i % 3 == 0 else FULL_SCAN
            made.append((self.sim.launch_id(target, profile), target, profile))
        for style in ("cursors", "next_cursor", "next_cursor_int"):
            with self.subTest(style=style):
                self.sim.config(pagination=style)
                scans, pages, count = self._collect_pages("/scans", "scans", style, 5)
                self.assertEqual((pages, count), (5, 23))
                self.assertEqual([s["scan_id"] for s in scans], [m[0] for m in reversed(made)])
                for scan in scans:
                    self.assertScanItem(scan)            # list items are ScanItemResponses
                expected = [m[0] for m in reversed(made) if m[1] == tid(1)]
                for key, setting in (("target_id", "target_id"), ("target", "target"),
                                     ("target_id", "both"), ("target", "both")):
                    self.sim.config(target_filter_key=setting)
                    scans, _, count = self._collect_pages(f"/scans?q={key}:{tid(1)}", "scans",
                                                          style, 4)
                    self.assertEqual(([s["scan_id"] for s in scans], count),
                                     (expected, len(expected)))
                self.sim.config(target_filter_key="target_id")
                expected = [m[0] for m in reversed(made) if m[1] == tid(2) and m[2] == HIGH_RISK]
                scans, _, _ = self._collect_pages(
                    f"/scans?q=target_id:{tid(2)};profile_id:{HIGH_RISK}", "scans", style, 99)
                self.assertEqual([s["scan_id"] for s in scans], expected)

        def count(q):
            reply = self.sim.api("GET", f"/scans?q={q}")
            self.assertEqual(reply.status, 200, reply.body)
            return reply.json()["pagination"]["count"]

        self.sim.wait_status(made[-2][0], "completed")     # the tid(1) scans are done,
        self.assertEqual(count("scan_status:scheduled,queued,starting,processing"), 12)
        self.assertEqual(count("scan_status:completed;target_id:" + tid(2)), 0)
        self.assertEqual(count("scan_status:completed"), 11)
        self.assertEqual(count(f"profile_id:{HIGH_RISK}"), 8)
        self.assertEqual(count(f"profile_id:{HIGH_RISK.upper()},{FULL_SCAN}"), 23)
        self.assertEqual(count("business_criticality:30"), 11)
        self.assertEqual(count("business_criticality:30,10"), 23)
        self.assertEqual(count("business_criticality:20"), 0)
        threat = threat_of(expected_final_counts(tid(1)))   # the tid(2) ones found nothing yet
        self.assertEqual(count(f"threat:{threat}"), 11 + (12 if threat == 0 else 0))
        self.assertEqual(count("threat:0,1,2,3,4"), 23)
        self.assertEqual(count(f"threat:{threat};target_id:{tid(2)}"), 12 if threat == 0 else 0)
        self.assertEqual(count(f"group_id:{tid(50)}"), 0)   # the simulator has no groups
        self.assertEqual(count(f"target_id:{tid(1)},{tid(2)}"), 23)

        self.assertError(self.sim.api("GET", "/scans?l=0"), 400)
        self.assertError(self.sim.api("GET", "/scans?l=101"), 400)
        self.assertError(self.sim.api("GET", "/scans?l=abc"), 400)
        # "1 < limit < 100" (the spec's description): 100 is refused unless
        # the server goes by the schema's maximum
        self.assertError(self.sim.api("GET", "/scans?l=100"), 400)
        self.assertEqual(self.sim.api("GET", "/scans?l=99").status, 200)
        self.sim.config(limit_max=100)
        self.assertEqual(self.sim.api("GET", "/scans?l=100").status, 200)
        self.sim.config(limit_max=99)
        self.assertError(self.sim.api("GET", "/scans?c=garbage!!"), 400, "Invalid cursor")
        for q in ("status:completed", "color:red", "target_id", "target_id:",
                  f"target_id:{tid(1)};target:{tid(2)}"):
            with self.subTest(q=q):
                self.assertError(self.sim.api("GET", f"/scans?q={q}"), 400)
        self.sim.config(target_filter_key="both")
        self.assertError(self.sim.api("GET", f"/scans?q=target:{tid(1)},{tid(2)}"), 400)
        err = self.assertError(self.sim.api("GET", "/scans?q=status:completed"), 400)
        for key in SCAN_FILTER_KEYS:
            self.assertIn(key, err["details"][0])
        self.sim.config(target_filter_key="target_id")
        # only the seven scan_status values the spec's q lists
        for status in ("pausing", "paused", "resuming", "aborted"):
            with self.subTest(scan_status=status):
                err = self.assertError(self.sim.api("GET", f"/scans?q=scan_status:queued,{status}"),
                                       400)
                self.assertIn(status, err["details"][0])
        self.sim.config(scan_status_values="any")
        self.assertEqual(self.sim.api("GET", "/scans?q=scan_status:paused").status, 200)
        self.sim.config(scan_status_values="spec")

        # Offset cursors are not tied to the query; opaque ones are.
        self.sim.config(pagination="cursors")
        next_cursor = self.sim.api("GET", "/scans?l=5").json()["pagination"]["cursors"][1]
        self.assertEqual(next_cursor, "5")
        reply = self.sim.api("GET", f"/scans?l=5&q=target_id:{tid(1)}&c={next_cursor}")
        self.assertEqual([s["scan_id"] for s in reply.json()["scans"]],
                         [m[0] for m in reversed(made) if m[1] == tid(1)][5:10])
        self.sim.config(cursors="opaque")
        next_cursor = self.sim.api("GET", "/scans?l=5").json()["pagination"]["cursors"][1]
        self.assertNotRegex(next_cursor, r"^\d+$")
        self.assertError(self.sim.api("GET", f"/scans?l=5&q=target_id:{tid(1)}&c={next_cursor}"),
                         400, "Invalid cursor")
        self.assertError(self.sim.api("GET", f"/targets?c={next_cursor}"), 400, "Invalid cursor")
        self.assertError(self.sim.api("GET", "/scans?c=5"), 400, "Invalid cursor")

    def test_scan_filter_ignore_variant(self):
        self.sim.add_targets({"target_id": tid(1)})
        ids = [self.sim.launch_id(), self.sim.launch_id(tid(1))]
        only = self.sim.api("GET", f"/scans?q=target_id:{tid(1)}").json()
        self.assertEqual([s["scan_id"] for s in only["scans"]], ids[1:])
        self.sim.config(scan_filter="ignore")
        for q in (f"target_id:{tid(1)}", "scan_status:failed", f"group_id:{tid(9)}"):
            with self.subTest(q=q):
                body = self.sim.api("GET", f"/scans?q={q}").json()
                self.assertEqual([s["scan_id"] for s in body["scans"]], ids[::-1])
                self.assertEqual(body["pagination"]["count"], 2)
        # The keys are still checked: only the filtering is skipped.
        self.assertError(self.sim.api("GET", "/scans?q=status:failed"), 400)

    def test_offset_cursors_shift_when_a_scan_leaves_the_list(self):
        self.sim.add_targets({"target_id": tid(3), "duration_scale": 10000})
        ids = [self.sim.launch_id(tid(3)) for _ in range(6)]    # newest first: ids[5] .. ids[0]
        q = "q=scan_status:scheduled&l=3"
        page1 = self.sim.api("GET", f"/scans?{q}").json()
        self.assertEqual([s["scan_id"] for s in page1["scans"]], ids[:2:-1])
        self.assertEqual(page1["pagination"]["cursors"], ["0", "3"])
        # A scan of the first page leaves the filtered list: the offsets shift,
        # and ids[2] is on neither page, as on a real server.
        self.assertEqual(self.sim.api("POST", f"/scans/{ids[5]}/abort").status, 204)
        page2 = self.sim.api("GET", f"/scans?{q}&c=3").json()
        self.assertEqual([s["scan_id"] for s in page2["scans"]], [ids[1], ids[0]])
        self.assertEqual((page2["pagination"]["count"], page2["pagination"]["cursors"]),
                         (5, ["3"]))
        # A new scan shifts them the other way: ids[3] comes again.
        page1 = self.sim.api("GET", "/scans?l=3").json()
        self.sim.launch_id(tid(3))
        page2 = self.sim.api("GET", f"/scans?l=3&c={page1['pagination']['cursors'][1]}").json()
        self.assertEqual([s["scan_id"] for s in page2["scans"]], [ids[3], ids[2], ids[1]])

    def test_opaque_cursors_do_not_shift(self):
        self.sim.config(cursors="opaque")
        self.sim.add_targets({"target_id": tid(3), "duration_scale": 10000})
        ids = [self.sim.launch_id(tid(3)) for _ in range(6)]
        q = "q=scan_status:scheduled&l=3"
        page1 = self.sim.api("GET", f"/scans?{q}").json()
        self.assertEqual([s["scan_id"] for s in page1["scans"]], ids[:2:-1])
        self.assertPagination(page1["pagination"])
        cursor = page1["pagination"]["cursors"][1]
        self.assertEqual(self.sim.api("POST", f"/scans/{ids[5]}/abort").status, 204)
        page2 = self.sim.api("GET", f"/scans?{q}&c={cursor}").json()
        self.assertEqual([s["scan_id"] for s in page2["scans"]], ids[2::-1])
        self.assertEqual(len(page2["pagination"]["cursors"]), 1)
        page1 = self.sim.api("GET", "/scans?l=3").json()
        self.sim.launch_id(tid(3))
        page2 = self.sim.api("GET", f"/scans?l=3&c={page1['pagination']['cursors'][1]}").json()
        self.assertEqual([s["scan_id"] for s in page2["scans"]], ids[2::-1])
        # next_cursor_int cannot carry an opaque cursor: it stays a string.
        self.sim.config(pagination="next_cursor_int")
        nxt = self.sim.api("GET", "/scans?l=3").json()["pagination"]["next_cursor"]
        self.assertIsInstance(nxt, str)

    def test_list_session_omit_variant(self):
        self.sim.add_targets({"target_id": tid(3), "duration_scale": 10000})
        reply = self.sim.launch(tid(3))
        scan_id = self.sim.scan_id_of(reply)
        full = self.sim.api("GET", f"/scans?q=target_id:{tid(3)}").json()["scans"][0]
        self.assertScanItem(full)                       # the spec's: with current_session
        self.assertIn("current_session", full)
        self.sim.config(list_session="omit")            # invented: a lighter list
        body = self.sim.api("GET", f"/scans?q=target_id:{tid(3)}").json()
        self.assertEqual(len(body["scans"]), 1)
        light = body["scans"][0]
        self.assertNotIn("current_session", light)      # no key at all, not null or {}
        self.assertKeys(light, SCAN_ITEM_KEYS)
        self.assertEqual(light, {k: v for k, v in full.items() if k != "current_session"})
        self.assertPagination(body["pagination"])
        # Only the list: GET /scans/{id} and the launch's 201 keep it.
        single = self.sim.api("GET", f"/scans/{scan_id}").json()
        self.assertScanItem(single)
        self.assertEqual(single["current_session"], full["current_session"])
        self.assertIn("current_session", self.sim.launch(tid(3)).json())
        with_wrapped = self.sim.config(shape="wrapped")
        self.assertEqual(with_wrapped["list_session"], "omit")
        self.assertIn("current_session", self.sim.api(
            "GET", f"/scans/{scan_id}").json()["scans"][0])
        for scan in self.sim.api("GET", "/scans").json()["scans"]:
            self.assertNotIn("current_session", scan)
        # Switched back at run time, and by a reset.
        self.sim.config(list_session="full")
        self.assertIn("current_session", self.sim.api("GET", "/scans").json()["scans"][0])
        self.sim.config(list_session="omit")
        self.sim.ctl("POST", "/reset")
        self.assertEqual(self.sim.ctl("GET", "/config")["list_session"], "full")
        self.sim.launch()
        self.assertIn("current_session", self.sim.api("GET", "/scans").json()["scans"][0])

    def _churn_setup(self, n=7):
        """n scans of tid(3) that stay scheduled, one of tid(4) the filter leaves
        out; the tid(3) ids newest first (the order of an unchurned list)."""
        self.sim.add_targets({"target_id": tid(3), "duration_scale": 10000},
                             {"target_id": tid(4), "duration_scale": 10000})
        ids = [self.sim.launch_id(tid(3)) for _ in range(n)]
        self.sim.launch_id(tid(4))
        return ids[::-1]

    def _churn_pass(self, limit=3, style="cursors"):
        """One pass through the filtered list with offset cursors: its scan ids."""
        scans, pages, count = self._collect_pages(
            f"/scans?q=target_id:{tid(3)};scan_status:scheduled", "scans", style, limit)
        return [s["scan_id"] for s in scans], pages, count

    def test_list_churn_makes_offset_pages_miss_or_repeat_scans(self):
        newest_first = self._churn_setup()              # 7 scans: 3 pages of 3
        # Deterministic: the k-th GET /scans since the reset sees the list
        # rotated by k*N, its items N places later.  N=1, pages of 3: page 2
        # (offset 3) repeats scan 2, page 3 (offset 6) repeats scan 4, and
        # scans 5 and 6 are never seen.
        self.assertEqual(self.sim.config(list_churn=1)["list_churn"], 1)
        ids, pages, count = self._churn_pass()
        self.assertEqual((pages, count), (3, 7))        # paging itself is unchanged
        self.assertEqual(self.trail, [["0", "3"], ["3", "6"], ["6"]])
        self.assertEqual(ids, [newest_first[i] for i in (0, 1, 2, 2, 3, 4, 4)])
        # N > 0 and more than one page: some scan is missed or shown twice,
        # whatever the requests before the pass (each pass here starts at
        # another k).  With N mod count below l, always one twice.
        for n, limit in ((1, 3), (2, 3), (3, 3), (4, 3), (5, 3), (6, 3), (1, 2), (2, 2),
                         (3, 2), (1, 5), (4, 5), (6, 5), (9, 3), (100, 4), (1, 1)):
            for style in ("cursors", "next_cursor", "next_cursor_int"):
                with self.subTest(list_churn=n, l=limit, pagination=style):
                    self.sim.config(list_churn=n, pagination=style)
                    ids, pages, count = self._churn_pass(limit, style)
                    self.assertGreater(pages, 1)
                    self.assertEqual(count, 7)
                    self.assertEqual(len(ids), 7)       # as many items as scans ...
                    self.assertLessEqual(set(ids), set(newest_first))
                    self.assertNotEqual(sorted(ids), sorted(newest_first),  # ... not each once
                                        f"list_churn={n} l={limit}: every scan exactly once")
                    if 0 < n % 7 < limit:
                        self.assertLess(len(set(ids)), 7)   # a scan shown twice
        # The limits of a plain rotation (README): N a multiple of the count
        # moves nothing, and with 3 pages or more the shifts can line up so
        # that each scan comes once, in another order (7 scans, l=1, N=3).
        self.sim.config(list_churn=7, pagination="cursors")
        self.assertEqual(self._churn_pass()[0], newest_first)
        self.sim.config(list_churn=3)
        ids = self._churn_pass(1)[0]
        self.assertEqual(sorted(ids), sorted(newest_first))
        self.assertNotEqual(ids, newest_first)
        # Opaque cursors name the last scan seen: churn does not move them.
        self.sim.config(cursors="opaque", pagination="cursors", list_churn=2)
        ids, pages, _ = self._churn_pass()
        self.assertEqual((ids, pages), (newest_first, 3))

    def test_list_churn_zero_shows_every_scan_once(self):
        newest_first = self._churn_setup()
        self.assertEqual(self.sim.ctl("GET", "/config")["list_churn"], 0)   # the default
        for style in ("cursors", "next_cursor", "next_cursor_int"):
            self.sim.config(pagination=style)
            for limit in (1, 2, 3, 6, 7, 99):
                with self.subTest(pagination=style, l=limit):
                    ids, pages, count = self._churn_pass(limit, style)
                    self.assertEqual(ids, newest_first)  # each once, newest first
                    self.assertEqual((pages, count), (-(-7 // limit), 7))
        # Switched on and off again at run time: 0 has no effect whatever came before.
        self.sim.config(list_churn=3, pagination="cursors")
        self.assertNotEqual(self._churn_pass()[0], newest_first)
        self.sim.config(list_churn=0)
        for _ in range(3):
            self.assertEqual(self._churn_pass()[0], newest_first)

    def test_log_lists_the_scans_a_list_page_carried(self):
        newest_first = self._churn_setup()
        seq = self.sim.log()["next_seq"]
        self._churn_pass(3)
        pages = [e for e in self.sim.log(seq)["entries"] if e["path"] == "/api/v1/scans"]
        self.assertEqual([sid for e in pages for sid in e["listed"]], newest_first)
        self.sim.config(list_session="omit")            # items that refresh nothing
        seq = self.sim.log()["next_seq"]
        self._churn_pass(3)
        self.assertEqual({tuple(e["listed"]) for e in self.sim.log(seq)["entries"]}, {()})
        launch = [e for e in self.sim.log(1)["entries"] if e["method"] == "POST"][0]
        self.assertIsNone(launch["listed"])

    def test_results_and_vulnerabilities(self):
        self.sim.add_targets({"target_id": tid(5), "duration_scale": 10000},
                             {"target_id": tid(6), "address": "https://shop.example.test/",
                              "severity_counts": {"critical": 2, "high": 3, "medium": 4,
                                                  "low": 5, "info": 6}})
        waiting = self.sim.launch_id(tid(5))
        results = self.sim.api("GET", f"/scans/{waiting}/results").json()
        self.assertEqual(results["results"], [])
        self.assertEqual(results["pagination"]["count"], 0)
        self.assertPagination(results["pagination"])
        self.assertNotIn("scan_session_id", self.sim.session(waiting))

        scan_id = self.sim.launch_id(tid(6))
        session = self.sim.wait_status(scan_id, "completed")
        self.assertNotIn("end_date", session)
        sid = session["scan_session_id"]
        results = self.sim.api("GET", f"/scans/{scan_id}/results").json()
        self.assertPagination(results["pagination"])
        results = results["results"]
        self.assertEqual(len(results), 1)
        self.assertKeys(results[0], RESULT_KEYS)
        self.assertEqual(results[0]["result_id"], sid)
        self.assertEqual(results[0]["scan_id"], scan_id)
        self.assertEqual(results[0]["status"], "completed")
        self.assertEqual(results[0]["start_date"][:10], session["start_date"])   # a date-time; a date
        self.assertRegex(results[0]["end_date"], ISO_RE)           # the end date is here
        self.assertGreater(results[0]["end_date"], results[0]["start_date"])
        self.sim.config(session_end_date=True)
        self.assertEqual(self.sim.session(scan_id)["end_date"], results[0]["end_date"])
        self.sim.config(session_end_date=False)

        vulns, pages, count = self._collect_pages(
            f"/scans/{scan_id}/results/{sid}/vulnerabilities", "vulnerabilities", "cursors", 7)
        self.assertEqual((len(vulns), count, pages), (20, 20, 3))
        self.assertEqual(self.trail, [["0", "7"], ["7", "14"], ["14"]])
        by_level = {}
        for v in vulns:
            by_level[v["severity"]] = by_level.get(v["severity"], 0) + 1
            self.assertEqual(set(v), {"vuln_id", "vt_id", "vt_name", "severity", "criticality",
                                      "confidence", "affects_url", "affects_detail", "status",
                                      "target_id", "loc_id", "first_seen", "last_seen",
                                      "tags", "archived"})
            self.assertKeys(v, VULN_KEYS)
            self.assertIn(v["status"], ("open", "fixed", "ignored", "false_positive"))
            self.assertTrue(v["affects_url"].startswith("https://shop.example.test/"))
            self.assertEqual(v["target_id"], tid(6))
        self.assertEqual(by_level, {4: 2, 3: 3, 2: 4, 1: 5, 0: 6})
        self.assertEqual(len({v["vuln_id"] for v in vulns}), 20)
        names = {v["vt_name"] for v in vulns}
        self.assertTrue(names & {"SQL injection", "Blind SQL injection", "OS command injection",
                                 "XML external entity injection"})
        # The spec documents no filter keys for this list.
        base = f"/scans/{scan_id}/results"
        self.assertError(self.sim.api("GET", f"{base}/{sid}/vulnerabilities?q=severity:4"), 400)

        detail = self.sim.api("GET", f"{base}/{sid}/vulnerabilities/{vulns[0]['vuln_id']}")
        self.assertEqual(detail.status, 200)
        detail = detail.json()
        self.assertKeys(detail, VULN_DETAIL_KEYS)
        for key in ("request", "details", "highlights", "response_info", "description",
                    "impact", "recommendation", "references"):
            self.assertIn(key, detail)
        self.assertEqual(detail["vuln_id"], vulns[0]["vuln_id"])
        self.assertEqual(detail["response_info"], "")
        self.assertTrue(detail["highlights"])
        for highlight in detail["highlights"]:
            self.assertEqual(set(highlight), {"index", "length", "in"})
            self.assertEqual(highlight["in"], "request")
            self.assertIsInstance(highlight["index"], int)
            self.assertIsInstance(highlight["length"], int)
            self.assertLessEqual(highlight["index"] + highlight["length"],
                                 len(detail["request"]))
        for ref in detail["references"]:
            self.assertEqual(set(ref), {"rel", "href"})
        self.assertError(self.sim.api("GET", f"{base}/{sid}/vulnerabilities/nope"), 404)
        self.assertError(self.sim.api("GET", f"{base}/{tid(77)}/vulnerabilities"), 404)
        self.assertError(self.sim.api("GET", f"/scans/{tid(77)}/results"), 404)

        # Deterministic: same seed after a reset gives the same list.
        self.sim.ctl("POST", "/reset")
        self.sim.add_targets({"target_id": tid(5), "duration_scale": 10000},
                             {"target_id": tid(6), "address": "https://shop.example.test/",
                              "severity_counts": {"critical": 2, "high": 3, "medium": 4,
                                                  "low": 5, "info": 6}})
        self.sim.launch_id(tid(5))
        again = self.sim.launch_id(tid(6))
        self.assertEqual(again, scan_id)
        self.sim.wait_status(again, "completed")
        vulns2 = self.sim.api("GET", f"/scans/{again}/results/{sid}/vulnerabilities").json()
        strip = lambda vs: [{k: v for k, v in x.items() if k not in ("first_seen", "last_seen")}
                            for x in vs]
        self.assertEqual(strip(vulns2["vulnerabilities"]), strip(vulns))

    def test_vulnerability_counts_follow_progress(self):
        self.sim.add_targets({"target_id": tid(8), "duration_scale": 50,
                              "severity_counts": {"critical": 3, "high": 6, "medium": 8,
                                                  "low": 10, "info": 12}})
        scan_id = self.sim.launch_id(tid(8))
        self.sim.ctl("POST", f"/scans/{scan_id}/force", {"status": "processing", "progress": 50})
        session = self.sim.session(scan_id)
        self.assertEqual(session["severity_counts"],
                         {"critical": 1, "high": 3, "medium": 4, "low": 5, "info": 6})
        vulns = self.sim.api(
            "GET", f"/scans/{scan_id}/results/{session['scan_session_id']}/vulnerabilities"
        ).json()["vulnerabilities"]
        self.assertEqual(len(vulns), 19)
        self.assertEqual(sum(v["severity"] == 4 for v in vulns), 1)


# ---------------------------------------------------------------------------
# Timeline and actions
# ---------------------------------------------------------------------------

class TimelineTests(SimTestCase):
    UNIT = 0.04 * 10      # time_scale 0.04 s and duration_scale 10: 0.4 s per unit

    EXPECTED = {
        "completed": ["scheduled", "queued", "starting", "processing", "completed"],
        "failed": ["scheduled", "queued", "starting", "processing", "failed"],
        "aborted": ["scheduled", "queued", "starting", "processing", "aborting", "aborted"],
        "paused": ["scheduled", "queued", "starting", "processing", "pausing", "paused"],
        "unknown": ["scheduled", "queued", "starting", "processing", "under_review",
                    "completed"],
        "stuck_unknown": ["scheduled", "queued", "starting", "processing", "under_review"],
    }

    def test_every_outcome(self):
        self.sim.config(time_scale=0.04)
        scans = {}
        for n, outcome in enumerate(self.EXPECTED, start=20):
            self.sim.add_targets({"target_id": tid(n), "outcome": outcome,
                                  "duration_scale": 10})
            scans[outcome] = self.sim.launch_id(tid(n))
        seen = {o: [] for o in scans}
        progress = {o: [] for o in scans}
        counts_seen = {o: [] for o in scans}
        session_ids = {o: set() for o in scans}
        conn = http.client.HTTPConnection("127.0.0.1", self.sim.api_port, timeout=10)
        deadline = time.monotonic() + 20 * self.UNIT + 10
        done = set()
        while len(done) < len(scans) and time.monotonic() < deadline:
            for outcome, scan_id in scans.items():
                if outcome in done:
                    continue
                conn.request("GET", f"/api/v1/scans/{scan_id}", headers={"X-Auth": TOKEN})
                s = json.loads(conn.getresponse().read())["current_session"]
                if not seen[outcome] or seen[outcome][-1] != s["status"]:
                    seen[outcome].append(s["status"])
                progress[outcome].append(s["progress"])
                counts_seen[outcome].append(s["severity_counts"])
                before_start = s["status"] in ("scheduled", "queued")
                self.assertEqual("scan_session_id" in s, not before_start, s)
                self.assertEqual("start_date" in s, not before_start, s)
                self.assertScanInfo(s)                   # never an end_date (spec)
                if s["status"] != "under_review":        # the invented status
                    self.assertIn(s["status"], SCAN_INFO_STATUSES)
                if "scan_session_id" in s:
                    session_ids[outcome].add(s["scan_session_id"])
                if seen[outcome] == self.EXPECTED[outcome] and (
                        outcome not in ("paused", "stuck_unknown")
                        or len(progress[outcome]) > 1):
                    done.add(outcome)
            time.sleep(0.01)
        conn.close()
        for outcome in scans:
            with self.subTest(outcome=outcome):
                self.assertEqual(seen[outcome], self.EXPECTED[outcome])
                self.assertEqual(progress[outcome], sorted(progress[outcome]))
                self.assertEqual(len(session_ids[outcome]), 1)
                final = expected_final_counts(tid(20 + list(scans).index(outcome)))
                for counts in counts_seen[outcome]:
                    for key in SEVERITIES:
                        self.assertLessEqual(counts[key], final[key])
        last = {o: self.sim.session(s) for o, s in scans.items()}
        self.assertEqual(last["completed"]["progress"], 100)
        self.assertEqual(last["completed"]["severity_counts"], expected_final_counts(tid(20)))
        self.assertLess(last["failed"]["progress"], 99)
        self.assertEqual(last["failed"]["event_level"], 2)
        self.assertEqual(last["unknown"]["progress"], 100)
        self.assertEqual(last["stuck_unknown"]["status"], "under_review")
        # The end date is on the scan's results, for terminal statuses only.
        for outcome, scan_id in scans.items():
            with self.subTest(results=outcome):
                result, = self.sim.results(scan_id)
                self.assertEqual((result["status"], result["result_id"], result["start_date"][:10]),
                                 (last[outcome]["status"], last[outcome]["scan_session_id"],
                                  last[outcome]["start_date"]))
                if outcome in ("completed", "failed", "aborted", "unknown"):
                    self.assertGreater(result["end_date"], result["start_date"])
                else:
                    self.assertNotIn("end_date", result)
        # The control API sees the same scans.
        control = {s["scan_id"]: s for s in self.sim.ctl("GET", "/scans")["scans"]}
        self.assertEqual(control[scans["failed"]]["status"], "failed")
        self.assertEqual(control[scans["paused"]]["scan_session_id"],
                         last["paused"]["scan_session_id"])

    def test_polls_to_finish(self):
        self.sim.add_targets({"target_id": tid(30), "duration_scale": 10000,
                              "polls_to_finish": 3},
                             {"target_id": tid(31), "outcome": "failed",
                              "duration_scale": 10000, "polls_to_finish": 1})
        scan_id = self.sim.launch_id(tid(30))
        for _ in range(2):
            self.assertNotIn(self.sim.session(scan_id)["status"], ("completed", "failed"))
        third = self.sim.session(scan_id)
        self.assertEqual((third["status"], third["progress"]), ("completed", 100))
        self.assertNotIn("end_date", third)
        self.assertIn("end_date", self.sim.results(scan_id)[0])
        self.assertEqual(third["severity_counts"], expected_final_counts(tid(30)))
        self.assertEqual(self.sim.session(scan_id)["status"], "completed")
        self.assertEqual(self.sim.session(self.sim.launch_id(tid(31)))["status"], "failed")
        for bad in (0, -1, 1.5, "3", True):
            self.sim.ctl("PUT", "/targets",
                         {"targets": [{"target_id": tid(32), "polls_to_finish": bad}]},
                         expect=400)

    def _slow_target(self, n, outcome="completed"):
        self.sim.add_targets({"target_id": tid(n), "outcome": outcome, "duration_scale": 1000})

    def test_abort(self):
        self._slow_target(40)
        scan_id = self.sim.launch_id(tid(40))
        self.sim.ctl("POST", f"/scans/{scan_id}/force", {"status": "processing", "progress": 40})
        # the spec consumes application/json: a body-less POST that calls
        # itself a form (libcurl's default) is refused, and does nothing
        for ctype in ("application/x-www-form-urlencoded", "text/plain"):
            with self.subTest(content_type=ctype):
                reply = self.sim.request(self.sim.api_port, "POST", f"/api/v1/scans/{scan_id}/abort",
                                         None, {"X-Auth": self.sim.token,
                                                **({"Content-Type": ctype} if ctype else {})})
                self.assertEqual(reply.status, 415)
        self.assertEqual(self.sim.session(scan_id)["status"], "processing")
        reply = self.sim.api("POST", f"/scans/{scan_id}/abort")
        self.assertEqual((reply.status, reply.body), (204, b""))
        session = self.sim.session(scan_id)
        self.assertEqual((session["status"], session["progress"]), ("aborting", 40))
        self.assertNotIn("end_date", self.sim.results(scan_id)[0])
        self.assertEqual(self.sim.api("POST", f"/scans/{scan_id}/abort").status, 204)
        session = self.sim.wait_status(scan_id, "aborted")
        self.assertEqual(session["progress"], 40)
        self.assertNotIn("end_date", session)
        result, = self.sim.results(scan_id)
        self.assertEqual(result["status"], "aborted")
        self.assertGreater(result["end_date"], result["start_date"])
        err = self.assertError(self.sim.api("POST", f"/scans/{scan_id}/abort"), 409)
        self.assertIn("aborted", err["details"][0])
        self.assertError(self.sim.api("POST", f"/scans/{scan_id}/resume"), 409)
        self.assertError(self.sim.api("POST", f"/scans/{scan_id}/pause"), 404)

        completed = self.sim.launch_id()
        self.sim.wait_status(completed, "completed")
        self.assertError(self.sim.api("POST", f"/scans/{completed}/abort"), 409)
        self.assertError(self.sim.api("POST", f"/scans/{tid(99)}/abort"), 404)

        early = self.sim.launch_id(tid(40))       # still scheduled: no session ever
        self.assertEqual(self.sim.api("POST", f"/scans/{early}/abort").status, 204)
        session = self.sim.wait_status(early, "aborted")
        self.assertNotIn("scan_session_id", session)
        self.assertEqual(self.sim.results(early), [])

    def test_pause_is_404_and_resume(self):
        self.sim.config(time_scale=0.2)          # "resuming" lasts 1 unit: 0.2 s
        self._slow_target(41)
        scan_id = self.sim.launch_id(tid(41))
        self.assertError(self.sim.api("POST", f"/scans/{scan_id}/resume"), 409)   # scheduled
        self.sim.ctl("POST", f"/scans/{scan_id}/force", {"status": "processing", "progress": 90})
        # No pause in the spec: the path is unknown whatever the scan's state.
        self.assertError(self.sim.api("POST", f"/scans/{scan_id}/pause"), 404,
                         "Object not found")
        self.assertEqual(self.sim.session(scan_id)["status"], "processing")
        self.assertError(self.sim.api("POST", f"/scans/{scan_id}/resume"), 409)
        # Scans reach pausing/paused through a target's "paused" outcome; here pinned.
        self.sim.ctl("POST", f"/scans/{scan_id}/force", {"status": "pausing", "progress": 90})
        err = self.assertError(self.sim.api("POST", f"/scans/{scan_id}/resume"), 409)
        self.assertIn("pausing", err["details"][0])
        self.sim.ctl("POST", f"/scans/{scan_id}/force", {"status": "paused", "progress": 90})
        session = self.sim.session(scan_id)
        self.assertEqual((session["status"], session["progress"]), ("paused", 90))
        # Resume: resuming, then processing continues from 90 (slowly: scale 1000).
        reply = self.sim.api("POST", f"/scans/{scan_id}/resume")
        self.assertEqual((reply.status, reply.body), (204, b""))
        self.assertEqual(self.sim.session(scan_id)["status"], "resuming")
        self.assertFalse(self.sim.ctl("GET", f"/scans/{scan_id}")["pinned"])
        session = self.sim.wait_status(scan_id, "processing")
        self.assertGreaterEqual(session["progress"], 90)
        self.assertLess(session["progress"], 100)
        self.assertError(self.sim.api("POST", f"/scans/{scan_id}/resume"), 409)

    def test_paused_outcome_resumes_to_completion(self):
        self.sim.add_targets({"target_id": tid(42), "outcome": "paused"})
        scan_id = self.sim.launch_id(tid(42))
        seen = []
        session = wait_until(lambda: (lambda s: seen.append(s["status"]) or
                                      (s if s["status"] == "paused" else None))(
            self.sim.session(scan_id)), message="paused")
        frozen = session["progress"]
        self.assertGreater(frozen, 0)
        time.sleep(5 * TIME_SCALE)
        self.assertEqual(self.sim.session(scan_id)["status"], "paused")
        self.assertNotIn("end_date", self.sim.results(scan_id)[0])
        self.assertEqual(self.sim.api("POST", f"/scans/{scan_id}/resume").status, 204)
        seen = []
        session = wait_until(lambda: (lambda s: seen.append(s["status"]) or
                                      (s if s["status"] == "completed" else None))(
            self.sim.session(scan_id)), message="completed after resume")
        self.assertEqual(session["progress"], 100)
        self.assertEqual(seen[0], "resuming")
        self.assertEqual(session["severity_counts"], expected_final_counts(tid(42)))
        self.assertIn("end_date", self.sim.results(scan_id)[0])

    def test_schedule_disable_keeps_the_scan_scheduled(self):
        reply = self.sim.launch(schedule={"disable": True, "time_sensitive": False})
        disabled = self.sim.scan_id_of(reply)
        self.assertEqual(reply.json()["schedule"]["disable"], True)
        self.assertNotIn("next_run", reply.json())
        running = self.sim.launch_id()
        self.sim.wait_status(running, "completed")
        time.sleep(5 * TIME_SCALE)
        item = self.sim.api("GET", f"/scans/{disabled}").json()
        self.assertScanItem(item)
        self.assertEqual(item["current_session"]["status"], "scheduled")
        self.assertNotIn("next_run", item)
        self.assertNotIn("start_date", item)
        self.assertNotIn("scan_session_id", item["current_session"])
        self.assertEqual(self.sim.results(disabled), [])
        control = self.sim.ctl("GET", f"/scans/{disabled}")
        self.assertEqual((control["status"], control["schedule"]["disable"]), ("scheduled", True))
        # It can still be aborted.
        self.assertEqual(self.sim.api("POST", f"/scans/{disabled}/abort").status, 204)
        self.sim.wait_status(disabled, "aborted")

    def test_future_start_date_keeps_the_scan_scheduled_until_then(self):
        start_date = rfc3339(1.0)
        reply = self.sim.launch(schedule={"disable": False, "start_date": start_date})
        scan_id = self.sim.scan_id_of(reply)
        self.assertEqual(reply.json()["schedule"]["start_date"], start_date)
        self.assertEqual(reply.json()["next_run"], start_date[:10])   # the spec's "date"
        self.sim.config(date_fields="date-time")
        next_run = datetime.fromisoformat(self.sim.api("GET", f"/scans/{scan_id}").json()["next_run"])
        self.assertAlmostEqual(next_run.timestamp(),
                               datetime.fromisoformat(start_date).timestamp(), delta=0.01)
        now = self.sim.launch_id()                  # no start_date: at once
        self.sim.wait_status(now, "completed")
        time.sleep(0.3)
        self.assertEqual(self.sim.session(scan_id)["status"], "scheduled")
        session = self.sim.wait_status(scan_id, "completed", timeout=10)
        self.assertGreaterEqual(datetime.fromisoformat(session["start_date"]).timestamp(),
                                datetime.fromisoformat(start_date).timestamp())
        # A start_date in the past starts at once.
        past = self.sim.launch_id(schedule={"disable": False,
                                            "start_date": "2020-01-01T00:00:00Z"})
        self.sim.wait_status(past, "completed")

    def test_delete(self):
        scan_id = self.sim.launch_id()
        session = self.sim.wait_status(scan_id, "completed")
        reply = self.sim.api("DELETE", f"/scans/{scan_id}")
        self.assertEqual((reply.status, reply.body), (204, b""))
        for method, path in [("GET", f"/scans/{scan_id}"), ("DELETE", f"/scans/{scan_id}"),
                             ("POST", f"/scans/{scan_id}/abort"),
                             ("POST", f"/scans/{scan_id}/resume"),
                             ("GET", f"/scans/{scan_id}/results"),
                             ("GET", f"/scans/{scan_id}/results/{session['scan_session_id']}"
                                     "/vulnerabilities")]:
            with self.subTest(path=path):
                self.assertError(self.sim.api(method, path), 404)
        self.assertEqual(self.sim.api("GET", "/scans").json()["scans"], [])
        self.assertNotIn("last_scan_id", self.sim.api("GET", "/targets").json()["targets"][0])
        control = self.sim.ctl("GET", f"/scans/{scan_id}")
        self.assertIs(control["deleted"], True)
        self.assertEqual(control["status"], "completed")

    def test_force_pins_and_unpins(self):
        self._slow_target(43)
        scan_id = self.sim.launch_id(tid(43))
        pinned = self.sim.ctl("POST", f"/scans/{scan_id}/force",
                              {"status": "weird_new_status", "progress": 33})
        self.assertTrue(pinned["pinned"])
        session = self.sim.session(scan_id)
        self.assertEqual((session["status"], session["progress"]), ("weird_new_status", 33))
        self.assertIn("scan_session_id", session)
        self.sim.ctl("POST", f"/scans/{scan_id}/force", {"status": "failed"})
        self.assertNotIn("end_date", self.sim.session(scan_id))
        self.assertIn("end_date", self.sim.results(scan_id)[0])
        self.sim.ctl("POST", f"/scans/{scan_id}/force", {"status": None})
        self.assertIn(self.sim.session(scan_id)["status"], ("scheduled", "queued"))
        self.sim.ctl("POST", f"/scans/{scan_id}/force", {"status": 5}, expect=400)
        self.sim.ctl("POST", f"/scans/{tid(1)}/force", {"status": None}, expect=404)

    def test_time_scale_change_keeps_scans_continuous(self):
        self.sim.config(time_scale=1000)
        scan_id = self.sim.launch_id()
        time.sleep(0.2)
        self.assertEqual(self.sim.session(scan_id)["status"], "scheduled")
        self.sim.config(time_scale=0.01)
        self.sim.wait_status(scan_id, "completed")


# ---------------------------------------------------------------------------
# Targets, scanning profiles, report templates and reports
# ---------------------------------------------------------------------------

REPORT_KEYS = {"report_id", "source", "template_id", "template_name", "template_type",
               "generation_date", "status", "download"}
REPORT_SOURCE_KEYS = {"description", "list_type", "id_list"}
TEMPLATE_KEYS = {"name", "group", "template_id", "accepted_sources"}
DEVELOPER = "11111111-1111-1111-1111-111111111111"
BUILTIN_TEMPLATES = [
    (DEVELOPER, "Developer", "Standard Reports"),
    ("11111111-1111-1111-1111-111111111112", "Quick", "Standard Reports"),
    ("11111111-1111-1111-1111-111111111113", "Executive Summary", "Standard Reports"),
    ("11111111-1111-1111-1111-111111111114", "HIPAA", "Standard Reports"),
    ("11111111-1111-1111-1111-111111111115", "Affected Items", "Standard Reports"),
    ("11111111-1111-1111-1111-111111111116", "CWE 2011", "Compliance Reports"),
    ("11111111-1111-1111-1111-111111111117", "ISO 27001", "Compliance Reports"),
    ("11111111-1111-1111-1111-111111111118", "NIST SP800 53", "Compliance Reports"),
    ("11111111-1111-1111-1111-111111111119", "OWASP Top 10 2013", "Compliance Reports"),
    ("11111111-1111-1111-1111-111111111120", "PCI DSS 3.2", "Compliance Reports"),
    ("11111111-1111-1111-1111-111111111121", "Sarbanes Oxley", "Compliance Reports"),
    ("11111111-1111-1111-1111-111111111122", "STIG DISA", "Compliance Reports"),
    ("11111111-1111-1111-1111-111111111123", "WASC Threat Classification",
     "Compliance Reports"),
    ("11111111-1111-1111-1111-111111111124", "Scan Comparison", "Standard Reports"),
    ("11111111-1111-1111-1111-111111111125", "OWASP Top 10 2017", "Compliance Reports"),
]
DOWNLOAD_RE = r"^/api/v1/reports/download/([0-9a-f]{16,})\.(html|pdf)$"


class TableParser(html.parser.HTMLParser):
    """The rows of an HTML document's tables (cells' text), and whether its
    tags nest properly (void elements aside)."""
    VOID = {"meta", "br", "hr", "img", "link", "input"}

    def __init__(self):
        super().__init__()
        self.rows, self.stack, self.balanced, self.comments = [], [], True, []
        self._cell = None

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.balanced = False
        if tag in ("td", "th"):
            self.rows[-1].append(self._cell)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_comment(self, data):
        self.comments.append(data)


class ResourceAssertions:
    """Checks of report files and resource answers (mixed into test cases)."""

    def assertPdf(self, data):
        """A well-formed minimal PDF: header, exact xref offsets, %%EOF last."""
        self.assertTrue(data.startswith(b"%PDF-1.4\n"), data[:20])
        self.assertTrue(data.endswith(b"%%EOF"), data[-20:])
        match = re.search(rb"startxref\r?\n(\d+)\r?\n%%EOF$", data)
        self.assertIsNotNone(match)
        xref = int(match.group(1))
        head = re.match(rb"xref\n0 (\d+)\n", data[xref:])
        self.assertIsNotNone(head, data[xref:xref + 20])
        count = int(head.group(1))
        table = data[xref + head.end():xref + head.end() + 20 * count]
        self.assertEqual(table[:20], b"0000000000 65535 f \n")
        for number in range(1, count):
            entry = table[20 * number:20 * number + 20]
            self.assertRegex(entry, rb"^\d{10} 00000 n \n$")
            offset = int(entry[:10])
            self.assertTrue(data[offset:].startswith(b"%d 0 obj\n" % number),
                            data[offset:offset + 20])
        length = re.search(rb"/Length (\d+) >>\nstream\n", data)
        end = length.end() + int(length.group(1))
        self.assertEqual(data[end:end + 10], b"\nendstream")
        self.assertIn(b"/Root 1 0 R", data[xref:])

    def assertHtmlReport(self, data):
        """A small valid document; returns its table's rows."""
        text = data.decode("utf-8")
        self.assertTrue(text.startswith("<!DOCTYPE html>\n<html"))
        self.assertTrue(text.endswith("</html>\n"))
        parser = TableParser()
        parser.feed(text)
        parser.close()
        self.assertTrue(parser.balanced)
        self.assertEqual(parser.stack, [])
        return parser.rows

    def assertReport(self, report):
        self.assertKeys(report, REPORT_KEYS)
        self.assertKeys(report["source"], REPORT_SOURCE_KEYS)
        self.assertRegex(report["report_id"], UUID_RE)
        self.assertEqual(report["template_type"], 0)
        self.assertRegex(report["generation_date"], ISO_RE)
        self.assertIsInstance(report["download"], list)

    def assertTargetItem(self, item):
        self.assertKeys(item, TARGET_KEYS | TARGET_INFO_KEYS)
        self.assertIn("address", item)
        self.assertNotIn(None, item.values())


class TargetTests(ResourceAssertions, SimTestCase):

    def test_post_target_answers_a_target_item(self):
        reply = self.sim.api("POST", "/targets", {"address": "example.com",
                                                  "fqdn": "ignored.example",
                                                  "deleted_at": "never", "agents": "x"})
        self.assertEqual(reply.status, 201, reply.body)
        body = reply.json()
        self.assertTargetItem(body)
        target_id = body["target_id"]
        self.assertRegex(target_id, UUID_RE)
        self.assertEqual(reply.headers["location"], f"/api/v1/targets/{target_id}")
        self.assertEqual(body, {"target_id": target_id, "address": "example.com",
                                "description": "", "criticality": 10, "type": "default",
                                "continuous_mode": False, "manual_intervention": False})
        self.assertEqual(self.sim.api("GET", f"/targets/{target_id}").json(), body)
        self.assertEqual(self.sim.api("GET", f"/targets/{target_id.upper()}").status, 200)
        reply = self.sim.api("POST", "/targets", {"address": "https://b.test/app",
                                                  "description": "B", "criticality": 30,
                                                  "type": "network"})
        self.assertEqual({k: reply.json()[k] for k in ("description", "criticality", "type")},
                         {"description": "B", "criticality": 30, "type": "network"})
        # Duplicates are allowed: the server does not deduplicate addresses.
        again = self.sim.api("POST", "/targets", {"address": "example.com"}).json()
        self.assertNotEqual(again["target_id"], target_id)
        listed = self.sim.api("GET", "/targets").json()["targets"]
        self.assertEqual([t["target_id"] for t in listed],
                         [BUILTIN_TARGET, target_id, reply.json()["target_id"],
                          again["target_id"]])
        for item in listed:
            self.assertTargetItem(item)
        self.assertEqual(self.sim.ctl("GET", "/targets")["targets"][1]["type"], "default")
        self.assertError(self.sim.api("GET", f"/targets/{tid(99)}"), 404)
        self.assertError(self.sim.api("GET", "/targets/not-a-uuid"), 404)

    def test_post_target_validation(self):
        good = ["localhost", "10.0.0.1:8080", "example.com.", "sub-domain.example.co.uk",
                "https://example.com", "HTTP://Example.COM:80/path?q=1#frag",
                "http://h:65535/", "a" * 63 + ".test"]
        for address in good:
            with self.subTest(address=address):
                reply = self.sim.api("POST", "/targets", {"address": address})
                self.assertEqual(reply.status, 201, reply.body)
                self.assertEqual(reply.json()["address"], address)
        created = len(self.sim.ctl("GET", "/targets")["targets"])
        bad = [({}, "address"), ({"address": ""}, "address"),
               ({"address": "not a host"}, "address"), ({"address": "ftp://x.test"}, "address"),
               ({"address": "https://"}, "address"), ({"address": "http://a b.test"}, "address"),
               ({"address": "https://u:p@host.test"}, "address"),
               ({"address": "host.test:0"}, "address"), ({"address": "host.test:99999"}, "address"),
               ({"address": "-bad.test"}, "address"), ({"address": "a..b"}, "address"),
               ({"address": "x" * 1025}, "address"), ({"address": 5}, "address"),
               ({"address": None}, "address"), ({"address": "https://h.test/\u00e9"}, "address"),
               ({"address": "h.test", "description": 5}, "description"),
               ({"address": "h.test", "description": "d" * 1025}, "description"),
               ({"address": "h.test", "type": "web"}, "type"),
               ({"address": "h.test", "type": None}, "type"),
               ({"address": "h.test", "criticality": 15}, "criticality"),
               ({"address": "h.test", "criticality": "10"}, "criticality"),
               ({"address": "h.test", "criticality": True}, "criticality"),
               ({"address": "h.test", "criticality": 10.0}, "criticality"),
               ([], "body"), ("h.test", "body")]
        for body, field in bad:
            with self.subTest(body=body):
                details = self.assertError(self.sim.api("POST", "/targets", body), 400)["details"]
                self.assertTrue(any(d.startswith(field + ":") for d in details), details)
        self.assertError(self.sim.api("POST", "/targets", b"{nope"), 400)
        self.assertEqual(len(self.sim.ctl("GET", "/targets")["targets"]), created)
        # Several problems at once: each is named.
        details = self.assertError(self.sim.api("POST", "/targets", {
            "address": "?", "criticality": 1, "type": "x"}), 400)["details"]
        self.assertEqual([d.split(":")[0] for d in details], ["address", "type", "criticality"])

    def test_posted_targets_scan_and_page_like_any_other(self):
        ids = [self.sim.api("POST", "/targets", {"address": f"https://t{i}.test"}).json()[
            "target_id"] for i in range(3)]
        scan_id = self.sim.launch_id(ids[1])
        item = self.sim.api("GET", f"/scans/{scan_id}").json()
        self.assertEqual(item["target"], {"address": "https://t1.test", "description": "",
                                          "type": "default", "criticality": 10})
        session = self.sim.wait_status(scan_id, "completed")
        self.assertEqual(self.sim.ctl("GET", f"/scans/{scan_id}")["outcome"], "completed")
        target = self.sim.api("GET", f"/targets/{ids[1]}").json()
        self.assertTargetItem(target)
        self.assertEqual((target["last_scan_id"], target["last_scan_session_status"],
                          target["last_scan_session_id"]),
                         (scan_id, "completed", session["scan_session_id"]))
        self.assertRegex(target["last_scan_date"], DATE_RE)
        listed, pages, count = EndpointTests._collect_pages(self, "/targets", "targets",
                                                            "cursors", 2)
        self.assertEqual((pages, count), (2, 4))
        self.assertEqual([t["target_id"] for t in listed], [BUILTIN_TARGET] + ids)
        self.assertEqual(listed[2], target)
        self.assertEqual(self.trail, [["0", "2"], ["2"]])

    def test_patch_target(self):
        target = self.sim.api("POST", "/targets", {"address": "https://p.test"}).json()
        path = f"/targets/{target['target_id']}"
        scan_id = self.sim.launch_id(target["target_id"])
        self.sim.api("GET", f"/scans/{scan_id}")                       # cached answer
        reply = self.sim.api("PATCH", path, {"address": "https://p.test",
                                              "description": "patched", "criticality": 30,
                                              "type": "default", "fqdn": "ignored"})
        self.assertEqual((reply.status, reply.body), (204, b""))
        now = self.sim.api("GET", path).json()
        self.assertEqual((now["description"], now["criticality"]), ("patched", 30))
        scan = self.sim.api("GET", f"/scans/{scan_id}").json()
        self.assertEqual((scan["target"]["description"], scan["criticality"]), ("patched", 30))
        # Fields left out stay as they are.
        self.assertEqual(self.sim.api("PATCH", path, {"address": "https://p.test"}).status, 204)
        self.assertEqual(self.sim.api("GET", path).json(), now)
        for body, field in [({"description": "no address"}, "address"),
                            ({"address": "https://other.test"}, "address"),
                            ({"address": "https://p.test", "type": "demo"}, "type"),
                            ({"address": "https://p.test", "criticality": 11}, "criticality"),
                            ({"address": "https://p.test", "description": 1}, "description")]:
            with self.subTest(body=body):
                details = self.assertError(self.sim.api("PATCH", path, body), 400)["details"]
                self.assertTrue(details[0].startswith(field + ":"), details)
        self.assertEqual(self.sim.api("GET", path).json(), now)
        self.assertError(self.sim.api("PATCH", f"/targets/{tid(98)}",
                                      {"address": "https://p.test"}), 404)

    def test_delete_target_deletes_its_scans_and_reports(self):
        keep = self.sim.api("POST", "/targets", {"address": "keep.test"}).json()["target_id"]
        doomed = self.sim.api("POST", "/targets", {"address": "doomed.test"}).json()[
            "target_id"]
        doomed_scans = [self.sim.launch_id(doomed) for _ in range(2)]
        kept_scan = self.sim.launch_id(keep)
        self.sim.wait_status(doomed_scans[0], "completed")
        reports = {name: self.sim.new_report(source)["report_id"] for name, source in [
            ("doomed_scans", {"list_type": "scans", "id_list": doomed_scans}),
            ("doomed_target", {"list_type": "targets", "id_list": [doomed]}),
            ("kept_scan", {"list_type": "scans", "id_list": [kept_scan]}),
            ("all", {"list_type": "all_vulnerabilities"})]}
        reply = self.sim.api("DELETE", f"/targets/{doomed}")
        self.assertEqual((reply.status, reply.body), (204, b""))
        self.assertError(self.sim.api("GET", f"/targets/{doomed}"), 404)
        self.assertError(self.sim.api("DELETE", f"/targets/{doomed}"), 404)
        self.assertNotIn(doomed, [t["target_id"] for t in
                                  self.sim.api("GET", "/targets").json()["targets"]])
        for scan_id in doomed_scans:
            self.assertError(self.sim.api("GET", f"/scans/{scan_id}"), 404)
            self.assertIs(self.sim.ctl("GET", f"/scans/{scan_id}")["deleted"], True)
        self.assertEqual([s["scan_id"] for s in self.sim.api("GET", "/scans").json()["scans"]],
                         [kept_scan])
        self.sim.launch(doomed, expect=404)
        for name in ("doomed_scans", "doomed_target"):
            self.assertError(self.sim.api("GET", f"/reports/{reports[name]}"), 404)
        for name in ("kept_scan", "all"):
            self.assertEqual(self.sim.api("GET", f"/reports/{reports[name]}").status, 200)
        control = {r["report_id"]: r["deleted"] for r in self.sim.ctl("GET", "/reports")[
            "reports"]}
        self.assertEqual(control, {reports["doomed_scans"]: True,
                                   reports["doomed_target"]: True,
                                   reports["kept_scan"]: False, reports["all"]: False})

    def test_control_delete_target_is_not_an_api_request(self):
        scan_id = self.sim.launch_id()
        before = self.sim.log()["next_seq"]
        targets = self.sim.ctl("DELETE", f"/targets/{BUILTIN_TARGET.upper()}")["targets"]
        self.assertEqual(targets, [])
        self.assertEqual(self.sim.log()["next_seq"], before)
        self.assertError(self.sim.api("GET", f"/targets/{BUILTIN_TARGET}"), 404)
        self.assertError(self.sim.api("GET", f"/scans/{scan_id}"), 404)
        self.sim.ctl("DELETE", f"/targets/{BUILTIN_TARGET}", expect=404)
        self.sim.ctl("DELETE", "/targets/nope", expect=404)
        # Targets added later still page after the others (orders never repeat).
        self.sim.add_targets({"target_id": tid(1)}, {"target_id": tid(2)})
        self.sim.ctl("DELETE", f"/targets/{tid(1)}")
        new = self.sim.api("POST", "/targets", {"address": "n.test"}).json()["target_id"]
        ids = [t["target_id"] for t in self.sim.api("GET", "/targets").json()["targets"]]
        self.assertEqual(ids, [tid(2), new])
        self.sim.config(cursors="opaque")     # cursors name the last target's order
        listed, _, _ = EndpointTests._collect_pages(self, "/targets", "targets", "cursors", 1)
        self.assertEqual([t["target_id"] for t in listed], [tid(2), new])
        self.sim.ctl("POST", "/reset")
        self.assertEqual([t["target_id"] for t in self.sim.ctl("GET", "/targets")["targets"]],
                         [BUILTIN_TARGET])
        # Ids of created objects come from the seed: the same after a reset.
        first = self.sim.api("POST", "/targets", {"address": "x.test"}).json()["target_id"]
        self.sim.ctl("POST", "/reset")
        again = self.sim.api("POST", "/targets", {"address": "y.test"}).json()["target_id"]
        self.assertEqual(first, again)


class ProfileTests(ResourceAssertions, SimTestCase):

    def test_post_get_delete_profile(self):
        reply = self.sim.api("POST", PROFILES, {"name": "Mine", "checks": ["wvs/Scripts"],
                                                "custom": False, "profile_id": tid(5)})
        self.assertEqual(reply.status, 201, reply.body)
        profile = reply.json()
        self.assertKeys(profile, PROFILE_KEYS)
        pid = profile["profile_id"]
        self.assertNotEqual(pid, tid(5))                       # the server names it
        self.assertEqual(reply.headers["location"], f"/api/v1/scanning_profiles/{pid}")
        self.assertEqual(profile, {"profile_id": pid, "name": "Mine", "custom": True,
                                   "sort_order": 1000, "checks": ["wvs/Scripts"]})
        self.assertEqual(self.sim.api("GET", f"{PROFILES}/{pid}").json(), profile)
        self.assertEqual(self.sim.api("GET", PROFILES).json()["scanning_profiles"][-1], profile)
        # Two profiles may share a name; sort_order orders the list.
        twin = self.sim.api("POST", PROFILES, {"name": "Mine", "checks": [],
                                               "sort_order": 1}).json()
        names = [(p["name"], p["sort_order"]) for p in
                 self.sim.api("GET", PROFILES).json()["scanning_profiles"]]
        self.assertEqual(names[:2], [("Full Scan", 1), ("Mine", 1)])
        self.assertEqual(names[-1], ("Mine", 1000))
        scan_id = self.sim.launch_id(profile_id=pid)
        self.assertEqual(self.sim.api("GET", f"/scans/{scan_id}").json()["profile_name"], "Mine")
        reply = self.sim.api("DELETE", f"{PROFILES}/{pid}")
        self.assertEqual((reply.status, reply.body), (204, b""))
        self.assertError(self.sim.api("GET", f"{PROFILES}/{pid}"), 404)
        self.assertError(self.sim.api("DELETE", f"{PROFILES}/{pid}"), 404)
        self.assertError(self.sim.launch(profile_id=pid, expect=404), 404,
                         "Scanning profile not found")
        # The scan keeps the name it was launched with.
        self.assertEqual(self.sim.api("GET", f"/scans/{scan_id}").json()["profile_name"], "Mine")
        self.assertEqual(self.sim.api("GET", f"{PROFILES}/{twin['profile_id']}").status, 200)

    def test_profile_validation(self):
        bad = [({"name": "x"}, "checks"), ({"name": "x", "checks": "a"}, "checks"),
               ({"name": "x", "checks": [""]}, "checks"),
               ({"name": "x", "checks": ["c" * 129]}, "checks"),
               ({"name": "x", "checks": ["c"] * 801}, "checks"),
               ({"name": "x", "checks": [5]}, "checks"), ({"checks": []}, "name"),
               ({"name": "", "checks": []}, "name"), ({"name": "n" * 257, "checks": []}, "name"),
               ({"name": 5, "checks": []}, "name"),
               ({"name": "x", "checks": [], "sort_order": 0}, "sort_order"),
               ({"name": "x", "checks": [], "sort_order": "1"}, "sort_order"),
               ({"name": "x", "checks": [], "sort_order": True}, "sort_order"),
               ([], "body")]
        for body, field in bad:
            with self.subTest(body=body):
                details = self.assertError(self.sim.api("POST", PROFILES, body), 400)["details"]
                self.assertTrue(any(d.startswith(field + ":") for d in details), details)
        self.assertEqual(len(self.sim.ctl("GET", "/profiles")["profiles"]), 6)
        ok = {"name": "n" * 256, "checks": ["c" * 128] * 800, "sort_order": 1}
        self.assertEqual(self.sim.api("POST", PROFILES, ok).status, 201)

    def test_builtin_profiles_are_not_editable(self):
        self.assertError(self.sim.api("DELETE", f"{PROFILES}/{FULL_SCAN}"), 409)
        self.assertError(self.sim.api("PATCH", f"{PROFILES}/{FULL_SCAN}",
                                      {"name": "x", "checks": []}), 409)
        self.assertEqual(self.sim.api("GET", f"{PROFILES}/{FULL_SCAN}").json()["name"],
                         "Full Scan")
        pid = self.sim.api("POST", PROFILES, {"name": "Mine", "checks": []}).json()["profile_id"]
        reply = self.sim.api("PATCH", f"{PROFILES}/{pid}", {"checks": ["a"], "sort_order": 7})
        self.assertEqual((reply.status, reply.body), (204, b""))
        self.assertEqual(self.sim.api("GET", f"{PROFILES}/{pid}").json(),
                         {"profile_id": pid, "name": "Mine", "custom": True, "sort_order": 7,
                          "checks": ["a"]})
        self.assertError(self.sim.api("PATCH", f"{PROFILES}/{pid}", {"name": "x"}), 400)
        self.assertError(self.sim.api("PATCH", f"{PROFILES}/{tid(1)}", {"checks": []}), 404)

    def test_control_profiles_replace_the_store(self):
        store = self.sim.ctl("PUT", "/profiles", {"profiles": [
            {"profile_id": tid(1), "name": "Twin"},
            {"profile_id": tid(2).upper(), "name": "Twin", "custom": True, "sort_order": 9,
             "checks": ["x"]}]})["profiles"]
        self.assertEqual(store, [
            {"profile_id": tid(1), "name": "Twin", "custom": False, "sort_order": 1,
             "checks": []},
            {"profile_id": tid(2), "name": "Twin", "custom": True, "sort_order": 9,
             "checks": ["x"]}])
        self.assertEqual(self.sim.api("GET", PROFILES).json()["scanning_profiles"], store)
        self.assertEqual(self.sim.ctl("GET", "/profiles")["profiles"], store)
        self.sim.launch(profile_id=FULL_SCAN, expect=404)
        self.assertEqual(self.sim.launch(profile_id=tid(2)).status, 201)
        for bad in [{"profiles": [{"name": "x"}]},
                    {"profiles": [{"profile_id": "x", "name": "x"}]},
                    {"profiles": [{"profile_id": tid(3)}]},
                    {"profiles": [{"profile_id": tid(3), "name": "x", "colour": 1}]},
                    {"profiles": [{"profile_id": tid(3), "name": "x", "custom": "yes"}]},
                    {"profiles": [{"profile_id": tid(3), "name": "a"},
                                  {"profile_id": tid(3), "name": "b"}]},
                    {"profiles": "all"}, {}]:
            with self.subTest(body=bad):
                self.sim.ctl("PUT", "/profiles", bad, expect=400)
        self.assertEqual(self.sim.ctl("GET", "/profiles")["profiles"], store)
        self.assertEqual(self.sim.ctl("PUT", "/profiles", {"profiles": []})["profiles"], [])
        self.assertEqual(self.sim.api("GET", PROFILES).json(), {"scanning_profiles": []})
        self.sim.ctl("POST", "/reset")
        self.assertEqual(len(self.sim.api("GET", PROFILES).json()["scanning_profiles"]), 6)
        self.assertEqual(self.sim.launch().status, 201)


class ReportTests(ResourceAssertions, SimTestCase):

    def completed_scan(self, target_id=BUILTIN_TARGET):
        scan_id = self.sim.launch_id(target_id)
        self.sim.wait_status(scan_id, "completed")
        return scan_id

    def test_report_templates(self):
        reply = self.sim.api("GET", "/report_templates")
        self.assertEqual(reply.status, 200)
        templates = reply.json()["templates"]
        for template in templates:
            self.assertKeys(template, TEMPLATE_KEYS)
        self.assertEqual([(t["template_id"], t["name"], t["group"]) for t in templates],
                         BUILTIN_TEMPLATES)
        twins = [{"template_id": tid(1), "name": "Same"},
                 {"template_id": tid(2), "name": "Same", "group": "Compliance Reports"}]
        stored = self.sim.ctl("PUT", "/report_templates", {"templates": twins})["templates"]
        self.assertEqual(stored, [dict(twins[0], group="Standard Reports"), twins[1]])
        self.assertEqual(self.sim.api("GET", "/report_templates").json()["templates"], stored)
        self.assertEqual(self.sim.ctl("GET", "/report_templates")["templates"], stored)
        self.assertError(self.sim.api("POST", "/reports", {
            "template_id": DEVELOPER, "source": {"list_type": "all_vulnerabilities"}}), 404,
            "Report template not found")
        report = self.sim.new_report({"list_type": "all_vulnerabilities"}, tid(2))
        self.assertEqual((report["template_id"], report["template_name"]), (tid(2), "Same"))
        for bad in [{"templates": [{"name": "x"}]},
                    {"templates": [{"template_id": tid(3)}]},
                    {"templates": [{"template_id": tid(3), "name": ""}]},
                    {"templates": [{"template_id": tid(3), "name": "x", "group": 1}]},
                    {"templates": [{"template_id": tid(3), "name": "x", "extra": 1}]},
                    {"templates": [{"template_id": tid(3), "name": "a"},
                                   {"template_id": tid(3), "name": "b"}]},
                    {"templates": None}]:
            with self.subTest(body=bad):
                self.sim.ctl("PUT", "/report_templates", bad, expect=400)
        self.sim.ctl("POST", "/reset")
        self.assertEqual(len(self.sim.api("GET", "/report_templates").json()["templates"]), 15)

    def test_report_lifecycle(self):
        scan_id = self.completed_scan()
        self.sim.config(time_scale=0.25)       # queued 0.25 s, processing until 0.75 s
        source = {"list_type": "scans", "id_list": [scan_id.upper()], "description": "mine"}
        reply = self.sim.api("POST", "/reports", {"template_id": DEVELOPER, "source": source})
        self.assertEqual(reply.status, 201, reply.body)
        report = reply.json()
        self.assertReport(report)
        report_id = report["report_id"]
        self.assertEqual(reply.headers["location"], f"/api/v1/reports/{report_id}")
        self.assertEqual({k: report[k] for k in ("template_id", "template_name", "source",
                                                 "status", "download")},
                         {"template_id": DEVELOPER, "template_name": "Developer",
                          "source": source, "status": "queued", "download": []})
        seen = []
        while not seen or seen[-1] != "completed":
            current = self.sim.api("GET", f"/reports/{report_id}").json()
            self.assertReport(current)
            if not seen or seen[-1] != current["status"]:
                seen.append(current["status"])
            if current["status"] != "completed":
                self.assertEqual(current["download"], [])
            time.sleep(0.03)
        self.assertEqual(seen, ["queued", "processing", "completed"])
        self.assertEqual(current["generation_date"], report["generation_date"])
        links = current["download"]
        self.assertEqual([re.match(DOWNLOAD_RE, link).group(2) for link in links],
                         ["html", "pdf"])
        self.assertEqual(len({re.match(DOWNLOAD_RE, link).group(1) for link in links}), 1)
        listed = self.sim.api("GET", "/reports").json()
        self.assertEqual(listed["reports"], [current])
        self.assertPagination(listed["pagination"])
        control = self.sim.ctl("GET", f"/reports/{report_id}")
        self.assertEqual((control["status"], control["scan_ids"], control["download"],
                          control["deleted"], control["pinned"]),
                         ("completed", [scan_id], links, False, False))
        self.assertEqual(self.sim.ctl("GET", "/reports")["reports"], [control])
        self.assertError(self.sim.api("GET", f"/reports/{tid(1)}"), 404, "Report not found")
        self.sim.config(dates="naive")
        self.assertRegex(self.sim.api("GET", f"/reports/{report_id}").json()[
            "generation_date"], NAIVE_ISO_RE)

    def test_report_downloads(self):
        scans = [self.completed_scan() for _ in range(2)]
        report = self.sim.wait_report(self.sim.new_report(
            {"list_type": "scans", "id_list": scans})["report_id"])
        html_link, pdf_link = [link.removeprefix("/api/v1") for link in report["download"]]
        reply = self.sim.api("GET", html_link)
        self.assertEqual(reply.status, 200)
        self.assertEqual(reply.headers["content-type"], "text/html; charset=utf-8")
        self.assertEqual(reply.headers["content-disposition"],
                         f'attachment; filename="report_{report["report_id"]}.html"')
        rows = self.assertHtmlReport(reply.body)
        self.assertEqual(rows[0], ["scan_id", "target", "status", *SEVERITIES])
        counts = {s["scan_id"]: s["severity_counts"] for s in self.sim.ctl("GET", "/scans")[
            "scans"]}
        self.assertEqual(rows[1:], [[s, "https://demo.testfire.net", "completed",
                                     *[str(counts[s][k]) for k in SEVERITIES]] for s in scans])
        self.assertIn(b"<title>Developer report</title>", reply.body)
        self.assertIn(report["report_id"].encode(), reply.body)
        self.assertEqual(self.sim.api("GET", html_link).body, reply.body)    # deterministic
        pdf = self.sim.api("GET", pdf_link)
        self.assertEqual((pdf.status, pdf.headers["content-type"]), (200, "application/pdf"))
        self.assertEqual(pdf.headers["content-disposition"],
                         f'attachment; filename="report_{report["report_id"]}.pdf"')
        self.assertPdf(pdf.body)
        for scan_id in scans:
            self.assertIn(scan_id.encode(), pdf.body)
        self.assertIn(b"(Developer report) Tj", pdf.body)
        self.assertEqual(self.sim.api("GET", pdf_link).body, pdf.body)
        # The spec lists no security for the download: no token, a wrong one,
        # even the forbidden one are all served.
        for token in (None, "wrong", FORBIDDEN):
            with self.subTest(token=token):
                self.assertEqual(self.sim.api("GET", pdf_link, token=token).body, pdf.body)
        self.assertEqual([e["auth"] for e in self.sim.log()["entries"][-3:]],
                         ["missing", "bad", "forbidden"])
        descriptor = re.match(DOWNLOAD_RE, report["download"][0]).group(1)
        for path in (f"/reports/download/{descriptor}", f"/reports/download/{descriptor}.txt",
                     f"/reports/download/{'0' * 64}.html", f"/reports/download/{descriptor}.HTML",
                     f"/reports/download/x{descriptor}.pdf"):
            with self.subTest(path=path):
                self.assertError(self.sim.api("GET", path), 404)
        self.assertError(self.sim.api("DELETE", html_link), 405)
        # Not completed yet, or deleted: 404.
        self.sim.ctl("POST", f"/reports/{report['report_id']}/force", {"status": "processing"})
        self.assertError(self.sim.api("GET", html_link), 404)
        self.assertEqual(self.sim.api("GET", f"/reports/{report['report_id']}").json()[
            "download"], [])
        self.sim.ctl("POST", f"/reports/{report['report_id']}/force", {"status": None})
        self.assertEqual(self.sim.api("GET", html_link).status, 200)
        reply = self.sim.api("DELETE", f"/reports/{report['report_id']}")
        self.assertEqual((reply.status, reply.body), (204, b""))
        self.assertError(self.sim.api("GET", html_link, token=None), 404)
        self.assertError(self.sim.api("GET", f"/reports/{report['report_id']}"), 404)
        self.assertError(self.sim.api("DELETE", f"/reports/{report['report_id']}"), 404)
        self.assertIs(self.sim.ctl("GET", f"/reports/{report['report_id']}")["deleted"], True)

    def test_download_links_foreign_variant(self):
        """Invented, hostile: the download paths on another host."""
        self.sim.config(download_links="foreign")
        report = self.sim.wait_report(self.sim.new_report(
            {"list_type": "all_vulnerabilities"})["report_id"])
        self.assertEqual(len(report["download"]), 2)
        for link in report["download"]:
            self.assertTrue(link.startswith("https://downloads.attacker.invalid/api/v1/reports/download/"),
                            link)
            # the path itself is served here as usual
            path = link.removeprefix("https://downloads.attacker.invalid/api/v1")
            self.assertEqual(self.sim.api("GET", path).status, 200)

    def test_download_auth_required_variant(self):
        report = self.sim.wait_report(self.sim.new_report(
            {"list_type": "all_vulnerabilities"})["report_id"])
        link = report["download"][0].removeprefix("/api/v1")
        self.sim.config(download_auth="required")
        self.assertError(self.sim.api("GET", link, token=None), 401)
        self.assertError(self.sim.api("GET", link, token="wrong"), 401)
        self.assertError(self.sim.api("GET", link, token=FORBIDDEN), 403)
        self.assertEqual(self.sim.api("GET", link).status, 200)
        self.sim.config(auth_failure=400)
        self.assertError(self.sim.api("GET", link, token=None), 400,
                         "Invalid Authorization header")
        self.sim.ctl("POST", "/reset")
        self.assertEqual(self.sim.ctl("GET", "/config")["download_auth"], "none")

    def test_report_validation(self):
        scan_id = self.completed_scan()
        deleted = self.completed_scan()
        self.sim.api("DELETE", f"/scans/{deleted}")
        good_source = {"list_type": "scans", "id_list": [scan_id]}
        bad = [({"source": good_source}, 400, "template_id"),
               ({"template_id": "Developer", "source": good_source}, 400, "template_id"),
               ({"template_id": DEVELOPER}, 400, "source"),
               ({"template_id": DEVELOPER, "source": "scans"}, 400, "source"),
               ({"template_id": DEVELOPER, "source": {"id_list": [scan_id]}}, 400,
                "source.list_type"),
               ({"template_id": DEVELOPER, "source": {"list_type": "everything"}}, 400,
                "source.list_type"),
               ({"template_id": DEVELOPER, "source": {"list_type": "scans",
                                                      "id_list": scan_id}}, 400,
                "source.id_list"),
               ({"template_id": DEVELOPER, "source": {"list_type": "scans",
                                                      "id_list": [scan_id] * 501}}, 400,
                "source.id_list"),
               ({"template_id": DEVELOPER, "source": {"list_type": "scans",
                                                      "id_list": [scan_id + "0"]}}, 400,
                "source.id_list"),
               ({"template_id": DEVELOPER, "source": dict(good_source, description="d" * 257)},
                400, "source.description"),
               ({"template_id": DEVELOPER, "source": {"list_type": "scans"}}, 400,
                "source.id_list"),
               ({"template_id": DEVELOPER, "source": {"list_type": "scans", "id_list": []}},
                400, "source.id_list"),
               ({"template_id": DEVELOPER, "source": {"list_type": "groups",
                                                      "id_list": [tid(1)]}}, 400,
                "source.list_type"),
               ({"template_id": tid(9), "source": good_source}, 404, "Report template"),
               ({"template_id": DEVELOPER, "source": {"list_type": "scans",
                                                      "id_list": [scan_id, tid(4)]}}, 404,
                f"Scan {tid(4)}"),
               ({"template_id": DEVELOPER, "source": {"list_type": "scans",
                                                      "id_list": [deleted]}}, 404,
                f"Scan {deleted}"),
               ({"template_id": DEVELOPER, "source": {"list_type": "targets",
                                                      "id_list": [tid(4)]}}, 404,
                f"Target {tid(4)}"),
               ([], 400, "body")]
        for body, status, named in bad:
            with self.subTest(body=body):
                details = self.assertError(self.sim.api("POST", "/reports", body),
                                           status)["details"]
                self.assertTrue(any(d.startswith(named) for d in details), details)
        self.assertEqual(self.sim.ctl("GET", "/reports")["reports"], [])
        ok = {"template_id": DEVELOPER, "source": {"list_type": "scans",
                                                   "id_list": [scan_id] * 500,
                                                   "description": "d" * 256}}
        self.assertEqual(self.sim.api("POST", "/reports", ok).status, 201)

    def test_report_sources(self):
        self.sim.add_targets({"target_id": tid(1)}, {"target_id": tid(2)})
        first, second, other = (self.completed_scan(tid(1)), self.completed_scan(tid(1)),
                                self.completed_scan(tid(2)))
        by_target = self.sim.new_report({"list_type": "targets", "id_list": [tid(1)]})
        everything = self.sim.new_report({"list_type": "all_vulnerabilities"})
        control = {r["report_id"]: r for r in self.sim.ctl("GET", "/reports")["reports"]}
        self.assertEqual(control[by_target["report_id"]]["scan_ids"], [first, second])
        self.assertEqual(control[by_target["report_id"]]["target_ids"], [tid(1)])
        self.assertEqual(control[everything["report_id"]]["scan_ids"],
                         [first, second, other])
        self.assertEqual(control[everything["report_id"]]["target_ids"], [])
        report = self.sim.wait_report(by_target["report_id"])
        rows = self.assertHtmlReport(self.sim.api(
            "GET", report["download"][0].removeprefix("/api/v1"), token=None).body)
        self.assertEqual([row[0] for row in rows[1:]], [first, second])

    def test_report_outcomes_and_force(self):
        self.sim.config(report_outcome="failed")
        failed = self.sim.new_report({"list_type": "all_vulnerabilities"})["report_id"]
        self.sim.config(report_outcome="stuck")
        stuck = self.sim.new_report({"list_type": "all_vulnerabilities"})["report_id"]
        self.sim.config(report_outcome="completed")    # fixed when each was created
        self.assertEqual(self.sim.wait_report(failed, "failed")["download"], [])
        time.sleep(20 * TIME_SCALE)
        self.assertEqual(self.sim.api("GET", f"/reports/{stuck}").json()["status"],
                         "processing")
        self.assertEqual(self.sim.ctl("GET", f"/reports/{stuck}")["outcome"], "stuck")
        forced = self.sim.ctl("POST", f"/reports/{stuck}/force", {"status": "completed"})
        self.assertEqual((forced["status"], forced["pinned"]), ("completed", True))
        report = self.sim.api("GET", f"/reports/{stuck}").json()
        self.assertEqual(len(report["download"]), 2)
        self.assertEqual(self.sim.api("GET", report["download"][1].removeprefix(
            "/api/v1")).status, 200)
        self.sim.ctl("POST", f"/reports/{stuck}/force", {"status": "weird_new_status"})
        self.assertEqual(self.sim.api("GET", f"/reports/{stuck}").json()["status"],
                         "weird_new_status")
        self.assertEqual(self.sim.ctl("POST", f"/reports/{stuck}/force",
                                      {"status": None})["status"], "processing")
        for bad in ({}, {"status": ""}, {"status": 5}, {"status": "x", "progress": 1}):
            with self.subTest(body=bad):
                self.sim.ctl("POST", f"/reports/{stuck}/force", bad, expect=400)
        self.sim.ctl("POST", f"/reports/{tid(1)}/force", {"status": None}, expect=404)
        self.sim.ctl("GET", f"/reports/{tid(1)}", expect=404)

    def test_report_size_pads_both_files(self):
        report = self.sim.wait_report(self.sim.new_report(
            {"list_type": "all_vulnerabilities"})["report_id"])
        links = [link.removeprefix("/api/v1") for link in report["download"]]
        natural = [len(self.sim.api("GET", link).body) for link in links]
        for size in (100000, 4097):
            self.sim.config(report_size=size)
            page, pdf = [self.sim.api("GET", link).body for link in links]
            self.assertEqual((len(page), len(pdf)), (size, size))
            self.assertHtmlReport(page)
            self.assertPdf(pdf)
        self.sim.config(report_size=10)                 # smaller than natural: natural
        self.assertEqual([len(self.sim.api("GET", link).body) for link in links], natural)

    def test_reports_list_paging_and_reset(self):
        ids = [self.sim.new_report({"list_type": "all_vulnerabilities"})["report_id"]
               for _ in range(3)]
        listed, pages, count = EndpointTests._collect_pages(self, "/reports", "reports",
                                                            "cursors", 2)
        self.assertEqual((pages, count), (2, 3))
        self.assertEqual([r["report_id"] for r in listed], ids[::-1])     # newest first
        for report in listed:
            self.assertReport(report)
        self.assertError(self.sim.api("GET", "/reports?q=template_id:x"), 400)
        self.assertError(self.sim.api("GET", "/reports?l=0"), 400)
        self.sim.api("DELETE", f"/reports/{ids[1]}")
        self.assertEqual([r["report_id"] for r in self.sim.api("GET", "/reports").json()[
            "reports"]], [ids[2], ids[0]])
        self.sim.ctl("POST", "/reset")
        self.assertEqual(self.sim.api("GET", "/reports").json()["reports"], [])
        self.assertEqual(self.sim.ctl("GET", "/reports")["reports"], [])


class ReportFileTests(ResourceAssertions, SpecAssertions, unittest.TestCase):
    """The report files, rendered in-process: exact sizes at every padding."""

    @classmethod
    def setUpClass(cls):
        sys.path.insert(0, HERE)
        from sim.reports import Report
        rows = [(tid(i), f"https://t{i}.test/(a)\\b", "completed",
                 dict(zip(SEVERITIES, (i, 2 * i, 3, 0, 1)))) for i in range(3)]
        cls.report = Report(1, tid(7), "ab" * 32, {"template_id": DEVELOPER,
                                                   "name": "Dev <&> (x)"},
                            {"list_type": "scans"}, rows, set(), 0.0, 1.7e9, "completed")

    def test_every_size_is_exact_and_well_formed(self):
        natural = len(self.report.file("pdf", 0))
        # past 1000 bytes the xref offset gains a digit: every size still fits
        for size in range(natural, 2000):
            data = self.report.file("pdf", size)
            self.assertEqual(len(data), size)
            if size % 97 == 0 or size in (natural, natural + 1):
                self.assertPdf(data)
        for size in (1000 - 1, 1000, 1000 + 1, 10 ** 6):
            self.assertPdf(self.report.file("pdf", size))
        natural = len(self.report.file("html", 0))
        for size in (natural, natural + 1, natural + 2, 50000):
            page = self.report.file("html", size)
            self.assertEqual(len(page), size)
            rows = self.assertHtmlReport(page)
            self.assertEqual(rows[1][1], "https://t0.test/(a)\\b")
        self.assertIn(b"<title>Dev &lt;&amp;&gt; (x) report</title>", page)
        self.assertIn(rb"(Dev <&> \(x\) report) Tj", self.report.file("pdf", 0))


# ---------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------

LAUNCH_PATH = {"method": "POST", "path": "^/api/v1/scans$"}
PROFILES = "/scanning_profiles"
PROFILES_PATH = {"path": "/scanning_profiles$"}


class FaultTests(SimTestCase):

    def raw_exchange(self, request_bytes, timeout=10):
        """Send raw bytes, read until EOF; returns everything received."""
        with socket.create_connection(("127.0.0.1", self.sim.api_port), timeout=timeout) as s:
            s.sendall(request_bytes)
            chunks = []
            while True:
                data = s.recv(65536)
                if not data:
                    return b"".join(chunks)
                chunks.append(data)

    def raw_get(self, path, extra=b""):
        return (f"GET /api/v1{path} HTTP/1.1\r\nHost: x\r\nX-Auth: {TOKEN}\r\n".encode()
                + extra + b"\r\n")

    def scans_created(self):
        return len(self.sim.ctl("GET", "/scans")["scans"])

    def test_rule_validation_and_listing(self):
        for bad in [{"fault": "nope"}, {"fault": "latency", "ms": -1},
                    {"fault": "status", "status": 99}, {"fault": "drop", "when": "never"},
                    {"fault": "html", "match": {"path": "("}}, {"fault": "empty", "bogus": 1},
                    {"fault": "latency", "probability": 2},
                    {"fault": "status", "retry_after": "date"},
                    {"fault": "status", "reason": 5}, {"fault": "status", "details": 5},
                    {"fault": "mutate", "mutation": "nope"},
                    {"fault": "mutate", "mutation": "long_vuln_id", "bytes": 0},
                    {"fault": "mutate", "status": 500}]:
            with self.subTest(rule=bad):
                self.sim.ctl("POST", "/faults", {"rules": [bad]}, expect=400)
        rules = self.sim.faults({"fault": "status", "status": 503, "count": 2})["rules"]
        self.assertEqual(rules[0]["remaining"], 2)
        self.assertEqual(self.sim.ctl("DELETE", "/faults")["rules"], [])
        self.assertEqual(self.sim.ctl("GET", "/faults")["rules"], [])

    def test_latency_before(self):
        self.sim.faults({"match": LAUNCH_PATH, "fault": "latency", "ms": 300})
        t0 = time.monotonic()
        self.sim.launch()
        self.assertGreaterEqual(time.monotonic() - t0, 0.29)
        self.assertEqual(self.scans_created(), 1)
        # A client that times out during a "before" delay has created nothing.
        self.sim.faults({"match": LAUNCH_PATH, "fault": "latency", "ms": 800})
        with self.assertRaises(socket.timeout):
            self.sim.api("POST", "/scans", self.sim.launch_body(), timeout=0.2)
        entry = wait_until(lambda: [e for e in self.sim.log()["entries"]
                                    if e["fault"] == "latency" and e["client_closed"]],
                           message="log entry of the abandoned request")[0]
        self.assertEqual(entry["status"], 0)
        self.assertIsNone(entry["created_scan_id"])
        self.assertEqual(self.scans_created(), 1)

    def test_latency_after_creates_scan_unseen_by_client(self):
        self.sim.faults({"match": LAUNCH_PATH, "fault": "latency", "ms": 700, "when": "after"})
        with self.assertRaises(socket.timeout):
            self.sim.api("POST", "/scans", self.sim.launch_body(), timeout=0.2)
        self.assertEqual(self.scans_created(), 1)
        entry = wait_until(lambda: [e for e in self.sim.log()["entries"]
                                    if e["fault"] == "latency"], message="log entry")[0]
        self.assertEqual(entry["status"], 201)
        self.assertTrue(entry["client_closed"])
        scan = self.sim.ctl("GET", "/scans")["scans"][0]
        self.assertEqual(entry["created_scan_id"], scan["scan_id"])
        self.assertEqual(scan["request_seq"], entry["seq"])
        self.assertGreaterEqual(entry["duration_ms"], 650)

    def test_latency_jitter(self):
        self.sim.faults({"match": PROFILES_PATH, "fault": "latency", "ms": 100,
                         "jitter_ms": 100})
        t0 = time.monotonic()
        self.assertEqual(self.sim.api("GET", PROFILES).status, 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.099)

    def test_status_with_retry_after(self):
        self.sim.faults({"match": PROFILES_PATH, "fault": "status", "status": 429,
                         "retry_after": 7})
        reply = self.sim.api("GET", PROFILES)
        self.assertError(reply, 429, "Too many requests")
        self.assertEqual(reply.headers["retry-after"], "7")
        self.sim.faults({"fault": "status", "status": 503, "retry_after": "date",
                         "seconds": 120})
        reply = self.sim.api("GET", "/scans")
        self.assertError(reply, 503)
        when = email.utils.parsedate_to_datetime(reply.headers["retry-after"]).timestamp()
        self.assertAlmostEqual(when, time.time() + 120, delta=5)
        for status in (500, 502, 504, 401, 403):
            self.sim.faults({"fault": "status", "status": status})
            body = self.assertError(self.sim.api("GET", PROFILES), status)
            self.assertEqual(body["details"], ["Simulated fault"])
            self.assertNotIn("retry-after", self.sim.api("GET", PROFILES).headers)

    def test_status_reason_and_details(self):
        self.sim.faults({"fault": "status", "status": 400,
                         "reason": "Invalid Authorization header",
                         "details": "Session expired"})
        body = self.assertError(self.sim.api("GET", PROFILES), 400,
                                "Invalid Authorization header")
        self.assertEqual(body["details"], ["Session expired"])
        self.sim.faults({"fault": "status", "status": 422, "details": ["a: bad", "b: worse"]})
        body = self.assertError(self.sim.api("GET", PROFILES), 422, "Validation error")
        self.assertEqual(body["details"], ["a: bad", "b: worse"])
        self.sim.faults({"fault": "status", "status": 409, "details": []})
        self.assertEqual(self.assertError(self.sim.api("GET", PROFILES), 409)["details"], [])
        # An object instead of the spec's list (invented: a delay in the details).
        self.sim.faults({"fault": "status", "status": 429, "details": {"retry_after": 30}})
        reply = self.sim.api("GET", PROFILES)
        self.assertEqual(reply.status, 429)
        self.assertEqual(reply.json(), {"code": 429, "reason": "Too many requests",
                                        "details": {"retry_after": 30}})

    def test_status_process_true_and_false(self):
        self.sim.faults({"match": LAUNCH_PATH, "fault": "status", "status": 502})
        self.assertError(self.sim.launch(expect=502), 502)
        self.assertEqual(self.scans_created(), 0)
        self.sim.faults({"match": LAUNCH_PATH, "fault": "status", "status": 500,
                         "process": True})
        self.assertError(self.sim.launch(expect=500), 500)
        self.assertEqual(self.scans_created(), 1)
        entries = self.sim.log()["entries"]
        self.assertIsNone(entries[0]["created_scan_id"])
        self.assertEqual(entries[1]["created_scan_id"],
                         self.sim.ctl("GET", "/scans")["scans"][0]["scan_id"])
        self.assertEqual([e["status"] for e in entries], [502, 500])
        self.assertEqual([e["fault"] for e in entries], ["status", "status"])

    def test_drop_before_and_after(self):
        self.sim.faults({"match": LAUNCH_PATH, "fault": "drop"})
        with self.assertRaises(http.client.RemoteDisconnected):
            self.sim.launch()
        self.assertEqual(self.scans_created(), 0)
        self.sim.faults({"match": LAUNCH_PATH, "fault": "drop", "when": "after"})
        with self.assertRaises(http.client.RemoteDisconnected):
            self.sim.launch()
        self.assertEqual(self.scans_created(), 1)
        self.sim.faults({"match": LAUNCH_PATH, "fault": "drop", "reset": True})
        with self.assertRaises((ConnectionResetError, http.client.RemoteDisconnected)):
            self.sim.launch()
        entries = self.sim.log()["entries"]
        self.assertEqual([e["status"] for e in entries], [0, 0, 0])
        self.assertIsNone(entries[0]["created_scan_id"])
        self.assertIsNotNone(entries[1]["created_scan_id"])

    def test_truncate(self):
        scan_id = self.sim.launch_id()
        self.sim.faults({"match": {"method": "GET"}, "fault": "truncate"})
        data = self.raw_exchange(self.raw_get(f"/scans/{scan_id}"))
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200"))
        length = int([line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")][0])
        self.assertGreater(length, len(body))
        self.assertGreater(len(body), 0)
        with self.assertRaises(http.client.IncompleteRead):
            self.sim.api("GET", PROFILES)
        # Body-less responses (204) are cut inside the header block.
        self.sim.faults({"match": {"method": "POST"}, "fault": "truncate"})
        data = self.raw_exchange((f"POST /api/v1/scans/{scan_id}/abort HTTP/1.1\r\nHost: x\r\n"
                                  f"X-Auth: {TOKEN}\r\nContent-Type: application/json\r\n"
                                  "Content-Length: 0\r\n\r\n").encode())
        self.assertNotIn(b"\r\n\r\n", data)

    def test_garbage(self):
        self.sim.faults({"match": PROFILES_PATH, "fault": "garbage", "bytes": 300})
        reply = self.sim.api("GET", PROFILES)
        self.assertEqual(reply.status, 200)
        self.assertEqual(reply.headers["content-type"], "application/json")
        self.assertEqual(len(reply.body), 300)
        with self.assertRaises(ValueError):
            json.loads(reply.body)
        self.sim.faults({"match": LAUNCH_PATH, "fault": "garbage", "status": 201})
        self.assertEqual(self.sim.launch().status, 201)
        self.assertEqual(self.scans_created(), 1)

    def test_html(self):
        self.sim.faults({"fault": "html"})
        reply = self.sim.launch(expect=502)
        self.assertEqual(reply.headers["content-type"], "text/html")
        self.assertIn(b"<html>", reply.body)
        self.assertIn(b"502 Bad Gateway", reply.body)
        self.sim.faults({"fault": "html", "status": 504})
        self.assertEqual(self.sim.api("GET", PROFILES).status, 504)
        self.assertEqual(self.scans_created(), 0)

    def test_empty(self):
        self.sim.faults({"fault": "empty"})
        reply = self.sim.launch()
        self.assertEqual((reply.status, reply.body, reply.headers["content-length"]),
                         (201, b"", "0"))
        self.assertIn("location", reply.headers)
        self.assertEqual(self.scans_created(), 1)
        reply = self.sim.api("GET", PROFILES)
        self.assertEqual((reply.status, reply.body), (200, b""))

    def test_huge(self):
        scan_id = self.sim.launch_id()
        size = 20_000_000
        self.sim.faults({"match": {"method": "GET"}, "fault": "huge", "bytes": size})
        reply = self.sim.api("GET", f"/scans/{scan_id}", timeout=60)
        self.assertEqual(reply.status, 200)
        self.assertEqual(len(reply.body), size)
        body = reply.json()
        self.assertEqual(body["scan_id"], scan_id)
        self.assertGreater(len(body["_sim_padding"]), size - 1000)
        # A body-less 204 becomes a padded 200 object (a slow scan, so that
        # it is still running however long the 20 MB took on a busy machine).
        self.sim.add_targets({"target_id": tid(9), "duration_scale": 10000})
        slow_id = self.sim.launch_id(tid(9))
        self.sim.faults({"match": {"method": "POST"}, "fault": "huge", "bytes": 1000})
        reply = self.sim.api("POST", f"/scans/{slow_id}/abort")
        self.assertEqual((reply.status, len(reply.body)), (200, 1000))
        json.loads(reply.body)

    def test_huge_client_gives_up(self):
        self.sim.faults({"fault": "huge", "bytes": 500_000_000})
        with socket.create_connection(("127.0.0.1", self.sim.api_port), timeout=10) as s:
            s.sendall(self.raw_get(PROFILES))
            self.assertTrue(s.recv(65536).startswith(b"HTTP/1.1 200"))
        entry = wait_until(lambda: self.sim.log()["entries"], message="huge log entry")[0]
        self.assertTrue(entry["client_closed"])
        self.assertEqual(self.sim.ctl("GET", "/health")["status"], "ok")

    def test_slow_drip(self):
        self.sim.faults({"match": {"method": "GET", "path": "^/api/v1/scans$"},
                         "fault": "slow_drip", "bytes_per_sec": 400})
        t0 = time.monotonic()
        reply = self.sim.api("GET", "/scans")
        elapsed = time.monotonic() - t0
        self.assertEqual(reply.status, 200)
        self.assertGreater(elapsed, len(reply.body) / 400 * 0.6)
        self.assertEqual(reply.json()["scans"], [])
        # After 0.5 s at 10 bytes/s only a few body bytes have arrived; hang up.
        self.sim.faults({"match": PROFILES_PATH, "fault": "slow_drip", "bytes_per_sec": 10})
        with socket.create_connection(("127.0.0.1", self.sim.api_port), timeout=10) as s:
            s.sendall(f"GET /api/v1{PROFILES} HTTP/1.1\r\nX-Auth: {TOKEN}\r\n\r\n".encode())
            deadline, data = time.monotonic() + 0.5, b""
            while time.monotonic() < deadline:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    data += s.recv(4096)
                except socket.timeout:
                    break
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200"))
        self.assertLess(len(body), 20)
        entry = wait_until(lambda: self.sim.log()["entries"][1:], message="drip log")[0]
        self.assertTrue(entry["client_closed"])

    # -- mutate: hostile answers (none of them the real API's behaviour) --
    def test_mutate_echo_token(self):
        self.sim.faults({"fault": "mutate", "mutation": "echo_token"})
        reply = self.sim.launch()
        self.assertEqual(reply.headers["location"], f"/api/v1/scans/{TOKEN}")
        body = reply.json()
        self.assertEqual((body["echo"], body["scan_id"]), (TOKEN, TOKEN))
        self.assertEqual(self.scans_created(), 1)             # it was processed
        body = self.sim.api("GET", PROFILES).json()
        self.assertEqual(body["echo"], TOKEN)
        self.assertEqual(len(body["scanning_profiles"]), 6)
        reply = self.sim.api("GET", f"/scans/{tid(1)}")
        self.assertEqual(reply.status, 404)
        self.assertIn(TOKEN, reply.json()["reason"])
        reply = self.sim.api("GET", PROFILES, token="guessed")
        self.assertEqual((reply.status, reply.json()["echo"]), (401, "guessed"))
        # The simulator's own records still never hold the token.
        everything = json.dumps([self.sim.log(), self.sim.ctl("GET", "/scans"),
                                 self.sim.ctl("GET", "/stats")])
        self.assertNotIn(TOKEN, everything)
        self.assertEqual(self.sim.log()["entries"][0]["fault"], "mutate")

    def test_mutate_escaped_token(self):
        self.sim.faults({"fault": "mutate", "mutation": "escaped_token"})
        reply = self.sim.api("GET", PROFILES)
        self.assertEqual(reply.status, 200)
        self.assertTrue(reply.body.startswith(b'{"echo":"\\u0065\\u0079'))
        self.assertNotIn(TOKEN.encode(), reply.body)
        body = reply.json()
        self.assertEqual(body["echo"], TOKEN)
        self.assertEqual(len(body["scanning_profiles"]), 6)

    def test_mutate_long_vuln_id(self):
        self.sim.add_targets({"target_id": tid(7), "severity_counts": {"high": 3}})
        scan_id = self.sim.launch_id(tid(7))
        sid = self.sim.wait_status(scan_id, "completed")["scan_session_id"]
        path = f"/scans/{scan_id}/results/{sid}/vulnerabilities"
        normal = self.sim.api("GET", path).json()["vulnerabilities"]
        self.sim.faults({"fault": "mutate", "mutation": "long_vuln_id", "bytes": 70000})
        vulns = self.sim.api("GET", path).json()["vulnerabilities"]
        self.assertEqual(vulns[0]["vuln_id"], "x" * 70000)
        self.assertEqual(vulns[1:], normal[1:])
        self.assertEqual(self.sim.api("GET", f"{path}?c=1").json()["vulnerabilities"][0][
            "vuln_id"], "x" * 70000)                          # the first of every page

    def test_mutate_cursor_cycle(self):
        for _ in range(3):
            self.sim.launch()
        self.sim.faults({"fault": "mutate", "mutation": "cursor_cycle"})
        first = self.sim.api("GET", "/scans?l=1").json()
        self.assertEqual(first["pagination"]["cursors"], ["0", "cycle-A"])
        page_a = self.sim.api("GET", "/scans?l=1&c=cycle-A").json()
        self.assertEqual(page_a["pagination"]["cursors"], ["cycle-A", "cycle-B"])
        page_b = self.sim.api("GET", "/scans?l=1&c=cycle-B").json()
        self.assertEqual(page_b["pagination"]["cursors"], ["cycle-B", "cycle-A"])
        def ids(page):      # the same scans (their progress moves on meanwhile)
            return [s["scan_id"] for s in page["scans"]]
        self.assertEqual(ids(page_a), ids(first))
        self.assertEqual(ids(page_b), ids(first))
        self.sim.config(pagination="next_cursor")
        self.assertEqual(self.sim.api("GET", "/scans?l=1").json()["pagination"]["next_cursor"],
                         "cycle-A")
        # Even a one-page list never ends.
        self.assertEqual(self.sim.api("GET", "/targets").json()["pagination"]["next_cursor"],
                         "cycle-A")

    def test_mutate_bad_counts(self):
        self.sim.add_targets({"target_id": tid(9), "duration_scale": 10000})
        scan_id = self.sim.launch_id(tid(9))
        self.sim.faults({"match": {"method": "GET"}, "fault": "mutate",
                         "mutation": "bad_counts"})
        session = self.sim.session(scan_id)
        self.assertEqual(session["severity_counts"], {"critical": 2, "high": -2})
        listed = self.sim.api("GET", "/scans").json()["scans"][0]["current_session"]
        self.assertEqual(listed["severity_counts"], {"critical": 2, "high": -2})
        self.sim.config(shape="wrapped")
        self.sim.faults({"match": {"method": "GET"}, "fault": "mutate",
                         "mutation": "bad_counts", "counts": "lots"})
        self.assertEqual(self.sim.session(scan_id)["severity_counts"], "lots")
        self.sim.ctl("DELETE", "/faults")
        self.assertEqual(self.sim.session(scan_id)["severity_counts"],
                         self.sim.ctl("GET", f"/scans/{scan_id}")["severity_counts"])

    def test_faults_and_log_on_the_new_routes(self):
        targets_path = {"method": "POST", "path": "^/api/v1/targets$"}
        self.sim.faults({"match": targets_path, "fault": "status", "status": 503, "count": 1})
        self.assertError(self.sim.api("POST", "/targets", {"address": "f.test"}), 503)
        self.assertEqual(len(self.sim.ctl("GET", "/targets")["targets"]), 1)   # not processed
        self.sim.faults({"match": targets_path, "fault": "drop", "when": "after"})
        with self.assertRaises(http.client.RemoteDisconnected):
            self.sim.api("POST", "/targets", {"address": "f.test"})
        self.assertEqual(len(self.sim.ctl("GET", "/targets")["targets"]), 2)   # created unseen
        self.sim.faults({"match": targets_path, "fault": "mutate", "mutation": "echo_token"})
        reply = self.sim.api("POST", "/targets", {"address": "m.test"})
        self.assertEqual(reply.headers["location"], f"/api/v1/targets/{TOKEN}")
        self.assertEqual((reply.json()["target_id"], reply.json()["echo"]), (TOKEN, TOKEN))
        self.sim.faults({"match": {"method": "POST", "path": "^/api/v1/reports$"},
                         "fault": "mutate", "mutation": "echo_token"})
        reply = self.sim.api("POST", "/reports", {"template_id": DEVELOPER, "source": {
            "list_type": "all_vulnerabilities"}})
        self.assertEqual((reply.headers["location"], reply.json()["report_id"]),
                         (f"/api/v1/reports/{TOKEN}", TOKEN))
        self.sim.ctl("DELETE", "/faults")
        report = self.sim.wait_report(self.sim.ctl("GET", "/reports")["reports"][0][
            "report_id"])
        pdf_link = report["download"][1].removeprefix("/api/v1")
        natural = self.sim.api("GET", pdf_link).body
        download = {"method": "GET", "path": "^/api/v1/reports/download/"}
        self.sim.faults({"match": download, "fault": "truncate", "count": 1})
        with self.assertRaises(http.client.IncompleteRead):
            self.sim.api("GET", pdf_link, token=None)
        self.sim.faults({"match": download, "fault": "huge", "bytes": 300000, "count": 1})
        body = self.sim.api("GET", pdf_link).body
        self.assertEqual((len(body), body[:len(natural)]), (300000, natural))
        self.sim.faults({"match": download, "fault": "status", "status": 502, "count": 1})
        self.assertError(self.sim.api("GET", pdf_link), 502)
        self.assertEqual(self.sim.api("GET", pdf_link).body, natural)
        entries = [(e["method"], e["path"].replace(report["report_id"], "<id>")
                    .rsplit("/", 1)[0] if "download" in e["path"] else e["path"],
                    e["status"], e["fault"]) for e in self.sim.log()["entries"]
                   if "/reports/" not in e["path"] or "download" in e["path"]]
        self.assertEqual(entries, [
            ("POST", "/api/v1/targets", 503, "status"), ("POST", "/api/v1/targets", 0, "drop"),
            ("POST", "/api/v1/targets", 201, "mutate"), ("POST", "/api/v1/reports", 201, "mutate"),
            ("GET", "/api/v1/reports/download", 200, None),
            ("GET", "/api/v1/reports/download", 200, "truncate"),
            ("GET", "/api/v1/reports/download", 200, "huge"),
            ("GET", "/api/v1/reports/download", 502, "status"),
            ("GET", "/api/v1/reports/download", 200, None)])
        counts = self.sim.ctl("GET", "/stats")["counts"]
        self.assertEqual(counts["GET /api/v1/reports/download/{descriptor} 200"], 4)
        self.assertEqual(counts["POST /api/v1/targets 201"], 1)
        everything = json.dumps([self.sim.log(), self.sim.ctl("GET", "/stats"),
                                 self.sim.ctl("GET", "/targets"),
                                 self.sim.ctl("GET", "/reports")])
        self.assertNotIn(TOKEN, everything)

    def test_count_limited_rule(self):
        self.sim.faults({"match": PROFILES_PATH, "fault": "status", "status": 503,
                         "count": 2})
        statuses = [self.sim.api("GET", PROFILES).status for _ in range(4)]
        self.assertEqual(statuses, [503, 503, 200, 200])
        rule = self.sim.ctl("GET", "/faults")["rules"][0]
        self.assertEqual((rule["remaining"], rule["applied"]), (0, 2))

    def test_first_matching_rule_applies(self):
        self.sim.faults({"match": {"method": "POST"}, "fault": "status", "status": 500},
                        {"match": {"path": "^/api/v1/scanning_profiles$"}, "fault": "status",
                         "status": 418},
                        {"fault": "status", "status": 503})
        self.assertEqual(self.sim.api("GET", PROFILES).status, 418)
        self.assertEqual(self.sim.launch(expect=500).status, 500)
        self.assertEqual(self.sim.api("GET", "/scans").status, 503)

    def test_probability_is_seeded(self):
        def pattern():
            self.sim.faults({"match": PROFILES_PATH, "fault": "status", "status": 500,
                             "probability": 0.5}, seed=42)
            return [self.sim.api("GET", PROFILES).status for _ in range(40)]
        first = pattern()
        self.assertEqual(first, pattern())
        self.assertIn(500, first)
        self.assertIn(200, first)
        self.assertEqual(self.sim.ctl("GET", "/faults")["rules"][0]["applied"],
                         first.count(500))

    def test_faults_apply_to_unauthenticated_requests_too(self):
        self.sim.faults({"fault": "status", "status": 503, "count": 1})
        self.assertError(self.sim.api("GET", PROFILES, token=None), 503)
        self.assertError(self.sim.api("GET", PROFILES, token=None), 401)


# ---------------------------------------------------------------------------
# Outage, log, stats, config, HTTP behaviour
# ---------------------------------------------------------------------------

VARIANT_DEFAULTS = {"shape": "single", "scan_id_in": "location", "pagination": "cursors",
                    "cursors": "offset", "session_end_date": False,
                    "session_before_start": "status_only", "auth_failure": 401,
                    "scan_filter": "honour", "dates": "offset", "list_session": "full",
                    "list_churn": 0, "download_auth": "none", "report_size": 0,
                    "report_outcome": "completed"}
VARIANT_OTHERS = {"shape": ["wrapped"], "scan_id_in": ["body+location", "body"],
                  "pagination": ["next_cursor", "next_cursor_int"], "cursors": ["opaque"],
                  "session_end_date": [True], "session_before_start": ["empty"],
                  "auth_failure": [400], "scan_filter": ["ignore"], "dates": ["naive"],
                  "list_session": ["omit"], "list_churn": [1, 7, 1000],
                  "download_auth": ["required"], "report_size": [1, 100000],
                  "report_outcome": ["failed", "stuck"]}


class ServerTests(SimTestCase):

    def _refused(self):
        try:
            socket.create_connection(("127.0.0.1", self.sim.api_port), timeout=2).close()
            return False
        except ConnectionRefusedError:
            return True

    def test_outage_for_seconds(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.sim.api_port, timeout=5)
        conn.request("GET", f"/api/v1{PROFILES}", headers={"X-Auth": TOKEN})
        self.assertEqual(conn.getresponse().read() and 200, 200)
        state = self.sim.ctl("POST", "/outage", {"seconds": 1.5})
        self.assertTrue(state["down"])
        self.assertIsNotNone(state["until"])
        self.assertTrue(self._refused())
        with self.assertRaises((ConnectionError, http.client.HTTPException)):
            conn.request("GET", f"/api/v1{PROFILES}", headers={"X-Auth": TOKEN})
            conn.getresponse()
        conn.close()
        self.assertEqual(self.sim.ctl("GET", "/health")["api_down"], True)
        wait_until(lambda: not self._refused(), timeout=10, message="api port back")
        self.assertEqual(self.sim.api("GET", PROFILES).status, 200)
        self.assertFalse(self.sim.ctl("GET", "/outage")["down"])

    def test_outage_logs_requests_it_cuts_short(self):
        # A launch held by a latency fault after it created its scan, then an
        # outage: the request is logged, with the scan it created.
        self.sim.faults({"match": {"method": "POST"}, "fault": "latency", "ms": 5000,
                         "when": "after", "count": 1})
        held = threading.Thread(target=lambda: self.assertRaises(
            (ConnectionError, http.client.HTTPException, OSError), self.sim.launch))
        held.start()
        wait_until(lambda: self.sim.ctl("GET", "/scans")["scans"], timeout=10,
                   message="scan created")
        self.sim.ctl("POST", "/outage", {"down": True})
        held.join(timeout=10)
        entry = wait_until(lambda: next((e for e in self.sim.log()["entries"]
                                         if e["fault"] == "outage"), None),
                           timeout=10, message="outage entry")
        self.assertEqual((entry["method"], entry["status"]), ("POST", 0))
        created = self.sim.ctl("GET", "/scans")["scans"][0]
        self.assertEqual(entry["created_scan_id"], created["scan_id"])
        self.assertEqual(created["request_seq"], entry["seq"])
        self.sim.ctl("POST", "/outage", {"down": False})

    def test_outage_manual(self):
        self.assertTrue(self.sim.ctl("POST", "/outage", {"down": True})["down"])
        self.assertTrue(self._refused())
        time.sleep(0.3)
        self.assertTrue(self._refused())
        self.assertFalse(self.sim.ctl("POST", "/outage", {"down": False})["down"])
        self.assertEqual(self.sim.api("GET", PROFILES).status, 200)
        self.sim.ctl("POST", "/outage", {"down": True})
        self.sim.ctl("POST", "/reset")           # a reset also ends the outage
        self.assertEqual(self.sim.api("GET", PROFILES).status, 200)
        self.sim.ctl("POST", "/outage", {"bogus": 1}, expect=400)

    def test_request_log(self):
        scan_id = self.sim.launch_id()
        self.sim.api("GET", f"/scans/{scan_id}?x=1", headers={"Accept": "application/json"})
        self.sim.api("GET", PROFILES, token="not-the-token")
        log = self.sim.log()
        entries = log["entries"]
        self.assertEqual([e["seq"] for e in entries], [1, 2, 3])
        self.assertEqual(log["next_seq"], 4)
        launch, get, denied = entries
        for e in entries:
            for key in ("seq", "time", "method", "path", "query", "status", "fault",
                        "duration_ms", "auth", "user_agent", "accept", "content_type"):
                self.assertIn(key, e)
        self.assertEqual((launch["method"], launch["path"], launch["status"]),
                         ("POST", "/api/v1/scans", 201))
        self.assertEqual((launch["target_id"], launch["profile_id"], launch["created_scan_id"]),
                         (BUILTIN_TARGET, FULL_SCAN, scan_id))
        self.assertEqual(launch["content_type"], "application/json")
        self.assertEqual(self.sim.ctl("GET", f"/scans/{scan_id}")["request_seq"], 1)
        self.assertEqual((get["path"], get["query"], get["auth"], get["user_agent"],
                          get["accept"]),
                         (f"/api/v1/scans/{scan_id}", "x=1", "ok", "sim-tests/1.0",
                          "application/json"))
        self.assertNotIn("created_scan_id", get)
        self.assertEqual((denied["status"], denied["auth"]), (401, "bad"))
        self.assertIsNone(get["fault"])
        later = self.sim.log(since=3)
        self.assertEqual([e["seq"] for e in later["entries"]], [3])
        self.assertEqual(self.sim.log(since=4)["entries"], [])
        self.assertEqual(self.sim.log(since=4)["next_seq"], 4)
        everything = json.dumps([self.sim.log(), self.sim.ctl("GET", "/stats"),
                                 self.sim.ctl("GET", "/config"), self.sim.ctl("GET", "/scans"),
                                 self.sim.ctl("GET", "/health")])
        self.assertNotIn(TOKEN, everything)
        self.assertNotIn(FORBIDDEN, everything)
        self.assertNotIn("not-the-token", everything)

    def test_stats(self):
        scan_id = self.sim.launch_id()
        for _ in range(3):
            self.sim.api("GET", f"/scans/{scan_id}")
        self.sim.api("GET", "/nowhere")
        stats = self.sim.ctl("GET", "/stats")
        self.assertEqual(stats["total"], 5)
        self.assertEqual(stats["counts"], {"POST /api/v1/scans 201": 1,
                                           "GET /api/v1/scans/{scan_id} 200": 3,
                                           "GET (unmatched) 404": 1})

    def test_config(self):
        config = self.sim.ctl("GET", "/config")
        self.assertEqual({k: config[k] for k in VARIANT_DEFAULTS}, VARIANT_DEFAULTS)
        self.assertEqual((config["token_set"], config["forbidden_token_set"]), (True, True))
        self.assertEqual((config["seed"], config["tls"], config["time_scale"]),
                         (1, False, TIME_SCALE))
        for bad in ({"shape": "round"}, {"colour": "red"}, {"time_scale": 0},
                    {"scan_id_in": "header"}, {"pagination": "pages"}, {"cursors": "keyset"},
                    {"session_end_date": "yes"}, {"session_before_start": None},
                    {"auth_failure": 402}, {"auth_failure": "400"}, {"scan_filter": "maybe"},
                    {"list_session": "none"}, {"list_session": None}, {"list_session": True},
                    {"list_churn": -1}, {"list_churn": 1.5}, {"list_churn": 2.0},
                    {"list_churn": "3"}, {"list_churn": True}, {"list_churn": False},
                    {"list_churn": None}, {"list_churn": [1]},
                    {"shape": "wrapped", "cursors": "keyset"},
                    {"shape": "wrapped", "list_churn": -3},
                    {"download_auth": "sometimes"}, {"download_auth": None},
                    {"report_size": -1}, {"report_size": "10"}, {"report_size": 1.5},
                    {"report_outcome": "exploded"}, {"report_outcome": None}):
            with self.subTest(change=bad):
                self.sim.ctl("POST", "/config", bad, expect=400)
        self.assertEqual(self.sim.ctl("GET", "/config")["shape"], "single")   # all or nothing
        for key, others in VARIANT_OTHERS.items():
            for value in others:
                with self.subTest(key=key, value=value):
                    self.assertEqual(self.sim.config(**{key: value})[key], value)
        config = self.sim.config(**VARIANT_DEFAULTS)
        self.assertEqual({k: config[k] for k in VARIANT_DEFAULTS}, VARIANT_DEFAULTS)
        config = self.sim.config(token="new-token", forbidden_token=None)
        self.assertFalse(config["forbidden_token_set"])
        self.assertNotIn("new-token", json.dumps(config))
        self.assertEqual(self.sim.api("GET", PROFILES, token="new-token").status, 200)
        self.assertEqual(self.sim.api("GET", PROFILES).status, 401)
        self.assertEqual(self.sim.api("GET", PROFILES, token=FORBIDDEN).status, 401)
        self.sim.config(token=None)
        self.assertEqual(self.sim.api("GET", PROFILES, token=None).status, 200)
        self.sim.config(shape="wrapped", auth_failure=400)
        self.sim.ctl("POST", "/reset")
        config = self.sim.ctl("GET", "/config")
        self.assertEqual({k: config[k] for k in VARIANT_DEFAULTS}, VARIANT_DEFAULTS)
        self.assertEqual(self.sim.api("GET", PROFILES).status, 200)
        self.assertEqual(self.sim.api("GET", PROFILES, token="new-token").status, 401)

    def test_control_targets(self):
        self.sim.add_targets({"target_id": tid(1), "outcome": "failed", "address": "https://a",
                              "duration_scale": 2.5})
        self.sim.add_targets({"target_id": tid(1), "outcome": "aborted"})
        targets = self.sim.ctl("GET", "/targets")["targets"]
        self.assertEqual([t["target_id"] for t in targets], [BUILTIN_TARGET, tid(1)])
        self.assertTrue(targets[0]["builtin"])
        self.assertEqual(targets[1]["outcome"], "aborted")
        for bad in [{"target_id": "x"}, {"target_id": tid(2), "outcome": "exploded"},
                    {"target_id": tid(2), "duration_scale": 0}, {"target_id": tid(2), "x": 1}]:
            with self.subTest(target=bad):
                self.sim.ctl("PUT", "/targets", {"targets": [bad]}, expect=400)
        self.sim.ctl("POST", "/reset")
        self.assertEqual(len(self.sim.ctl("GET", "/targets")["targets"]), 1)

    def test_control_errors(self):
        self.sim.ctl("GET", "/nowhere", expect=404)
        self.sim.ctl("DELETE", "/health", expect=405)
        self.sim.ctl("PUT", "/targets", None, expect=400)
        reply = self.sim.request(self.sim.control_port, "PUT", "/_sim/targets", b"{bad")
        self.assertEqual(reply.status, 400)
        self.sim.ctl("GET", "/log?since=x", expect=400)
        self.sim.ctl("GET", f"/scans/{tid(1)}", expect=404)
        self.sim.ctl("POST", "/config", None, expect=400)
        # The control API is not on the API port, nor the API on the control port.
        self.assertEqual(self.sim.request(self.sim.api_port, "GET", "/_sim/health").status, 401)
        self.assertEqual(self.sim.request(self.sim.control_port, "GET",
                                          f"/api/v1{PROFILES}").status, 404)

    def test_keep_alive_and_pipelining(self):
        scan_id = self.sim.launch_id()
        body = json.dumps(self.sim.launch_body()).encode()
        requests = (
            f"GET /api/v1{PROFILES} HTTP/1.1\r\nHost: x\r\nX-Auth: {TOKEN}\r\n\r\n"
            f"GET /api/v1/scans/{scan_id} HTTP/1.1\r\nHost: x\r\nX-Auth: {TOKEN}\r\n\r\n"
            f"POST /api/v1/scans HTTP/1.1\r\nHost: x\r\nX-Auth: {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body + (
            f"GET /api/v1/nowhere HTTP/1.1\r\nHost: x\r\nX-Auth: {TOKEN}\r\n\r\n"
            f"GET /api/v1/scans HTTP/1.1\r\nHost: x\r\nX-Auth: {TOKEN}\r\n"
            "Connection: close\r\n\r\n").encode()
        def statuses(chunk_size):
            """Send the requests chunk_size bytes at a time; the answers' statuses."""
            with socket.create_connection(("127.0.0.1", self.sim.api_port), timeout=10) as s:
                for i in range(0, len(requests), chunk_size):
                    s.send(requests[i:i + chunk_size])
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]

        self.assertEqual(statuses(len(requests)), [200, 200, 201, 404, 200])
        # Same, one byte at a time, with a fault in the middle to exercise ordering.
        self.sim.faults({"match": {"path": "/nowhere$"}, "fault": "latency", "ms": 200})
        self.assertEqual(statuses(1), [200, 200, 201, 404, 200])

    def test_keep_alive_connection_reused(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.sim.api_port, timeout=5)
        for path in [PROFILES, "/scans"] * 10:
            conn.request("GET", "/api/v1" + path, headers={"X-Auth": TOKEN})
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            resp.read()
        conn.close()

    def test_bad_http(self):
        with socket.create_connection(("127.0.0.1", self.sim.api_port), timeout=5) as s:
            s.sendall(b"NONSENSE\r\n\r\n")
            self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 400"))
        with socket.create_connection(("127.0.0.1", self.sim.api_port), timeout=5) as s:
            s.sendall(b"POST /api/v1/scans HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
            self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 411"))
        with socket.create_connection(("127.0.0.1", self.sim.api_port), timeout=5) as s:
            s.sendall(f"POST /api/v1/scans HTTP/1.1\r\nX-Auth: {TOKEN}\r\nContent-Length: 5"
                      "\r\nContent-Type: application/json"
                      "\r\nExpect: 100-continue\r\n\r\n".encode())
            self.assertEqual(s.recv(4096), b"HTTP/1.1 100 Continue\r\n\r\n")
            s.sendall(b"{bad}")
            self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 400"))


# ---------------------------------------------------------------------------
# Command-line options (separate simulator processes)
# ---------------------------------------------------------------------------

CHECKER = os.path.join(os.path.dirname(HERE), "contract", "check_contract.py")
HAVE_CHECKER_DEPS = (os.path.exists(CHECKER)
                     and subprocess.run([PYTHON, "-c", "import yaml, jsonschema"],
                                        capture_output=True).returncode == 0)


@unittest.skipUnless(HAVE_CHECKER_DEPS, "check_contract.py needs python3-yaml and "
                                        "python3-jsonschema")
class ContractTests(ResourceAssertions, SpecAssertions, unittest.TestCase):
    """The new routes' exchanges pass test/contract/check_contract.py."""

    def test_new_routes_pass_the_contract_checker(self):
        tmp = tempfile.mkdtemp(prefix="invicti_sim_contract_")
        self.addCleanup(shutil.rmtree, tmp, True)
        log = os.path.join(tmp, "contract.jsonl")
        sim = Simulator("--contract-log", log)
        try:
            target = sim.api("POST", "/targets", {"address": "https://c.test",
                                                  "criticality": 20}).json()
            path = f"/targets/{target['target_id']}"
            sim.api("GET", path)
            sim.api("PATCH", path, {"address": "https://c.test", "description": "c"})
            sim.api("GET", "/targets?l=1")
            profile = sim.api("POST", PROFILES, {"name": "C", "checks": ["wvs/Scripts"]}).json()
            sim.api("GET", f"{PROFILES}/{profile['profile_id']}")
            sim.api("GET", PROFILES)
            sim.api("GET", "/report_templates")
            scan_id = sim.launch_id(target["target_id"], profile["profile_id"])
            sim.wait_status(scan_id, "completed")
            report = sim.new_report({"list_type": "scans", "id_list": [scan_id]})
            report = sim.wait_report(report["report_id"])
            sim.api("GET", "/reports")
            for link in report["download"]:
                self.assertEqual(sim.api("GET", link.removeprefix("/api/v1")).status, 200)
                self.assertEqual(sim.api("GET", link.removeprefix("/api/v1"),
                                         token=None).status, 200)
            sim.config(report_size=200000)
            sim.api("GET", report["download"][1].removeprefix("/api/v1"), token=None)
            self.assertEqual(sim.api("GET", "/reports/download/unknown.pdf").status, 404)
            self.assertEqual(sim.api("GET", f"/reports/{tid(1)}").status, 404)
            self.assertEqual(sim.api("GET", f"/targets/{tid(1)}").status, 404)
            self.assertEqual(sim.api("DELETE", f"{PROFILES}/{FULL_SCAN}").status, 409)
            self.assertEqual(sim.api("DELETE", f"/reports/{report['report_id']}").status, 204)
            self.assertEqual(sim.api("DELETE", f"{PROFILES}/{profile['profile_id']}").status,
                             204)
            self.assertEqual(sim.api("DELETE", path).status, 204)
        finally:
            sim.stop()
        with open(log, encoding="utf-8") as f:
            exchanges = [json.loads(line) for line in f]
        pdf = [e for e in exchanges if e["path"].endswith(".pdf") and e["status"] == 200]
        self.assertEqual(pdf[0]["response_headers"]["content-type"], "application/pdf")
        self.assertEqual(pdf[-1]["response_length"], 200000)
        self.assertLessEqual(len(pdf[-1]["response"]), 4096)  # a file is not kept whole
        self.assertNotIn(TOKEN, json.dumps(exchanges))
        proc = subprocess.run([PYTHON, CHECKER, log], capture_output=True, text=True,
                              timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("every request and answer conforms", proc.stdout)
        self.assertIn("1 x GET /reports/download/{descriptor}: 404 from the download",
                      proc.stdout)


class CommandLineTests(SpecAssertions, unittest.TestCase):

    def test_startup_options(self):
        tmp = tempfile.mkdtemp(prefix="invicti_sim_cli_")
        self.addCleanup(shutil.rmtree, tmp, True)
        targets_file = os.path.join(tmp, "targets.json")
        log_file = os.path.join(tmp, "requests.jsonl")
        with open(targets_file, "w", encoding="utf-8") as f:
            json.dump({"targets": [{"target_id": tid(3), "outcome": "failed"}]}, f)
        # The old flags still work: the same as --variant KEY=VALUE.
        sim = Simulator("--no-auth", "--shape", "wrapped", "--scan-id-in", "body",
                        "--pagination", "next_cursor", "--seed", "7",
                        "--targets-file", targets_file, "--log-file", log_file,
                        "--log-cap", "20", token=None, forbidden=None)
        try:
            config = sim.ctl("GET", "/config")
            self.assertEqual((config["shape"], config["scan_id_in"], config["pagination"],
                              config["seed"], config["token_set"], config["cursors"]),
                             ("wrapped", "body", "next_cursor", 7, False, "offset"))
            reply = sim.launch(tid(3))
            self.assertNotIn("location", reply.headers)
            scan_id = reply.json()["scan_id"]
            body = sim.api("GET", f"/scans/{scan_id}").json()
            self.assertEqual(body["scans"][0]["scan_id"], scan_id)
            sim.wait_status(scan_id, "failed")
            self.assertIn("end_date", sim.session(scan_id))     # the seed's shape has it
            listed = sim.api("GET", "/scans").json()
            self.assertEqual(listed["scans"][0]["target"]["address"],
                             f"https://{tid(3)[:8]}.sim.invicti.test")
            self.assertIsNone(listed["pagination"]["next_cursor"])
            sim.ctl("POST", "/reset")
            self.assertEqual(len(sim.ctl("GET", "/targets")["targets"]), 2)
            with open(log_file, encoding="utf-8") as f:
                lines = [json.loads(line) for line in f]
            self.assertEqual(lines[0]["method"], "POST")
            self.assertEqual(lines[0]["created_scan_id"], scan_id)
            # The in-memory log keeps the newest --log-cap entries and says so.
            for _ in range(30):
                sim.api("GET", PROFILES)
            log = sim.log()
            self.assertGreater(log["dropped"], 0)
            self.assertEqual(log["entries"][0]["seq"], log["first_seq"])
            self.assertEqual(log["first_seq"], log["dropped"] + 1)
            self.assertEqual(log["entries"][-1]["seq"], 30)
            self.assertLessEqual(len(log["entries"]), 22)
            self.assertEqual(len(log["entries"]), log["next_seq"] - log["first_seq"])
            t0 = time.monotonic()
            sim.proc.send_signal(signal.SIGTERM)
            self.assertEqual(sim.proc.wait(timeout=10), 0)
            self.assertLess(time.monotonic() - t0, 5)
        finally:
            sim.stop()

    def test_variant_flags(self):
        sim = Simulator("--variant", "shape=wrapped", "--variant", "scan_id_in=body+location",
                        "--variant", "pagination=next_cursor_int", "--variant", "cursors=offset",
                        "--variant", "session_end_date=true",
                        "--variant", "session_before_start=empty",
                        "--variant", "auth_failure=400", "--variant", "scan_filter=ignore",
                        "--variant", "dates=naive", "--variant", "list_session=omit",
                        "--variant", "list_churn=1", "--variant", "download_auth=required",
                        "--variant", "report_size=4096", "--variant", "report_outcome=stuck")
        try:
            config = sim.ctl("GET", "/config")
            self.assertEqual({k: config[k] for k in VARIANT_DEFAULTS},
                             {"shape": "wrapped", "scan_id_in": "body+location",
                              "pagination": "next_cursor_int", "cursors": "offset",
                              "session_end_date": True, "session_before_start": "empty",
                              "auth_failure": 400, "scan_filter": "ignore",
                              "dates": "naive", "list_session": "omit", "list_churn": 1,
                              "download_auth": "required", "report_size": 4096,
                              "report_outcome": "stuck"})
            self.assertError(sim.api("GET", PROFILES, token=None), 400,
                             "Invalid Authorization header")
            sim.add_targets({"target_id": tid(1), "duration_scale": 10000})
            reply = sim.launch(tid(1))
            scan_id = reply.json()["scan_id"]
            self.assertEqual(reply.headers["location"], f"/api/v1/scans/{scan_id}")
            self.assertEqual(reply.json()["current_session"], {})
            self.assertRegex(reply.json()["next_run"], DATE_RE)
            self.assertEqual(sim.api("GET", f"/scans/{scan_id}").json(),
                             {"scans": [{"scan_id": scan_id, "current_session": {}}]})
            sim.launch()
            listed = sim.api("GET", f"/scans?l=1&q=target_id:{tid(1)}").json()
            pag = listed["pagination"]
            self.assertEqual((pag["count"], pag["next_cursor"]), (2, 1))   # q ignored
            self.assertNotIn("current_session", listed["scans"][0])        # list_session
            # list_churn=1: the second request sees the list rotated by one.
            again = sim.api("GET", f"/scans?l=1&c={pag['next_cursor']}").json()["scans"]
            self.assertEqual(again[0]["scan_id"], listed["scans"][0]["scan_id"])
            # Every variant is kept on reset.
            sim.ctl("POST", "/reset")
            config = sim.ctl("GET", "/config")
            self.assertEqual((config["auth_failure"], config["list_session"],
                              config["list_churn"], config["report_outcome"]),
                             (400, "omit", 1, "stuck"))
        finally:
            self.assertNotIn("Traceback", sim.stop())
        sim = Simulator("--variant", "cursors=opaque", "--variant", "session_end_date=false",
                        "--shape", "single")
        try:
            config = sim.ctl("GET", "/config")
            self.assertEqual((config["cursors"], config["session_end_date"], config["shape"]),
                             ("opaque", False, "single"))
            for _ in range(2):
                sim.launch()
            cursors = sim.api("GET", "/scans?l=1").json()["pagination"]["cursors"]
            self.assertNotEqual(cursors[1], "1")
            self.assertEqual(sim.api("GET", "/scans", token=None).status, 401)
        finally:
            sim.stop()

    def test_seed_changes_ids(self):
        a, b = Simulator("--seed", "1"), Simulator("--seed", "2")
        try:
            self.assertNotEqual(a.launch_id(), b.launch_id())
        finally:
            a.stop()
            b.stop()

    def test_bad_arguments(self):
        for args in ([], ["--token", "x", "--shape", "round"], ["--token", "x", "--tls-cert", "c"],
                     ["--token", "x", "--pagination", "pages"],
                     ["--token", "x", "--variant", "colour=red"],
                     ["--token", "x", "--variant", "shape"],
                     ["--token", "x", "--variant", "cursors=keyset"],
                     ["--token", "x", "--variant", "auth_failure=402"],
                     ["--token", "x", "--variant", "scan_filter=sometimes"],
                     ["--token", "x", "--variant", "list_session=none"],
                     ["--token", "x", "--variant", "list_churn=-1"],
                     ["--token", "x", "--variant", "list_churn=1.5"],
                     ["--token", "x", "--variant", "list_churn=many"],
                     ["--token", "x", "--variant", "list_churn=\u00b2"],
                     ["--token", "x", "--variant", "list_churn=" + "9" * 5000],
                     ["--token", "x", "--variant", "download_auth=maybe"],
                     ["--token", "x", "--variant", "report_size=-5"],
                     ["--token", "x", "--variant", "report_outcome=lost"]):
            with self.subTest(args=args):
                proc = subprocess.run([PYTHON, SIM] + args, capture_output=True, text=True,
                                      timeout=30)
                self.assertEqual(proc.returncode, 2)
                self.assertIn("error", proc.stderr)

    @unittest.skipIf(OPENSSL is None, "openssl is not installed: cannot make a test certificate")
    def test_tls(self):
        tmp = tempfile.mkdtemp(prefix="invicti_sim_tls_")
        self.addCleanup(shutil.rmtree, tmp, True)
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        subprocess.run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-days", "1", "-keyout", key, "-out", cert],
                       check=True, capture_output=True, timeout=60)
        sim = Simulator("--tls-cert", cert, "--tls-key", key)
        try:
            self.assertIn(f"api=https://127.0.0.1:{sim.api_port}", sim.ready_line)
            scan_id = sim.launch_id()
            self.assertEqual(sim.api("GET", f"/scans/{scan_id}").status, 200)
            # Verified against the certificate, too.
            ctx = ssl.create_default_context(cafile=cert)
            conn = http.client.HTTPSConnection("127.0.0.1", sim.api_port, context=ctx,
                                               timeout=10)
            conn.request("GET", f"/api/v1{PROFILES}", headers={"X-Auth": TOKEN})
            self.assertEqual(conn.getresponse().status, 200)
            conn.close()
            with self.assertRaises((ConnectionError, http.client.HTTPException, OSError)):
                sim.request(sim.api_port, "GET", f"/api/v1{PROFILES}",
                            headers={"X-Auth": TOKEN})
            self.assertTrue(sim.ctl("GET", "/config")["tls"])      # control stays plain
            sim.faults({"fault": "drop", "count": 1})
            with self.assertRaises((ConnectionError, http.client.HTTPException, ssl.SSLError)):
                sim.api("GET", PROFILES)
            sim.ctl("POST", "/outage", {"seconds": 0.5})
            wait_until(lambda: not sim.ctl("GET", "/outage")["down"], message="tls back")
            self.assertEqual(sim.api("GET", PROFILES).status, 200)
        finally:
            sim.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
