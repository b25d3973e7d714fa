#!/usr/bin/env python3
"""Load-test orchestration for loadtests/run.sh (stdlib only).

run.sh builds the binary and starts Redis + ClickHouse; this script does the
rest: starts trackedge and two nginx baselines pinned to CPU 0, seeds links,
runs wrk pinned to CPU 1 in alternating rounds, accounts server CPU per
request from /proc/PID/stat, checks every served click reached ClickHouse,
shuts everything it started down, and writes loadtests/results/<date>.md/.json.

Run it through run.sh; `bench.py --help` lists the knobs.
"""

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import statistics
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import seed as seedmod  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVER_CPU = "0"  # every server under test is pinned here
CLIENT_CPU = "1"  # wrk is pinned here
NOISE_CORES = 0.1  # "other busy" + steal above this share of a core marks a run noisy

PORTS = {
    "trackedge": 18080,
    "trackedge-admin": 18081,
    "nginx": 18090,
    "nginx-log": 18091,
}


def log(msg):
    print(f"loadtest: {msg}", file=sys.stderr, flush=True)


class Abort(Exception):
    pass


def _raise_abort(signum, _frame):
    raise Abort(f"got signal {signum}")


# ------------------------------------------------------------------ /proc


def proc_cpu_ticks(pid):
    """utime + stime (fields 14 and 15 of /proc/PID/stat) in clock ticks, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    rest = s[s.rindex(")") + 2 :].split()
    # rest[0] is field 3, so field N is rest[N - 3].
    return int(rest[11]) + int(rest[12])


def children_of(ppid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rindex(")") + 2 :].split()
        if int(rest[1]) == ppid:
            out.append(int(d))
    return out


def cpu_seconds(pids):
    total = 0
    for p in pids:
        t = proc_cpu_ticks(p)
        if t is not None:
            total += t
    return total / CLK_TCK


def all_procs_cpu():
    """pid -> utime+stime+cutime+cstime ticks for every process.

    The children's fields catch short-lived processes (a compiler run by
    cargo, say) that start and exit within a run, once their parent reaps
    them."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rindex(")") + 2 :].split()
        out[int(d)] = int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])
    return out


def others_cpu_seconds(before, after, exclude):
    """CPU seconds used between two all_procs_cpu() scans by processes not in exclude."""
    total = 0
    for pid, t in after.items():
        if pid in exclude:
            continue
        d = t - before.get(pid, 0)
        if d > 0:
            total += d
    return total / CLK_TCK


def system_cpu():
    """(busy, steal) seconds summed over all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        parts = f.readline().split()
    v = [int(x) for x in parts[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq
    return busy / CLK_TCK, steal / CLK_TCK


def port_open(port):
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


# ------------------------------------------------------------------ HTTP helpers


def http_get(port, path, headers=None, timeout=5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        return r.status, dict(r.getheaders()), body
    finally:
        c.close()


def ch_query(ch_url, sql, timeout=10):
    req = urllib.request.Request(ch_url.rstrip("/") + "/", data=sql.encode(), method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read().decode()


# ------------------------------------------------------------------ servers


class Server:
    """A process under test, started pinned to SERVER_CPU."""

    def __init__(self, name, port, argv, env, cwd, logfile, pidfile):
        self.name, self.port = name, port
        self.argv, self.env, self.cwd = argv, env, cwd
        self.logfile, self.pidfile = logfile, pidfile
        self.proc = None
        self.exit_code = None
        self.stop_seconds = None

    def start(self):
        self._log = open(self.logfile, "wb")
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU] + self.argv,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        # taskset execs the server in place, so this is the server's pid.
        with open(self.pidfile, "w") as f:
            f.write(f"{self.proc.pid}\n")

    @property
    def pid(self):
        return self.proc.pid

    def pids(self):
        """The process itself plus its direct children (nginx's worker)."""
        return [self.pid] + children_of(self.pid)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n=30):
        try:
            with open(self.logfile, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc is None or self.exit_code is not None:
            return self.exit_code
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"{self.name} did not exit {timeout}s after {sig.name}; killing it")
                self.proc.kill()
                self.proc.wait()
        self.stop_seconds = round(time.monotonic() - t0, 2)
        self.exit_code = self.proc.returncode
        try:
            os.unlink(self.pidfile)
        except OSError:
            pass
        self._log.close()
        return self.exit_code


