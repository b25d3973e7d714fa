#!/usr/bin/env python3
"""What the machine was doing during each stall of a fixed-rate run.

    loadtests/stalls.py RUN.json [--top N] [--min-ms MS] [--server-cpu 0]

RUN.json is a fixed-rate run's loadgen output (`target/loadtest/wrk/NN-
latencyK-zipf-trackedge.json`) and RUN.perf.data beside it the kernel trace
`bench.py` records when `LT_PERF_EVENTS` is set (sched_switch and
sched_wakeup with call graphs, on CLOCK_MONOTONIC like the stall list).

For each of the N worst stalls (at least MS slow) it prints the window
from the first slow request's scheduled send time to that time plus the
worst latency, and in it:
- each CPU's time by task (who held the server's CPU while requests
  waited, and the generator's);
- every stretch in which a thread of the server process or the load
  generator was off its CPU for 1 ms or more or, once woken, waited 0.5 ms
  or more to run, with the state it left in (R preempted, S sleeping, D
  uninterruptible) and where it was (the kernel and user frames of its
  switch-out), and how long it then waited between its wake-up and running;
- with `cpu-clock` among the events, the stacks sampled most often;
- any other event asked for (`major-faults`, say), counted by where it hit.

Only the standard library and `perf script`.
"""

import argparse
import collections
import json
import os
import re
import subprocess
import sys

SWITCH = re.compile(
    r"prev_comm=(?P<pc>.+?) prev_pid=(?P<pp>\d+) prev_prio=\d+ prev_state=(?P<ps>\S+) ==> "
    r"next_comm=(?P<nc>.+?) next_pid=(?P<np>\d+) next_prio=\d+"
)
WAKE = re.compile(r"comm=(?P<c>.+?) pid=(?P<p>\d+) prio=\d+ target_cpu=(?P<cpu>\d+)")
HEAD = re.compile(
    r"^\s*(?P<comm>.+?)\s+(?P<pid>\d+)/(?P<tid>\d+)\s+\[(?P<cpu>\d+)\]\s+(?P<t>[\d.]+):\s+(?P<ev>[\w:-]+?):?\s+(?P<rest>.*)$"
)


# The load generator's thread name, as the kernel keeps it (15 characters).
GENERATOR = "trackedge-loadg"


def events(perf_data, start, end):
    """(time, cpu, pid, tid, comm, event, rest, frames) between start and end."""
    out = subprocess.run(
        ["perf", "script", "-i", perf_data, "--ns", "--time", f"{start:.9f},{end:.9f}",
         "-F", "comm,pid,tid,cpu,time,event,trace,ip,sym"],
        capture_output=True, text=True, check=True,
    ).stdout
    cur = None
    for line in out.splitlines():
        m = HEAD.match(line)
        if m:
            if cur:
                yield cur
            cur = (float(m["t"]), int(m["cpu"]), int(m["pid"]), int(m["tid"]), m["comm"].strip(),
                   m["ev"], m["rest"], [])
        elif line.strip() and cur:
            parts = line.split(None, 1)
            sym = parts[1] if len(parts) > 1 else parts[0]
            if sym != "[unknown]":
                cur[7].append(sym)
    if cur:
        yield cur


