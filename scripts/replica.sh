#!/usr/bin/env bash
# replica.sh -- what replication costs and how far a replica trails, on one
# machine: a nats-server (JetStream, a temporary store) on a free 127.0.0.1
# port, a primary (paidan-server --data-dir --replicate) loaded with a
# generated county, and a replica of it (--follow). Then four measurements:
#
#   (a) a write-heavy mix against the primary, with `paidan-bench load
#       --replica`: the replica's lag during the run, its catch-up after it,
#       and both digests at one seq (they must match)
#   (b) the same mix against a primary without --replicate (the same
#       county, --data-dir and fsync policy): what publishing costs
#   (c) a read-only mix (nearby:100) against the replica
#   (d) a cold catch-up: a second replica started from an empty state
#       after (a), timed from its start until its applied seq equals the
#       primary's (records/s), then both digests compared
#
# usage: scripts/replica.sh [options]
#   -n N         volunteers in the generated county (default 100000)
#   -d SECS      measured time of each load run (default 5)
#   -c N         connections of each load run (default 8)
#   -P N         requests in flight per connection (default 16)
#   -m MIX       the write-heavy mix of (a) and (b) (default update:90,order:10)
#   --json       print each run's JSON (and the cold catch-up as one JSON
#                object) instead of tables
#   --keep       keep the scratch directory (logs, journals, the stream)
#   -h, --help   this text
#
# Environment: PD_BUILD_DIR (where paidan-server, paidan-bench and
# paidan-gen are built; default build/release), PD_NATS_SERVER (default
# nats-server from PATH, else /usr/sbin/nats-server). With the defaults it
# takes about a minute on a 2-core machine; every wait is bounded (a
# server's start 10 s, a replica's catch-up 60 s or ten times -d). Every process it
# starts is stopped on exit, by pid. Exit status: 0 when every run passed,
# 1 when one failed (a digest that differs, a replica that did not catch
# up, lost requests) or a server did not start, 2 on bad options.
set -euo pipefail
abs() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
build=${PD_BUILD_DIR:+$(abs "$PD_BUILD_DIR")}
cd "$(dirname "$0")/.."
build=${build:-$PWD/build/release}
. scripts/usage.sh

n=100000
secs=5
conns=8
pipeline=16
mix=update:90,order:10
json=0
keep=0
bad() {
  echo "replica.sh: $1 (scripts/replica.sh --help)" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case $1 in
    -n | -d | -c | -P | -m) [ $# -ge 2 ] || bad "$1 needs a value" ;;
  esac
  case $1 in
    -n) n=$2; shift 2 ;;
    -d) secs=$2; shift 2 ;;
    -c) conns=$2; shift 2 ;;
    -P) pipeline=$2; shift 2 ;;
    -m) mix=$2; shift 2 ;;
    --json) json=1; shift ;;
    --keep) keep=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) bad "unknown argument '$1'" ;;
  esac
done
[[ $n =~ ^[1-9][0-9]*$ ]] || bad "-n takes a whole number of volunteers, not '$n'"
[[ $conns =~ ^[1-9][0-9]*$ ]] || bad "-c takes a whole number, not '$conns'"
[[ $pipeline =~ ^[1-9][0-9]*$ ]] || bad "-P takes a whole number, not '$pipeline'"
if ! [[ $secs =~ ^[0-9]+(\.[0-9]+)?$ ]] || [ "$(awk -v d="$secs" 'BEGIN { print (d > 0) }')" != 1 ]; then
  bad "-d takes seconds (more than 0), not '$secs'"
fi
# How long a replica may take to catch up: 60 s, or ten times the run.
wait_s=$(awk -v d="$secs" 'BEGIN { w = 10 * d; if (w < 60) w = 60; printf "%d", w + 0.5 }')

server=$build/api/paidan-server
bench=$build/bench/paidan-bench
gen=$build/data/paidan-gen
cli=$build/api/paidan-cli
nats=${PD_NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}
for b in "$server" "$bench" "$gen" "$cli"; do
  [ -x "$b" ] || {
    echo "replica.sh: no $b; build first (cmake -S $PWD -B $build && cmake --build $build)" >&2
    exit 1
  }
done
[ -x "$nats" ] || {
  echo "replica.sh: no nats-server ($nats); apt-get install nats-server, or set PD_NATS_SERVER" >&2
  exit 1
}