def wait_until(pred, timeout, what, server=None, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server is not None and not server.running():
            raise Abort(
                f"{server.name} exited with code {server.proc.returncode} while waiting for {what}\n"
                f"--- {server.logfile} (tail)\n{server.log_tail()}"
            )
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(interval)
    tail = f"\n--- {server.logfile} (tail)\n{server.log_tail()}" if server else ""
    raise Abort(f"timed out after {timeout}s waiting for {what}{tail}")


NGINX_CONF = """\
# Generated by loadtests/bench.py: the baseline for trackedge's redirect.
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    {access_log}
    client_body_temp_path {dir}/tmp/client_body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    server_tokens off;
    # wrk keeps its 64 connections open for the whole run, as trackedge
    # (hyper) allows; nginx's default would close each after 1000 requests.
    keepalive_requests 1000000;
    keepalive_timeout 75s;

    server {{
        listen 127.0.0.1:{port};
        location / {{
            add_header Cache-Control no-store;
            add_header Referrer-Policy no-referrer-when-downgrade;
            return 302 "https://shop.example.com/landing?aff=1&cid={cid}&s1=$arg_sub1";
        }}
    }}
}}
"""


def nginx_server(name, port, workdir, cid, access_log_path=None):
    d = os.path.join(workdir, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "tmp"))
    if access_log_path:
        al = f"access_log {access_log_path} combined buffer=64k flush=1s;"
    else:
        al = "access_log off;"
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(dir=d, port=port, cid=cid, access_log=al))
    argv = [shutil.which("nginx") or "/usr/sbin/nginx", "-p", d + "/", "-c", conf, "-e", os.path.join(d, "error.log")]
    return Server(
        name, port, argv, dict(os.environ), d, os.path.join(d, "stdout.log"), os.path.join(d, "run.pid")
    )


# ------------------------------------------------------------------ wrk

WRK_REQS = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)\b", re.M)
WRK_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
WRK_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
WRK_SOCKERR = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def parse_wrk(out):
    m = WRK_REQS.search(out)
    if not m:
        raise Abort(f"cannot parse wrk output:\n{out}")
    j = None
    for line in out.splitlines():
        if line.startswith("LTJSON "):
            j = json.loads(line[7:])
    if j is None:
        raise Abort(f"wrk printed no LTJSON line (codes.lua done() did not run):\n{out}")
    requests = int(m.group(1))
    if requests != j["requests"]:
        raise Abort(f"wrk's text ({requests}) and LTJSON ({j['requests']}) request counts disagree")
    non2xx = int(WRK_NON2XX.search(out).group(1)) if WRK_NON2XX.search(out) else 0
    se = WRK_SOCKERR.search(out)
    sock = [int(x) for x in se.groups()] if se else [0, 0, 0, 0]
    return {
        "requests": requests,
        "duration_s": j["duration_us"] / 1e6,
        "rps_wrk": float(WRK_RPS.search(out).group(1)) if WRK_RPS.search(out) else None,
        "bytes": j["bytes"],
        "non_2xx_3xx": non2xx,
        "socket_errors": dict(zip(["connect", "read", "write", "timeout"], sock)),
        "latency_us": j["latency_us"],
    }


