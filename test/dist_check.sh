#!/usr/bin/env bash
# dist_check.sh: `make dist` gives the archive PGXN takes, and it builds.
#
# Usage: test/dist_check.sh
#
# Makes the archive from a local clone of HEAD (the clone's working tree is
# not touched), then checks its META.json against PGXN's meta spec 1.0.0
# (the required keys, semantic versions, a known license, every provided
# file in the archive) and that its version is invicti_scan.control's, and
# builds the unpacked archive with -Wall -Wextra -Werror, and that the
# archive's name is the one README.md gives.  It must never
# write inside the clone.
set -euo pipefail
cd "$(dirname "$0")/.."
. test/lib.sh
[ "${1:-}" = -h ] || [ "${1:-}" = --help ] && { show_usage "$0"; exit 0; }

work=$(mktemp -d "${TMPDIR:-/tmp}/invicti_dist.XXXXXX")
trap 'rm -rf "$work"' EXIT
git clone -q --no-hardlinks . "$work/clone"
zip=$(make -s -C "$work/clone" dist | tail -1)
mkdir "$work/unpacked"
(cd "$work/unpacked" && python3 -m zipfile -e "$work/clone/$zip" .)
dir=$(ls -d "$work"/unpacked/*/)
version=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" invicti_scan.control)

python3 - "$dir" "$version" "$zip" <<'EOF'
import json, os, re, sys
root, control_version, zip_name = sys.argv[1:]
meta = json.load(open(os.path.join(root, "META.json")))
semver = re.compile(r"^\d+\.\d+\.\d+(-[0-9A-Za-z-]+)?$")
problems = []
for key in ("name", "abstract", "version", "maintainer", "license", "provides", "meta-spec"):
    if key not in meta:
        problems.append(f"META.json lacks the required key {key!r}")
if meta.get("meta-spec", {}).get("version") != "1.0.0":
    problems.append("meta-spec.version is not 1.0.0")
if not semver.match(meta.get("version", "")):
    problems.append(f"version {meta.get('version')!r} is not a semantic version")
parts = control_version.split(".")
expect = ".".join(parts + ["0"] * (3 - len(parts)))
if meta.get("version") != expect:
    problems.append(f"version {meta.get('version')!r} is not the control file's {control_version!r} ({expect})")
if meta.get("license") not in ("postgresql", "bsd", "mit", "gpl_3", "apache_2_0"):
    problems.append(f"license {meta.get('license')!r} is not one PGXN knows")
for ext, p in meta.get("provides", {}).items():
    if p.get("version") != meta.get("version"):
        problems.append(f"provides.{ext}.version is not the distribution's version")
    for f in ("file", "docfile"):
        if f in p and not os.path.isfile(os.path.join(root, p[f])):
            problems.append(f"provides.{ext}.{f} {p[f]!r} is not in the archive")
if not zip_name.startswith(f"{meta.get('name')}-{meta.get('version')}"):
    problems.append(f"the archive {zip_name} is not named name-version")
for p in problems:
    print("dist:", p, file=sys.stderr)
if problems:
    sys.exit(1)
print(f"dist: {zip_name}: META.json is valid, version {meta['version']}", file=sys.stderr)
EOF

log "building the unpacked archive"
make -s -C "$dir" COPT="-Wall -Wextra -Werror" >/dev/null
[ -f "$dir/invicti_scan.so" ] || die "the archive did not build"
log "dist: $zip builds"

# The README names the archive: it must be the one just made.
named=$(grep -o 'invicti_scan-[0-9][0-9.]*[0-9]\.zip' README.md | sort -u)
[ "$named" = "$zip" ] || die "README.md names the archive ${named:-(nowhere)}, make dist makes $zip"
