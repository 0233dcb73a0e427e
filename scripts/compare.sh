#!/usr/bin/env bash
# compare.sh -- the rivals of `paidan-bench compare`: Redis, PostgreSQL +
# PostGIS and Tarantool, from Debian packages, on 127.0.0.1 only, with their
# state in one scratch directory.
#
#   scripts/compare.sh install          apt-get install redis-server, postgresql,
#                                       postgis, tarantool
#   scripts/compare.sh start            start the three (and create the postgis
#                                       extension)
#   scripts/compare.sh stop             stop them
#   scripts/compare.sh status           say what runs
#   scripts/compare.sh run [ARGS...]    start them and a paidan-server, run
#                                       paidan-bench compare ARGS, stop all four
#                                       (`run --help`: the ARGS it takes)
#   scripts/compare.sh -h | --help      this text
#
# Environment: PD_COMPARE_DIR (scratch, default /tmp/paidan-compare),
# PD_REDIS_PORT (6379), PD_PG_PORT (5432), PD_TT_PORT (3301), PD_BUILD_DIR (where paidan-server
# and paidan-bench are built, default build/release), PD_PAIDAN_PORT (the
# port of the paidan-server `run` starts; default: a free one the OS picks).
# Relative paths in PD_COMPARE_DIR and PD_BUILD_DIR are from where you run it.
# Nothing is installed unless asked: `run` fails with a hint when a package
# is missing (PD_COMPARE_INSTALL=1 makes it install first). `run` checks that
# each server it starts is up and is its own, and stops with an error (exit
# 1) when one is not: it never benchmarks a server someone else left running
# on its port, except a Redis, PostgreSQL or Tarantool it says it found
# already running.
set -euo pipefail
# A relative PD_COMPARE_DIR or PD_BUILD_DIR is the caller's: made absolute
# before the cd (the servers chdir too, so their paths must be absolute).
abs() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
dir=$(abs "${PD_COMPARE_DIR:-/tmp/paidan-compare}")
build=${PD_BUILD_DIR:+$(abs "$PD_BUILD_DIR")}
cd "$(dirname "$0")/.."
build=${build:-$PWD/build/release}
redis_port=${PD_REDIS_PORT:-6379}
pg_port=${PD_PG_PORT:-5432}
tt_port=${PD_TT_PORT:-3301}
paidan_port=${PD_PAIDAN_PORT:-0}

. scripts/usage.sh

pg_bin() {
  local v
  v=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)
  [ -n "$v" ] && echo "/usr/lib/postgresql/$v/bin"
}

# Run a command as the postgres user when we are root (PostgreSQL refuses root).
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

cmd_install() {
  local pkgs=(redis-server postgresql tarantool)
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  # PostGIS for the installed server major version (Debian 12: 15).
  local v
  v=$(ls /usr/lib/postgresql | sort -n | tail -1)
  $sudo apt-get install -y -qq --no-install-recommends "postgresql-$v-postgis-3" >/dev/null
  echo "compare: installed redis-server, postgresql $v, postgresql-$v-postgis-3, tarantool"
}

check_installed() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v tarantool >/dev/null || missing+=(tarantool)
  [ -n "$(pg_bin)" ] || missing+=(postgresql)
  local v
  v=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)
  [ -n "$v" ] && ! installed "postgresql-$v-postgis-3" && missing+=("postgresql-$v-postgis-3")
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "${PD_COMPARE_INSTALL:-0}" = 1 ]; then
      cmd_install
    else
      echo "compare: missing ${missing[*]}; run: scripts/compare.sh install" >&2
      return 1
    fi
  fi
}

start_redis() {
  mkdir -p "$dir/redis"
  if redis-cli -h 127.0.0.1 -p "$redis_port" ping >/dev/null 2>&1; then
    echo "compare: redis already answers on 127.0.0.1:$redis_port"
    return
  fi
  redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
    --daemonize yes --pidfile "$dir/redis/redis.pid" --dir "$dir/redis" \
    --logfile "$dir/redis/redis.log" || true
  local up=0
  for _ in $(seq 50); do
    if redis-cli -h 127.0.0.1 -p "$redis_port" ping >/dev/null 2>&1; then up=1; break; fi
    sleep 0.1
  done
  if [ "$up" != 1 ]; then
    echo "compare: redis did not start on 127.0.0.1:$redis_port; the end of $dir/redis/redis.log:" >&2
    tail -n 5 "$dir/redis/redis.log" >&2 2>/dev/null || true
    return 1
  fi
  echo "compare: redis on 127.0.0.1:$redis_port"
}

