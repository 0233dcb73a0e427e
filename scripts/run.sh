#!/usr/bin/env bash
# run.sh -- the main job: build everything (Release), start paidan-server
# on 127.0.0.1 with the sample county, exercise it end to end over TCP
# (queries, the whole order lifecycle and a volunteer withdrawing,
# mobilisation, the Python client, a
# short replay of sample orders over TCP and a page of the orders it left,
# a short load test), replay the
# sample week in-process under three policies, and run
# the in-process micro benchmark on a generated county of 10^6 volunteers.
#
# usage: scripts/run.sh [-h|--help]   (it takes no other arguments)
#
# Environment: PD_MICRO_N (default 1000000) sets the micro benchmark's
# county size; PD_SKIP_MICRO=1 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/usage.sh
only_help "$@"
scripts/deps.sh

work=$(mktemp -d)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    kill_children # after `kill PID`: the build or benchmark running then
    rm -rf "$work"
}
trap cleanup EXIT

B=build/release
echo "== build ($B)"
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$B" -j"$(nproc)" >/dev/null

echo "== paidan-server with the sample county (data/sample/)"
"$B/api/paidan-server" --port 0 --load-volunteers data/sample/county-volunteers.csv \
    >"$work/server.out" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 1 100); do
    grep -q "listening on" "$work/server.out" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || break # it exited: no use waiting
    sleep 0.1
done
port=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$work/server.out" | head -n 1)
# Ours only if it is still running and said which port it bound (--port 0:
# a free one), so nothing below can reach somebody else's server.
if [ -z "$port" ] || ! kill -0 "$server_pid" 2>/dev/null; then
    echo "paidan-server did not start:" >&2
    cat "$work/server.log" >&2
    exit 1
fi
sed 's/^/   server: /' "$work/server.log"

cli() { "$B/api/paidan-cli" -p "$port" "$@"; }
field() { /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {"d": d}))' "$1"; }

echo "== ping"
cli ping
# next Saturday 10:00 local time (UTC+8), in ms: most volunteers are free
# then (without a start, match.nearby asks about the hour now, and at
# night nobody is on duty)
start=$(/usr/bin/python3 -c 'import datetime as t; z=t.timezone(t.timedelta(hours=8)); n=t.datetime.now(z); d=(n+t.timedelta(days=(5-n.weekday())%7 or 7)).replace(hour=10,minute=0,second=0,microsecond=0); print(int(d.timestamp()*1000))')
echo "== who is near the county seat and can tutor on Saturday 10:00-11:00? (match.nearby, k=5, 15-minute circle)"
cli match.nearby "{\"lat\":30.6,\"lon\":114.3,\"skills\":[\"tutoring\"],\"k\":5,\"start\":$start,\"duration_min\":60}"
echo "== 群众点单: an elderly resident asks for medical-fitness help on Saturday 10:00 (order.create)"
order=$(cli order.create "{\"id\":1001,\"lat\":30.61,\"lon\":114.31,\"skills\":[\"medical-fitness\"],\"priority\":\"elevated\",\"start\":$start,\"duration_min\":90}")
echo "$order"
vol=$(echo "$order" | field 'd["offers"][0]["volunteer"]')
echo "== 志愿者接单: volunteer $vol accepts"
cli order.accept "{\"id\":1001,\"volunteer\":$vol}" | field '{k: d[k] for k in ("id","state","accepted")}'
echo "== service done, 75 minutes (order.complete)"
cli order.complete '{"id":1001,"minutes_served":75}' | field '{k: d[k] for k in ("id","state","minutes_served")}'
echo "== 群众评单: the resident rates it 5 (order.rate)"
cli order.rate '{"id":1001,"score":5}' | field '{k: d[k] for k in ("id","state","rating")}'
echo "== the volunteer's record (volunteer.get)"
cli volunteer.get "{\"id\":$vol}"
echo "== 退单: a tutoring order; its volunteer accepts, then cannot go (order.release)"
order=$(cli order.create "{\"id\":1002,\"lat\":30.62,\"lon\":114.29,\"skills\":[\"tutoring\"],\"start\":$start,\"duration_min\":60}")
vol2=$(echo "$order" | field 'd["offers"][0]["volunteer"]')
cli order.accept "{\"id\":1002,\"volunteer\":$vol2}" >/dev/null
cli order.release "{\"id\":1002,\"volunteer\":$vol2}" |
    field '{"id": d["id"], "state": d["state"], "offers": [(o["volunteer"], o["state"], o["reason"]) for o in d["offers"]]}'
echo "== 一呼百应: everyone within 2 km of the seat (match.mobilize, first 3)"
cli match.mobilize '{"lat":30.6,"lon":114.3,"radius_m":2000,"limit":3}'
echo "== the example Python client (scripts/example_client.py)"
/usr/bin/python3 scripts/example_client.py --port "$port"
echo "== a short replay over TCP: the first 300 sample orders through the service loop"
/usr/bin/python3 scripts/replay_tcp.py --port "$port" -n 300
echo "== the orders the replay left, oldest first (order.list, a page of 5: id, state, reason)"
cli order.list '{"limit":5}' |
    field '[(o["id"], o["state"], o["reason"]) for o in d["orders"]] + ["next: %s" % d["next"]]'

if "$B/bench/paidan-bench" load --help >/dev/null 2>&1; then
    echo "== paidan-bench load: 3 s, mixed commands, 4 connections x 16 in flight"
    "$B/bench/paidan-bench" load -p "$port" --no-load --mix nearby:70,update:25,order:5 \
        -c 4 -P 16 -d 3 --volunteers 5000
fi

echo "== server stats"
cli stats | field '{k: d[k] for k in d if k in ("volunteers","orders","connections","commands","rss_bytes")}'
echo "== stop the server (SIGTERM)"
kill -TERM "$server_pid"
status=0
wait "$server_pid" || status=$?
server_pid=""
echo "   server exited with status $status"
[ "$status" -eq 0 ]

if "$B/bench/paidan-bench" replay --help >/dev/null 2>&1; then
    echo "== paidan-bench replay: the sample week under three policies"
    "$B/bench/paidan-bench" replay --policy nearest,balanced,rated
fi

if [ "${PD_SKIP_MICRO:-0}" != 1 ]; then
    n=${PD_MICRO_N:-1000000}
    echo "== paidan-bench micro: the index in-process at $n volunteers"
    "$B/bench/paidan-bench" micro -n "$n" -q 100000 --quiet
fi
echo "== done"
