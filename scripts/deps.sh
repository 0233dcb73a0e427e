#!/usr/bin/env bash
# deps.sh -- install the Debian 12 packages paidan builds, tests and runs
# with, when any is missing. Needs root (or sudo) only when installing.
#
# usage: scripts/deps.sh [-h|--help]   (it takes no other arguments)
set -euo pipefail
. "$(dirname "$0")/usage.sh"
only_help "$@"
pkgs=(build-essential cmake pkg-config clang-format clang libclang-rt-14-dev
      libuv1-dev libjemalloc-dev libmsgpack-dev libxxhash-dev libcriterion-dev libinih-dev
      libpq-dev libsystemd-dev libnats-dev nats-server help2man python3 python3-msgpack
      tarantool)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
