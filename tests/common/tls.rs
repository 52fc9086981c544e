//! TLS fixtures: certificates made for the test (rcgen; RSA keys from the
//! openssl CLI, which ring cannot generate), a broker with an AMQPS listener,
//! and a blocking rustls client that speaks the first step of AMQP.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use super::{Broker, WAIT};

/// The transport backends every TLS test runs on.
pub const BACKENDS: [&str; 2] = ["uring", "epoll"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    EcdsaP256,
    EcdsaP384,
    Ed25519,
    Rsa2048,
}

/// A CA and a server certificate for `localhost` and 127.0.0.1 signed by it.
pub struct Pki {
    pub dir: tempfile::TempDir,
    /// The CA certificate, PEM (what clients trust).
    pub ca_pem: String,
    pub ca_der: CertificateDer<'static>,
    pub ca_path: PathBuf,
    /// The server's certificate followed by the CA's (a chain), PEM.
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    /// The CA's key and name, to sign more certificates (clients', other hosts').
    pub issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

fn key_pair(kind: KeyKind) -> rcgen::KeyPair {
    match kind {
        KeyKind::EcdsaP256 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
        KeyKind::EcdsaP384 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap(),
        KeyKind::Ed25519 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap(),
        KeyKind::Rsa2048 => {
            let out = std::process::Command::new("openssl")
                .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
                .output()
                .expect("the openssl CLI (Debian's openssl package; .ci/run installs it)");
            assert!(out.status.success(), "openssl genpkey: {out:?}");
            rcgen::KeyPair::from_pem(std::str::from_utf8(&out.stdout).unwrap()).unwrap()
        }
    }
}

/// A fresh CA (ECDSA P-256) and a `kind` server key and certificate, as files.
pub fn pki(kind: KeyKind) -> Pki {
    pki_named(kind, "ringmq test CA", None)
}

/// As [`pki`], with the CA's CN and (if given) the server certificate's end
/// of validity.
pub fn pki_named(kind: KeyKind, ca_name: &str, not_after: Option<(i32, u8, u8)>) -> Pki {
    let dir = tempfile::Builder::new().prefix("ringmq-tls-").tempdir().unwrap();
    let ca_key = key_pair(KeyKind::EcdsaP256);
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, ca_name);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = key_pair(kind);
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
    if let Some((y, m, d)) = not_after {
        params.not_after = rcgen::date_time_ymd(y, m, d);
    }
    let cert = params.signed_by(&key, &issuer).unwrap();
    let p = |name: &str| dir.path().join(name);
    std::fs::write(p("ca.pem"), ca.pem()).unwrap();
    std::fs::write(p("cert.pem"), cert.pem() + &ca.pem()).unwrap();
    std::fs::write(p("key.pem"), key.serialize_pem()).unwrap();
    Pki {
        ca_pem: ca.pem(),
        ca_der: ca.der().clone(),
        ca_path: p("ca.pem"),
        cert_path: p("cert.pem"),
        key_path: p("key.pem"),
        dir,
        issuer,
    }
}

impl Pki {
    /// A certificate signed by this CA: for `names` (subject alternative
    /// names) with subject CN `cn`, as a chain (leaf, CA) and its key.
    pub fn issue(&self, cn: &str, names: &[&str]) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = key_pair(KeyKind::EcdsaP256);
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let chain = vec![cert.der().clone(), self.ca_der.clone()];
        (chain, PrivateKeyDer::try_from(key.serialize_der()).unwrap())
    }

    /// [`Self::issue`] written to `NAME.pem` (chain) and `NAME.key` in this
    /// Pki's folder; the paths.
    pub fn issue_files(&self, file: &str, cn: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let key = key_pair(KeyKind::EcdsaP256);
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (c, k) = (
            self.dir.path().join(format!("{file}.pem")),
            self.dir.path().join(format!("{file}.key")),
        );
        std::fs::write(&c, cert.pem() + &self.ca_pem).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }
}

/// A rustls client config trusting `ca` that presents `chain` and `key`.
pub fn client_config_with_cert(
    ca: &CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    Arc::new(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .unwrap(),
    )
}

/// A broker on backend `io` with an AMQPS listener on a free port and `extra`
/// flags; returns it and the AMQPS address (read from its log line).
pub fn broker(pki: &Pki, io: &str, extra: &[&str]) -> (Broker, SocketAddr) {
    let cert = pki.cert_path.to_str().unwrap();
    let key = pki.key_path.to_str().unwrap();
    let io = format!("--io={io}");
    let mut args = vec![io.as_str(), "--amqps-port", "0", "--cert", cert, "--key", key];
    args.extend_from_slice(extra);
    let b = Broker::with_args(&args);
    let addr = amqps_addr(&b);
    (b, addr)
}

/// The AMQPS listener's address from the broker's "AMQPS listener started" line.
pub fn amqps_addr(b: &Broker) -> SocketAddr {
    let deadline = Instant::now() + WAIT;
    loop {
        let log = std::fs::read_to_string(b.log_path()).unwrap_or_default();
        if let Some(line) = log.lines().rev().find(|l| l.contains("AMQPS listener started")) {
            let at = line.find("addr=").expect("addr= in the listener line") + 5;
            let addr = line[at..].split_whitespace().next().unwrap();
            return addr.parse().unwrap_or_else(|e| panic!("{addr}: {e}"));
        }
        assert!(Instant::now() < deadline, "no AMQPS listener in the log:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A rustls client config trusting `ca`, for the given protocol versions.
pub fn client_config(
    ca: &CertificateDer<'static>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    client_config_with(ca, versions, rustls::crypto::ring::default_provider())
}

pub fn client_config_with(
    ca: &CertificateDer<'static>,
    versions: &[&'static rustls::SupportedProtocolVersion],
    provider: rustls::crypto::CryptoProvider,
) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    Arc::new(
        ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// Connects with TLS, sends the AMQP protocol header and reads the first frame:
/// Ok with the stream once connection.start (class 10, method 10) came back.
pub fn amqp_start(addr: SocketAddr, config: Arc<ClientConfig>) -> Result<TlsStream, String> {
    amqp_start_as(addr, config, "localhost")
}

/// [`amqp_start`] asking for server name `name` (SNI).
pub fn amqp_start_as(addr: SocketAddr, config: Arc<ClientConfig>, name: &str) -> Result<TlsStream, String> {
    let sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let name = ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
    let conn = ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let mut tls = StreamOwned::new(conn, sock);
    tls.write_all(b"AMQP\x00\x00\x09\x01").map_err(|e| e.to_string())?;
    let mut head = [0u8; 11];
    tls.read_exact(&mut head).map_err(|e| e.to_string())?;
    // Frame type 1 (method), channel 0, size, then class 10 method 10.
    if head[0] != 1 || head[7..11] != [0, 10, 0, 10] {
        return Err(format!("not connection.start: {head:?}"));
    }
    Ok(tls)
}

/// Open descriptors of process `pid`.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}
