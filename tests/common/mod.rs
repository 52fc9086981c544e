//! Shared fixture for the integration tests: a broker to talk to, and helpers.
//!
//! With `RINGMQ_TEST_URI` set (e.g. `amqp://guest:guest@127.0.0.1:5673/%2f`) every
//! test runs against that external broker (used to check the tests against real
//! RabbitMQ); otherwise each test starts its own `ringmq` binary on a free port with
//! a fresh data dir, and kills it on drop.
#![allow(dead_code)]

pub mod etcd;
pub mod haproxy;
pub mod http;
pub mod links;
pub mod load;
pub mod peer;
pub mod raw;
pub mod shovel_api;
pub mod streams;
pub mod tls;

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::{Channel, Connection, ConnectionProperties, Consumer};

/// The upper bound for any single wait in a test.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long to watch for something that must not happen.
pub const QUIET: Duration = Duration::from_millis(300);

pub struct Broker {
    uri: String,
    host: String,
    port: u16,
    user: String,
    pass: String,
    external: bool,
    /// Holds the data dir and the log file of a spawned binary.
    root: Option<tempfile::TempDir>,
    child: Option<Child>,
    /// Flags added to every start of a spawned binary.
    extra_args: Vec<String>,
    /// Environment variables set for every start of a spawned binary.
    env: Vec<(String, String)>,
    /// The management API (`http://host:port`, no trailing slash) and the
    /// metrics listener's port (free ports per spawned broker: tests run in parallel).
    http_url: String,
    metrics_port: u16,
    /// The MQTT listener's port (a free one per spawned broker; 1883 for an
    /// external one).
    mqtt_port: u16,
}

impl Broker {
    /// The external broker from `RINGMQ_TEST_URI`, or a freshly spawned `ringmq`.
    pub fn new() -> Broker {
        Self::with_args(&[])
    }

    /// A spawned broker started with these extra flags (the external broker of
    /// `RINGMQ_TEST_URI` ignores them: check [`Broker::skip_external`]).
    pub fn with_args(extra: &[&str]) -> Broker {
        Self::with_args_env(extra, &[])
    }

    /// [`Self::with_args`] with environment variables (`SSL_CERT_FILE`...)
    /// set for the spawned binary.
    pub fn with_args_env(extra: &[&str], env: &[(&str, &str)]) -> Broker {
        if let Ok(uri) = std::env::var("RINGMQ_TEST_URI") {
            let (user, pass, host, port) = parse_uri(&uri);
            return Broker {
                uri,
                host,
                port,
                user,
                pass,
                external: true,
                root: None,
                child: None,
                extra_args: Vec::new(),
                env: Vec::new(),
                // `RINGMQ_TEST_HTTP_URI` names the external broker's API
                // (RabbitMQ's peer: http://127.0.0.1:15673).
                http_url: std::env::var("RINGMQ_TEST_HTTP_URI")
                    .unwrap_or_else(|_| "http://127.0.0.1:15672".into())
                    .trim_end_matches('/')
                    .to_owned(),
                metrics_port: 0,
                // `RINGMQ_TEST_MQTT_PORT`: the external broker's MQTT listener
                // (RabbitMQ's plugin on the peer: 1884).
                mqtt_port: std::env::var("RINGMQ_TEST_MQTT_PORT")
                    .ok()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(1883),
            };
        }
        let root = tempfile::Builder::new()
            .prefix("ringmq-test-")
            .tempdir()
            .expect("temp dir");
        std::fs::create_dir_all(root.path().join("data")).expect("data dir");
        let mut b = Broker {
            uri: String::new(),
            host: "127.0.0.1".into(),
            port: 0,
            user: "guest".into(),
            pass: "guest".into(),
            external: false,
            root: Some(root),
            child: None,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            http_url: String::new(),
            metrics_port: 0,
            mqtt_port: 0,
        };
        // A port chosen by `free_ports` is free only until the broker binds it:
        // another test process may take it in between, and the broker refuses
        // to start on a port in use (AMQP, API or metrics). Then new ports.
        for attempt in 1.. {
            // Distinct ports: chosen one at a time, the kernel handed out
            // the same one twice ("amqp and http both listen on ...", a CI flake).
            let [port, http_port, metrics_port, mqtt_port] = free_ports();
            b.mqtt_port = mqtt_port;
            b.port = port;
            b.uri = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
            b.http_url = format!("http://127.0.0.1:{http_port}");
            b.metrics_port = metrics_port;
            match b.try_start() {
                Ok(()) => break,
                Err(e) if e.contains("Address already in use") && attempt < 5 => {
                    // The log is this broker's: tests read it (one listener
                    // line per shard, say), and the attempt that lost its
                    // port is not the broker they run against.
                    std::fs::write(b.log_path(), b"").expect("log file");
                    continue;
                }
                Err(e) => panic!("{e}"),
            }
        }
        b
    }

