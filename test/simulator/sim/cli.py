"""Command line and the server's main loop.

It must never start without a token unless --no-auth says so.

Part of invicti_sim (see ../invicti_sim.py and ../README.md)."""

import argparse
import asyncio
import json
import os
import signal

from .config import VARIANTS, variant_error
from .model import Target
from .simulator import Simulator

# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(description="Invicti API simulator (test double).")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="API port (0: pick a free one)")
    ap.add_argument("--control-port", type=int, default=0,
                    help="control API port (0: pick a free one)")
    ap.add_argument("--port-file", help="write {api_port, control_port, pid} here when ready")
    ap.add_argument("--token", help="the valid X-Auth value")
    ap.add_argument("--no-auth", action="store_true", help="accept requests without X-Auth")
    ap.add_argument("--forbidden-token", help="a token that authenticates but gets 403")
    ap.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE",
                    help="a documented variant instead of the spec's behaviour "
                         f"(keys: {', '.join(VARIANTS)}); repeatable")
    for key in ("shape", "scan_id_in", "pagination"):
        ap.add_argument("--" + key.replace("_", "-"), dest=key,
                        help=f"same as --variant {key}=VALUE")
    ap.add_argument("--time-scale", type=float, default=1.0,
                    help="seconds per time unit of the scan timeline")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--log-file", help="append every request-log entry as a JSON line")
    ap.add_argument("--contract-log",
                    help="append every exchange (without the token) for the contract test")
    ap.add_argument("--log-cap", type=int, default=2_000_000,
                    help="request-log entries kept in memory")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--targets-file", help='JSON {"targets": [...]} preloaded at start')
    args = ap.parse_args(argv)
    args.variants = {}
    for item in args.variant + [f"{k}={getattr(args, k)}" for k in ("shape", "scan_id_in",
                                                                      "pagination")
                                if getattr(args, k) is not None]:
        key, _, value = item.partition("=")
        if key not in VARIANTS:
            ap.error(f"--variant: unknown key {key!r} (keys: {', '.join(VARIANTS)})")
        default = VARIANTS[key][0]
        if isinstance(default, bool):
            if value.lower() not in ("true", "false"):
                ap.error(f"--variant {key}: must be true or false")
            value = value.lower() == "true"
        elif isinstance(default, int):
            try:
                value = int(value) if value.isdigit() else value
            except ValueError:          # digits int() refuses, or too many of them
                pass
        error = variant_error(key, value)
        if error is not None:
            ap.error(f"--variant {key}: {error}")
        args.variants[key] = value
    if args.token is None and not args.no_auth:
        ap.error("--token is required unless --no-auth is given")
    if args.token is not None and args.no_auth:
        ap.error("--token and --no-auth are mutually exclusive")
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    if args.time_scale <= 0:
        ap.error("--time-scale must be positive")
    if args.log_cap < 1:
        ap.error("--log-cap must be positive")
    return ap, args


def load_targets_file(ap, path):
    if path is None:
        return []
    try:
        with open(path, encoding="utf-8") as f:
            specs = json.load(f)["targets"]
        for spec in specs:
            Target(spec, 0)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        ap.error(f"--targets-file {path}: {exc}")
    return specs


def write_port_file(path, data):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(tmp, path)


async def serve(args, startup_targets):
    sim = Simulator(args, startup_targets)
    await sim.start()
    api_port, control_port = sim.api_listener.port, sim.control_listener.port
    if args.port_file:
        write_port_file(args.port_file, {"api_port": api_port, "control_port": control_port,
                                         "pid": os.getpid()})
    scheme = "https" if args.tls_cert else "http"
    print(f"invicti_sim listening api={scheme}://{args.host}:{api_port} "
          f"control=http://{args.host}:{control_port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    sim.close()


def main(argv=None):
    ap, args = parse_args(argv)
    startup_targets = load_targets_file(ap, args.targets_file)
    asyncio.run(serve(args, startup_targets))


if __name__ == "__main__":
    main()