class Runner:
    def __init__(self, args, codes_file, backend_pids):
        self.args = args
        self.codes_file = codes_file
        self.backend_pids = backend_pids
        self.lua = os.path.join(HERE, "codes.lua")
        self.outdir = os.path.join(args.workdir, "wrk")
        os.makedirs(self.outdir, exist_ok=True)
        self.n = 0

    def wait_quiet(self):
        """Wait (up to --wait-quiet s) until the machine is idle for a second.

        Returns the seconds waited. Busy time of any process counts (our
        own servers are idle between runs), so another developer's build
        or test run delays the next run instead of spoiling it."""
        limit = self.args.wait_quiet
        t0 = time.monotonic()
        announced = False
        while True:
            b0, s0 = system_cpu()
            time.sleep(1)
            b1, s1 = system_cpu()
            load = (b1 - b0) + (s1 - s0)
            waited = time.monotonic() - t0 - 1
            if load <= NOISE_CORES or waited >= limit:
                if announced:
                    log(f"waited {waited:.0f} s for a quiet machine (last second: {load:.2f} cores busy)")
                return round(waited, 1)
            if not announced:
                log(f"machine busy ({load:.2f} cores outside the test); waiting up to {limit} s")
                announced = True

    def run(self, server, duration, label):
        """One wrk run against server; returns a row of measurements."""
        a = self.args
        waited = self.wait_quiet() if a.wait_quiet > 0 else 0
        argv = [
            "taskset", "-c", CLIENT_CPU, "wrk",
            f"-t{a.threads}", f"-c{a.connections}", f"-d{duration}s", "--latency",
            "-s", self.lua, f"http://127.0.0.1:{server.port}/",
        ]
        env = dict(os.environ, LT_CODES=self.codes_file, LT_SEED=str(a.seed))
        if not server.running():
            raise Abort(f"{server.name} is not running (exit {server.proc.returncode})\n{server.log_tail()}")
        pids = server.pids()
        self.n += 1

        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        procs0 = all_procs_cpu()
        sys0 = system_cpu()
        back0 = cpu_seconds(self.backend_pids)
        cpu0 = cpu_seconds(pids)
        t0 = time.monotonic()
        p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=duration + 60)
        wall = time.monotonic() - t0
        cpu1 = cpu_seconds(pids)
        back1 = cpu_seconds(self.backend_pids)
        sys1 = system_cpu()
        procs1 = all_procs_cpu()
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        # Ours: the server, the backends, this script (whose children's
        # fields hold wrk) and its parent run.sh.
        exclude = set(pids) | set(self.backend_pids) | {os.getpid(), os.getppid()}
        others = others_cpu_seconds(procs0, procs1, exclude)
        steal = sys1[1] - sys0[1]

        with open(os.path.join(self.outdir, f"{self.n:02d}-{label}-{server.name}.txt"), "w") as f:
            f.write(" ".join(argv) + "\n\n" + p.stdout + p.stderr)
        if p.returncode != 0:
            raise Abort(f"wrk exited {p.returncode}:\n{p.stdout}{p.stderr}")
        w = parse_wrk(p.stdout)
        req = w["requests"]
        server_cpu = cpu1 - cpu0
        backend_cpu = back1 - back0
        wrk_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
        busy = sys1[0] - sys0[0]
        row = {
            "target": server.name,
            "label": label,
            "requests": req,
            "duration_s": round(w["duration_s"], 3),
            "rps": round(req / w["duration_s"], 1),
            "non_2xx_3xx": w["non_2xx_3xx"],
            "socket_errors": w["socket_errors"],
            "bytes_per_response": round(w["bytes"] / req, 1) if req else None,
            "latency_ms": {k: round(v / 1000, 3) for k, v in w["latency_us"].items()},
            "server_pids": pids,
            "server_cpu_s": round(server_cpu, 3),
            "server_core_util": round(server_cpu / w["duration_s"], 3),
            "cpu_us_per_req": round(server_cpu * 1e6 / req, 2) if req else None,
            "backend_cpu_s": round(backend_cpu, 3),
            "backend_cpu_us_per_req": round(backend_cpu * 1e6 / req, 2) if req else None,
            "wrk_cpu_s": round(wrk_cpu, 3),
            "wrk_core_util": round(wrk_cpu / w["duration_s"], 3),
            "system_busy_s": round(busy, 3),
            # Machine-wide busy time (/proc/stat) not accounted to the server,
            # the backends or wrk: kernel work (loopback softirqs) plus other
            # processes, give or take tick-sampling error.
            "unaccounted_busy_s": round(busy - server_cpu - backend_cpu - wrk_cpu, 3),
            # CPU used by processes that are not part of the test.
            "others_cpu_s": round(others, 3),
            "steal_s": round(steal, 3),
            # Other processes used more than a tenth of a core, or the
            # hypervisor stole as much: requests/s is suspect.
            "noisy": (others + steal) > NOISE_CORES * w["duration_s"],
            "wall_s": round(wall, 3),
            "waited_for_quiet_s": waited,
        }
        log(
            f"{label:>8} {server.name:<10} {req:>8} req  {row['rps']:>9.0f} rps  "
            f"p50 {row['latency_ms']['p50']:.2f} ms  p99 {row['latency_ms']['p99']:.2f} ms  "
            f"cpu {row['cpu_us_per_req']} us/req  (server core {row['server_core_util']:.0%}, "
            f"wrk core {row['wrk_core_util']:.0%})  non-2xx/3xx {row['non_2xx_3xx']}"
            + (f"  NOISY (other processes {others:.2f} s CPU, steal {steal:.2f} s)" if row["noisy"] else "")
        )
        return row


# ------------------------------------------------------------------ ClickHouse accounting


def ch_counts(ch_url, db):
    out = ch_query(ch_url, f"SELECT count(), uniqExact(click_id) FROM {db}.clicks FORMAT TSV").split()
    return int(out[0]), int(out[1])


def ch_wait_stable(ch_url, db, expect, timeout):
    """Poll until the count reaches `expect` or stops growing for 3 s, at most `timeout` s."""
    deadline = time.monotonic() + timeout
    last, same_since = None, time.monotonic()
    polls = []
    while True:
        try:
            c = ch_counts(ch_url, db)
        except (OSError, urllib.error.URLError, ValueError, IndexError) as e:
            c = None
            polls.append(str(e)[:200])
        if c is not None:
            polls.append(list(c))
            if c != last:
                last, same_since = c, time.monotonic()
            if c[0] >= expect or time.monotonic() - same_since >= 3:
                break
        if time.monotonic() >= deadline:
            break
        time.sleep(1)
    return last, polls


def ch_flags(ch_url, db):
    try:
        out = ch_query(
            ch_url,
            f"SELECT countIf(is_bot != 0), countIf(is_rate_limited != 0), uniqExact(code) "
            f"FROM {db}.clicks FORMAT TSV",
        ).split()
        return {"is_bot": int(out[0]), "is_rate_limited": int(out[1]), "distinct_codes": int(out[2])}
    except Exception as e:  # the columns are contract, but report rather than die
        return {"error": str(e)[:300]}


# ------------------------------------------------------------------ report


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def tool_version(argv):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (p.stdout + p.stderr).strip().splitlines()[0]
    except Exception:
        return "unknown"


def git_rev(root):
    try:
        rev = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock"], capture_output=True, text=True).stdout.strip()
        return rev + ("+uncommitted" if dirty else "")
    except Exception:
        return "unknown"


