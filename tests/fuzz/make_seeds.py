#!/usr/bin/python3
"""make_seeds.py -- write the seed corpora of tests/fuzz/corpus/.

Run from anywhere: /usr/bin/python3 tests/fuzz/make_seeds.py [PAIDAN_SERVER].
With the path of a paidan-server binary it also runs that server on a
temporary data directory, sends it a session and asks for a snapshot, and
takes the journal segment and the snapshot it wrote as seeds of the
journal and snapshot targets. The seeds are small,
valid inputs that reach deep quickly: every RPC method with typical
arguments, a session that creates, dispatches, accepts, completes and
rates an order, pipelined and split frames, and the first lines of the
sample county's CSV files. libFuzzer mutates from there. The files are
committed; rerun this only when the protocol or the formats change.
"""
import os
import sys

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def req(msgid, method, params):
    return msgpack.packb([0, msgid, method, params])


V = {"id": 901, "lat": 30.6, "lon": 114.3, "skills": ["medical-fitness", "elder-care"],
     "mode": "bike", "schedule": [[0, 18, 21], [5, 8, 18]], "capacity": 2, "tags": [1, 4]}
V2 = {"id": 902, "lat": 30.601, "lon": 114.302, "skills": "medical-fitness,tutoring"}
O = {"id": 9001, "lat": 30.601, "lon": 114.301, "skills": ["medical-fitness"],
     "priority": "elevated", "duration_min": 60, "ignore_schedule": True}

CALLS = [
    ("ping", {}),
    ("auth", {"token": "s3cret"}),
    ("stats", {}),
    ("methods", {}),
    ("config.get", {}),
    ("subscribe", {"events": ["order.offered", "order.accepted"]}),
    ("subscribe", {"events": ["*"]}),
    ("unsubscribe", {"events": ["order.*"]}),
    ("volunteer.upsert", V),
    ("volunteer.update", {"id": 901, "lat": 30.6012, "lon": 114.3021}),
    ("volunteer.update", {"id": 901, "status": "offline", "capacity": 3}),
    ("volunteer.remove", {"id": 901}),
    ("volunteer.get", {"id": 901}),
    ("match.nearby", {"lat": 30.601, "lon": 114.301, "skills": ["elder-care"], "k": 3,
                      "policy": "nearest", "minutes": 20}),
    ("match.mobilize", {"lat": 30.6, "lon": 114.3, "radius_m": 3000, "limit": 2,
                        "mark_notified": True}),
    ("order.create", O),
    ("order.create", {"id": 9002, "lat": 30.6, "lon": 114.3, "mode": "grab",
                      "slots": [{"skills": ["sanitation"], "need": 4},
                                {"skills": ["medical-fitness"]}], "dispatch": False}),
    ("order.dispatch", {"id": 9002}),
    ("order.accept", {"id": 9001, "volunteer": 901}),
    ("order.decline", {"id": 9001, "volunteer": 901}),
    ("order.release", {"id": 9001, "volunteer": 901}),
    ("order.cancel", {"id": 9001}),
    ("order.complete", {"id": 9001, "minutes_served": 90}),
    ("order.rate", {"id": 9001, "score": 5}),
    ("order.get", {"id": 9001}),
    ("order.candidates", {"id": 9001, "slot": 0, "k": 5}),
    ("dispatch.batch", {"orders": [9001, 9002], "apply": "greedy", "k": 4}),
    ("order.list", {"state": ["offered", "accepted"], "volunteer": 901, "limit": 5}),
    ("order.purge", {"older_than_days": 30}),
]


