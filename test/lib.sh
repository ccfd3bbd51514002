# lib.sh: shell helpers shared by the test, demo and benchmark scripts.
#
# Sourced, never run.  It installs missing Debian packages (as root, or
# through sudo for a normal user) and runs commands as an unprivileged user,
# because PostgreSQL refuses to run as root.  It must never change anything
# outside the packages it installs and the temporary directories it creates.

# The release Debian 12 ships (its packages: server, headers, pg_cron).
# Others are built from Debian's source archive (test/pg_build.sh); a
# script switches with use_release.
PG_MAJOR=15
PG_BINDIR=/usr/lib/postgresql/$PG_MAJOR/bin

# Debian packages every script here may need.
INVICTI_PACKAGES="postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR
  libcurl4-openssl-dev postgresql-$PG_MAJOR-cron libipc-run-perl
  python3 python3-yaml python3-jsonschema make gcc openssl curl procps"
# And those only `make test` needs: the packaging check (debian/), the
# monitoring test's exporter and promtool (test/t/018_prometheus.pl), and
# what building PostgreSQL from source needs (test/pg_build.sh), installed
# up front because those builds run in the background while other suites
# run, and two apt-gets at once would fight over dpkg's lock.
INVICTI_BUILD_PACKAGES="bison flex zlib1g-dev make gcc dpkg-dev xz-utils bzip2"
INVICTI_TEST_PACKAGES="postgresql-server-dev-all debhelper dpkg-dev
  prometheus-postgres-exporter prometheus $INVICTI_BUILD_PACKAGES"

log() { printf '\n=== %s\n' "$*" >&2; }

# A script's --help: its header comment, from line 2 to `set -e`.
show_usage() { sed -n '2,/^set -e/p' "$1" | sed '$d; s/^# \{0,1\}//'; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Run a command as root: directly when we are root, else through sudo.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Install whatever of the given packages is missing.
ensure_packages() {
  local missing="" p
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      missing="$missing $p"
    fi
  done
  [ -z "$missing" ] && return 0
  log "installing Debian packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  if ! as_root apt-get install -y --no-install-recommends $missing; then
    as_root apt-get update
    as_root apt-get install -y --no-install-recommends $missing
  fi
}

# Use PostgreSQL release $1 from now on (PG_MAJOR, PG_BINDIR): Debian's
# package for 15, a build in the cache for the others (made if missing),
# and for 15 too when $2 is "source".
use_release() {
  PG_MAJOR=$1
  PG_RELEASE_CHOSEN=1
  if [ "${2:-}" != source ] && [ -x "/usr/lib/postgresql/$1/bin/pg_config" ]; then
    PG_BINDIR=/usr/lib/postgresql/$1/bin
  else
    PG_BINDIR=$(bash "$(dirname "${BASH_SOURCE[0]}")/pg_build.sh" "$1")
  fi
}

# Build with the warning flags CI asks for, and install, for PG_BINDIR's release.
build_and_install() {
  local flags="${INVICTI_COPT:--Wall -Wextra -Werror}"
  log "building for PostgreSQL $PG_MAJOR with COPT='$flags'"
  make clean PG_CONFIG="$PG_BINDIR/pg_config" >/dev/null
  make -j2 PG_CONFIG="$PG_BINDIR/pg_config" COPT="$flags"
  log "installing the extension into $("$PG_BINDIR/pg_config" --pkglibdir)"
  as_root make install PG_CONFIG="$PG_BINDIR/pg_config" >/dev/null
}

# The unprivileged user tests run as: ourselves, or 'postgres' when root.
test_user() {
  if [ "$(id -u)" -eq 0 ]; then echo postgres; else id -un; fi
}

# Copy the source tree to a fresh directory the test user owns, print it.
stage_tree() {
  local src="$1" dest
  dest=$(mktemp -d "${TMPDIR:-/tmp}/invicti_scan.XXXXXX")
  tar -C "$src" --exclude=.git --exclude='tmp_*' --exclude=results -cf - . | tar -C "$dest" -xf -
  if [ "$(id -u)" -eq 0 ]; then chown -R "$(test_user)" "$dest"; fi
  echo "$dest"
}

# Scripts that run against the installed extension: $1 = yes builds and
# installs it first, private leaves it to private_bindir, no checks that it
# is installed.
require_extension() {
  case $1 in
    yes) build_and_install ;;
    no)
      [ -f "$(pg_config --pkglibdir)/invicti_scan.so" ] &&
        [ -f "$(pg_config --sharedir)/extension/invicti_scan.control" ] ||
        die "invicti_scan is not installed: run 'make test' first, or pass --install" ;;
  esac
}

# Stage the tree into the global $tree for one run; on exit remove it,
# unless the run failed or $1 = yes, and then say where $2 (under $tree)
# was kept.
stage_run() {
  _run_keep=$1 _run_kept=$2
  tree=$(stage_tree "$PWD")
  trap _end_run EXIT
}
_end_run() {
  local rc=$?
  if [ "$_run_keep" = yes ] || [ $rc -ne 0 ]; then
    echo "kept for a look: $tree/$_run_kept" >&2
  else
    rm -rf "$tree"
  fi
}

# The bin directory to run PostgreSQL from: the system's, or with $1 =
# private, a private build of $tree (test/private_install.sh).
private_bindir() {
  if [ "$1" = private ]; then
    log "building $tree into a private PostgreSQL"
    as_test_user bash "$tree/test/private_install.sh" "$tree/tmp_install"
  else
    echo "$PG_BINDIR"
  fi
}

# Run a command as the test user with PostgreSQL's binaries first on PATH:
# the release use_release chose, else those already first on PATH, else
# Debian's 15.
as_test_user() {
  local path="$PG_BINDIR:/usr/local/bin:/usr/bin:/bin"
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "$(test_user)" -- env PATH="$path" HOME=/tmp LANG=C.UTF-8 "$@"
  elif [ -n "${PG_RELEASE_CHOSEN:-}" ] || ! command -v pg_ctl >/dev/null; then
    env PATH="$path:$PATH" "$@"
  else
    # already the test user, run by a script that put the servers it
    # chose first on PATH (run_suites.sh for another release): keep them
    "$@"
  fi
}
