"""What the simulated Invicti holds: built-in data, the clock, targets and
scans with their timelines.  No HTTP here.

It must never depend on wall-clock randomness: every id and finding comes
from a random.Random seeded by --seed.

Part of invicti_sim (see ../invicti_sim.py and ../README.md)."""

import hashlib
import random
import re
import time
import uuid
from datetime import datetime, timezone
from typing import NamedTuple

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

# The built-in scanning profiles: the initial state of the simulator's
# profile store (resources.py), restored on reset.
SCANNING_PROFILES = [
    ("11111111-1111-1111-1111-111111111111", "Full Scan"),
    ("11111111-1111-1111-1111-111111111112", "High Risk"),
    ("11111111-1111-1111-1111-111111111113", "SQL Injection"),
    ("11111111-1111-1111-1111-111111111115", "Weak Passwords"),
    ("11111111-1111-1111-1111-111111111116", "Cross-site Scripting"),
    ("11111111-1111-1111-1111-111111111117", "Crawl Only"),
]
PROFILE_NAMES = dict(SCANNING_PROFILES)
# The spec's Target.type enum (its default first).
TARGET_TYPES = ("default", "demo", "network")

OUTCOMES = ("completed", "failed", "aborted", "paused", "running", "unknown", "stuck_unknown")
TERMINAL = frozenset(("completed", "failed", "aborted"))
PRE_SESSION = frozenset(("scheduled", "queued"))
# A status no Invicti product uses (invented, not in the spec): it tests
# that a client stores a status it does not know and keeps polling.
UNKNOWN_STATUS = "under_review"

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

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


# The last whole second datetime can show (a float has no room for the
# microseconds there): a schedule.start_date of 9999-12-31T23:59:59.999999Z
# must not overflow by a float rounding.
MAX_TIMESTAMP = 253402300799.0


def iso(ts):
    """Epoch seconds -> ISO 8601 with microseconds and +00:00, like the seed."""
    return datetime.fromtimestamp(min(ts, MAX_TIMESTAMP),
                                  timezone.utc).isoformat(timespec="microseconds")


def random_uuid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def hash_uuid(text):
    return str(uuid.UUID(bytes=hashlib.sha256(text.encode()).digest()[:16], version=4))


def is_uuid(value):
    return isinstance(value, str) and UUID_RE.match(value) is not None


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

    def units_at(self, wall):
        """The unit instant of an epoch time (the current scale beyond now)."""
        elapsed0, units0, scale = self._segments[-1]
        return units0 + (wall - self._wall0 - elapsed0) / scale

    def wall(self, units):
        for elapsed0, units0, scale in reversed(self._segments):
            if units >= units0:
                return self._wall0 + elapsed0 + (units - units0) * scale
        return self._wall0


# ---------------------------------------------------------------------------
# Targets and scans
# ---------------------------------------------------------------------------

class Target:
    """PUT /_sim/targets replaces the object; only PATCH /api/v1/targets/<id>
    changes one in place (description, criticality: resources.py), and drops
    the cached answers of its scans when it does."""
    __slots__ = ("target_id", "address", "description", "criticality", "type", "outcome",
                 "duration_scale", "polls_to_finish", "final_counts", "order")

    FIELDS = {"target_id", "address", "description", "criticality", "type", "outcome",
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
        self.type = spec.get("type", "default")
        self.outcome = spec.get("outcome", "completed")
        self.duration_scale = spec.get("duration_scale", 1.0)
        if not isinstance(self.address, str) or not isinstance(self.description, str):
            raise ValueError("address and description must be strings")
        if type(self.criticality) is not int:
            raise ValueError("criticality must be an integer")
        if self.type not in TARGET_TYPES:
            raise ValueError(f"type must be one of {list(TARGET_TYPES)}")
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
                "type": self.type, "outcome": self.outcome,
                "duration_scale": self.duration_scale, "polls_to_finish": self.polls_to_finish,
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
                 options, launch_u, created_at, disabled=False, profile_name=None):
        self.seq = seq
        self.scan_id = scan_id
        self.session_id = session_id
        self.target = target
        self.profile_id = profile_id
        # the profile's name at launch (the profile may be deleted since)
        self.profile_name = profile_name or PROFILE_NAMES.get(profile_id, "")
        self.schedule = schedule
        self.options = options          # continuous, incremental, max_scan_time
        self.launch_u = launch_u        # when the timeline starts (schedule.start_date)
        self.created_at = created_at
        self.disabled = disabled        # schedule.disable: it never starts
        self.deleted_at = None
        self.request_seq = None
        self.pin = None                 # (status, progress or None, pinned_at_u)
        self.polls = 0                  # GETs of this scan (target.polls_to_finish)
        self.plan = self._base_plan()
        self.session_start_u = None if disabled else launch_u + 1 * target.duration_scale
        self.cache_key = None
        self.cache_body = None
        self._vulns = None

    def _base_plan(self):
        if self.disabled:
            return [(self.launch_u, "scheduled", 0.0, 0.0)]
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
        elif outcome == "running":
            # a long scan: processing for ever, its progress stopping at 49.5
            plan.append((at(7), "processing", progress(7), 0.0))
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
            # the session stays as it is: none, or the one a pin started
            self.session_start_u = current.start_u
        else:
            if action == "pause":
                plan += [(u, "pausing", p, 0.0), (u + 1, "paused", p, 0.0)]
            else:
                rate = PROGRESS_PER_UNIT / self.target.duration_scale
                plan += [(u, "resuming", p, 0.0), (u + 1, "processing", p, rate),
                         (u + 1 + (99.0 - min(p, 99.0)) / rate, "completed", 100.0, 0.0)]
            self.session_start_u = current.start_u if current.start_u is not None else u
        self.plan = plan

    def forget_cached(self):
        """Drop the cached answer and findings (its target was changed)."""
        self.cache_key = None
        self._vulns = None

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
