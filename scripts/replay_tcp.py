#!/usr/bin/env python3
"""replay_tcp.py -- replay the first orders of an orders CSV against a live
paidan-server over TCP, through the whole service loop.

For each order: order.create (dispatched at once), every volunteer offered
accepts, the service is completed with the order's duration, and the
resident rates it. The server stamps each call with its own clock, so the
orders run in wall time; only their place, skills, team size, time window
and priority come from the file. Prints what became of them.

    python3 scripts/replay_tcp.py --port 7411 --orders data/sample/county-orders.csv -n 300

The orders CSV format is docs/data.md's. Order ids are offset (--id-base) so
they cannot collide with orders the server already holds. Exits 0 when
every call was answered (errors included, which are counted), 1 otherwise.
Uses Debian's python3-msgpack and the Client of example_client.py.
"""
import argparse
import collections
import csv
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from example_client import Client, RpcError  # noqa: E402


def replay(c, row, id_base, tally):
    oid = id_base + int(row["id"])
    params = dict(id=oid, lat=float(row["lat"]), lon=float(row["lon"]),
                  skills=[s for s in row["skills"].split("|") if s],
                  need=int(row["need"]), start=int(row["start"]),
                  duration_min=int(row["duration_min"]), priority=row["priority"],
                  minutes=int(row["minutes"]))
    try:
        order = c.call("order.create", **params)
    except RpcError as e:
        tally["create refused: " + str(e.message)] += 1
        return
    tally["created"] += 1
    if order["state"] != "offered":
        tally["expired: " + order["reason"]] += 1
        return
    tally["offered"] += 1
    # Every volunteer offered accepts; a team fills slot by slot as new
    # offers go out, so look again until the order is accepted or stuck.
    for _ in range(2 * max(1, int(row["need"])) + 2):
        live = [o["volunteer"] for o in order["offers"] if o["state"] == "live"]
        if not live:
            break
        for v in live:
            try:
                order = c.call("order.accept", id=oid, volunteer=v)
            except RpcError:
                tally["accept refused (taken)"] += 1
        if order["state"] == "accepted":
            break
    if order["state"] != "accepted":
        tally["not filled: " + order["state"]] += 1
        return
    tally["accepted"] += 1
    c.call("order.complete", id=oid, minutes_served=int(row["duration_min"]))
    c.call("order.rate", id=oid, score=5 if oid % 4 else 4)
    tally["completed and rated"] += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7411)
    ap.add_argument("--token", help="shared token, if the server requires auth")
    ap.add_argument("--orders", default=os.path.join(os.path.dirname(__file__), "..", "data",
                                                     "sample", "county-orders.csv"))
    ap.add_argument("-n", type=int, default=300, help="orders to replay (default 300)")
    ap.add_argument("--id-base", type=int, default=800000000)
    args = ap.parse_args()

    c = Client(args.host, args.port)
    if args.token:
        c.call("auth", token=args.token)
    tally = collections.Counter()
    t0 = time.monotonic()
    with open(args.orders, newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            if i >= args.n:
                break
            replay(c, row, args.id_base, tally)
    dt = time.monotonic() - t0
    print(f"replayed {tally['created']} orders over TCP in {dt:.2f} s "
          f"({tally['created'] / dt:.0f} orders/s, 4 calls each when filled)")
    for key in sorted(tally, key=lambda k: (-tally[k], k)):
        print(f"  {key:<40} {tally[key]:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
