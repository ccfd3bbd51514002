"""A rate limit on the token, enforced by the server: invented.

The vendor's spec names no limit, no 429 and no rate-limit header; real
servers and the gateways in front of them have them, and a token shared
with other clients meets them.  This module stands for such a server, off
unless the settings (config.py) turn it on:

  rate_limit            N > 0 requests a minute are accepted (0: no limit)
  rate_limit_algorithm  "token_bucket": N/60 tokens a second, a bucket of
                        six seconds' worth (N/10, at least 1), Retry-After
                        the seconds until the next token; "fixed_window":
                        N per clock minute, Retry-After the seconds until
                        the next minute
  rate_limit_headers    "none"; "x-ratelimit" (X-RateLimit-Limit,
                        -Remaining, -Reset in seconds), "ratelimit"
                        (RateLimit-Limit, -Remaining, -Reset: the IETF
                        draft up to -06) or "ratelimit-structured"
                        (RateLimit: "default";r=..;t=.. and RateLimit-Policy:
                        "default";q=N;w=60: the draft from -07), on every
                        answer to an authenticated request; headers are only
                        sent with the fixed window, whose reset they describe

Every authenticated request counts, whatever it asks for; a refused one
is answered 429 with the spec's error body and does not reach its route.
It must never look at anything but the clock.

Part of invicti_sim (see ../invicti_sim.py and ../README.md)."""

import math

ALGORITHMS = ("token_bucket", "fixed_window")
HEADERS = ("none", "x-ratelimit", "ratelimit", "ratelimit-structured")


class RateLimit:
    def __init__(self):
        self.per_minute = 0
        self.algorithm = "token_bucket"
        self.headers = "none"
        self.accepted = 0
        self.refused = 0
        self._tokens = 0.0
        self._at = None
        self._window = None
        self._window_used = 0

    def configure(self, per_minute, algorithm, headers):
        if (per_minute, algorithm, headers) == (self.per_minute, self.algorithm, self.headers):
            return
        self.per_minute, self.algorithm, self.headers = per_minute, algorithm, headers
        self._tokens = float(self._capacity())
        self._at = None
        self._window = None
        self._window_used = 0

    def _capacity(self):
        return max(1, self.per_minute // 10)

    def admit(self, now):
        """(accepted, headers): now is a wall-clock time in seconds."""
        if self.per_minute <= 0:
            return True, ()
        if self.algorithm == "token_bucket":
            ok, retry = self._bucket(now)
            headers = ()
        else:
            ok, retry, remaining, reset = self._fixed(now)
            headers = self._headers(remaining, reset)
        if ok:
            self.accepted += 1
            return True, headers
        self.refused += 1
        return False, (("Retry-After", str(max(1, math.ceil(retry)))),) + tuple(headers)

    def _bucket(self, now):
        rate = self.per_minute / 60.0
        if self._at is not None:
            self._tokens = min(self._capacity(), self._tokens + (now - self._at) * rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True, 0
        return False, (1 - self._tokens) / rate

    def _fixed(self, now):
        window = math.floor(now / 60)
        if window != self._window:
            self._window, self._window_used = window, 0
        reset = (window + 1) * 60 - now
        if self._window_used < self.per_minute:
            self._window_used += 1
            return True, 0, self.per_minute - self._window_used, reset
        return False, reset, 0, reset

    def _headers(self, remaining, reset):
        reset_s = max(1, math.ceil(reset))
        if self.headers == "x-ratelimit":
            return (("X-RateLimit-Limit", str(self.per_minute)),
                    ("X-RateLimit-Remaining", str(remaining)),
                    ("X-RateLimit-Reset", str(reset_s)))
        if self.headers == "ratelimit":
            return (("RateLimit-Limit", str(self.per_minute)),
                    ("RateLimit-Remaining", str(remaining)),
                    ("RateLimit-Reset", str(reset_s)))
        if self.headers == "ratelimit-structured":
            return (("RateLimit", f'"default";r={remaining};t={reset_s}'),
                    ("RateLimit-Policy", f'"default";q={self.per_minute};w=60'))
        return ()

    def public(self):
        return {"per_minute": self.per_minute, "algorithm": self.algorithm,
                "headers": self.headers, "accepted": self.accepted,
                "refused": self.refused}
