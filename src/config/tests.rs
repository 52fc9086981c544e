use std::io::Write;

use super::*;

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn parse(list: &[&str]) -> Result<Config, ConfigError> {
    Config::from_args(args(list))
}

/// A temporary config file holding `text`; kept alive by the returned handle.
fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

#[test]
fn data_dir_alone_gives_the_defaults() {
    let cfg = parse(&["-D", "/tmp/d"]).unwrap();
    let mut expected = Config::default();
    expected.main.data_dir = "/tmp/d".into();
    assert_eq!(cfg, expected);

    assert_eq!(cfg.main.log_level, LogLevel::Info);
    assert_eq!(cfg.main.segment_bytes, 8 << 20);
    assert_eq!(cfg.main.free_disk_min_bytes, 0);
    assert_eq!(cfg.main.free_disk_min_effective_bytes(), 16 << 20);
    assert!(cfg.main.sync);
    assert_eq!(cfg.main.io, IoBackend::Auto);
    assert_eq!(cfg.main.shards, 1);
    assert_eq!(cfg.main.default_user, "guest");
    assert_eq!(cfg.main.default_password, DefaultPassword::Plain("guest".into()));
    assert!(cfg.main.default_user_only_loopback);
    assert_eq!(cfg.amqp.bind, "127.0.0.1");
    assert_eq!(cfg.amqp.port, 5672);
    assert_eq!(cfg.amqp.tls_port, None);
    assert_eq!(cfg.amqp.heartbeat_secs, 60);
    assert_eq!(cfg.amqp.frame_max_bytes, 131_072);
    assert_eq!(cfg.amqp.channel_max, 2047);
    assert_eq!(cfg.amqp.max_message_bytes, 128 << 20);
    assert_eq!(cfg.amqp.max_connections, 65_535);
    assert_eq!(cfg.amqp.max_consumers_per_channel, None);
    assert!(cfg.amqp.tcp_nodelay);
    assert_eq!(cfg.mgmt.bind, "127.0.0.1");
    assert_eq!(cfg.mgmt.port, Some(15672));
    assert_eq!(cfg.mgmt.tls_port, None);
    assert!(!cfg.clustering.enabled);
    assert_eq!(cfg.clustering.port, 5679);
    assert_eq!(cfg.clustering.etcd_endpoints, vec!["localhost:2379".to_string()]);
    assert_eq!(cfg.clustering.advertised_uri, None);
    assert!(cfg.warnings.is_empty());
}

#[test]
fn missing_data_dir_is_an_error() {
    let err = parse(&[]).unwrap_err();
    assert!(matches!(err, ConfigError::MissingDataDir), "{err:?}");
    assert!(err.to_string().contains("-D/--data-dir"));
    assert_eq!(err.exit_code(), 2);
}

const LAVINMQ_STYLE: &str = "\
# a lavinmq.ini
[main]
data_dir = /var/lib/x
log_level = debug
segment_size = 33554432
free_disk_min = 1GiB
tcp_nodelay = false
default_user = admin
default_password_hash = +pHuxkR9fCyrrwXjOD4BP4XbzO3l8LJr8YkThMgJ0yVHFRE+
stats_interval = 5000
sync = false
io = epoll
shards = 2

[amqp]
bind = 0.0.0.0
port = 5673
heartbeat = 30
frame_max = 65536
channel_max = 100
max_message_size = 1048576
max_consumers_per_channel = 10
max_connections = 1000

[mgmt]
bind = 0.0.0.0
port = -1

[mqtt]
port = 1883

[clustering]
enabled = true
bind = 10.0.0.1
port = 5680
etcd_endpoints = a:2379, b:2379
advertised_uri = tcp://node1:5680
";

