#!/bin/sh
# ci_gate.sh: a build pipeline's security gate, the README's recipe: launch
# a scan, wait until invicti_scan has finished with it, and pass or fail on
# its severity counts, in one psql session.
#
# Each statement runs in its own transaction (psql's autocommit), so the
# launch commits before the wait begins; the wait sleeps until the worker's
# last write (no polling from here).  test/t/021_wait.pl runs this file.
# It must never decide "passed" on anything but invicti_scan_passed()'s
# true: a timeout, a failed or aborted scan, unknown counts, or any error
# fail the gate.
#
# Usage: ci_gate.sh TARGET_ID PROFILE_ID [FAIL_ON [TIMEOUT]]
#   FAIL_ON  lowest severity that fails the build (default high)
#   TIMEOUT  how long to wait at most, as a PostgreSQL interval (default
#            '2 hours'; at most a day)
# Connection: libpq's variables (PGHOST, PGPORT, PGDATABASE, PGUSER, ...);
# INVICTI_SCHEMA names the extension's schema (default invicti).  The role
# needs EXECUTE on invicti_launch_scan(uuid, uuid), invicti_wait_scan and
# invicti_scan_passed.
# Exit status: 0 passed, 1 did not pass (findings at FAIL_ON or above, or
# counts that cannot be read), 2 no verdict (the
# scan did not complete in time or at all, or something failed).
set -eu
[ $# -ge 2 ] || { sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

passed=$(psql -X -q -t -A -v ON_ERROR_STOP=1 \
  -v target="$1" -v profile="$2" -v fail_on="${3:-high}" \
  -v timeout="${4:-2 hours}" -v schema="${INVICTI_SCHEMA:-invicti}" <<'SQL'
SELECT :"schema".invicti_launch_scan(:'target', :'profile') AS id \gset
\warn scan :id queued
SELECT :"schema".invicti_wait_scan(:id, :'timeout') AS status \gset
\warn scan :id: :status
SELECT :"schema".invicti_scan_passed(:id, :'fail_on');
SQL
) || exit 2
[ "$passed" = t ] && exit 0
exit 1