start_pg() {
  local bin data=$dir/pg
  bin=$(pg_bin)
  mkdir -p "$dir"
  if [ ! -s "$data/PG_VERSION" ]; then
    mkdir -p "$data"
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$data"
    as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  if as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    echo "compare: postgresql already runs from $data"
  else
    as_pg "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w \
      -o "-c listen_addresses=127.0.0.1 -p $pg_port -k /tmp -c fsync=off \
          -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=256MB" \
      start >/dev/null || {
      echo "compare: postgresql did not start on 127.0.0.1:$pg_port; the end of $data/server.log:" >&2
      tail -n 5 "$data/server.log" >&2 2>/dev/null || true
      return 1
    }
  fi
  PGOPTIONS='-c client_min_messages=warning' as_pg "$bin/psql" -h 127.0.0.1 -p "$pg_port" \
    -U postgres -d postgres -qAt -c "CREATE EXTENSION IF NOT EXISTS postgis" >/dev/null
  echo "compare: postgresql + postgis on 127.0.0.1:$pg_port (data in $data)"
}

# Stop the Redis this script started: only if the one answering on the port
# is the process named in our pid file (a stale pid file must not stop
# somebody else's Redis).
stop_redis() {
  local pidf=$dir/redis/redis.pid pid running
  [ -s "$pidf" ] || return 0
  pid=$(cat "$pidf")
  running=$(redis-cli -h 127.0.0.1 -p "$redis_port" info server 2>/dev/null |
    tr -d '\r' | sed -n 's/^process_id://p')
  if [ -n "$pid" ] && [ "$running" = "$pid" ]; then
    redis-cli -h 127.0.0.1 -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
    echo "compare: redis stopped"
  else
    echo "compare: the redis of $pidf (pid $pid) does not run on 127.0.0.1:$redis_port; left alone"
  fi
  rm -f "$pidf"
}

stop_pg() {
  local bin
  bin=$(pg_bin)
  if [ -n "$bin" ] && [ -s "$dir/pg/postmaster.pid" ]; then
    as_pg "$bin/pg_ctl" -D "$dir/pg" -m fast -w stop >/dev/null || true
    echo "compare: postgresql stopped"
  fi
}

# True when a Tarantool greets on the port.
tt_up() {
  local g
  g=$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$tt_port && head -c 9 <&3" 2>/dev/null) || return 1
  [ "$g" = Tarantool ]
}

# A Tarantool without a write-ahead log or checkpoints (a benchmark, like
# the Redis and PostgreSQL above), whose guest user may do anything: it
# listens on 127.0.0.1 only, and paidan-bench compare defines its spaces
# and procedures through it.
start_tt() {
  local d=$dir/tarantool
  mkdir -p "$d"
  if tt_up; then
    echo "compare: tarantool already answers on 127.0.0.1:$tt_port"
    return
  fi
  cat >"$d/init.lua" <<EOF
box.cfg{listen = '127.0.0.1:$tt_port', wal_mode = 'none', checkpoint_interval = 0,
        memtx_memory = 4 * 1024 * 1024 * 1024, work_dir = '$d', log = '$d/tarantool.log',
        pid_file = '$d/tarantool.pid', background = true}
box.schema.user.grant('guest', 'super', nil, nil, {if_not_exists = true})
EOF
  rm -f "$d/tarantool.pid"
  (cd "$d" && tarantool init.lua) >/dev/null 2>&1 || true
  local up=0 pid line
  for _ in $(seq 50); do
    if tt_up; then up=1; break; fi
    # It wrote its pid file and died (its port is taken): no use waiting.
    pid=$(cat "$d/tarantool.pid" 2>/dev/null || true)
    if [ -n "$pid" ]; then
      line=$(cat "/proc/$pid/stat" 2>/dev/null || true)
      line=${line##*) }
      [ -n "$line" ] && [ "${line%% *}" != Z ] || break
    fi
    sleep 0.1
  done
  if [ "$up" != 1 ]; then
    echo "compare: tarantool did not start on 127.0.0.1:$tt_port; the end of $d/tarantool.log:" >&2
    tail -n 5 "$d/tarantool.log" >&2 2>/dev/null || true
    return 1
  fi
  echo "compare: tarantool on 127.0.0.1:$tt_port"
}

# Stop the Tarantool this script started: only the process of our pid file,
# and only if it is a tarantool.
stop_tt() {
  local pidf=$dir/tarantool/tarantool.pid pid
  [ -s "$pidf" ] || return 0
  pid=$(cat "$pidf")
  if [ -n "$pid" ] && grep -q tarantool "/proc/$pid/comm" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    echo "compare: tarantool stopped"
  else
    echo "compare: the tarantool of $pidf (pid $pid) does not run; left alone"
  fi
  rm -f "$pidf"
}

cmd_start() {
  check_installed
  start_redis
  start_pg
  start_tt
}

cmd_stop() {
  stop_redis
  stop_pg
  stop_tt
}

cmd_status() {
  if redis-cli -h 127.0.0.1 -p "$redis_port" ping >/dev/null 2>&1; then
    echo "redis: running on 127.0.0.1:$redis_port"
  else
    echo "redis: not running"
  fi
  local bin
  bin=$(pg_bin)
  if [ -n "$bin" ] && as_pg "$bin/pg_ctl" -D "$dir/pg" status >/dev/null 2>&1; then
    echo "postgresql: running on 127.0.0.1:$pg_port"
  else
    echo "postgresql: not running"
  fi
  if tt_up; then
    echo "tarantool: running on 127.0.0.1:$tt_port"
  else
    echo "tarantool: not running"
  fi
}

server_pid=""

# Stop the paidan-server this script started (by its pid), then the rivals.
run_cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  kill_children # after `kill PID`: paidan-bench compare, if it still runs
  cmd_stop
}

