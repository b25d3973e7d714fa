#!/usr/bin/env bash
# Local Redis and ClickHouse for development, the demo and CI.
#
# Usage:
#   scripts/services.sh install        apt-get install redis-server, clickhouse-server,
#                                      clickhouse-client (and curl) if missing
#   scripts/services.sh start ROOT     start both with their data under ROOT (installs
#                                      first if needed); a no-op for a service that is
#                                      already running from ROOT
#   scripts/services.sh stop ROOT      stop both, waiting for them to exit
#   scripts/services.sh status ROOT    print state and URLs; exit 0 only if both run
#   scripts/services.sh geoip [DIR]    fetch the IP country database (.mmdb) into DIR
#                                      (default data/geoip) with `npm pack`, unless
#                                      there; `install` and `start` try it too
#
# The IP database is ip-location-db's geo-whois-asn-country (CC BY 4.0, NRO
# data; see README, Enrichment), version GEOIP_VERSION (pinned below, or
# `latest`); trackedge reads DIR/geo-whois-asn-country.mmdb by default.
#
# Ports (only read by `start`; later commands use what `start` recorded):
#   REDIS_PORT (6379), CH_HTTP_PORT (8123), CH_TCP_PORT (9000),
#   CH_INTERSERVER_PORT (9009)
#
# `start` writes ROOT/services.env with TRACKEDGE_REDIS_URL and
# TRACKEDGE_CLICKHOUSE_URL, ready to `source`.
set -euo pipefail

SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# clickhouse-server lives in /usr/sbin, which non-login shells often lack.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

# The IP country database: npm package, pinned version, file, where.
GEOIP_PACKAGE=@ip-location-db/geo-whois-asn-country-mmdb
GEOIP_VERSION=${GEOIP_VERSION:-2.3.2026061719}
GEOIP_FILE=geo-whois-asn-country.mmdb
GEOIP_DIR_DEFAULT="$(cd "$SCRIPTS/.." && pwd)/data/geoip"

# How long `start` waits for a service to answer, and `stop` for it to exit.
START_TIMEOUT_S=30
STOP_TIMEOUT_S=30

say() { echo "services: $*"; }
die() {
    echo "services: $*" >&2
    exit 1
}

