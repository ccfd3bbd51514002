"""The Invicti API routes (/api/v1/...).

It must never answer with anything the vendor's spec does not describe,
unless a switch (config.py) or a fault asks for it; it never echoes the
token.

Part of invicti_sim (see ../invicti_sim.py and ../README.md)."""

import time

from .faults import FaultInjection
from .httpserver import ApiError, Response, Router, encode_json, error_response, json_response
from .model import ME, PROFILE_NAMES, SCANNING_PROFILES, SEVERITY_KEYS, SEVERITY_LEVEL, Scan, TERMINAL, is_uuid, iso, random_uuid
from .paging import paginate, parse_scan_filter

# ---------------------------------------------------------------------------
# The Invicti API
# ---------------------------------------------------------------------------

class ApiApp(FaultInjection):
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
