//! Debian's `haproxy` in front of a broker, in TCP mode, sending the PROXY
//! protocol header as a load balancer would (`send-proxy`, `send-proxy-v2`).
//! A test that needs it fails when it is missing: `.ci/run` installs it.

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::WAIT;

/// A frontend: haproxy listens on a free loopback port and forwards every
/// connection to `backend`, with the header `send` names (`send-proxy` for
/// v1, `send-proxy-v2`, or `""` for none).
pub struct Frontend {
    pub backend: SocketAddr,
    pub send: &'static str,
}

pub struct Haproxy {
    child: Child,
    /// Where each frontend listens, in the order given.
    pub ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

/// The haproxy binary: on PATH, or where Debian puts it.
fn binary() -> String {
    for candidate in ["haproxy", "/usr/sbin/haproxy"] {
        if Command::new(candidate)
            .arg("-v")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return candidate.to_string();
        }
    }
    panic!("haproxy is not installed (apt-get install haproxy; .ci/run installs it): the PROXY protocol tests need it");
}

impl Haproxy {
    pub fn start(frontends: &[Frontend]) -> Haproxy {
        let dir = tempfile::Builder::new().prefix("ringmq-haproxy-").tempdir().unwrap();
        let ports: Vec<u16> = frontends.iter().map(|_| super::free_ports::<1>()[0]).collect();
        let mut cfg = String::from(
            "global\n  maxconn 256\n\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n",
        );
        for (i, (f, port)) in frontends.iter().zip(&ports).enumerate() {
            cfg.push_str(&format!(
                "\nfrontend f{i}\n  bind 127.0.0.1:{port}\n  default_backend b{i}\n\nbackend b{i}\n  server s{i} {} {}\n",
                f.backend, f.send
            ));
        }
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, &cfg).unwrap();
        let log = std::fs::File::create(dir.path().join("haproxy.log")).unwrap();
        // -db: foreground, no daemon; killed on drop.
        let child = Command::new(binary())
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn haproxy");
        let mut h = Haproxy {
            child,
            ports,
            _dir: dir,
        };
        let deadline = Instant::now() + WAIT;
        for port in h.ports.clone() {
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                if let Some(status) = h.child.try_wait().unwrap() {
                    let log = std::fs::read_to_string(h._dir.path().join("haproxy.log")).unwrap_or_default();
                    panic!("haproxy exited with {status}:\n{log}\n{cfg}");
                }
                assert!(Instant::now() < deadline, "haproxy did not listen on {port}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        h
    }

    pub fn addr(&self, frontend: usize) -> SocketAddr {
        format!("127.0.0.1:{}", self.ports[frontend]).parse().unwrap()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
