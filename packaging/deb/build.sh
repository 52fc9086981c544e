#!/usr/bin/env bash
# Builds the Debian package from already-built release binaries, without
# cargo-deb (which would cost CI minutes of compiling), with dpkg-deb:
#
#   packaging/deb/build.sh BINDIR OUTDIR     -> OUTDIR/ringmq_<version>_<arch>.deb
#
# BINDIR holds ringmq, ringmqctl and ringmqperf (in CI: the binaries of the
# Docker image's build stage, so the package ships what the image ships). The
# package installs:
#   /usr/bin/{ringmq,ringmqctl,ringmqperf}
#   /lib/systemd/system/ringmq.service          packaging/systemd/ringmq.service
#   /etc/ringmq/ringmq.ini (conffile, root:ringmq 0640)
#                                               `ringmq --print-config-example`,
#                                               which must equal packaging/ringmq.ini
#   /usr/share/doc/ringmq/copyright
# and its maintainer scripts (packaging/deb/{postinst,prerm,postrm}) create the
# `ringmq` system user and /var/lib/ringmq (ringmq:ringmq 0750), enable and start
# the service where systemd runs, stop it on remove, and delete the data only on
# purge. Depends: from dpkg-shlibdeps (objdump -p where dpkg-dev is missing).
set -euo pipefail

[ $# = 2 ] || { echo "usage: $0 BINDIR OUTDIR" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bindir=$(cd "$1" && pwd)
mkdir -p "$2"
outdir=$(cd "$2" && pwd)
bins=(ringmq ringmqctl ringmqperf)
for b in "${bins[@]}"; do
  [ -x "$bindir/$b" ] || { echo "deb: $bindir/$b is missing or not executable" >&2; exit 1; }
done

version=$("$bindir/ringmq" --version | awk '{print $2}')
[[ "$version" =~ ^[0-9][0-9A-Za-z.+~-]*$ ]] || { echo "deb: cannot read the version from ringmq --version" >&2; exit 1; }
# The ELF header's e_machine (little-endian, offset 18).
case "$(od -An -tx1 -j18 -N2 "$bindir/ringmq" | tr -d ' ')" in
  3e00) arch=amd64 ;;
  b700) arch=arm64 ;;
  *) echo "deb: unknown architecture of $bindir/ringmq" >&2; exit 1 ;;
esac

stage=$(mktemp -d /tmp/ringmq-deb.XXXXXX)
trap 'rm -rf "$stage"' EXIT
root="$stage/root"
umask 022

for b in "${bins[@]}"; do
  install -D -m 0755 "$bindir/$b" "$root/usr/bin/$b"
done
install -D -m 0644 "$repo/packaging/systemd/ringmq.service" "$root/lib/systemd/system/ringmq.service"
# The conffile is the example the packaged broker prints (so it documents that
# broker's keys); it must also be the committed one, or the binaries are stale.
mkdir -p "$root/etc/ringmq"
"$bindir/ringmq" --print-config-example >"$root/etc/ringmq/ringmq.ini"
if ! diff -q "$repo/packaging/ringmq.ini" "$root/etc/ringmq/ringmq.ini" >/dev/null; then
  echo "deb: $bindir/ringmq --print-config-example differs from packaging/ringmq.ini (stale binaries?)" >&2
  exit 1
fi
grep -qx 'data_dir = /var/lib/ringmq' "$root/etc/ringmq/ringmq.ini"
# The file may hold the default user's password: 0640, group ringmq (set by
# postinst through dpkg-statoverride once the group exists).
chmod 0640 "$root/etc/ringmq/ringmq.ini"
install -d "$root/usr/share/doc/ringmq"
cat >"$root/usr/share/doc/ringmq/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: ringmq

Files: *
Copyright: the ringmq authors
License: Apache-2.0

License: Apache-2.0
 Licensed under the Apache License, Version 2.0 (the "License"); you may not
 use this file except in compliance with the License. You may obtain a copy of
 the License at http://www.apache.org/licenses/LICENSE-2.0
 .
 Unless required by applicable law or agreed to in writing, software
 distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
 WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
 License for the specific language governing permissions and limitations under
 the License.
 .
 On Debian systems, the full text of the Apache License, Version 2.0 can be
 found in /usr/share/common-licenses/Apache-2.0.
 .
 The binaries also contain Rust crates from crates.io under their own
 permissive licenses (MIT, Apache-2.0, BSD, ISC, Zlib, Unicode-3.0); the
 exact list is the source's Cargo.lock.
COPYRIGHT

# Depends: the shared libraries the binaries link (libc6, libgcc-s1), with the
# lowest versions their symbols need; passwd for useradd/groupadd in postinst.
shlib_depends() {
  if command -v dpkg-shlibdeps >/dev/null; then
    mkdir -p "$stage/debian"
    printf 'Source: ringmq\n\nPackage: ringmq\nArchitecture: any\n' >"$stage/debian/control"
    (cd "$stage" && dpkg-shlibdeps -O "${bins[@]/#/root/usr/bin/}" 2>/dev/null) | sed -n 's/^shlibs:Depends=//p'
    rm -rf "$stage/debian"
  else
    # Without dpkg-dev: libc6 at the highest GLIBC_ symbol version referenced.
    local glibc
    glibc=$(for b in "${bins[@]}"; do objdump -T "$root/usr/bin/$b"; done |
      grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
    local deps="libc6 (>= $glibc)"
    if for b in "${bins[@]}"; do objdump -p "$root/usr/bin/$b"; done | grep -q 'NEEDED *libgcc_s.so.1'; then
      deps="$deps, libgcc-s1"
    fi
    echo "$deps"
  fi
}
shlibs=$(shlib_depends)
[ -n "$shlibs" ] || { echo "deb: could not work out the shared library dependencies" >&2; exit 1; }
depends="$shlibs, passwd"

install -d "$root/DEBIAN"
for script in postinst prerm postrm; do
  install -m 0755 "$here/$script" "$root/DEBIAN/$script"
done
echo /etc/ringmq/ringmq.ini >"$root/DEBIAN/conffiles"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
installed_kib=$(du -sk --apparent-size --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: ringmq
Version: $version
Architecture: $arch
Maintainer: ringmq maintainers <maintainers@ringmq.invalid>
Installed-Size: $installed_kib
Depends: $depends
Section: net
Priority: optional
Description: AMQP 0-9-1 message broker
 ringmq is an AMQP 0-9-1 message broker, a drop-in replacement for RabbitMQ
 and LavinMQ: existing AMQP clients connect to it unchanged. Messages live in
 memory-mapped segment files on disk, publisher confirms go out after a
 group-commit fsync, and the transport runs on io_uring (epoll where io_uring
 is not allowed).
 .
 This package runs the broker as the systemd service ringmq (settings in
 /etc/ringmq/ringmq.ini, data in /var/lib/ringmq) and contains the management
 tool ringmqctl and the load generator ringmqperf.
CONTROL

deb="$outdir/ringmq_${version}_${arch}.deb"
dpkg-deb --build --root-owner-group "$root" "$deb" >/dev/null
echo "deb: $deb ($(du -h "$deb" | cut -f1), Installed-Size $installed_kib KiB)"
echo "deb: Depends: $depends"
