#!/usr/bin/env python3
"""example_client.py -- a minimal paidan client in Python, using only the
standard library and Debian's python3-msgpack.

It registers two volunteers, asks who is near, creates an order, watches the
offer arrive as a notification on a second connection, accepts it, completes
and rates the order, and prints the volunteer's record. Run it against a
live server:

    paidan-server --port 7411 &
    python3 scripts/example_client.py --port 7411

Exits 0 when every step behaved as expected. Its ids start at --id-base,
by default taken from the clock, so it can run again against the same
server; it removes its volunteers when it ends. See docs/protocol.md.
"""
import argparse
import socket
import sys
import time

import msgpack


class RpcError(Exception):
    """An error reply: [code, message]."""

    def __init__(self, code, message):
        super().__init__(f"error {code}: {message}")
        self.code = code
        self.message = message


class Client:
    """MessagePack-RPC over one TCP connection.

    Requests are [0, msgid, method, params]; responses [1, msgid, error,
    result]; notifications [2, method, params]. Notifications that arrive
    while waiting for a response are kept in self.notifications.
    """

    def __init__(self, host, port, timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.unpacker = msgpack.Unpacker(raw=False)
        self.next_id = 1
        self.notifications = []

    def _read(self):
        for msg in self.unpacker:
            return msg
        while True:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("server closed the connection")
            self.unpacker.feed(data)
            for msg in self.unpacker:
                return msg

    def send(self, method, **params):
        """Queue one request without waiting (pipelining); returns its msgid."""
        msgid = self.next_id
        self.next_id += 1
        self.sock.sendall(msgpack.packb([0, msgid, method, params]))
        return msgid

    def response(self, msgid):
        """Wait for the response to msgid, keeping notifications for later."""
        while True:
            msg = self._read()
            if msg[0] == 2:
                self.notifications.append((msg[1], msg[2]))
                continue
            _, got, error, result = msg
            if got != msgid:
                continue
            if error is not None:
                raise RpcError(error[0], error[1])
            return result

    def call(self, method, **params):
        return self.response(self.send(method, **params))

    def notification(self):
        """The next notification: (event name, params)."""
        if self.notifications:
            return self.notifications.pop(0)
        while True:
            msg = self._read()
            if msg[0] == 2:
                return msg[1], msg[2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7411)
    ap.add_argument("--token", help="shared token, if the server requires auth")
    ap.add_argument("--id-base", type=int, default=None,
                    help="first of the ids this run uses (default: from the clock)")
    args = ap.parse_args()
    # Ids are the caller's: a run's own range, so a second run meets
    # neither the first one's order nor its volunteers' records.
    base = args.id_base if args.id_base is not None else int(time.time() * 1000) * 1000

    c = Client(args.host, args.port)
    watcher = Client(args.host, args.port)
    for conn in (c, watcher):
        if args.token:
            conn.call("auth", token=args.token)

    assert c.call("ping") == "pong"
    vols = (base + 901, base + 902)
    try:
        return walk_through(c, watcher, base, vols)
    finally:
        for v in vols:
            try:
                c.call("volunteer.remove", id=v)
            except RpcError:
                pass


def walk_through(c, watcher, base, vols):
    """The order lifecycle, end to end; an AssertionError on a surprise."""
    oid = base + 1
    watcher.call("subscribe", events=["order.offered", "order.accepted", "order.completed"])

    # Two volunteers near a community centre; ids are the caller's.
    c.call("volunteer.upsert", id=vols[0], lat=30.6000, lon=114.3000,
           skills=["medical-fitness", "elder-care"], mode="bike")
    c.call("volunteer.upsert", id=vols[1], lat=30.6040, lon=114.3030,
           skills=["elder-care"], schedule=[[d, 0, 24] for d in range(7)])

    near = c.call("match.nearby", lat=30.6010, lon=114.3010, skills=["elder-care"], k=5)
    print("nearby:", [(h["id"], round(h["eta_s"])) for h in near])
    assert {h["id"] for h in near} >= set(vols)

    # Pipelining: send several requests, then read the answers in order.
    ids = [c.send("volunteer.get", id=v) for v in vols]
    records = [c.response(i) for i in ids]
    assert [r["id"] for r in records] == list(vols)

    # An order for an elderly resident living alone: elevated priority.
    order = c.call("order.create", id=oid, lat=30.6010, lon=114.3010,
                   skills=["medical-fitness"], priority="elevated", duration_min=60)
    print("order:", order["state"], "offered to", [o["volunteer"] for o in order["offers"]])
    assert order["state"] == "offered"

    event, params = watcher.notification()
    print("notification:", event, params)
    assert event == "order.offered" and params["order"] == oid
    volunteer = params["volunteer"]

    order = c.call("order.accept", id=oid, volunteer=volunteer)
    assert order["state"] == "accepted"
    c.call("order.complete", id=oid, minutes_served=90)
    c.call("order.rate", id=oid, score=5)

    record = c.call("volunteer.get", id=volunteer)
    print(f"volunteer {volunteer}: {record['hours']} h, {record['points']} points, "
          f"{record['stars']} stars, rating {record['rating']}")
    assert record["hours"] == 1.5 and record["rating"] == 5

    # Reading orders back (after a restart, for a dashboard): a page at a
    # time, filtered, each page's "next" passed as "after" until it is None.
    mine, cursor = [], {}
    while True:
        page = c.call("order.list", volunteer=volunteer, limit=10, **cursor)
        mine += [(o["id"], o["state"]) for o in page["orders"]]
        if page["next"] is None:
            break
        cursor = {"after": page["next"]}
    print("orders of volunteer %d:" % volunteer, mine)
    assert mine == [(oid, "rated")]

    # Errors come back as [code, message] and the connection goes on.
    try:
        c.call("order.rate", id=base + 424242, score=3)
        raise AssertionError("expected an error")
    except RpcError as e:
        print("expected error:", e.code, e.message)
        assert e.code == 4  # NOT_FOUND

    stats = c.call("stats")
    print("server has", stats["volunteers"], "volunteers and", stats["orders"], "orders")
    return 0


if __name__ == "__main__":
    sys.exit(main())
