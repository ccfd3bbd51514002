"""Targets and scanning profiles as API resources: GET|POST /targets,
GET|PATCH|DELETE /targets/{target_id}, GET|POST /scanning_profiles and
GET|PATCH|DELETE /scanning_profiles/{scanning_profile_id}, with their
bodies checked against the spec's Target and ScanningProfile schemas
(test/contract/acunetix-api.yaml).  Also the profile store's start state
and the checks of PUT /_sim/profiles.

It must never be kinder than the spec: a body the schema refuses is a 400
naming each field; an address that is neither a host name nor an http(s)
URL is refused (format host|url); nothing deduplicates targets (the real
product allows two targets with one address, and so does the spec) or
profiles (two may share a name).  What it decides where the spec is silent
is listed as invented in api.py's docstring and ../README.md.

Part of invicti_sim (see ../invicti_sim.py and ../README.md)."""

import re

from .httpserver import ApiError, Response, json_response
from .model import SCANNING_PROFILES, TARGET_TYPES, Target, is_uuid, random_uuid
from .paging import paginate, parse_no_filter

# Target.address, format host|url: a host name or IPv4 address (letters,
# digits, dots, hyphens; labels neither start nor end with a hyphen),
# optionally :port; or an http/https URL with such a host.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = rf"{_LABEL}(?:\.{_LABEL})*\.?"
HOST_RE = re.compile(rf"^(?P<host>{_HOST})(?::(?P<port>\d{{1,5}}))?$")
URL_RE = re.compile(rf"^(?i:https?)://(?P<host>{_HOST})(?::(?P<port>\d{{1,5}}))?"
                    r"(?:[/?#][\x21-\x7e]*)?$")
TARGET_CRITICALITIES = (30, 20, 10, 0)
TARGET_READ_ONLY = ("fqdn_status", "fqdn_tm_hash", "deleted_at", "fqdn", "fqdn_hash",
                    "default_scanning_profile_id", "agents", "default_overrides")


def address_ok(value):
    """Target.address: a string of 1..1024 characters, format host|url."""
    if not isinstance(value, str) or not 1 <= len(value) <= 1024:
        return False
    match = HOST_RE.match(value) or URL_RE.match(value)
    if match is None:
        return False
    port = match.group("port")
    return port is None or 1 <= int(port) <= 65535


def target_body_problems(body):
    """What is wrong with a body against the spec's Target schema (the
    readOnly fields are ignored, as is any property the schema does not name)."""
    if not isinstance(body, dict):
        return ["body: must be a JSON object"]
    problems = []
    if "address" not in body:
        problems.append("address: required")
    elif not address_ok(body["address"]):
        problems.append("address: must be a host name (letters, digits, dots, hyphens, "
                        "optional :port) or an http/https URL with a host, "
                        "1 to 1024 characters (format host|url)")
    if "description" in body and (not isinstance(body["description"], str)
                                  or len(body["description"]) > 1024):
        problems.append("description: must be a string of at most 1024 characters")
    if "type" in body and body["type"] not in TARGET_TYPES:
        problems.append(f"type: must be one of {list(TARGET_TYPES)}")
    if "criticality" in body and (type(body["criticality"]) is not int
                                  or body["criticality"] not in TARGET_CRITICALITIES):
        problems.append(f"criticality: must be one of {list(TARGET_CRITICALITIES)}")
    return problems


def profile_body_problems(body, name_required=True):
    """What is wrong with a body against the spec's ScanningProfile schema.
    A new profile needs a name too (invented: the schema does not require
    one, but it has minLength 1 and no default)."""
    if not isinstance(body, dict):
        return ["body: must be a JSON object"]
    problems = []
    checks = body.get("checks")
    if "checks" not in body:
        problems.append("checks: required")
    elif (not isinstance(checks, list) or len(checks) > 800
          or not all(isinstance(c, str) and 1 <= len(c) <= 128 for c in checks)):
        problems.append("checks: must be an array of at most 800 strings "
                        "of 1 to 128 characters")
    name = body.get("name")
    if "name" not in body:
        if name_required:
            problems.append("name: required")
    elif not isinstance(name, str) or not 1 <= len(name) <= 256:
        problems.append("name: must be a string of 1 to 256 characters")
    if "sort_order" in body and (type(body["sort_order"]) is not int
                                 or body["sort_order"] < 1):
        problems.append("sort_order: must be an integer >= 1")
    return problems


