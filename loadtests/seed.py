#!/usr/bin/env python3
"""Seed trackedge with one partner, one offer and N links through the admin API.

Usage: seed.py ADMIN_URL TOKEN N OUT_FILE

Uses one keep-alive http.client connection (1000 links take well under a
second). Writes the link codes, one a line, to OUT_FILE and prints a JSON
summary (partner id, offer id and its postback token, number of links, a
sample tracking_url).
"""

import http.client
import json
import sys
import time
import urllib.parse

OFFER_URL = "https://shop.example.com/landing?aff={partner_id}&cid={click_id}&s1={sub1}"


class Admin:
    def __init__(self, base_url, token):
        u = urllib.parse.urlsplit(base_url)
        self.host, self.port = u.hostname, u.port or 80
        self.token = token
        self.conn = None

    def _connect(self):
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)

    def post(self, path, body):
        data = json.dumps(body).encode()
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/json",
        }
        for attempt in range(2):
            if self.conn is None:
                self._connect()
            try:
                self.conn.request("POST", path, body=data, headers=headers)
                resp = self.conn.getresponse()
                raw = resp.read()
                break
            except (http.client.HTTPException, OSError):
                # The server may close an idle keep-alive connection: reconnect once.
                self.conn.close()
                self.conn = None
                if attempt == 1:
                    raise
        if resp.status not in (200, 201):
            raise SystemExit(
                f"seed: POST {path} {body!r} -> {resp.status}: {raw[:500].decode(errors='replace')}"
            )
        try:
            return json.loads(raw)
        except ValueError:
            raise SystemExit(f"seed: POST {path} answered non-JSON: {raw[:500]!r}")


def seed(admin_url, token, n, out_file):
    t0 = time.monotonic()
    a = Admin(admin_url, token)
    partner = a.post("/api/v1/partners", {"name": "lt", "kind": "affiliate"})
    pid = partner["id"]
    offer = a.post(
        "/api/v1/offers",
        {"name": "lt", "url": OFFER_URL, "payout": {"model": "cpa", "amount": "5.00"}},
    )
    oid = offer["id"]
    codes = []
    sample = None
    for _ in range(n):
        link = a.post("/api/v1/links", {"partner_id": pid, "offer_id": oid})
        codes.append(link["code"])
        sample = sample or link.get("tracking_url")
    if len(set(codes)) != len(codes):
        raise SystemExit("seed: the admin API returned duplicate link codes")
    with open(out_file, "w") as f:
        f.write("\n".join(codes) + "\n")
    return {
        "partner_id": pid,
        "offer_id": oid,
        # What a merchant's postbacks for this offer authenticate with.
        "postback_token": offer["postback_token"],
        "links": len(codes),
        "sample_tracking_url": sample,
        "seconds": round(time.monotonic() - t0, 3),
    }


def main():
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    admin_url, token, n, out_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    print(json.dumps(seed(admin_url, token, n, out_file)))


if __name__ == "__main__":
    main()