work=$(mktemp -d /tmp/paidan-replica-XXXXXX)
pids=()
pid_nats=""
# The servers first, while nats-server still takes what the primary has
# queued (it publishes its backlog before it exits), then nats-server and
# whatever else still runs (paidan-bench, a poller).
cleanup() {
  local p
  for p in "${pids[@]}"; do
    [ "$p" = "$pid_nats" ] || kill -TERM "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do
    [ "$p" = "$pid_nats" ] || wait "$p" 2>/dev/null || true
  done
  kill_children # after `kill PID`: nats-server, paidan-bench
  wait 2>/dev/null || true
  if [ "$keep" = 1 ]; then
    echo "replica.sh: kept $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

say() { echo "== $*"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# Stop one process this script started, and forget it.
stop_pid() {
  local p=$1 keep_pids=() q
  kill -TERM "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  for q in "${pids[@]}"; do [ "$q" = "$p" ] || keep_pids+=("$q"); done
  pids=("${keep_pids[@]}")
}

# Wait (10 s at most) for a line matching $2 in file $1 while pid $3 runs;
# print the port it names (the digits after the last colon).
wait_port() {
  local f=$1 re=$2 pid=$3 port=""
  for _ in $(seq 200); do
    port=$(sed -n "s/^.*${re}.*:\([0-9][0-9]*\)$/\1/p" "$f" 2>/dev/null | head -n 1)
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "$port"
}

# Start a paidan-server NAME with ARGS on a free port; sets the variables
# port_NAME and pid_NAME. Fails with its log when it does not listen.
port_primary="" pid_primary="" port_replica="" pid_replica=""
port_base="" pid_base="" port_cold=""
start_server() {
  local name=$1
  shift
  "$server" --host 127.0.0.1 --port 0 "$@" >"$work/$name.out" 2>"$work/$name.log" &
  local pid=$!
  pids+=("$pid")
  local port
  port=$(wait_port "$work/$name.out" "listening on" "$pid")
  if [ -z "$port" ] || ! kill -0 "$pid" 2>/dev/null; then
    echo "replica.sh: paidan-server $name did not start; $work/$name.log says:" >&2
    tail -n 5 "$work/$name.log" >&2
    exit 1
  fi
  printf -v "port_$name" %s "$port"
  printf -v "pid_$name" %s "$pid"
}

# A number from a server's JSON reply: field KEY of `paidan-cli METHOD`.
field_of() {
  local port=$1 method=$2 key=$3 out
  out=$("$cli" -p "$port" -t 30000 "$method") || return 1
  [[ $out =~ \"$key\":([0-9]+) ]] || return 1
  echo "${BASH_REMATCH[1]}"
}

# Poll a replica's `stats` every 10 ms on one connection until its
# applied_seq reaches TARGET; print $EPOCHREALTIME then (empty after
# TIMEOUT seconds, or when the replica stops answering).
wait_applied() {
  local port=$1 target=$2 timeout=$3 t_end line
  t_end=$((${EPOCHREALTIME%.*} + timeout))
  { (while :; do
    echo 'stats {}'
    sleep 0.01
    [ "${EPOCHREALTIME%.*}" -lt "$t_end" ] || break
  done) | "$cli" -p "$port" -t 30000 2>/dev/null |
    while read -r line; do
      if [[ $line =~ \"applied_seq\":([0-9]+) ]] && [ "${BASH_REMATCH[1]}" -ge "$target" ]; then
        echo "$EPOCHREALTIME"
        break
      fi
    done; } || true
}

# What a server's `stats` say of its event loop: stalls over --stall-ms
# (100) since it started, and the longest.
loop_line() {
  local name=$1 port=$2 out stalls="(unknown)" max="(unknown)"
  out=$("$cli" -p "$port" -t 30000 stats) || return 0
  [[ $out =~ \"stalls\":([0-9]+) ]] && stalls=${BASH_REMATCH[1]}
  [[ $out =~ \"max_stall_ms\":([0-9.]+) ]] && max=${BASH_REMATCH[1]}
  echo "   $name's event loop since its start: $stalls stalls over 100 ms, the longest $max ms (its stats)"
}

# Seconds between two $EPOCHREALTIME values, to the millisecond.
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

fmt=()
[ "$json" = 1 ] && fmt=(--json --quiet)
status=0

# One paidan-bench load run; a failure is remembered, the script goes on.
run_load() {
  local what=$1
  shift
  say "$what"
  echo "   \$ paidan-bench load $*   (load average $(loadavg))"
  "$bench" load "$@" "${fmt[@]}" || {
    echo "replica.sh: $what: paidan-bench load exited $?" >&2
    status=1
  }
  echo "   (load average after: $(loadavg))"
}

say "county: $n volunteers (paidan-gen --seed 1)"
"$gen" --seed 1 --volunteers "$n" -o "$work/volunteers.csv" -q

say "nats-server -js on a free port (store $work/nats)"
"$nats" -js -a 127.0.0.1 -p -1 -sd "$work/nats" >"$work/nats.log" 2>&1 &
pid_nats=$!
pids+=("$pid_nats")
nport=$(wait_port "$work/nats.log" "Listening for client connections on" "$pid_nats")
if [ -z "$nport" ]; then
  echo "replica.sh: nats-server did not start; $work/nats.log says:" >&2
  tail -n 5 "$work/nats.log" >&2
  exit 1
fi
url=nats://127.0.0.1:$nport
echo "   $url"

say "primary: --data-dir --replicate $url --load-volunteers"
start_server primary --data-dir "$work/primary" --replicate "$url" \
  --load-volunteers "$work/volunteers.csv"
echo "   127.0.0.1:$port_primary (pid $pid_primary)"
target=$(field_of "$port_primary" digest seq)

say "replica: --follow $url"
t0=$EPOCHREALTIME
start_server replica --follow "$url"
t1=$(wait_applied "$port_replica" "$target" "$wait_s")
if [ -z "$t1" ]; then
  echo "replica.sh: the replica did not reach record $target within $wait_s s;" \
    "$work/replica.log says:" >&2
  tail -n 5 "$work/replica.log" >&2
  exit 1
fi
echo "   127.0.0.1:$port_replica (pid $pid_replica): the county's $target records applied" \
  "$(elapsed "$t0" "$t1") s after its start"

common=(--no-load --csv "$work/volunteers.csv" -c "$conns" -P "$pipeline" -d "$secs")

run_load "(a) $mix against the primary, watching the replica" \
  -p "$port_primary" "${common[@]}" --mix "$mix" --replica "127.0.0.1:$port_replica" \
  --replica-wait "$wait_s"
loop_line primary "$port_primary"
loop_line replica "$port_replica"

say "baseline primary: --data-dir --load-volunteers, no --replicate"
start_server base --data-dir "$work/base" --load-volunteers "$work/volunteers.csv"
echo "   127.0.0.1:$port_base (pid $pid_base)"
run_load "(b) $mix against a primary without --replicate (baseline)" \
  -p "$port_base" "${common[@]}" --mix "$mix"
loop_line "the baseline primary" "$port_base"
stop_pid "$pid_base"

run_load "(c) nearby:100 against the replica" \
  -p "$port_replica" "${common[@]}" --mix nearby:100

say "(d) cold catch-up: a second replica from an empty state   (load average $(loadavg))"
target=$(field_of "$port_primary" digest seq)
t0=$EPOCHREALTIME
start_server cold --follow "$url"
t1=$(wait_applied "$port_cold" "$target" "$wait_s")
if [ -z "$t1" ]; then
  echo "replica.sh: the cold replica did not reach record $target within $wait_s s;" \
    "$work/cold.log says:" >&2
  tail -n 5 "$work/cold.log" >&2
  status=1
else
  s=$(elapsed "$t0" "$t1")
  rate=$(awk -v n="$target" -v s="$s" 'BEGIN { printf "%.0f", n / s }')
  dp=$("$cli" -p "$port_primary" -t 30000 digest)
  dr=$("$cli" -p "$port_cold" -t 30000 digest)
  match=false
  [ "$dp" = "$dr" ] && match=true
  if [ "$json" = 1 ]; then
    echo "{\"cold_catch_up\":{\"records\":$target,\"seconds\":$s,\"records_per_s\":$rate," \
      "\"digest_match\":$match,\"loadavg\":\"$(loadavg)\"}}"
  else
    echo "cold catch-up: $target records in $s s from the replica's start ($rate records/s);" \
      "digest: $([ "$match" = true ] && echo "the same as the primary's" || echo DIFFERENT)"
  fi
  if [ "$match" != true ]; then
    echo "replica.sh: the cold replica's digest differs: primary $dp, replica $dr" >&2
    status=1
  fi
  echo "   (load average after: $(loadavg))"
fi
exit "$status"
