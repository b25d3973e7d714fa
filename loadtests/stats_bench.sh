#!/usr/bin/env bash
# Stats API latency: 10 million clicks and 100,000 conversions seeded into a
# fresh database, then GET /api/v1/stats?group_by=partner,day over one month,
# from the rollups (clicks_15m_links, clicks_15m, conversions_15m) and from
# the raw tables, in one run; also each conversions side alone, and the
# shipper's per-batch query for versions already stored.
#
# Usage: loadtests/stats_bench.sh [--clicks N] [--conversions N] [--reps N] [--tz ZONE]
# Env:   TRACKEDGE_BIN  binary to measure (default: target/release/trackedge,
#                       built with `cargo build --release` when missing)
#        STATS_BENCH_KEEP=1  leave ClickHouse (and its data), Redis and
#                       trackedge running at the end, for a closer look
#
# Starts its own Redis and ClickHouse (scripts/services.sh, on free ports,
# data under target/stats-bench, removed at the end), runs `trackedge serve`
# (which migrates: the rollup is filled by its view as the clicks are
# inserted), seeds with INSERT ... SELECT FROM numbers(), merges the tables
# (OPTIMIZE FINAL: a month-old table is merged by then), warms up, checks
# that rollup and raw answers are equal, and times each query REPS times, in
# turn, with curl. Prints a Markdown report and writes it to
# loadtests/results/stats-<date>.md.
#
# The seed is skewed as traffic is: 200 partners, each promoting 5 of 50
# offers (one link each), 30 countries, 3 devices, 6 systems and browsers,
# 50 sub1 values, most clicks on the first few of each; 2,000,000 visitors;
# 5 % bots, 1 % rate limited; all in January 2026. Conversions point at seeded clicks: 70 % approved, 15 %
# pending (a fifth of them approved later, a second version), 10 %
# rejected, 5 % approved then reversed; second versions carry the state
# they replace (prev_*), as the admin API writes them, so conversions_15m
# is fed through its view as in production.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLICKS=10000000
CONVERSIONS=100000
REPS=9
TZ_NAME=UTC
while [[ $# -gt 0 ]]; do
    case $1 in
    --clicks) CLICKS=$2; shift 2 ;;
    --conversions) CONVERSIONS=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --tz) TZ_NAME=$2; shift 2 ;;
    *) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done

say() { echo "stats-bench: $*" >&2; }

BIN=${TRACKEDGE_BIN:-$ROOT/target/release/trackedge}
if [[ ! -x $BIN ]]; then
    say "building $BIN"
    (cd "$ROOT" && cargo build --release)
fi

