#!/usr/bin/python3
"""replay_tcp.py -- replay the first orders of an orders CSV against a live
paidan-server over TCP, through the whole service loop.

For each order: order.create (dispatched at once), every volunteer offered
accepts, the service is completed with the order's duration, and the
resident rates it. The server stamps each call with its own clock, so the
orders run in wall time; only their place, skills, team size, time window
and priority come from the file. Prints what became of them.

    scripts/replay_tcp.py --port 7411 --orders data/sample/county-orders.csv -n 300

The orders CSV format is docs/data.md's. Order ids are offset (--id-base) so
they cannot collide with orders the server already holds; a second replay
on the same server needs another --id-base (ids it finds taken are counted
and it says so). Exits 0 when
every call was answered (errors included, which are counted), 1 otherwise,
with one line saying why (no server, an unreadable or malformed orders
file, a lost connection). Needs /usr/bin/python3 (Debian's, for which
python3-msgpack installs) and the Client of example_client.py.
"""
import argparse
import collections
import csv
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from example_client import (PROG, ID_BASE, PORT, Client, RpcError, int_range,  # noqa: E402
                            require_msgpack, run)

COLUMNS = ("id", "lat", "lon", "skills", "need", "start", "duration_min", "priority",
           "minutes")


EXISTS = 5  # the error code of order.create for an id the server already keeps
EXISTS_KEY = "create refused: the id exists"


class BadRow(Exception):
    """A row of the orders file that cannot be replayed."""


def replay(c, row, id_base, tally):
    try:
        oid = id_base + int(row["id"])
        params = dict(id=oid, lat=float(row["lat"]), lon=float(row["lon"]),
                      skills=[s for s in row["skills"].split("|") if s],
                      need=int(row["need"]), start=int(row["start"]),
                      duration_min=int(row["duration_min"]), priority=row["priority"],
                      minutes=int(row["minutes"]))
    except (ValueError, TypeError, AttributeError) as e:
        raise BadRow(str(e)) from None
    try:
        order = c.call("order.create", **params)
    except RpcError as e:
        if e.code == EXISTS:  # one line for them all, not one per order
            tally[EXISTS_KEY] += 1
        else:
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
    for method, args in (("order.complete", dict(minutes_served=int(row["duration_min"]))),
                         ("order.rate", dict(score=5 if oid % 4 else 4))):
        try:
            c.call(method, id=oid, **args)
        except RpcError as e:
            tally[f"{method} refused: {e.message}"] += 1
            return
    tally["completed and rated"] += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=PORT, default=7411, help="1..65535 (default 7411)")
    ap.add_argument("--token", help="shared token, if the server requires auth")
    ap.add_argument("--orders", default=os.path.join(os.path.dirname(__file__), "..", "data",
                                                     "sample", "county-orders.csv"),
                    help="orders CSV (default: the sample county's)")
    ap.add_argument("-n", type=int_range(1, 10**9), default=300,
                    help="orders to replay, 1..10^9 (default 300)")
    ap.add_argument("--id-base", type=ID_BASE, default=800000000,
                    help="added to each order's id, 0..2^63 (default 800000000)")
    args = ap.parse_args()
    require_msgpack()
    # The file first: a wrong path fails before anything reaches the server.
    try:
        f = open(args.orders, newline="")
    except OSError as e:
        print(f"{PROG}: cannot read the orders file {args.orders}: {e.strerror}",
              file=sys.stderr)
        return 1
    with f:
        try:
            reader = csv.DictReader(f)
            missing = [k for k in COLUMNS if k not in (reader.fieldnames or [])]
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            print(f"{PROG}: cannot read the orders file {args.orders}: {e}", file=sys.stderr)
            return 1
        if missing:
            print(f"{PROG}: {args.orders} is not an orders CSV (docs/data.md): no column "
                  f"{', '.join(missing)}", file=sys.stderr)
            return 1
        return run(lambda: replay_all(args, reader), args.host, args.port)


def replay_all(args, reader):
    c = Client(args.host, args.port)
    if args.token:
        c.call("auth", token=args.token)
    tally = collections.Counter()
    t0 = time.monotonic()
    try:
        for i, row in enumerate(reader):
            if i >= args.n:
                break
            try:
                replay(c, row, args.id_base, tally)
            except BadRow as e:
                print(f"{PROG}: {args.orders} line {reader.line_num}: bad row ({e})",
                      file=sys.stderr)
                return 1
    except (UnicodeDecodeError, csv.Error) as e:
        print(f"{PROG}: {args.orders} line {reader.line_num}: {e}", file=sys.stderr)
        return 1
    dt = max(time.monotonic() - t0, 1e-9)
    print(f"replayed {tally['created']} orders over TCP in {dt:.2f} s "
          f"({tally['created'] / dt:.0f} orders/s, 4 calls each when filled)")
    for key in sorted(tally, key=lambda k: (-tally[k], k)):
        print(f"  {key:<40} {tally[key]:>6}")
    if tally[EXISTS_KEY]:
        print(f"{PROG}: {tally[EXISTS_KEY]} order ids were already on the server (a replay "
              f"before this one?): pass another --id-base to replay them again",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
