//! The Docker image as users run it, with the real engine: ports published to the
//! host, a named volume, the first user from the environment, `docker stop` and
//! `docker start`, the HEALTHCHECK, and the transport under seccomp.
//!
//! These need a Docker engine and a built image, so they are `#[ignore]`d in a plain
//! `cargo test`; `.ci/run` builds the image (packaging/docker/ci.sh) and runs them:
//!
//! ```sh
//! RINGMQ_DOCKER_IMAGE=ringmq:ci cargo test --test docker -- --ignored --test-threads=1
//! ```
//!
//! Without `RINGMQ_DOCKER_IMAGE` they fail, so that a CI that forgot the image
//! cannot pass them by skipping.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::load::{assert_none_lost, durable_confirm_channel, publish_confirmed_until, take_all_ids};
use common::{run, within};
use futures_lite::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

const USER: &str = "admin";
const PASS: &str = "s3cret-from-env";

fn image() -> String {
    std::env::var("RINGMQ_DOCKER_IMAGE").expect("RINGMQ_DOCKER_IMAGE names the image under test (see the module docs)")
}

/// Runs `docker ARGS`, asserting success; gives stdout, trimmed.
#[track_caller]
fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("run docker");
    assert!(
        out.status.success(),
        "docker {args:?} failed ({:?}):\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A container and a volume of one test, removed on drop (also after a failure,
/// printing the container's log first).
struct Container {
    name: String,
    volume: String,
}

impl Container {
    /// `docker run -d` of the image with `args` before the image name (ports are
    /// published on 127.0.0.1 to free host ports) and a fresh volume.
    fn start(tag: &str, docker_args: &[&str]) -> Container {
        let name = format!("ringmq-test-{tag}-{}", std::process::id());
        let volume = format!("{name}-data");
        let _ = Command::new("docker").args(["rm", "-f", &name]).output();
        let _ = Command::new("docker").args(["volume", "rm", "-f", &volume]).output();
        let mount = format!("{volume}:/var/lib/ringmq");
        let mut args = vec![
            "run",
            "-d",
            "--name",
            &name,
            "-v",
            &mount,
            "-p",
            "127.0.0.1::5672",
            "-p",
            "127.0.0.1::15672",
        ];
        args.extend_from_slice(docker_args);
        let image = image();
        args.push(&image);
        docker(&args);
        Container { name, volume }
    }

    fn host_port(&self, port: u16) -> u16 {
        let mapped = docker(&["port", &self.name, &format!("{port}/tcp")]);
        let first = mapped.lines().next().unwrap_or_default();
        first
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("docker port {port}: {mapped:?}"))
    }

    fn uri(&self, user: &str, pass: &str) -> String {
        format!("amqp://{user}:{pass}@127.0.0.1:{}/%2f", self.host_port(5672))
    }

    fn logs(&self) -> String {
        let out = Command::new("docker")
            .args(["logs", &self.name])
            .output()
            .expect("docker logs");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    fn health(&self) -> String {
        docker(&["inspect", "--format", "{{.State.Health.Status}}", &self.name])
    }

    /// Waits until Docker's HEALTHCHECK reports healthy (the image's check is
    /// `ringmqctl ping`; its first run is up to the 10 s interval after start).
    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let h = self.health();
            if h == "healthy" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "container {} not healthy after 90 s (status {h}); log:\n{}",
                self.name,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Waits until the AMQP port answers the protocol header (quicker than the
    /// health check, which runs every 10 s).
    fn wait_serving(&self) {
        let addr = format!("127.0.0.1:{}", self.host_port(5672));
        let ctl = env!("CARGO_BIN_EXE_ringmqctl");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !Command::new(ctl)
            .args(["--timeout", "2", "ping", &addr])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            assert!(
                Instant::now() < deadline,
                "{} never served AMQP; log:\n{}",
                self.name,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- log of {}:\n{}", self.name, self.logs());
        }
        let _ = Command::new("docker").args(["rm", "-f", &self.name]).output();
        let _ = Command::new("docker")
            .args(["volume", "rm", "-f", &self.volume])
            .output();
    }
}

async fn connect(uri: &str) -> lapin::Result<Connection> {
    within("connect", Connection::connect(uri, ConnectionProperties::default())).await
}

/// Publishes persistent messages with confirms from the host, consumes some,
/// stops the container (`docker stop`: SIGTERM), starts it again on the same
/// volume, and finds the rest, in order, with their bodies.
#[test]
#[ignore = "needs a Docker engine and RINGMQ_DOCKER_IMAGE (run by .ci/run)"]
fn persistent_messages_survive_docker_stop_and_start() {
    let c = Container::start(
        "restart",
        &[
            "-e",
            &format!("RINGMQ_DEFAULT_USER={USER}"),
            "-e",
            &format!("RINGMQ_DEFAULT_PASS={PASS}"),
        ],
    );
    c.wait_healthy();
    let logs = c.logs();
    // Logs are plain text for `docker logs` and log drivers.
    assert!(!logs.contains('\u{1b}'), "ANSI escapes in the container's log:\n{logs}");
    assert!(logs.contains("AMQP listener started"), "{logs}");

    const TOTAL: usize = 2_000;
    const CONSUMED: usize = 500;
    let queue = "docker-durable";
    run(async {
        // guest is loopback-only: from the host it is refused, as in RabbitMQ.
        let guest = connect(&c.uri("guest", "guest")).await;
        assert!(guest.is_err(), "guest logged in from outside the container");

        // The user from RINGMQ_DEFAULT_USER logs in.
        let (conn, ch) = durable_confirm_channel(&c.uri(USER, PASS), queue).await;
        let mut confirms = Vec::with_capacity(TOTAL);
        for i in 0..TOTAL {
            let body = format!("m{i:05}");
            let props = BasicProperties::default().with_delivery_mode(2);
            let c = ch
                .basic_publish(
                    "".into(),
                    queue.into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    props,
                )
                .await
                .expect("basic.publish");
            confirms.push(c);
        }
        for c in confirms {
            let confirmation = within("confirm", c).await.expect("confirm");
            assert!(confirmation.is_ack(), "publish nacked: {confirmation:?}");
        }
        ch.basic_qos(100, BasicQosOptions::default()).await.expect("qos");
        let mut consumer = ch
            .basic_consume(
                queue.into(),
                "c1".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("basic.consume");
        for i in 0..CONSUMED {
            let d = within("delivery", consumer.next())
                .await
                .expect("consumer open")
                .expect("delivery");
            assert_eq!(String::from_utf8_lossy(&d.data), format!("m{i:05}"));
            d.ack(BasicAckOptions::default()).await.expect("ack");
        }
        // Acks go out before the channel closes; close cleanly so the broker has them.
        ch.close(200, "done".into()).await.expect("channel.close");
        conn.close(200, "done".into()).await.expect("connection.close");
    });

    let started = Instant::now();
    docker(&["stop", &c.name]);
    let stop_secs = started.elapsed().as_secs_f64();
    let exit_code = docker(&["inspect", "--format", "{{.State.ExitCode}}", &c.name]);
    let logs = c.logs();
    assert_eq!(exit_code, "0", "exit code after docker stop; log:\n{logs}");
    assert!(
        logs.contains("shutdown complete"),
        "no clean shutdown in the log:\n{logs}"
    );
    // Docker kills (SIGKILL, exit 137) at 10 s; a clean exit is well before it.
    println!("docker stop took {stop_secs:.2} s");

    docker(&["start", &c.name]);
    c.wait_serving();
    run(async {
        let conn = connect(&c.uri(USER, PASS)).await.expect("log in after restart");
        let ch = conn.create_channel().await.expect("channel");
        let q = ch
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("the durable queue is back");
        assert_eq!(
            q.message_count() as usize,
            TOTAL - CONSUMED,
            "messages after docker stop/start"
        );
        let mut consumer = ch
            .basic_consume(
                queue.into(),
                "c2".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("basic.consume");
        for i in CONSUMED..TOTAL {
            let d = within("delivery", consumer.next())
                .await
                .expect("consumer open")
                .expect("delivery");
            assert_eq!(
                String::from_utf8_lossy(&d.data),
                format!("m{i:05}"),
                "order after restart"
            );
            d.ack(BasicAckOptions::default()).await.expect("ack");
        }
        conn.close(200, "done".into()).await.expect("connection.close");
    });
}

/// The volume, not the container's layer, holds the data: a new container on the
/// same volume (as after `docker compose pull && up`) has the queue, its messages
/// and the user made at the first start, though this one sets no user.
#[test]
#[ignore = "needs a Docker engine and RINGMQ_DOCKER_IMAGE (run by .ci/run)"]
fn a_new_container_on_the_volume_keeps_users_and_messages() {
    let mut c = Container::start(
        "volume",
        &[
            "-e",
            &format!("RINGMQ_DEFAULT_USER={USER}"),
            "-e",
            &format!("RINGMQ_DEFAULT_PASS={PASS}"),
        ],
    );
    c.wait_serving();
    let queue = "docker-volume";
    run(async {
        let (conn, ch) = durable_confirm_channel(&c.uri(USER, PASS), queue).await;
        for i in 0..10 {
            let props = BasicProperties::default().with_delivery_mode(2);
            let body = format!("v{i}");
            let confirm = ch
                .basic_publish(
                    "".into(),
                    queue.into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    props,
                )
                .await
                .expect("publish");
            assert!(within("confirm", confirm).await.expect("confirm").is_ack());
        }
        conn.close(200, "done".into()).await.expect("close");
    });
    docker(&["stop", &c.name]);
    docker(&["rm", &c.name]);
    c.name.push_str("-new");
    let mount = format!("{}:/var/lib/ringmq", c.volume);
    docker(&[
        "run",
        "-d",
        "--name",
        &c.name,
        "-v",
        &mount,
        "-p",
        "127.0.0.1::5672",
        &image(),
    ]);
    c.wait_serving();
    run(async {
        let conn = connect(&c.uri(USER, PASS))
            .await
            .expect("the first start's user logs in");
        let ch = conn.create_channel().await.expect("channel");
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let q = ch
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await
            .expect("queue is back");
        assert_eq!(q.message_count(), 10);
    });
}

/// The transport under seccomp: a profile that refuses io_uring (as Docker's
/// default does since Docker 25) gives the epoll backend with one INFO line;
/// `--security-opt seccomp=unconfined` gives io_uring. Either way it serves.
#[test]
#[ignore = "needs a Docker engine and RINGMQ_DOCKER_IMAGE (run by .ci/run)"]
fn io_backend_follows_seccomp() {
    let dir = tempfile::tempdir().unwrap();
    // Everything allowed but io_uring_setup/enter/register, which fail with EPERM
    // as under Docker's default profile from Docker 25 on (this engine may be older).
    let profile = dir.path().join("no-io_uring.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["io_uring_setup","io_uring_enter","io_uring_register"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
    )
    .unwrap();
    let no_uring = format!("seccomp={}", profile.display());

    let blocked = Container::start("seccomp-blocked", &["--security-opt", &no_uring]);
    blocked.wait_serving();
    let logs = blocked.logs();
    let fallback: Vec<&str> = logs.lines().filter(|l| l.contains("io_uring unavailable")).collect();
    assert_eq!(fallback.len(), 1, "one fallback line expected:\n{logs}");
    assert!(
        fallback[0].contains("INFO"),
        "the fallback is INFO, not a warning: {}",
        fallback[0]
    );
    assert!(fallback[0].contains("seccomp"), "the line says why: {}", fallback[0]);
    assert!(logs.contains("io=\"epoll\""), "{logs}");
    drop(blocked);

    let unconfined = Container::start("seccomp-unconfined", &["--security-opt", "seccomp=unconfined"]);
    unconfined.wait_serving();
    let logs = unconfined.logs();
    assert!(!logs.contains("io_uring unavailable"), "{logs}");
    assert!(logs.contains("io=\"io_uring\""), "{logs}");
    drop(unconfined);

    // The engine's own default profile: whichever backend it allows, the broker
    // serves and says which in its log.
    let default = Container::start("seccomp-default", &[]);
    default.wait_serving();
    let logs = default.logs();
    let io = if logs.contains("io=\"io_uring\"") {
        "io_uring"
    } else {
        "epoll"
    };
    assert!(logs.contains(&format!("io=\"{io}\"")), "{logs}");
    println!("this engine's default seccomp profile gives {io}");
    // Idle: nothing connected, a second after it started serving.
    std::thread::sleep(Duration::from_secs(1));
    let rss_kib = docker(&[
        "exec",
        &default.name,
        "sh",
        "-c",
        "grep VmRSS /proc/1/status | tr -s ' ' | cut -d' ' -f2",
    ]);
    println!("idle RSS ({io}): {rss_kib} KiB");

    // --io=uring asked for by name where it cannot be had: refuse, do not pretend.
    let name = format!("ringmq-test-io-uring-refused-{}", std::process::id());
    let out = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--name",
            &name,
            "--security-opt",
            &no_uring,
            &image(),
            "--io=uring",
        ])
        .output()
        .expect("docker run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "--io=uring without io_uring started:\n{text}");
    assert!(text.contains("--io=uring"), "{text}");
}

/// What the image is: a non-root user, the volume, the ports, the health check.
#[test]
#[ignore = "needs a Docker engine and RINGMQ_DOCKER_IMAGE (run by .ci/run)"]
fn image_metadata() {
    let inspect = |f: &str| docker(&["image", "inspect", "--format", f, &image()]);
    assert_eq!(inspect("{{.Config.User}}"), "ringmq");
    let volumes = inspect("{{json .Config.Volumes}}");
    assert!(volumes.contains("/var/lib/ringmq"), "{volumes}");
    let ports = inspect("{{json .Config.ExposedPorts}}");
    for p in ["5672/tcp", "15672/tcp", "15692/tcp", "1883/tcp"] {
        assert!(ports.contains(p), "{p} not exposed: {ports}");
    }
    let health = inspect("{{json .Config.Healthcheck}}");
    assert!(health.contains("ping"), "{health}");
    let uid = docker(&["run", "--rm", "--entrypoint", "id", &image(), "-u"]);
    assert_ne!(uid, "0", "runs as root");
    let size = inspect("{{.Size}}");
    println!("image size: {size} bytes");
}

/// `docker stop` in the middle of a confirmed publish stream: the broker flushes
/// and closes within Docker's 10 s, and after `docker start` every message whose
/// confirm arrived is there, in order.
#[test]
#[ignore = "needs a Docker engine and RINGMQ_DOCKER_IMAGE (run by .ci/run)"]
fn docker_stop_under_confirmed_load_loses_nothing_confirmed() {
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let c = Container::start(
        "stop-under-load",
        &[
            "-e",
            &format!("RINGMQ_DEFAULT_USER={USER}"),
            "-e",
            &format!("RINGMQ_DEFAULT_PASS={PASS}"),
        ],
    );
    c.wait_serving();
    let uri = c.uri(USER, PASS);
    let confirmed = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let publisher = rt.spawn(publish_confirmed_until(
        uri,
        "under-load",
        confirmed.clone(),
        stop.clone(),
    ));
    std::thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    docker(&["stop", &c.name]);
    println!("docker stop under load took {:.2} s", started.elapsed().as_secs_f64());
    stop.store(true, Ordering::Relaxed);
    let _ = rt.block_on(publisher);
    assert_eq!(
        docker(&["inspect", "--format", "{{.State.ExitCode}}", &c.name]),
        "0",
        "{}",
        c.logs()
    );
    let confirmed = confirmed.lock().unwrap().clone();
    assert!(!confirmed.is_empty(), "nothing confirmed before the stop");
    docker(&["start", &c.name]);
    c.wait_serving();
    let uri = c.uri(USER, PASS);
    let found: Vec<u64> = rt.block_on(async move {
        let conn = connect(&uri).await.expect("log in after restart");
        let ch = conn.create_channel().await.expect("channel");
        take_all_ids(&ch, "under-load").await
    });
    assert_none_lost(&confirmed, &found, "docker stop");
    println!(
        "{} confirmed before docker stop, {} after docker start",
        confirmed.len(),
        found.len()
    );
}