WORK=$ROOT/target/stats-bench
rm -rf "$WORK"
mkdir -p "$WORK"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export REDIS_PORT=$(free_port) CH_HTTP_PORT=$(free_port) CH_TCP_PORT=$(free_port) CH_INTERSERVER_PORT=$(free_port)
SERVER_PID=
cleanup() {
    if [[ ${STATS_BENCH_KEEP:-0} == 1 ]]; then
        say "kept: clickhouse ${CH:-?} (database ${DB:-?}), trackedge admin ${ADMIN:-?} (pid ${SERVER_PID:-?}), services in $WORK/services"
        return
    fi
    [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    "$ROOT/scripts/services.sh" stop "$WORK/services" >/dev/null 2>&1 || true
    rm -rf "$WORK/services"
}
trap cleanup EXIT
"$ROOT/scripts/services.sh" start "$WORK/services" >&2
CH=http://127.0.0.1:$CH_HTTP_PORT
DB=stats_bench
ch() { curl -fsS "$CH/" --data-binary "$1"; }

TOKEN=bench-token
TRACKEDGE_LISTEN=127.0.0.1:0 TRACKEDGE_ADMIN_LISTEN=127.0.0.1:0 \
    TRACKEDGE_REDIS_URL=redis://127.0.0.1:$REDIS_PORT TRACKEDGE_REDIS_PREFIX=bench: \
    TRACKEDGE_CLICKHOUSE_URL=$CH TRACKEDGE_CLICKHOUSE_DATABASE=$DB \
    TRACKEDGE_ADMIN_TOKEN=$TOKEN TRACKEDGE_SECRET=stats-bench-secret-0123456789 \
    TRACKEDGE_SPOOL_DIR=$WORK/spool TRACKEDGE_SPOOL_MAX_BYTES=67108864 RUST_LOG=info \
    "$BIN" serve >"$WORK/trackedge.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 300); do
    grep -qs "clickhouse schema is up to date" "$WORK/trackedge.log" && break
    kill -0 "$SERVER_PID" || { cat "$WORK/trackedge.log" >&2; exit 1; }
    sleep 0.2
done
ADMIN=$(sed -n 's/.* listening .*admin=\([0-9.:]*\).*/\1/p' "$WORK/trackedge.log" | head -n 1)
[[ -n $ADMIN ]] || { say "no admin address in the log"; exit 1; }

# Attributes of click number N, the same for clicks and for the conversions
# that point at them. u K: a uniform number in [0, 1) from N.
u() { echo "(cityHash64($1, $2) % 1000000) / 1000000."; }
attributes() {
    local n=$1
    cat <<SQL
    concat('c', toString($n)) AS click_id,
    toDateTime(1767225600 + cityHash64($n, 0) % 2678400) AS ts,
    1 + toUInt64(pow($(u "$n" 1), 3) * 200) AS partner_id,
    1 + (partner_id * 7 + toUInt64(pow($(u "$n" 2), 2) * 5) * 13) % 50 AS offer_id,
    partner_id * 1000 + offer_id AS link_id,
    ['US','DE','GB','FR','IN','BR','NP','CA','ES','IT','NL','SE','PL','MX','JP',
     'AU','TR','ID','PH','VN','AR','CO','ZA','NG','EG','KR','RU','UA','RO','PT']
        [1 + toUInt64(pow($(u "$n" 3), 3) * 30)] AS country,
    multiIf($(u "$n" 4) < 0.55, 'desktop', $(u "$n" 4) < 0.95, 'mobile', 'tablet') AS device,
    ['Windows','Android','iOS','macOS','Linux','ChromeOS'][1 + toUInt64(pow($(u "$n" 5), 2) * 6)] AS os,
    ['Chrome','Safari','Edge','Firefox','Samsung Internet','Opera'][1 + toUInt64(pow($(u "$n" 6), 2) * 6)] AS browser,
    concat('s', toString(toUInt64(pow($(u "$n" 7), 3) * 50))) AS sub1
SQL
}

say "seeding $CLICKS clicks"
started=$(date +%s.%N)
ch "INSERT INTO $DB.clicks (click_id, ts, code, link_id, partner_id, offer_id, sub1, sub2, sub3, sub4, sub5,
        ip, user_agent, referer, is_bot, is_rate_limited, country, device, os, browser, visitor, node)
    SELECT click_id, ts, 'code', link_id, partner_id, offer_id, sub1,
        toString(cityHash64(number, 11) % 20), '', '', '', '', '', '',
        $(u number 8) < 0.05, $(u number 9) < 0.01, country, device, os, browser,
        if($(u number 12) < 0.1, 0, 1 + cityHash64(number, 10) % 2000000), 'bench'
    FROM (SELECT number, $(attributes number) FROM system.numbers LIMIT $CLICKS)"
seeded_clicks=$(python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1])))" "$started" "$(date +%s.%N)")

