#!/usr/bin/env bash
# demo.sh: `make demo`, the README's first command: watch invicti_scan work.
#
# On a fresh Debian 12 machine, as root or as a user with sudo, it installs
# the Debian packages it needs, builds and installs the extension, then, as
# an unprivileged user and inside one temporary directory, starts the
# project's Invicti API simulator and a throwaway PostgreSQL cluster with the
# extension preloaded and pointed at it.  It launches a handful of scans with
# plain SQL, shows them progressing live until every one is finished, and
# prints how to connect and play.  Then it stops everything when you press
# Enter or Ctrl-C; with DEMO_KEEP=1 it leaves both running and prints how to
# stop them; when stdin is not a terminal (CI) it stops at once.
#
# It must never talk to anything but loopback (no real Invicti, no real
# token), touch an existing PostgreSQL cluster or any configuration outside
# its temporary directory, or leave a process or a file behind, unless
# DEMO_KEEP=1 asked it to after a successful run.
set -euo pipefail
cd "$(dirname "$0")/.."
. test/lib.sh

TIME_SCALE=2      # seconds per simulator time unit: scans take 20-36 s
TIMEOUT=180       # seconds the scans get to finish

# The demo targets: id, outcome and duration_scale for the simulator, the
# scanning profile to launch with, and what the viewer should expect.  The
# last one is not registered with the simulator.
TARGETS=(
  "a0000001-0000-4000-8000-000000000001 completed 1.0  11111111-1111-1111-1111-111111111111 completes (~24 s)"
  "a0000002-0000-4000-8000-000000000002 completed 1.5  11111111-1111-1111-1111-111111111112 completes, slower (~36 s)"
  "a0000003-0000-4000-8000-000000000003 failed    1.25 11111111-1111-1111-1111-111111111113 fails (~20 s)"
  "a0000004-0000-4000-8000-000000000004 aborted   1.25 11111111-1111-1111-1111-111111111116 is aborted (~22 s)"
  "a0000005-0000-4000-8000-000000000005 unknown   1.0  11111111-1111-1111-1111-111111111115 goes through status under_review, unknown to the client, then completes (~30 s)"
  "a0000006-0000-4000-8000-000000000006 -         -    11111111-1111-1111-1111-111111111117 target unknown to Invicti: ends in status error"
)
FINAL_STATUSES="'completed', 'failed', 'aborted', 'error'"

# The live view of invicti_scans.
SCAN_TABLE="
SELECT id,
       left(target_id::text, 8) AS target,
       status,
       '[' || rpad(repeat('#', progress / 5), 20, '.') || ']'
         || lpad(progress || '%', 5) AS progress,
       (severity_counts->>'critical')::int AS crit,
       (severity_counts->>'high')::int AS high,
       (severity_counts->>'medium')::int AS med,
       (severity_counts->>'low')::int AS low,
       left(scan_id::text, 8) AS scan_id,
       CASE WHEN length(last_error) > 50 THEN left(last_error, 47) || '...'
            ELSE last_error END AS last_error
FROM invicti_scans ORDER BY id"

dir=""        # the temporary directory: staged tree, cluster, logs, socket
sim_job=""    # the simulator's background job
keep=0        # set once the demo ran and DEMO_KEEP=1 asks to leave it up

# On any exit: show the logs if something failed (not when interrupted),
# then stop both servers and remove the directory, unless the demo is kept.
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$dir" ] && [ "$keep" = 0 ]; then
    case $rc in
      0|130|143) ;;
      *) tail_log "PostgreSQL's log" "$dir/postgres.log"
         tail_log "the simulator's log" "$dir/simulator.log" ;;
    esac
    log "stopping the cluster and the simulator, removing $dir"
    if [ -f "$dir/data/postmaster.pid" ]; then
      as_test_user pg_ctl -D "$dir/data" stop -m fast >/dev/null || true
    fi
    # $sim_job is only the shell around as_test_user: stop the simulator
    # itself, by the pid it wrote when it was ready.
    if [ -s "$dir/simulator.ports" ]; then
      kill "$(sim_port_file pid)" 2>/dev/null || true
      wait "$sim_job" 2>/dev/null || true
    fi
    rm -rf "$dir"
  fi
  exit "$rc"
}

