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
import atexit
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
import bulkseed  # noqa: E402
import postback as pbmod  # noqa: E402
import scenarios as scenmod  # noqa: E402
import seed as seedmod  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVER_CPU = "0"  # every server under test is pinned here
CLIENT_CPU = "1"  # wrk is pinned here
NOISE_CORES = 0.1  # "other busy" + steal above this share of a core marks a run noisy
# Every scenario --scenarios accepts: the redirect mixes and the postbacks.
SCENARIOS = {**scenmod.DESCRIPTIONS, pbmod.NAME: pbmod.DESCRIPTION}
# Scenarios whose answers the generators read: the text an answer's body
# must hold to count (accepted postbacks).
EXPECT_BODY = {pbmod.NAME: pbmod.EXPECT}

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


def deprioritize(pid):
    """Puts every thread of pid under SCHED_IDLE; returns the policy set.

    A SCHED_IDLE thread runs only when no normal thread wants its CPU, and a
    normal thread that wakes up preempts it at once. Threads started later
    inherit the policy from the thread that starts them. Lowering one's own
    processes' priority needs no privilege; where SCHED_IDLE is refused all
    the same, nice 19 is the fallback, a weaker one: a nice-19 thread keeps
    the CPU for the rest of its slice (see loadtests/README.md: dispatch lag
    p99 0.48 ms and p99.9 latency 16 ms beside a bursty nice-19 neighbour,
    against 0.06 and 2.4 ms beside a SCHED_IDLE one)."""
    policy = "SCHED_IDLE"
    done = set()
    while True:
        try:
            tids = {int(t) for t in os.listdir(f"/proc/{pid}/task")} - done
        except OSError:
            return policy
        if not tids:
            return policy
        for tid in tids:
            try:
                if policy == "SCHED_IDLE":
                    os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
                else:
                    os.setpriority(os.PRIO_PROCESS, tid, 19)
            except ProcessLookupError:
                pass  # the thread has exited
            except PermissionError:
                if policy != "SCHED_IDLE":
                    raise
                policy = "nice 19"
                done = set()  # start over with nice on every thread
                break
            done.add(tid)


def thread_policies(pid):
    """Counter of the scheduling policies of pid's threads ("SCHED_IDLE": n, ...)."""
    names = {os.SCHED_OTHER: "SCHED_OTHER", os.SCHED_BATCH: "SCHED_BATCH", os.SCHED_IDLE: "SCHED_IDLE"}
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tids:
        try:
            p = os.sched_getscheduler(int(t))
            nice = os.getpriority(os.PRIO_PROCESS, int(t))
        except OSError:
            continue
        k = names.get(p, str(p)) + (f" nice {nice}" if p != os.SCHED_IDLE and nice else "")
        out[k] = out.get(k, 0) + 1
    return out


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
worker_processes {workers};
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
        # The baseline of the postback scenario: trackedge's answer to an
        # accepted postback, same size, same headers that matter.
        location = /postback {{
            default_type application/json;
            add_header Cache-Control no-store;
            return 200 '{pb_body}';
        }}
        location / {{
            add_header Cache-Control no-store;
            add_header Referrer-Policy no-referrer-when-downgrade;
            return 302 "https://shop.example.com/landing?aff=1&cid={cid}&s1=$arg_sub1";
        }}
    }}
}}
"""


def nginx_server(name, port, workdir, cid, pb_body, access_log_path=None):
    d = os.path.join(workdir, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "tmp"))
    if access_log_path:
        al = f"access_log {access_log_path} combined buffer=64k flush=1s;"
    else:
        al = "access_log off;"
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(workers=len(SERVER_CPU.split(",")), dir=d, port=port, cid=cid, pb_body=pb_body, access_log=al))
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
    if j.get("bodies") and j["bodies"]["answered"] != requests:
        raise Abort(f"wrk's count ({requests}) and codes.lua's answered responses ({j['bodies']['answered']}) disagree")
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
        "bodies": j.get("bodies"),
    }


class Runner:
    def __init__(self, args, backend_pids):
        self.args = args
        self.backend_pids = backend_pids
        self.lua = os.path.join(HERE, "codes.lua")
        self.outdir = os.path.join(args.workdir, "wrk")
        os.makedirs(self.outdir, exist_ok=True)
        self.n = 0
        # Run nonce of every `{seq}`: with the run number, no two runs of
        # this invocation (nor of another: Redis is emptied anyway) send
        # the same order id.
        self.nonce = secrets.token_hex(3)

    def seq_prefix(self):
        """What `{seq}` starts with in the current run."""
        return f"{self.nonce}r{self.n}-"

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

    def run(self, server, duration, label, scenario, requests_file):
        """One wrk run against server; returns a row of measurements.

        For a scenario in EXPECT_BODY, codes.lua reads every answer and the
        row's `bodies` counts them (wrk spends a little more per request)."""
        a = self.args
        waited = self.wait_quiet() if a.wait_quiet > 0 else 0
        argv = [
            "taskset", "-c", CLIENT_CPU, *wrk_priority(a)[1], "wrk",
            f"-t{a.threads}", f"-c{a.connections}", f"-d{duration}s", "--latency",
            "-s", self.lua, f"http://127.0.0.1:{server.port}/",
        ]
        if not server.running():
            raise Abort(f"{server.name} is not running (exit {server.proc.returncode})\n{server.log_tail()}")
        pids = server.pids()
        self.n += 1
        env = dict(os.environ, LT_REQUESTS=requests_file, LT_SEQ_PREFIX=self.seq_prefix())
        env.pop("LT_EXPECT_BODY", None)
        if scenario in EXPECT_BODY:
            env["LT_EXPECT_BODY"] = EXPECT_BODY[scenario]

        profile = start_perf_profile(
            os.path.join(self.outdir, f"{self.n:02d}-{label}-{scenario}-{server.name}"), pids)
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
        stop_perf_trace(profile)
        # Ours: the server, the backends, this script (whose children's
        # fields hold wrk) and its parent run.sh.
        exclude = set(pids) | set(self.backend_pids) | {os.getpid(), os.getppid()}
        others = others_cpu_seconds(procs0, procs1, exclude)
        steal = sys1[1] - sys0[1]

        with open(os.path.join(self.outdir, f"{self.n:02d}-{label}-{scenario}-{server.name}.txt"), "w") as f:
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
            "scenario": scenario,
            "label": label,
            "requests": req,
            "duration_s": round(w["duration_s"], 3),
            "rps": round(req / w["duration_s"], 1),
            "non_2xx_3xx": w["non_2xx_3xx"],
            "socket_errors": w["socket_errors"],
            "bytes_per_response": round(w["bytes"] / req, 1) if req else None,
            "latency_ms": {k: round(v / 1000, 3) for k, v in w["latency_us"].items()},
            "bodies": w["bodies"],
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
            f"{label:>8} {scenario:<8} {server.name:<10} {req:>8} req  {row['rps']:>9.0f} rps  "
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


# ------------------------------------------------------------------ memory, metrics, fixed-rate load


