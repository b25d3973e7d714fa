#!/usr/bin/env bash
# Refreshes the vendored crawler list that the redirect's bot verdict is built
# from, and optionally the browser corpus its false-positive test reads.
#
# Usage:
#   scripts/refresh-bot-list.sh [VERSION]        crawler-user-agents (default: latest)
#   scripts/refresh-bot-list.sh --browsers       also re-snapshot the browser corpus
#                                                from user-agents and top-user-agents
#
# Needs npm and node (Debian: apt-get install npm). Both packages come from the
# npm registry through `npm pack`; nothing else is fetched. Afterwards it runs
# the tests that guard the list (every pattern compiles, recall, false
# positives, every preview fetcher flagged): commit only if they pass, with
# the version in the message.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LIST_DIR="$ROOT/vendor/crawler-user-agents"
BROWSERS_DIR="$ROOT/tests/fixtures/browser-user-agents"

say() { echo "refresh-bot-list: $*"; }
die() {
    echo "refresh-bot-list: $*" >&2
    exit 1
}

VERSION=latest
BROWSERS=0
for arg in "$@"; do
    case "$arg" in
    --browsers) BROWSERS=1 ;;
    -h | --help)
        sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    -*) die "unknown option $arg" ;;
    *) VERSION="$arg" ;;
    esac
done

command -v npm >/dev/null || die "npm is missing (apt-get install npm)"
command -v node >/dev/null || die "node is missing (apt-get install nodejs)"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# Unpacks one npm package into $WORK/NAME and prints its version.
unpack() {
    local spec="$1" name="$2"
    (cd "$WORK" && npm pack --silent "$spec" >"$name.tgz.name")
    mkdir -p "$WORK/$name"
    tar xzf "$WORK/$(cat "$WORK/$name.tgz.name")" -C "$WORK/$name"
    node -e 'console.log(require(process.argv[1]).version)' "$WORK/$name/package/package.json"
}

# ------------------------------------------------------------ crawler list
got="$(unpack "crawler-user-agents@$VERSION" crawler)"
pkg="$WORK/crawler/package"
[ -s "$pkg/crawler-user-agents.json" ] || die "crawler-user-agents $got has no crawler-user-agents.json"
# The build reads `pattern` from each entry and the tests read `instances`:
# refuse a file that lost either shape rather than vendor it.
node -e '
  const list = require(process.argv[1]);
  if (!Array.isArray(list) || list.length === 0) throw new Error("not a non-empty array");
  for (const e of list) {
    if (typeof e.pattern !== "string" || e.pattern.length === 0) throw new Error("entry without pattern: " + JSON.stringify(e));
  }
  console.log(list.length + " patterns, " + list.reduce((n, e) => n + (e.instances || []).length, 0) + " example user agents");
' "$pkg/crawler-user-agents.json"
mkdir -p "$LIST_DIR"
cp "$pkg/crawler-user-agents.json" "$LIST_DIR/crawler-user-agents.json"
cp "$pkg/LICENSE" "$LIST_DIR/LICENSE"
sed -i -E "s/^(Version: ).*/\1$got/" "$LIST_DIR/README.md"
say "vendored crawler-user-agents $got into ${LIST_DIR#"$ROOT"/}"

# ---------------------------------------------------------- browser corpus
if [ "$BROWSERS" = 1 ]; then
    ua_ver="$(unpack user-agents ua)"
    top_ver="$(unpack top-user-agents top)"
    mkdir -p "$BROWSERS_DIR"
    # Distinct user-agent strings, sorted, one a line: the union of both
    # packages' real-traffic samples.
    node -e '
      const set = new Set();
      for (const e of require(process.argv[1])) set.add(e.userAgent);
      for (const ua of require(process.argv[2])) set.add(ua);
      const all = [...set].filter((ua) => ua && !ua.includes("\n")).sort();
      process.stdout.write(all.join("\n") + "\n");
    ' "$WORK/ua/package/dist/user-agents.json" "$WORK/top/package/src/index.json" \
        >"$BROWSERS_DIR/user-agents.txt"
    cp "$WORK/ua/package/LICENSE" "$BROWSERS_DIR/LICENSE-user-agents"
    cp "$WORK/top/package/LICENSE.md" "$BROWSERS_DIR/LICENSE-top-user-agents"
    sed -i -E "s/^(user-agents version: ).*/\1$ua_ver/; s/^(top-user-agents version: ).*/\1$top_ver/" \
        "$BROWSERS_DIR/README.md"
    say "snapshot $(wc -l <"$BROWSERS_DIR/user-agents.txt") browser user agents (user-agents $ua_ver, top-user-agents $top_ver)"
fi

say "running the bot tests"
cd "$ROOT"
cargo test -q --lib bot::
cargo test -q --test bot_corpus -- --nocapture
say "done: review 'git diff --stat vendor tests/fixtures' and commit"