tail_log() {
  [ -s "$2" ] || return 0
  printf '\n--- last lines of %s (%s)\n' "$1" "$2" >&2
  tail -n 25 "$2" >&2
}

# psql as the cluster's superuser (the test user), ignoring any psqlrc.
demo_psql() {
  as_test_user psql -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$pg_port" -d postgres "$@"
}

# A TCP port nobody listens on now: the cluster's socket is named after it,
# and it stays free should the user turn TCP on.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A field of the simulator's port file: api_port, control_port or pid.
sim_port_file() {
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' \
    "$dir/simulator.ports" "$1"
}

start_simulator() {
  api_token="demo-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
  log "starting the Invicti API simulator (1 time unit = $TIME_SCALE s)"
  as_test_user /usr/bin/python3 "$dir/test/simulator/invicti_sim.py" \
    --port 0 --control-port 0 --port-file "$dir/simulator.ports" \
    --token "$api_token" --time-scale "$TIME_SCALE" \
    </dev/null >"$dir/simulator.log" 2>&1 &
  sim_job=$!
  for _ in $(seq 100); do
    [ -s "$dir/simulator.ports" ] && break
    kill -0 "$sim_job" 2>/dev/null || die "the simulator exited at start"
    sleep 0.1
  done
  [ -s "$dir/simulator.ports" ] || die "the simulator did not start within 10 s"
  api_port=$(sim_port_file api_port)
  control_port=$(sim_port_file control_port)
}

# Register the demo targets (all but the last) with the simulator.
register_targets() {
  local t id outcome scale rest specs=""
  for t in "${TARGETS[@]}"; do
    read -r id outcome scale rest <<<"$t"
    [ "$outcome" = - ] && continue
    specs="$specs${specs:+, }{\"target_id\": \"$id\", \"outcome\": \"$outcome\", \"duration_scale\": $scale}"
  done
  log "registering the demo targets with the simulator"
  curl -sS --fail-with-body -X PUT "http://127.0.0.1:$control_port/_sim/targets" \
    -H 'Content-Type: application/json' -d "{\"targets\": [$specs]}" >/dev/null
}

start_cluster() {
  pg_port=$(free_port)
  log "starting a throwaway PostgreSQL $PG_MAJOR cluster (Unix socket $dir, port $pg_port)"
  as_test_user initdb -D "$dir/data" --auth=trust --encoding=UTF8 --no-locale --no-sync >/dev/null
  # Unix socket only: trust authentication on a TCP port would let every
  # local user in as superuser.
  as_test_user tee -a "$dir/data/postgresql.conf" >/dev/null <<EOF
listen_addresses = ''
port = $pg_port
unix_socket_directories = '$dir'
shared_preload_libraries = 'invicti_scan'
invicti_scan.base_url = 'http://127.0.0.1:$api_port'
invicti_scan.api_token = '$api_token'
invicti_scan.poll_interval = '1s'
invicti_scan.request_timeout = '3s'
invicti_scan.retry_max_delay = '2s'
EOF
  as_test_user pg_ctl -D "$dir/data" -l "$dir/postgres.log" -w start >/dev/null
}

NEW_TARGET="https://shop.demo.example"

# The configure step: a target added from SQL (the worker creates it through
# the API, at most once) while the worker syncs the targets and profiles.
configure_sql() {
  echo "CREATE EXTENSION invicti_scan;"
  echo "SELECT invicti_add_target('$NEW_TARGET', 'added from SQL by make demo', 30);"
}

