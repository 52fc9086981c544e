//! `ringmq`: the broker binary. `ringmq -D DIR` is all it takes; see `--help`.
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::process::ExitCode;

use ringmq::config::{Config, DefaultPassword, LogFormat, SniListener};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

fn main() -> ExitCode {
    // The environment is read here and nowhere else (see `config::env`).
    let env_vars = || std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    let cfg = match Config::from_args_and_env(std::env::args().skip(1), env_vars()) {
        Ok(c) => c,
        Err(e) if e.exit_code() == 0 => {
            println!("{e}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("ringmq: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    // Logs go to stdout (what `docker logs` and journald collect), without colour
    // codes unless a terminal reads them.
    // The filter sits behind a reload handle: SIGHUP re-reads the log level.
    let (filter, filter_handle) =
        tracing_subscriber::reload::Layer::new(tracing_subscriber::EnvFilter::new(cfg.main.log_level.as_str()));
    let json = cfg.main.log_format == LogFormat::Json;
    tracing_subscriber::registry()
        .with(filter)
        .with((!json).then(|| tracing_subscriber::fmt::layer().with_ansi(std::io::stdout().is_terminal())))
        .with(json.then(|| tracing_subscriber::fmt::layer().json().flatten_event(true)))
        .init();
    for w in &cfg.warnings {
        tracing::warn!("config: {w}");
    }
    if let Err(e) = cfg.refuse_unimplemented() {
        tracing::error!("{e}");
        eprintln!("ringmq: {e}");
        return ExitCode::from(e.exit_code());
    }
    let password = match &cfg.main.default_password {
        DefaultPassword::Plain(p) => p.clone(),
        DefaultPassword::Hash(_) => unreachable!("refused by refuse_unimplemented"),
    };
    // The broker's own links log in over loopback with this (see
    // `InternalSecret`): made fresh at each start, never stored.
    let internal_secret = match internal_secret() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("reading /dev/urandom: {e}");
            eprintln!("ringmq: reading /dev/urandom: {e}");
            return ExitCode::FAILURE;
        }
    };
    let links_login = ringmq::links::connect::InternalLogin {
        user: cfg.main.default_user.clone(),
        secret: internal_secret.clone(),
    };
    let core = ringmq::core::CoreConfig {
        data_dir: cfg.main.data_dir.clone(),
        frame_max: cfg.amqp.frame_max_bytes,
        channel_max: cfg.amqp.channel_max,
        heartbeat_secs: cfg.amqp.heartbeat_secs,
        max_message_bytes: cfg.amqp.max_message_bytes,
        store: ringmq_store::StoreConfig {
            segment_bytes: cfg.main.segment_bytes,
            free_disk_min_bytes: cfg.main.free_disk_min_effective_bytes(),
            ..Default::default()
        },
        sync: cfg.main.sync,
        default_user: (
            cfg.main.default_user.clone(),
            password,
            cfg.main.default_user_only_loopback,
        ),
        consumer_timeout_ms: cfg.main.consumer_timeout_ms,
        load_definitions: cfg.main.load_definitions.clone(),
        max_consumers_per_channel: cfg.amqp.max_consumers_per_channel,
        handshake_timeout_ms: cfg.amqp.handshake_timeout_ms,
        default_stream_offset: cfg.main.default_stream_offset,
        internal_secret: Some(internal_secret),
    };
    // The certificates and keys are read now: a bad file stops the start with
    // its name, before anything listens. AMQPS and HTTPS share them (as
    // LavinMQ's `tls_cert`/`tls_key`).
    let tls = if cfg.amqp.tls_port.is_some() || cfg.mgmt.tls_port.is_some() {
        match ringmq::tls::TlsAcceptor::load(&tls_settings(&cfg)) {
            Ok(acceptor) => Some(acceptor),
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("ringmq: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    let log_level = std::cell::Cell::new(cfg.main.log_level);
    let reload_tls = tls.clone();
    let reload: ringmq::io::Reload = std::rc::Rc::new(move || {
        // The same arguments and environment as at start: the file may have changed.
        let new = Config::from_args_and_env(std::env::args().skip(1), env_vars()).map_err(|e| e.to_string())?;
        // The certificates first: if one is bad, nothing changes (the old ones
        // keep serving) and the error names it.
        let certs = match &reload_tls {
            Some(t) => {
                let files = t.reload(&tls_settings(&new)).map_err(|e| e.to_string())?;
                let names: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
                format!("TLS certificates reloaded ({}), ", names.join(", "))
            }
            None => String::new(),
        };
        let (old_level, new_level) = (log_level.get(), new.main.log_level);
        filter_handle
            .modify(|f| *f = tracing_subscriber::EnvFilter::new(new_level.as_str()))
            .map_err(|e| e.to_string())?;
        log_level.set(new_level);
        Ok(format!(
            "{certs}log level {} -> {} (other settings take effect at the next start)",
            old_level.as_str(),
            new_level.as_str()
        ))
    });
    let amqps = (cfg.amqp.tls_port.zip(tls.clone())).map(|(port, acceptor)| ringmq::io::AmqpsListen {
        port,
        acceptor,
        proxy_protocol: cfg.amqp.tls_proxy_protocol,
    });
    let https = (cfg.mgmt.tls_port.zip(tls.clone())).map(|(port, acceptor)| (cfg.mgmt.bind.clone(), port, acceptor));
    let listen = ringmq::io::ListenConfig {
        bind: cfg.amqp.bind.clone(),
        amqp_port: cfg.amqp.port,
        amqp_proxy_protocol: cfg.amqp.tcp_proxy_protocol,
        amqps,
        unix: cfg.amqp.unix_path.clone().map(|path| ringmq::io::UnixListen {
            path,
            proxy_protocol: cfg.amqp.unix_proxy_protocol,
        }),
        mqtt: cfg.mqtt.port.map(|port| ringmq::io::MqttListen {
            bind: cfg.mqtt.bind.clone(),
            port,
            settings: cfg.mqtt.settings(),
        }),
        tcp_nodelay: cfg.amqp.tcp_nodelay,
        max_connections: cfg.amqp.max_connections as usize,
        data_dir: cfg.main.data_dir.clone(),
        free_disk_min_bytes: cfg.main.free_disk_min_effective_bytes(),
        mem_high_watermark_bytes: cfg.main.mem_high_watermark.bytes(ringmq::io::memory::ram_bytes()),
        backend: cfg.main.io,
        shards: cfg.main.shards,
        // The management API and metrics listeners, started by the transport
        // once AMQP listens.
        services: Some(
            ringmq::http::services(ringmq::http::HttpConfig {
                api: cfg.mgmt.port.map(|p| (cfg.mgmt.bind.clone(), p)),
                https,
                metrics: cfg.mgmt.metrics_port.map(|p| (cfg.mgmt.metrics_bind.clone(), p)),
                unix: cfg.mgmt.unix_path.clone(),
                control: cfg.mgmt.control_unix_path.clone(),
                tls: tls.clone(),
            })
            // Dynamic shovels: their supervisor, on the same shard.
            .and(ringmq::shovel::services(links_login.clone()))
            // Federation links: their supervisor, on the same shard.
            .and(ringmq::federation::services(links_login)),
        ),
        // systemd's readiness socket (Type=notify): part of how the process was
        // started, not a setting, so not in `config`.
        notify_socket: std::env::var_os("NOTIFY_SOCKET"),
        reload: Some(reload),
        confirm_gate: None,
    };
    tracing::info!(version = env!("CARGO_PKG_VERSION"), data_dir = %cfg.main.data_dir.display(), "starting ringmq");
    let run = if cfg.clustering.enabled {
        // Follows until it leads; then the broker, its confirms waiting for
        // the in-sync replicas (`cluster::node`).
        let node = ringmq::cluster::node::NodeConfig::from_config(&cfg);
        tracing::info!(node = node.me, etcd = ?node.etcd_endpoints, "clustering: joining the election");
        ringmq::cluster::node::run(node, |gate, services| {
            ringmq::io::run(
                core,
                ringmq::io::ListenConfig {
                    confirm_gate: Some(gate),
                    services: Some(match listen.services {
                        Some(s) => s.and(services),
                        None => services,
                    }),
                    ..listen
                },
            )
        })
        .map_err(|e| std::io::Error::other(e.to_string()))
    } else {
        ringmq::io::run(core, listen)
    };
    match run {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("ringmq: {e}");
            ExitCode::FAILURE
        }
    }
}

/// 32 bytes from the kernel's generator, as the links' secret.
fn internal_secret() -> std::io::Result<ringmq::core::config::InternalSecret> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(ringmq::core::config::InternalSecret::from_random(bytes))
}

/// The TLS listeners' settings: `[main]`'s certificate, versions, suites and
/// client verification, and the `[sni:HOST]` sections.
fn tls_settings(cfg: &Config) -> ringmq::tls::TlsSettings {
    let m = &cfg.main;
    let cert = m.tls_cert_path.clone().unwrap_or_default();
    let key = m.tls_key_path.clone().unwrap_or_default();
    ringmq::tls::TlsSettings {
        min_version: m.tls_min_version,
        ciphers: m.tls_ciphers.clone(),
        verify_peer: m.tls_verify_peer,
        ca_cert_path: m.tls_ca_cert_path.clone(),
        fail_if_no_peer_cert: m.tls_fail_if_no_peer_cert,
        // Checked when the configuration was read.
        cert_login: ringmq::tls::CertLogin::parse(
            &m.tls_cert_login_from,
            m.tls_cert_login_san_type,
            m.tls_cert_login_san_index,
        )
        .unwrap_or_default(),
        sni: (cfg.sni.iter())
            .map(|s| ringmq::tls::SniHost {
                host: s.host.clone(),
                amqp: host_tls(s.effective(cfg, SniListener::Amqp)),
                http: host_tls(s.effective(cfg, SniListener::Http)),
            })
            .collect(),
        ..ringmq::tls::TlsSettings::new(cert, key)
    }
}

fn host_tls(e: ringmq::config::SniEffective) -> ringmq::tls::HostTls {
    ringmq::tls::HostTls {
        cert_path: e.cert_path,
        key_path: e.key_path,
        min_version: e.min_version,
        ciphers: e.ciphers,
        verify_peer: e.verify_peer,
        ca_cert_path: e.ca_cert_path,
    }
}
