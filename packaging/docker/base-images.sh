#!/usr/bin/env bash
# Makes the two public base images the Dockerfile names, from Debian's packages,
# for an engine that cannot pull from a registry (CI's machines have none):
#
#   debian:bookworm-slim    debootstrap --variant=minbase bookworm, trimmed as
#                           Debian's own slim image is (no docs, man pages, locales,
#                           apt lists)
#   rust:1-slim-bookworm    that, plus gcc and libc6-dev as the official Rust image
#                           has them, and this machine's stable Rust toolchain at the
#                           official image's paths (RUSTUP_HOME=/usr/local/rustup,
#                           CARGO_HOME=/usr/local/cargo)
#
# With them tagged under the public names, `docker build -t ringmq .` runs the same
# Dockerfile here as anywhere else. An image that already exists is kept (the engine
# keeps images between CI runs where it can), so a second run costs nothing; pass
# --force to remake both.
#
#   packaging/docker/base-images.sh [--force]
set -euo pipefail

DEBIAN_IMAGE=debian:bookworm-slim
RUST_IMAGE=rust:1-slim-bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
force=0
[ "${1:-}" = "--force" ] && force=1

have() { [ "$force" = 0 ] && docker image inspect "$1" >/dev/null 2>&1; }

if have "$DEBIAN_IMAGE" && have "$RUST_IMAGE"; then
  echo "base-images: $DEBIAN_IMAGE and $RUST_IMAGE are present"
  exit 0
fi

if ! command -v debootstrap >/dev/null; then
  echo "base-images: installing debootstrap" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

work=$(mktemp -d /tmp/ringmq-base.XXXXXX)
trap 'umount "$work/rootfs/proc" 2>/dev/null || true; rm -rf "$work"' EXIT
root="$work/rootfs"

echo "base-images: debootstrap bookworm (minbase)" >&2
debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
  tail -20 "$work/debootstrap.log" >&2
  exit 1
}

# What Debian's docker images configure (debuerreotype's slimification): dpkg never
# unpacks docs, man pages or translations, apt installs no recommends and keeps no
# package lists or archives.
cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'CFG'
APT::Install-Recommends "false";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
cat >"$root/etc/apt/sources.list" <<CFG
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
CFG
slim() {
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  rm -rf "$root"/usr/share/{man,groff,info,lintian,linda}/* "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* \
    "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/tmp/*
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true
}
slim
: >"$root/etc/hostname"
# No image ships a machine id: each container gets its own or none.
: >"$root/etc/machine-id"

echo "base-images: importing $DEBIAN_IMAGE" >&2
tar -C "$root" --numeric-owner -c . | docker import \
  --change 'CMD ["bash"]' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$DEBIAN_IMAGE" >/dev/null

echo "base-images: adding gcc, libc6-dev and the Rust toolchain for $RUST_IMAGE" >&2
mount -t proc proc "$root/proc"
chroot "$root" apt-get update -qq >/dev/null 2>&1
DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y -qq ca-certificates gcc libc6-dev >/dev/null 2>&1
# The build fetches crates: it must trust what this machine trusts, so the local
# CAs this machine added to Debian's set (a TLS-intercepting proxy's, say) go into
# the build image too. Only into the build image: the broker's runtime image gets
# none of them.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >/dev/null 2>&1
fi
umount "$root/proc"
slim

toolchain=$(rustc --print sysroot)
rust_version=$(rustc --version | cut -d' ' -f2)
dest="$root/usr/local/rustup/toolchains/stable-x86_64-unknown-linux-gnu"
mkdir -p "$dest" "$root/usr/local/cargo/bin"
# The toolchain without its 800 MB of HTML docs.
(cd "$toolchain" && tar -c --exclude=share/doc bin lib libexec etc share) | tar -C "$dest" -x
for tool in cargo rustc rustdoc rustfmt cargo-fmt cargo-clippy clippy-driver; do
  [ -e "$dest/bin/$tool" ] && ln -s "../../rustup/toolchains/stable-x86_64-unknown-linux-gnu/bin/$tool" "$root/usr/local/cargo/bin/$tool"
done

echo "base-images: importing $RUST_IMAGE (Rust $rust_version)" >&2
tar -C "$root" --numeric-owner -c . | docker import \
  --change 'CMD ["bash"]' \
  --change 'ENV RUSTUP_HOME=/usr/local/rustup' \
  --change 'ENV CARGO_HOME=/usr/local/cargo' \
  --change "ENV RUST_VERSION=$rust_version" \
  --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$RUST_IMAGE" >/dev/null

docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "^($DEBIAN_IMAGE|$RUST_IMAGE) " >&2
