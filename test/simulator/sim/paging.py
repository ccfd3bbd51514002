"""List paging and filters as the vendor's spec describes them.

Paging (spec: c, l, q, s; PaginationExt {count, cursors, cursor_hash,
sort}): `l` is 1..100; by default a cursor is an offset into the list as it
is when the page is asked for (the spec's own example is ?c=2&l=1), so a
list that changes between pages shifts its items, as a real one does.  The
"opaque" cursors of config.py stand for a server whose cursors name the last
item seen instead.  The next page is announced in pagination.cursors
[current, next] (spec) or pagination.next_cursor, a string or an integer
(older servers).

Filters (spec, GET /scans): target, target_id (the spec's example),
scan_status, threat, business_criticality, profile_id, group_id; values
comma-separated, clauses separated by ';'.

It must never be kinder than the spec: limits, cursors and filter keys it
does not know are refused with 400.

Part of invicti_sim (see ../invicti_sim.py and ../README.md)."""

import base64
import bisect
import hashlib

from .httpserver import ApiError


def parse_limit(args, limit_max):
    """l: the spec's limitParameter (minimum 1, maximum 100, default 100) also
    says "1 < limit < 100"; its own example is ?c=2&l=1.  So 1 is taken, and
    by default 100 is not (config.py limit_max: 100 as the schema has it)."""
    raw = args.get("l")
    if raw is None:
        return min(100, limit_max)
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= limit_max:
        raise ApiError(400, [f"l: must be an integer between 1 and {limit_max}, got {raw!r}"])
    return limit


def _encode_opaque(kind, qhash, key):
    raw = f"{kind}:{qhash[:8]}:{'-' if key is None else key}".encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode_opaque(cursor, kind, qhash):
    """-> key after which the page starts (None: first page); 400 if invalid."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        c_kind, c_hash, key = raw.split(":")
        if c_kind != kind:
            raise ValueError
        if c_hash != qhash[:8]:
            raise ApiError(400, ["c: cursor belongs to a different query"], "Invalid cursor")
        return None if key == "-" else int(key)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, [f"c: invalid cursor {cursor!r}"], "Invalid cursor") from None


def _parse_offset(cursor):
    if not cursor.isdigit() or len(cursor) > 9:
        raise ApiError(400, [f"c: invalid cursor {cursor!r}"], "Invalid cursor")
    return int(cursor)


def paginate(config, kind, items, keys, args, filter_sig, sort):
    """One page of `items` (ordered; `keys` ascending ints, for opaque
    cursors) and its pagination object."""
    limit = parse_limit(args, config.limit_max)
    qhash = hashlib.md5(f"{kind}|{filter_sig}|{sort}".encode()).hexdigest()
    cursor = args.get("c") or None
    if config.cursors == "offset":
        start = _parse_offset(cursor) if cursor else 0
        current = str(start)
        following = str(start + limit) if start + limit < len(items) else None
    else:
        start = 0
        if cursor:
            anchor = _decode_opaque(cursor, kind, qhash)
            if anchor is not None:
                start = bisect.bisect_right(keys, anchor)
        current = cursor or _encode_opaque(kind, qhash, None)
        following = (_encode_opaque(kind, qhash, keys[start + limit - 1])
                     if start + limit < len(items) else None)
    page = items[start:start + limit]
    pagination = {"count": len(items),
                  "cursor_hash": hashlib.md5(f"{current}|{qhash}".encode()).hexdigest(),
                  "sort": sort}
    if config.pagination == "cursors":
        pagination["cursors"] = [current] if following is None else [current, following]
    elif config.pagination == "next_cursor_int" and config.cursors == "offset":
        pagination["next_cursor"] = None if following is None else int(following)
    else:
        pagination["next_cursor"] = following
    return page, pagination


SCAN_FILTER_KEYS = ("target", "target_id", "scan_status", "threat",
                    "business_criticality", "profile_id", "group_id")
# The scan_status values the spec's q description lists: no other (not the
# ScanInfo statuses aborted, pausing and paused, nor resuming).
SCAN_STATUS_VALUES = ("aborting", "completed", "failed", "processing", "queued",
                      "scheduled", "starting")


def parse_scan_filter(q, target_key="both", status_values="spec"):
    """'key:value;key2:v1,v2' -> {key: set(values)}; 400 on bad syntax or keys.

    The spec names the one-target key twice over: "target" in the q
    description, "target_id" in its example request.  target_key says
    which this server takes ("target_id", "target" or "both").  With
    status_values "spec" a scan_status value outside the seven listed is
    refused; "any" takes every status."""
    keys = [k for k in SCAN_FILTER_KEYS
            if not ((k == "target" and target_key == "target_id")
                    or (k == "target_id" and target_key == "target"))]
    filters = {}
    for clause in filter(None, (c.strip() for c in q.split(";"))):
        key, sep, values = clause.partition(":")
        key = key.strip()
        if not sep or not values:
            raise ApiError(400, [f"q: expected key:value, got {clause!r}"])
        if key not in keys:
            raise ApiError(400, [f"q: unsupported filter key {key!r} "
                                 f"(supported: {', '.join(keys)})"])
        vals = {v.strip() for v in values.split(",") if v.strip()}
        if key == "scan_status" and status_values == "spec":
            unknown = sorted(vals - set(SCAN_STATUS_VALUES))
            if unknown:
                raise ApiError(400, [f"q: scan_status does not take {', '.join(unknown)} "
                                     f"(it takes {', '.join(SCAN_STATUS_VALUES)})"])
        if key in ("target", "target_id", "profile_id", "group_id"):
            vals = {v.lower() for v in vals}
        if key == "target":
            if len(vals) != 1:
                raise ApiError(400, ["q: target accepts a single target id"])
            key = "target_id"
        filters[key] = filters[key] & vals if key in filters else vals
    return filters


def parse_no_filter(q):
    """A list the spec documents no filter keys for: any q is refused."""
    if q.strip():
        raise ApiError(400, [f"q: this list has no filter keys, got {q!r}"])
