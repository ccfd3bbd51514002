"""List paging and filters as the API does them.

It must never be kinder than the spec: limits and filter keys it does not
know are refused with 400.

Part of invicti_sim (see ../invicti_sim.py and ../README.md)."""

import base64
import bisect
import hashlib

from .httpserver import ApiError

# ---------------------------------------------------------------------------
# Pagination
# ---------------------------------------------------------------------------

def parse_limit(args):
    raw = args.get("l")
    if raw is None:
        return 100
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise ApiError(400, [f"l: must be an integer between 1 and 100, got {raw!r}"])
    return limit


def encode_cursor(kind, qhash, key):
    raw = f"{kind}:{qhash[:8]}:{'-' if key is None else key}".encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor, kind, qhash):
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


def paginate(style, kind, items, keys, args, filter_sig, sort):
    """Page a list already ordered by ascending int keys.

    Cursors name the last key of the previous page, so new items added to the
    front (newest-first lists) never shift later pages.
    """
    limit = parse_limit(args)
    qhash = hashlib.md5(f"{kind}|{filter_sig}|{sort}".encode()).hexdigest()
    cursor = args.get("c")
    start = 0
    if cursor:
        anchor = decode_cursor(cursor, kind, qhash)
        if anchor is not None:
            start = bisect.bisect_right(keys, anchor)
    else:
        cursor = encode_cursor(kind, qhash, None)
    page = items[start:start + limit]
    next_cursor = (encode_cursor(kind, qhash, keys[start + limit - 1])
                   if start + limit < len(items) else None)
    pagination = {"count": len(items), "cursor_hash": qhash, "sort": sort}
    if style == "cursors":
        pagination["cursors"] = [cursor] if next_cursor is None else [cursor, next_cursor]
    else:
        pagination["next_cursor"] = next_cursor
    return page, pagination


def parse_scan_filter(q):
    """'key:value;key2:v1,v2' -> {key: set(values)}; 400 on bad syntax."""
    filters = {}
    for clause in filter(None, (c.strip() for c in q.split(";"))):
        key, sep, values = clause.partition(":")
        key = key.strip()
        if not sep or not values:
            raise ApiError(400, [f"q: expected key:value, got {clause!r}"])
        if key not in ("target_id", "profile_id", "status"):
            raise ApiError(400, [f"q: unsupported filter key {key!r} "
                                 "(supported: target_id, profile_id, status)"])
        vals = {v.strip() for v in values.split(",") if v.strip()}
        if key != "status":
            vals = {v.lower() for v in vals}
        filters[key] = filters[key] & vals if key in filters else vals
    return filters
