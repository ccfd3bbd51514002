#!/usr/bin/env bash
# pgindent.sh: format src/ the way PostgreSQL formats its own code.
#
# Usage: test/pgindent.sh [--check]
#
# Runs PostgreSQL's pgindent with its pg_bsd_indent (both from the
# PostgreSQL 18 build in the cache, test/pg_build.sh) and the typedefs of
# PostgreSQL (its typedefs.list) plus the project's (src/typedefs.list,
# regenerated here from the sources).  --check changes nothing and fails
# when a file would change.  It must never touch anything but src/.
set -euo pipefail
cd "$(dirname "$0")/.."
. test/lib.sh
[ "${1:-}" = -h ] || [ "${1:-}" = --help ] && { show_usage "$0"; exit 0; }

bindir=$(bash test/pg_build.sh 18)
tools=$(dirname "$bindir")/share/pgindent
ours=$(mktemp)
typedefs=$(mktemp)
trap 'rm -f "$ours" "$typedefs"' EXIT
# Names a typedef'd struct, enum or union closes with ("} Name;"), not the
# variables of an anonymous "static struct { ... } name;".
{ awk '/^typedef (struct|enum|union)/ && !/;$/ { open = 1 }
       open && /^} [A-Za-z_][A-Za-z0-9_]*;/ { sub(/^} /, ""); sub(/;.*/, ""); print; open = 0 }' src/*.[ch]
  grep -h "^typedef .*;$" src/*.[ch] | awk '{print $NF}' | tr -d ';'; } | sort -u >"$ours"
if [ "${1:-}" = --check ]; then
  diff -u src/typedefs.list "$ours" || die "src/typedefs.list is out of date: run test/pgindent.sh"
else
  cp "$ours" src/typedefs.list
fi
cat "$tools/typedefs.list" src/typedefs.list >"$typedefs"
args=()
[ "${1:-}" = --check ] && args=(--check --diff)
perl "$tools/pgindent" --indent="$bindir/pg_bsd_indent" --typedefs="$typedefs" \
  "${args[@]}" src/*.c src/*.h
