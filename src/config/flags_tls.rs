//! The settings table's "Bindings & TLS" group (see [`super::flags`]): where
//! the listeners bind, and the TLS certificates, versions, suites and client
//! certificates.

use super::flags::{flag, key, Action, Flag};
use super::Section::{Amqp, Main, Mgmt, Mqtt};

pub(super) const BINDINGS_AND_TLS: &[Flag] = &[

        flag(
            Some('b'),
            "bind",
            "ADDR",
            "Addresses the AMQP, MQTT and HTTP servers listen on (a list, or repeat the flag)",
            None,
            Action::Set(&[(Amqp, "bind"), (Mqtt, "bind"), (Mgmt, "bind")]),
        ),
        flag(
            None,
            "amqp-bind",
            "ADDR",
            "Addresses the AMQP server listens on (a list, or repeat the flag)",
            Some("127.0.0.1"),
            Action::Set(&[(Amqp, "bind")]),
        ),
        flag(
            Some('p'),
            "amqp-port",
            "PORT",
            "AMQP port (0 = any free port)",
            Some("5672"),
            Action::Set(&[(Amqp, "port")]),
        ),
        flag(
            None,
            "amqps-port",
            "PORT",
            "AMQPS port, -1 disables",
            Some("-1"),
            Action::Set(&[(Amqp, "tls_port")]),
        ),
        flag(
            None,
            "amqp-unix-path",
            "PATH",
            "AMQP on this Unix domain socket too (mode 0666; a stale file is replaced, a live one refused)",
            None,
            Action::Set(&[(Amqp, "unix_path")]),
        ),
        flag(
            None,
            "amqp-proxy-protocol",
            "N",
            "The AMQP port requires a PROXY protocol header: 0 off, 1 or 2 on (v1 and v2 headers both accepted)",
            Some("0"),
            Action::Set(&[(Amqp, "tcp_proxy_protocol")]),
        ),
        flag(
            None,
            "amqps-proxy-protocol",
            "N",
            "The AMQPS port requires a PROXY protocol header before the TLS handshake: 0 off, 1 or 2 on",
            Some("0"),
            Action::Set(&[(Amqp, "tls_proxy_protocol")]),
        ),
        flag(
            None,
            "amqp-unix-proxy-protocol",
            "N",
            "The AMQP Unix socket requires a PROXY protocol header: 0 off, 1 or 2 on",
            Some("0"),
            Action::Set(&[(Amqp, "unix_proxy_protocol")]),
        ),
        flag(
            None,
            "http-bind",
            "ADDR",
            "Addresses the HTTP server listens on (a list, or repeat the flag)",
            Some("127.0.0.1"),
            Action::Set(&[(Mgmt, "bind")]),
        ),
        flag(
            None,
            "http-port",
            "PORT",
            "HTTP port, -1 disables",
            Some("15672"),
            Action::Set(&[(Mgmt, "port")]),
        ),
        flag(
            None,
            "http-unix-path",
            "PATH",
            "The HTTP API on this Unix domain socket too (mode 0666; a stale file is replaced, a live one refused)",
            None,
            Action::Set(&[(Mgmt, "unix_path")]),
        ),
        flag(
            None,
            "control-unix-path",
            "PATH",
            "The HTTP API on this Unix socket for ringmqctl, which tries it first when given no --uri, --host, --port or --socket (mode 0660; empty: none; at the default path, no socket is only logged: no /run/ringmq, or another broker there)",
            Some(super::DEFAULT_CONTROL_UNIX_PATH),
            Action::Set(&[(Main, "control_unix_path")]),
        ),
        flag(
            None,
            "metrics-http-bind",
            "ADDR",
            "Address the Prometheus metrics server listens on",
            Some("127.0.0.1"),
            Action::Set(&[(Mgmt, "metrics_http_bind")]),
        )
        .aliases(&[(Main, "metrics_http_bind")]),
        flag(
            None,
            "metrics-http-port",
            "PORT",
            "Prometheus metrics port (no login), -1 disables",
            Some("15692"),
            Action::Set(&[(Mgmt, "metrics_http_port")]),
        )
        .aliases(&[(Main, "metrics_http_port")]),
        flag(
            None,
            "https-port",
            "PORT",
            "HTTPS port for the API and UI (needs --cert, --key), -1 disables",
            Some("-1"),
            Action::Set(&[(Mgmt, "tls_port")]),
        ),
        flag(
            None,
            "cert",
            "FILE",
            "TLS certificate (including chain)",
            None,
            Action::Set(&[(Main, "tls_cert")]),
        )
        .aliases(&[(Amqp, "tls_cert"), (Mgmt, "tls_cert")]),
        flag(
            None,
            "key",
            "FILE",
            "Private key for the TLS certificate",
            None,
            Action::Set(&[(Main, "tls_key")]),
        )
        .aliases(&[(Amqp, "tls_key"), (Mgmt, "tls_key")]),
        flag(
            None,
            "tls-min-version",
            "VERSION",
            "Oldest TLS version accepted: 1.2 or 1.3",
            Some("1.2"),
            Action::Set(&[(Main, "tls_min_version")]),
        ),
        flag(
            None,
            "tls-verify-peer",
            "",
            "Ask AMQPS clients for a certificate and verify it against --ca-cert (SASL EXTERNAL logs in as the name --tls-cert-login-from takes)",
            None,
            Action::Switch(Main, "tls_verify_peer", "true"),
        ),
        key(
            Main,
            "tls_verify_peer",
            "Ask AMQPS clients for a certificate and verify it against tls_ca_cert (--tls-verify-peer); SASL EXTERNAL logs in as the name tls_cert_login_from takes",
            "false",
        )
        .aliases(&[(Amqp, "tls_verify_peer")]),
        flag(
            None,
            "ca-cert",
            "FILE",
            "CA certificates (PEM) that AMQPS client certificates must chain to; needs --tls-verify-peer",
            None,
            Action::Set(&[(Main, "tls_ca_cert")]),
        )
        .aliases(&[(Amqp, "tls_ca_cert")]),
        flag(
            None,
            "tls-fail-if-no-peer-cert",
            "BOOL",
            "With --tls-verify-peer: refuse AMQPS clients that send no certificate (false: they may log in with a password)",
            Some("true"),
            Action::Set(&[(Main, "tls_fail_if_no_peer_cert")]),
        )
        .aliases(&[(Amqp, "tls_fail_if_no_peer_cert")]),
        flag(
            None,
            "tls-cert-login-from",
            "FIELD",
            "Which name of a client certificate SASL EXTERNAL logs in as: distinguished_name (the subject, as CN=alice,O=Example), common_name or subject_alternative_name (RabbitMQ's ssl_cert_login_from)",
            Some("distinguished_name"),
            Action::Set(&[(Main, "tls_cert_login_from")]),
        )
        .aliases(&[(Amqp, "tls_cert_login_from")]),
        flag(
            None,
            "tls-cert-login-san-type",
            "TYPE",
            "With --tls-cert-login-from subject_alternative_name: dns, ip, email, uri or other_name",
            Some("dns"),
            Action::Set(&[(Main, "tls_cert_login_san_type")]),
        )
        .aliases(&[(Amqp, "tls_cert_login_san_type")]),
        flag(
            None,
            "tls-cert-login-san-index",
            "N",
            "With --tls-cert-login-from subject_alternative_name: which name of that type, from 0",
            Some("0"),
            Action::Set(&[(Main, "tls_cert_login_san_index")]),
        )
        .aliases(&[(Amqp, "tls_cert_login_san_index")]),
        flag(
            None,
            "ciphers",
            "LIST",
            "TLS cipher suites offered, ':'-separated, IANA or OpenSSL names (empty: all rustls has, all AEAD with forward secrecy)",
            Some(""),
            Action::Set(&[(Main, "tls_ciphers")]),
        ),
];
