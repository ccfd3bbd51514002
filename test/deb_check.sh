#!/usr/bin/env bash
# deb_check.sh: build the Debian packages from debian/ (pg_buildext, one
# postgresql-NN-invicti-scan per installed PostgreSQL release), install
# them, and run the regression suite against the packaged files, as
# Debian's autopkgtest does (debian/tests/installcheck: pg_buildext
# installcheck).  The package file's name must be the one README.md gives.
#
# Usage: test/deb_check.sh [--keep]
#
# The packages are built from a copy of the tree, in a temporary directory
# that is removed at the end.  Installing a package replaces the files a
# `make install` put in the same places; at the end the packages are
# removed again (their files with them) unless --keep is given.  Needs
# root or sudo (dpkg).  It must never change the clone.
set -euo pipefail
cd "$(dirname "$0")/.."
. test/lib.sh
[ "${1:-}" = -h ] || [ "${1:-}" = --help ] && { show_usage "$0"; exit 0; }
keep=${1:-}

ensure_packages debhelper dpkg-dev postgresql-server-dev-all libcurl4-openssl-dev make gcc

# One source of the version: the control file.  The package's upstream
# version must be the same.
version=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" invicti_scan.control)
deb_version=$(dpkg-parsechangelog -S Version)
[ "${deb_version%-*}" = "$version" ] ||
  die "debian/changelog is at $deb_version, invicti_scan.control at $version"
# debian/control must be what control.in gives for the releases installed
pg_buildext checkcontrol

work=$(mktemp -d "${TMPDIR:-/tmp}/invicti_deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
src="$work/invicti-scan-$version"
mkdir "$src"
git ls-files -z | tar -cf - --null -T - | tar -C "$src" -xf -

log "building the packages (dpkg-buildpackage -b)"
(cd "$src" && dpkg-buildpackage -b -us -uc >"$work/build.log" 2>&1) ||
  { tail -40 "$work/build.log" >&2; die "dpkg-buildpackage failed"; }
mapfile -t debs < <(ls "$work"/postgresql-*-invicti-scan_*.deb)
[ ${#debs[@]} -gt 0 ] || die "no package was built"

# The README names the package file: it must be one just built.
named=$(grep -o 'postgresql-[0-9]*-invicti-scan_[0-9][^ ]*\.deb' README.md | sort -u)
[ -n "$named" ] && [ -f "$work/$named" ] ||
  die "README.md names the package ${named:-(nowhere)}; built: $(cd "$work" && ls ./*.deb | tr '\n' ' ')"

packages=()
for deb in "${debs[@]}"; do
  pkg=$(dpkg-deb -f "$deb" Package)
  major=$(echo "$pkg" | sed 's/^postgresql-\([0-9]*\)-.*/\1/')
  log "$pkg $(dpkg-deb -f "$deb" Version): $(dpkg-deb -f "$deb" Depends)"
  contents=$(dpkg-deb -c "$deb")
  # The library, the control files and every install and upgrade script
  # the tree has: a step missing from the package strands someone's upgrade.
  expected=("usr/lib/postgresql/$major/lib/invicti_scan.so")
  for f in invicti_scan*.control sql/invicti_scan--*.sql; do
    expected+=("usr/share/postgresql/$major/extension/${f#sql/}")
  done
  for f in "${expected[@]}"; do
    grep -q " \./$f\$" <<<"$contents" || die "$pkg lacks /$f"
  done
  packages+=("$pkg")
done

log "installing ${packages[*]}"
as_root dpkg -i "${debs[@]}" >/dev/null
for pkg in "${packages[@]}"; do
  # every installed file is the package's (none left over from a make install)
  problems=$(as_root dpkg --verify "$pkg" || true)
  [ -z "$problems" ] || die "$pkg does not verify after installing: $problems"
done

log "regression suite against the installed packages (pg_buildext installcheck)"
tree=$(stage_tree "$src")
rc=0
as_test_user sh -c "cd '$tree' && pg_buildext installcheck" || rc=$?
rm -rf "$tree"

if [ "$keep" != --keep ]; then
  log "removing ${packages[*]}"
  as_root dpkg -r "${packages[@]}" >/dev/null
fi
[ $rc -eq 0 ] || die "the regression suite failed against the installed package"
log "packages built, installed and tested: ${packages[*]}"
