#!/usr/bin/env bash
# package.sh -- build the Debian package (paidan_VERSION_ARCH.deb in
# build/package/): paidan-server with its systemd unit, paidan-cli,
# paidan-bench, paidan-gen, their man pages, the docs and the sample
# county, under /usr, with the settings in /etc/paidan/paidan.ini (a
# conffile). Then check what was built: the files, the dependencies found
# by dpkg-shlibdeps, the conffile and the maintainer scripts, and that the
# unpacked programs run. docs/operations-server.md says how to install
# and run it.
#
# usage: scripts/package.sh [-h|--help]   (it takes no other arguments)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/usage.sh
only_help "$@"
trap kill_children EXIT
scripts/deps.sh

tree=build/package
cmake -S . -B "$tree" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
      -DPD_BUILD_TESTS=OFF -DPD_WERROR=ON >/dev/null
cmake --build "$tree" -j"$(nproc)"
rm -f "$tree"/paidan_*.deb
(cd "$tree" && cpack -G DEB >cpack.log) || { cat "$tree/cpack.log" >&2; exit 1; }
deb=$(ls "$tree"/paidan_*.deb)

fail() {
  echo "package: FAIL: $*" >&2
  exit 1
}
contents=$(dpkg-deb --contents "$deb")
for f in ./usr/bin/paidan-server ./usr/bin/paidan-cli ./usr/bin/paidan-bench \
  ./usr/bin/paidan-gen ./usr/share/man/man1/paidan-server.1 ./etc/paidan/paidan.ini \
  ./usr/lib/systemd/system/paidan-server.service ./usr/share/doc/paidan/protocol.md \
  ./usr/share/paidan/sample/county-volunteers.csv; do
  grep -q " $f\$" <<<"$contents" || fail "$f is not in $deb"
done
depends=$(dpkg-deb --field "$deb" Depends)
for lib in libuv1 libjemalloc2 libmsgpackc2 libinih1 libsystemd0; do
  grep -q "$lib" <<<"$depends" || fail "Depends lacks $lib: $depends"
done
ctl=$(mktemp -d)
x=$(mktemp -d)
trap 'rm -rf "$ctl" "$x"; kill_children' EXIT
dpkg-deb --control "$deb" "$ctl"
grep -qx /etc/paidan/paidan.ini "$ctl/conffiles" || fail "paidan.ini is not a conffile"
for s in postinst prerm postrm; do
  [ -x "$ctl/$s" ] || fail "no $s"
  sh -n "$ctl/$s" || fail "$s does not parse"
done
dpkg-deb --extract "$deb" "$x"
for p in paidan-server paidan-cli paidan-bench paidan-gen; do
  "$x/usr/bin/$p" --version >/dev/null || fail "the packaged $p does not run"
done
"$x/usr/bin/paidan-server" --config "$x/etc/paidan/paidan.ini" --data-dir "$x/data" \
  --check-config >/dev/null || fail "the packaged settings fail --check-config"
echo "package: $deb ($(du -k "$deb" | cut -f1) KiB)"
echo "  Depends: $depends"
echo "  install: apt install ./$deb   then: systemctl enable --now paidan-server"