say "seeding $CONVERSIONS conversions"
conversion_columns="conversion_id, ts, click_id, click_ts, link_id, partner_id, offer_id, amount, payout, status, version, prev_status, prev_amount, prev_payout"
conversion_select() { # status expression, version, filter, previous status expression
    cat <<SQL
    SELECT concat('v', toString(i)), toDateTime(toUInt32(ts) + cityHash64(i, 98) % 259200), click_id, ts,
        link_id, partner_id, offer_id,
        toDecimal64(cityHash64(i, 97) % 2000000, 4) / 100 AS amount,
        toDecimal64(cityHash64(i, 97) % 2000000, 4) / 1000 AS payout,
        $1, $2, $4, if($4 = '', toDecimal64(0, 4), amount), if($4 = '', toDecimal64(0, 4), payout)
    FROM (SELECT number AS i, $(attributes "cityHash64(number, 99) % $CLICKS"), $(u number 96) AS r
          FROM system.numbers LIMIT $CONVERSIONS)
    WHERE $3
SQL
}
status="multiIf(r < 0.70, 'approved', r < 0.85, 'pending', r < 0.95, 'rejected', 'approved')"
ch "INSERT INTO $DB.conversions ($conversion_columns) $(conversion_select "$status" 1 1 "''")"
# A fifth of the pending ones (r in [0.70, 0.73)) approved, and the last
# approved ones reversed. (Before prev_*, this approved a band of the
# rejected ones, a move the admin API refuses.)
later="multiIf(r < 0.73, 'approved', 'reversed')"
replaced="multiIf(r < 0.73, 'pending', 'approved')"
ch "INSERT INTO $DB.conversions ($conversion_columns) $(conversion_select "$later" 2 "(r >= 0.70 AND r < 0.73) OR r >= 0.95" "$replaced")"

say "merging (OPTIMIZE FINAL)"
ch "OPTIMIZE TABLE $DB.clicks FINAL"
ch "OPTIMIZE TABLE $DB.clicks_15m FINAL"
ch "OPTIMIZE TABLE $DB.conversions FINAL"
ch "OPTIMIZE TABLE $DB.clicks_15m_links FINAL"
ch "OPTIMIZE TABLE $DB.conversions_15m FINAL"
raw_rows=$(ch "SELECT count() FROM $DB.clicks")
rollup_rows=$(ch "SELECT count() FROM $DB.clicks_15m")
conv_rows=$(ch "SELECT count() FROM $DB.conversions")
raw_bytes=$(ch "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = '$DB' AND table = 'clicks' AND active")
rollup_bytes=$(ch "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = '$DB' AND table = 'clicks_15m' AND active")

RANGE="from=2026-01-01&to=2026-01-31&tz=$TZ_NAME&limit=10000"
# Every metric but unique_clicks, which no rollup keeps.
COUNTED="metrics=clicks,bot_clicks,rate_limited_clicks,conversions,pending,rejected,reversed,revenue,payout,cr,epc"
# name | query: the month by partner and day, with every metric (distinct
# visitors: raw) and without distinct visitors from each source; then by
# day and country (the wide rollup, clicks_15m; conversions raw, joined to
# their clicks). A name starting with `sql-` is SQL sent to ClickHouse
# itself: each conversions side alone (the month by partner and day), and
# the shipper's query for the versions of a batch already stored
# (src/sql/existing_conversion_versions.sql, one query per 1,000
# conversions, answered in RowBinary as the shipper reads it) for 1,000
# conversions in arrival order (new ones) and 1,000 spread over the month
# (status changes).
FROM_TS=1767225600 TO_TS=1769904000
CONV_SIDE_ROLLUP="SELECT partner_id, toDate(bucket, '$TZ_NAME') AS day, sum(approved), sum(pending),
    sum(rejected), sum(reversed), sum(revenue), sum(payout) FROM $DB.conversions_15m
    WHERE bucket >= toDateTime($FROM_TS) AND bucket < toDateTime($TO_TS) GROUP BY partner_id, day FORMAT Null"
CONV_SIDE_RAW="SELECT p, toDate(t, '$TZ_NAME') AS day, countIf(s = 'approved'), countIf(s = 'pending'),
    countIf(s = 'rejected'), countIf(s = 'reversed'), sumIf(a, s = 'approved'), sumIf(y, s = 'approved')
    FROM (SELECT conversion_id, any(ts) AS t, any(partner_id) AS p, argMax(status, version) AS s,
          toInt64(toDecimal128(argMax(amount, version), 4) * 10000) AS a,
          toInt64(toDecimal128(argMax(payout, version), 4) * 10000) AS y
          FROM $DB.conversions WHERE ts >= toDateTime($FROM_TS) AND ts < toDateTime($TO_TS)
          GROUP BY conversion_id)
    WHERE s IN ('approved', 'pending', 'rejected', 'reversed') GROUP BY p, day FORMAT Null"
