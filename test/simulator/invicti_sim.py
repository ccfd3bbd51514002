#!/usr/bin/python3
"""invicti_sim: a simulator of the Invicti Platform / Acunetix scan API (v1).

What it is for
    Every test, benchmark and demo of the invicti_scan PostgreSQL extension
    talks to this server instead of a real Invicti instance (none is reachable
    from the build machines).  It implements, over real HTTP/1.1 on loopback,
    what a client of the API calls: launch, monitor (both known response
    shapes), abort / resume / delete, results, vulnerabilities, lists
    with both pagination styles, targets and scanning profiles (created,
    changed, deleted), report templates, and reports with their HTML and PDF
    downloads.  Scans and reports follow a deterministic timeline measured
    in "time units" whose length is configurable, so a multi-hour scan can
    run in a second.

    A second, plain-HTTP listener (the control API, paths /_sim/...) lets
    tests add or delete targets, replace the scanning profiles and report
    templates, inject faults (latency, error statuses, dropped or
    truncated responses, garbage, HTML, huge or slow bodies), simulate an
    outage (connection refused), pin scan and report states, and read the
    request log.

What it must never do
    * Listen anywhere but the address it is given (default 127.0.0.1), or
      call out to the network.
    * Log, echo or return the X-Auth token (or any configured token) in any
      response, log entry, log file or error message.
    * Depend on anything outside the Python 3.11 standard library.
    * Be the bottleneck of a benchmark: the hot path (GET of a scan) is a
      hand-written asyncio.Protocol with cached response bodies.
    * Behave non-deterministically where tests need determinism: every random
      choice comes from a random.Random seeded by --seed.

Run it with /usr/bin/python3 test/simulator/invicti_sim.py --help.
See test/simulator/README.md for the control API and fault rules.

Where things are (package sim/, next to this file):
    httpserver.py   HTTP/1.1 server, messages, router (no Invicti in it)
    model.py        built-in data, clock, targets, scans and their timelines
    paging.py       list paging and filters
    config.py       switchable behaviour (shapes, paging style, tokens)
    faults.py       fault rules and how they change answers
    requestlog.py   the request log and statistics
    simulator.py    the state that ties them together
    api.py          the Invicti API routes (scans), mixing in:
    resources.py    targets and scanning profiles (create, change, delete)
    reports.py      report templates, reports and their downloaded files
    control.py      the control API (/_sim/...)
    cli.py          command line and main loop
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sim.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