def proc_status(pid):
    """VmRSS and its parts (RssAnon, RssFile, RssShmem) in MiB, from /proc/PID/status."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM", "Threads"):
                    n = int(v.split()[0])
                    out[k] = n if k == "Threads" else round(n / 1024, 1)
    except OSError:
        pass
    return out


def te_metrics(port):
    """The admin /metrics as {'name{labels}': value}."""
    st, _, body = http_get(port, "/metrics", timeout=3)
    if st != 200:
        return {}
    out = {}
    for line in body.decode(errors="replace").splitlines():
        if not line or line.startswith("#"):
            continue
        k, _, v = line.rpartition(" ")
        try:
            out[k] = float(v)
        except ValueError:
            pass
    return out


def metric(m, name, labels=None):
    if labels:
        for k, v in m.items():
            if k.startswith(name + "{") and all(f'{a}="{b}"' in k for a, b in labels.items()):
                return v
        return None
    return m.get(name)


def unshipped_clicks(m):
    """Clicks recorded and not (yet) shipped, from the admin metrics `m`
    (dropped ones included: they are never shipped); None when missing."""
    recorded = metric(m, "trackedge_clicks_recorded_total")
    flushed = metric(m, "trackedge_events_flushed_total", {"table": "clicks"})
    if recorded is None or flushed is None:
        return None
    return recorded - flushed


def wait_shipped(admin_port, server, limit=600):
    """Waits until trackedge has shipped every click it recorded (or
    dropped it, with a full spool); returns the seconds waited.

    A fixed-rate round of trackedge starts from here, as nginx's starts
    with nothing owed: otherwise its latency includes the shipper working
    off the backlog of the rounds before it, which the saturating rounds
    leave large (ClickHouse, on the generator's CPU, falls behind), and
    the third of three rounds paid for the first two."""
    t0 = time.monotonic()

    def caught_up():
        m = te_metrics(admin_port)
        left = unshipped_clicks(m)
        return left is not None and left <= (metric(m, "trackedge_clicks_dropped_total") or 0)

    wait_until(caught_up, limit, "trackedge to ship the clicks of the runs before", server=server, interval=0.5)
    return round(time.monotonic() - t0, 1)


class Sampler:
    """Samples trackedge every `interval` s in a thread: RSS, spool, shipper, ClickHouse lag."""

    def __init__(self, te, admin_port, ch_url, db, interval):
        import threading

        self.te, self.admin, self.ch_url, self.db = te, admin_port, ch_url, db
        self.interval = interval
        self.samples = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def start(self):
        self.t0 = time.monotonic()
        self._t.start()
        return self

    def stop(self):
        self._stop.set()
        self._t.join(timeout=30)
        return self.samples

    def sample(self):
        now = time.time()
        row = {"t_s": round(time.monotonic() - self.t0, 1)}
        st = proc_status(self.te.pid)
        row["rss_mib"] = st.get("VmRSS")
        row["rss_anon_mib"] = st.get("RssAnon")
        try:
            m = te_metrics(self.admin)
        except OSError:
            m = {}
        row["spool_bytes"] = metric(m, "trackedge_spool_bytes")
        row["spool_oldest_event_age_s"] = metric(m, "trackedge_spool_oldest_event_age_seconds")
        row["clicks_recorded"] = metric(m, "trackedge_clicks_recorded_total")
        row["clicks_flushed"] = metric(m, "trackedge_events_flushed_total", {"table": "clicks"})
        row["clicks_dropped"] = metric(m, "trackedge_clicks_dropped_total")
        if unshipped_clicks(m) is not None:
            row["unshipped_clicks"] = unshipped_clicks(m)
        try:
            out = ch_query(self.ch_url, f"SELECT toUInt32(max(ts)), count() FROM {self.db}.clicks FORMAT TSV", timeout=4).split()
            # ts has 1 s resolution: the lag is overstated by up to 1 s.
            row["ch_lag_s"] = round(now - int(out[0]), 1) if int(out[0]) > 0 else None
            row["ch_rows"] = int(out[1])
        except Exception as e:  # report, don't die
            row["ch_error"] = str(e)[:200]
        if self.samples and row.get("clicks_flushed") is not None and self.samples[-1].get("clicks_flushed") is not None:
            prev = self.samples[-1]
            dt_ = row["t_s"] - prev["t_s"]
            if dt_ > 0:
                row["flushed_rows_per_s"] = round((row["clicks_flushed"] - prev["clicks_flushed"]) / dt_)
        self.samples.append(row)

    def _loop(self):
        # The first sample only after one interval: before the load has run
        # that long, now - max(ts) measures the idle time before it.
        self._stop.wait(self.interval)
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception as e:
                self.samples.append({"t_s": round(time.monotonic() - self.t0, 1), "error": str(e)[:200]})
            self._stop.wait(self.interval)


def sampler_summary(samples):
    def vals(k):
        return [r[k] for r in samples if r.get(k) is not None]

    def mx(k):
        v = vals(k)
        return max(v) if v else None

    rates = vals("flushed_rows_per_s")
    return {
        "samples": len(samples),
        "max_rss_mib": mx("rss_mib"),
        "max_spool_mib": round(mx("spool_bytes") / 2**20, 1) if mx("spool_bytes") is not None else None,
        "max_oldest_unshipped_age_s": mx("spool_oldest_event_age_s"),
        "max_ch_lag_s": mx("ch_lag_s"),
        "median_ch_lag_s": statistics.median(vals("ch_lag_s")) if vals("ch_lag_s") else None,
        "max_unshipped_clicks": mx("unshipped_clicks"),
        "median_flushed_rows_per_s": round(statistics.median(rates)) if rates else None,
        "max_flushed_rows_per_s": max(rates) if rates else None,
        "clicks_dropped": mx("clicks_dropped"),
    }


def run_loadgen(args, runner, server, requests_file, rate, duration, warmup, label, scenario="zipf", sampler=None):
    """One fixed-rate run of trackedge-loadgen (pinned to CLIENT_CPU); returns a row."""
    waited = runner.wait_quiet() if args.wait_quiet > 0 else 0
    runner.n += 1
    out = os.path.join(runner.outdir, f"{runner.n:02d}-{label}-{scenario}-{server.name}.json")
    argv = [
        "taskset", "-c", CLIENT_CPU, *generator_priority()[1], args.loadgen,
        "--target", f"127.0.0.1:{server.port}", "--requests", requests_file,
        "--rate", str(int(rate)), "--duration", str(duration), "--warmup", str(warmup),
        "--connections", str(args.connections), "--out", out, "--label", label,
        "--seq-prefix", runner.seq_prefix(),
    ]
    if scenario in EXPECT_BODY:
        argv += ["--expect-body", EXPECT_BODY[scenario]]
    if os.environ.get("LT_STALL_US"):
        # The loadgen's stall threshold (default 5,000 µs); stalls.py reads them.
        argv += ["--stall-us", os.environ["LT_STALL_US"]]
    pids = server.pids()
    cpu0 = cpu_seconds(pids)
    procs0 = all_procs_cpu()
    sys0 = system_cpu()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    rss0 = proc_status(server.pid).get("VmRSS")
    perf = start_perf_trace(out)
    if sampler:
        sampler.start()
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=duration + warmup + 120)
    finally:
        samples = sampler.stop() if sampler else None
        perf_data = stop_perf_trace(perf)
    cpu1 = cpu_seconds(pids)
    procs1 = all_procs_cpu()
    sys1 = system_cpu()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise Abort(f"loadgen exited {p.returncode}: {p.stdout[-2000:]}{p.stderr[-2000:]}")
    with open(out) as f:
        lg = json.load(f)
    wall = duration + warmup
    others = others_cpu_seconds(procs0, procs1, set(pids) | set(runner.backend_pids) | {os.getpid(), os.getppid()})
    steal = sys1[1] - sys0[1]
    gen_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    row = {
        "kind": "fixed-rate",
        "target": server.name,
        "scenario": scenario,
        "label": label,
        "rate": int(rate),
        "loadgen": lg,
        "server_cpu_s": round(cpu1 - cpu0, 3),
        "cpu_us_per_req": round((cpu1 - cpu0) * 1e6 / lg["completed"], 2) if lg["completed"] else None,
        "server_core_util": round((cpu1 - cpu0) / wall, 3),
        "loadgen_core_util": round(gen_cpu / wall, 3),
        "rss_mib_before": rss0,
        "rss_mib_after": proc_status(server.pid).get("VmRSS"),
        "others_cpu_s": round(others, 3),
        "steal_s": round(steal, 3),
        "noisy": (others + steal) > NOISE_CORES * wall,
        "waited_for_quiet_s": waited,
    }
    if perf_data:
        row["perf_data"] = perf_data
    if samples is not None:
        row["samples"] = samples
        row["ingest"] = sampler_summary(samples)
    lat = lg.get("latency_us") or {}
    log(
        f"{label:>8} {scenario:<8} {server.name:<10} fixed {int(rate):>7}/s: {lg['measured']:>8} measured  "
        f"p50 {lat.get('p50', 0) / 1000:.3f} ms  p99 {lat.get('p99', 0) / 1000:.3f} ms  p99.9 {lat.get('p99_9', 0) / 1000:.3f} ms  "
        f"max {lat.get('max', 0) / 1000:.2f} ms  errors {lg['errors']}  (server core {row['server_core_util']:.0%})"
        + ("  NOISY" if row["noisy"] else "")
    )
    stalls = lg.get("stalls") or []
    if stalls:
        worst = sorted(stalls, key=lambda st: -st["worst_ms"])[:5]
        log(
            f"{'':>8} {len(stalls)} stalls of requests each over {lg['stall_us'] / 1000:g} ms; worst: "
            + ", ".join(f"{st['worst_ms']:.1f} ms at {st['first_s']:.3f} s (mono {st['first_mono_s']:.6f})" for st in worst)
        )
    return row


WORKQUEUE_CPUMASK = "/sys/devices/virtual/workqueue/cpumask"


def isolate_kernel_housekeeping(cpu):
    """Keeps everything but the servers under test off the servers' CPU
    for the whole run, moving it onto `cpu` (the generator's), as a
    latency-minded deployment keeps its request cores to themselves (the
    effect of `isolcpus`, on a machine booted without it):
    - the kernel's unbound workqueues (page writeback among them: writing
      back trackedge's spool, a kworker held CPU 0 for 4 ms);
    - every thread of every other process that may run elsewhere, kernel
      threads included: DAMON's reclaim (`kdamond`) held CPU 0 for 4 to 8
      ms, and this machine's own agent (pid 1, `process_api`, threads
      named `tokio-rt-worker`) for 3 to 5 ms, under nginx and trackedge
      alike (kernel traces, LT_PERF_EVENTS and stalls.py).
    The servers are started later with `taskset -c 0`, which sets their
    CPU explicitly. Skipped with LT_ISOLATE_KERNEL=0; whatever the system
    refuses (per-CPU kernel threads) stays. Returns what
    restore_kernel_housekeeping puts back."""
    done = {"workqueues": None, "threads": {}}
    if os.environ.get("LT_ISOLATE_KERNEL", "1") == "0":
        return done
    try:
        with open(WORKQUEUE_CPUMASK) as f:
            old = f.read().strip()
        with open(WORKQUEUE_CPUMASK, "w") as f:
            f.write(f"{1 << cpu:x}")
        done["workqueues"] = old
    except OSError:
        pass
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                old = os.sched_getaffinity(int(tid))
                if int(SERVER_CPU) not in old or cpu not in old:
                    continue
                os.sched_setaffinity(int(tid), old - {int(SERVER_CPU)})
                done["threads"][int(tid)] = sorted(old)
            except OSError:
                pass
    return done


def restore_kernel_housekeeping(done):
    if done.get("workqueues"):
        try:
            with open(WORKQUEUE_CPUMASK, "w") as f:
                f.write(done["workqueues"])
        except OSError:
            pass
    for tid, cpus in done.get("threads", {}).items():
        try:
            os.sched_setaffinity(tid, set(cpus))
        except OSError:
            pass


DAMON_KDAMONDS = "/sys/kernel/mm/damon/admin/kdamonds"


def pause_damon():
    """Turns off the machine's DAMON monitors (`kdamond`) for the run;
    returns the state files it turned off, for resume_damon. Skipped with
    LT_PAUSE_DAMON=0.

    This machine runs a DAMON `pageout` scheme over physical memory. Its
    access checks (`damon_pa_check_accesses`) clear the accessed bits of
    sampled pages, TLB flushes included, whatever process owns them; with
    it on, three fixed-rate runs had 11 to 28 ms stretches in six of nine
    trackedge rounds, the worker on its CPU throughout, most in the route
    map's lookup (`DashMap::_get` under `Redirector::handle`, kdamond in
    `damon_pa_check_accesses` on the other CPU in the same window); with it
    paused, none over 6 ms in three rounds (loadtests/README.md, Stalls).
    A host that runs trackedge for latency should not run such a scheme
    over its memory either."""
    if os.environ.get("LT_PAUSE_DAMON", "1") == "0":
        return []
    paused = []
    try:
        names = os.listdir(DAMON_KDAMONDS)
    except OSError:
        return []
    for name in names:
        path = os.path.join(DAMON_KDAMONDS, name, "state")
        try:
            with open(path) as f:
                if f.read().strip() != "on":
                    continue
            with open(path, "w") as f:
                f.write("off")
            paused.append(path)
        except OSError:
            pass
    return paused


def resume_damon(paused):
    for path in paused:
        try:
            with open(path, "w") as f:
                f.write("on")
        except OSError:
            pass


def housekeeping_text(done):
    parts = []
    if done.get("workqueues"):
        parts.append("the unbound workqueues")
    if done.get("threads"):
        parts.append(f"{len(done['threads'])} threads of other processes (kernel threads included)")
    return " and ".join(parts) if parts else None


_GENERATOR_PRIORITY = None


def wrk_priority(args):
    """(name, argv prefix) of wrk's scheduling policy: SCHED_OTHER, or with
    LT_WRK_FIFO=1 (and a CPU of its own) the fixed-rate generator's.

    An experiment, not the suite's figure. wrk, saturating, is always
    runnable, and a kernel trace of a saturating trackedge run caught
    ClickHouse's HTTPHandler (SCHED_IDLE, taking the shipper's INSERT)
    holding wrk's CPU for 2 to 12 ms at a time with wrk preempted and
    runnable, while trackedge sat idle in epoll_wait with nothing to
    answer. nginx ships nothing, so only trackedge's figures pay for it.
    Under SCHED_FIFO that cannot happen, but wrk breaks in other ways:
    its main thread, which ends the run, waits behind the busy worker (a
    10 s nginx run lasted 27.7 s), and the kernel's fair server then
    gives the other threads of that CPU 50 ms at a time (p99 25 to 30 ms
    for both servers). See loadtests/README.md, The generator at
    saturation."""
    if args.two_cores or os.environ.get("LT_WRK_FIFO", "0") != "1":
        return ("SCHED_OTHER", [])
    return generator_priority()


def generator_priority():
    """(name, argv prefix) of the fixed-rate generator's scheduling policy.

    SCHED_FIFO 50 (`chrt -f 50`) unless LT_GENERATOR_FIFO=0 or the system
    refuses it. The generator shares its CPU with Redis and ClickHouse,
    which digest the clicks trackedge ships. They run under SCHED_IDLE, yet
    kernel traces of the fixed-rate runs (LT_PERF_EVENTS, stalls.py) caught
    ClickHouse's HTTPHandler and BackgrProcPool threads holding that CPU
    for one or two 4 ms ticks while the generator, preempted in the middle
    of a send(), waited runnable: every request due meanwhile went out
    late and was charged to the server (the trackedge runs' 10 to 40 ms
    "stalls", with the server's own CPU idle in epoll_wait). Under
    SCHED_FIFO nothing but the kernel's own real-time work preempts the
    generator; it sleeps between send times, so the backends still get the
    rest of the CPU."""
    global _GENERATOR_PRIORITY
    if _GENERATOR_PRIORITY is None:
        if os.environ.get("LT_GENERATOR_FIFO", "1") == "0":
            _GENERATOR_PRIORITY = ("SCHED_OTHER (LT_GENERATOR_FIFO=0)", [])
        elif subprocess.run(["chrt", "-f", "50", "true"], capture_output=True).returncode == 0:
            _GENERATOR_PRIORITY = ("SCHED_FIFO 50", ["chrt", "-f", "50"])
        else:
            _GENERATOR_PRIORITY = ("SCHED_OTHER (SCHED_FIFO refused)", [])
    return _GENERATOR_PRIORITY


def start_perf_trace(out):
    """With LT_PERF_EVENTS set (a perf event list, e.g.
    `sched:sched_switch,sched:sched_wakeup`), records those events on every
    CPU with call graphs, stamped on CLOCK_MONOTONIC like the loadgen's
    stall list, into OUT.perf.data while the fixed-rate run lasts. perf
    runs on the load generator's CPU. Returns the process or None."""
    events = os.environ.get("LT_PERF_EVENTS")
    if not events:
        return None
    path = out[: -len(".json")] + ".perf.data"
    p = subprocess.Popen(
        ["taskset", "-c", CLIENT_CPU, "perf", "record", "-q", "-a", "-g", "-k", "CLOCK_MONOTONIC",
         "-e", events, "-o", path],
        stdout=subprocess.DEVNULL, stderr=open(path + ".log", "w"),
    )
    # perf has opened its events once it has written the file's header.
    wait_until(lambda: os.path.exists(path) and os.path.getsize(path) > 0, 30, "perf record to start")
    return (p, path)


def start_perf_profile(stem, pids):
    """With LT_PERF_PROFILE set (a sampling rate in Hz, e.g. 1999), samples
    the server's stacks (`perf record -g`, cpu-clock) while one wrk run
    lasts, into STEM.perf.data; `perf report -i` reads it. The sampling
    costs the server a little CPU: a profiled run's CPU per request is not
    a figure. Returns the process or None."""
    hz = os.environ.get("LT_PERF_PROFILE")
    if not hz:
        return None
    path = stem + ".perf.data"
    p = subprocess.Popen(
        ["taskset", "-c", CLIENT_CPU, "perf", "record", "-q", "-g", "-F", hz,
         "-p", ",".join(str(pid) for pid in pids), "-o", path],
        stdout=subprocess.DEVNULL, stderr=open(path + ".log", "w"),
    )
    wait_until(lambda: os.path.exists(path) and os.path.getsize(path) > 0, 30, "perf record to start")
    return (p, path)


def stop_perf_trace(perf):
    if perf is None:
        return None
    p, path = perf
    p.send_signal(signal.SIGINT)
    p.wait(timeout=120)
    return path


def start_trackedge(te_env, args, te_bin, tag):
    """Starts trackedge; returns (server, seconds from start to /readyz 200)."""
    te = Server(
        "trackedge",
        PORTS["trackedge"],
        [te_bin, "serve"],
        te_env,
        args.root,
        os.path.join(args.workdir, f"trackedge-{tag}.log"),
        os.path.join(args.workdir, "trackedge.pid"),
    )
    log(f"starting trackedge ({tag}; log: {te.logfile})")
    t0 = time.monotonic()
    te.start()
    admin = PORTS["trackedge-admin"]
    wait_until(lambda: http_get(PORTS["trackedge"], "/readyz", timeout=2)[0] == 200, 120, "trackedge /readyz", te, interval=0.02)
    ready = round(time.monotonic() - t0, 3)
    wait_until(lambda: http_get(admin, "/readyz", timeout=2)[0] == 200, 30, "trackedge admin /readyz", te)
    return te, ready


# ------------------------------------------------------------------ summary


def median(rows, key, sub=None):
    vals = [(r[key][sub] if sub else r[key]) for r in rows]
    vals = [v for v in vals if v is not None]
    return round(statistics.median(vals), 3) if vals else None


def summarize(rows, targets, scenario):
    med = {}
    for t in targets:
        rs = [
            r for r in rows
            if r["target"] == t and r.get("scenario", "zipf") == scenario and r["label"].startswith("round") and not r.get("discarded")
        ]
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

    def ratio(a, b):
        return {
            "rps": round(a["rps"] / b["rps"], 3) if b["rps"] else None,
            "cpu_us_per_req": round(a["cpu_us_per_req"] / b["cpu_us_per_req"], 3) if b["cpu_us_per_req"] else None,
        }

    if "trackedge" in med:
        for base in ("nginx", "nginx-log"):
            if base in med:
                ratios[f"trackedge/{base}"] = ratio(med["trackedge"], med[base])
    if "nginx" in med and "nginx-log" in med:
        ratios["nginx-log/nginx"] = ratio(med["nginx-log"], med["nginx"])
    return med, ratios


def verdict(ok):
    return "not run" if ok is None else ("PASS" if ok else "FAIL")


def evaluate_targets(res):
    """The issue's targets as report lines: [{id, target, measured, result}].

    A verdict resting on a run that other processes disturbed (flagged
    noisy, with no quiet attempt) gets " (noisy)" appended: rerun before
    quoting it."""
    T = _evaluate_targets(res)
    med = res.get("medians", {}).get("zipf", {})
    noisy_med = any(v.get("noisy_runs") for k, v in med.items() if k in ("trackedge", "nginx"))
    lat_noisy = any(r.get("noisy") for r in (res.get("latency") or {}).get("runs", []) if r["target"] == "trackedge")
    big = [r for r in res.get("runs", []) if r["label"] == "big"]
    soak_noisy = bool((res.get("soak") or {}).get("run", {}).get("noisy"))
    for t in T:
        n = {"cpu_per_redirect": noisy_med, "throughput": noisy_med, "p99_at_half_saturation": lat_noisy,
             "rss_1m_links": any(r.get("noisy") for r in big), "ingest_lag_soak": soak_noisy}.get(t["id"], False)
        if n and t["result"] in ("PASS", "FAIL"):
            t["result"] += " (noisy)"
            t["noisy"] = True
    return T


def _evaluate_targets(res):
    T = []
    med = res.get("medians", {}).get("zipf", {})
    rat = res.get("ratios", {}).get("zipf", {})
    acc = res.get("clicks") or {}
    all_recorded = None
    if acc.get("lost") is not None:
        all_recorded = acc["lost"] <= 0 and acc.get("exit_code") == 0
    r = rat.get("trackedge/nginx")
    if r and r.get("cpu_us_per_req") is not None:
        c = r["cpu_us_per_req"]
        t, n = med["trackedge"]["cpu_us_per_req"], med["nginx"]["cpu_us_per_req"]
        ok = c <= 1.25 and bool(all_recorded)
        T.append({
            "id": "cpu_per_redirect",
            "target": "server CPU per tracked redirect ≤ 1.25 × nginx `return 302` (stretch ≤ 1.0×), every click in ClickHouse",
            "measured": f"{t:.2f} vs {n:.2f} µs/req = {c:.2f}× (stretch {'met' if c <= 1.0 else 'not met'}); clicks: "
            + ("all recorded" if all_recorded else "NOT all recorded" if all_recorded is False else "not checked"),
            "value": c,
            "result": verdict(ok),
        })
        rr = r["rps"]
        T.append({
            "id": "throughput",
            "target": "requests/s on one pinned core ≥ 0.9 × nginx's",
            "measured": f"{med['trackedge']['rps']:,.0f} vs {med['nginx']['rps']:,.0f} = {rr:.2f}× "
            f"(server core busy {med['trackedge']['server_core_util']:.0%} vs nginx {med['nginx']['server_core_util']:.0%}; "
            f"wrk core busy {med['trackedge']['wrk_core_util']:.0%} vs {med['nginx']['wrk_core_util']:.0%})",
            "value": rr,
            "result": verdict(rr >= 0.9),
        })
    lat = res.get("latency")
    if lat:
        te_rows = [x for x in lat["runs"] if x["target"] == "trackedge"]
        if te_rows:
            p99s = [x["loadgen"]["latency_us"]["p99"] / 1000 for x in te_rows if x["loadgen"].get("latency_us")]
            worst = max(p99s) if p99s else None
            errs = sum(x["loadgen"]["errors"] for x in te_rows)
            T.append({
                "id": "p99_at_half_saturation",
                "target": "p99 latency ≤ 1 ms at 50 % of saturation (fixed rate, from intended send time)",
                "measured": (f"p99 {', '.join(f'{v:.3f}' for v in p99s)} ms at {lat['rate']:,}/s "
                             f"(50 % of {lat['saturation_rps']:,.0f}/s); errors {errs}") if p99s else "no data",
                "value": worst,
                "result": verdict(worst is not None and worst <= 1.0 and errs == 0),
            })
    big = res.get("catalog", {}).get("big")
    if big:
        rss = max(v for v in (big.get("rss_after_start", {}).get("VmRSS"), big.get("rss_after_load", {}).get("VmRSS")) if v is not None)
        T.append({
            "id": "rss_1m_links",
            "target": f"RSS ≤ 300 MiB with {big['links']:,} links cached",
            "measured": f"VmRSS {big.get('rss_after_start', {}).get('VmRSS')} MiB after start, "
            f"{big.get('rss_after_load', {}).get('VmRSS')} MiB after {big.get('load_s')} s of load "
            f"(anon {big.get('rss_after_load', {}).get('RssAnon')}, file {big.get('rss_after_load', {}).get('RssFile')}, "
            f"shmem {big.get('rss_after_load', {}).get('RssShmem')} MiB); links cached {big.get('links_cached')}",
            "value": rss,
            "result": verdict(rss <= 300 and big.get("links_cached") == big["links"]),
        })
        T.append({
            "id": "startup_1m_links",
            "target": f"startup with {big['links']:,} links ≤ 5 s (process start → /readyz 200)",
            "measured": f"{big['startup_s']:.2f} s",
            "value": big["startup_s"],
            "result": verdict(big["startup_s"] <= 5),
        })
    soak = res.get("soak")
    if soak:
        s = soak["ingest"]
        ok = s["max_ch_lag_s"] is not None and s["max_ch_lag_s"] < 5 and (s.get("clicks_dropped") or 0) == 0
        T.append({
            "id": "ingest_lag_soak",
            "target": f"ClickHouse ingest lag < 5 s during {soak['minutes']} min at 70 % of saturation",
            "measured": f"max lag {s['max_ch_lag_s']} s (median {s['median_ch_lag_s']}), oldest unshipped event ≤ "
            f"{s['max_oldest_unshipped_age_s']} s, spool ≤ {s['max_spool_mib']} MiB, RSS ≤ {s['max_rss_mib']} MiB, "
            f"shipper {s['median_flushed_rows_per_s']} rows/s median at {soak['rate']:,}/s offered; p99 "
            f"{soak['run']['loadgen']['latency_us']['p99'] / 1000:.3f} ms",
            "value": s["max_ch_lag_s"],
            "result": verdict(ok),
        })
    else:
        ing = (res.get("latency") or {}).get("ingest")
        T.append({
            "id": "ingest_lag_soak",
            "target": "ClickHouse ingest lag < 5 s during a 10 min soak at 70 % of saturation (`--soak`)",
            "measured": "soak not run"
            + (f"; during the 50 % fixed-rate run: max lag {ing['max_ch_lag_s']} s, oldest unshipped {ing['max_oldest_unshipped_age_s']} s, "
               f"shipper {ing['median_flushed_rows_per_s']} rows/s median" if ing else ""),
            "value": None,
            "result": "not run",
        })
    pt = pbmod.target(res)
    if pt:
        T.append(pt)
    T.append({
        "id": "clicks_recorded",
        "target": "every click that got a 302 is in ClickHouse exactly once",
        "measured": (f"answered {acc.get('answered'):,}, distinct in ClickHouse {acc['after_shutdown'][1]:,}, lost {acc.get('lost')}, "
                     f"duplicates {acc.get('duplicates')}") if acc.get("after_shutdown") else "not checked",
        "value": acc.get("lost"),
        "result": verdict(all_recorded) if acc else "not run",
    })
    return T


# ------------------------------------------------------------------ report


def fmt(v, spec=""):
    if v is None:
        return "–"
    return format(v, spec)


def ms(us):
    return "–" if us is None else f"{us / 1000:.3f}"


def markdown(res):
    m = res["machine"]
    s = res["settings"]
    L = []
    pb_title = " and `GET /postback` → 200" if pbmod.NAME in s["scenarios"] else ""
    L.append(f"# trackedge vs nginx: `GET /{{code}}` → 302{pb_title} ({res['date']})")
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
        f"- Saturation load: wrk -t{s['threads']} -c{s['connections']} -d{s['duration_s']}s pinned to CPU {CLIENT_CPU}"
        f"{' at ' + s['wrk_priority'] + ' (LT_WRK_FIFO=1: an experiment, not a figure)' if s.get('wrk_priority', 'SCHED_OTHER') != 'SCHED_OTHER' else ''}; "
        f"servers pinned to CPU {SERVER_CPU}; {s['rounds']} round(s) of {' → '.join(s['order'])} per scenario "
        f"({', '.join(s['scenarios'])}), after a {s['warmup_s']} s warm-up each; {s['links']:,} links"
    )
    if s.get("latency_duration_s"):
        L.append(
            f"- Fixed-rate load: trackedge-loadgen, {s['connections']} keep-alive connections, pinned to CPU {CLIENT_CPU}, "
            f"{s['latency_duration_s']} s measured after {s['latency_warmup_s']} s, latency from each request's scheduled send time"
            + (f", at {s['generator_priority']} priority" if s.get("generator_priority") else "")
        )
    if s.get("backends_pinned_to_cpu"):
        prio = f" at {s['backends_priority']} priority" if s.get("backends_priority") else ""
        L.append(f"- Redis and ClickHouse pinned to CPU {s['backends_pinned_to_cpu']} (with the load generator){prio}")
    if s.get("kernel_housekeeping_on_generator_cpu"):
        L.append(f"- Kept off the servers' CPU for the run, on CPU {CLIENT_CPU}: {s['kernel_housekeeping_on_generator_cpu']}")
    if s.get("trackedge_limits_clicks_per_ip_per_minute"):
        L.append(f"- trackedge: TRACKEDGE_LIMITS_CLICKS_PER_IP_PER_MINUTE={s['trackedge_limits_clicks_per_ip_per_minute']}"
                 + (f", TRACKEDGE_CONVERSIONS_POSTBACKS_PER_OFFER_PER_SECOND={s['trackedge_postbacks_per_offer_per_second']}"
                    if s.get("trackedge_postbacks_per_offer_per_second") else ""))
    if s.get("damon_paused"):
        L.append(f"- The machine's DAMON monitors (`kdamond`, {s['damon_paused']}) paused for the run (`LT_PAUSE_DAMON=0` keeps them)")
    if s.get("two_cores"):
        L.append("- **Two server cores** (`--two-cores`): nginx with 2 workers, trackedge with a request thread per CPU; "
                 "the load generators, Redis and ClickHouse share the same two CPUs, so these figures are the machine's, not a core's")
    if s.get("nginx_only"):
        L.append("- **nginx-only run** (`--nginx-only`): trackedge was not started; the codes are synthetic")
    L.append("")
    if res.get("targets"):
        L.append("## Targets")
        L.append("")
        L.append("| target | measured | result |")
        L.append("| --- | --- | --- |")
        for t in res["targets"]:
            r = t["result"]
            L.append(f"| {t['target']} | {t['measured']} | **{r}** |")
        L.append("")
    L.append("## Scenarios (wrk, saturating, medians)")
    L.append("")
    for name, sc in res.get("scenarios", {}).items():
        L.append(f"- **{name}**: {sc['description']}; {sc['requests']:,} distinct requests replayed in order, "
                 f"{sc['distinct_codes']:,} {sc.get('distinct_label', 'distinct paths')}, {sc['avg_head_bytes']} B average request head"
                 + (f", {sc['bot_share']:.1%} bots" if sc.get("bot_share") else "")
                 + (f", {sc['unknown_share']:.1%} unknown codes" if sc.get("unknown_share") else ""))
    L.append("")
    L.append("| scenario | target | runs | requests/s | server CPU µs/req | + Redis/ClickHouse µs/req | server core busy | wrk core busy | p50 ms | p99 ms | bytes/resp | non-2xx/3xx |")
    L.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for sc, med in res.get("medians", {}).items():
        for t, v in med.items():
            back = fmt(v["backend_cpu_us_per_req"], ".2f") if t == "trackedge" else "–"
            L.append(
                f"| {sc} | {t}{' ⚠' if v.get('noisy_runs') else ''} | {v['runs']} | {fmt(v['rps'], ',.0f')} | {fmt(v['cpu_us_per_req'], '.2f')} | {back} | "
                f"{fmt(v['server_core_util'], '.0%')} | {fmt(v['wrk_core_util'], '.0%')} | {fmt(v['p50_ms'], '.2f')} | "
                f"{fmt(v['p99_ms'], '.2f')} | {fmt(v['bytes_per_response'], '.0f')} | {v['non_2xx_3xx']} |"
            )
    L.append("")
    if res.get("ratios"):
        L.append("| scenario | ratio | requests/s | CPU µs/req |")
        L.append("| --- | --- | ---: | ---: |")
        for sc, rat in res["ratios"].items():
            for k, v in rat.items():
                L.append(f"| {sc} | {k} | {fmt(v['rps'], '.2f')}× | {fmt(v['cpu_us_per_req'], '.2f')}× |")
        L.append("")
    L.extend(pbmod.markdown(res, ms, fmt))
    lat = res.get("latency")
    if lat:
        L.append("## Latency at a fixed rate (trackedge-loadgen)")
        L.append("")
        L.append(
            f"Rate {lat['rate']:,}/s = {lat['fraction']:.0%} of saturation ({lat['saturation_rps']:,.0f}/s, "
            f"{lat['saturation_from']}), scenario {lat['scenario']}. Latency counts from each request's scheduled "
            "send time, so a stall delays every request due during it (no coordinated omission); "
            "service = from the actual write; dispatch lag = how late the request was written (the generator's wake-up, "
            "or every connection busy); loadgen preempted = times something else on its CPU took it off while it could run."
        )
        waits = [r.get("waited_for_shipping_s") for r in lat["runs"] if r.get("target") == "trackedge"]
        if any(w is not None for w in waits):
            L.append("")
            L.append("Each trackedge round started once trackedge had shipped every click before it; the suite waited "
                     + ", ".join(f"{w} s" for w in waits if w is not None) + " for that.")
        L.append("")
        L.append("| # | target | measured | achieved/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | service p99 ms | dispatch lag p99 ms | errors | non-3xx | server core | server CPU µs/req | loadgen core | loadgen preempted | others' CPU s |")
        L.append("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for i, r in enumerate(lat["runs"], 1):
            g = r["loadgen"]
            la, se, dl = g.get("latency_us") or {}, g.get("service_us") or {}, g.get("dispatch_lag_us") or {}
            st = g["status"]
            non3 = st["1xx"] + st["2xx"] + st["4xx"] + st["5xx"]
            L.append(
                f"| {i} | {r['target']} | {g['measured']:,} | {g['achieved_rps']:,.0f} | {ms(la.get('p50'))} | {ms(la.get('p90'))} | "
                f"{ms(la.get('p99'))} | {ms(la.get('p99_9'))} | {ms(la.get('max'))} | {ms(se.get('p99'))} | {ms(dl.get('p99'))} | "
                f"{g['errors']} | {non3} | {r['server_core_util']:.0%} | {fmt(r['cpu_us_per_req'], '.2f')} | {r['loadgen_core_util']:.0%} | "
                f"{fmt((g.get('measured_window') or {}).get('involuntary_switches'))} | {r['others_cpu_s']:.2f}{' ⚠' if r.get('noisy') else ''} |"
            )
        L.append("")
        ing = lat.get("ingest")
        if ing:
            L.append(
                f"Shipping during trackedge's fixed-rate run(s) (sampled every {s['sample_interval_s']} s): ClickHouse lag "
                f"(now − max(ts), ts has 1 s resolution) max {fmt(ing['max_ch_lag_s'])} s, oldest unshipped event max "
                f"{fmt(ing['max_oldest_unshipped_age_s'])} s, spool max {fmt(ing['max_spool_mib'])} MiB, unshipped clicks max "
                f"{fmt(ing['max_unshipped_clicks'], ',.0f')}, shipper {fmt(ing['median_flushed_rows_per_s'], ',')} rows/s median, RSS max {fmt(ing['max_rss_mib'])} MiB."
            )
            L.append("")
    cat = res.get("catalog")
    if cat:
        L.append("## Catalog size: startup and memory")
        L.append("")
        L.append("| links | seeded how | seed s | startup s (start → /readyz 200) | links cached | VmRSS after start MiB | after load MiB | anon / file / shmem MiB after load | load |")
        L.append("| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |")
        for key in ("main", "big"):
            c = cat.get(key)
            if not c:
                continue
            ra, rl = c.get("rss_after_start", {}), c.get("rss_after_load", {})
            L.append(
                f"| {c['links']:,} | {c['seeded']} | {fmt(c.get('seed_s'))} | {c['startup_s']:.2f} | {fmt(c.get('links_cached'), ',.0f')} | "
                f"{fmt(ra.get('VmRSS'))} | {fmt(rl.get('VmRSS'))} | {fmt(rl.get('RssAnon'))} / {fmt(rl.get('RssFile'))} / {fmt(rl.get('RssShmem'))} | {c.get('load_note', '')} |"
            )
        L.append("")
        L.append(
            "VmRSS includes the mapped spool segments that trackedge has touched (RssFile/RssShmem): they are page cache "
            "the kernel can drop, not heap. Links are written straight into Redis in trackedge's storage format "
            "(`loadtests/bulkseed.py`, `redis-cli --pipe`); the partner and offer come from the admin API."
        )
        L.append("")
    soak = res.get("soak")
    if soak:
        g = soak["run"]["loadgen"]
        ing = soak["ingest"]
        L.append(f"## Soak: {soak['minutes']} min at {soak['rate']:,}/s (70 % of saturation)")
        L.append("")
        L.append(
            f"- Latency p50 {ms(g['latency_us']['p50'])} ms, p99 {ms(g['latency_us']['p99'])} ms, p99.9 {ms(g['latency_us']['p99_9'])} ms, "
            f"max {ms(g['latency_us']['max'])} ms; {g['measured']:,} requests, {g['errors']} errors; server core {soak['run']['server_core_util']:.0%}; "
            f"service p99 {ms((g.get('service_us') or {}).get('p99'))} ms; others' CPU {soak['run']['others_cpu_s']:.1f} s"
            + (" ⚠ **NOISY**: other processes took more than a tenth of a core; the latency is not trackedge's alone" if soak["run"].get("noisy") else "")
        )
        L.append(
            f"- ClickHouse lag max {fmt(ing['max_ch_lag_s'])} s (median {fmt(ing['median_ch_lag_s'])}); oldest unshipped event max "
            f"{fmt(ing['max_oldest_unshipped_age_s'])} s; spool max {fmt(ing['max_spool_mib'])} MiB; unshipped clicks max "
            f"{fmt(ing['max_unshipped_clicks'], ',.0f')}; shipper {fmt(ing['median_flushed_rows_per_s'], ',')} rows/s median "
            f"(max {fmt(ing['max_flushed_rows_per_s'], ',')}); RSS max {fmt(ing['max_rss_mib'])} MiB; clicks dropped {fmt(ing['clicks_dropped'])}"
        )
        L.append("")
        L.append("| t s | RSS MiB | spool MiB | oldest unshipped s | unshipped clicks | ClickHouse lag s | rows in ClickHouse | shipped rows/s |")
        L.append("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in soak["run"].get("samples", []):
            sp = r.get("spool_bytes")
            L.append(
                f"| {r['t_s']} | {fmt(r.get('rss_mib'))} | {fmt(round(sp / 2**20, 1) if sp is not None else None)} | "
                f"{fmt(r.get('spool_oldest_event_age_s'))} | {fmt(r.get('unshipped_clicks'), ',.0f')} | {fmt(r.get('ch_lag_s'))} | "
                f"{fmt(r.get('ch_rows'), ',')} | {fmt(r.get('flushed_rows_per_s'), ',')} |"
            )
        L.append("")
    acc = res.get("clicks")
    if acc:
        L.append("## Click accounting (trackedge → ClickHouse)")
        L.append("")
        L.append(
            f"- Redirects answered by trackedge over all its processes (wrk requests incl. warm-ups minus non-2xx/3xx, "
            f"plus loadgen 3xx answers, plus {acc['probe_requests']} probe request(s)): **{acc['answered']:,}** "
            f"({acc['answered_wrk']:,} from wrk, {acc['answered_loadgen']:,} from loadgen)"
        )
        if acc.get("before_shutdown"):
            c, d = acc["before_shutdown"]
            L.append(f"- In `{acc['database']}.clicks` while still running (polled {acc['poll_s_before']:.0f} s after the last run): {c:,} rows, {d:,} distinct click_id")
        if acc.get("after_shutdown"):
            c, d = acc["after_shutdown"]
            L.append(f"- After SIGTERM (exit code {acc['exit_code']}, took {acc['stop_s']} s): **{c:,} rows, {d:,} distinct click_id**")
            L.append(f"- lost = answered − distinct = **{acc['lost']:,}**; duplicates = rows − distinct = {acc['duplicates']:,}")
        else:
            L.append("- ClickHouse could not be read after shutdown")
        if acc.get("restarts"):
            L.append(f"- Earlier trackedge processes of this run stopped with SIGTERM: {', '.join('exit %s in %s s' % (r['exit_code'], r['stop_s']) for r in acc['restarts'])}")
        if acc.get("flags"):
            L.append(f"- flags: {json.dumps(acc['flags'])} (bots expected only from the mix scenario)")
        if acc.get("not_found") is not None:
            L.append(f"- 404 answers (unknown codes, mix scenario) {acc['not_found']:,}; rows in `orphan_hits` {fmt(acc.get('orphan_rows'), ',')} (at least once)")
        sp = acc.get("spool_after_shutdown") or {}
        L.append(
            f"- spool directory after shutdown: {sp.get('files', 0)} file(s), {sp.get('bytes', 0) / 2**20:.1f} MiB"
            + (f": {', '.join(sp['list'][:6])}" if sp.get("list") else "")
        )
        bound = acc.get("in_flight_bound")
        v = ""
        if acc.get("lost") is not None and bound is not None:
            if acc["lost"] > 0:
                v = " **Clicks were lost.**"
            elif acc["lost"] < -bound:
                v = " **More clicks than requests could explain.**"
            else:
                v = " Within the expected range: nothing lost."
        L.append(
            f"- A negative `lost` down to −{bound:,} (connections × trackedge wrk runs) is expected: wrk stops "
            "counting the requests in flight when its time is up, but the server may have answered and "
            f"recorded them.{v}"
        )
        L.append("")
    nl = res.get("nginx_log_lines")
    if nl:
        L.append(
            f"nginx-log wrote {nl['lines']:,} access-log lines for {nl['answered']:,} answered requests "
            f"(difference {nl['answered'] - nl['lines']:,})."
        )
        L.append("")
    runs = res["runs"]
    noisy = [i for i, r in enumerate(runs, 1) if r.get("noisy")]
    kept = [i for i, r in enumerate(runs, 1) if r.get("noisy") and r["label"].startswith("round") and not r.get("discarded")]
    if noisy:
        L.append(
            f"**Noisy:** run(s) {', '.join(map(str, noisy))} of {len(runs)} saw more than "
            f"{NOISE_CORES:.0%} of a core used outside the test (others' CPU + steal): their requests/s is "
            f"depressed; CPU µs/req holds up better. A noisy measured run is repeated up to "
            f"{s.get('retry_noisy')} time(s) and only the quietest attempt enters the medians."
        )
        if kept:
            L.append(
                f"Still noisy and in the medians (no quiet attempt): run(s) {', '.join(map(str, kept))}; "
                "rerun on a quiet machine for requests/s figures to quote."
            )
        L.append("")
    L.append("## wrk runs")
    L.append("")
    L.append("| # | run | scenario | target | requests | s | requests/s | CPU µs/req | backend µs/req | server core | wrk core | others' CPU s | steal s | p50 ms | p99 ms | non-2xx/3xx | socket errors |")
    L.append("| ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for i, r in enumerate(runs, 1):
        se = r["socket_errors"]
        ses = "0" if not any(se.values()) else ", ".join(f"{k} {v}" for k, v in se.items() if v)
        L.append(
            f"| {i} | {r['label']}{' (discarded)' if r.get('discarded') else ''} | {r.get('scenario', 'zipf')} | {r['target']} | {r['requests']:,} | {r['duration_s']:.2f} | {r['rps']:,.0f} | "
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
        "over the run, divided by the requests completed. See loadtests/README.md for every figure and caveat."
    )
    return "\n".join(L) + "\n"


# ------------------------------------------------------------------ main


def read_lines(path):
    with open(path) as f:
        return [l.strip() for l in f if l.strip()]


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
    ap.add_argument("--links", type=int, default=100000, help="links seeded straight into Redis for the scenarios")
    ap.add_argument("--big-links", type=int, default=1000000, help="catalog size for the startup/RSS check (0: skip)")
    ap.add_argument("--scenarios", default="zipf,browser,mix", help=f"comma list of {','.join(SCENARIOS)}")
    ap.add_argument("--postback-clicks", type=int, default=1000, help="real click ids the postback scenario draws from")
    ap.add_argument("--pool", type=int, default=16384, help="distinct requests per scenario")
    ap.add_argument("--latency-duration", type=int, default=20, help="fixed-rate run length (0: skip)")
    ap.add_argument("--latency-warmup", type=int, default=2)
    ap.add_argument("--latency-fraction", type=float, default=0.5)
    ap.add_argument("--latency-rounds", type=int, default=1)
    ap.add_argument("--soak-minutes", type=float, default=0, help="soak at 70 %% of saturation (0: no soak)")
    ap.add_argument("--soak-fraction", type=float, default=0.7)
    ap.add_argument("--sample-interval", type=float, default=5.0)
    ap.add_argument("--loadgen", help="trackedge-loadgen binary")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pause", type=float, default=2.0, help="seconds of idle between runs")
    ap.add_argument("--nginx-only", action="store_true", help="measure only the two nginx baselines")
    ap.add_argument("--no-nginx-log", action="store_true", help="skip the nginx-with-access-log baseline")
    ap.add_argument("--services-root", help="scripts/services.sh ROOT (for services.env and pids)")
    ap.add_argument("--spool", help="TRACKEDGE_SPOOL_DIR")
    ap.add_argument("--database", default="loadtest")
    ap.add_argument("--redis-prefix", default="te:")
    ap.add_argument("--wait-quiet", type=int, default=60, help="before each run, wait up to S s for an idle machine (0: never)")
    ap.add_argument("--retry-noisy", type=int, default=2, help="repeat a noisy measured run up to N times")
    ap.add_argument("--no-pin-backends", action="store_true", help="leave Redis/ClickHouse on any CPU")
    ap.add_argument("--trackedge-bin", help="binary to test (default ROOT/target/release/trackedge)")
    ap.add_argument("--two-cores", action="store_true",
                    help="servers on both CPUs (nginx with 2 workers, trackedge with 2 request threads); "
                         "the load generator shares them")
    args = ap.parse_args()
    if args.two_cores:
        global SERVER_CPU, CLIENT_CPU
        SERVER_CPU = CLIENT_CPU = "0,1"
        # wrk needs a thread per core to load two; nothing is kept off the
        # servers' CPUs, the generator included (no housekeeping moved).
        args.threads = max(args.threads, 2)
    scen_names = [x for x in args.scenarios.split(",") if x]
    for x in scen_names:
        if x not in SCENARIOS:
            raise Abort(f"unknown scenario {x!r} (known: {', '.join(SCENARIOS)})")
    if "zipf" not in scen_names:
        scen_names.insert(0, "zipf")  # the targets and the saturation figure come from it
    if args.latency_duration > 0 or args.soak_minutes > 0:
        if not args.loadgen or not os.access(args.loadgen, os.X_OK):
            raise Abort(f"trackedge-loadgen binary missing ({args.loadgen}); build it or pass --no-latency")

    housekeeping = (isolate_kernel_housekeeping(int(CLIENT_CPU)) if not args.two_cores
                    else {"workqueues": None, "threads": {}})
    atexit.register(restore_kernel_housekeeping, housekeeping)
    damon_paused = pause_damon()
    atexit.register(resume_damon, damon_paused)

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
            "big_links": args.big_links,
            "scenarios": scen_names,
            "two_cores": args.two_cores,
            "pool": args.pool,
            "connections": args.connections,
            "threads": args.threads,
            "wrk_priority": wrk_priority(args)[0],
            "seed": args.seed,
            "nginx_only": args.nginx_only,
            "wait_quiet_s": args.wait_quiet,
            "retry_noisy": args.retry_noisy,
            "latency_duration_s": args.latency_duration,
            "generator_priority": generator_priority()[0] if args.latency_duration else None,
            "kernel_housekeeping_on_generator_cpu": housekeeping_text(housekeeping),
            "damon_paused": len(damon_paused),
            "latency_warmup_s": args.latency_warmup,
            "latency_fraction": args.latency_fraction,
            "soak_minutes": args.soak_minutes,
            "sample_interval_s": args.sample_interval,
            "x_forwarded_for": os.environ.get("LT_XFF", "1") != "0",
        },
        "probes": {},
        "runs": [],
    }
    te = None
    te_env = te_bin = None
    ch_url = None
    backend_pids = []
    codes_file = os.path.join(args.workdir, "codes.txt")
    probe_requests = 0
    restarts = []
    loadgen_te_answered = 0
    loadgen_te_404 = 0
    svc = {}
    try:
        cid_len = 32
        # nginx's answer to a postback; trackedge's own shape once it gave one.
        pb_body, pb_cids, pb_token = pbmod.nginx_body(), [], ""
        if not args.nginx_only:
            env_file = os.path.join(args.services_root, "services.env")
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
            # Redis and ClickHouse share the load generator's CPU, so that the
            # server's CPU is its own: otherwise ClickHouse, digesting
            # trackedge's inserts, preempts trackedge on CPU 0. (-a: every
            # thread, and the threads they start later inherit it.) There
            # they run at SCHED_IDLE: a send that comes due wakes the load
            # generator, which must then preempt them at once, not after
            # their time slice (each ms it waits is a ms of latency charged
            # to the server). The generator sleeps between sends, so they
            # still get most of the core.
            priority = None
            if not args.no_pin_backends:
                for bp in backend_pids:
                    subprocess.run(["taskset", "-a", "-p", "-c", CLIENT_CPU, str(bp)], check=True, stdout=subprocess.DEVNULL)
                    priority = deprioritize(bp)
            res["settings"]["backends_pinned_to_cpu"] = None if args.no_pin_backends or args.two_cores else CLIENT_CPU
            res["settings"]["backends_priority"] = priority
            # A fresh database, Redis catalog and spool: only this run's data.
            # Dropping millions of rows of an earlier run can take a while,
            # and ClickHouse 18.16 sometimes fails it ("Directory not empty")
            # while it still removes parts: retry, then use a new database.
            for attempt in range(5):
                try:
                    ch_query(ch_url, f"DROP DATABASE IF EXISTS {args.database}", timeout=120)
                    break
                except (OSError, urllib.error.URLError) as e:
                    log(f"DROP DATABASE {args.database} failed ({str(e)[:120]}); retrying")
                    time.sleep(3)
            else:
                args.database = f"{args.database}_{int(time.time())}"
                log(f"using database {args.database} instead")
            ru = re.match(r"redis://([^:/]+):(\d+)", svc["TRACKEDGE_REDIS_URL"])
            redis_host, redis_port = ru.group(1), int(ru.group(2))
            subprocess.run(["redis-cli", "-h", redis_host, "-p", str(redis_port), "FLUSHALL"], check=True, stdout=subprocess.DEVNULL)
            shutil.rmtree(args.spool, ignore_errors=True)
            os.makedirs(args.spool, exist_ok=True)
            token = secrets.token_hex(16)
            te_env = dict(
                os.environ,
                TRACKEDGE_LISTEN=f"127.0.0.1:{PORTS['trackedge']}",
                TRACKEDGE_ADMIN_LISTEN=f"127.0.0.1:{PORTS['trackedge-admin']}",
                TRACKEDGE_REDIS_URL=svc["TRACKEDGE_REDIS_URL"],
                TRACKEDGE_REDIS_PREFIX=args.redis_prefix,
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
            te_env.setdefault("TRACKEDGE_LIMITS_CLICKS_PER_IP_PER_MINUTE", "100000000")
            res["settings"]["trackedge_limits_clicks_per_ip_per_minute"] = te_env["TRACKEDGE_LIMITS_CLICKS_PER_IP_PER_MINUTE"]
            # Likewise the postback scenario sends every postback for one
            # offer, far above the shipped 200/s: measure the accepted
            # postback, not the 429 answer. The limiter still runs.
            te_env.setdefault("TRACKEDGE_CONVERSIONS_POSTBACKS_PER_OFFER_PER_SECOND", "100000000")
            res["settings"]["trackedge_postbacks_per_offer_per_second"] = te_env["TRACKEDGE_CONVERSIONS_POSTBACKS_PER_OFFER_PER_SECOND"]
            te_bin = args.trackedge_bin or os.path.join(args.root, "target/release/trackedge")
            res["machine"]["trackedge_binary"] = binary_info(te_bin, args.root)
            admin = PORTS["trackedge-admin"]

            # 1. Empty catalog: the partner and offer through the admin API.
            te, _ = start_trackedge(te_env, args, te_bin, "seed")
            servers.append(te)
            info = seedmod.seed(f"http://127.0.0.1:{admin}", token, 0, os.path.join(args.workdir, "api-codes.txt"))
            # The offer's postback token is a secret: kept out of the report.
            pb_token = info.pop("postback_token")
            res["seed"] = info
            # 2. The links straight into Redis.
            open(codes_file, "w").close()
            log(f"writing {args.links:,} links straight into Redis")
            bs = bulkseed.bulk_seed(redis_host, redis_port, args.redis_prefix, info["partner_id"], info["offer_id"], args.links, codes_file, args.seed)
            log(f"seeded in {bs['seconds']} s")
            # 3. Restart: the catalog loads at start, and that is timed.
            restarts.append({"exit_code": te.stop(signal.SIGTERM, timeout=120), "stop_s": te.stop_seconds})
            servers.remove(te)
            te, ready = start_trackedge(te_env, args, te_bin, "main")
            servers.append(te)
            m = te_metrics(admin)
            res["catalog"] = {"main": {
                "links": args.links, "seeded": "Redis (bulkseed.py)", "seed_s": bs["seconds"], "startup_s": ready,
                "links_cached": int(metric(m, "trackedge_links_cached") or 0), "rss_after_start": proc_status(te.pid),
            }}
            log(f"trackedge ready {ready:.2f} s after start with {args.links:,} links")
            codes = read_lines(codes_file)
            code0 = codes[0]
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
            mm = re.search(r"[?&]cid=([^&]*)", loc)
            if mm and mm.group(1):
                cid_len = len(mm.group(1))
            if pbmod.NAME in scen_names:
                # Real click ids for the postbacks: real redirects (each
                # records a click, counted like the probe above).
                pb_cids, made = pbmod.harvest_click_ids(PORTS["trackedge"], codes, args.postback_clicks, res["settings"]["x_forwarded_for"])
                probe_requests += made
                st, body = pbmod.probe(PORTS["trackedge"], pb_token, pb_cids[0], f"lt-{secrets.token_hex(3)}-probe")
                res["probes"]["trackedge-postback"] = {"status": st, "body": body}
                if st != 200 or pbmod.EXPECT not in body:
                    raise Abort(f"trackedge postback probe answered {st}: {body[:300]}")
                pb_body = pbmod.nginx_body(body)
                log(f"{len(pb_cids):,} click ids from real redirects for the postbacks; probe: {body}")
        else:
            alphabet = string.ascii_letters + string.digits
            codes = ["".join(secrets.choice(alphabet) for _ in range(8)) for _ in range(args.links)]
            with open(codes_file, "w") as f:
                f.write("\n".join(codes) + "\n")
            pb_cids, pb_token = pbmod.synthetic_click_ids(args.postback_clicks, cid_len), secrets.token_hex(16)

        xff = res["settings"]["x_forwarded_for"]
        res["scenarios"] = {}
        req_files = {}
        for sc in scen_names:
            path = os.path.join(args.workdir, f"requests-{sc}.tsv")
            if sc == pbmod.NAME:
                res["scenarios"][sc] = pbmod.write(path, pb_token, pb_cids, args.pool, args.seed, xff)
            else:
                res["scenarios"][sc] = scenmod.write(path, sc, codes, args.pool, args.seed, xff)
            req_files[sc] = path

        cid = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(cid_len))
        access_log = os.path.join(args.workdir, "nginx-log", "access.log")
        ng = nginx_server("nginx", PORTS["nginx"], args.workdir, cid, pb_body)
        ngl = None if args.no_nginx_log else nginx_server("nginx-log", PORTS["nginx-log"], args.workdir, cid, pb_body, access_log)
        nginxes = [x for x in (ng, ngl) if x]
        for s in nginxes:
            log(f"starting {s.name} on 127.0.0.1:{s.port}")
            s.start()
            servers.append(s)
        for s in nginxes:
            wait_until(lambda s=s: port_open(s.port), 10, f"{s.name} port {s.port}", s)
            st, hdrs, _ = http_get(s.port, "/Abc123?sub1=abc12&sub2=camp3")
            res["probes"][s.name] = {"status": st, "location": hdrs.get("Location"), "headers": hdrs}
            if st != 302:
                raise Abort(f"{s.name} probe answered {st}")
            if pbmod.NAME in scen_names:
                st, body = pbmod.probe(s.port, pb_token, pb_cids[0], "lt-probe")
                res["probes"][f"{s.name}-postback"] = {"status": st, "body": body}
                if st != 200 or pbmod.EXPECT not in body:
                    raise Abort(f"{s.name} postback probe answered {st}: {body[:300]}")

        order = [x for x in (ng, te, ngl) if x]
        res["settings"]["order"] = [s.name for s in order]
        runner = Runner(args, backend_pids)
        if args.warmup > 0:
            # The postbacks warm up too: their first run would otherwise
            # pay for trackedge's first conversion (Redis state, log).
            for sc in [x for x in ("zipf", pbmod.NAME) if x in scen_names]:
                for s in order:
                    res["runs"].append(runner.run(s, args.warmup, "warmup", sc, req_files[sc]))
                    time.sleep(args.pause)
        for rnd in range(1, args.rounds + 1):
            for sc in scen_names:
                for s in order:
                    attempts = []
                    for attempt in range(args.retry_noisy + 1):
                        row = runner.run(s, args.duration, f"round{rnd}", sc, req_files[sc])
                        res["runs"].append(row)
                        attempts.append(row)
                        time.sleep(args.pause)
                        if not row["noisy"]:
                            break
                        if attempt < args.retry_noisy:
                            log("run was noisy: repeating it")
                    # The medians take the quietest attempt; the others stay
                    # in the JSON and the click accounting, marked discarded.
                    keep = min(attempts, key=lambda r: r["others_cpu_s"] + r["steal_s"])
                    for r in attempts:
                        if r is not keep:
                            r["discarded"] = True
        targets = [s.name for s in order]
        res["medians"], res["ratios"] = {}, {}
        for sc in scen_names:
            res["medians"][sc], res["ratios"][sc] = summarize(res["runs"], targets, sc)

        # Fixed-rate latency at a fraction of the saturation just measured.
        sat_target = "trackedge" if te else "nginx"
        sat = res["medians"]["zipf"].get(sat_target, {}).get("rps")
        if args.latency_duration > 0 and sat:
            rate = int(sat * args.latency_fraction)
            lat = {"rate": rate, "fraction": args.latency_fraction, "saturation_rps": sat,
                   "saturation_from": f"median wrk requests/s of {sat_target}, zipf scenario, this run",
                   "scenario": "zipf", "runs": []}
            lat_order = [x for x in (te, ng) if x]
            for rnd in range(args.latency_rounds):
                for s in lat_order:
                    sampler = drained = None
                    if s is te:
                        sampler = Sampler(te, PORTS["trackedge-admin"], ch_url, args.database, args.sample_interval)
                        drained = wait_shipped(PORTS["trackedge-admin"], te)
                        if drained:
                            log(f"waited {drained} s for trackedge to ship the clicks of the runs before")
                    row = run_loadgen(args, runner, s, req_files["zipf"], rate, args.latency_duration, args.latency_warmup,
                                      f"latency{rnd + 1}", "zipf", sampler)
                    lat["runs"].append(row)
                    if s is te:
                        row["waited_for_shipping_s"] = drained
                        loadgen_te_answered += row["loadgen"]["all_3xx"]
                    time.sleep(args.pause)
            te_samples = [x for r in lat["runs"] if r["target"] == "trackedge" for x in r.get("samples", [])]
            if te_samples:
                lat["ingest"] = sampler_summary(te_samples)
            res["latency"] = lat
        # The same for postbacks, at a fraction of trackedge's postback
        # saturation (or nginx's in an --nginx-only run).
        pb_sat = res["medians"].get(pbmod.NAME, {}).get(sat_target, {}).get("rps")
        if args.latency_duration > 0 and pb_sat:
            rate = int(pb_sat * args.latency_fraction)
            lat = {"rate": rate, "fraction": args.latency_fraction, "saturation_rps": pb_sat,
                   "saturation_from": f"median wrk requests/s of {sat_target}, postback scenario, this run",
                   "scenario": pbmod.NAME, "runs": []}
            for rnd in range(args.latency_rounds):
                for s in [x for x in (te, ng) if x]:
                    lat["runs"].append(run_loadgen(args, runner, s, req_files[pbmod.NAME], rate, args.latency_duration,
                                                   args.latency_warmup, f"latency{rnd + 1}", pbmod.NAME))
                    time.sleep(args.pause)
            res["latency_postback"] = lat
        if te:
            res["catalog"]["main"]["rss_after_load"] = proc_status(te.pid)
            res["catalog"]["main"]["load_note"] = "after the scenario and fixed-rate runs"

        # Catalog size: a million links, start time and memory.
        if te and args.big_links > args.links:
            restarts.append({"exit_code": te.stop(signal.SIGTERM, timeout=120), "stop_s": te.stop_seconds})
            servers.remove(te)
            extra = args.big_links - args.links
            log(f"writing {extra:,} more links straight into Redis ({args.big_links:,} in all)")
            bs = bulkseed.bulk_seed(redis_host, redis_port, args.redis_prefix, res["seed"]["partner_id"], res["seed"]["offer_id"],
                                    extra, codes_file, args.seed + 1)
            te, ready = start_trackedge(te_env, args, te_bin, "big")
            servers.append(te)
            order = [x if x.name != "trackedge" else te for x in order]
            big = {"links": args.big_links, "seeded": "Redis (bulkseed.py)", "seed_s": bs["seconds"], "startup_s": ready,
                   "rss_after_start": proc_status(te.pid)}
            log(f"trackedge ready {ready:.2f} s after start with {args.big_links:,} links; RSS {big['rss_after_start'].get('VmRSS')} MiB")
            big["links_cached"] = int(metric(te_metrics(PORTS["trackedge-admin"]), "trackedge_links_cached") or 0)
            big_codes = read_lines(codes_file)
            path = os.path.join(args.workdir, "requests-big.tsv")
            res["scenarios_big"] = scenmod.write(path, "zipf", big_codes, args.pool, args.seed, xff)
            req_files["big"] = path
            row = runner.run(te, args.duration, "big", "zipf-1M", path)
            res["runs"].append(row)
            big["load_s"] = args.duration
            big["load_note"] = f"after a {args.duration} s wrk run over all {args.big_links:,} links: {row['rps']:,.0f} req/s, {row['cpu_us_per_req']} µs/req"
            big["rss_after_load"] = proc_status(te.pid)
            res["catalog"]["big"] = big
            time.sleep(args.pause)

        # Soak: sustained fixed-rate load, sampled.
        if te and args.soak_minutes > 0 and sat:
            rate = int(sat * args.soak_fraction)
            secs = int(args.soak_minutes * 60)
            log(f"soak: {args.soak_minutes} min at {rate:,}/s")
            sampler = Sampler(te, PORTS["trackedge-admin"], ch_url, args.database, args.sample_interval)
            row = run_loadgen(args, runner, te, req_files["zipf"], rate, secs, 0, "soak", "zipf", sampler)
            loadgen_te_answered += row["loadgen"]["all_3xx"]
            res["soak"] = {"minutes": args.soak_minutes, "rate": rate, "fraction": args.soak_fraction,
                           "run": row, "ingest": row["ingest"]}

        if te:
            # Redirects only: a postback records a conversion, not a click.
            te_rows = [r for r in res["runs"] if r["target"] == "trackedge" and r.get("scenario") != pbmod.NAME]
            answered_wrk = sum(r["requests"] - r["non_2xx_3xx"] for r in te_rows)
            answered = answered_wrk + loadgen_te_answered + probe_requests
            acc = {"database": args.database, "answered": answered, "answered_wrk": answered_wrk,
                   "answered_loadgen": loadgen_te_answered, "probe_requests": probe_requests, "restarts": restarts}
            acc["not_found"] = sum(r["non_2xx_3xx"] for r in te_rows)
            t0 = time.monotonic()
            before, polls = ch_wait_stable(ch_url, args.database, answered, 15)
            acc["before_shutdown"], acc["poll_s_before"], acc["polls_before"] = before, time.monotonic() - t0, polls
            try:
                st, _, body = http_get(PORTS["trackedge-admin"], "/metrics")
                acc["metrics_excerpt"] = [
                    l for l in body.decode(errors="replace").splitlines()
                    if not l.startswith("#") and re.search(r"click|redirect|spool|flush|insert|drop|orphan", l, re.I)
                ][:40]
            except OSError as e:
                acc["metrics_excerpt"] = [f"error: {e}"]
            if pbmod.NAME in scen_names:
                pb_expect = pbmod.seen(res)["approved"]
                pb_before, _ = pbmod.wait_shipped(ch_query, ch_url, args.database, pb_expect, 15)
            log("stopping trackedge (SIGTERM), then re-counting clicks")
            acc["exit_code"] = te.stop(signal.SIGTERM, timeout=120)
            acc["stop_s"] = te.stop_seconds
            after, polls = ch_wait_stable(ch_url, args.database, answered, 15)
            acc["after_shutdown"], acc["polls_after"] = after, polls
            if pbmod.NAME in scen_names:
                pb_after, pb_polls = pbmod.wait_shipped(ch_query, ch_url, args.database, pb_expect, 15)
                res["postbacks"] = pbmod.account(res, pb_before, pb_after, acc["exit_code"],
                                                 pbmod.ch_statuses(ch_query, ch_url, args.database))
                res["postbacks"]["polls_after"] = pb_polls
            if after:
                acc["lost"] = answered - after[1]
                acc["duplicates"] = after[0] - after[1]
            # wrk does not count the requests in flight when its time is up,
            # at most one per connection per run: that many more clicks than
            # "answered" can legitimately be in ClickHouse.
            acc["in_flight_bound"] = args.connections * len(te_rows)
            acc["flags"] = ch_flags(ch_url, args.database)
            try:
                acc["orphan_rows"] = int(ch_query(ch_url, f"SELECT count() FROM {args.database}.orphan_hits FORMAT TSV").strip())
            except Exception:
                acc["orphan_rows"] = None
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

        for s in nginxes:
            s.stop(signal.SIGQUIT, timeout=30)  # graceful: flushes the buffered access log
        if ngl:
            ngl_answered = sum(r["requests"] - r["non_2xx_3xx"] for r in res["runs"] if r["target"] == "nginx-log") + 1
            try:
                with open(access_log, "rb") as f:
                    lines = sum(1 for _ in f)
                res["nginx_log_lines"] = {"lines": lines, "answered": ngl_answered}
            except OSError:
                pass
        res["targets"] = evaluate_targets(res) if te else []
    finally:
        for s in reversed(servers):
            if s.running():
                log(f"stopping {s.name}")
                s.stop(signal.SIGTERM if s.name == "trackedge" else signal.SIGQUIT, timeout=60)
    res["elapsed_s"] = round(time.monotonic() - t_start, 1)

    stem = args.result_name or res["date"]
    md = markdown(res)
    jpath = os.path.join(args.results, stem + ".json")
    os.makedirs(os.path.dirname(jpath), exist_ok=True)
    with open(jpath + ".tmp", "w") as f:
        json.dump(res, f, indent=2)
        f.write("\n")
    os.replace(jpath + ".tmp", jpath)
    with open(os.path.join(args.results, stem + ".md"), "w") as f:
        f.write(md)
    print(md)
    log(f"wrote {os.path.join(args.results, stem)}.md and .json")
    for t in res.get("targets", []):
        log(f"{t['result']:>7}  {t['id']}: {t['measured']}")
    acc = res.get("clicks")
    if acc and (acc.get("lost") is None or acc["lost"] > 0 or acc.get("exit_code") != 0):
        log("click accounting FAILED: clicks were lost or trackedge did not exit cleanly")
        return 3
    pb = res.get("postbacks")
    if pb and not pb.get("ok"):
        log("postback accounting FAILED: see the report's Postbacks section")
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
