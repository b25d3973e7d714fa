"""The postback scenario of the load test (stdlib only).

`GET /postback?token=<the offer's postback token>&click_id=<a real signed
click id>&order_id=<never sent before>&amount=12.50`, as a merchant's server
reports a sale. On trackedge each one verifies the click id's signature,
reads its link from Redis, claims the order with `SET NX` (the dedup that
makes a retried postback a `duplicate`), and appends the conversion to the
crash-safe segment log before answering `200 {"status":"approved",...}`;
the shipper then inserts it into ClickHouse `conversions`. The baseline is
nginx answering `return 200` with a JSON body of the same size.

The order id must be new on every request, or every postback after the
first per order would be a `duplicate` (cheaper, and not the billable
path): the request file carries `order_id=lt-{seq}` and both load
generators replace `{seq}` with a value unique to the run (codes.lua:
the run's nonce, wrk's thread and a counter; trackedge-loadgen: the nonce
and the request's index). They also count the answers whose body holds
`"status":"approved"`, which the accounting here compares with the rows
that reached ClickHouse.

bench.py calls in: `harvest_click_ids` (real redirects, for real click
ids), `write` (the request file), `probe`, `nginx_body`, `account`,
`figures` and `markdown`.
"""

import http.client
import json
import random
import re
import secrets
import string
import time
import urllib.parse

import scenarios as scenmod

NAME = "postback"

DESCRIPTION = (
    "GET /postback with the offer's token, a real signed click id (from redirects done while seeding), "
    "an order id never sent before (`{seq}`) and amount=12.50: click id check, link read and SET NX "
    "order claim in Redis, conversion appended to the segment log before the answer; nginx answers "
    "`return 200` with a JSON body of the same size"
)

# What an accepted postback's answer holds; both load generators count it.
EXPECT = '"status":"approved"'

# A merchant's backend reports sales from a handful of servers.
MERCHANT_ADDRS = [f"203.0.113.{n}" for n in range(10, 18)]

# nginx's answer in an --nginx-only run, where trackedge gives no sample.
DEFAULT_BODY = '{"status":"approved","reason":"ok","conversion_id":"%s","payout":"5.00","currency":"USD"}'

ALNUM = string.ascii_letters + string.digits


def harvest_click_ids(port, codes, n, xff=True):
    """Real click ids: one redirect each through the first n codes.

    Returns (click ids, redirects made). Every redirect records a click,
    which the click accounting counts as a probe request."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    rng = random.Random("postback-harvest")
    cids, made = [], 0
    try:
        for code in codes[:n]:
            headers = {"User-Agent": scenmod.BROWSER_UAS[0]}
            if xff:
                headers["X-Forwarded-For"] = scenmod.client_addr(rng)
            conn.request("GET", f"/{code}", headers=headers)
            r = conn.getresponse()
            r.read()
            made += 1
            loc = r.getheader("Location") or ""
            m = re.search(r"[?&]cid=([^&]+)", loc)
            if r.status != 302 or not m:
                raise RuntimeError(f"redirect of /{code} answered {r.status}, Location {loc!r}: no click id")
            cids.append(urllib.parse.unquote(m.group(1)))
    finally:
        conn.close()
    if len(set(cids)) != len(cids):
        raise RuntimeError("trackedge handed out the same click id twice")
    return cids, made


def synthetic_click_ids(n, length=32):
    """Stand-ins for an --nginx-only run (nginx never reads them)."""
    return ["".join(secrets.choice(ALNUM) for _ in range(length)) for _ in range(n)]


def path(token, click_id, order_id):
    """The postback's path and query; `{seq}` in order_id stays literal."""
    q = urllib.parse.urlencode([("token", token), ("click_id", click_id), ("order_id", order_id), ("amount", "12.50")],
                               safe="{}")
    return "/postback?" + q


