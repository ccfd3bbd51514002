#!/usr/bin/env bash
# private_install.sh: build the tree this script is in and install it into a
# private copy of PostgreSQL, so a benchmark or a valgrind run can use this
# build without root and without touching the system's installed extension
# (which other people's test runs on the same machine may be using).
#
# PostgreSQL finds its share and library directories relative to its own
# executable, so a copy of its bin, lib and share directories under DEST,
# at the same paths as on the system, is a working installation; `make
# install DESTDIR=DEST` then puts the extension into it.  Binaries are
# copied (PostgreSQL resolves symlinks to find its directories); libraries
# are symlinked, except the extension's own files.
#
# Usage: private_install.sh DEST   (run as the user who owns the tree)
# Prints the private bin directory: put it first on PATH.  It must never
# write outside this tree and DEST.
set -euo pipefail
dest=${1:?usage: private_install.sh DEST}
cd "$(dirname "$0")/.."
[ -e "$dest" ] && { echo "private_install: $dest exists" >&2; exit 1; }

bindir=$(pg_config --bindir)
libdir=$(pg_config --pkglibdir)
sharedir=$(pg_config --sharedir)

{
  make -s clean
  make -s -j2 COPT="${INVICTI_COPT:--Wall -Wextra -Werror}"
} >&2

mkdir -p "$dest$bindir" "$dest$libdir" "$dest$sharedir"
cp -a "$bindir/." "$dest$bindir/"
cp -as "$libdir/." "$dest$libdir/"
cp -a "$sharedir/." "$dest$sharedir/"
rm -rf "$dest$libdir/invicti_scan.so" "$dest$libdir/bitcode/invicti_scan"* \
  "$dest$sharedir/extension/invicti_scan"*
make -s install DESTDIR="$dest" >&2

# the copy must really be the one used
got=$("$dest$bindir/pg_config" --pkglibdir)
[ "$got" = "$dest$libdir" ] ||
  { echo "private_install: PostgreSQL did not relocate ($got)" >&2; exit 1; }
echo "$dest$bindir"