def binary_info(path, root):
    """The binary's build time and whether any source is newer than it."""
    try:
        mtime = os.path.getmtime(path)
    except OSError:
        return None
    newer = []
    for base in ("src", "Cargo.toml", "Cargo.lock"):
        top = os.path.join(root, base)
        for dirpath, _, files in os.walk(top) if os.path.isdir(top) else [(os.path.dirname(top), [], [base])]:
            for f in files:
                fp = os.path.join(dirpath, f)
                try:
                    if os.path.getmtime(fp) > mtime:
                        newer.append(os.path.relpath(fp, root))
                except OSError:
                    pass
    return {
        "path": os.path.relpath(path, root) if path.startswith(root) else path,
        "built_at": dt.datetime.fromtimestamp(mtime).astimezone().isoformat(timespec="seconds"),
        "sources_newer_than_binary": sorted(newer)[:20],
    }


def median(rows, key, sub=None):
    vals = [(r[key][sub] if sub else r[key]) for r in rows]
    vals = [v for v in vals if v is not None]
    return round(statistics.median(vals), 3) if vals else None


def summarize(rows, targets):
    med = {}
    for t in targets:
        rs = [r for r in rows if r["target"] == t and r["label"].startswith("round") and not r.get("discarded")]
        if not rs:
            continue
        med[t] = {
            "runs": len(rs),
            "rps": median(rs, "rps"),
            "cpu_us_per_req": median(rs, "cpu_us_per_req"),
            "backend_cpu_us_per_req": median(rs, "backend_cpu_us_per_req"),
            "p50_ms": median(rs, "latency_ms", "p50"),
            "p99_ms": median(rs, "latency_ms", "p99"),
            "server_core_util": median(rs, "server_core_util"),
            "wrk_core_util": median(rs, "wrk_core_util"),
            "bytes_per_response": median(rs, "bytes_per_response"),
            "non_2xx_3xx": sum(r["non_2xx_3xx"] for r in rs),
            "noisy_runs": sum(1 for r in rs if r.get("noisy")),
        }
    ratios = {}
    if "trackedge" in med:
        for base in ("nginx", "nginx-log"):
            if base in med:
                b, t = med[base], med["trackedge"]
                ratios[f"trackedge/{base}"] = {
                    "rps": round(t["rps"] / b["rps"], 3) if b["rps"] else None,
                    "cpu_us_per_req": round(t["cpu_us_per_req"] / b["cpu_us_per_req"], 3) if b["cpu_us_per_req"] else None,
                }
    if "nginx" in med and "nginx-log" in med:
        b, t = med["nginx"], med["nginx-log"]
        ratios["nginx-log/nginx"] = {
            "rps": round(t["rps"] / b["rps"], 3) if b["rps"] else None,
            "cpu_us_per_req": round(t["cpu_us_per_req"] / b["cpu_us_per_req"], 3) if b["cpu_us_per_req"] else None,
        }
    return med, ratios


def fmt(v, spec=""):
    if v is None:
        return "–"
    return format(v, spec)