def build(token, click_ids, size, seed=1, xff=True):
    """Returns (lines, stats): `size` postbacks over `click_ids`, drawn at random."""
    rng = random.Random(f"{NAME}-{seed}")
    lines = []
    for _ in range(size):
        h = [
            ("User-Agent", "shop-backend/2.3 (+https://shop.example.com)"),
            ("Accept", "application/json"),
        ]
        if xff:
            h.append(("X-Forwarded-For", rng.choice(MERCHANT_ADDRS)))
        lines.append("\t".join([path(token, rng.choice(click_ids), "lt-{seq}")] + [f"{k}: {v}" for k, v in h]))
    # As sent: request line, Host, headers, blank line; `{seq}` as a
    # typical 18-character value (`a1b2c3r12-1-123456`).
    head = [len(f"GET {l.split(chr(9))[0]} HTTP/1.1\r\nHost: 127.0.0.1:18080\r\n") + 13
            + sum(len(f) + 2 for f in l.split("\t")[1:]) + 2 for l in lines]
    stats = {
        "requests": len(lines),
        "avg_head_bytes": round(sum(head) / len(head)),
        "distinct_codes": len({l.split("click_id=")[1].split("&")[0] for l in lines}),
        "distinct_label": "distinct click ids, an order id never sent before on every request",
    }
    return lines, stats


def write(path_, token, click_ids, size, seed=1, xff=True):
    """Writes the request file; returns its stats for the report."""
    lines, stats = build(token, click_ids, size, seed, xff)
    with open(path_, "w") as f:
        f.write("\n".join(lines) + "\n")
    stats["file"] = path_
    stats["description"] = DESCRIPTION
    return stats


