#!/usr/bin/env bash
# Refresh the user agent rules compiled into trackedge: uap-core's
# regexes.yaml (Apache-2.0, with its LICENSE) from the npm registry into
# vendor/uap-core/.
#
#   scripts/vendor-uap.sh [VERSION]     (default: latest)
#
# Then `cargo test --lib enrich` (known user agents still parse as expected)
# and commit vendor/uap-core/. The rules are vendored, not fetched at build
# time, so `cargo build` needs nothing but crates.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/vendor/uap-core"
VERSION=${1:-latest}

command -v npm >/dev/null || {
    echo "vendor-uap: npm is required" >&2
    exit 1
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "uap-core@$VERSION" >/dev/null)
tar -xzf "$tmp"/uap-core-*.tgz -C "$tmp" package/regexes.yaml package/LICENSE package/package.json
mkdir -p "$DEST"
cp "$tmp/package/regexes.yaml" "$tmp/package/LICENSE" "$DEST/"
version=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$tmp/package/package.json" | head -n 1)
echo "uap-core@$version" >"$DEST/VERSION"
echo "vendor-uap: vendor/uap-core now holds uap-core $version"
