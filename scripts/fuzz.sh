#!/usr/bin/env bash
# fuzz.sh -- build the libFuzzer targets of tests/fuzz with clang and run
# each for a given time, one after the other (or side by side with -j), at
# the lowest CPU priority.
#
#   scripts/fuzz.sh [-t SECONDS] [-j] [TARGET...]
#
#   -t SECONDS  how long to run each target (default 60)
#   -j          run the targets side by side, as many at once as there are
#               cores (nproc), instead of one after the other; each target's
#               line is printed when all are done
#   -h, --help  this text
#   TARGET      frame, request, csv, ... (default: every fuzz_* target, less
#               those with an open bug filed in tests/fuzz/known/<target>-*,
#               which are named and skipped; name one to run it anyway)
#
# The build lives in build/fuzz (override with PD_FUZZ_BUILD, a path from
# where you run it): Debug at -O1 with ASan + UBSan (no recovery) and
# libFuzzer coverage on every layer. Each
# target starts from its committed seeds (tests/fuzz/corpus/<name>) plus a
# working corpus kept in the build folder between runs, so the committed
# corpus only changes when someone copies inputs over on purpose. Leaks fail
# a run (libFuzzer's -detect_leaks is on). A crash leaves its input in
# build/fuzz/crashes/; add it to tests/fuzz/regressions/<name>/ with the fix
# so the replay test keeps it fixed. Exits non-zero if any target failed; the
# last line per target gives its executions, coverage and duration. With
# PD_FUZZ_KEEP_GOING=1 a target goes on after a crash (libFuzzer's fork mode)
# and every distinct crash is kept, for a long run over a known open bug.
set -euo pipefail
# A relative PD_FUZZ_BUILD is the caller's: made absolute before the cd.
build=${PD_FUZZ_BUILD:-}
case $build in "" | /*) ;; *) build=$PWD/$build ;; esac
cd "$(dirname "$0")/.."
. scripts/usage.sh
bad_usage() {
  echo "fuzz: $1" >&2
  echo "usage: scripts/fuzz.sh [-t SECONDS] [-j] [TARGET...] (scripts/fuzz.sh --help)" >&2
  exit 2
}
secs=60
parallel=0
for arg in "$@"; do
  case $arg in
    --) break ;;
    --help) usage; exit 0 ;;
    --*) bad_usage "unknown option '$arg'" ;;
  esac
done
while getopts ":t:jh" opt; do
  case $opt in
    t) secs=$OPTARG ;;
    j) parallel=1 ;;
    h) usage; exit 0 ;;
    :) bad_usage "-$OPTARG needs a value" ;;
    *) bad_usage "unknown option '-$OPTARG'" ;;
  esac
done
shift $((OPTIND - 1))
if ! [[ $secs =~ ^[0-9]+$ ]] || [ "$((10#$secs))" -eq 0 ]; then
  bad_usage "-t takes a whole number of seconds > 0, not '$secs'"
fi
secs=$((10#$secs))
all=()
for f in tests/fuzz/fuzz_*.c; do
  t=${f#tests/fuzz/fuzz_}
  all+=("${t%.c}")
done
for t in "$@"; do
  case $t in
    -*) bad_usage "option '$t' after a target: options come first (scripts/fuzz.sh -t 5 csv)" ;;
  esac
  [ -f "tests/fuzz/fuzz_$t.c" ] || bad_usage "no target '$t' (targets: ${all[*]})"
done

build=${build:-build/fuzz}
trap kill_children EXIT # after `kill PID`: the build or the fuzzers running then
CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O1 -g" \
  -DPD_BUILD_FUZZERS=ON -DPD_SANITIZE=address,undefined -DPD_BUILD_BENCH=OFF \
  -DPD_WERROR=ON >/dev/null
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for t in "${all[@]}"; do
    known=$(ls tests/fuzz/known/"$t"-* 2>/dev/null || true)
    if [ -n "$known" ]; then
      echo "fuzz: $t SKIPPED: open bug, input in $known"
      continue
    fi
    targets+=("$t")
  done
fi
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz: no target to run (every one has an open bug in tests/fuzz/known/)"
  exit 0
fi
bins=()
for t in "${targets[@]}"; do bins+=("fuzz_$t"); done
nice -n 19 cmake --build "$build" -j"$(nproc)" --target "${bins[@]}" >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p "$build/crashes"

# Run one target; print its line (and the first lines of a failure's
# report); return non-zero if it failed.
run_target() {
  local t=$1
  local bin="$build/tests/fuzz/fuzz_$t"
  [ -x "$bin" ] || { echo "fuzz: no target $t" >&2; return 1; }
  local work="$build/corpus/$t"
  mkdir -p "$work"
  local dict=()
  [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
  local log="$build/fuzz-$t.log"
  local start rc=0 keep=()
  start=$(date +%s)
  [ "${PD_FUZZ_KEEP_GOING:-0}" = 1 ] && keep=(-fork=1 -ignore_crashes=1)
  nice -n 19 "$bin" -max_total_time="$secs" -print_final_stats=1 -max_len=65536 \
    -timeout=20 -rss_limit_mb=2048 "${dict[@]}" "${keep[@]}" \
    -artifact_prefix="$build/crashes/$t-" \
    "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  local took execs cov corp
  took=$(($(date +%s) - start))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1 || true)
  corp=$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' "$log" | tail -1 || true)
  if [ "$rc" -ne 0 ]; then
    echo "fuzz: $t FAILED after ${took}s (exit $rc), see $log"
    grep -m5 -E 'ERROR|SUMMARY|runtime error|deadly signal' "$log" || true
    return 1
  fi
  echo "fuzz: $t ok: ${took}s, ${execs:-?} execs, $cov, $corp"
}

failed=()
if [ "$parallel" = 1 ]; then
  # Side by side, at most nproc at once. Each job keeps its lines and its
  # verdict in files of its own; they are printed in order at the end.
  max=$(nproc)
  res=$(mktemp -d)
  trap 'kill_children; rm -rf "$res"' EXIT
  echo "fuzz: ${#targets[@]} targets, up to $max at once, ${secs}s each"
  for t in "${targets[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$max" ]; do wait -n || true; done
    (
      rc=0
      run_target "$t" >"$res/$t.out" 2>&1 || rc=$?
      echo "$rc" >"$res/$t.rc"
    ) &
  done
  wait
  for t in "${targets[@]}"; do
    cat "$res/$t.out" 2>/dev/null || true
    [ "$(cat "$res/$t.rc" 2>/dev/null)" = 0 ] || failed+=("$t")
  done
else
  for t in "${targets[@]}"; do
    run_target "$t" || failed+=("$t")
  done
fi
if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzz: failed: ${failed[*]}" >&2
  exit 1
fi
