#!/usr/bin/env bash
# Checks the packaging files against a built broker:
#   - packaging/systemd/ringmq.service with `systemd-analyze verify` (any warning
#     fails: verify exits 0 on unknown keys and bad values), installed as the
#     package installs it, in a scratch root with the binary at /usr/bin/ringmq;
#   - the settings the unit must keep (Type=notify, the hardening, no
#     SystemCallFilter that could drop io_uring, LimitNOFILE above the default
#     max_connections);
#   - packaging/ringmq.ini is what this binary's --print-config-example prints.
#
#   packaging/check.sh [BINDIR]    (default: $RINGMQ_RELEASE_BINDIR, else target/debug)
#
# Needs systemd-analyze (Debian: apt-get install systemd; PID 1 need not be systemd).
set -euo pipefail
cd "$(dirname "$0")/.."

bindir=${1:-${RINGMQ_RELEASE_BINDIR:-target/debug}}
bin="$bindir/ringmq"
unit=packaging/systemd/ringmq.service
[ -x "$bin" ] || { echo "check: no broker binary at $bin (build it, or pass BINDIR)" >&2; exit 1; }
command -v systemd-analyze >/dev/null || { echo "check: systemd-analyze missing (apt-get install systemd)" >&2; exit 1; }

fail() { echo "check: $*" >&2; exit 1; }

# A scratch root laid out as the package installs: the unit under
# /lib/systemd/system, the binary at /usr/bin/ringmq (so ExecStart is checked
# as written), and the system's own units the unit refers to (targets).
root=$(mktemp -d /tmp/ringmq-check.XXXXXX)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/bin" "$root/lib/systemd"
cp -a /lib/systemd/system "$root/lib/systemd/system"
install -m 0755 "$bin" "$root/usr/bin/ringmq"
install -m 0644 "$unit" "$root/lib/systemd/system/ringmq.service"

echo "check: systemd-analyze verify $unit"
out=$(systemd-analyze verify --root="$root" ringmq.service 2>&1) || fail "systemd-analyze verify failed:
$out"
[ -z "$out" ] || fail "systemd-analyze verify warns:
$out"
systemd-analyze security --offline=true --root="$root" ringmq.service 2>/dev/null | grep 'Overall exposure' || true

# What the unit must keep (each line exactly once).
for line in \
  Type=notify NotifyAccess=main User=ringmq Group=ringmq \
  'ExecStart=/usr/bin/ringmq -c /etc/ringmq/ringmq.ini' Restart=on-failure \
  StateDirectory=ringmq ReadWritePaths=/var/lib/ringmq NoNewPrivileges=yes CapabilityBoundingSet= \
  ProtectSystem=strict ProtectHome=yes PrivateTmp=yes PrivateDevices=yes ProtectKernelTunables=yes \
  ProtectKernelModules=yes ProtectKernelLogs=yes 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' \
  LockPersonality=yes MemoryDenyWriteExecute=yes RestrictNamespaces=yes SystemCallArchitectures=native; do
  n=$(grep -cxF -- "$line" "$unit" || true)
  [ "$n" = 1 ] || fail "$unit must have the line '$line' once (found $n)"
done
# io_uring_setup/enter/register must stay allowed: no syscall filter at all.
! grep -q '^SystemCallFilter=' "$unit" || fail "$unit: no SystemCallFilter= (io_uring; see the comment there)"

# The example file is this binary's, and the unit's descriptor limit covers the
# connections it allows.
"$bin" --print-config-example | diff -u packaging/ringmq.ini - >&2 ||
  fail "packaging/ringmq.ini differs from '$bin --print-config-example' (regenerate it, or rebuild the binary)"
nofile=$(sed -n 's/^LimitNOFILE=//p' "$unit")
max_conn=$(sed -n 's/^max_connections = //p' packaging/ringmq.ini)
[[ "$nofile" =~ ^[0-9]+$ && "$max_conn" =~ ^[0-9]+$ ]] || fail "cannot read LimitNOFILE ($nofile) or max_connections ($max_conn)"
[ "$nofile" -gt "$max_conn" ] || fail "LimitNOFILE=$nofile does not cover max_connections = $max_conn"

echo "check: ok ($unit, packaging/ringmq.ini)"
