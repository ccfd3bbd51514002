"""The request log and per-route statistics.

It must never record the X-Auth value.

Part of invicti_sim (see ../invicti_sim.py and ../README.md)."""

import json

# ---------------------------------------------------------------------------
# Request log and statistics
# ---------------------------------------------------------------------------

# "listed": the scan ids a GET /scans answer carried (None for any other
# answer, and for one a fault changed), so that tests can tell which scans
# a list page refreshed.
LOG_FIELDS = ("seq", "time", "method", "path", "query", "status", "fault", "duration_ms",
              "auth", "user_agent", "accept", "content_type", "client_closed", "listed")


class RequestLog:
    """Append-only, in seq order, capped (oldest entries dropped in chunks)."""

    def __init__(self, cap, log_file=None):
        self.cap = cap
        self._entries = []          # tuples: LOG_FIELDS + (launch tuple or None,)
        self.first_seq = 1
        self.next_seq = 1
        self.dropped = 0
        self._file = log_file

    def append(self, entry):
        self._entries.append(entry)
        self.next_seq += 1
        if len(self._entries) > self.cap + self.cap // 10:
            excess = len(self._entries) - self.cap
            del self._entries[:excess]
            self.first_seq += excess
            self.dropped += excess
        if self._file is not None:
            self._file.write(json.dumps(self.as_dict(entry)) + "\n")
            self._file.flush()

    @staticmethod
    def as_dict(entry):
        item = dict(zip(LOG_FIELDS, entry))
        item["duration_ms"] = round(item["duration_ms"], 3)
        launch = entry[-1]
        if launch is not None:
            item["target_id"], item["profile_id"], item["created_scan_id"] = launch
        return item

    def since(self, seq, limit):
        start = max(seq, self.first_seq) - self.first_seq
        chunk = self._entries[start:start + limit]
        return [self.as_dict(e) for e in chunk], start + len(chunk) < len(self._entries)

    def clear(self):
        self._entries = []
        self.first_seq = self.next_seq = 1
        self.dropped = 0