def analyse(perf_data, stall, server_pids, lead=0.005):
    t0 = stall["first_mono_s"]
    t1 = t0 + stall["worst_ms"] / 1000
    evs = list(events(perf_data, t0 - lead - 0.2, t1 + 0.001))
    on_cpu = {}  # cpu -> (tid, comm, since)
    busy = collections.defaultdict(float)  # (cpu, label) -> seconds in window
    left = {}  # tid -> (time, state, frames, comm)
    woken = {}  # tid -> time
    offs = []
    pid_of = {}
    samples = collections.Counter()  # (cpu, comm, frames) -> count, in the window
    others = collections.Counter()  # (cpu, comm, event, frames) -> count
    for t, cpu, pid, tid, comm, ev, rest, frames in evs:
        pid_of[tid] = pid
        if ev.startswith("cpu-clock"):
            if t0 <= t <= t1 and tid:
                samples[(cpu, comm, frames_text(frames, 12))] += 1
        elif ev == "sched:sched_switch":
            m = SWITCH.search(rest)
            if not m:
                continue
            prev, nxt = int(m["pp"]), int(m["np"])
            if cpu in on_cpu:
                ptid, pcomm, since = on_cpu[cpu]
                a, b = max(since, t0), min(t, t1)
                if b > a:
                    busy[(cpu, f"{pcomm}/{ptid}" if ptid else "idle")] += b - a
            left[prev] = (t, m["ps"], frames, m["pc"])
            on_cpu[cpu] = (nxt, m["nc"], t)
            if nxt in left:
                lt, state, fr, c = left.pop(nxt)
                wk = woken.pop(nxt, None)
                if pid_of.get(nxt) in server_pids or nxt in server_pids or c.startswith(GENERATOR):
                    waited = t - wk if wk else 0
                    if (t - lt >= 0.001 or waited >= 0.0005) and t >= t0 - lead and lt <= t1:
                        offs.append((lt, t, c, nxt, state, fr, wk))
        elif ev in ("sched:sched_wakeup",):
            m = WAKE.search(rest)
            if m:
                woken[int(m["p"])] = t
        elif t0 - lead <= t <= t1:
            # Any other event asked for (major-faults, ...): where it hit.
            others[(cpu, comm, ev, frames_text(frames, 10))] += 1
    for cpu, (tid, comm, since) in on_cpu.items():
        a, b = max(since, t0), t1
        if b > a:
            busy[(cpu, f"{comm}/{tid}" if tid else "idle")] += b - a
    return t0, t1, busy, offs, samples, others


def frames_text(fr, n=14):
    keep = [f.split("+0x")[0] for f in fr]
    return " < ".join(keep[:n])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("--min-ms", type=float, default=5)
    ap.add_argument("--server-comm", default="tokio-runtime-w,shipper,spool-upkeep,trackedge,public-0,public-1,nginx",
                    help="thread names that identify the server process")
    a = ap.parse_args()
    lg = json.load(open(a.run))
    perf_data = a.run[: -len(".json")] + ".perf.data"
    if not os.path.exists(perf_data):
        sys.exit(f"stalls: no {perf_data} (run with LT_PERF_EVENTS set)")
    # The server's pid: the process of a thread with one of its names.
    names = set(a.server_comm.split(","))
    stalls = sorted((s for s in lg.get("stalls", []) if s["worst_ms"] >= a.min_ms),
                    key=lambda s: -s["worst_ms"])[: a.top]
    print(f"{a.run}: {len(lg.get('stalls', []))} stalls over {lg['stall_us'] / 1000:g} ms; "
          f"latency {lg['latency_us']}")
    server_pids = None
    for s in stalls:
        if server_pids is None:
            probe = events(perf_data, s["first_mono_s"] - 1, s["first_mono_s"])
            server_pids = {pid for _, _, pid, _, comm, _, _, _ in probe if comm in names}
        t0, t1, busy, offs, samples, others = analyse(perf_data, s, server_pids)
        print(f"\n== stall at {s['first_s']:.3f} s (mono {t0:.6f}): worst {s['worst_ms']} ms, "
              f"{s['requests']} requests over {s['span_ms']} ms; window {(t1 - t0) * 1e3:.1f} ms")
        for cpu in sorted({c for c, _ in busy}):
            rows = sorted(((v, k) for (c, k), v in busy.items() if c == cpu), reverse=True)
            print(f"  cpu{cpu}: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for v, k in rows[:6]))
        for (cpu, comm, fr), n in samples.most_common(8):
            print(f"  cpu{cpu} sampled {n}x {comm}: {fr}")
        for (cpu, comm, ev, fr), n in others.most_common(8):
            print(f"  cpu{cpu} {ev} {n}x {comm}: {fr}")
        for lt, t, c, tid, state, fr, wk in sorted(offs):
            wait = f", runnable {1e3 * (t - wk):.1f} ms before it ran" if wk else ""
            print(f"  {c}/{tid} off cpu {1e3 * (t - lt):.1f} ms from {1e3 * (lt - t0):+.1f} ms, state {state}{wait}")
            print(f"      {frames_text(fr)}")


if __name__ == "__main__":
    main()
