#!/usr/bin/env bash
# valgrind.sh: run the TAP tests with every PostgreSQL server process under
# valgrind memcheck, then summarize what memcheck found, separating errors
# whose stack goes through invicti_scan.so from PostgreSQL's own.
#
# How: a private bin directory holds a `postgres` that execs valgrind on the
# real server, a copy of pg_ctl (it looks for postgres next to itself, after
# resolving symlinks, so it must be a real file there) and symlinks to the
# other programs (so initdb's bootstrap runs the real server, at full
# speed).  That directory goes first on PATH, where PostgreSQL::Test::Cluster
# finds pg_ctl.  Backends are forked, not exec'd, so every server process
# runs under memcheck and writes its own <pid>.log (text: valgrind does not
# split XML output at fork).  test/valgrind_report.py then reads them all.
#
# Exit status: 1 when an error is in invicti_scan's code (or libcurl called
# by it), or a definite leak was allocated by it, or (with --strict) any
# error has one of our frames anywhere in its stack, e.g. PostgreSQL writing
# WAL padding during the worker's commit, or test/valgrind.supp breaks its
# rule; see valgrind_report.py.  Else 3 when a TAP test failed; else 0.
# Under valgrind a query from the test harness takes seconds, so checks
# that need the harness to react within about a second can fail for timing
# alone (seen: 002's "readable last_error" after a single failed poll,
# 007's all-HOT count, 009's abort of a scan that finished meanwhile, 010's
# fixed 8 s LISTEN window, 019's refresh calls "in a second", which take
# 20 s there); exit status 3 then says only tests failed.
#
# It must never hide a finding of ours: test/valgrind.supp only holds
# PostgreSQL-internal false positives, each naming every frame down to main
# with patterns that cannot match invicti_scan.so or libcurl (the report
# checks this), so no entry can match a stack that passes through our
# code.  It must never change anything outside its staged copy of the tree
# (and the Debian packages lib.sh installs), nor leave a server running.
#
# Usage: test/valgrind.sh [--install|--build] [--keep] [--strict]
#                         [--no-origins] [--slowdown N] [TEST ...]
#   TEST            test files or their numbers (001 or test/t/001_*.pl);
#                   default: every test/t/*.pl
#   --install       build and install the extension first (root or sudo)
#   --build         build this tree into a private copy of PostgreSQL
#                   (test/private_install.sh) instead of using the installed
#                   extension
#   --keep          keep the staged tree (logs) even when all is well
#   --strict        fail on any error with one of our frames anywhere
#   --no-origins    no --track-origins (faster, less helpful reports)
#   --slowdown N    how much slower the servers run under valgrind: the
#                   tests' waits and the simulated scans are stretched that
#                   much (default 20: a query from the test harness takes
#                   about 100 times longer; see test/perl/InvictiTest.pm)
# Environment: PROVE_FLAGS (e.g. -v), VALGRIND_EXTRA (more valgrind options).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
. test/lib.sh

# ---- inner part: as the test user, inside the staged tree ----
if [ "${1:-}" = --inner ]; then
  pgbin=$2 origins=$3 scale=$4 strict=$5
  shift 5
  vg=$PWD/tmp_valgrind
  rm -rf "$vg" tmp_check
  mkdir -p "$vg/bin" "$vg/logs"

  real=$pgbin/postgres
  for f in "$pgbin"/*; do
    name=${f##*/}
    case $name in
      postgres) ;;
      pg_ctl) cp -p "$f" "$vg/bin/$name" ;;
      *) ln -s "$f" "$vg/bin/$name" ;;
    esac
  done
  # No --error-exitcode: a server process that exits with another code
  # than usual is a crash to the postmaster (an auxiliary process) and would
  # change what the tests see; findings are read from the logs instead.
  cat >"$vg/bin/postgres" <<EOF
#!/bin/sh
# postgres under valgrind memcheck (written by test/valgrind.sh)
for a in "\$@"; do
  case \$a in
    # version checks, initdb's bootstrap and single-user runs: no valgrind
    -V|--version|--boot|--single|-C|--describe-config) exec "$real" "\$@" ;;
  esac
done
exec valgrind --tool=memcheck --trace-children=no --vgdb=no \\
  --num-callers=64 --fullpath-after= --track-origins=$origins \\
  --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \\
  --suppressions="$PWD/test/valgrind.supp" --gen-suppressions=all \\
  --log-file="$vg/logs/%p.log" ${VALGRIND_EXTRA:-} "$real" "\$@"
EOF
  chmod +x "$vg/bin/postgres"

  tap_rc=0
  PATH="$vg/bin:$PATH" PGCTLTIMEOUT=900 PG_TEST_TIMEOUT_DEFAULT=900 \
    INVICTI_TEST_SLOWDOWN=$scale PROVE_TESTS="$*" \
    PROVE_FLAGS="${PROVE_FLAGS:-} --timer" bash test/run_suites.sh tap || tap_rc=$?

  report_rc=0
  /usr/bin/python3 test/valgrind_report.py $strict --supp test/valgrind.supp \
    --src src "$vg/logs" tmp_check/log >"$vg/report.txt" || report_rc=$?
  cat "$vg/report.txt"
  [ $report_rc -eq 0 ] || exit 1
  [ $tap_rc -eq 0 ] || { echo "valgrind: some TAP tests failed (see above)" >&2; exit 3; }
  exit 0
fi

# ---- outer part: packages, build, staging ----
install=no keep=no origins=yes scale=20 strict=
tests=()
while [ $# -gt 0 ]; do
  case $1 in
    --install) install=yes ;;
    --build) install=private ;;
    --keep) keep=yes ;;
    --no-origins) origins=no ;;
    --strict) strict=--strict ;;
    --slowdown) scale=$2; shift ;;
    -h|--help) show_usage "$0"; exit 0 ;;
    -*) die "unknown option: $1 (see --help)" ;;
    *)
      if [ -f "$1" ]; then tests+=("test/t/${1##*/}")
      else
        match=(test/t/"$1"*.pl)
        [ -f "${match[0]}" ] || die "no test file matches $1"
        tests+=("${match[@]}")
      fi ;;
  esac
  shift
done
[ ${#tests[@]} -gt 0 ] || tests=(test/t/*.pl)

# libc6-dbg names the C library's frames, which test/valgrind.supp relies on
ensure_packages $INVICTI_PACKAGES valgrind libc6-dbg
require_extension $install
stage_run $keep 'tmp_valgrind (report.txt, logs/) and tmp_check'
pgbin=$(private_bindir $install)
log "TAP tests under valgrind as $(test_user) in $tree: ${tests[*]}"
as_test_user env PATH="$pgbin:$PG_BINDIR:/usr/local/bin:/usr/bin:/bin" \
  PROVE_FLAGS="${PROVE_FLAGS:-}" VALGRIND_EXTRA="${VALGRIND_EXTRA:-}" \
  bash "$tree/test/valgrind.sh" --inner "$pgbin" "$origins" "$scale" "$strict" \
  "${tests[@]}"
