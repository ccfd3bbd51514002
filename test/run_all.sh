#!/usr/bin/env bash
# run_all.sh: the project's one test command (`make test`).
#
# On a fresh Debian 12 machine it installs the Debian packages it needs,
# and for each PostgreSQL release (PG, default "15 18"; `make test PG=18`
# runs one) it builds the release if Debian has no package of it
# (test/pg_build.sh, into a cache outside the clone, reused), builds the
# extension with -Wall -Wextra -Werror, installs it, then runs every suite
# as an unprivileged user: pg_regress (SQL API), the simulator's own tests
# (once), the TAP tests with the contract check, and the chaos run at CI
# size; with 18, pgindent --check; with 15, the Debian package is built,
# installed and regression-tested (test/deb_check.sh); the PGXN archive
# of `make dist` is checked and built (test/dist_check.sh).  It prints how long
# each part took.  Exits non-zero on the first
# failing suite.
set -euo pipefail
cd "$(dirname "$0")/.."
. test/lib.sh
[ "${1:-}" = -h ] || [ "${1:-}" = --help ] && { show_usage "$0"; exit 0; }

releases=${PG:-15 18}
timings=()
timed() {
  local what=$1 start=$SECONDS
  shift
  "$@"
  timings+=("$(printf '%5d s  %s' $((SECONDS - start)) "$what")")
}
report() {
  log "timings"
  printf '%s\n' "${timings[@]}" >&2
  printf '%5d s  in all\n' "$SECONDS" >&2
}
trap report EXIT

timed "Debian packages" ensure_packages $INVICTI_PACKAGES $INVICTI_TEST_PACKAGES

# The release test/t/017_pg_upgrade.pl upgrades from, with the extension
# installed.  Not Debian's 15.20: it keeps an option of its own
# (pg_attver) on every column, which 18's pg_restore refuses, so
# pg_upgrade from it to 18.6 fails for any database with a table, with or
# without invicti_scan.  15 built from Debian 12's source package is
# PostgreSQL's own 15.
upgrade_source() {
  use_release 15 source
  build_and_install
  upgrade_from=$PG_BINDIR
}

# The PGXN archive: META.json valid, the control file's version, it builds.
timed "PGXN archive (make dist)" bash test/dist_check.sh

# The Debian package (debian/), for the releases Debian installs (15):
# built, installed, and the regression suite run against it.
case " $releases " in
  *" 15 "*) timed "Debian package: build, install, installcheck" bash test/deb_check.sh ;;
esac

first=yes
for release in $releases; do
  upgrade_from=""
  if [ "$release" != 15 ]; then
    timed "PostgreSQL 15 from source, to pg_upgrade from" upgrade_source
  fi
  timed "PostgreSQL $release: server (Debian's, or built from Debian's source)" use_release "$release"
  timed "PostgreSQL $release: build and install the extension" build_and_install
  tree=$(stage_tree "$PWD")
  suites="regress tap chaos"
  [ $first = yes ] && suites="regress simulator tap chaos"
  log "PostgreSQL $release: running $suites as $(test_user) in $tree"
  timed "PostgreSQL $release: suites ($suites)" \
    as_test_user env INVICTI_UPGRADE_FROM="$upgrade_from" bash "$tree/test/run_suites.sh" $suites
  rm -rf "$tree"
  first=no
done
# PostgreSQL's layout, checked with the pgindent of the 18 build
case " $releases " in
  *" 18 "*) timed "pgindent --check" bash test/pgindent.sh --check ;;
esac
log "all suites passed on PostgreSQL $releases"
