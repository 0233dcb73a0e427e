#!/usr/bin/python3
"""example_client.py -- a minimal paidan client in Python, using only the
standard library and Debian's python3-msgpack.

It registers two volunteers, asks who is near, creates an order, watches the
offer arrive as a notification on a second connection, accepts it, completes
and rates the order, and prints the volunteer's record. Run it against a
live server:

    paidan-server --port 7411 &
    scripts/example_client.py --port 7411

Exits 0 when every step behaved as expected; otherwise it prints one line
saying which step, what it expected and what came back, and exits 1 (also
when it cannot reach the server). Its ids start at --id-base, by default
taken from the clock, so it can run again against the same server; it
removes its volunteers when it ends. Its volunteers carry tag --tag (63 by
default) and its query and order ask for it, so it finds them on a busy
server too. Needs /usr/bin/python3 (Debian's, for which python3-msgpack
installs). See docs/protocol.md.
"""
import argparse
import os
import socket
import sys
import time

try:
    import msgpack
except ImportError:  # reported by require_msgpack(), after --help
    msgpack = None

PROG = os.path.basename(sys.argv[0]) or "example_client.py"


def require_msgpack():
    """Exit 1 with one line when Python's msgpack module is missing."""
    if msgpack is None:
        print(f"{PROG}: Python's msgpack module is missing for {sys.executable}: "
              "install python3-msgpack (apt-get install python3-msgpack) and run "
              "with /usr/bin/python3", file=sys.stderr)
        sys.exit(1)


def int_range(lo, hi, what="a whole number"):
    """An argparse type: an integer in lo..hi."""
    def parse(text):
        try:
            v = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{v} is out of range {lo}..{hi}")
        return v
    return parse


PORT = int_range(1, 65535, "a port number")
ID_BASE = int_range(0, 2**63, "a whole number")


class RpcError(Exception):
    """An error reply: [code, message], to a call of method."""

    def __init__(self, code, message, method=None):
        super().__init__(f"error {code}: {message}")
        self.code = code
        self.message = message
        self.method = method


class ConnectFailed(Exception):
    """The server could not be reached."""


class ProtocolError(Exception):
    """The server's bytes are not paidan's MessagePack-RPC."""


class Failure(Exception):
    """A step did not behave as expected."""


def expect(ok, step, expected, got):
    """Raise Failure naming the step, what it expected and what came back."""
    if not ok:
        raise Failure(f"{step}: expected {expected}, got {got!r}")


class Client:
    """MessagePack-RPC over one TCP connection.

    Requests are [0, msgid, method, params]; responses [1, msgid, error,
    result]; notifications [2, method, params]. Notifications that arrive
    while waiting for a response are kept in self.notifications.
    """

    def __init__(self, host, port, timeout=10.0):
        require_msgpack()
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            raise ConnectFailed(f"cannot connect to {host}:{port}: "
                                f"{e.strerror or e}") from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.unpacker = msgpack.Unpacker(raw=False)
        self.next_id = 1
        self.pending = {}
        self.notifications = []

    def _next(self):
        try:
            msg = next(self.unpacker, None)
        except ValueError as e:  # msgpack's unpack errors
            raise ProtocolError(f"undecodable reply ({type(e).__name__})") from None
        if msg is not None and not (isinstance(msg, list) and len(msg) in (3, 4)
                                    and msg[0] in (1, 2)):
            raise ProtocolError(f"not a response or notification: {msg!r:.80}")
        return msg

    def _read(self):
        msg = self._next()
        while msg is None:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("server closed the connection")
            self.unpacker.feed(data)
            msg = self._next()
        return msg

    def send(self, method, **params):
        """Queue one request without waiting (pipelining); returns its msgid."""
        msgid = self.next_id
        self.next_id += 1
        self.pending[msgid] = method
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
            method = self.pending.pop(got, None)
            if got != msgid:
                continue
            if error is not None:
                raise RpcError(error[0], error[1], method)
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


