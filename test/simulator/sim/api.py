"""The Invicti API routes (/api/v1/...), as the vendor's Swagger file
("Acunetix Scanner API", test/contract/acunetix-api.yaml) describes them.
Scans are here; targets and scanning profiles are in resources.py, report
templates and reports in reports.py (mixed into ApiApp).

Every answer validates against the spec's schema for its operation (the
contract test checks that over a whole run of the suites).  Where the
vendor's sources differ, config.py switches between the variants; the
spec's is the default.  What the spec does not say and the simulator still
does is named here and in ../README.md as invented:
  - 401 for a missing or wrong X-Auth and 403 for the --forbidden-token
    (the spec only has "default" errors);
  - user_authorized_to_scan: "yes" is required in a launch body (from the
    seed document; the spec's Scan schema does not list it);
  - outcomes of targets, including the status "under_review" no Invicti
    product uses (see model.py).
  - the list_session "omit" and list_churn variants of GET /scans
    (config.py).
  - the statuses of the new routes: 400 for a Target, ScanningProfile or
    NewReport body the schema refuses (details name each field); 404 for
    an unknown target, profile, report template, report, or a scan or
    target named in a report's id_list; 409 for PATCH or DELETE of a
    built-in profile (custom: false); 404 from the download route, which
    the spec declares with 200 only (logged as knowingly off the spec);
  - a PATCH of a target must repeat its address and type (the spec's
    PATCH takes a whole Target, address required): it changes only
    description and criticality;
  - a new scanning profile needs a name (the schema requires only checks);
  - reports: only list_type scans, targets and all_vulnerabilities are
    acted on (the others are 400), scans and targets need at least one id;
    the report covers its scans as they were when it was created; deleting
    a target deletes the reports tied to it (the spec: "all associated
    resource will also be deleted"); the timeline (queued 1 unit,
    processing until 3, then the report_outcome), the file contents, and
    the report_size and report_outcome knobs (config.py).

It must never echo the token (only the "mutate" faults do, to test
redaction).

Part of invicti_sim (see ../invicti_sim.py and ../README.md)."""

import re
import time
from datetime import datetime, timezone

from .faults import FaultInjection
from .httpserver import ApiError, Response, Router, encode_json, error_response, json_response
from .model import SEVERITY_KEYS, SEVERITY_LEVEL, Scan, TERMINAL, is_uuid, iso, random_uuid
from .paging import paginate, parse_no_filter, parse_scan_filter
from .reports import ReportRoutes
from .resources import ProfileRoutes, TargetRoutes

RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _is_rfc3339(value):
    """An RFC 3339 date-time that names a real instant (not 2030-02-30)."""
    if RFC3339_RE.match(value) is None:
        return False
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00")).astimezone(timezone.utc)
    except (ValueError, OverflowError):
        return False
    return True


def _check_type(problems, name, value, kind, **limits):
    """One property of a body against the spec's type and limits."""
    if kind == "boolean":
        ok = isinstance(value, bool)
    elif kind == "integer":
        ok = type(value) is int and limits.get("minimum", value) <= value <= limits.get(
            "maximum", value)
    elif kind == "uuid":
        ok = is_uuid(value)
    elif kind == "string":
        ok = isinstance(value, str) and len(value) <= limits.get("maxLength", len(value))
    elif kind == "date-time|null":
        ok = value is None or (isinstance(value, str) and _is_rfc3339(value))
    else:
        raise AssertionError(kind)
    if not ok:
        detail = ", ".join(f"{k} {v}" for k, v in limits.items())
        problems.append(f"{name}: must be {kind}" + (f" ({detail})" if detail else ""))


# The spec's Scan and Schedule schemas (required fields, types and limits).
SCAN_FIELDS = {"target_id": ("uuid", {}), "profile_id": ("uuid", {}),
               "report_template_id": ("uuid", {}), "max_scan_time": ("integer", {}),
               "incremental": ("boolean", {})}
SCHEDULE_FIELDS = {"disable": ("boolean", {}), "time_sensitive": ("boolean", {}),
                   "history_limit": ("integer", {"minimum": 0, "maximum": 10}),
                   "start_date": ("date-time|null", {}),
                   "recurrence": ("string", {"maxLength": 256}),
                   "triggerable": ("boolean", {})}


# The spec's ScanInfo.status enum.  "resuming" is in its ScanStatistics
# enum but not in ScanInfo's (the spec disagrees with itself); the others a
# scan can show here are invented (model.py) or pinned by a test.
SCANINFO_STATUSES = frozenset(("scheduled", "queued", "starting", "processing", "aborting",
                               "aborted", "pausing", "paused", "completed", "failed"))