usage() {
    sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# ---------------------------------------------------------------- install

cmd_install() {
    local missing=()
    command -v redis-server >/dev/null || missing+=(redis-server)
    # redis-cli comes with redis-server on Debian (redis-tools); checked
    # separately in case only the server was installed by hand.
    command -v redis-cli >/dev/null || missing+=(redis-tools)
    command -v clickhouse-server >/dev/null || missing+=(clickhouse-server)
    command -v clickhouse-client >/dev/null || missing+=(clickhouse-client)
    command -v curl >/dev/null || missing+=(curl)
    if [[ ${#missing[@]} -eq 0 ]]; then
        geoip_optional
        return 0
    fi

    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || die "need root (or sudo) to install: ${missing[*]}"
        sudo=(sudo)
    fi
    command -v apt-get >/dev/null || die "no apt-get: install ${missing[*]} by hand"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    for bin in redis-server redis-cli clickhouse-server clickhouse-client curl; do
        command -v "$bin" >/dev/null || die "$bin still not on PATH after apt-get install"
    done
    geoip_optional
}

# ---------------------------------------------------------------- geoip

# cmd_geoip [DIR]: the IP country database in DIR, fetched from the npm
# registry when missing (npm installed through apt if need be).
cmd_geoip() {
    local dir=${1:-$GEOIP_DIR_DEFAULT}
    if [[ -s $dir/$GEOIP_FILE ]]; then
        return 0
    fi
    if ! command -v npm >/dev/null; then
        [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null ||
            die "need npm to fetch $GEOIP_PACKAGE (install nodejs and npm)"
        say "installing npm (to fetch the ip country database)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends npm >/dev/null
        command -v npm >/dev/null || die "npm still not on PATH after apt-get install"
    fi
    mkdir -p "$dir"
    local tmp
    tmp=$(mktemp -d "$dir/.fetch.XXXXXX")
    say "fetching $GEOIP_PACKAGE@$GEOIP_VERSION into $dir"
    if ! (cd "$tmp" && npm pack --silent "$GEOIP_PACKAGE@$GEOIP_VERSION" >/dev/null 2>npm.err) ||
        ! tar -xzf "$tmp"/*.tgz -C "$tmp" package/"$GEOIP_FILE" package/NRO_LICENSE package/README.md; then
        cat "$tmp/npm.err" >&2 2>/dev/null || true
        rm -rf "$tmp"
        die "could not fetch $GEOIP_PACKAGE@$GEOIP_VERSION"
    fi
    # The licence travels with the data; the database lands last, whole.
    mv "$tmp/package/NRO_LICENSE" "$dir/NRO_LICENSE"
    mv "$tmp/package/README.md" "$dir/README.md"
    echo "$GEOIP_PACKAGE@$GEOIP_VERSION" >"$dir/VERSION"
    mv "$tmp/package/$GEOIP_FILE" "$dir/$GEOIP_FILE"
    rm -rf "$tmp"
    say "ip country database: $dir/$GEOIP_FILE"
}

# geoip_optional: cmd_geoip for `install` and `start`, where a machine that
# cannot reach the npm registry still gets its services (trackedge then
# warns once and takes country only from a trusted proxy's header).
geoip_optional() {
    (cmd_geoip) || echo "services: no ip country database; continuing without (see scripts/services.sh geoip)" >&2
}

# ---------------------------------------------------------------- helpers

# pid_of FILE STRING: print the pid in FILE if that process is alive and its
# command line contains STRING (a recycled pid must not count as running).
pid_of() {
    local file=$1 pattern=$2 pid
    [[ -s $file ]] || return 1
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$pattern" || return 1
    echo "$pid"
}

port_in_use() {
    # bash's /dev/tcp: no dependency on ss/netstat/nc.
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

redis_ready() { [[ $(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null) == PONG ]]; }
clickhouse_ready() { [[ $(curl -fsS --max-time 2 "http://127.0.0.1:$1/ping" 2>/dev/null) == Ok.* ]]; }

# recorded ROOT KEY DEFAULT: a port `start` recorded in ROOT/ports, so that
# stop/status and a repeated start agree with the running servers.
recorded() {
    local v
    v=$(sed -n "s/^$2=//p" "$1/ports" 2>/dev/null | tail -n 1)
    echo "${v:-$3}"
}

abs_root() {
    [[ -n ${1:-} ]] || usage
    mkdir -p "$1"
    (cd "$1" && pwd)
}

# stop_pid NAME PIDFILE PATTERN: SIGTERM, wait, then SIGKILL as a last resort.
stop_pid() {
    local name=$1 file=$2 pattern=$3 pid i
    if ! pid=$(pid_of "$file" "$pattern"); then
        rm -f "$file"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_TIMEOUT_S * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "services: $name (pid $pid) did not exit in ${STOP_TIMEOUT_S}s, killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "$file"
    say "stopped $name (pid $pid)"
}

# ---------------------------------------------------------------- start

cmd_start() {
    local root
    root=$(abs_root "${1:-}")
    cmd_install

    local redis_port=${REDIS_PORT:-6379}
    local ch_http=${CH_HTTP_PORT:-8123}
    local ch_tcp=${CH_TCP_PORT:-9000}
    local ch_inter=${CH_INTERSERVER_PORT:-9009}
    local redis_dir=$root/redis ch_dir=$root/clickhouse
    # What identifies our clickhouse in /proc/PID/cmdline.
    local ch_match="--config-file=$ch_dir/config.xml"
    mkdir -p "$redis_dir" "$ch_dir"

    local redis_pid ch_pid started=()
    # On failure, leave nothing half-started behind, but stop only what this
    # call started.
    stop_started() {
        local s
        for s in "${started[@]}"; do
            case $s in
            redis) stop_pid redis "$redis_dir/redis.pid" redis-server ;;
            clickhouse) stop_pid clickhouse "$ch_dir/clickhouse.pid" "$ch_match" ;;
            esac
        done
    }
    fail() {
        echo "services: $*" >&2
        stop_started
        exit 1
    }
    if redis_pid=$(pid_of "$redis_dir/redis.pid" redis-server); then
        say "redis already running from $root (pid $redis_pid)"
        # Keep the port it was started with, not the one in this environment.
        redis_port=$(recorded "$root" REDIS_PORT "$redis_port")
    else
        if port_in_use "$redis_port"; then
            fail "port $redis_port is taken by another process (a system redis?); stop it or set REDIS_PORT"
        fi
        # No persistence: the demo and tests recreate what they need, and a
        # snapshot on shutdown would only slow `stop` down.
        redis-server \
            --bind 127.0.0.1 --port "$redis_port" \
            --dir "$redis_dir" --save '' --appendonly no \
            --daemonize yes --pidfile "$redis_dir/redis.pid" \
            --logfile "$redis_dir/redis.log" --loglevel warning
        started+=(redis)
    fi

    if ch_pid=$(pid_of "$ch_dir/clickhouse.pid" "$ch_match"); then
        say "clickhouse already running from $root (pid $ch_pid)"
        ch_http=$(recorded "$root" CH_HTTP_PORT "$ch_http")
        ch_tcp=$(recorded "$root" CH_TCP_PORT "$ch_tcp")
        ch_inter=$(recorded "$root" CH_INTERSERVER_PORT "$ch_inter")
    else
        local p
        for p in "$ch_http" "$ch_tcp" "$ch_inter"; do
            if port_in_use "$p"; then
                fail "port $p is taken by another process (a system clickhouse?); stop it or set CH_HTTP_PORT/CH_TCP_PORT/CH_INTERSERVER_PORT"
            fi
        done
        "$SCRIPTS/clickhouse-config.sh" "$ch_dir" "$ch_http" "$ch_tcp" "$ch_inter" ||
            fail "could not write the clickhouse config"
        # setsid: its own session, so a Ctrl-C meant for the caller (the demo
        # forwards it to trackedge, which then flushes to ClickHouse) does not
        # also stop ClickHouse. In a non-interactive shell the background child
        # is not a group leader, so setsid execs in place and $! is the server.
        (cd "$ch_dir" && exec setsid clickhouse-server --config-file="$ch_dir/config.xml" \
            </dev/null >>"$ch_dir/log/stdout.log" 2>&1) &
        echo $! >"$ch_dir/clickhouse.pid"
        started+=(clickhouse)
    fi

    printf 'REDIS_PORT=%s\nCH_HTTP_PORT=%s\nCH_TCP_PORT=%s\nCH_INTERSERVER_PORT=%s\n' \
        "$redis_port" "$ch_http" "$ch_tcp" "$ch_inter" >"$root/ports"

    local i ok=0
    for ((i = 0; i < START_TIMEOUT_S * 10; i++)); do
        if redis_ready "$redis_port" && clickhouse_ready "$ch_http"; then
            ok=1
            break
        fi
        # A server that died (bad config, port race) will not come up: stop
        # waiting. Not in the first second: the redis daemon writes its pid
        # file just after forking, and clickhouse's cmdline is ours until exec.
        if ((i > 10)) && { ! pid_of "$ch_dir/clickhouse.pid" "$ch_match" >/dev/null ||
            ! pid_of "$redis_dir/redis.pid" redis-server >/dev/null; }; then
            break
        fi
        sleep 0.1
    done
    if ((ok == 0)); then
        local why="not answering after ${START_TIMEOUT_S}s"
        pid_of "$ch_dir/clickhouse.pid" "$ch_match" >/dev/null || why="clickhouse exited"
        pid_of "$redis_dir/redis.pid" redis-server >/dev/null || why="redis exited"
        # Stop first (only what this call started), then explain: the logs
        # outlive the processes, and an interrupted explanation must not
        # leave servers behind.
        stop_started
        echo "services: redis and clickhouse did not both become ready: $why" >&2
        echo "--- $redis_dir/redis.log (tail)" >&2
        tail -n 20 "$redis_dir/redis.log" >&2 2>/dev/null || true
        echo "--- $ch_dir/log/clickhouse-server.err.log (tail)" >&2
        tail -n 20 "$ch_dir/log/clickhouse-server.err.log" >&2 2>/dev/null || true
        echo "--- $ch_dir/log/stdout.log (tail)" >&2
        tail -n 20 "$ch_dir/log/stdout.log" >&2 2>/dev/null || true
        exit 1
    fi

    printf 'TRACKEDGE_REDIS_URL=redis://127.0.0.1:%s\nTRACKEDGE_CLICKHOUSE_URL=http://127.0.0.1:%s\n' \
        "$redis_port" "$ch_http" >"$root/services.env"
    say "redis      redis://127.0.0.1:$redis_port (pid $(<"$redis_dir/redis.pid"))"
    say "clickhouse http://127.0.0.1:$ch_http (pid $(<"$ch_dir/clickhouse.pid"))"
}

# ---------------------------------------------------------------- stop, status

cmd_stop() {
    local root
    [[ -n ${1:-} ]] || usage
    [[ -d $1 ]] || return 0 # nothing was ever started there
    root=$(abs_root "$1")
    stop_pid clickhouse "$root/clickhouse/clickhouse.pid" "--config-file=$root/clickhouse/config.xml"
    stop_pid redis "$root/redis/redis.pid" redis-server
}

cmd_status() {
    local root pid rc=0 redis_port ch_http
    [[ -n ${1:-} ]] || usage
    root=$(cd "$1" 2>/dev/null && pwd) || root=$1 # no such dir: all stopped
    redis_port=$(recorded "$root" REDIS_PORT "${REDIS_PORT:-6379}")
    ch_http=$(recorded "$root" CH_HTTP_PORT "${CH_HTTP_PORT:-8123}")
    if pid=$(pid_of "$root/redis/redis.pid" redis-server); then
        say "redis      running  redis://127.0.0.1:$redis_port (pid $pid)"
    else
        say "redis      stopped"
        rc=3
    fi
    if pid=$(pid_of "$root/clickhouse/clickhouse.pid" "--config-file=$root/clickhouse/config.xml"); then
        say "clickhouse running  http://127.0.0.1:$ch_http (pid $pid)"
    else
        say "clickhouse stopped"
        rc=3
    fi
    return $rc
}

case ${1:-} in
install) cmd_install ;;
start) cmd_start "${2:-}" ;;
stop) cmd_stop "${2:-}" ;;
status) cmd_status "${2:-}" ;;
geoip) cmd_geoip "${2:-}" ;;
*) usage ;;
esac