configure() {
  local i state
  log "creating the extension and adding a target"
  configure_sql | demo_psql -t -A -a
  for i in $(seq 1 60); do
    state=$(demo_psql -tA -c "SELECT (SELECT status FROM invicti_target_requests WHERE address = '$NEW_TARGET')
                                     || '/' || (SELECT count(*) FROM invicti_sync_status WHERE succeeded_at IS NOT NULL)")
    case $state in
      created/3) break ;;
      failed/*) die "adding $NEW_TARGET failed: $(demo_psql -tA -c "SELECT last_error FROM invicti_target_requests")" ;;
    esac
    [ "$i" -lt 60 ] || die "the target was not created and the catalogs not synced within 30 s ($state)"
    sleep 0.5
  done
  demo_psql -P footer=off -c "SELECT id, address, status, target_id FROM invicti_target_requests"
  demo_psql -P footer=off -c "SELECT catalog, items, succeeded_at::time(0) FROM invicti_sync_status ORDER BY 1"
  demo_psql -P footer=off -c "SELECT left(target_id::text, 8) AS target, address, criticality FROM invicti_targets ORDER BY address"
}

# The SQL that launches one scan per target: the demo targets by profile id,
# the new one by profile name, straight from invicti_targets.
launch_sql() {
  local t id outcome scale profile expect
  for t in "${TARGETS[@]}"; do
    read -r id outcome scale profile expect <<<"$t"
    echo "SELECT invicti_launch_scan('$id', '$profile');  -- $expect"
  done
  echo "SELECT invicti_launch_scan(target_id, 'Full Scan') FROM invicti_targets"
  echo "  WHERE address = '$NEW_TARGET';  -- the target added from SQL, by profile name"
}

launch_scans() {
  log "launching the scans"
  launch_sql | demo_psql -t -A -a
}

# Show invicti_scans every second until every scan is in a final state.
watch_scans() {
  local start=$SECONDS elapsed state running statuses shown="" table
  while :; do
    elapsed=$((SECONDS - start))
    state=$(demo_psql -tA -c "SELECT count(*) FILTER (WHERE status NOT IN ($FINAL_STATUSES)),
                                     string_agg(id || ':' || status, ' ' ORDER BY id)
                              FROM invicti_scans")
    running=${state%%|*}
    statuses=${state#*|}
    if [ -t 1 ]; then
      # Clearing the screen would hide how the scans were launched: repeat it.
      table=$(demo_psql -P footer=off -P format=wrapped -P columns="$(tput cols 2>/dev/null || echo 0)" -c "$SCAN_TABLE")
      printf '\033[H\033[2J'
      printf 'invicti_scan demo, %s s: %s scan(s) still running (Ctrl-C stops the demo)\n\n' \
        "$elapsed" "$running"
      printf '%s\n\n%s\n' "$(launch_sql)" "$table"
    elif [ "$statuses" != "$shown" ]; then
      table=$(demo_psql -P footer=off -c "$SCAN_TABLE")
      printf '\n[%3d s] %s scan(s) still running\n%s\n' "$elapsed" "$running" "$table"
    fi
    shown=$statuses
    [ "$running" -eq 0 ] && return 0
    [ "$elapsed" -lt "$TIMEOUT" ] ||
      die "timed out after $TIMEOUT s: $running scan(s) did not reach a final state ($FINAL_STATUSES)"
    sleep 1
  done
}

# The last step: a report of the new target's scan, generated by the API,
# stored in invicti_reports and written to a file.
fetch_report() {
  local i state
  log "requesting a report of the new target's scan"
  demo_psql -t -A -a -c "SELECT invicti_request_report(ARRAY(SELECT s.id FROM invicti_scans s
    JOIN invicti_targets t USING (target_id) WHERE t.address = '$NEW_TARGET'), 'Developer')"
  for i in $(seq 1 60); do
    state=$(demo_psql -tA -c "SELECT status FROM invicti_reports ORDER BY id DESC LIMIT 1")
    case $state in
      ready) break ;;
      failed) die "the report failed: $(demo_psql -tA -c "SELECT last_error FROM invicti_reports ORDER BY id DESC LIMIT 1")" ;;
    esac
    [ "$i" -lt 60 ] || die "the report was not ready within 30 s ($state)"
    sleep 0.5
  done
  demo_psql -P footer=off -c "SELECT id, template_name, format, status, api_status, size, content_type FROM invicti_reports"
  demo_psql -XAtq -c "SELECT encode(invicti_report_content(max(id)), 'base64') FROM invicti_reports" |
    base64 -d > "$dir/report.pdf"
  printf 'The report, fetched with invicti_report_content(): %s (%s bytes, %s)\n' \
    "$dir/report.pdf" "$(stat -c %s "$dir/report.pdf")" "$(head -c 8 "$dir/report.pdf")"
}

print_playground() {
  local control="http://127.0.0.1:$control_port/_sim"
  cat <<EOF

=== every scan is finished: connect and play
Connect (the cluster listens on its Unix socket only):
  psql -h $dir -p $pg_port -U $(test_user) postgres

Try:
  SELECT invicti_launch_scan('a0000002-0000-4000-8000-000000000002', '11111111-1111-1111-1111-111111111111');
  SELECT id, status, progress_bar FROM invicti_running_scans;   -- then \\watch 1
  SELECT invicti_abort_scan(7);                                -- the id launch returned
  SELECT * FROM invicti_latest_scans;
  SELECT severity_name, vt_name, findings FROM invicti_findings_summary;
  SELECT id, invicti_scan_passed(id) FROM invicti_scans WHERE status = 'completed';
  SELECT requests, requests_by_kind FROM invicti_scan_stats;
  SELECT invicti_add_target('https://blog.demo.example', 'my blog', 10);
  SELECT invicti_sync();                                        -- then see invicti_sync_status
  SELECT invicti_request_report(ARRAY[1, 2], 'Executive Summary', 'html');
  SELECT target_id, address, last_scan_session_status FROM invicti_targets;
  LISTEN invicti_scan;                                          -- status changes as they happen

The simulator's control API is at $control/ (docs: test/simulator/invicti_sim.py).
Make the next launch answer HTTP 429 (rate limited), then launch a scan and
watch its last_error and the server log ($dir/postgres.log):
  curl -X POST $control/faults -H 'Content-Type: application/json' \\
    -d '{"rules": [{"match": {"method": "POST"}, "fault": "status", "status": 429, "retry_after": 5, "count": 1}]}'
Clear the faults:             curl -X DELETE $control/faults
Take the API down for 20 s:   curl -X POST $control/outage -d '{"seconds": 20}'
The simulator's own view:     curl $control/scans
EOF
}

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ensure_packages $INVICTI_PACKAGES
build_and_install

# Everything the test user needs lives in one directory it owns (the
# checkout may not be readable by it); working there also spares
# PostgreSQL's tools an unreadable current directory.
dir=$(stage_tree "$PWD")
cd "$dir"
start_simulator
register_targets
start_cluster
configure
launch_scans
watch_scans
fetch_report
print_playground

if [ "${DEMO_KEEP:-0}" = 1 ]; then
  keep=1
  as=""
  [ "$(id -u)" -eq 0 ] && as="runuser -u $(test_user) -- "
  printf '\nDEMO_KEEP=1: the cluster and the simulator keep running. Stop them with:\n'
  printf '  %s%s/pg_ctl -D %s/data stop; kill %s; rm -rf %s\n' \
    "$as" "$PG_BINDIR" "$dir" "$(sim_port_file pid)" "$dir"
elif [ -t 0 ]; then
  printf '\nPress Enter (or Ctrl-C) to stop the cluster and the simulator and remove %s.\n' "$dir"
  read -r
else
  printf '\nstdin is not a terminal: stopping now (DEMO_KEEP=1 keeps the demo running).\n'
fi