def off_spec_status(status):
    """Why an answer with this status departs from the spec, or None."""
    if status in SCANINFO_STATUSES:
        return None
    if status == "resuming":
        return "status resuming (in the spec's ScanStatistics, not its ScanInfo)"
    return f"status {status!r} (invented, or pinned by a test)"


def scan_body_problems(body):
    """What is wrong with a launch body against the spec's Scan schema."""
    if not isinstance(body, dict):
        return ["body: must be a JSON object"]
    problems = [f"{f}: required" for f in ("target_id", "profile_id", "schedule")
                if f not in body]
    for name, (kind, limits) in SCAN_FIELDS.items():
        if name in body:
            _check_type(problems, name, body[name], kind, **limits)
    schedule = body.get("schedule")
    if "schedule" in body and not isinstance(schedule, dict):
        problems.append("schedule: must be an object")
    elif isinstance(schedule, dict):
        for name, (kind, limits) in SCHEDULE_FIELDS.items():
            if name in schedule:
                _check_type(problems, f"schedule.{name}", schedule[name], kind, **limits)
    if body.get("user_authorized_to_scan") != "yes":
        problems.append('user_authorized_to_scan: must be "yes"')
    return problems


class ApiApp(FaultInjection, TargetRoutes, ProfileRoutes, ReportRoutes):
    PREFIX = "/api/v1"

    def __init__(self, sim):
        self.sim = sim
        p = self.PREFIX
        self.launch_template = p + "/scans"
        # the spec lists no "security" for it (config.py download_auth)
        self.download_template = p + "/reports/download/{descriptor}"
        router = self.router = Router()
        router.add(p + "/scans", get=self.list_scans, post=self.launch)
        router.add(p + "/scans/{scan_id}", get=self.get_scan, delete=self.delete_scan)
        router.add(p + "/scans/{scan_id}/abort", post=self.abort)
        router.add(p + "/scans/{scan_id}/resume", post=self.resume)
        router.add(p + "/scans/{scan_id}/results", get=self.results)
        router.add(p + "/scans/{scan_id}/results/{session_id}/vulnerabilities",
                   get=self.vulnerabilities)
        router.add(p + "/scans/{scan_id}/results/{session_id}/vulnerabilities/{vuln_id}",
                   get=self.vulnerability)
        router.add(p + "/targets", get=self.targets, post=self.add_target)
        router.add(p + "/targets/{target_id}", get=self.get_target, patch=self.patch_target,
                   delete=self.delete_target)
        router.add(p + "/scanning_profiles", get=self.scanning_profiles, post=self.add_profile)
        router.add(p + "/scanning_profiles/{scanning_profile_id}", get=self.get_profile,
                   patch=self.patch_profile, delete=self.delete_profile)
        router.add(p + "/report_templates", get=self.report_templates)
        router.add(p + "/reports", get=self.list_reports, post=self.add_report)
        router.add(p + "/reports/{report_id}", get=self.get_report, delete=self.delete_report)
        router.add(self.download_template, get=self.download_report)
        self._token = self._forbidden = None
        self._config = None

    def configure(self, config):
        self.sim.rate_limit.configure(config.rate_limit, config.rate_limit_algorithm,
                                      config.rate_limit_headers)
        self._token = config.token.encode() if config.token is not None else None
        self._forbidden = (config.forbidden_token.encode()
                           if config.forbidden_token is not None else None)
        self._config = config

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
        route = None
        if auth != "ok":
            route, _ = self.router.match(req.path)
        limit_headers = ()
        if auth == "ok" and self._config.rate_limit:
            admitted, limit_headers = self.sim.rate_limit.admit(time.time())
            if not admitted:
                route, _ = self.router.match(req.path)
                resp = error_response(429, [f"Rate limit of {self._config.rate_limit} requests a "
                                            "minute exceeded"], "Too many requests",
                                      headers=limit_headers)
                resp.off_spec = "429 from the invented rate limit (the spec names no 429)"
                resp.auth = auth
                resp.template = route.template if route else None
                req.processed = resp
                return resp
        if auth == "ok" and req.method in ("POST", "PUT", "PATCH"):
            # the spec consumes application/json, for every operation: a body-less
            # POST (abort, resume, trigger) must say so too
            ctype = (req.headers.get(b"content-type") or b"").split(b";")[0].strip().lower()
            if ctype != b"application/json":
                route, _ = self.router.match(req.path)
                resp = error_response(415, [f"Content-Type must be application/json, got "
                                            f"{ctype.decode('latin-1') or 'none'}"],
                                      "Unsupported media type")
                resp.auth = auth
                resp.template = route.template if route else None
                req.processed = resp
                return resp
        if auth == "ok" or (route is not None and route.template == self.download_template
                            and self._config.download_auth == "none"):
            template, resp = self.router.dispatch(req)
            if limit_headers:
                resp.headers = tuple(resp.headers) + tuple(limit_headers)
        else:
            template = route.template if route else None
            if auth == "forbidden":
                resp = error_response(403, ["The token lacks the permission for this request"])
            elif self._config.auth_failure == 400:
                resp = error_response(400, ["Missing X-Auth header" if auth == "missing"
                                            else "Invalid X-Auth token"],
                                      "Invalid Authorization header")
            else:
                resp = error_response(401, ["Missing X-Auth header" if auth == "missing"
                                            else "Invalid X-Auth token"])
        if template == self.download_template and resp.status != 200:
            resp.off_spec = f"{resp.status} from the download (the spec declares only 200)"
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

    # -- helpers --
    def _date(self, ts):
        """A date as the configured server writes it (config.py "dates")."""
        text = iso(ts)
        return text[:-6] if self._config.dates == "naive" else text

    def _plain_date(self, ts):
        """A field the spec types as "date" (config.py "date_fields"): the day
        only, in UTC; or a date-time as for any other date."""
        if self._config.date_fields == "date-time":
            return self._date(ts)
        return iso(ts)[:10]

    def _scan(self, scan_id):
        scan = self.sim.scans.get(scan_id.lower())
        if scan is None or scan.deleted:
            raise ApiError(404, [f"Scan {scan_id} not found"])
        return scan

    def _session_json(self, scan, st, end_date):
        """The spec's ScanInfo (current_session); end_date only on request."""
        if (st.start_u is None and st.status not in TERMINAL
                and self._config.session_before_start == "empty"):
            return {}
        clock = self.sim.clock
        counts = scan.counts(st.progress)
        session = {"status": st.status, "progress": st.progress,
                   "severity_counts": counts,
                   "threat": next((SEVERITY_LEVEL[k] for k in SEVERITY_KEYS[:4] if counts[k]), 0),
                   "event_level": 2 if st.status == "failed" else 0,
                   "acusensor": False}
        if st.start_u is not None:
            session["scan_session_id"] = scan.session_id
            session["start_date"] = self._plain_date(clock.wall(st.start_u))
        if end_date and st.end_u is not None:
            session["end_date"] = self._date(clock.wall(st.end_u))
        return session

    def _scan_item(self, scan, st, session=True):
        """The spec's ScanItemResponse (without current_session if not `session`)."""
        t = scan.target
        item = {
            "scan_id": scan.scan_id,
            "target_id": t.target_id,
            "profile_id": scan.profile_id,
            "profile_name": scan.profile_name,
            "schedule": scan.schedule,
            "target": {"address": t.address, "description": t.description,
                       "type": t.type, "criticality": t.criticality},
            "criticality": t.criticality,
            "manual_intervention": False,
            "incremental": scan.options["incremental"],
            "max_scan_time": scan.options["max_scan_time"],
        }
        if session:
            item["current_session"] = self._session_json(scan, st,
                                                         self._config.session_end_date)
        if scan.options.get("report_template_id"):
            item["report_template_id"] = scan.options["report_template_id"]
        if not scan.disabled:
            item["next_run"] = self._plain_date(self.sim.clock.wall(scan.launch_u))
        if st.start_u is not None:
            item["start_date"] = self._date(self.sim.clock.wall(st.start_u))
        return item

    # -- handlers --
    def launch(self, req):
        body = req.json_body()
        problems = scan_body_problems(body)
        if problems:
            raise ApiError(422, problems)
        target = self.sim.targets.get(body["target_id"].lower())
        if target is None:
            raise ApiError(404, [f"Target {body['target_id']} not found"], "Target not found")
        profile_id = body["profile_id"].lower()
        profile = self.sim.profiles.get(profile_id)
        if profile is None:
            raise ApiError(404, [f"Scanning profile {body['profile_id']} not found"],
                           "Scanning profile not found")
        sim = self.sim
        given = body["schedule"]
        schedule = {"disable": given.get("disable", False),
                    "time_sensitive": given.get("time_sensitive", False),
                    "triggerable": given.get("triggerable", False)}
        for key in ("start_date", "recurrence", "history_limit"):
            if given.get(key) is not None:
                schedule[key] = given[key]
        start_u = sim.clock.now()
        if given.get("start_date"):
            start = datetime.fromisoformat(given["start_date"].upper().replace("Z", "+00:00"))
            start_u = max(start_u, sim.clock.units_at(start.timestamp()))
        options = {"incremental": body.get("incremental", False),
                   "max_scan_time": body.get("max_scan_time", 0)}
        if body.get("report_template_id"):
            options["report_template_id"] = body["report_template_id"].lower()
        scan_id = random_uuid(sim.id_rng)
        scan = Scan(len(sim.scans) + 1, scan_id, random_uuid(sim.id_rng), target, profile_id,
                    schedule, options, start_u, time.time(), disabled=schedule["disable"],
                    profile_name=profile["name"])
        sim.scans[scan_id] = scan
        out = self._scan_item(scan, scan.state(sim.clock.now()))
        mode = self._config.scan_id_in
        if mode == "location":
            del out["scan_id"]
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
        config = self._config
        key = (st, config.shape, config.session_end_date, config.session_before_start,
               config.dates, config.date_fields)
        if scan.cache_key != key:
            if config.shape == "single":
                body = self._scan_item(scan, st)
            else:
                # the seed's example: a list of one, its session with end_date
                body = {"scans": [{"scan_id": scan.scan_id,
                                   "current_session": self._session_json(scan, st, True)}]}
            scan.cache_body = encode_json(body)
            scan.cache_key = key
        resp = Response(200, scan.cache_body)
        resp.off_spec = ("shape=wrapped (the seed document's)" if config.shape == "wrapped"
                         else off_spec_status(st.status))
        return resp

    def list_scans(self, req):
        args = req.query_args()
        q = args.get("q", "")
        filters = parse_scan_filter(q, self._config.target_filter_key,
                                    self._config.scan_status_values)
        if self._config.scan_filter == "ignore":
            filters = {}
        now = self.sim.clock.now()
        rows = []
        for scan in reversed(list(self.sim.scans.values())):
            if scan.deleted:
                continue
            t = scan.target
            if "target_id" in filters and t.target_id not in filters["target_id"]:
                continue
            if "profile_id" in filters and scan.profile_id not in filters["profile_id"]:
                continue
            if "group_id" in filters:
                continue            # the simulator has no target groups
            if ("business_criticality" in filters
                    and str(t.criticality) not in filters["business_criticality"]):
                continue
            st = scan.state(now)
            if "scan_status" in filters and st.status not in filters["scan_status"]:
                continue
            if "threat" in filters:
                counts = scan.counts(st.progress)
                threat = next((SEVERITY_LEVEL[k] for k in SEVERITY_KEYS[:4] if counts[k]), 0)
                if str(threat) not in filters["threat"]:
                    continue
            rows.append((scan, st))
        config = self._config
        churn = config.list_churn
        if churn and rows and config.cursors == "offset":
            # invented stress mode (config.py list_churn): the k-th request
            # (from 0) sees the list rotated by k * N, its items N places later
            cut = len(rows) - self.sim.list_churn_requests * churn % len(rows)
            rows = rows[cut:] + rows[:cut]
        page, pagination = paginate(config, "scans", rows,
                                    [-scan.seq for scan, _ in rows], args, q, "created:desc")
        if churn:
            self.sim.list_churn_requests += 1
        session = config.list_session == "full"
        resp = json_response({"scans": [self._scan_item(s, st, session) for s, st in page],
                              "pagination": pagination})
        resp.off_spec = next(filter(None, (off_spec_status(st.status) for _, st in page)), None)
        resp.listed = [s.scan_id for s, _ in page] if session else []
        return resp

    def _action(self, scan_id, action, allowed, refusal):
        """abort/resume: 204 if `allowed(status)`, else 409."""
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
                   "start_date": self._date(self.sim.clock.wall(st.start_u)), "status": st.status}
            if st.end_u is not None:
                row["end_date"] = self._date(self.sim.clock.wall(st.end_u))
            rows.append(row)
        page, pagination = paginate(self._config, "results", rows,
                                    list(range(len(rows))), req.query_args(), scan.scan_id,
                                    "start_date:desc")
        return json_response({"results": page, "pagination": pagination})

    def _visible_vulns(self, scan_id, session_id):
        scan = self._scan(scan_id)
        st = scan.state(self.sim.clock.now())
        if st.start_u is None or session_id.lower() != scan.session_id:
            raise ApiError(404, [f"Scan session {session_id} not found"])
        seen = self._plain_date(self.sim.clock.wall(st.start_u))   # Vulnerability: date
        counts = scan.counts(st.progress)
        catalogue = scan.vuln_catalogue()
        return [dict(item, first_seen=seen, last_seen=seen)
                for key in SEVERITY_KEYS for item in catalogue[key][:counts[key]]]

    @staticmethod
    def _public_vuln(item):
        return {k: v for k, v in item.items() if k != "_impact"}

    def vulnerabilities(self, req, scan_id, session_id):
        items = self._visible_vulns(scan_id, session_id)
        args = req.query_args()
        parse_no_filter(args.get("q", ""))
        page, pagination = paginate(self._config, "vulns", items,
                                    list(range(len(items))), args,
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
            "response_info": "",
            "highlights": [{"index": 4, "length": len(path) + 1, "in": "request"}],
            "references": [{"rel": item["tags"][0],
                            "href": "https://cwe.mitre.org/data/definitions/"
                                    f"{item['tags'][0].removeprefix('CWE-')}.html"}],
        })
        return json_response(detail)
