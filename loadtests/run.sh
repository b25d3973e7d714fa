#!/usr/bin/env bash
# trackedge vs nginx redirect load test. See loadtests/README.md.
#
# Usage: loadtests/run.sh [--quick] [options]
#
#   --quick       3 s runs, 1 round, 5 s fixed-rate run (about 2 minutes)
#   --no-build    use the existing target/release/trackedge and loadgen
#   --nginx-only  only the nginx baselines: no build, no Redis/ClickHouse
#   --duration S  length of each wrk run (default 10; quick 3)
#   --rounds N    rounds of nginx -> trackedge -> nginx-log per scenario (2; quick 1)
#   --warmup S    wrk warm-up per server (2; quick 1)
#   --links N     links for the scenarios, written straight into Redis (100000)
#   --big-links N catalog size for the startup/RSS check (1000000; 0: skip)
#   --scenarios LIST  comma list of zipf,browser,mix,postback (default the
#                 first three; zipf always runs, the targets come from it)
#   --no-nginx-log    skip the nginx-with-access-log baseline
#   --latency-duration S  fixed-rate run at 50 % of saturation (20; quick 5; 0: skip)
#   --no-latency  same as --latency-duration 0
#   --latency-rounds N  fixed-rate runs per server (1)
#   --soak        also soak at 70 % of saturation for 10 minutes
#   --soak-minutes N  soak for N minutes (implies --soak)
#   --wait-quiet S  before each run wait up to S s (default 60; 0: never) for
#                 the machine to go idle, so a build elsewhere doesn't spoil it
#   --retry-noisy N  repeat a run spoiled by outside load up to N times (default 2)
#   --no-pin-backends  let Redis/ClickHouse float instead of sharing wrk's CPU
#   --two-cores   servers on both CPUs (nginx 2 workers, trackedge 2 request
#                 threads), the load generator sharing them
#   --name NAME   write the report to loadtests/results/NAME.md and .json
#                 (NAME may hold a directory: 2026-11-30-postbacks/report)
#
# TRACKEDGE_BIN=PATH tests another binary instead of target/release/trackedge
# (implies not building trackedge; the load generator is still built).
#
# Everything listens on 127.0.0.1 only: trackedge 18080 (admin 18081), nginx
# 18090 and 18091 (with access log), Redis 16379, ClickHouse 18123/19000/19009.
# Servers are pinned to CPU 0, wrk and trackedge-loadgen to CPU 1. Results go
# to loadtests/results/<date>.md and .json (<date>-quick for --quick), or
# NAME.md and .json with --name.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
cd "$ROOT"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

COMMAND="loadtests/run.sh${*:+ $*}"
QUICK=0 BUILD=1 NGINX_ONLY=0 SOAK_MINUTES=0
DURATION="" ROUNDS="" LINKS="" WARMUP="" LATENCY="" BIG_LINKS="" RESULT_NAME="" EXTRA=()
while [[ $# -gt 0 ]]; do
    case $1 in
    --quick) QUICK=1 ;;
    --no-build) BUILD=0 ;;
    --nginx-only) NGINX_ONLY=1 BUILD=0 ;;
    --duration) DURATION=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --links) LINKS=$2; shift ;;
    --big-links) BIG_LINKS=$2; shift ;;
    --scenarios) EXTRA+=(--scenarios "$2"); shift ;;
    --no-nginx-log) EXTRA+=(--no-nginx-log) ;;
    --latency-duration) LATENCY=$2; shift ;;
    --no-latency) LATENCY=0 ;;
    --latency-rounds) EXTRA+=(--latency-rounds "$2"); shift ;;
    --soak) [[ $SOAK_MINUTES == 0 ]] && SOAK_MINUTES=10 ;;
    --soak-minutes) SOAK_MINUTES=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --wait-quiet) EXTRA+=(--wait-quiet "$2"); shift ;;
    --no-pin-backends) EXTRA+=(--no-pin-backends) ;;
    --retry-noisy) EXTRA+=(--retry-noisy "$2"); shift ;;
    --name) RESULT_NAME=$2; shift ;;
    --two-cores) EXTRA+=(--two-cores) ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
TRACKEDGE_BIN=${TRACKEDGE_BIN:-}
[[ -n $TRACKEDGE_BIN ]] && BUILD=0
if ((QUICK)); then
    : "${DURATION:=3}" "${ROUNDS:=1}" "${LINKS:=100000}" "${WARMUP:=1}" "${LATENCY:=5}" "${BIG_LINKS:=1000000}"
    EXTRA+=(--pause 1 --latency-warmup 1 --sample-interval 2)
else
    : "${DURATION:=10}" "${ROUNDS:=2}" "${LINKS:=100000}" "${WARMUP:=2}" "${LATENCY:=20}" "${BIG_LINKS:=1000000}"