held_sql() { # WHERE: the shipper's query for 1,000 stored conversions chosen by WHERE
    local pick="FROM (SELECT conversion_id, ts FROM $DB.conversions WHERE $1 ORDER BY ts LIMIT 1000)"
    sed '/^--/d' "$ROOT/src/sql/existing_conversion_versions.sql" | sed "s/{database}/$DB/" |
        python3 -c "import sys; q = sys.stdin.read()
for a in sys.argv[1:]: q = q.replace('?', a, 1)
print(q + ' FORMAT RowBinary')" \
            "$(ch "SELECT toUInt32(min(ts)) $pick")" "$(ch "SELECT toUInt32(max(ts)) $pick")" \
            "'$(ch "SELECT min(conversion_id) $pick")'" "'$(ch "SELECT max(conversion_id) $pick")'" \
            "($(ch "SELECT arrayStringConcat(groupArray(concat('''', conversion_id, '''')), ',') $pick FORMAT TabSeparatedRaw"))"
}
CASES=(
    "all-metrics|group_by=partner,day&$RANGE"
    "rollup|group_by=partner,day&$RANGE&$COUNTED&source=rollup"
    "raw|group_by=partner,day&$RANGE&$COUNTED&source=raw"
    "rollup-country|group_by=day,country&$RANGE&$COUNTED&source=rollup"
    "raw-country|group_by=day,country&$RANGE&$COUNTED&source=raw"
    "sql-conv-rollup|$CONV_SIDE_ROLLUP"
    "sql-conv-raw|$CONV_SIDE_RAW"
    "sql-held-batch|$(held_sql "ts >= toDateTime(1768000000)")"
    "sql-held-month|$(held_sql "cityHash64(conversion_id) % 100 = 7")"
)
fetch() { # name query → seconds; the answer in $WORK/answer-NAME.json
    if [[ $1 == sql-* ]]; then
        curl -fsS -o "$WORK/answer-$1.json" -w '%{time_total}\n' "$CH/" --data-binary "$2"
        return
    fi
    curl -fsS -o "$WORK/answer-$1.json" -w '%{time_total}\n' \
        -H "Authorization: Bearer $TOKEN" "http://$ADMIN/api/v1/stats?$2"
}
say "warming up"
for c in "${CASES[@]}"; do
    fetch "${c%%|*}" "${c#*|}" >/dev/null
    : >"$WORK/${c%%|*}.times"
done
# The sources must agree before their speeds mean anything.
python3 - "$WORK" <<'PY'
import json, sys
d = sys.argv[1]
load = lambda n: json.load(open(f"{d}/answer-{n}.json"))
for rollup, raw, conversions in (("rollup", "raw", "rollup"), ("rollup-country", "raw-country", "raw")):
    a, b = load(rollup), load(raw)
    assert (a["source"], b["source"]) == ("rollup", "raw"), (a["source"], b["source"])
    assert (a["conversions_source"], b["conversions_source"]) == (conversions, "raw"), (
        a["conversions_source"], b["conversions_source"])
    assert a["rows"] == b["rows"], f"{rollup} and {raw} answers differ"
    print(f"stats-bench: {rollup} and {raw} agree on {len(a['rows'])} rows", file=sys.stderr)
