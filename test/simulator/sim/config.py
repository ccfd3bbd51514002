"""The simulator's switchable behaviour (response shapes, paging style, tokens).

It must never return a token value: the public view says only whether
one is set.

Part of invicti_sim (see ../invicti_sim.py and ../README.md)."""



# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

class Config:
    CHOICES = {"shape": ("wrapped", "single"),
               "scan_id_in": ("body+location", "location", "body"),
               "pagination": ("cursors", "next_cursor")}

    def __init__(self, shape, scan_id_in, pagination, time_scale, token, forbidden_token):
        self.shape = shape
        self.scan_id_in = scan_id_in
        self.pagination = pagination
        self.time_scale = time_scale
        self.token = token
        self.forbidden_token = forbidden_token

    def copy(self):
        return Config(self.shape, self.scan_id_in, self.pagination, self.time_scale,
                      self.token, self.forbidden_token)

    def update(self, changes):
        """Validate every change, then apply all (control API)."""
        new = self.copy()
        for key, value in changes.items():
            if key in self.CHOICES:
                if value not in self.CHOICES[key]:
                    raise ValueError(f"{key} must be one of {list(self.CHOICES[key])}")
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
        return {"shape": self.shape, "scan_id_in": self.scan_id_in,
                "pagination": self.pagination, "time_scale": self.time_scale,
                "token_set": self.token is not None,
                "forbidden_token_set": self.forbidden_token is not None}
