#!/usr/bin/env bash
# A RabbitMQ with the shovel, federation and MQTT plugins on loopback (AMQP 5694,
# management 15694, MQTT 1894), for the interop tests (tests/shovels_rabbitmq.rs,
# tests/federation_rabbitmq.rs, and tests/mqtt.rs and tests/mqtt_session.rs
# against it as the reference): Debian's rabbitmq-server,
# installed when missing, in a directory of its own.
#   .ci/rabbitmq_peer.sh start DIR | stop DIR
set -euo pipefail
dir=${2:?usage: rabbitmq_peer.sh start|stop DIR}
export RABBITMQ_NODENAME=ringmq-ci-peer@localhost HOME=$dir/home
export RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins
export RABBITMQ_MNESIA_BASE=$dir/mnesia RABBITMQ_LOG_BASE=$dir/log RABBITMQ_PID_FILE=$dir/rabbitmq.pid
export RABBITMQ_CONF_ENV_FILE=$dir/rabbitmq-env.conf RABBITMQ_ADVANCED_CONFIG_FILE=$dir/advanced.config
export RABBITMQ_DIST_PORT=25694 ERL_EPMD_ADDRESS=127.0.0.1
CLI=/usr/lib/rabbitmq/bin
case "$1" in
  start)
    if [ ! -x "$CLI/rabbitmq-server" ]; then
      apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rabbitmq-server >/dev/null
    fi
    mkdir -p "$dir/home" "$dir/log" "$dir/mnesia"
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$HOME/.erlang.cookie"; chmod 400 "$HOME/.erlang.cookie"
    : > "$RABBITMQ_CONF_ENV_FILE"; echo "[]." > "$RABBITMQ_ADVANCED_CONFIG_FILE"
    printf 'listeners.tcp.1 = 127.0.0.1:5694\nmanagement.tcp.ip = 127.0.0.1\nmanagement.tcp.port = 15694\n' > "$RABBITMQ_CONFIG_FILE"
    printf 'disk_free_limit.absolute = 50MB\nlog.console = false\n' >> "$RABBITMQ_CONFIG_FILE"
    printf 'mqtt.listeners.tcp.default = 127.0.0.1:1894\n' >> "$RABBITMQ_CONFIG_FILE"
    echo "[rabbitmq_management,rabbitmq_shovel,rabbitmq_shovel_management,rabbitmq_federation,rabbitmq_federation_management,rabbitmq_mqtt]." > "$RABBITMQ_ENABLED_PLUGINS_FILE"
    setsid nohup "$CLI/rabbitmq-server" > "$dir/server.stdout" 2>&1 < /dev/null &
    timeout 120 "$CLI/rabbitmqctl" -n "$RABBITMQ_NODENAME" wait --timeout 120 "$RABBITMQ_PID_FILE" >/dev/null
    # Each plugin's API answers once the plugin has started: wait for both.
    for path in shovels federation-links; do
      for _ in $(seq 100); do curl -sf -o /dev/null -u guest:guest "http://127.0.0.1:15694/api/$path" && break; sleep 0.2; done
    done
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/1894) 2>/dev/null && break; sleep 0.2; done
    ;;
  stop)
    timeout 60 "$CLI/rabbitmqctl" -n "$RABBITMQ_NODENAME" stop "$RABBITMQ_PID_FILE" >/dev/null 2>&1 || true
    # epmd came with the node: stop it when no node is registered any more.
    if command -v epmd >/dev/null && ! epmd -names 2>/dev/null | grep -q '^name '; then epmd -kill >/dev/null 2>&1 || true; fi
    ;;
esac