#[test]
fn file_is_parsed() {
    let f = file(LAVINMQ_STYLE);
    let cfg = parse(&["-c", f.path().to_str().unwrap()]).unwrap();
    assert_eq!(cfg.main.data_dir, PathBuf::from("/var/lib/x"));
    assert_eq!(cfg.main.log_level, LogLevel::Debug);
    assert_eq!(cfg.main.segment_bytes, 32 << 20);
    assert_eq!(cfg.main.free_disk_min_bytes, 1 << 30);
    assert_eq!(cfg.main.free_disk_min_effective_bytes(), 1 << 30);
    assert!(!cfg.amqp.tcp_nodelay);
    assert_eq!(cfg.main.default_user, "admin");
    assert!(matches!(cfg.main.default_password, DefaultPassword::Hash(ref h) if h.starts_with("+pHux")));
    assert!(!cfg.main.sync);
    assert_eq!(cfg.main.io, IoBackend::Epoll);
    assert_eq!(cfg.main.shards, 2);
    assert_eq!(cfg.amqp.bind, "0.0.0.0");
    assert_eq!(cfg.amqp.port, 5673);
    assert_eq!(cfg.amqp.heartbeat_secs, 30);
    assert_eq!(cfg.amqp.frame_max_bytes, 65536);
    assert_eq!(cfg.amqp.channel_max, 100);
    assert_eq!(cfg.amqp.max_message_bytes, 1 << 20);
    assert_eq!(cfg.amqp.max_consumers_per_channel, NonZeroU32::new(10));
    assert_eq!(cfg.amqp.max_connections, 1000);
    assert_eq!(cfg.mgmt.bind, "0.0.0.0");
    assert_eq!(cfg.mgmt.port, None);
    assert!(cfg.clustering.enabled);
    assert_eq!(cfg.clustering.bind, "10.0.0.1");
    assert_eq!(cfg.clustering.port, 5680);
    assert_eq!(
        cfg.clustering.etcd_endpoints,
        vec!["a:2379".to_string(), "b:2379".to_string()]
    );
    assert_eq!(cfg.clustering.advertised_uri.as_deref(), Some("tcp://node1:5680"));
    assert_eq!(cfg.mqtt.port, Some(1883));
    // stats_interval is LavinMQ's but not ours.
    assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
    assert!(
        cfg.warnings[0].contains(":10: unknown key stats_interval in [main]"),
        "{:?}",
        cfg.warnings
    );
}

#[test]
fn flags_override_the_file_whatever_their_position() {
    let f = file(LAVINMQ_STYLE);
    let path = f.path().to_str().unwrap();
    let cfg = parse(&[
        "-p",
        "6000",
        "-c",
        path,
        "-D",
        "/other",
        "--heartbeat=0",
        "--http-port",
        "8080",
    ])
    .unwrap();
    assert_eq!(cfg.amqp.port, 6000);
    assert_eq!(cfg.main.data_dir, PathBuf::from("/other"));
    assert_eq!(cfg.amqp.heartbeat_secs, 0);
    assert_eq!(cfg.mgmt.port, Some(8080));
    // Untouched by flags: still from the file.
    assert_eq!(cfg.amqp.frame_max_bytes, 65536);
}

#[test]
fn bind_sets_amqp_and_http_and_the_specific_flags_win_when_later() {
    let cfg = parse(&["-D", "d", "-b", "0.0.0.0", "--http-bind", "::1"]).unwrap();
    assert_eq!(cfg.amqp.bind, "0.0.0.0");
    assert_eq!(cfg.mgmt.bind, "::1");
}