def request_seeds():
    # One method per seed, sent whole (first byte 0).
    for i, (m, p) in enumerate(CALLS):
        write("request", "m%02d-%s" % (i, m), b"\x00" + req(i + 1, m, p))
    # A whole session, pipelined, then the same session a few bytes per write.
    session = b"".join([
        req(1, "subscribe", {"events": ["*"]}),
        req(2, "volunteer.upsert", V),
        req(3, "volunteer.upsert", V2),
        req(4, "order.create", O),
        req(5, "order.accept", {"id": 9001, "volunteer": 901}),
        req(6, "order.complete", {"id": 9001, "minutes_served": 45}),
        req(7, "order.rate", {"id": 9001, "score": 4}),
        req(8, "volunteer.get", {"id": 901}),
        msgpack.packb([2, "volunteer.update", {"id": 902, "lat": 30.602, "lon": 114.3}]),
        req(9, "match.nearby", {"lat": 30.6, "lon": 114.3, "k": 10}),
        req(10, "stats", {}),
    ])
    write("request", "session-whole", b"\x00" + session)
    write("request", "session-split7", b"\x07" + session)
    write("request", "session-split1", b"\x01" + session[:200])
    # Batch over created orders.
    batch = b"".join([
        req(1, "volunteer.upsert", V),
        req(2, "volunteer.upsert", V2),
        req(3, "order.create", dict(O, dispatch=False)),
        req(4, "order.create", {"id": 9003, "lat": 30.6, "lon": 114.3,
                                "skills": ["tutoring"], "dispatch": False,
                                "ignore_schedule": True}),
        req(5, "dispatch.batch", {}),
        req(6, "order.get", {"id": 9003}),
    ])
    write("request", "batch", b"\x00" + batch)
    # Malformed but decodable, and not decodable at all.
    write("request", "bad-notarray", b"\x00" + msgpack.packb({"a": 1}))
    write("request", "bad-type", b"\x00" + msgpack.packb([5, 1, "ping", {}]))
    write("request", "bad-params", b"\x00" + msgpack.packb([0, 1, "ping", [1, 2]]))
    write("request", "bad-unknown", b"\x00" + req(1, "no.such", {}))
    write("request", "bad-c1", b"\x00" + req(1, "ping", {}) + b"\xc1")
    write("request", "bad-huge-array", b"\x00\xdd\xff\xff\xff\xff")
    write("request", "params-in-array", b"\x00" + msgpack.packb([0, 1, "volunteer.get", [{"id": 1}]]))


def frame_seeds():
    s = req(1, "ping", {}) + req(2, "volunteer.upsert", V) + msgpack.packb(
        [1, 2, None, {"x": [1.5, -3, b"bin", msgpack.ExtType(5, b"abcd")]}])
    write("frame", "requests", b"\x04\x00" + s)
    write("frame", "requests-split3", b"\x04\x02" + s)
    write("frame", "deep", b"\x00\x00" + b"\x91" * 31 + b"\xc0")
    write("frame", "too-deep", b"\x00\x00" + b"\x91" * 40 + b"\xc0")
    write("frame", "claims", b"\x0a\x05" + b"\xdd\x00\x00\x10\x00\x01\x02")
    write("frame", "str32", b"\x0a\x10" + b"\xdb\x00\x00\x00\x05hello" + b"\xc4\x02hi")
    write("frame", "ext", b"\x03\x01" + b"\xc7\x03\x01abc\xd4\x01\x02\xd8\x01" + b"x" * 16)


def csv_seeds():
    for kind, fname, tag in ((0, "county-volunteers.csv", "volunteers"),
                             (1, "county-orders.csv", "orders")):
        with open(os.path.join(ROOT, "data", "sample", fname), "rb") as f:
            lines = f.read().split(b"\n")
        write("csv", tag + "-head", bytes([kind]) + b"\n".join(lines[:12]) + b"\n")
        write("csv", tag + "-header-only", bytes([kind]) + lines[0] + b"\n")
        write("csv", tag + "-crlf", bytes([kind]) + b"\r\n".join(lines[:4]))
        write("csv", tag + "-bad", bytes([kind]) + lines[0] + b"\n" + lines[1][:-3] + b"x,,\n\n"
              + lines[2] + b"\n")


