//! Runs short scenarios against the real ringmq binary (and against our own
//! sink) and checks counts, not speed: every published message is consumed,
//! every publish is confirmed.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ringmq_client::Uri;
use ringmq_perf::args::{Common, Server, Throughput};
use ringmq_perf::{server, throughput};

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The debug ringmq binary; built first if missing (`CARGO_BIN_EXE_*` does not
/// reach across packages).
fn ringmq_binary() -> PathBuf {
    let root = workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target.join("debug").join("ringmq");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "ringmq", "--bin", "ringmq"])
            .current_dir(&root)
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build -p ringmq failed");
    }
    bin
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Broker {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Broker {
    fn start() -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new(ringmq_binary())
            .arg("-D")
            .arg(dir.path())
            .args(["--amqp-port", &port.to_string()])
            .arg("--mqtt-port=-1")
            // Each test's own: two brokers at once must not both want 15672 and 15692.
            .args(["--http-port", &free_port().to_string()])
            .args(["--metrics-http-port", &free_port().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ringmq");
        wait_for_port(port);
        Broker { child, port, _dir: dir }
    }

    fn common(&self) -> Common {
        Common {
            uri: Uri::parse(&format!("amqp://guest:guest@127.0.0.1:{}", self.port)).unwrap(),
            quiet: true,
            ..Default::default()
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn counted(messages: u64) -> Throughput {
    Throughput {
        pmessages: messages,
        duration: Some(Duration::from_secs(60)),
        ..Default::default()
    }
}

#[test]
fn every_published_message_is_consumed() {
    let broker = Broker::start();
    let s = throughput::run(&broker.common(), &counted(20_000)).unwrap();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(s.published, 20_000);
    assert_eq!(s.consumed, 20_000);

    // Confirms, manual acks with a prefetch, a 1 KiB body.
    let t = Throughput {
        confirm: 100,
        ack: 10,
        prefetch: Some(100),
        size: 1024,
        ..counted(20_000)
    };
    let s = throughput::run(&broker.common(), &t).unwrap();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!((s.published, s.consumed, s.confirmed), (20_000, 20_000, 20_000));

    // basic.get from a prefilled queue, with latency stamps.
    let t = Throughput {
        publishers: 0,
        prefill: 500,
        get: true,
        ack: 1,
        ..counted(0)
    };
    let s = throughput::run(&broker.common(), &t).unwrap();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(s.consumed, 500);
}

#[test]
fn sink_confirms_every_publish() {
    let port = free_port();
    let cfg = Server {
        bind: "127.0.0.1".into(),
        port,
        size: 16,
    };
    // The sink serves until the test process exits.
    std::thread::spawn(move || server::run(&cfg, false));
    wait_for_port(port);
    let common = Common {
        uri: Uri::parse(&format!("amqp://127.0.0.1:{port}")).unwrap(),
        quiet: true,
        ..Default::default()
    };
    let t = Throughput {
        consumers: 0,
        confirm: 500,
        ..counted(50_000)
    };
    let s = throughput::run(&common, &t).unwrap();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!((s.published, s.confirmed), (50_000, 50_000));
}

fn parsed(args: &str) -> Throughput {
    let args: Vec<String> = args.split_whitespace().map(String::from).collect();
    match ringmq_perf::args::parse(&args).unwrap() {
        ringmq_perf::args::Command::Throughput(_, t) => t,
        c => panic!("{c:?}"),
    }
}

/// `--stream`: every consumer reads every message, the prefill's and the
/// publisher's (the run does not end when as many were consumed as
/// published); a filtered consumer gets exactly the 1% that carry its value;
/// one from the prefill's middle gets no more than the stream holds.
#[test]
fn stream_scenarios_count_every_reader() {
    let broker = Broker::start();
    let t = parsed("throughput --stream -x 1 -y 3 --prefill 2000 -C 1000 -c 100 -z 60");
    let s = throughput::run(&broker.common(), &t).unwrap();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!((s.published, s.consumed), (1000, 3 * 3000));
    let t = parsed("throughput --filter-value v --filter-selectivity 1 -y 1 --prefill 10000 -C 10000 -z 60");
    let s = throughput::run(&broker.common(), &t).unwrap();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!((s.published, s.consumed), (10_000, 100 + 100));
    let t = parsed("throughput --stream --stream-offset timestamp -x 0 -y 1 --prefill 5000 -z 60");
    let s = throughput::run(&broker.common(), &t).unwrap();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert!(s.consumed > 0 && s.consumed <= 5000, "{}", s.consumed);
}