def run(main, host, port):
    """Call main(); turn what can go wrong into one line on stderr and exit
    status 1 (130 on Ctrl-C)."""
    try:
        return main()
    except Failure as e:
        print(f"{PROG}: FAILED: {e}", file=sys.stderr)
    except RpcError as e:
        print(f"{PROG}: unexpected error reply to {e.method or 'a call'}: "
              f"{e.code} {e.message}", file=sys.stderr)
    except ConnectFailed as e:
        print(f"{PROG}: {e}", file=sys.stderr)
    except ProtocolError as e:
        print(f"{PROG}: {host}:{port} does not answer like a paidan-server: {e}",
              file=sys.stderr)
    except (OSError, EOFError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else (str(e) or type(e).__name__)
        print(f"{PROG}: connection to {host}:{port} failed: {why}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    return 1


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=PORT, default=7411, help="1..65535 (default 7411)")
    ap.add_argument("--token", help="shared token, if the server requires auth")
    ap.add_argument("--id-base", type=ID_BASE, default=None,
                    help="first of the ids this run uses, 0..2^63 (default: from the clock)")
    ap.add_argument("--tag", type=int_range(0, 63, "a tag bit"), default=63,
                    help="tag bit 0..63 its volunteers carry and its query and order "
                         "require (default 63): one no other volunteer on the server has")
    args = ap.parse_args()
    require_msgpack()
    return run(lambda: session(args), args.host, args.port)


def session(args):
    # Ids are the caller's: a run's own range, so a second run meets
    # neither the first one's order nor its volunteers' records.
    base = args.id_base if args.id_base is not None else int(time.time() * 1000) * 1000

    c = Client(args.host, args.port)
    watcher = Client(args.host, args.port)
    for conn in (c, watcher):
        if args.token:
            conn.call("auth", token=args.token)

    pong = c.call("ping")
    expect(pong == "pong", "ping", "'pong'", pong)
    vols = (base + 901, base + 902)
    oid = base + 1
    made = {"vols": []}  # what this run created: volunteers, then its order
    try:
        return walk_through(c, watcher, oid, vols, args.tag, base, made)
    finally:
        # Leave nothing behind, even after a failure half-way: an order of
        # ours still open holds its volunteer, so cancel it first (an error
        # here only means there is nothing to cancel or remove).
        calls = [("order.cancel", oid)] if made.get("order") else []
        calls += [("volunteer.remove", v) for v in made["vols"]]
        try:
            for method, key in calls:
                try:
                    c.call(method, id=key)
                except RpcError:
                    pass
        except (OSError, ProtocolError):
            pass  # the connection is gone: nothing more can be done


def walk_through(c, watcher, oid, vols, tag, base, made):
    """The order lifecycle, end to end; a Failure on a surprise."""
    watcher.call("subscribe", events=["order.offered", "order.accepted", "order.completed"])

    # Two volunteers near a community centre; ids are the caller's. The tag
    # sets them apart from whoever else the server holds. Ids someone else
    # uses are left alone (neither replaced nor removed).
    for v in vols:
        try:
            c.call("volunteer.get", id=v)
            raise Failure(f"volunteer {v} already exists on the server: expected a free id "
                          "(choose another --id-base), got a volunteer")
        except RpcError as e:
            if e.code != 4:  # NOT_FOUND
                raise
    made["vols"].append(vols[0])
    c.call("volunteer.upsert", id=vols[0], lat=30.6000, lon=114.3000,
           skills=["medical-fitness", "elder-care"], tags=[tag], mode="bike")
    made["vols"].append(vols[1])
    c.call("volunteer.upsert", id=vols[1], lat=30.6040, lon=114.3030,
           skills=["elder-care"], tags=[tag], schedule=[[d, 0, 24] for d in range(7)])

    near = c.call("match.nearby", lat=30.6010, lon=114.3010, skills=["elder-care"],
                  tags=[tag], k=5)
    print("nearby:", [(h["id"], round(h["eta_s"])) for h in near])
    expect({h["id"] for h in near} >= set(vols),
           f"match.nearby (elder-care, tag {tag}, k=5)",
           f"both our volunteers {list(vols)} among the answer", [h["id"] for h in near])

    # Pipelining: send several requests, then read the answers in order.
    ids = [c.send("volunteer.get", id=v) for v in vols]
    records = [c.response(i) for i in ids]
    expect([r["id"] for r in records] == list(vols), "pipelined volunteer.get",
           f"ids {list(vols)}", [r["id"] for r in records])

    # An order for an elderly resident living alone: elevated priority.
    order = c.call("order.create", id=oid, lat=30.6010, lon=114.3010,
                   skills=["medical-fitness"], tags=[tag], priority="elevated",
                   duration_min=60)
    made["order"] = True
    print("order:", order["state"], "offered to", [o["volunteer"] for o in order["offers"]])
    expect(order["state"] == "offered", f"order.create {oid}", "state 'offered'",
           f"{order['state']} (reason {order.get('reason')})")

    # The watcher sees every order's events: skip those of other orders.
    deadline = time.monotonic() + 10
    while True:
        try:
            event, params = watcher.notification()
        except socket.timeout:
            raise Failure(f"the watcher's notifications: expected order.offered for "
                          f"order {oid} within 10 s, got none") from None
        if event == "order.offered" and params.get("order") == oid:
            break
        expect(time.monotonic() < deadline, "the watcher's notifications",
               f"order.offered for order {oid} within 10 s", (event, params))
    print("notification:", event, params)
    volunteer = params["volunteer"]
    expect(volunteer == vols[0], f"order.offered for order {oid}",
           f"volunteer {vols[0]}, the only one of ours with medical-fitness "
           f"(another volunteer with tag {tag}? use --tag)", volunteer)

    order = c.call("order.accept", id=oid, volunteer=volunteer)
    expect(order["state"] == "accepted", "order.accept", "state 'accepted'", order["state"])
    c.call("order.complete", id=oid, minutes_served=90)
    c.call("order.rate", id=oid, score=5)

    record = c.call("volunteer.get", id=volunteer)
    print(f"volunteer {volunteer}: {record['hours']} h, {record['points']} points, "
          f"{record['stars']} stars, rating {record['rating']}")
    expect(record["hours"] == 1.5 and record["rating"] == 5, f"volunteer.get {volunteer}",
           "hours 1.5 and rating 5",
           {"hours": record["hours"], "rating": record["rating"]})

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
    expect(mine == [(oid, "rated")], f"order.list volunteer={volunteer}",
           [(oid, "rated")], mine)

    # Errors come back as [code, message] and the connection goes on.
    try:
        c.call("order.rate", id=base + 424242, score=3)
        raise Failure(f"order.rate of the unknown order {base + 424242}: expected "
                      "error 4 NOT_FOUND, got a result")
    except RpcError as e:
        print("expected error:", e.code, e.message)
        expect(e.code == 4, f"order.rate of the unknown order {base + 424242}",
               "error 4 (NOT_FOUND)", f"error {e.code}: {e.message}")

    stats = c.call("stats")
    print("server has", stats["volunteers"], "volunteers and", stats["orders"], "orders")
    return 0


if __name__ == "__main__":
    sys.exit(main())
