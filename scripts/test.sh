#!/usr/bin/env bash
# The project's test command (CI runs exactly this through .ci/run).
#
# Works on a fresh Debian machine with only Rust installed: it installs
# Redis, ClickHouse, Chromium (for the browser tests) and Node.js with npm
# (build.rs fetches the dashboard's charting library, pinned in
# web/package-lock.json, with `npm ci` once) through apt when missing (as
# root), fetches the IP country database from the npm registry
# (scripts/services.sh geoip), adds the rustfmt and clippy components when
# missing, then runs formatting, lints, every test target and the
# ClickHouse SQL check on a current release (chdb).
#
# The Rust integration tests start their own Redis and ClickHouse on free
# loopback ports (via scripts/clickhouse-config.sh); nothing needs to be
# running beforehand.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# clickhouse-server is in /usr/sbin, often missing from PATH in non-login
# shells; the integration tests look it up on PATH.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

step() { echo "==> $*"; }

step "install services (redis-server, clickhouse-server)"
scripts/services.sh install

# Installs Debian packages (as root, or through sudo).
apt_install() {
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || {
            echo "test.sh: need root (or sudo) to install $*" >&2
            exit 1
        }
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

step "install chromium (tests/browser.rs and tests/dashboard.rs drive it headless)"
if ! command -v chromium >/dev/null; then
    apt_install chromium
    command -v chromium >/dev/null || {
        echo "test.sh: chromium still not on PATH after apt-get install" >&2
        exit 1
    }
fi

step "install node.js and npm (build.rs bundles the dashboard's uPlot from web/)"
if ! command -v npm >/dev/null; then
    apt_install nodejs npm
    command -v npm >/dev/null || {
        echo "test.sh: npm still not on PATH after apt-get install" >&2
        exit 1
    }
fi

step "ip country database (tests/enrich.rs looks countries up in it)"
scripts/services.sh geoip

step "rust components (rustfmt, clippy)"
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    command -v rustup >/dev/null || {
        echo "test.sh: cargo fmt/clippy missing and no rustup to add them" >&2
        exit 1
    }
    rustup component add rustfmt clippy
fi

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "cargo test --all-targets"
cargo test --all-targets

step "chdb check (schema and queries on current ClickHouse)"
scripts/chdb-check.sh

step "all passed"
