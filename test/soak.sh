#!/usr/bin/env bash
# soak.sh: memory soak benchmark of the invicti_scan worker.
#
# Sends 100,000 API requests through one worker: polls of 1000 parked scans,
# a few per cent of them answered with 5xx, garbage, cut-off bodies, dropped
# connections or timeouts, plus a few short scans launched every few seconds
# (some launches fail or get no answer, so retries, reconciliation and the
# findings import run too).  Prints the worker's memory (RssAnon and VmRSS
# from /proc/<pid>/status) after 1,000 and after 100,000 requests, and exits
# non-zero when its private memory (RssAnon) grew by 2 MB or more.  The work
# is done by test/soak.pl, run by prove through run_suites.sh's TAP setup.
#
# It is a benchmark, not part of `make test`: it takes a few minutes and
# needs a machine that is not saturated.  It uses the installed extension
# (`make test` or `make install` puts it there).  It runs as root (the
# servers then run as postgres from a staged copy of the tree) or as a
# normal user.  It must never talk to anything but loopback, never change
# anything outside the staged copy and the packages lib.sh installs, and
# never leave a server running.
#
# Usage: test/soak.sh [--install|--build] [--keep] [--requests N]
#                     [--scans N] [--limit-kb N] [--concurrency N]
#   --install       build and install the extension first (root or sudo)
#   --build         build this tree into a private copy of PostgreSQL
#                   (test/private_install.sh: no root needed, and other
#                   runs on the machine keep the installed version)
#   --keep          keep the staged tree (logs, data directories) afterwards
#   --requests N    take the second sample after N requests (default 100000;
#                   the first is after 1000, both counted after warm-up)
#   --scans N       parked scans, each polled once a second (default 1000)
#   --limit-kb N    largest acceptable RssAnon growth (default 2048)
#   --concurrency N invicti_scan.max_concurrent_requests (default 64)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
. test/lib.sh

install=no keep=no
soak_env=()
while [ $# -gt 0 ]; do
  case $1 in
    --install) install=yes ;;
    --build) install=private ;;
    --keep) keep=yes ;;
    --requests) soak_env+=("SOAK_REQUESTS=$2"); shift ;;
    --scans) soak_env+=("SOAK_SCANS=$2"); shift ;;
    --limit-kb) soak_env+=("SOAK_LIMIT_KB=$2"); shift ;;
    --concurrency) soak_env+=("SOAK_CONCURRENCY=$2"); shift ;;
    -h|--help) show_usage "$0"; exit 0 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
  shift
done

ensure_packages $INVICTI_PACKAGES
require_extension $install
stage_run $keep tmp_check
pgbin=$(private_bindir $install)
log "soak as $(test_user) in $tree"
as_test_user env PATH="$pgbin:$PG_BINDIR:/usr/local/bin:/usr/bin:/bin" \
  "${soak_env[@]}" PROVE_TESTS=test/soak.pl PROVE_FLAGS=-v PG_TEST_NOCLEAN=1 \
  bash "$tree/test/run_suites.sh" tap
