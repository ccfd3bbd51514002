#!/usr/bin/env bash
# pg_build.sh: build a PostgreSQL release from Debian's source archive into
# a cache outside the clone, and print its bin directory.
#
# Usage: test/pg_build.sh MAJOR   (e.g. 18)
#
# Debian 12 ships binaries of PostgreSQL 15 only; other releases are built
# here from the source package of Debian's newest suite that has them
# (postgresql-MAJOR: sid for 18, bookworm for 15, which the pg_upgrade
# test starts from), fetched with a private apt source list (apt's
# Dir::Etc::SourceList, Dir::State::Lists and Dir::Cache options: the
# system's apt configuration is not touched).  The build goes to
# $INVICTI_PG_CACHE (default ~/.cache/invicti_scan, /var/cache/invicti_scan
# for root), one directory per
# release, and is reused when present (a stamp file marks a finished
# build).  It needs bison and flex (the tarballs no longer carry the
# generated parsers), which the script installs.  Root's cache is
# /var/cache/invicti_scan: the unprivileged user the tests run as must be
# able to read it.
#
# Progress goes to stderr; stdout is the bin directory, nothing else.
# It must never write inside the clone, nor outside the cache and the
# packages it installs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

[ "${1:-}" = -h ] || [ "${1:-}" = --help ] && { show_usage "$0"; exit 0; }
major=${1:?usage: pg_build.sh MAJOR}
if [ "$(id -u)" -eq 0 ]; then
  cache=${INVICTI_PG_CACHE:-/var/cache/invicti_scan}
else
  cache=${INVICTI_PG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/invicti_scan}
fi
prefix=$cache/postgresql-$major
stamp=$prefix/.built

if [ -f "$stamp" ]; then
  log "PostgreSQL $major: using the build in $prefix ($(cat "$stamp"))"
  echo "$prefix/bin"
  exit 0
fi

ensure_packages $INVICTI_BUILD_PACKAGES libipc-run-perl >&2
work=$cache/src-$major
rm -rf "$work" "$prefix"
mkdir -p "$work/lists/partial" "$work/archives/partial"

# Debian's source archive: sid has the newest releases, bookworm still 15.
suite=sid
[ "$major" = 15 ] && suite=bookworm
cat >"$work/sources.list" <<EOF
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main
EOF
apt_opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work" -o "APT::Sandbox::User=root")
start=$(date +%s)
log "PostgreSQL $major: fetching Debian's source package postgresql-$major"
apt-get "${apt_opts[@]}" update >&2
(cd "$work" && apt-get "${apt_opts[@]}" source --download-only "postgresql-$major" >&2)
tarball=$(ls "$work"/postgresql-"$major"_*.orig.tar.* | head -1)
[ -f "$tarball" ] || die "no source tarball of postgresql-$major was fetched"
tar -C "$work" -xf "$tarball"
srcdir=$(ls -d "$work"/postgresql-"$major".*/ | head -1)
version=$(basename "$srcdir")

log "PostgreSQL $major: building $version into $prefix"
cd "$srcdir"
# PostgreSQL's build must be a top-level make: src/Makefile.global makes
# its generated headers (utils/errcodes.h, ...) only when MAKELEVEL is 0,
# and a parent make (`make test`) exports MAKELEVEL, MAKEFLAGS and MFLAGS.
unset MAKELEVEL MAKEFLAGS MFLAGS MAKEOVERRIDES
./configure --prefix="$prefix" --without-icu --without-readline --enable-tap-tests \
  --enable-debug >"$work/configure.log" 2>&1 || { tail -30 "$work/configure.log" >&2; exit 1; }
make -s -j3 >"$work/make.log" 2>&1 || { tail -40 "$work/make.log" >&2; exit 1; }
make -s install >"$work/install.log" 2>&1 || { tail -30 "$work/install.log" >&2; exit 1; }
# contrib modules the suites use (pg_stat_statements for the benchmarks)
make -s -C contrib/pg_stat_statements install >>"$work/install.log" 2>&1
# pgindent's indent, for `make pgindent`
make -s -C src/tools/pg_bsd_indent install >>"$work/install.log" 2>&1 || true
mkdir -p "$prefix/share/pgindent"
cp -p src/tools/pgindent/pgindent src/tools/pgindent/typedefs.list "$prefix/share/pgindent/"
# what the suites and PGXS need of it, checked before the stamp says "built"
for f in bin/postgres bin/pg_config bin/initdb bin/pg_upgrade include/server/utils/errcodes.h \
  lib/pgxs/src/makefiles/pgxs.mk lib/pgxs/src/test/perl/PostgreSQL/Test/Cluster.pm; do
  [ -e "$prefix/$f" ] || die "the build of $version has no $f"
done
"$prefix/bin/pg_config" --version | grep -q "^PostgreSQL $major\." ||
  die "the build's pg_config is not PostgreSQL $major's"
echo "$version, built $(date -u +%Y-%m-%dT%H:%MZ) in $(( $(date +%s) - start )) s" >"$stamp"
# the sources are not needed any more; the build is
rm -rf "$srcdir"
log "PostgreSQL $major: $(cat "$stamp")"
echo "$prefix/bin"
