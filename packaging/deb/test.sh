#!/usr/bin/env bash
# Tries the Debian package in a throwaway debian:bookworm-slim container (no
# systemd inside, as in most containers): dpkg -i; the ringmq user and group,
# /var/lib/ringmq and its owner, the conffile and its mode, the unit, the
# binaries; then the broker started as the ringmq user with the packaged
# config: AMQP answers the protocol header, the management API answers
# ringmqctl, the data lands in /var/lib/ringmq owned by ringmq, SIGTERM stops it
# cleanly; a second dpkg -i (reinstall) keeps everything; dpkg -r keeps config
# and data; dpkg -P removes both and leaves the user.
#
#   packaging/deb/test.sh DEB
#
# Makes the local debian:bookworm-slim image (packaging/docker/base-images.sh)
# when the engine lacks it. Takes about 10 s once the image exists.
set -euo pipefail
[ $# = 1 ] || { echo "usage: $0 DEB" >&2; exit 2; }
deb=$1
[ -f "$deb" ] || { echo "deb-test: no such file: $deb" >&2; exit 1; }
repo=$(cd "$(dirname "$0")/../.." && pwd)
image=debian:bookworm-slim

if ! docker image inspect "$image" >/dev/null 2>&1; then
  "$repo/packaging/docker/base-images.sh"
fi

container=ringmq-deb-test-$$
# docker cp rather than a bind mount: works when the engine is not on this host.
docker create --name "$container" --network none "$image" sleep infinity >/dev/null
trap 'docker rm -f "$container" >/dev/null 2>&1 || true' EXIT
docker cp "$deb" "$container:/tmp/ringmq.deb"
docker start "$container" >/dev/null

docker exec -i "$container" bash -s <<'SCRIPT'
set -euo pipefail
step() { echo "deb-test: $*"; }
fail() { echo "deb-test: FAILED: $*" >&2; exit 1; }
expect_stat() { # PATH "OWNER:GROUP MODE"
  local got
  got=$(stat -c '%U:%G %a' "$1")
  [ "$got" = "$2" ] || fail "$1 is $got, expected $2"
}

step "dpkg -i"
dpkg -i /tmp/ringmq.deb >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "dpkg -i"; }
dpkg-query -W -f='${Status} ${Version}\n' ringmq | grep -q '^install ok installed ' || fail "not installed"

step "user, group, data directory, conffile, unit"
getent group ringmq >/dev/null || fail "no ringmq group"
IFS=: read -r _ _ uid gid _ home shell < <(getent passwd ringmq) || fail "no ringmq user"
[ "$uid" -lt 1000 ] || fail "ringmq is not a system user (uid $uid)"
[ "$gid" = "$(getent group ringmq | cut -d: -f3)" ] || fail "ringmq's primary group is not ringmq"
[ "$home" = /var/lib/ringmq ] && [ "$shell" = /usr/sbin/nologin ] || fail "home $home, shell $shell"
expect_stat /var/lib/ringmq "ringmq:ringmq 750"
dpkg-query -W -f='${Conffiles}\n' ringmq | grep -q '^ /etc/ringmq/ringmq.ini ' || fail "ringmq.ini is not a conffile"
expect_stat /etc/ringmq/ringmq.ini "root:ringmq 640"
grep -qx 'data_dir = /var/lib/ringmq' /etc/ringmq/ringmq.ini || fail "data_dir in ringmq.ini"
[ -f /lib/systemd/system/ringmq.service ] || fail "no unit"
grep -qx 'Type=notify' /lib/systemd/system/ringmq.service || fail "unit is not Type=notify"
if command -v deb-systemd-helper >/dev/null; then
  [ -L /etc/systemd/system/multi-user.target.wants/ringmq.service ] || fail "service not enabled"
fi

step "binaries"
ringmq --version | grep -q '^ringmq ' || fail "ringmq --version"
ringmqctl --version | grep -q '^ringmqctl ' || fail "ringmqctl --version"
ringmqperf --help >/dev/null || fail "ringmqperf --help"

step "ringmq -c /etc/ringmq/ringmq.ini as the ringmq user"
setpriv --reuid=ringmq --regid=ringmq --init-groups ringmq -c /etc/ringmq/ringmq.ini >/tmp/ringmq.log 2>&1 &
pid=$!
amqp_ok=
for _ in $(seq 100); do
  if { exec 3<>/dev/tcp/127.0.0.1/5672; } 2>/dev/null; then
    printf 'AMQP\x00\x00\x09\x01' >&3
    # connection.start: a method frame (type 1) on channel 0.
    head -c 3 <&3 | od -An -tx1 | grep -q '01 00 00' && amqp_ok=1
    exec 3<&-
    break
  fi
  kill -0 "$pid" 2>/dev/null || { cat /tmp/ringmq.log; fail "ringmq exited"; }
  sleep 0.1
done
[ -n "$amqp_ok" ] || { cat /tmp/ringmq.log; fail "AMQP on 5672 did not answer the protocol header"; }
for _ in $(seq 50); do ringmqctl status >/tmp/status 2>&1 && break; sleep 0.1; done
ringmqctl status >/dev/null || { cat /tmp/status /tmp/ringmq.log; fail "ringmqctl status"; }
ringmqctl declare_queue deb-test >/dev/null
ringmqctl publish "" deb-test hello >/dev/null
ringmqctl get deb-test | grep -q hello || fail "message not read back"
[ -z "$(find /var/lib/ringmq -mindepth 1 ! -user ringmq)" ] || fail "files in /var/lib/ringmq not owned by ringmq"
[ -n "$(find /var/lib/ringmq -mindepth 1)" ] || fail "nothing written to /var/lib/ringmq"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 0 ] || { cat /tmp/ringmq.log; fail "ringmq exited with $rc on SIGTERM"; }
grep -q 'shutdown complete' /tmp/ringmq.log || fail "no clean shutdown"

step "dpkg -i again (reinstall keeps user, data and config)"
echo '# local edit' >>/etc/ringmq/ringmq.ini
dpkg -i /tmp/ringmq.deb >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "reinstall"; }
[ "$(getent passwd ringmq | cut -d: -f3)" = "$uid" ] || fail "uid changed"
grep -qx '# local edit' /etc/ringmq/ringmq.ini || fail "local edit of the conffile lost"
expect_stat /etc/ringmq/ringmq.ini "root:ringmq 640"
[ -n "$(find /var/lib/ringmq -mindepth 1)" ] || fail "data lost on reinstall"

step "dpkg -r keeps config, data and user"
dpkg -r ringmq >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "dpkg -r"; }
! command -v ringmq >/dev/null || fail "ringmq still installed"
[ ! -e /lib/systemd/system/ringmq.service ] || fail "unit left after remove"
[ -f /etc/ringmq/ringmq.ini ] || fail "conffile removed by dpkg -r"
[ -n "$(find /var/lib/ringmq -mindepth 1)" ] || fail "data removed by dpkg -r"
getent passwd ringmq >/dev/null || fail "user removed"

step "dpkg -P removes config and data, keeps the user"
dpkg -P ringmq >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "dpkg -P"; }
[ ! -e /etc/ringmq ] || fail "/etc/ringmq left after purge: $(ls -la /etc/ringmq)"
[ ! -e /var/lib/ringmq ] || fail "/var/lib/ringmq left after purge"
! dpkg-statoverride --list /etc/ringmq/ringmq.ini >/dev/null || fail "statoverride left after purge"
[ ! -e /etc/systemd/system/multi-user.target.wants/ringmq.service ] || fail "enablement left after purge"
getent passwd ringmq >/dev/null || fail "purge removed the user"
step "ok"
SCRIPT