fi
NAME=$(date +%F)
LOADGEN_TARGET=$ROOT/target/loadgen
LOADGEN=$LOADGEN_TARGET/release/trackedge-loadgen
((QUICK)) && NAME+=-quick
((NGINX_ONLY)) && NAME+=-nginx-only
if [[ -n $RESULT_NAME ]]; then
    # A name, not a path out of results/.
    [[ $RESULT_NAME =~ ^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)?$ && $RESULT_NAME != *..* ]] ||
        { echo "run.sh: --name wants NAME or DIR/NAME of letters, digits, . _ -: $RESULT_NAME" >&2; exit 2; }
    NAME=$RESULT_NAME
fi

WORK=$ROOT/target/loadtest
SERVICES_ROOT=$ROOT/target/loadtest-services
SPOOL=$ROOT/target/loadtest-spool
export REDIS_PORT=16379 CH_HTTP_PORT=18123 CH_TCP_PORT=19000 CH_INTERSERVER_PORT=19009

say() { echo "run.sh: $*" >&2; }

# ---------------------------------------------------------------- tools
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx-light)
command -v taskset >/dev/null || need+=(util-linux)
command -v python3 >/dev/null || need+=(python3)
if ((${#need[@]})); then
    say "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [[ $(nproc) -lt 2 ]]; then
    say "needs at least 2 CPUs (servers on CPU 0, wrk on CPU 1); this machine has $(nproc)"
    exit 2
fi

# ---------------------------------------------------------------- cleanup
SERVICES_STARTED=0
# kill_pidfile FILE PATTERN: SIGTERM the process in FILE (if it is still ours) and wait.
kill_pidfile() {
    local file=$1 pattern=$2 pid i
    [[ -s $file ]] || return 0
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || { rm -f "$file"; return 0; }
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern" || { rm -f "$file"; return 0; }
    say "stopping leftover $pattern (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 600; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    rm -f "$file"
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    # bench.py stops what it started; this is the backstop if it was killed.
    kill_pidfile "$WORK/trackedge.pid" trackedge
    kill_pidfile "$WORK/nginx/run.pid" nginx
    kill_pidfile "$WORK/nginx-log/run.pid" nginx
    if ((SERVICES_STARTED)); then
        scripts/services.sh stop "$SERVICES_ROOT" >&2 || rc=1
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- build, services
if ((BUILD)); then
    say "cargo build --release"
    cargo build --release >&2
fi
# The fixed-rate load generator: its own crate, outside trackedge's package.
if ((BUILD)) || [[ ! -x $LOADGEN ]] || [[ -n $(find "$HERE/loadgen/src" "$HERE/loadgen/Cargo.toml" -newer "$LOADGEN" 2>/dev/null) ]]; then
    say "cargo build --release (loadtests/loadgen)"
    cargo build --release --manifest-path "$HERE/loadgen/Cargo.toml" --target-dir "$LOADGEN_TARGET" >&2
fi
if ((!NGINX_ONLY)); then
    BIN=${TRACKEDGE_BIN:-target/release/trackedge}
    [[ -x $BIN ]] || { say "$BIN is missing (drop --no-build?)"; exit 1; }
    [[ -x scripts/services.sh ]] || { say "scripts/services.sh is missing"; exit 1; }
    SERVICES_STARTED=1
    scripts/services.sh start "$SERVICES_ROOT" >&2
fi

mkdir -p "$WORK"
args=(
    --root "$ROOT" --workdir "$WORK" --results "$HERE/results" --result-name "$NAME"
    --command "$COMMAND" --duration "$DURATION" --rounds "$ROUNDS" --links "$LINKS"
    --warmup "$WARMUP" --services-root "$SERVICES_ROOT" --spool "$SPOOL"
    --big-links "$BIG_LINKS" --latency-duration "$LATENCY" --soak-minutes "$SOAK_MINUTES"
    --loadgen "$LOADGEN"
)
((NGINX_ONLY)) && args+=(--nginx-only)
((${#EXTRA[@]})) && args+=("${EXTRA[@]}")
[[ -n $TRACKEDGE_BIN ]] && args+=(--trackedge-bin "$(realpath "$TRACKEDGE_BIN")")
# In the background and waited for, so that a SIGINT/SIGTERM sent to this
# script reaches bench.py (as SIGTERM), which then stops its servers and
# exits; the EXIT trap runs after it.
python3 "$HERE/bench.py" "${args[@]}" &
PY_PID=$!
forward() {
    kill -TERM "$PY_PID" 2>/dev/null || true
    wait "$PY_PID" 2>/dev/null || true
    exit "$1"
}
trap 'forward 130' INT
trap 'forward 143' TERM
set +e
wait "$PY_PID"
rc=$?
set -e
exit "$rc"