# Start our own paidan-server on 127.0.0.1 and set paidan_port to the port
# it says it bound. Fails (exit 1, with its log) when it exits, or does not
# say it listens within 10 s: e.g. PD_PAIDAN_PORT is taken by another server.
start_paidan() {
  local server=$1 out=$dir/paidan-server.out log=$dir/paidan-server.log
  mkdir -p "$dir"
  "$server" --host 127.0.0.1 --port "$paidan_port" >"$out" 2>"$log" &
  server_pid=$!
  local port=""
  for _ in $(seq 100); do
    port=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$out" 2>/dev/null | head -n 1)
    [ -n "$port" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  if ! kill -0 "$server_pid" 2>/dev/null; then
    local status=0
    wait "$server_pid" || status=$?
    server_pid=""
    echo "compare: paidan-server failed to start on 127.0.0.1:$paidan_port (exit status $status); $log says:" >&2
    tail -n 5 "$log" >&2
    [ "$paidan_port" != 0 ] &&
      echo "compare: is another server on port $paidan_port? Unset PD_PAIDAN_PORT to use a free port." >&2
    exit 1
  fi
  if [ -z "$port" ]; then
    echo "compare: paidan-server (pid $server_pid) did not say it was listening within 10 s; $log says:" >&2
    tail -n 5 "$log" >&2
    exit 1
  fi
  paidan_port=$port
  echo "compare: paidan-server (pid $server_pid) on 127.0.0.1:$paidan_port"
}

cmd_run() {
  local server=$build/api/paidan-server bench=$build/bench/paidan-bench
  local a
  for a in "$@"; do
    case $a in
      -h | --help)
        usage
        echo
        echo "ARGS are paidan-bench compare's (the script sets -H, -p, --redis, --pg and --tarantool):"
        if [ -x "$bench" ]; then "$bench" compare --help; else echo "  (build $bench to list them)"; fi
        exit 0
        ;;
    esac
  done
  [ -x "$server" ] && [ -x "$bench" ] || {
    echo "compare: build first (cmake -S $PWD -B $build && cmake --build $build)" >&2
    exit 1
  }
  trap run_cleanup EXIT
  cmd_start
  start_paidan "$server"
  local rc=0
  "$bench" compare -H 127.0.0.1 -p "$paidan_port" --redis "127.0.0.1:$redis_port" \
    --pg "host=127.0.0.1 port=$pg_port user=postgres dbname=postgres" \
    --tarantool "127.0.0.1:$tt_port" "$@" || rc=$?
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "compare: our paidan-server (pid $server_pid) is gone; the end of $dir/paidan-server.log:" >&2
    tail -n 5 "$dir/paidan-server.log" >&2
    [ "$rc" -ne 0 ] || rc=1
  fi
  return "$rc"
}

# Only `run` takes arguments; a word after another command is a mistake.
case "${1:-}" in
  install | start | stop | status)
    if [ $# -gt 1 ]; then
      echo "compare: '$1' takes no arguments (got '$2')" >&2
      exit 2
    fi
    ;;
esac
case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  run) shift; cmd_run "$@" ;;
  -h | --help | help) usage ;;
  "")
    usage >&2
    exit 2
    ;;
  *)
    echo "compare: unknown command '$1'" >&2
    usage >&2
    exit 2
    ;;
esac
