#!/usr/bin/env bash
# test.sh -- the whole test suite, as CI runs it: install what is missing,
# check formatting, then build and run every CTest test twice: a Release
# build with warnings as errors, and a Debug build under AddressSanitizer,
# UndefinedBehaviorSanitizer and LeakSanitizer; then run each libFuzzer
# target briefly on its corpus; then build and check the Debian package
# (scripts/package.sh). Build trees live in build/.
#
# usage: scripts/test.sh [-h|--help]   (it takes no other arguments)
# Environment: PD_FUZZ_SECS (default 5) sets how long each fuzz target runs.
#
# Leaks: a leak found when a Criterion worker exits does not fail its test,
# and Criterion's own runner now and then leaks 48 bytes at exit when tests
# run in parallel (nothing of ours on that stack), which under
# abort_on_error would fail whichever test file it hit. So LeakSanitizer
# reports without changing exit codes (LSAN_OPTIONS=exitcode=0), every
# process writes its sanitizer reports to build/asan/sanitizer-logs/ (the
# tests, Criterion's workers, the servers they start), and after the run
# any report that names a frame outside the runtimes fails it and is
# printed. Memory errors and undefined behaviour still abort at once.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/usage.sh
only_help "$@"
trap kill_children EXIT # after `kill PID`: the build, ctest or a fuzzer running then
scripts/deps.sh
jobs=$(nproc)

echo "== format check"
# The tracked sources; outside a git checkout (a source tarball), every
# C file of the layer and test folders.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -- '*.c' '*.h'
else
  find api bench data engine index tests -name '*.[ch]'
fi | xargs clang-format --dry-run -Werror

echo "== release build + tests"
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DPD_WERROR=ON >/dev/null
cmake --build build/release -j"$jobs"
ctest --test-dir build/release --output-on-failure -j"$jobs"

echo "== sanitizer build + tests (address, undefined, leaks)"
cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DPD_WERROR=ON \
      -DPD_SANITIZE=address,undefined >/dev/null
cmake --build build/asan -j"$jobs"
san_logs="$PWD/build/asan/sanitizer-logs"
rm -rf "$san_logs"
mkdir -p "$san_logs"
rc=0
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:log_path="$san_logs/asan" \
LSAN_OPTIONS=exitcode=0 \
UBSAN_OPTIONS=print_stacktrace=1:log_path="$san_logs/ubsan" \
  ctest --test-dir build/asan --output-on-failure -j"$jobs" || rc=$?
# A report counts if it is an error or names a frame outside the runtimes.
ours() {
  grep -qE 'ERROR: AddressSanitizer|ERROR: UndefinedBehaviorSanitizer|runtime error' "$1" && return 0
  grep -E '^ *#[0-9]+ 0x' "$1" |
    grep -vE 'libsanitizer|libasan|libubsan|liblsan|libcriterion|libc\.so|ld-linux| in _start ' |
    grep -q .
}
reports=""
for f in "$san_logs"/*; do
  [ -f "$f" ] || continue
  if ours "$f"; then reports="$reports $f"; else echo "== ignored (Criterion's own): $f"; fi
done
if [ -n "$reports" ]; then
  for f in $reports; do
    echo "== sanitizer report: $f"
    head -60 "$f"
  done
  echo "== sanitizer reports found (see above)" >&2
  exit 1
fi
[ "$rc" -eq 0 ] || exit "$rc"

echo "== fuzz targets, briefly (scripts/fuzz.sh -t ${PD_FUZZ_SECS:-5})"
PD_FUZZ_BUILD=build/fuzz scripts/fuzz.sh -t "${PD_FUZZ_SECS:-5}"

echo "== Debian package (scripts/package.sh)"
scripts/package.sh
echo "== all tests passed"