def request_dict():
    """Method names, argument names and enum values as MessagePack strings."""
    words = set()
    for m, p in CALLS:
        words.add(m)
        for k, v in p.items():
            words.add(k)
            if isinstance(v, str):
                words.add(v)
    words.update(["walk", "bike", "ebike", "car", "online", "busy", "offline", "nearest",
                  "balanced", "rated", "normal", "emergency", "sequential", "none",
                  "optimal", "radius_m", "include_unavailable", "start", "need", "slots",
                  "lat", "lon", "order.*", "*", "sanitation", "tutoring", "elder-care"])
    lines = ["# request.dict -- written by make_seeds.py: names as MessagePack strings"]
    for w in sorted(words):
        enc = msgpack.packb(w)
        lines.append('"' + "".join("\\x%02x" % b for b in enc) + '"')
    for raw in (b"\x94\x00", b"\x93\x02", b"\xc0", b"\xcb", b"\xcf", b"\xdd", b"\xdf"):
        lines.append('"' + "".join("\\x%02x" % b for b in raw) + '"')
    with open(os.path.join(HERE, "request.dict"), "w") as f:
        f.write("\n".join(lines) + "\n")


def durable_seeds(server):
    import shutil
    import signal
    import socket
    import subprocess
    import tempfile
    import time
    tmp = tempfile.mkdtemp(prefix="pd-seeds-")
    data = os.path.join(tmp, "data")
    p = subprocess.Popen([server, "--port", "0", "--data-dir", data, "--fsync", "always",
                          "--log-level", "warn"], stdout=subprocess.PIPE)
    line = p.stdout.readline().decode()
    port = int(line.strip().rsplit(":", 1)[1])
    s = socket.create_connection(("127.0.0.1", port))
    unpacker = msgpack.Unpacker()

    def call(i, m, params):
        s.sendall(req(i, m, params))
        while True:
            for msg in unpacker:
                if msg[0] == 1 and msg[1] == i:
                    return msg
            unpacker.feed(s.recv(65536))

    i = 0
    for v in range(1, 25):
        i += 1
        call(i, "volunteer.upsert", {"id": v, "lat": 30.6 + v * 1e-3, "lon": 114.3,
                                     "skills": ["tutoring", "sanitation"], "capacity": 2,
                                     "schedule": [[0, 8, 20], [3, 9, 12]]})
    for o in range(1, 9):
        i += 1
        call(i, "order.create", {"id": o, "lat": 30.61, "lon": 114.3, "skills": ["tutoring"],
                                 "ignore_schedule": True, "priority": "elevated"})
    i += 1
    r = call(i, "order.get", {"id": 1})
    off = [x for x in r[3].get("offers", []) if x.get("state") == "live"]
    if off:
        i += 1
        call(i, "order.accept", {"id": 1, "volunteer": off[0]["volunteer"]})
        i += 1
        call(i, "order.complete", {"id": 1, "minutes_served": 30})
        i += 1
        call(i, "order.rate", {"id": 1, "score": 5})
    i += 1
    call(i, "order.cancel", {"id": 2})
    # With --fsync always the segment on disk is whole once the replies came.
    journals = sorted(f for f in os.listdir(data) if f.endswith(".pdj"))
    segs = []
    for f in journals:
        with open(os.path.join(data, f), "rb") as fh:
            segs.append(fh.read())
    i += 1
    call(i, "snapshot", {"wait": True})
    s.close()
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=10)
    snaps = sorted(f for f in os.listdir(data) if f.endswith(".pds"))[-1:]
    for n, b in enumerate(segs):
        write("journal", "segment-%d" % n, b"\x00" + b)
        write("journal", "segment-%d-fixup" % n, b"\x01" + b)
        write("journal", "segment-%d-torn" % n, b"\x00" + b[:-7])
    for n, f in enumerate(snaps):
        with open(os.path.join(data, f), "rb") as fh:
            b = fh.read()
        write("snapshot", "file-%d" % n, b"\x01" + b)
        write("snapshot", "payload-%d" % n, b"\x00" + b[48:-24])
    shutil.rmtree(tmp)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        durable_seeds(sys.argv[1])
    request_dict()
    request_seeds()
    frame_seeds()
    csv_seeds()
    sys.exit(0)