def probe(port, token, click_id, order_id):
    """One real postback; returns (status, body text)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path(token, click_id, order_id), headers={"Accept": "application/json"})
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        conn.close()


def nginx_body(trackedge_body=None):
    """nginx's answer: trackedge's, with another conversion id of the same
    length (so both answers are the same size), or a default."""
    if trackedge_body:
        try:
            v = json.loads(trackedge_body)
            v["conversion_id"] = "".join(secrets.choice(ALNUM) for _ in range(len(v["conversion_id"])))
            return json.dumps(v, separators=(",", ":"))
        except (ValueError, KeyError, TypeError):
            pass
    return DEFAULT_BODY % "".join(secrets.choice(ALNUM) for _ in range(22))


# ------------------------------------------------------------------ ClickHouse


def ch_counts(ch_query, ch_url, db):
    """Rows in `conversions` and `conversion_history` (never collapsed)."""
    a = ch_query(
        ch_url,
        f"SELECT count(), uniqExact(conversion_id), countIf(status = 'approved'), uniqExact(order_id) "
        f"FROM {db}.conversions FORMAT TSV",
    ).split()
    h = ch_query(ch_url, f"SELECT count(), uniqExact(conversion_id) FROM {db}.conversion_history FORMAT TSV").split()
    return {
        "rows": int(a[0]), "distinct_conversion_id": int(a[1]), "approved": int(a[2]), "distinct_order_id": int(a[3]),
        "history_rows": int(h[0]), "history_distinct": int(h[1]),
    }


def ch_statuses(ch_query, ch_url, db):
    """Rows of `conversions` by `status/reason`."""
    try:
        out = ch_query(ch_url, f"SELECT status, reason, count() FROM {db}.conversions GROUP BY status, reason ORDER BY status, reason FORMAT TSV")
        return {f"{s}/{r}": int(n) for s, r, n in (l.split("\t") for l in out.strip().splitlines() if l)}
    except Exception as e:  # report, don't die
        return {"error": str(e)[:200]}


def wait_shipped(ch_query, ch_url, db, expect, timeout):
    """Polls until conversion_history holds `expect` rows or stops growing for 3 s."""
    deadline = time.monotonic() + timeout
    last, same_since, polls = None, time.monotonic(), []
    while True:
        try:
            c = ch_counts(ch_query, ch_url, db)
            polls.append(c["history_rows"])
            if last is None or c != last:
                last, same_since = c, time.monotonic()
            if c["history_rows"] >= expect or time.monotonic() - same_since >= 3:
                break
        except Exception as e:  # report, don't die
            polls.append(str(e)[:200])
        if time.monotonic() >= deadline:
            break
        time.sleep(1)
    return last, polls


# ------------------------------------------------------------------ accounting and figures


def seen(res):
    """What trackedge's answers say: approved, other answers, and requests
    still unanswered when a generator stopped (they may be recorded)."""
    s = {"approved": 0, "other_2xx": 0, "non_2xx": 0, "unanswered_bound": 0, "wrk_runs": 0, "loadgen_runs": 0}
    for r in res.get("runs", []):
        b = r.get("bodies")
        if r["target"] != "trackedge" or r.get("scenario") != NAME or not b:
            continue
        s["wrk_runs"] += 1
        s["approved"] += b["expected"]
        s["other_2xx"] += b["2xx"] - b["expected"]
        s["non_2xx"] += b["3xx"] + b["4xx"] + b["5xx"]
        # wrk builds one request to check the script before it starts:
        # never sent, so this bound is one too high, never too low.
        s["unanswered_bound"] += max(b["built"] - b["answered"], 0)
    for r in (res.get("latency_postback") or {}).get("runs", []):
        g = r["loadgen"]
        if r["target"] != "trackedge":
            continue
        s["loadgen_runs"] += 1
        s["approved"] += (g.get("expected_body") or {}).get("all", 0)
        s["other_2xx"] += g.get("all_2xx", 0) - (g.get("expected_body") or {}).get("all", 0)
        s["non_2xx"] += g["status"]["4xx"] + g["status"]["5xx"]
        s["unanswered_bound"] += g["errors"] + g["unfinished"]
    pr = res.get("probes", {}).get("trackedge-postback")
    if pr:
        s["approved"] += 1 if EXPECT in (pr.get("body") or "") else 0
    return s


def account(res, before, after, exit_code, statuses):
    """The verdict: every approved answer is in ClickHouse exactly once.

    `approved rows − approved answers` may be positive up to the requests
    that were in flight when wrk stopped (answered, maybe, but not counted);
    never negative (a lost conversion), and conversion_history (which no
    merge collapses) must hold each conversion id once."""
    s = seen(res)
    acc = {"seen": s, "before_shutdown": before, "after_shutdown": after, "exit_code": exit_code, "statuses": statuses}
    if not after:
        acc["ok"] = None
        return acc
    acc["lost"] = s["approved"] - after["approved"]
    acc["unseen_recorded"] = after["approved"] - s["approved"]
    acc["duplicates"] = after["history_rows"] - after["history_distinct"]
    acc["ok"] = (
        acc["lost"] <= 0
        and acc["unseen_recorded"] <= s["unanswered_bound"]
        and acc["duplicates"] == 0
        and after["distinct_order_id"] == after["rows"]
        and s["other_2xx"] == 0
        and s["non_2xx"] == 0
        and exit_code == 0
    )
    return acc


def late(row):
    """Why a trackedge saturation run is not a figure of trackedge's capacity:
    disturbed from outside, or wrk (not trackedge) was the limit."""
    why = []
    if row.get("noisy"):
        why.append(f"noisy (others {row['others_cpu_s']:.2f} s CPU, steal {row['steal_s']:.2f} s)")
    if row.get("wrk_core_util", 0) >= 0.95 and row.get("server_core_util", 1) < 0.9:
        why.append(f"generator-bound (wrk core {row['wrk_core_util']:.0%}, server core {row['server_core_util']:.0%})")
    return why


def _median(vals):
    """The median of the values that are not None, or None."""
    vals = sorted(v for v in vals if v is not None)
    if not vals:
        return None
    n = len(vals)
    return vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2


def figures(res):
    """The issue's figures, from the measured (round) runs of this invocation."""
    runs = [r for r in res.get("runs", []) if r.get("scenario") == NAME and r["label"].startswith("round") and not r.get("discarded")]
    te = [r for r in runs if r["target"] == "trackedge"]
    ng = [r for r in runs if r["target"] == "nginx"]
    if not te:
        return None
    f = {
        "runs": len(te),
        "accepted_per_s": [round(r["bodies"]["expected"] / r["duration_s"], 1) for r in te],
        "accepted_per_s_median": round(_median([r["bodies"]["expected"] / r["duration_s"] for r in te]), 1),
        "cpu_us": _median([r["cpu_us_per_req"] for r in te]),
        "backend_cpu_us": _median([r["backend_cpu_us_per_req"] for r in te]),
        "server_core": _median([r["server_core_util"] for r in te]),
        "wrk_core": _median([r["wrk_core_util"] for r in te]),
        "late": {f"{r['label']}": late(r) for r in te if late(r)},
    }
    if ng:
        f["nginx_rps"] = _median([r["rps"] for r in ng])
        f["nginx_cpu_us"] = _median([r["cpu_us_per_req"] for r in ng])
        f["nginx_wrk_core"] = _median([r["wrk_core_util"] for r in ng])
        f["nginx_noisy"] = sum(1 for r in ng if r.get("noisy"))
        f["cpu_ratio"] = round(f["cpu_us"] / f["nginx_cpu_us"], 3) if f["nginx_cpu_us"] else None
        f["rps_ratio"] = round(f["accepted_per_s_median"] / f["nginx_rps"], 3) if f["nginx_rps"] else None
    z = res.get("medians", {}).get("zipf", {}).get("trackedge")
    if z and z.get("cpu_us_per_req"):
        f["redirect_cpu_us"] = z["cpu_us_per_req"]
        f["vs_redirect"] = round(f["cpu_us"] / z["cpu_us_per_req"], 3)
    return f