    /// True when the tests run against `RINGMQ_TEST_URI` (no restart or kill).
    pub fn is_external(&self) -> bool {
        self.external
    }

    /// Prints a note and returns true when a test needs the spawned binary.
    pub fn skip_external(&self, test: &str) -> bool {
        if self.external {
            eprintln!("{test}: skipped, needs the spawned ringmq binary (RINGMQ_TEST_URI is set)");
        }
        self.external
    }

    /// The management API's base URL, e.g. `http://127.0.0.1:41234`.
    pub fn http_url(&self) -> &str {
        &self.http_url
    }

    /// The MQTT listener's port.
    pub fn mqtt_port(&self) -> u16 {
        self.mqtt_port
    }

    pub fn http_port(&self) -> u16 {
        self.http_url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// The unauthenticated Prometheus listener of a spawned broker.
    pub fn metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.metrics_port)
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The URI with other credentials.
    pub fn uri_with(&self, user: &str, pass: &str) -> String {
        format!("amqp://{user}:{pass}@{}:{}/%2f", self.host, self.port)
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        format!("{}:{}", self.host, self.port).parse().expect("socket address")
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn pass(&self) -> &str {
        &self.pass
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.as_ref().expect("spawned broker").path().join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.root.as_ref().expect("spawned broker").path().join("ringmq.log")
    }

    /// Starts the binary on the same dir and port and waits until the port accepts.
    pub fn start(&mut self) {
        if let Err(e) = self.try_start() {
            panic!("{e}");
        }
    }

    /// [`Self::start`], saying why it failed.
    fn try_start(&mut self) -> Result<(), String> {
        assert!(!self.external, "cannot start an external broker");
        assert!(self.child.is_none(), "broker already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringmq"));
        // `RINGMQ_TEST_IO=uring|epoll|auto` picks the transport backend, so CI can
        // run the whole suite once per backend.
        if let Ok(io) = std::env::var("RINGMQ_TEST_IO") {
            cmd.arg(format!("--io={io}"));
        }
        let child = cmd
            .arg("-D")
            .arg(self.data_dir())
            .args(["--bind", "127.0.0.1", "--amqp-port"])
            .arg(self.port.to_string())
            .arg("--http-port")
            .arg(self.http_port().to_string())
            .arg("--metrics-http-port")
            .arg(self.metrics_port.to_string())
            .arg("--mqtt-port")
            .arg(self.mqtt_port.to_string())
            .arg("--control-unix-path=") // none at /run/ringmq; a test asks for its own
            .args(&self.extra_args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("spawn ringmq");
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        loop {
            let http: SocketAddr = format!("127.0.0.1:{}", self.http_port()).parse().expect("address");
            let pid = self.child.as_ref().map_or(0, |c| c.id());
            // The port must be ours: a port chosen by `free_ports` is free only
            // until the broker binds it, and a broker of another test process
            // may take it in between. Then this one exits (address in use) while
            // the connect below reaches the other one, which its own test may
            // kill at any moment (seen as "connection refused" or "reset" in a
            // later step of an unrelated test).
            if TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_ok()
                && TcpStream::connect_timeout(&http, Duration::from_millis(200)).is_ok()
                && listens_on(pid, self.port)
            {
                return Ok(());
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                return Err(format!(
                    "ringmq exited during start-up with {status}\n{}",
                    self.log_tail()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "ringmq did not accept on port {} within {WAIT:?}\n{}",
                    self.port,
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Graceful stop (SIGTERM, bounded wait for exit 0) and start again.
    pub fn restart(&mut self) {
        self.stop();
        self.start();
    }

    /// SIGTERM and wait; asserts a clean exit.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("broker running");
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM) failed");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                assert!(
                    status.success(),
                    "ringmq exited with {status} on SIGTERM\n{}",
                    self.log_tail()
                );
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("ringmq did not exit within {WAIT:?} of SIGTERM\n{}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` to the spawned broker (which keeps running, unless the
    /// signal ends it).
    pub fn signal(&self, signal: libc::c_int) {
        let child = self.child.as_ref().expect("broker running");
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill({signal}) failed");
    }

    /// Whether the spawned broker process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().expect("wait").is_none())
    }

    /// Waits for the spawned broker to exit (after [`Broker::signal`] ended it).
    pub fn wait_exit(&mut self) {
        let mut child = self.child.take().expect("broker running");
        child.wait().expect("wait");
    }

    /// SIGKILL, no chance to sync anything.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("broker running");
        child.kill().expect("kill -9");
        child.wait().expect("wait");
    }

    /// The spawned broker's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn log_tail(&self) -> String {
        let Some(root) = &self.root else { return String::new() };
        tail(&root.path().join("ringmq.log"), 40)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() && !self.external {
            eprintln!("--- ringmq log tail ---\n{}", self.log_tail());
        }
    }
}

fn tail(path: &Path, n: usize) -> String {
    let Ok(f) = std::fs::File::open(path) else {
        return String::new();
    };
    let lines: Vec<String> = BufReader::new(f).lines().map_while(Result::ok).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `N` distinct free ports: every listener is held until all are chosen.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind port 0"))
        .collect();
    std::array::from_fn(|i| held[i].local_addr().expect("local addr").port())
}

/// Whether process `pid` holds the listening TCP socket of `port` (Linux:
/// the socket's inode in /proc/net/tcp{,6} among the process's open files).
fn listens_on(pid: u32, port: u16) -> bool {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let local_port = local.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
            if *state == "0A" && local_port == Some(port) {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
    })
}

/// `amqp://user:pass@host:port/vhost` → (user, pass, host, port).
fn parse_uri(uri: &str) -> (String, String, String, u16) {
    let rest = uri.strip_prefix("amqp://").expect("amqp:// URI");
    let (auth, rest) = rest.split_once('@').unwrap_or(("guest:guest", rest));
    let (user, pass) = auth.split_once(':').unwrap_or((auth, ""));
    let hostport = rest.split('/').next().unwrap_or(rest);
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse().expect("port")),
        None => (hostport.to_string(), 5672),
    };
    (user.into(), pass.into(), host, port)
}

