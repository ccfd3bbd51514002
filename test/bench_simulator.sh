#!/usr/bin/env bash
# Load benchmark of the Invicti API simulator (test/simulator/invicti_sim.py).
#
# Starts the simulator on free loopback ports, launches one scan with curl,
# then runs wrk (keep-alive) against GET /api/v1/scans/<id> and GET /api/v1/scanning_profiles
# and prints requests/sec for each.  Works as any user; leaves nothing behind.
#
# Usage: test/bench_simulator.sh [seconds] [threads] [connections]
#        (defaults: 10 s, 2 threads, 32 connections)
set -euo pipefail

DURATION="${1:-10}"
THREADS="${2:-2}"
CONNECTIONS="${3:-32}"
PYTHON=/usr/bin/python3
WRK="$(command -v wrk || echo /usr/bin/wrk)"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SIM="$HERE/simulator/invicti_sim.py"

for tool in "$PYTHON" "$WRK" curl; do
    command -v "$tool" >/dev/null || { echo "bench_simulator: $tool not found" >&2; exit 1; }
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/invicti_sim_bench.XXXXXX")"
TOKEN="bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
SIM_PID=""

cleanup() {
    if [[ -n "$SIM_PID" ]] && kill -0 "$SIM_PID" 2>/dev/null; then
        kill -TERM "$SIM_PID"
        wait "$SIM_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# A long time unit keeps the scan in one state: the benchmark measures the
# cached-response path a poller hits, not the timeline.
"$PYTHON" "$SIM" --port 0 --control-port 0 --port-file "$WORK/ports.json" \
    --token "$TOKEN" --time-scale 3600 >"$WORK/stdout" 2>"$WORK/stderr" &
SIM_PID=$!

for _ in $(seq 1 100); do
    [[ -s "$WORK/ports.json" ]] && break
    kill -0 "$SIM_PID" 2>/dev/null || { cat "$WORK/stderr" >&2; exit 1; }
    sleep 0.1
done
[[ -s "$WORK/ports.json" ]] || { echo "bench_simulator: simulator did not start" >&2; exit 1; }
API_PORT="$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["api_port"])' \
    "$WORK/ports.json")"
BASE="http://127.0.0.1:$API_PORT/api/v1"

# the spec puts the new scan's id in the Location header only
SCAN_ID="$(curl -sS --fail -o /dev/null -D - -X POST "$BASE/scans" \
    -H "X-Auth: $TOKEN" -H 'Content-Type: application/json' -H 'Accept: application/json' \
    -d '{"user_authorized_to_scan": "yes",
         "target_id": "2df49409-ee21-4080-9640-eb46f4610054",
         "profile_id": "11111111-1111-1111-1111-111111111111",
         "schedule": {"disable": false, "time_sensitive": false}}' |
    sed -n 's|^[Ll]ocation: .*/scans/\([0-9a-f-]*\).*|\1|p')"
[[ -n "$SCAN_ID" ]] || { echo "bench_simulator: the launch returned no Location" >&2; exit 1; }

run() {
    local label="$1" url="$2" out="$WORK/wrk.out"
    "$WRK" -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" -H "X-Auth: $TOKEN" "$url" >"$out"
    if grep -q 'Non-2xx' "$out"; then
        cat "$out" >&2
        echo "bench_simulator: $label returned errors" >&2
        exit 1
    fi
    printf '%-28s %s requests/sec  (latency avg %s)\n' "$label" \
        "$(awk '/^Requests\/sec:/ {print $2}' "$out")" \
        "$(awk '/^    Latency/ {print $2}' "$out")"
}

echo "invicti_sim benchmark: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, keep-alive, $(nproc) CPUs"
run "GET /api/v1/scans/<id>" "$BASE/scans/$SCAN_ID"
run "GET /api/v1/scanning_profiles" "$BASE/scanning_profiles"
