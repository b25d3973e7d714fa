#!/usr/bin/env bash
# Prove deploy/clickhouse/schema.sql and src/sql/*.sql on a current ClickHouse
# release, using the `chdb` PyPI package (ClickHouse embedded in-process).
# The tests run against Debian's ClickHouse 18.16; this covers what users run.
#
# Usage: scripts/chdb-check.sh [extra args passed to chdb_check.py]
# Env:   CHDB_VENV  virtualenv to use (default: target/chdb-venv)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CHDB_VENV:-$ROOT/target/chdb-venv}"

# A venv whose chdb answers a query is reused as is: the install is ~900 MB.
# (A bare `import chdb` is not proof: a half-removed install still imports.)
chdb_works() {
    [[ -x "$VENV/bin/python" ]] &&
        "$VENV/bin/python" -c 'import chdb; chdb.query("SELECT 1")' >/dev/null 2>&1
}
if chdb_works; then
    :
else
    if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
        # Debian splits venv/ensurepip out of python3 (package python3-venv).
        if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
            echo "chdb-check: need python3 with the venv module; install python3-venv" >&2
            exit 1
        fi
        echo "chdb-check: installing python3 and python3-venv" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
    fi
    # A half-built venv from an interrupted run would fail again; start over.
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    echo "chdb-check: creating $VENV and installing chdb (large download, once)" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet chdb
    chdb_works || {
        echo "chdb-check: chdb installed into $VENV but cannot run a query" >&2
        "$VENV/bin/python" -c 'import chdb; chdb.query("SELECT 1")' || true
        exit 1
    }
fi

cd "$ROOT"
exec "$VENV/bin/python" "$ROOT/scripts/chdb_check.py" "$@"
