//! `ringmq`: the broker binary. `ringmq -D DIR` is all it takes.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut data_dir = None;
    let mut port = 5672u16;
    let mut bind = "127.0.0.1".to_string();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-D" | "--data-dir" => data_dir = it.next().cloned(),
            "--amqp-port" | "-p" => port = it.next().and_then(|p| p.parse().ok()).unwrap_or(5672),
            "-b" | "--bind" => bind = it.next().cloned().unwrap_or(bind),
            _ => {}
        }
    }
    tracing_subscriber::fmt().with_env_filter("info").init();
    let Some(data_dir) = data_dir else {
        eprintln!("ringmq: -D/--data-dir is required");
        return ExitCode::from(2);
    };
    let data_dir_for_listen = data_dir.clone();
    let core = ringmq::core::CoreConfig {
        data_dir: data_dir.into(),
        frame_max: 131072,
        channel_max: 2048,
        heartbeat_secs: 60,
        max_message_bytes: 128 << 20,
        store: Default::default(),
        sync: true,
    };
    let listen = ringmq::io::ListenConfig {
        bind,
        amqp_port: port,
        tcp_nodelay: true,
        max_connections: 65_535,
        data_dir: std::path::PathBuf::from(&data_dir_for_listen),
        free_disk_min_bytes: 2 * 8 * 1024 * 1024,
    };
    match ringmq::io::run(core, listen) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringmq: {e}");
            ExitCode::FAILURE
        }
    }
}
