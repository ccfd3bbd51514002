#!/usr/bin/env bash
# chaos.sh: the chaos run of the invicti_scan worker.
#
# 1,000 scans (--ci: 200) go through the Invicti API simulator in waves
# while every fault is on at once (latency, 429s, 5xx, garbage, drops), the
# worker is SIGKILLed every few seconds, the server is restarted twice in
# immediate mode and the API is down for 60 s (--ci: 15 s).  Then it checks
# that every scan is in its right final state, none was launched twice (from
# the simulator's log), none was lost, nothing crashed but what the test
# killed, and the token never reached a log; and prints the figures.  The
# work is done by test/chaos.pl, run by prove through run_suites.sh's TAP
# setup; it exits non-zero when any check fails.  Full size takes about
# 5 minutes, --ci under 2 (on 2 CPUs); run_suites.sh runs the --ci size.
#
# It uses the installed extension (`make test` or `make install` puts it
# there; --install builds and installs it first).  As root it runs the
# servers as the test user from a staged copy of the tree (kept when the
# run fails or with --keep); as a normal user it runs in this tree and
# writes only under its tmp_check/ (and the socket directory PostgreSQL's
# TAP modules make under $TMPDIR).  It must never talk to anything but
# loopback, never kill a process but the worker of the node it started,
# never change anything outside its tree (or staged copy) and the packages
# lib.sh installs, and never leave a server running.
#
# Usage: test/chaos.sh [--ci] [--scans N] [--outage SECONDS] [--restarts N]
#                      [--waves N] [--duration SECONDS] [--kill-every MIN-MAX]
#                      [--time-scale S] [--seed N] [--install] [--keep]
#   --ci             CI size: 200 scans, 15 s outage, shorter chaos
#   --scans N        scans, one target each (default 1000)
#   --outage S       seconds the API is down in the middle (default 60)
#   --restarts N     immediate-mode restarts (default 2)
#   --waves N        launch waves during the chaos (default 8, --ci 5)
#   --duration S     seconds of chaos before the faults stop (default 240, --ci 80)
#   --kill-every A-B each worker is SIGKILLed A to B seconds after it is first
#                    seen running (default 4-8)
#   --time-scale S   seconds per unit of the simulated scan timeline (a scan
#                    completes after 12 units; default 1.5, --ci 0.75)
#   --seed N         seeds the targets, the simulator and its faults
#   --install        (as root) build and install the extension first
#   --keep           (as root) keep the staged tree, logs and data
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
. test/lib.sh

install=no keep=no
chaos_env=()
while [ $# -gt 0 ]; do
  case $1 in
    --ci) chaos_env+=("CHAOS_CI=1") ;;
    --scans) chaos_env+=("CHAOS_SCANS=$2"); shift ;;
    --outage) chaos_env+=("CHAOS_OUTAGE=$2"); shift ;;
    --restarts) chaos_env+=("CHAOS_RESTARTS=$2"); shift ;;
    --waves) chaos_env+=("CHAOS_WAVES=$2"); shift ;;
    --duration) chaos_env+=("CHAOS_DURATION=$2"); shift ;;
    --kill-every)
      [[ $2 =~ ^([0-9]+)-([0-9]+)$ ]] && [ "${BASH_REMATCH[1]}" -ge 1 ] &&
        [ "${BASH_REMATCH[2]}" -gt "${BASH_REMATCH[1]}" ] ||
        die "--kill-every wants MIN-MAX seconds, e.g. 4-8"
      chaos_env+=("CHAOS_KILL_MIN=${BASH_REMATCH[1]}" "CHAOS_KILL_MAX=${BASH_REMATCH[2]}")
      shift ;;
    --time-scale) chaos_env+=("CHAOS_TIME_SCALE=$2"); shift ;;
    --seed) chaos_env+=("CHAOS_SEED=$2"); shift ;;
    --install) install=yes ;;
    --keep) keep=yes ;;
    -h|--help) show_usage "$0"; exit 0 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
  shift
done

[ "$(id -u)" -eq 0 ] && ensure_packages $INVICTI_PACKAGES
require_extension $install

run() {
  as_test_user env "${chaos_env[@]}" PROVE_TESTS=test/chaos.pl PROVE_FLAGS=-v \
    bash "$1/test/run_suites.sh" tap
}

if [ "$(id -u)" -ne 0 ]; then
  run "$PWD"
  exit
fi

stage_run $keep tmp_check
log "chaos run as $(test_user) in $tree"
run "$tree"
