#!/usr/bin/env bash
# test_install.sh -- what `cmake --install` gives an operator, installed
# into a scratch DESTDIR: the four programs and their man pages, the
# systemd unit (checked by systemd-analyze), the settings file (checked by
# paidan-server --check-config, and kept when installed over), the docs
# and the sample county.
#
# usage: test_install.sh BUILD_DIR   (CTest runs it as packaging.install)
set -euo pipefail
build=${1:?usage: test_install.sh BUILD_DIR}
stage=$(mktemp -d /tmp/pd-install-XXXXXX)
trap 'rm -rf "$stage"' EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

DESTDIR=$stage cmake --install "$build" >"$stage/install.log"
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
root=$stage$prefix

for p in paidan-server paidan-cli paidan-bench paidan-gen; do
  [ -x "$root/bin/$p" ] || fail "$p is not installed in $prefix/bin"
  "$root/bin/$p" --version | grep -q "^$p [0-9]" || fail "$p --version"
  if grep -q '^HELP2MAN:FILEPATH=/' "$build/CMakeCache.txt"; then
    page=$root/share/man/man1/$p.1
    [ -s "$page" ] || fail "no man page $page"
    grep -q '^\.TH ' "$page" || fail "$page is not a man page"
    grep -qF "usage: ${p//-/\\-}" "$page" || fail "$page lacks the usage"
  fi
done

unit=$root/lib/systemd/system/paidan-server.service
[ -f "$unit" ] || fail "no systemd unit"
conf=$(sed -n 's/^ExecStart=[^ ]* --config \([^ ]*\)$/\1/p' "$unit")
[ -n "$conf" ] || fail "the unit's ExecStart names no --config"
grep -qx "ExecStart=$prefix/bin/paidan-server --config $conf" "$unit" ||
  fail "the unit does not run the installed server"
[ -f "$stage$conf" ] || fail "the unit's settings file $conf is not installed"
grep -qx 'Type=notify' "$unit" || fail "the unit does not wait for READY=1"

# The shipped settings start a server (their data_dir swapped for a
# scratch one, since /var/lib/paidan is the unit's).
"$root/bin/paidan-server" --config "$stage$conf" --data-dir "$stage/data" --check-config \
  >"$stage/check.out" || fail "the shipped settings fail --check-config: $(cat "$stage/check.out")"
grep -qx 'data_dir = /var/lib/paidan' <("$root/bin/paidan-server" --config "$stage$conf" \
  --check-config 2>/dev/null || true) || fail "the shipped settings do not use /var/lib/paidan"

# systemd reads the unit without a complaint (its programs looked up in
# the scratch tree).
if command -v systemd-analyze >/dev/null; then
  sed "s|$prefix/bin/|$root/bin/|g" "$unit" >"$stage/paidan-server.service"
  out=$(systemd-analyze verify --man=no "$stage/paidan-server.service" 2>&1) ||
    fail "systemd-analyze verify: $out"
  [ -z "$out" ] || fail "systemd-analyze verify: $out"
fi

# An operator's edits survive a second install.
echo '; edited by the operator' >>"$stage$conf"
DESTDIR=$stage cmake --install "$build" >"$stage/install2.log"
tail -n 1 "$stage$conf" | grep -q 'edited by the operator' || fail "a reinstall replaced $conf"

for f in share/doc/paidan/README.md share/doc/paidan/protocol.md \
  share/doc/paidan/operations-server.md share/doc/paidan/paidan.ini.example \
  share/doc/paidan/examples/example_client.py share/paidan/sample/county-volunteers.csv \
  share/paidan/sample/county-orders.csv; do
  [ -s "$root/$f" ] || fail "$prefix/$f is not installed"
done
echo "install: OK ($prefix, $(find "$stage" -type f | wc -l) files)"