def builtin_profiles():
    """The profile store's start state (model.SCANNING_PROFILES)."""
    return {pid: {"profile_id": pid, "name": name, "custom": False, "sort_order": i + 1,
                  "checks": []}
            for i, (pid, name) in enumerate(SCANNING_PROFILES)}


PROFILE_FIELDS = {"profile_id", "name", "custom", "sort_order", "checks"}


def control_profiles(specs):
    """PUT /_sim/profiles {"profiles": [...]} -> a new store; ValueError if bad.
    custom defaults to false (built-in-like), sort_order to the position (1..),
    checks to []."""
    if not isinstance(specs, list):
        raise ValueError("profiles: must be a list")
    store = {}
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict):
            raise ValueError("a profile must be an object")
        unknown = set(spec) - PROFILE_FIELDS
        if unknown:
            raise ValueError(f"unknown profile fields: {sorted(unknown)}")
        pid = spec.get("profile_id")
        if not is_uuid(pid):
            raise ValueError(f"profile_id must be a uuid string, got {pid!r}")
        pid = pid.lower()
        if pid in store:
            raise ValueError(f"profile_id {pid} appears twice")
        profile = {"profile_id": pid, "name": spec.get("name"),
                   "custom": spec.get("custom", False),
                   "sort_order": spec.get("sort_order", i + 1),
                   "checks": spec.get("checks", [])}
        problems = profile_body_problems(profile)
        if not isinstance(profile["custom"], bool):
            problems.append("custom: must be a boolean")
        if problems:
            raise ValueError(f"profile {pid}: " + "; ".join(problems))
        store[pid] = profile
    return store


