#!/usr/bin/env python3
"""Write links straight into Redis in trackedge's storage format (stdlib only).

Usage: bulkseed.py REDIS_HOST REDIS_PORT PREFIX PARTNER_ID OFFER_ID N CODES_OUT [SEED]

Seeding a million links through the admin API takes many minutes; this
writes them as trackedge's catalog (src/catalog/store.rs) stores them, with key
prefix P (`redis.prefix`, default `te:`):

- hash `P links`:     link id (decimal) -> the link's JSON
                       {"id":N,"code":"...","partner_id":1,"offer_id":1,
                        "status":"active","created_at":"2026-01-01T00:00:00Z"}
- hash `P codes`:     code -> link id
- zset `P idx:links`: member id, score id
- key  `P seq:link`:  the highest id handed out

The partner and offer must exist already (create them through the admin
API). New ids continue after the current `seq:link`. Codes are 8 base62
characters, random from SEED, unique, and never one that `P codes` already
holds. The commands go to `redis-cli --pipe` as generated RESP, HSET/ZADD
with 1000 fields each. trackedge loads the catalog at start (and at its
periodic resync), so restart it afterwards. Appends the new codes to
CODES_OUT and prints a JSON summary.
"""

import json
import random
import subprocess
import sys
import time

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BATCH = 1000


def _resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if not isinstance(a, bytes):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def redis_cli(host, port, *args):
    p = subprocess.run(
        ["redis-cli", "-h", host, "-p", str(port), "--raw", *map(str, args)],
        capture_output=True, text=True, timeout=60,
    )
    if p.returncode != 0:
        raise RuntimeError(f"redis-cli {' '.join(map(str, args))}: {p.stderr.strip()}")
    return p.stdout.strip()


def bulk_seed(host, port, prefix, partner_id, offer_id, n, codes_out, seed=1):
    t0 = time.monotonic()
    seq = int(redis_cli(host, port, "GET", f"{prefix}seq:link") or 0)
    existing = set()
    if int(redis_cli(host, port, "HLEN", f"{prefix}codes") or 0) > 0:
        existing = set(redis_cli(host, port, "HKEYS", f"{prefix}codes").split())
    rng = random.Random(seed * 1000003 + seq)
    codes = []
    seen = set(existing)
    while len(codes) < n:
        c = "".join(rng.choice(ALPHABET) for _ in range(8))
        if c not in seen:
            seen.add(c)
            codes.append(c)
    k_links, k_codes, k_idx, k_seq = (f"{prefix}{k}".encode() for k in ("links", "codes", "idx:links", "seq:link"))
    proc = subprocess.Popen(
        ["redis-cli", "-h", host, "-p", str(port), "--pipe"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    w = proc.stdin
    first = seq + 1
    for b in range(0, n, BATCH):
        chunk = range(b, min(b + BATCH, n))
        links, cmap, idx = [k_links], [k_codes], [k_idx]
        for j in chunk:
            lid = first + j
            code = codes[j]
            js = (
                f'{{"id":{lid},"code":"{code}","partner_id":{partner_id},"offer_id":{offer_id},'
                f'"status":"active","created_at":"2026-01-01T00:00:00Z"}}'
            )
            links += [str(lid).encode(), js.encode()]
            cmap += [code.encode(), str(lid).encode()]
            idx += [str(lid).encode(), str(lid).encode()]
        w.write(_resp(b"HSET", *links))
        w.write(_resp(b"HSET", *cmap))
        w.write(_resp(b"ZADD", *idx))
    last = seq + n
    w.write(_resp(b"SET", k_seq, str(last).encode()))
    w.close()
    out = proc.stdout.read().decode(errors="replace")
    rc = proc.wait()
    if rc != 0 or "errors: 0" not in out:
        raise RuntimeError(f"redis-cli --pipe failed (exit {rc}): {out.strip()[-500:]}")
    with open(codes_out, "a") as f:
        f.write("\n".join(codes) + "\n")
    return {
        "links": n,
        "first_id": first,
        "last_id": last,
        "prefix": prefix,
        "seconds": round(time.monotonic() - t0, 2),
        "redis_cli": out.strip().splitlines()[-1] if out.strip() else "",
    }


def main():
    if len(sys.argv) not in (8, 9):
        raise SystemExit(__doc__)
    host, port, prefix, pid, oid, n, out = sys.argv[1:8]
    seed = int(sys.argv[8]) if len(sys.argv) == 9 else 1
    print(json.dumps(bulk_seed(host, int(port), prefix, int(pid), int(oid), int(n), out, seed)))


if __name__ == "__main__":
    main()