/// A name no other test (or earlier run against the same RabbitMQ) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}-{:08x}", std::process::id(), rand::random::<u32>())
}

/// Awaits `fut` for at most [`WAIT`], panicking with `what` otherwise.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {WAIT:?}: {what}"),
    }
}

/// The runtime test bodies run on (two workers: the machines are small).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Runs an `async` test body with an overall bound.
pub fn run<F: Future<Output = ()>>(fut: F) {
    runtime().block_on(async {
        match tokio::time::timeout(Duration::from_secs(120), fut).await {
            Ok(()) => {}
            Err(_) => panic!("test body exceeded 120 s"),
        }
    });
}

// ---------------------------------------------------------------- lapin helpers

pub async fn connect(b: &Broker) -> Connection {
    within(
        "lapin connect",
        Connection::connect(b.uri(), ConnectionProperties::default()),
    )
    .await
    .expect("lapin connect")
}

pub async fn channel(conn: &Connection) -> Channel {
    within("channel.open", conn.create_channel())
        .await
        .expect("channel.open")
}

/// A connection and one channel on it.
pub async fn open(b: &Broker) -> (Connection, Channel) {
    let conn = connect(b).await;
    let ch = channel(&conn).await;
    (conn, ch)
}

/// The AMQP error (code, text) carried by a lapin error, or a panic.
pub fn amqp_error(e: &lapin::Error) -> (u16, String) {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(err) => (err.get_id(), err.get_message().to_string()),
        other => panic!("expected an AMQP protocol error, got {other:?}"),
    }
}

/// Asserts a lapin result failed with reply `code` and a text starting with `prefix`.
#[track_caller]
pub fn assert_amqp_err<T: std::fmt::Debug>(r: lapin::Result<T>, code: u16, prefix: &str) {
    let e = match r {
        Ok(v) => panic!("expected error {code} {prefix:?}, got Ok({v:?})"),
        Err(e) => e,
    };
    let (c, text) = amqp_error(&e);
    assert_eq!(c, code, "reply code (text {text:?})");
    assert!(
        text.starts_with(prefix),
        "reply text {text:?} does not start with {prefix:?}"
    );
}

/// The next delivery on `consumer`, bounded by [`WAIT`].
pub async fn next(consumer: &mut Consumer) -> Delivery {
    match within("next delivery", consumer.next()).await {
        Some(Ok(d)) => d,
        Some(Err(e)) => panic!("consumer error: {e:?}"),
        None => panic!("consumer ended"),
    }
}

