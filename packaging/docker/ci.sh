#!/usr/bin/env bash
# The Docker part of CI, with the real engine:
#   1. the public base images, made from Debian's packages if missing (no registry);
#   2. `docker build` of the top-level Dockerfile, exactly as users run it;
#   3. the image's tests (tests/docker.rs): ports, volume, first user from the
#      environment, persistent messages across `docker stop`/`docker start`, health
#      check, io_uring vs. epoll under seccomp;
#   4. docker-compose up/down of compose.yaml with that image;
#   5. the release binaries copied out of the image into BINDIR, so the Debian
#      package is built from exactly what the image ships (the binary is built once).
#
#   packaging/docker/ci.sh BINDIR
set -euo pipefail
cd "$(dirname "$0")/../.."
bindir=${1:?usage: packaging/docker/ci.sh BINDIR}
image=${RINGMQ_DOCKER_IMAGE:-ringmq:ci}

packaging/docker/base-images.sh

echo "docker: building $image"
start=$(date +%s)
if ! docker build -q -t "$image" . >"${TMPDIR:-/tmp}/ringmq-docker-build.log" 2>&1; then
  tail -60 "${TMPDIR:-/tmp}/ringmq-docker-build.log"
  exit 1
fi
echo "docker: built in $(($(date +%s) - start)) s; $(docker image inspect --format '{{.Size}}' "$image" | awk '{printf "%.1f MB", $1/1e6}')"

mkdir -p "$bindir"
cid=$(docker create "$image")
for b in ringmq ringmqctl ringmqperf; do docker cp "$cid:/usr/local/bin/$b" "$bindir/$b"; done
docker rm "$cid" >/dev/null

RINGMQ_DOCKER_IMAGE="$image" cargo test --test docker -- --ignored --test-threads=1 --nocapture

echo "docker: compose.yaml"
project="ringmq-ci-$$"
export RINGMQ_IMAGE="$image" RINGMQ_DEFAULT_PASS="compose-$$" RINGMQ_AMQP_PORT= RINGMQ_HTTP_PORT= RINGMQ_METRICS_PORT= RINGMQ_MQTT_PORT=
compose() { docker-compose -p "$project" -f compose.yaml "$@"; }
cleanup() { compose down -v >/dev/null 2>&1 || true; }
trap cleanup EXIT
compose up -d --no-build
port=$(compose port ringmq 5672 | rev | cut -d: -f1 | rev)
for _ in $(seq 300); do
  target/debug/ringmqctl --timeout 2 ping "127.0.0.1:$port" >/dev/null 2>&1 && break
  sleep 0.1
done
target/debug/ringmqctl --timeout 5 ping "127.0.0.1:$port"
http=$(compose port ringmq 15672 | rev | cut -d: -f1 | rev)
target/debug/ringmqctl --uri "http://127.0.0.1:$http" --user admin --password "$RINGMQ_DEFAULT_PASS" whoami
compose down -v
trap - EXIT
echo "docker: ok"
