#!/usr/bin/env bash
# run_all.sh: the project's one test command (`make test`).
#
# On a fresh Debian 12 machine it installs the Debian packages it needs,
# and for each PostgreSQL release (PG, default "15 18"; `make test PG=18`
# runs one) it uses Debian's server or builds the release from Debian's
# source package (test/pg_build.sh), builds the extension with -Wall
# -Wextra -Werror, installs it, then runs every suite as an unprivileged
# user: pg_regress (SQL API), the simulator's own tests (once), the TAP
# tests (in parallel) with the contract check, and the chaos run at CI
# size; with 18, pgindent --check; with 15, the Debian package is built,
# installed and regression-tested (test/deb_check.sh); the PGXN archive of
# `make dist` is checked and built (test/dist_check.sh).  It prints how
# long each part took, and exits non-zero on the first failing suite.
#
# PostgreSQL builds go to a new, empty cache directory for every run, so
# that each run proves the whole install path of a fresh machine, under
# make as CI runs it (a cache left by an earlier run once hid a build that
# failed under make).  INVICTI_PG_CACHE=DIR names a cache to keep and reuse
# instead (faster; the path is then not proven).  The builds run in the
# background at the lowest CPU and I/O priority while the first release's
# suites run, which mostly wait on the network and on timers.
#
# It must never write inside the clone (suites run in staged copies), nor
# outside the packages it installs, the cache and its temporary directories.
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
fresh_cache=""
builds_pid=""
finish() {
  local rc=$?
  [ -n "$builds_pid" ] && kill -- -"$builds_pid" 2>/dev/null && wait "$builds_pid" 2>/dev/null
  [ -n "$fresh_cache" ] && rm -rf "$fresh_cache"
  log "timings"
  printf '%s\n' "${timings[@]}" >&2
  printf '%5d s  in all\n' "$SECONDS" >&2
  exit $rc
}
trap finish EXIT

timed "Debian packages" ensure_packages $INVICTI_PACKAGES $INVICTI_TEST_PACKAGES

if [ -z "${INVICTI_PG_CACHE:-}" ]; then
  fresh_cache=$(mktemp -d /var/tmp/invicti_pg.XXXXXX)
  chmod 755 "$fresh_cache"    # the test user runs the servers built there
  export INVICTI_PG_CACHE=$fresh_cache
  log "PostgreSQL builds go to the new, empty cache $fresh_cache (INVICTI_PG_CACHE=DIR reuses one)"
fi
export INVICTI_PG_CACHE

# The releases to build from source, in the order they are needed: 15 for
# test/t/017_pg_upgrade.pl when another release is tested (not Debian's
# 15.20: it keeps an option of its own, pg_attver, on every column, which
# 18's pg_restore refuses, so pg_upgrade from it to 18.6 fails for any
# database with a table, with or without invicti_scan; 15 built from
# Debian 12's source package is PostgreSQL's own 15), then each release
# Debian has no package of.
to_build=""
for release in $releases; do
  [ "$release" != 15 ] && to_build="$to_build 15"
done
to_build=$(echo "$to_build" | awk '{print $1}')
for release in $releases; do
  [ -x "/usr/lib/postgresql/$release/bin/pg_config" ] || to_build="$to_build $release"
done
builds_log=$(mktemp /var/tmp/invicti_pg_builds.XXXXXX.log)
builds_start=$SECONDS
if [ -n "${to_build// /}" ]; then
  log "building PostgreSQL ${to_build# } from Debian's source in the background (log: $builds_log)"
  idle=(nice -n 19)
  ionice -c 3 true 2>/dev/null && idle+=(ionice -c 3)
  set -m    # its own process group, so that it can be stopped as a whole
  (for major in $to_build; do
     "${idle[@]}" bash test/pg_build.sh "$major" >/dev/null || exit 1
   done) >"$builds_log" 2>&1 &
  builds_pid=$!
  set +m
fi
wait_for_builds() {
  [ -n "$builds_pid" ] || return 0
  log "waiting for the PostgreSQL builds"
  if ! wait "$builds_pid"; then
    builds_pid=""
    tail -40 "$builds_log" >&2
    die "building PostgreSQL from source failed (log: $builds_log)"
  fi
  builds_pid=""
  grep -h 'PostgreSQL [0-9]*: postgresql-' "$builds_log" >&2 || true
  timings+=("$(printf '%5d s  %s' $((SECONDS - builds_start)) \
    "PostgreSQL ${to_build# } from source (background, until waited for)")")
  rm -f "$builds_log"
}

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
    timed "waiting for the PostgreSQL builds" wait_for_builds
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
wait_for_builds
# PostgreSQL's layout, checked with the pgindent of the 18 build
case " $releases " in
  *" 18 "*) timed "pgindent --check" bash test/pgindent.sh --check ;;
esac
log "all suites passed on PostgreSQL $releases"
