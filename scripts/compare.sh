#!/usr/bin/env bash
# compare.sh -- the rivals of `paidan-bench compare`: Redis and PostgreSQL
# + PostGIS, from Debian packages, on 127.0.0.1 only, with their state in
# one scratch directory.
#
#   scripts/compare.sh install          apt-get install redis-server, postgresql, postgis
#   scripts/compare.sh start            start both (and create the postgis extension)
#   scripts/compare.sh stop             stop both
#   scripts/compare.sh status           say what runs
#   scripts/compare.sh run [ARGS...]    start both and a paidan-server, run
#                                       paidan-bench compare ARGS, stop all three
#
# Environment: PD_COMPARE_DIR (scratch, default /tmp/paidan-compare),
# PD_REDIS_PORT (6379), PD_PG_PORT (5432), PD_BUILD_DIR (where paidan-server
# and paidan-bench are built, default build/release), PD_PAIDAN_PORT (7411).
# Nothing is installed unless asked: `run` fails with a hint when a package
# is missing (PD_COMPARE_INSTALL=1 makes it install first).
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${PD_COMPARE_DIR:-/tmp/paidan-compare}
redis_port=${PD_REDIS_PORT:-6379}
pg_port=${PD_PG_PORT:-5432}
paidan_port=${PD_PAIDAN_PORT:-7411}
build=${PD_BUILD_DIR:-build/release}

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
  local pkgs=(redis-server postgresql)
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  # PostGIS for the installed server major version (Debian 12: 15).
  local v
  v=$(ls /usr/lib/postgresql | sort -n | tail -1)
  $sudo apt-get install -y -qq --no-install-recommends "postgresql-$v-postgis-3" >/dev/null
  echo "compare: installed redis-server, postgresql $v, postgresql-$v-postgis-3"
}

check_installed() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
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
    --logfile "$dir/redis/redis.log"
  for _ in $(seq 50); do
    redis-cli -h 127.0.0.1 -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
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
      start >/dev/null
  fi
  PGOPTIONS='-c client_min_messages=warning' as_pg "$bin/psql" -h 127.0.0.1 -p "$pg_port" \
    -U postgres -d postgres -qAt -c "CREATE EXTENSION IF NOT EXISTS postgis" >/dev/null
  echo "compare: postgresql + postgis on 127.0.0.1:$pg_port (data in $data)"
}

stop_redis() {
  if [ -s "$dir/redis/redis.pid" ]; then
    redis-cli -h 127.0.0.1 -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
    rm -f "$dir/redis/redis.pid"
    echo "compare: redis stopped"
  fi
}

stop_pg() {
  local bin
  bin=$(pg_bin)
  if [ -n "$bin" ] && [ -s "$dir/pg/postmaster.pid" ]; then
    as_pg "$bin/pg_ctl" -D "$dir/pg" -m fast -w stop >/dev/null || true
    echo "compare: postgresql stopped"
  fi
}

cmd_start() {
  check_installed
  start_redis
  start_pg
}

cmd_stop() {
  stop_redis
  stop_pg
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
}

server_pid=""

# Stop the paidan-server this script started (by its pid), then the rivals.
run_cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  cmd_stop
}

cmd_run() {
  local server=$build/api/paidan-server bench=$build/bench/paidan-bench
  [ -x "$server" ] && [ -x "$bench" ] || {
    echo "compare: build first (cmake -S . -B $build && cmake --build $build)" >&2
    exit 1
  }
  cmd_start
  trap run_cleanup EXIT
  "$server" --port "$paidan_port" >"$dir/paidan-server.out" 2>"$dir/paidan-server.log" &
  server_pid=$!
  for _ in $(seq 50); do
    grep -q listening "$dir/paidan-server.out" 2>/dev/null && break
    sleep 0.1
  done
  "$bench" compare -p "$paidan_port" --redis "127.0.0.1:$redis_port" \
    --pg "host=127.0.0.1 port=$pg_port user=postgres dbname=postgres" "$@"
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  run) shift; cmd_run "$@" ;;
  *)
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
