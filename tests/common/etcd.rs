//! An etcd of a test's own (Debian's `etcd-server`, `.ci/run` installs it) on
//! free loopback ports, in a temporary directory; killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct EtcdProc {
    child: Child,
    _dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`, its client endpoint.
    pub endpoint: String,
}

impl Drop for EtcdProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts one and waits until it listens (without the binary the test fails).
pub fn start_etcd() -> EtcdProc {
    assert!(
        Command::new("etcd").arg("--version").output().is_ok(),
        "no etcd binary: apt-get install etcd-server"
    );
    let [client, peer] = super::free_ports::<2>();
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new("etcd")
        .env_remove("ETCD_NAME")
        .args(["--name", "t", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg(format!("--listen-client-urls=http://127.0.0.1:{client}"))
        .arg(format!("--advertise-client-urls=http://127.0.0.1:{client}"))
        .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
        .arg(format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"))
        .arg(format!("--initial-cluster=t=http://127.0.0.1:{peer}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn etcd");
    let endpoint = format!("127.0.0.1:{client}");
    let e = EtcdProc {
        child,
        _dir: dir,
        endpoint,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&e.endpoint).is_err() {
        assert!(Instant::now() < deadline, "etcd did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    e
}