def target(res):
    """The accounting as a line of the report's Targets table."""
    acc = res.get("postbacks")
    if not acc:
        return None
    a = acc.get("after_shutdown")
    s = acc["seen"]
    return {
        "id": "postbacks_recorded",
        "target": "every approved postback is in ClickHouse exactly once (postback scenario)",
        "measured": (f"approved answers {s['approved']:,}, approved rows {a['approved']:,} "
                     f"(in flight when wrk stopped ≤ {s['unanswered_bound']:,}), duplicates {acc['duplicates']}, "
                     f"other answers {s['other_2xx'] + s['non_2xx']}") if a else "ClickHouse not read",
        "value": acc.get("lost"),
        "result": "not run" if acc.get("ok") is None else ("PASS" if acc["ok"] else "FAIL"),
    }


def markdown(res, ms, fmt):
    """The report's postback section, as lines; `ms` and `fmt` are bench.py's formatters."""
    f = figures(res)
    acc = res.get("postbacks")
    if not f and not acc:
        return []
    L = ["## Postbacks (server-to-server conversions)", ""]
    L.append(f"Scenario: {DESCRIPTION}. trackedge ran with "
             f"TRACKEDGE_CONVERSIONS_POSTBACKS_PER_OFFER_PER_SECOND={res['settings'].get('trackedge_postbacks_per_offer_per_second')} "
             "(the limiter runs on every postback; its threshold is out of reach, or this would measure the 429 path).")
    L.append("")
    if f:
        late_note = ""
        if f["late"]:
            late_note = " **Not a figure:** " + "; ".join(f"{k}: {', '.join(v)}" for k, v in f["late"].items()) + "."
        L.append(
            f"- **Accepted postbacks/s, trackedge on one pinned core**: **{fmt(f['accepted_per_s_median'], ',.0f')}** "
            f"(median of {f['runs']} run(s): {', '.join(f'{v:,.0f}' for v in f['accepted_per_s'])}; server core busy "
            f"{fmt(f['server_core'], '.0%')}, wrk core {fmt(f['wrk_core'], '.0%')})" + late_note
        )
        if "cpu_ratio" in f:
            L.append(
                f"- **Server CPU per postback**: trackedge {fmt(f['cpu_us'], '.2f')} µs vs nginx `return 200` "
                f"{fmt(f['nginx_cpu_us'], '.2f')} µs = **{fmt(f['cpu_ratio'], '.2f')}×**; Redis + ClickHouse add "
                f"{fmt(f['backend_cpu_us'], '.2f')} µs per postback on the other core"
                + (f"; a redirect (zipf) costs trackedge {f['redirect_cpu_us']:.2f} µs, so a postback is {f['vs_redirect']:.2f}× a redirect"
                   if "vs_redirect" in f else "")
            )
            L.append(
                f"- Requests/s vs nginx: {fmt(f['accepted_per_s_median'], ',.0f')} vs {fmt(f['nginx_rps'], ',.0f')} = "
                f"{fmt(f['rps_ratio'], '.2f')}× (nginx is limited by wrk's core, {fmt(f['nginx_wrk_core'], '.0%')} busy: "
                "its requests/s is a lower bound, its CPU per request is not)"
                + (f"; {f['nginx_noisy']} nginx run(s) noisy" if f.get("nginx_noisy") else "")
            )
        L.append("")
    lat = res.get("latency_postback")
    if lat and lat.get("runs"):
        L.append(
            f"Fixed rate {lat['rate']:,}/s = {lat['fraction']:.0%} of saturation ({lat['saturation_rps']:,.0f}/s, "
            f"{lat['saturation_from']}), trackedge-loadgen, latency from each request's scheduled send time:"
        )
        L.append("")
        L.append("| target | measured | achieved/s | approved | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | service p99 ms | dispatch lag p99 ms | errors | server CPU µs/req | others' CPU s |")
        L.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in lat["runs"]:
            g = r["loadgen"]
            la, se, dl = g.get("latency_us") or {}, g.get("service_us") or {}, g.get("dispatch_lag_us") or {}
            L.append(
                f"| {r['target']} | {g['measured']:,} | {g['achieved_rps']:,.0f} | {(g.get('expected_body') or {}).get('measured', 0):,} | "
                f"{ms(la.get('p50'))} | {ms(la.get('p90'))} | {ms(la.get('p99'))} | {ms(la.get('p99_9'))} | {ms(la.get('max'))} | "
                f"{ms(se.get('p99'))} | {ms(dl.get('p99'))} | {g['errors']} | {fmt(r['cpu_us_per_req'], '.2f')} | "
                f"{r['others_cpu_s']:.2f}{' ⚠' if r.get('noisy') else ''} |"
            )
        L.append("")
    if acc:
        s = acc["seen"]
        L.append("Accounting (trackedge's answers against ClickHouse):")
        L.append("")
        L.append(
            f"- Answers `200` with `\"status\":\"approved\"` seen by the generators (wrk runs incl. warm-up: {s['wrk_runs']}, "
            f"loadgen runs: {s['loadgen_runs']}, plus the probe): **{s['approved']:,}**; other 2xx {s['other_2xx']:,}, "
            f"non-2xx {s['non_2xx']:,}; requests unanswered when a generator stopped ≤ {s['unanswered_bound']:,}"
        )
        b, a = acc.get("before_shutdown"), acc.get("after_shutdown")
        if b:
            L.append(f"- While trackedge still ran: {b['rows']:,} rows in `conversions`, {b['history_rows']:,} in `conversion_history`")
        if a:
            L.append(
                f"- After SIGTERM (exit code {acc['exit_code']}): `conversions` **{a['rows']:,} rows, {a['distinct_conversion_id']:,} distinct "
                f"conversion_id, {a['approved']:,} approved, {a['distinct_order_id']:,} distinct order_id**; `conversion_history` "
                f"(never collapsed) {a['history_rows']:,} rows, {a['history_distinct']:,} distinct"
            )
            L.append(
                f"- lost = approved answers − approved rows = **{acc['lost']:,}**; recorded but not seen = {acc['unseen_recorded']:,} "
                f"(≤ {s['unanswered_bound']:,} allowed: answered after wrk stopped counting); duplicates = {acc['duplicates']:,}; "
                f"statuses {json.dumps(acc.get('statuses'))}: **{'OK' if acc['ok'] else 'FAILED'}**"
            )
        else:
            L.append("- ClickHouse could not be read after shutdown")
        L.append("")
    return L
