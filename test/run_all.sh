#!/usr/bin/env bash
# run_all.sh: the project's one test command (`make test`).
#
# On a fresh Debian 12 machine it installs the Debian packages it needs,
# builds with -Wall -Wextra -Werror, installs the extension, then runs every
# suite as an unprivileged user: pg_regress (SQL API), the simulator's own
# tests, the TAP tests (worker against the simulator) and the chaos run at
# CI size.  Exits non-zero on the first failing suite.
set -euo pipefail
cd "$(dirname "$0")/.."
. test/lib.sh

ensure_packages $INVICTI_PACKAGES
build_and_install

tree=$(stage_tree "$PWD")
trap 'rm -rf "$tree"' EXIT
log "running suites as $(test_user) in $tree"
as_test_user bash "$tree/test/run_suites.sh" "${@:-all}"
log "all suites passed"
