"""The simulator's switchable behaviour: where the vendor's sources differ,
or a real server may differ from them, each variant is a setting.

The default of every setting is what the vendor's Swagger file ("Acunetix
Scanner API", test/contract/acunetix-api.yaml) says.  The other values are
other real shapes (the seed document's, older servers'), each named for its
source in VARIANTS.  Some are invented, from no vendor source, to stress
clients: list_session "omit", list_churn above 0, report_size above 0,
report_outcome "failed" or "stuck", and a rate_limit above 0 (with its
algorithm and headers); their defaults are the spec's behaviour
(for report_outcome, the vendor clients' "completed": the spec names no
report statuses).

It must never return a token value: the public view says only whether one
is set.

Part of invicti_sim (see ../invicti_sim.py and ../README.md)."""


class Count:
    """The other values of a count setting: any integer >= 0 (not a bool)."""

    def __contains__(self, value):
        return type(value) is int and value >= 0

    def __repr__(self):
        return "any integer >= 0"


# setting -> (spec default, other values, where each comes from)
VARIANTS = {
    # GET /scans/{id}: the spec's ScanItemResponse, or the seed's {"scans": [...]}
    "shape": ("single", ("wrapped",)),
    # the 201 of a launch: the spec puts the id in Location only; the seed
    # also in the body; "body" stands for a server that forgets Location
    "scan_id_in": ("location", ("body+location", "body")),
    # list paging: pagination.cursors (spec); next_cursor as a string, or as
    # an integer (older servers; the vendor's Jenkins plugin reads getInt)
    "pagination": ("cursors", ("next_cursor", "next_cursor_int")),
    # cursor values: offsets, as the spec's example ?c=2&l=1; "opaque" stands
    # for a server whose cursors do not shift when the list changes
    "cursors": ("offset", ("opaque",)),
    # current_session.end_date: not in the spec's ScanInfo (the end date is
    # on GET /scans/{id}/results); the seed's example has one
    "session_end_date": (False, (True,)),
    # current_session before the session starts: the status only, or {}
    "session_before_start": ("status_only", ("empty",)),
    # a missing or bad X-Auth: 401 (the vendor's plugins), or 400 "Invalid
    # Authorization header" (seen on real servers)
    "auth_failure": (401, (400,)),
    # q on GET /scans: honoured (spec), or ignored (a server that answers
    # every scan whatever the filter)
    "scan_filter": ("honour", ("ignore",)),
    # dates: with their UTC offset, or "naive" without one (the spec
    # declares several as plain "date", which carries no zone: UTC)
    "dates": ("offset", ("naive",)),
    # GET /scans items (not GET /scans/{id}): ScanItemResponse with
    # current_session (spec), or "omit": no current_session key at all
    # (invented: a server whose list is lighter than its single-scan answer)
    "list_session": ("full", ("omit",)),
    # GET /scans: N > 0 rotates the (filtered) list by N more positions on
    # every request, so offset pages overlap or skip (invented stress mode;
    # 0, no rotation, is the spec's behaviour)
    "list_churn": (0, Count()),
    # GET /reports/download/{descriptor}: the spec lists no "security" for
    # it, so it is served with or without X-Auth ("none"); "required": 401
    # (or 400 under auth_failure=400) without a valid X-Auth, 403 for the
    # forbidden token, like every other route
    "download_auth": ("none", ("required",)),
    # the size of each downloaded report file: 0 its natural size; N > 0
    # pads it (inside an HTML or PDF comment) to N bytes (invented knob)
    "report_size": (0, Count()),
    # how a report generation ends: "completed" (the vendor clients'
    # status), "failed" (download stays []) or "stuck" (stays "processing");
    # fixed for a report when it is created (invented knob)
    "report_outcome": ("completed", ("failed", "stuck")),
    # a completed report's download entries: "path" (/api/v1/reports/
    # download/<descriptor>.<ext>, as vendor clients show them) or "foreign"
    # (invented, hostile: the same paths on another host, which a client
    # must never send its token to)
    "download_links": ("path", ("foreign",)),
    # fields the spec types as plain "date" (current_session.start_date,
    # next_run): the day only ("spec"), or date-times like every other date
    # ("date-time", as the seed document's example has them)
    "date_fields": ("spec", ("date-time",)),
    # the q key for one target: the spec's q description says "target", its
    # example request "target_id"; a server takes one of them or both
    "target_filter_key": ("target_id", ("target", "both")),
    # scan_status values in q: the seven the spec's q description lists
    # ("spec"), or any status ("any": a server more lenient than the spec)
    "scan_status_values": ("spec", ("any",)),
    # l: at most 99, as the spec's "1 < limit < 100" says, or 100, its
    # schema's maximum
    "limit_max": (99, (100,)),
    # a rate limit on the token (invented: the spec names no limit, no 429
    # and no rate-limit header; ratelimit.py): N > 0 requests a minute,
    # spent from a token bucket or per clock minute, with or without
    # rate-limit headers; 0, no limit, is the spec's behaviour
    "rate_limit": (0, Count()),
    "rate_limit_algorithm": ("token_bucket", ("fixed_window",)),
    "rate_limit_headers": ("none", ("x-ratelimit", "ratelimit", "ratelimit-structured")),
}


def variant_error(key, value):
    """Why `value` is not a value of the setting `key` ("must be ..."), or None."""
    default, others = VARIANTS[key]
    if isinstance(others, Count):       # the default (0) is a count too
        return None if value in others else "must be an integer >= 0"
    if value == default or value in others:
        return None
    return f"must be one of {[default, *others]}"


class Config:
    def __init__(self, time_scale, token, forbidden_token, **variants):
        self.time_scale = time_scale
        self.token = token
        self.forbidden_token = forbidden_token
        for key, (default, _) in VARIANTS.items():
            setattr(self, key, variants.get(key, default))

    def copy(self):
        return Config(self.time_scale, self.token, self.forbidden_token,
                      **{key: getattr(self, key) for key in VARIANTS})

    def update(self, changes):
        """Validate every change, then apply all (control API)."""
        new = self.copy()
        for key, value in changes.items():
            if key in VARIANTS:
                error = variant_error(key, value)
                if error is not None:
                    raise ValueError(f"{key} {error}")
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
        out = {key: getattr(self, key) for key in VARIANTS}
        out.update(time_scale=self.time_scale, token_set=self.token is not None,
                   forbidden_token_set=self.forbidden_token is not None)
        return out