/// Asserts nothing arrives on `consumer` for [`QUIET`].
pub async fn assert_quiet(consumer: &mut Consumer) {
    if let Ok(item) = tokio::time::timeout(QUIET, consumer.next()).await {
        match item {
            Some(Ok(d)) => panic!("unexpected delivery {:?}", String::from_utf8_lossy(&d.data)),
            Some(Err(e)) => panic!("unexpected consumer error {e:?}"),
            None => panic!("consumer ended unexpectedly"),
        }
    }
}

/// Waits (bounded) until `consumer` ends, as after a server-sent basic.cancel.
pub async fn assert_consumer_ends(consumer: &mut Consumer) {
    match within("consumer end", consumer.next()).await {
        None => {}
        Some(Ok(d)) => panic!("unexpected delivery {:?}", String::from_utf8_lossy(&d.data)),
        Some(Err(e)) => panic!("consumer error instead of end: {e:?}"),
    }
}

/// Polls `f` until it returns true, at most [`WAIT`].
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out after {WAIT:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ------------------------------------------------------- topology and messages

pub use lapin::options::*;
pub use lapin::types::{AMQPValue, FieldTable};
pub use lapin::{BasicProperties, Confirmation, ExchangeKind};

/// A channel in confirm mode.
pub async fn confirm_channel(conn: &Connection) -> Channel {
    let ch = channel(conn).await;
    within("confirm.select", ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .expect("confirm.select");
    ch
}

/// A no-ack consumer on `queue` (tag `c`).
pub async fn consume_no_ack(ch: &Channel, queue: &str) -> Consumer {
    within(
        "basic.consume",
        ch.basic_consume(
            queue.into(),
            "c".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("basic.consume {queue}: {e:?}"))
}

/// Waits (bounded) until the server has closed `conn`.
pub async fn closed_by_server(conn: &Connection) {
    within("the client sees the close", async {
        while conn.status().connected() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// Declares a plain (non-durable) queue; exclusive so it goes away with the test.
pub async fn temp_queue(ch: &Channel, name: &str) {
    declare_queue(
        ch,
        name,
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await;
}

pub async fn declare_queue(ch: &Channel, name: &str, opts: QueueDeclareOptions, args: FieldTable) -> lapin::Queue {
    within("queue.declare", ch.queue_declare(name.into(), opts, args))
        .await
        .unwrap_or_else(|e| panic!("queue.declare {name}: {e:?}"))
}

pub async fn declare_exchange(
    ch: &Channel,
    name: &str,
    kind: ExchangeKind,
    opts: ExchangeDeclareOptions,
    args: FieldTable,
) {
    within("exchange.declare", ch.exchange_declare(name.into(), kind, opts, args))
        .await
        .unwrap_or_else(|e| panic!("exchange.declare {name}: {e:?}"))
}

/// An auto-delete exchange (goes away once its last binding does).
pub async fn temp_exchange(ch: &Channel, name: &str, kind: ExchangeKind) {
    declare_exchange(
        ch,
        name,
        kind,
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await;
}

pub async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str, args: FieldTable) {
    within(
        "queue.bind",
        ch.queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            args,
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("queue.bind {queue} {exchange} {key}: {e:?}"))
}

/// Publishes and waits for the publish (and the confirm, on a confirm channel).
pub async fn publish_with(
    ch: &Channel,
    exchange: &str,
    key: &str,
    body: &[u8],
    props: BasicProperties,
    opts: BasicPublishOptions,
) -> Confirmation {
    let confirm = within(
        "basic.publish",
        ch.basic_publish(exchange.into(), key.into(), opts, body, props),
    )
    .await
    .expect("basic.publish");
    within("publisher confirm", confirm).await.expect("publisher confirm")
}

pub async fn publish(ch: &Channel, exchange: &str, key: &str, body: &[u8]) -> Confirmation {
    publish_with(
        ch,
        exchange,
        key,
        body,
        BasicProperties::default(),
        BasicPublishOptions::default(),
    )
    .await
}

/// basic.get with no-ack until the queue is empty; returns the bodies as text.
pub async fn get_all(ch: &Channel, queue: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(m) = within(
        "basic.get",
        ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }),
    )
    .await
    .expect("basic.get")
    {
        out.push(String::from_utf8_lossy(&m.delivery.data).into_owned());
        assert!(out.len() <= 100_000, "queue {queue} does not drain");
    }
    out
}

/// A field table from string pairs.
pub fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

pub fn lstr(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

/// Message bodies as text.
pub fn bodies(ds: &[Delivery]) -> Vec<String> {
    ds.iter()
        .map(|d| String::from_utf8_lossy(&d.data).into_owned())
        .collect()
}

pub fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}
