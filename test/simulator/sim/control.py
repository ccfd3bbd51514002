"""The control API (/_sim/...): targets, scanning profiles, report
templates, scans, reports, faults, log, outage.

It must never be reachable on the API port, and never shows a token.

Part of invicti_sim (see ../invicti_sim.py and ../README.md)."""

import asyncio
import os

from .faults import FaultRule, _number
from .httpserver import ApiError, Router, json_response
from .model import BUILTIN_TARGET_ID, Target, iso
from .reports import control_templates
from .resources import control_profiles

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
        r.add("/_sim/targets/{target_id}", delete=self.delete_target)
        r.add("/_sim/profiles", get=self.get_profiles, put=self.put_profiles)
        r.add("/_sim/report_templates", get=self.get_templates, put=self.put_templates)
        r.add("/_sim/scans", get=self.list_scans)
        r.add("/_sim/scans/{scan_id}", get=self.get_scan)
        r.add("/_sim/scans/{scan_id}/force", post=self.force)
        r.add("/_sim/reports", get=self.list_reports)
        r.add("/_sim/reports/{report_id}", get=self.get_report)
        r.add("/_sim/reports/{report_id}/force", post=self.force_report)
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

    def delete_target(self, req, target_id):
        """As DELETE /api/v1/targets/<id>, but unseen by the request log."""
        if not self.sim.delete_target(target_id.lower()):
            raise ApiError(404, [f"Target {target_id} not found"])
        return self.get_targets(req)

    def get_profiles(self, req):
        return json_response({"profiles": list(self.sim.profiles.values())})

    def put_profiles(self, req):
        try:
            self.sim.profiles = control_profiles(self._body(req).get("profiles"))
        except ValueError as exc:
            raise ApiError(400, [str(exc)]) from None
        return self.get_profiles(req)

    def get_templates(self, req):
        return json_response({"templates": self.sim.report_templates})

    def put_templates(self, req):
        try:
            self.sim.report_templates = control_templates(self._body(req).get("templates"))
        except ValueError as exc:
            raise ApiError(400, [str(exc)]) from None
        return self.get_templates(req)

    def list_reports(self, req):
        now, prefix = self.sim.clock.now(), self.sim.api.PREFIX
        return json_response({"reports": [r.sim_json(now, prefix)
                                          for r in self.sim.reports.values()]})

    def _find_report(self, report_id):
        report = self.sim.reports.get(report_id.lower())
        if report is None:
            raise ApiError(404, [f"Report {report_id} not found"])
        return report

    def get_report(self, req, report_id):
        return json_response(self._find_report(report_id).sim_json(self.sim.clock.now(),
                                                                   self.sim.api.PREFIX))

    def force_report(self, req, report_id):
        report = self._find_report(report_id)
        body = self._body(req)
        status = body.get("status", 0)
        if set(body) != {"status"} or not (status is None or (isinstance(status, str)
                                                                and status)):
            raise ApiError(400, ['expected {"status": non-empty string|null}'])
        report.pin = status
        return self.get_report(req, report_id)

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
                "schedule": scan.schedule, "options": scan.options,
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
        return json_response({"total": self.sim.total_requests, "counts": counts,
                              "rate_limit": self.sim.rate_limit.public()})

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
