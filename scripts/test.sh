#!/usr/bin/env bash
# test.sh -- the whole test suite, as CI runs it: install what is missing,
# check formatting, then build and run every CTest test twice: a Release
# build with warnings as errors, and a Debug build under AddressSanitizer
# and UndefinedBehaviorSanitizer. Build trees live in build/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
jobs=$(nproc)

echo "== format check"
git ls-files -- '*.c' '*.h' | xargs clang-format --dry-run -Werror

echo "== release build + tests"
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DPD_WERROR=ON >/dev/null
cmake --build build/release -j"$jobs"
ctest --test-dir build/release --output-on-failure -j"$jobs"

echo "== sanitizer build + tests (address, undefined)"
cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DPD_WERROR=ON \
      -DPD_SANITIZE=address,undefined >/dev/null
cmake --build build/asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build/asan --output-on-failure -j"$jobs"
echo "== all tests passed"
