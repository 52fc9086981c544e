# The ringmq broker image:   docker build -t ringmq .
#
# Two stages: the release build in the official Rust image, then only the binaries
# on Debian's slim image. Both base images are public; where no registry can be
# reached (this project's CI), packaging/docker/base-images.sh makes them from
# Debian's packages under the same names, so this file builds unchanged.
# See README.md, "In Docker", for how to run it.

ARG RUST_IMAGE=rust:1-slim-bookworm
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
# `cargo install --path .` is also how users install from source: ringmq, ringmqctl
# and ringmqperf. Line tables are stripped: they double the size and panics abort.
# The build's 1-2 GB of objects are removed in the same step, so the build stage's
# layer, which the engine keeps as cache, holds only the binaries.
RUN cargo install --locked --path . --root /out --target-dir /tmp/target \
    && rm -rf /tmp/target /usr/local/cargo/registry \
    && strip --strip-debug /out/bin/ringmq /out/bin/ringmqctl /out/bin/ringmqperf \
    && /out/bin/ringmq --version

FROM ${BASE_IMAGE}
# A fixed uid/gid (999, as RabbitMQ's image) so a volume's owner is predictable.
RUN groupadd --system --gid 999 ringmq \
    && useradd --system --uid 999 --gid ringmq --home-dir /var/lib/ringmq --no-create-home \
       --shell /usr/sbin/nologin ringmq \
    && mkdir -p /var/lib/ringmq /etc/ringmq \
    && chown ringmq:ringmq /var/lib/ringmq \
    && chmod 0750 /var/lib/ringmq
COPY --from=build /out/bin/ringmq /out/bin/ringmqctl /out/bin/ringmqperf /usr/local/bin/
COPY packaging/docker/ringmq.ini /etc/ringmq/ringmq.ini
USER ringmq
VOLUME /var/lib/ringmq
# AMQP, the management API and web UI, Prometheus metrics.
EXPOSE 5672 15672 15692 1883
# The AMQP listener answers the protocol header (no login needed); a wedged loop
# fails it where an open port alone would not.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["ringmqctl", "--timeout", "4", "ping", "127.0.0.1:5672"]
# SIGTERM: stop accepting, flush and fsync, close connections, exit 0 (well within
# Docker's default 10 s stop timeout).
STOPSIGNAL SIGTERM
ENTRYPOINT ["ringmq", "-c", "/etc/ringmq/ringmq.ini"]