full = load("all-metrics")
assert full["source"] == "raw"
assert [{k: v for k, v in r.items() if k != "unique_clicks"} for r in full["rows"]] == load("raw")["rows"]
PY
rows() { python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["rows"]))' "$WORK/answer-$1.json"; }
held_rows() { # the rows a held-versions case found: its query again, counted
    local c
    for c in "${CASES[@]}"; do
        if [[ ${c%%|*} == "$1" ]]; then
            local q=${c#*|}
            ch "SELECT count() FROM (${q% FORMAT RowBinary})"
        fi
    done
}
for _ in $(seq "$REPS"); do
    for c in "${CASES[@]}"; do
        fetch "${c%%|*}" "${c#*|}" >>"$WORK/${c%%|*}.times"
    done
done
ms() { sort -n "$WORK/$1.times" | awk '{ a[NR] = $1 * 1000 } END { printf "%.0f ms | %.0f ms | %.0f ms", a[int((NR + 1) / 2)], a[1], a[NR] }'; }
median() { sort -n "$WORK/$1.times" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
ratio() { python3 -c "import sys; print(round(float(sys.argv[1]) / float(sys.argv[2]), 1))" "$(median "$1")" "$(median "$2")"; }
links_rows=$(ch "SELECT count() FROM $DB.clicks_15m_links")
links_bytes=$(ch "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = '$DB' AND table = 'clicks_15m_links' AND active")
conv_rollup_rows=$(ch "SELECT count() FROM $DB.conversions_15m")

report=$(cat <<MD
# Stats API latency, $(date -u +%Y-%m-%d)

\`loadtests/stats_bench.sh --clicks $CLICKS --conversions $CONVERSIONS --reps $REPS --tz $TZ_NAME\`
on $(nproc) CPUs, ClickHouse $(ch "SELECT version()"), binary \`${BIN#"$ROOT"/}\`.

Seed: $raw_rows clicks in January 2026 (inserted in $seeded_clicks s, the
rollups filled by their views on the way), $conv_rows conversion rows. After
OPTIMIZE FINAL: \`clicks\` $raw_rows rows, $((raw_bytes / 1048576)) MiB;
\`clicks_15m\` $rollup_rows rows, $((rollup_bytes / 1048576)) MiB;
\`clicks_15m_links\` $links_rows rows, $((links_bytes / 1048576)) MiB;
\`conversions_15m\` $conv_rollup_rows rows.

\`GET /api/v1/stats?group_by=...&$RANGE\`, each $REPS times, in turn, after
one warm-up each (curl total time). "Counts" is every metric but
\`unique_clicks\` (\`metrics=...\`); rollup and raw answers were checked
equal before timing.

| query | rows | source | median | min | max |
| --- | --- | --- | --- | --- | --- |
| partner,day, every metric | $(rows all-metrics) | raw clicks (distinct visitors), rollup \`conversions_15m\` | $(ms all-metrics) |
| partner,day, counts | $(rows rollup) | rollups \`clicks_15m_links\`, \`conversions_15m\` | $(ms rollup) |
| partner,day, counts | $(rows raw) | raw \`clicks\`, \`conversions\` | $(ms raw) |
| day,country, counts | $(rows rollup-country) | rollup \`clicks_15m\`, raw \`conversions\` | $(ms rollup-country) |
| day,country, counts | $(rows raw-country) | raw \`clicks\`, \`conversions\` | $(ms raw-country) |

Raw / rollup, partner and day: $(ratio raw rollup)×; day and country: $(ratio raw-country rollup-country)×.

SQL sent to ClickHouse itself (curl total time, same runs):

| query | rows | median | min | max |
| --- | --- | --- | --- | --- |
| conversions side, partner,day, \`conversions_15m\` | $conv_rollup_rows | $(ms sql-conv-rollup) |
| conversions side, partner,day, raw \`conversions\` (argMax by version) | $conv_rows | $(ms sql-conv-raw) |
| shipper: versions held of 1,000 conversions in arrival order | $(held_rows sql-held-batch) found | $(ms sql-held-batch) |
| shipper: versions held of 1,000 conversions spread over the month | $(held_rows sql-held-month) found | $(ms sql-held-month) |

Conversions side raw / rollup: $(ratio sql-conv-raw sql-conv-rollup)×.
MD
)
echo "$report"
mkdir -p "$ROOT/loadtests/results"
echo "$report" >"$ROOT/loadtests/results/stats-$(date -u +%Y-%m-%d).md"
