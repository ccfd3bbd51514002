#!/usr/bin/env bash
# run_suites.sh: runs the test suites against the installed extension.
#
# Called by run_all.sh as an unprivileged user from a staged copy of the
# tree; it writes only inside that copy.  Usage: run_suites.sh [all|regress|
# simulator|tap|chaos ...].  PROVE_TESTS may name single TAP files;
# INVICTI_TAP_JOBS (default 6) is how many run at once.  The tap suite ends
# with the contract check (test/contract/check_contract.py) of every
# exchange its simulators logged.
set -euo pipefail
cd "$(dirname "$0")/.."
suites="$*"
[ "$suites" = all ] && suites="regress simulator tap chaos"

for suite in $suites; do
  case $suite in
    regress)
      printf '\n=== pg_regress: SQL API (make installcheck)\n'
      if ! make -s installcheck; then
        cat regression.diffs 2>/dev/null || true
        exit 1
      fi ;;
    simulator)
      printf '\n=== simulator tests\n'
      /usr/bin/python3 -m unittest discover -s test/simulator -p 'test_*.py' ;;
    tap)
      printf '\n=== TAP: worker against the simulator (make prove_installcheck)\n'
      # every simulator logs its exchanges for the contract check below
      export INVICTI_CONTRACT_DIR="$PWD/tmp_contract"
      rm -rf "$INVICTI_CONTRACT_DIR" && mkdir -p "$INVICTI_CONTRACT_DIR"
      # the servers the tests start are the first on PATH (valgrind.sh and
      # private builds put theirs there), whatever pg_config says
      # The files run side by side (each has its own clusters and
      # simulators on ports of their own): they mostly wait, on the
      # simulator's clock and on the worker's.  --timer prints each one's time.
      make -s prove_installcheck bindir="$(dirname "$(command -v pg_ctl)")" \
        ${PROVE_TESTS:+PROVE_TESTS="$PROVE_TESTS"} \
        PROVE_FLAGS="${PROVE_FLAGS:--j${INVICTI_TAP_JOBS:-6} --timer}"
      # the whole suite is held to the vendor's spec (a benchmark or a single
      # file is not a full run of the scenarios)
      if [ -z "${PROVE_TESTS:-}" ]; then
        printf '\n=== contract: every request and answer of the TAP run against the vendor spec\n'
        /usr/bin/python3 test/contract/check_contract.py "$INVICTI_CONTRACT_DIR"
      fi ;;
    chaos)
      printf '\n=== chaos run (CI size)\n'
      test/chaos.sh --ci ;;
    *) echo "unknown suite: $suite" >&2; exit 2 ;;
  esac
done