#[test]
fn bad_value_in_the_file_names_file_line_and_key() {
    let f = file("[main]\ndata_dir = /d\n\n[amqp]\nframe_max = 1000\n");
    let err = parse(&["-c", f.path().to_str().unwrap()]).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            ConfigError::BadFileValue {
                line: 5,
                section: "amqp",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(msg.contains(&format!("{}:5:", f.path().display())), "{msg}");
    assert!(
        msg.contains("frame_max") && msg.contains("\"1000\"") && msg.contains("4096"),
        "{msg}"
    );
}

#[test]
fn file_errors() {
    let syntax = file("[main]\ndata_dir /d\n");
    let err = parse(&["-c", syntax.path().to_str().unwrap()]).unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { line: 2, .. }), "{err:?}");

    let section = file("[main]\ndata_dir = /d\n[ampq]\nport = 1\n");
    let err = parse(&["-c", section.path().to_str().unwrap()]).unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { line: 3, .. }), "{err:?}");
    assert!(err.to_string().contains("[ampq]"));

    let err = parse(&["-c", "/nonexistent/ringmq.ini"]).unwrap_err();
    assert!(matches!(err, ConfigError::ReadFile { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/ringmq.ini"));
}

#[test]
fn data_dir_from_the_file_is_enough() {
    let f = file("[main]\ndata_dir = /from/file\n");
    let cfg = parse(&["--config", f.path().to_str().unwrap()]).unwrap();
    assert_eq!(cfg.main.data_dir, PathBuf::from("/from/file"));
}

#[test]
fn every_flag_parses() {
    let cfg = parse(&[
        "--data-dir=/d",
        "--log-level",
        "trace",
        "--segment-size=16MiB",
        "--free-disk-min=100",
        "--no-sync",
        "--io=uring",
        "--shards=4",
        "--default-user=u",
        "--default-password=p",
        "--default-user-only-loopback=false",
        "--cert=/c.pem",
        "--key=/k.pem",
        "--tls-min-version=1.3",
        "--ciphers=TLS_AES_128_GCM_SHA256:ECDHE-ECDSA-AES256-GCM-SHA384",
        "--amqp-bind=10.0.0.2",
        "--amqp-port=0",
        "--amqps-port=5671",
        "--http-bind=10.0.0.3",
        "--http-port=-1",
        "--https-port=15671",
        "--heartbeat=10",
        "--frame-max=4096",
        "--channel-max=65535",
        "--max-message-size=512MiB",
        "--max-connections=10",
        "--max-consumers-per-channel=3",
        "--tcp-nodelay=no",
        "--amqp-unix-path=/run/a.sock",
        "--amqp-proxy-protocol=2",
        "--amqps-proxy-protocol=1",
        "--amqp-unix-proxy-protocol=true",
        "--http-unix-path=/run/h.sock",
        "--clustering",
        "--clustering-bind=10.0.0.4",
        "--clustering-port=5000",
        "--clustering-etcd-endpoints=e1:1,e2:2",
        "--clustering-etcd-prefix=p",
        "--clustering-advertised-uri=tcp://me:5000",
        "--clustering-min-isr=2",
    ])
    .unwrap();
    let m = &cfg.main;
    assert_eq!(m.data_dir, PathBuf::from("/d"));
    assert_eq!(m.log_level, LogLevel::Trace);
    assert_eq!(m.segment_bytes, 16 << 20);
    assert_eq!(m.free_disk_min_bytes, 100);
    assert!(!m.sync);
    assert_eq!(m.io, IoBackend::Uring);
    assert_eq!(m.shards, 4);
    assert_eq!(m.default_user, "u");
    assert_eq!(m.default_password, DefaultPassword::Plain("p".into()));
    assert!(!m.default_user_only_loopback);
    assert_eq!(m.tls_cert_path.as_deref(), Some(Path::new("/c.pem")));
    assert_eq!(m.tls_key_path.as_deref(), Some(Path::new("/k.pem")));
    assert_eq!(m.tls_min_version, crate::config::TlsVersion::V1_3);
    assert_eq!(
        m.tls_ciphers,
        ["TLS13_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"]
    );
    let a = &cfg.amqp;
    assert_eq!((a.bind.as_str(), a.port, a.tls_port), ("10.0.0.2", 0, Some(5671)));
    assert_eq!(a.heartbeat_secs, 10);
    assert_eq!(a.frame_max_bytes, 4096);
    assert_eq!(a.channel_max, 65535);
    assert_eq!(a.max_message_bytes, 512 << 20);
    assert_eq!(a.max_connections, 10);
    assert_eq!(a.max_consumers_per_channel, NonZeroU32::new(3));
    assert!(!a.tcp_nodelay);
    assert_eq!(a.unix_path.as_deref(), Some(Path::new("/run/a.sock")));
    assert!(a.tcp_proxy_protocol && a.tls_proxy_protocol && a.unix_proxy_protocol);
    assert_eq!(cfg.mgmt.unix_path.as_deref(), Some(Path::new("/run/h.sock")));
    assert_eq!(
        (cfg.mgmt.bind.as_str(), cfg.mgmt.port, cfg.mgmt.tls_port),
        ("10.0.0.3", None, Some(15671))
    );
    let c = &cfg.clustering;
    assert!(c.enabled);
    assert_eq!((c.bind.as_str(), c.port), ("10.0.0.4", 5000));
    assert_eq!(c.etcd_endpoints, vec!["e1:1".to_string(), "e2:2".to_string()]);
    assert_eq!(c.etcd_prefix, "p");
    assert_eq!(c.advertised_uri.as_deref(), Some("tcp://me:5000"));
    assert_eq!(c.min_isr, 2);
}

#[test]
fn short_flags_and_their_spellings() {
    let cfg = parse(&["-D/d", "-p", "1234", "-b=0.0.0.0", "-d"]).unwrap();
    assert_eq!(cfg.main.data_dir, PathBuf::from("/d"));
    assert_eq!(cfg.amqp.port, 1234);
    assert_eq!(cfg.amqp.bind, "0.0.0.0");
    assert_eq!(cfg.main.log_level, LogLevel::Debug);
    let cfg = parse(&["-D", "/d", "-l", "warn", "--default-password-hash", "h"]).unwrap();
    assert_eq!(cfg.main.log_level, LogLevel::Warn);
    assert_eq!(cfg.main.default_password, DefaultPassword::Hash("h".into()));
}

#[test]
fn flag_errors() {
    let err = parse(&["-D", "/d", "--nope"]).unwrap_err();
    assert!(
        matches!(err, ConfigError::UnknownFlag(ref f) if f == "--nope"),
        "{err:?}"
    );
    let err = parse(&["-D", "/d", "stray"]).unwrap_err();
    assert!(matches!(err, ConfigError::UnknownFlag(_)), "{err:?}");
    let err = parse(&["-D"]).unwrap_err();
    assert!(
        matches!(err, ConfigError::MissingFlagValue(ref f) if f == "-D"),
        "{err:?}"
    );
    let err = parse(&["-D", "/d", "--no-sync=1"]).unwrap_err();
    assert!(matches!(err, ConfigError::UnexpectedFlagValue(_)), "{err:?}");
    let err = parse(&["-D", "/d", "-p", "70000"]).unwrap_err();
    assert!(
        matches!(err, ConfigError::BadFlagValue { ref flag, .. } if flag == "-p"),
        "{err:?}"
    );
    assert!(err.to_string().contains("70000"));
}

#[test]
fn values_out_of_range_are_rejected() {
    for bad in [
        &["--frame-max=4095"][..],
        &["--channel-max=0"],
        &["--channel-max=65536"],
        &["--log-level=loud"],
        &["--io=kqueue"],
        &["--shards=0"],
        &["--max-connections=0"],
        &["--max-message-size=513MiB"],
        &["--segment-size=100"],
        &["--tcp-nodelay=maybe"],
        &["--amqps-port=-2"],
        &["--tls-min-version=1.1"],
        &["--tls-min-version=1.4"],
        &["--ciphers=HIGH:!aNULL"],
        &["--ciphers=TLS_AES_128_GCM_SHA256:RC4-SHA"],
        &["--clustering-etcd-endpoints=,"],
        &["--default-user="],
    ] {
        let mut list = vec!["-D", "/d"];
        list.extend_from_slice(bad);
        let err = parse(&list).unwrap_err();
        assert!(matches!(err, ConfigError::BadFlagValue { .. }), "{bad:?}: {err:?}");
    }
}

#[test]
fn settings_that_do_not_fit_together() {
    let err = parse(&["-D", "/d", "--amqps-port=5671"]).unwrap_err();
    assert!(
        matches!(err, ConfigError::Invalid(ref m) if m.contains("tls_cert")),
        "{err:?}"
    );
    let err = parse(&["-D", "/d", "--amqps-port=5671", "--cert=/c"]).unwrap_err();
    assert!(
        matches!(err, ConfigError::Invalid(ref m) if m.contains("tls_key")),
        "{err:?}"
    );
    let err = parse(&[
        "-D",
        "/d",
        "--tls-min-version=1.3",
        "--ciphers=ECDHE-RSA-AES128-GCM-SHA256",
    ])
    .unwrap_err();
    assert!(
        matches!(err, ConfigError::Invalid(ref m) if m.contains("no suite is left")),
        "{err:?}"
    );
    // Files without a TLS port: accepted, with a warning (LavinMQ would listen on 5671).
    let cfg = parse(&["-D", "/d", "--cert=/c", "--key=/k"]).unwrap();
    assert!(
        cfg.warnings.iter().any(|w| w.contains("nothing listens with TLS")),
        "{:?}",
        cfg.warnings
    );
    let err = parse(&["-D", "/d", "--http-port=5672"]).unwrap_err();
    assert!(
        matches!(err, ConfigError::Invalid(ref m) if m.contains("amqp and http")),
        "{err:?}"
    );
    // A PROXY setting for a listener that is not there would do nothing.
    let err = parse(&["-D", "/d", "--amqps-proxy-protocol=1"]).unwrap_err();
    assert!(
        matches!(err, ConfigError::Invalid(ref m) if m.contains("no AMQPS listener")),
        "{err:?}"
    );
    let err = parse(&["-D", "/d", "--amqp-unix-proxy-protocol=2"]).unwrap_err();
    assert!(
        matches!(err, ConfigError::Invalid(ref m) if m.contains("no AMQP Unix socket")),
        "{err:?}"
    );
    let err = parse(&["-D", "/d", "--amqp-unix-path=/s", "--http-unix-path=/s"]).unwrap_err();
    assert!(
        matches!(err, ConfigError::Invalid(ref m) if m.contains("both /s")),
        "{err:?}"
    );
    // Different addresses, or port 0, do not collide.
    parse(&["-D", "/d", "--http-port=5672", "--http-bind=127.0.0.2"]).unwrap();
    parse(&["-D", "/d", "-p", "0", "--http-port=0"]).unwrap();
}

#[test]
fn lavinmq_unix_socket_and_proxy_protocol_keys() {
    let f = file(
        "[main]\ndata_dir = /d\n[amqp]\nunix_path = /run/lavinmq/amqp.sock\ntcp_proxy_protocol = 1\n\
         unix_proxy_protocol = 0\n[mgmt]\nunix_path = /run/lavinmq/http.sock\n",
    );
    let cfg = parse(&["-c", f.path().to_str().unwrap()]).unwrap();
    assert_eq!(cfg.amqp.unix_path.as_deref(), Some(Path::new("/run/lavinmq/amqp.sock")));
    assert!(cfg.amqp.tcp_proxy_protocol && !cfg.amqp.unix_proxy_protocol);
    assert_eq!(cfg.mgmt.unix_path.as_deref(), Some(Path::new("/run/lavinmq/http.sock")));
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    // LavinMQ's default: an empty path is no socket.
    let f = file("[main]\ndata_dir = /d\n[amqp]\nunix_path =\n");
    assert_eq!(parse(&["-c", f.path().to_str().unwrap()]).unwrap().amqp.unix_path, None);
    for bad in ["3", "v2", "yes please"] {
        let err = parse(&["-D", "/d", &format!("--amqp-proxy-protocol={bad}")]).unwrap_err();
        assert!(matches!(err, ConfigError::BadFlagValue { .. }), "{bad}: {err:?}");
    }
}

#[test]
fn help_and_version_win_over_everything() {
    let err = parse(&["--nonsense-later-is-still-an-error"]).unwrap_err();
    assert!(matches!(err, ConfigError::UnknownFlag(_)));
    let err = parse(&["-c", "/nonexistent", "--help"]).unwrap_err();
    assert!(matches!(err, ConfigError::HelpRequested));
    assert_eq!(err.exit_code(), 0);
    let help = err.to_string();
    for f in flags::flags() {
        assert!(help.contains(&format!("--{}", f.long)), "help lacks --{}", f.long);
    }
    let err = parse(&["-v"]).unwrap_err();
    assert!(matches!(err, ConfigError::VersionRequested));
    assert_eq!(err.to_string(), format!("ringmq {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn help_defaults_are_the_real_defaults() {
    let base = parse(&["-D", "/d"]).unwrap();
    for f in flags::flags() {
        let Some(default) = f.default else { continue };
        let cfg = parse(&["-D", "/d", &format!("--{}={default}", f.long)]).unwrap();
        assert_eq!(cfg, base, "--help says --{} defaults to {default}", f.long);
    }
}

#[test]
fn passwords_are_not_debug_printed() {
    let cfg = parse(&["-D", "/d", "--default-password=s3cret"]).unwrap();
    assert!(!format!("{cfg:?}").contains("s3cret"));
}

#[test]
fn metrics_listener_defaults_flags_and_both_sections() {
    let cfg = parse(&["-D", "d"]).unwrap();
    assert_eq!(
        (cfg.mgmt.metrics_bind.as_str(), cfg.mgmt.metrics_port),
        ("127.0.0.1", Some(15692))
    );
    let cfg = parse(&["-D", "d", "--metrics-http-port", "-1", "--metrics-http-bind", "::1"]).unwrap();
    assert_eq!((cfg.mgmt.metrics_bind.as_str(), cfg.mgmt.metrics_port), ("::1", None));
    let cfg = parse(&["-D", "d", "--metrics-http-port=0"]).unwrap();
    assert_eq!(cfg.mgmt.metrics_port, Some(0), "0 asks the OS for a free port");
    for section in ["main", "mgmt"] {
        let f = file(&format!(
            "[main]\ndata_dir = /d\n[{section}]\nmetrics_http_port = 9419\nmetrics_http_bind = 0.0.0.0\n"
        ));
        let cfg = parse(&["-c", f.path().to_str().unwrap()]).unwrap();
        assert_eq!(
            (cfg.mgmt.metrics_bind.as_str(), cfg.mgmt.metrics_port),
            ("0.0.0.0", Some(9419)),
            "[{section}]"
        );
    }
}

mod environment;

mod unimplemented {
    use super::super::Config;

    fn refused(args: &[&str]) -> Option<String> {
        let cfg = Config::from_args(args.iter().map(|s| s.to_string())).expect("parses");
        cfg.refuse_unimplemented().err().map(|e| e.to_string())
    }

    #[test]
    fn settings_without_an_implementation_are_refused_not_ignored() {
        for (args, names) in [
            (&["-D", "/d", "--clustering", "--shards", "2"][..], "one shard"),
            (&["-D", "/d", "--clustering", "--io", "uring"][..], "epoll"),
            (
                &["-D", "/d", "--default-password-hash", "abc"][..],
                "--default-password-hash",
            ),
        ] {
            let e = refused(args).unwrap_or_else(|| panic!("{args:?} was accepted"));
            assert!(e.contains(names), "{args:?}: {e}");
            assert!(e.contains("not implemented yet"), "{e}");
        }
    }

    #[test]
    fn defaults_and_implemented_settings_pass() {
        assert_eq!(refused(&["-D", "/d"]), None);
        assert_eq!(
            refused(&["-D", "/d", "--shards", "2", "--max-consumers-per-channel", "3"]),
            None
        );
        let amqps = ["-D", "/d", "--amqps-port", "5671", "--cert", "/c", "--key", "/k"];
        assert_eq!(refused(&amqps), None);
        let https = ["-D", "/d", "--https-port", "15671", "--cert", "/c", "--key", "/k"];
        assert_eq!(refused(&https), None);
    }
}

#[test]
fn bind_takes_a_list_and_repeated_flags_add_addresses() {
    let cfg = parse(&["-D", "d", "--amqp-bind", "127.0.0.1,::1"]).unwrap();
    assert_eq!(cfg.amqp.bind, "127.0.0.1, ::1");
    let cfg = parse(&["-D", "d", "-b", "127.0.0.1", "-b", "::1", "--bind", "10.0.0.1"]).unwrap();
    assert_eq!(cfg.amqp.bind, "127.0.0.1, ::1, 10.0.0.1");
    assert_eq!(cfg.mgmt.bind, "127.0.0.1, ::1, 10.0.0.1");
    // A different flag replaces, as any later flag does.
    let cfg = parse(&["-D", "d", "-b", "127.0.0.1", "--amqp-bind", "::"]).unwrap();
    assert_eq!((cfg.amqp.bind.as_str(), cfg.mgmt.bind.as_str()), ("::", "127.0.0.1"));
    assert!(parse(&["-D", "d", "--amqp-bind", " , "]).is_err());
    let addrs: Vec<&str> = crate::config::bind_addresses("0.0.0.0 ::\t::1").collect();
    assert_eq!(addrs, ["0.0.0.0", "::", "::1"]);
}

#[test]
fn the_mqtt_section_and_its_flags() {
    let d = parse(&["-D", "/x"]).unwrap();
    assert_eq!(d.mqtt.port, Some(1883));
    assert_eq!(d.mqtt.settings(), crate::core::mqtt::Settings::default());
    let f = file("[mqtt]\nbind = 0.0.0.0\nport = 1884\nexchange = mqtt.x\ndefault_vhost = iot\nmax_packet_size = 1MiB\nkeepalive_max = 600\n");
    let cfg = parse(&["-D", "/x", "-c", f.path().to_str().unwrap()]).unwrap();
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    let m = &cfg.mqtt;
    assert_eq!((m.bind.as_str(), m.port), ("0.0.0.0", Some(1884)));
    let s = m.settings();
    assert_eq!((s.exchange.as_str(), s.vhost.as_str()), ("mqtt.x", "iot"));
    assert_eq!((s.max_packet_bytes, s.keepalive_max_secs), (1 << 20, 600));
    // Flags win; -1 turns the listener off; -b binds it with the others.
    let cfg = parse(&[
        "-D",
        "/x",
        "-c",
        f.path().to_str().unwrap(),
        "--mqtt-port",
        "-1",
        "-b",
        "::1",
    ])
    .unwrap();
    assert_eq!((cfg.mqtt.port, cfg.mqtt.bind.as_str()), (None, "::1"));
    let cfg = parse(&[
        "-D",
        "/x",
        "--mqtt-vhost",
        "v",
        "--mqtt-exchange",
        "e",
        "--mqtt-keepalive-max",
        "0",
    ])
    .unwrap();
    assert_eq!(
        (
            cfg.mqtt.vhost.as_str(),
            cfg.mqtt.exchange.as_str(),
            cfg.mqtt.keepalive_max_secs
        ),
        ("v", "e", 0)
    );
    // Bad values are errors naming the key; a port shared with AMQP is refused.
    assert!(parse(&["-D", "/x", "--mqtt-max-packet-size", "1"]).is_err());
    assert!(parse(&["-D", "/x", "--mqtt-exchange", ""]).is_err());
    assert!(parse(&["-D", "/x", "--mqtt-port", "5672"]).is_err());
}