def markdown(res):
    m = res["machine"]
    s = res["settings"]
    L = []
    L.append(f"# trackedge vs nginx: `GET /{{code}}` → 302 ({res['date']})")
    L.append("")
    L.append(f"- Command: `{res['command']}`")
    L.append(f"- Started: {res['started_at']}, took {res['elapsed_s']:.0f} s")
    L.append(f"- Machine: {m['nproc']} CPUs, {m['cpu_model']}, kernel {m['kernel']}, load average at start {m['loadavg_at_start']}")
    b = m.get("trackedge_binary")
    if b:
        stale = b["sources_newer_than_binary"]
        bin_note = f", binary built {b['built_at']}" + (
            f" (**older than** {', '.join(stale[:3])}{'…' if len(stale) > 3 else ''})" if stale else ""
        )
    else:
        bin_note = ""
    L.append(f"- trackedge source {m['trackedge_rev']}{bin_note}; {m['nginx']}; {m['wrk']}")
    L.append(
        f"- Load: wrk -t{s['threads']} -c{s['connections']} -d{s['duration_s']}s pinned to CPU {CLIENT_CPU}; "
        f"servers pinned to CPU {SERVER_CPU}; {s['rounds']} round(s) of {' → '.join(s['order'])}, "
        f"after a {s['warmup_s']} s warm-up each; {s['links']} links, Zipf-like pick (index = ⌊N·r³⌋), "
        f"sub1/sub2 on ~half the requests, browser User-Agents"
        + (", X-Forwarded-For from 762 IPv4 + random IPv6 documentation addresses" if s.get("x_forwarded_for") else ", no X-Forwarded-For (every client is 127.0.0.1)")
    )
    if s.get("backends_pinned_to_cpu"):
        L.append(f"- Redis and ClickHouse pinned to CPU {s['backends_pinned_to_cpu']} (with wrk)")
    if s.get("trackedge_limits_clicks_per_ip_per_minute"):
        L.append(f"- trackedge: TRACKEDGE_LIMITS_CLICKS_PER_IP_PER_MINUTE={s['trackedge_limits_clicks_per_ip_per_minute']}")
    if s.get("nginx_only"):
        L.append("- **nginx-only run** (`--nginx-only`): trackedge was not started; the codes are synthetic")
    L.append("")
    L.append("## Medians")
    L.append("")
    L.append("| target | runs | requests/s | server CPU µs/req | + Redis/ClickHouse µs/req | server core busy | wrk core busy | p50 ms | p99 ms | bytes/resp | non-2xx/3xx |")
    L.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for t, v in res["medians"].items():
        back = fmt(v["backend_cpu_us_per_req"], ".2f") if t == "trackedge" else "–"
        L.append(
            f"| {t}{' ⚠' if v.get('noisy_runs') else ''} | {v['runs']} | {fmt(v['rps'], ',.0f')} | {fmt(v['cpu_us_per_req'], '.2f')} | {back} | "
            f"{fmt(v['server_core_util'], '.0%')} | {fmt(v['wrk_core_util'], '.0%')} | {fmt(v['p50_ms'], '.2f')} | "
            f"{fmt(v['p99_ms'], '.2f')} | {fmt(v['bytes_per_response'], '.0f')} | {v['non_2xx_3xx']} |"
        )
    L.append("")
    if res["ratios"]:
        L.append("| ratio | requests/s | CPU µs/req |")
        L.append("| --- | ---: | ---: |")
        for k, v in res["ratios"].items():
            L.append(f"| {k} | {fmt(v['rps'], '.2f')}× | {fmt(v['cpu_us_per_req'], '.2f')}× |")
        L.append("")
    acc = res.get("clicks")
    if acc:
        L.append("## Click accounting (trackedge → ClickHouse)")
        L.append("")
        L.append(f"- Redirects answered by trackedge (wrk requests incl. warm-up, minus non-2xx/3xx, plus {acc['probe_requests']} probe request(s)): **{acc['answered']:,}**")
        if acc.get("before_shutdown"):
            c, d = acc["before_shutdown"]
            L.append(f"- In `{acc['database']}.clicks` while still running (polled {acc['poll_s_before']:.0f} s after the last run): {c:,} rows, {d:,} distinct click_id")
        if acc.get("after_shutdown"):
            c, d = acc["after_shutdown"]
            L.append(f"- After SIGTERM (exit code {acc['exit_code']}, took {acc['stop_s']} s): **{c:,} rows, {d:,} distinct click_id**")
            L.append(f"- lost = answered − distinct = **{acc['lost']:,}**; duplicates = rows − distinct = {acc['duplicates']:,}")
        else:
            L.append("- ClickHouse could not be read after shutdown")
        if acc.get("flags"):
            L.append(f"- flags: {json.dumps(acc['flags'])}")
        sp = acc.get("spool_after_shutdown") or {}
        L.append(
            f"- spool directory after shutdown: {sp.get('files', 0)} file(s), {sp.get('bytes', 0) / 2**20:.1f} MiB"
            + (f": {', '.join(sp['list'][:6])}" if sp.get("list") else "")
        )
        bound = acc.get("in_flight_bound")
        verdict = ""
        if acc.get("lost") is not None and bound is not None:
            if acc["lost"] > 0:
                verdict = " **Clicks were lost.**"
            elif acc["lost"] < -bound:
                verdict = " **More clicks than requests could explain.**"
            else:
                verdict = " Within the expected range: nothing lost."
        L.append(
            f"- A negative `lost` down to −{bound:,} (connections × trackedge runs) is expected: wrk stops "
            "counting the requests in flight when its time is up, but the server may have answered and "
            f"recorded them.{verdict}"
        )
        L.append("")
    nl = res.get("nginx_log_lines")
    if nl:
        L.append(
            f"nginx-log wrote {nl['lines']:,} access-log lines for {nl['answered']:,} answered requests "
            f"(difference {nl['answered'] - nl['lines']:,})."
        )
        L.append("")
    noisy = [i for i, r in enumerate(res["runs"], 1) if r.get("noisy")]
    kept = [i for i, r in enumerate(res["runs"], 1)
            if r.get("noisy") and r["label"].startswith("round") and not r.get("discarded")]
    if noisy:
        L.append(
            f"**Noisy:** run(s) {', '.join(map(str, noisy))} of {len(res['runs'])} saw more than "
            f"{NOISE_CORES:.0%} of a core used outside the test (others' CPU + steal): their requests/s is "
            f"depressed; CPU µs/req holds up better. A noisy measured run is repeated up to "
            f"{res['settings'].get('retry_noisy')} time(s) and only the quietest attempt enters the medians."
        )
        if kept:
            L.append(
                f"Still noisy and in the medians (no quiet attempt): run(s) {', '.join(map(str, kept))}; "
                "rerun on a quiet machine for requests/s figures to quote."
            )
        L.append("")
    L.append("## Runs")
    L.append("")
    L.append("| # | run | target | requests | s | requests/s | CPU µs/req | backend µs/req | server core | wrk core | others' CPU s | steal s | p50 ms | p99 ms | non-2xx/3xx | socket errors |")
    L.append("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for i, r in enumerate(res["runs"], 1):
        se = r["socket_errors"]
        ses = "0" if not any(se.values()) else ", ".join(f"{k} {v}" for k, v in se.items() if v)
        L.append(
            f"| {i} | {r['label']}{' (discarded)' if r.get('discarded') else ''} | {r['target']} | {r['requests']:,} | {r['duration_s']:.2f} | {r['rps']:,.0f} | "
            f"{fmt(r['cpu_us_per_req'], '.2f')} | {fmt(r['backend_cpu_us_per_req'], '.2f')} | {r['server_core_util']:.0%} | "
            f"{r['wrk_core_util']:.0%} | {r['others_cpu_s']:.2f}{' ⚠' if r.get('noisy') else ''} | {r['steal_s']:.2f} | {r['latency_ms']['p50']:.2f} | "
            f"{r['latency_ms']['p99']:.2f} | {r['non_2xx_3xx']} | {ses} |"
        )
    L.append("")
    L.append("## Sample responses")
    L.append("")
    for name, pr in res["probes"].items():
        L.append(f"- {name}: `{pr['status']}` Location `{pr.get('location')}` ({len(pr.get('location') or '')} chars)")
    L.append("")
    L.append(
        "Warm-up and discarded runs are not in the medians (they are in the JSON and in the click accounting). "
        "CPU µs/req is the server's utime+stime from /proc/PID/stat (all threads; nginx master + worker) "
        "over the run, divided by the requests wrk completed. See loadtests/README.md for caveats."
    )
    return "\n".join(L) + "\n"


# ------------------------------------------------------------------ main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="repository root")
    ap.add_argument("--workdir", required=True, help="scratch directory (under target/)")
    ap.add_argument("--results", required=True, help="directory for <date>.md/.json")
    ap.add_argument("--result-name", default=None, help="file stem (default: today's date)")
    ap.add_argument("--command", default=" ".join(sys.argv))
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--links", type=int, default=1000)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pause", type=float, default=2.0, help="seconds of idle between runs")
    ap.add_argument("--nginx-only", action="store_true", help="measure only the two nginx baselines")
    ap.add_argument("--services-root", help="scripts/services.sh ROOT (for services.env and pids)")
    ap.add_argument("--spool", help="TRACKEDGE_SPOOL_DIR")
    ap.add_argument("--database", default="loadtest")
    ap.add_argument("--wait-quiet", type=int, default=60, help="before each run, wait up to S s for an idle machine (0: never)")
    ap.add_argument("--retry-noisy", type=int, default=2, help="repeat a noisy measured run up to N times")
    ap.add_argument("--no-pin-backends", action="store_true", help="leave Redis/ClickHouse on any CPU")
    ap.add_argument("--trackedge-bin", help="binary to test (default ROOT/target/release/trackedge)")
    args = ap.parse_args()

    signal.signal(signal.SIGTERM, _raise_abort)
    signal.signal(signal.SIGHUP, _raise_abort)

    started_at = dt.datetime.now().astimezone()
    t_start = time.monotonic()
    os.makedirs(args.workdir, exist_ok=True)
    os.makedirs(args.results, exist_ok=True)
    with open("/proc/loadavg") as f:
        loadavg = " ".join(f.read().split()[:3])

    for name, port in PORTS.items():
        if args.nginx_only and name.startswith("trackedge"):
            continue
        if port_open(port):
            raise Abort(f"port {port} ({name}) is already in use on 127.0.0.1; is another load test running?")

    servers = []
    res = {
        "date": started_at.date().isoformat(),
        "started_at": started_at.isoformat(timespec="seconds"),
        "command": args.command,
        "machine": {
            "nproc": os.cpu_count(),
            "cpu_model": cpu_model(),
            "kernel": platform.release(),
            "loadavg_at_start": loadavg,
            "clk_tck": CLK_TCK,
            "nginx": tool_version(["nginx", "-v"]),
            "wrk": " ".join(tool_version(["wrk", "-v"]).split()[:3]),
            "trackedge_rev": git_rev(args.root),
        },
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
            "links": args.links,
            "connections": args.connections,
            "threads": args.threads,
            "seed": args.seed,
            "nginx_only": args.nginx_only,
            "wait_quiet_s": args.wait_quiet,
            "retry_noisy": args.retry_noisy,
            "x_forwarded_for": os.environ.get("LT_XFF", "1") != "0",
        },
        "probes": {},
        "runs": [],
    }
    te = None
    ch_url = None
    backend_pids = []
    codes_file = os.path.join(args.workdir, "codes.txt")
    probe_requests = 0
    try:
        cid_len = 32
        if not args.nginx_only:
            env_file = os.path.join(args.services_root, "services.env")
            svc = {}
            with open(env_file) as f:
                for line in f:
                    if "=" in line:
                        k, v = line.strip().split("=", 1)
                        svc[k] = v
            ch_url = svc["TRACKEDGE_CLICKHOUSE_URL"]
            for pf in ("redis/redis.pid", "clickhouse/clickhouse.pid"):
                try:
                    with open(os.path.join(args.services_root, pf)) as f:
                        backend_pids.append(int(f.read().strip()))
                except (OSError, ValueError):
                    pass
            # Redis and ClickHouse share wrk's CPU, so that the server's CPU
            # is its own: otherwise ClickHouse, digesting trackedge's inserts,
            # preempts trackedge on CPU 0 and its requests/s drops for a reason
            # that is not its own code. (-a: every thread, and the threads
            # they start later inherit it.)
            if not args.no_pin_backends:
                for bp in backend_pids:
                    subprocess.run(["taskset", "-a", "-p", "-c", CLIENT_CPU, str(bp)], check=True, stdout=subprocess.DEVNULL)
            res["settings"]["backends_pinned_to_cpu"] = None if args.no_pin_backends else CLIENT_CPU
            # A fresh database and spool, so the accounting sees only this run's clicks.
            ch_query(ch_url, f"DROP DATABASE IF EXISTS {args.database}")
            shutil.rmtree(args.spool, ignore_errors=True)
            os.makedirs(args.spool, exist_ok=True)
            token = secrets.token_hex(16)
            env = dict(
                os.environ,
                TRACKEDGE_LISTEN=f"127.0.0.1:{PORTS['trackedge']}",
                TRACKEDGE_ADMIN_LISTEN=f"127.0.0.1:{PORTS['trackedge-admin']}",
                TRACKEDGE_REDIS_URL=svc["TRACKEDGE_REDIS_URL"],
                TRACKEDGE_CLICKHOUSE_URL=ch_url,
                TRACKEDGE_CLICKHOUSE_DATABASE=args.database,
                TRACKEDGE_SECRET=secrets.token_urlsafe(32),
                TRACKEDGE_ADMIN_TOKEN=token,
                TRACKEDGE_SPOOL_DIR=args.spool,
            )
            # Measure the ordinary, billable click path: the replayed request
            # pool repeats each client address hundreds of times a minute, so
            # the shipped per-IP limit (120/min) would flag almost every click.
            # The limiter stays on, only its threshold is out of reach.
            # Set the variable yourself to measure another limit.
            env.setdefault("TRACKEDGE_LIMITS_CLICKS_PER_IP_PER_MINUTE", "100000000")
            res["settings"]["trackedge_limits_clicks_per_ip_per_minute"] = env[
                "TRACKEDGE_LIMITS_CLICKS_PER_IP_PER_MINUTE"
            ]
            te_bin = args.trackedge_bin or os.path.join(args.root, "target/release/trackedge")
            res["machine"]["trackedge_binary"] = binary_info(te_bin, args.root)
            te = Server(
                "trackedge",
                PORTS["trackedge"],
                [te_bin, "serve"],
                env,
                args.root,
                os.path.join(args.workdir, "trackedge.log"),
                os.path.join(args.workdir, "trackedge.pid"),
            )
            log(f"starting trackedge (log: {te.logfile})")
            te.start()
            servers.append(te)
            admin = PORTS["trackedge-admin"]
            wait_until(lambda: http_get(admin, "/readyz", timeout=2)[0] == 200, 120, "trackedge /readyz", te)
            log(f"seeding {args.links} links")
            info = seedmod.seed(f"http://127.0.0.1:{admin}", token, args.links, codes_file)
            res["seed"] = info
            log(f"seeded in {info['seconds']} s: {json.dumps(info)}")
            # One probe request: checks the redirect and sizes nginx's Location like trackedge's.
            with open(codes_file) as f:
                code0 = f.readline().strip()
            st, hdrs, _ = http_get(
                PORTS["trackedge"],
                f"/{code0}?sub1=abc12&sub2=camp3",
                {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
                 "X-Forwarded-For": "192.0.2.1"},
            )
            probe_requests += 1
            loc = hdrs.get("Location") or hdrs.get("location")
            res["probes"]["trackedge"] = {"status": st, "location": loc, "headers": hdrs}
            if st != 302 or not loc:
                raise Abort(f"trackedge probe GET /{code0} answered {st}, Location {loc!r}")
            m = re.search(r"[?&]cid=([^&]*)", loc)
            if m and m.group(1):
                cid_len = len(m.group(1))
        else:
            alphabet = string.ascii_letters + string.digits
            with open(codes_file, "w") as f:
                for _ in range(args.links):
                    f.write("".join(secrets.choice(alphabet) for _ in range(8)) + "\n")

        cid = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(cid_len))
        access_log = os.path.join(args.workdir, "nginx-log", "access.log")
        ng = nginx_server("nginx", PORTS["nginx"], args.workdir, cid)
        ngl = nginx_server("nginx-log", PORTS["nginx-log"], args.workdir, cid, access_log)
        for s in (ng, ngl):
            log(f"starting {s.name} on 127.0.0.1:{s.port}")
            s.start()
            servers.append(s)
        for s in (ng, ngl):
            wait_until(lambda s=s: port_open(s.port), 10, f"{s.name} port {s.port}", s)
            st, hdrs, _ = http_get(s.port, "/Abc123?sub1=abc12&sub2=camp3")
            res["probes"][s.name] = {"status": st, "location": hdrs.get("Location"), "headers": hdrs}
            if st != 302:
                raise Abort(f"{s.name} probe answered {st}")

        order = [ng, te, ngl] if te else [ng, ngl]
        res["settings"]["order"] = [s.name for s in order]
        runner = Runner(args, codes_file, backend_pids)
        if args.warmup > 0:
            for s in order:
                res["runs"].append(runner.run(s, args.warmup, "warmup"))
                time.sleep(args.pause)
        for rnd in range(1, args.rounds + 1):
            for s in order:
                attempts = []
                for attempt in range(args.retry_noisy + 1):
                    row = runner.run(s, args.duration, f"round{rnd}")
                    res["runs"].append(row)
                    attempts.append(row)
                    time.sleep(args.pause)
                    if not row["noisy"]:
                        break
                    if attempt < args.retry_noisy:
                        log("run was noisy: repeating it")
                # The medians take the quietest attempt; the others stay in
                # the JSON and the click accounting, marked discarded.
                keep = min(attempts, key=lambda r: r["others_cpu_s"] + r["steal_s"])
                for r in attempts:
                    if r is not keep:
                        r["discarded"] = True

        if te:
            te_rows = [r for r in res["runs"] if r["target"] == "trackedge"]
            answered = sum(r["requests"] - r["non_2xx_3xx"] for r in te_rows) + probe_requests
            acc = {"database": args.database, "answered": answered, "probe_requests": probe_requests}
            t0 = time.monotonic()
            before, polls = ch_wait_stable(ch_url, args.database, answered, 15)
            acc["before_shutdown"], acc["poll_s_before"], acc["polls_before"] = before, time.monotonic() - t0, polls
            try:
                st, _, body = http_get(PORTS["trackedge-admin"], "/metrics")
                acc["metrics_excerpt"] = [
                    l for l in body.decode(errors="replace").splitlines()
                    if not l.startswith("#") and re.search(r"click|redirect|spool|flush|insert|drop", l, re.I)
                ][:40]
            except OSError as e:
                acc["metrics_excerpt"] = [f"error: {e}"]
            log("stopping trackedge (SIGTERM), then re-counting clicks")
            acc["exit_code"] = te.stop(signal.SIGTERM, timeout=120)
            acc["stop_s"] = te.stop_seconds
            after, polls = ch_wait_stable(ch_url, args.database, answered, 15)
            acc["after_shutdown"], acc["polls_after"] = after, polls
            if after:
                acc["lost"] = answered - after[1]
                acc["duplicates"] = after[0] - after[1]
            # wrk does not count the requests in flight when its time is up,
            # at most one per connection per run: that many more clicks than
            # "answered" can legitimately be in ClickHouse.
            acc["in_flight_bound"] = args.connections * len(te_rows)
            acc["flags"] = ch_flags(ch_url, args.database)
            # What the spool holds after shutdown: trackedge may keep a
            # write-ahead log there (segments and a cursor) as well as events
            # it could not deliver, so this is listed, not judged.
            spool = []
            for dirpath, _, files in os.walk(args.spool):
                for f in files:
                    fp = os.path.join(dirpath, f)
                    try:
                        spool.append((os.path.relpath(fp, args.spool), os.path.getsize(fp)))
                    except OSError:
                        pass
            acc["spool_after_shutdown"] = {
                "files": len(spool),
                "bytes": sum(b for _, b in spool),
                "list": [f"{p} ({b} B)" for p, b in sorted(spool)[:20]],
            }
            res["clicks"] = acc

        for s in (ng, ngl):
            s.stop(signal.SIGQUIT, timeout=30)  # graceful: flushes the buffered access log
        ngl_answered = sum(r["requests"] - r["non_2xx_3xx"] for r in res["runs"] if r["target"] == "nginx-log") + 1
        try:
            with open(access_log, "rb") as f:
                lines = sum(1 for _ in f)
            res["nginx_log_lines"] = {"lines": lines, "answered": ngl_answered}
        except OSError:
            pass

        targets = [s.name for s in order]
        res["medians"], res["ratios"] = summarize(res["runs"], targets)
    finally:
        for s in reversed(servers):
            if s.running():
                log(f"stopping {s.name}")
                s.stop(signal.SIGTERM if s.name == "trackedge" else signal.SIGQUIT, timeout=60)
    res["elapsed_s"] = round(time.monotonic() - t_start, 1)

    stem = args.result_name or res["date"]
    md = markdown(res)
    jpath = os.path.join(args.results, stem + ".json")
    with open(jpath + ".tmp", "w") as f:
        json.dump(res, f, indent=2)
        f.write("\n")
    os.replace(jpath + ".tmp", jpath)
    with open(os.path.join(args.results, stem + ".md"), "w") as f:
        f.write(md)
    print(md)
    log(f"wrote {os.path.join(args.results, stem)}.md and .json")
    acc = res.get("clicks")
    if acc and (acc.get("lost") is None or acc["lost"] > 0 or acc.get("exit_code") != 0):
        log("click accounting FAILED: clicks were lost or trackedge did not exit cleanly")
        return 3
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Abort as e:
        log(f"aborted: {e}")
        sys.exit(1)
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
