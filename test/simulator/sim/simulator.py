"""The simulator's state: configuration, scans, targets, scanning profiles,
report templates, reports, log, outage.

It must never listen anywhere but the configured host.

Part of invicti_sim (see ../invicti_sim.py and ../README.md)."""

import asyncio
import json
import random
import ssl
import sys
import time

from .api import ApiApp
from .config import Config
from .control import ControlApp
from .ratelimit import RateLimit
from .faults import FaultSet
from .httpserver import Interner, Listener
from .model import BUILTIN_TARGET, SimClock, Target
from .reports import builtin_templates
from .requestlog import RequestLog
from .resources import builtin_profiles

# The contract log keeps at most this much of a non-JSON answer (a report
# file: the checker does not read a `type: file` body).
CONTRACT_FILE_CHARS = 4096

# ---------------------------------------------------------------------------
# The simulator state
# ---------------------------------------------------------------------------

class Simulator:
    def __init__(self, args, startup_targets):
        self.args = args
        self.startup_config = Config(args.time_scale, args.token, args.forbidden_token,
                                     **args.variants)
        self.startup_targets = startup_targets
        self.log = RequestLog(args.log_cap,
                              open(args.log_file, "a", encoding="utf-8") if args.log_file else None)
        self.contract_log = (open(args.contract_log, "a", encoding="utf-8")
                             if args.contract_log else None)
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
        self.id_rng = random.Random(f"{self.args.seed}:ids")          # scans, sessions
        # ids of what the API creates besides scans: targets, profiles, reports
        self.object_rng = random.Random(f"{self.args.seed}:objects")
        self.faults = FaultSet(self.args.seed)
        self.targets = {}
        self.next_target_order = 0
        for spec in [BUILTIN_TARGET] + self.startup_targets:
            self.put_target(Target(spec, 0))
        self.profiles = builtin_profiles()              # profile_id -> ScanningProfile
        self.report_templates = builtin_templates()     # [ReportTemplate]
        self.reports = {}                               # report_id -> reports.Report
        self.report_descriptors = {}                    # descriptor -> reports.Report
        self.scans = {}
        self.log.clear()
        self.stats = {}
        self.total_requests = 0
        self.list_churn_requests = 0    # GET /scans answered under list_churn > 0
        self.rate_limit = RateLimit()
        self.api.configure(self.config)

    def put_target(self, target):
        """Add a target after the others, or replace one in its place."""
        old = self.targets.get(target.target_id)
        if old is not None:
            target.order = old.order
        else:
            target.order = self.next_target_order
            self.next_target_order += 1
        self.targets[target.target_id] = target

    def delete_target(self, target_id):
        """Remove a target with what belongs to it (the spec: "upon deletion
        of a Scan Target, all associated resource will also be deleted"):
        its scans become deleted, and so do the reports tied to it.
        False if there is no such target."""
        if self.targets.pop(target_id, None) is None:
            return False
        now = time.time()
        for scan in self.scans.values():
            if scan.target.target_id == target_id and not scan.deleted:
                scan.deleted_at = now
        for report in self.reports.values():
            if target_id in report.target_ids and not report.deleted:
                report.deleted_at = now
        return True

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
                         intern(headers.get(b"content-type")), client_closed,
                         meta.listed if fault is None else None, launch))
        key = (req.method, meta.template, status)
        self.stats[key] = self.stats.get(key, 0) + 1
        self.total_requests += 1
        if self.contract_log is not None:
            self._contract(req, status, fault, meta)

    def _contract(self, req, status, fault, meta):
        """One exchange for the contract test (test/contract/check_contract.py):
        the request as sent (whether X-Auth was there, never its value) and,
        unless a fault changed it, the answer."""
        headers = req.headers
        entry = {"method": req.method, "path": req.path, "query": req.query,
                 "x_auth": b"x-auth" in headers,
                 "content_type": (headers.get(b"content-type") or b"").decode("latin-1"),
                 "body": req.body.decode("utf-8", "replace") if req.body else None,
                 "status": status, "fault": fault}
        if fault is None and status:
            entry["response_headers"] = {name.lower(): value for name, value in meta.headers}
            body = meta.body
            if body:
                entry["response_headers"]["content-type"] = meta.ctype.decode("latin-1")
            if body and not meta.ctype.startswith(b"application/json"):
                entry["response_length"] = len(body)
                body = body[:CONTRACT_FILE_CHARS]
            entry["response"] = body.decode("utf-8", "replace") if body else ""
            if meta.off_spec:
                entry["off_spec"] = meta.off_spec
        self.contract_log.write(json.dumps(entry) + "\n")
        self.contract_log.flush()

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