class TargetRoutes:
    """Mixed into the API app (api.py): the /targets routes."""

    def _target(self, target_id):
        target = self.sim.targets.get(target_id.lower())
        if target is None:
            raise ApiError(404, [f"Target {target_id} not found"], "Target not found")
        return target

    def _last_scans(self):
        """target_id -> its newest scan that is not deleted."""
        last = {}
        for scan in self.sim.scans.values():
            if not scan.deleted:
                last[scan.target.target_id] = scan
        return last

    def _target_item(self, t, scan, now):
        """The spec's TargetItemResponse; last_scan_* only once a scan exists."""
        item = {"target_id": t.target_id, "address": t.address,
                "description": t.description, "criticality": t.criticality,
                "type": t.type, "continuous_mode": False, "manual_intervention": False}
        if scan is not None:
            st = scan.state(now)
            item.update(last_scan_id=scan.scan_id, last_scan_session_status=st.status,
                        last_scan_date=self._plain_date(scan.created_at))    # TargetInfo: date
            if st.start_u is not None:
                item["last_scan_session_id"] = scan.session_id
        return item

    def targets(self, req):
        """The spec's TargetListResponse, in the order the targets were added."""
        args = req.query_args()
        parse_no_filter(args.get("q", ""))
        targets = sorted(self.sim.targets.values(), key=lambda t: t.order)
        last = self._last_scans()
        now = self.sim.clock.now()
        rows = [self._target_item(t, last.get(t.target_id), now) for t in targets]
        page, pagination = paginate(self._config, "targets", rows,
                                    [t.order for t in targets], args, "", "order:asc")
        resp = json_response({"targets": page, "pagination": pagination})
        # PUT /_sim/targets may plant what the API would never list (tests
        # of a client's defences): say so in the contract log
        if any(len(item["address"]) > 1024 for item in page):
            resp.off_spec = "a target planted with an address over the spec's 1024 characters (hostile input)"
        return resp

    def add_target(self, req):
        body = req.json_body()
        problems = target_body_problems(body)
        if problems:
            raise ApiError(400, problems)
        sim = self.sim
        target = Target({"target_id": random_uuid(sim.object_rng),
                         "address": body["address"],
                         "description": body.get("description", ""),
                         "criticality": body.get("criticality", 10),
                         "type": body.get("type", "default")}, 0)
        sim.put_target(target)
        return json_response(self._target_item(target, None, sim.clock.now()), 201,
                             [("Location", f"{self.PREFIX}/targets/{target.target_id}")])

    def get_target(self, req, target_id):
        target = self._target(target_id)
        return json_response(self._target_item(target, self._last_scans().get(
            target.target_id), self.sim.clock.now()))

    def patch_target(self, req, target_id):
        """The spec's PATCH takes a whole Target (address required): it is
        checked as on POST; description and criticality are applied; address
        and type must be the stored ones (the simulator cannot change them)."""
        target = self._target(target_id)
        body = req.json_body()
        problems = target_body_problems(body)
        if not problems:
            if body["address"] != target.address:
                problems.append(f"address: cannot be changed (it is {target.address!r})")
            if body.get("type", target.type) != target.type:
                problems.append(f"type: cannot be changed (it is {target.type!r})")
        if problems:
            raise ApiError(400, problems)
        target.description = body.get("description", target.description)
        target.criticality = body.get("criticality", target.criticality)
        for scan in self.sim.scans.values():
            if scan.target is target:
                scan.forget_cached()        # its answers name the target
        return Response(204)

    def delete_target(self, req, target_id):
        self.sim.delete_target(self._target(target_id).target_id)
        return Response(204)


class ProfileRoutes:
    """Mixed into the API app (api.py): the /scanning_profiles routes."""

    def _profile(self, profile_id):
        profile = self.sim.profiles.get(profile_id.lower())
        if profile is None:
            raise ApiError(404, [f"Scanning profile {profile_id} not found"],
                           "Scanning profile not found")
        return profile

    def scanning_profiles(self, req):
        """The store, by sort_order (ties in the order they were added)."""
        profiles = sorted(self.sim.profiles.values(), key=lambda p: p["sort_order"])
        return json_response({"scanning_profiles": profiles})

    def add_profile(self, req):
        body = req.json_body()
        problems = profile_body_problems(body)
        if problems:
            raise ApiError(400, problems)
        pid = random_uuid(self.sim.object_rng)
        profile = {"profile_id": pid, "name": body["name"], "custom": True,
                   "sort_order": body.get("sort_order", 1000), "checks": list(body["checks"])}
        self.sim.profiles[pid] = profile
        return json_response(profile, 201,
                             [("Location", f"{self.PREFIX}/scanning_profiles/{pid}")])

    def get_profile(self, req, profile_id):
        return json_response(self._profile(profile_id))

    def _editable(self, profile_id):
        profile = self._profile(profile_id)
        if not profile["custom"]:
            raise ApiError(409, [f"Scanning profile {profile_id} is built in (custom: false) "
                                 "and cannot be changed or deleted"])
        return profile

    def patch_profile(self, req, profile_id):
        """The spec's PATCH takes a whole ScanningProfile (checks required)."""
        profile = self._editable(profile_id)
        body = req.json_body()
        problems = profile_body_problems(body, name_required=False)
        if problems:
            raise ApiError(400, problems)
        profile.update(name=body.get("name", profile["name"]), checks=list(body["checks"]),
                       sort_order=body.get("sort_order", profile["sort_order"]))
        return Response(204)

    def delete_profile(self, req, profile_id):
        profile = self._editable(profile_id)
        del self.sim.profiles[profile["profile_id"]]
        return Response(204)
