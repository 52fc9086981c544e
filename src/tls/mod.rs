//! TLS configuration shared by the listeners that speak it (AMQPS in `io`,
//! HTTPS in `http`): the certificate chain and key read and checked once at
//! start, the protocol versions and cipher suites chosen, and the log line for
//! connections that fail their handshake. How a connection runs TLS is its
//! listener's business: the AMQP backends drive rustls over their own buffers
//! (`io::tls`), the HTTP server uses `tokio-rustls` under hyper.
//!
//! The crypto provider is rustls's `ring` one. aws-lc-rs (rustls's default)
//! would build here too (on x86_64 Linux it needs only a C compiler), but ring is
//! a fraction of the C to compile on these 2-core machines, and was already in
//! the lock file. What it lacks is the post-quantum hybrid key exchange
//! (X25519MLKEM768) that rustls offers only with aws-lc-rs: clients get X25519,
//! P-256 or P-384.

mod error;
mod load;
pub mod login;
pub mod x509;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::ServerConfig;

pub use error::{FileRole, TlsError};
pub use login::CertLogin;
pub use x509::{CertFacts, SanKind};

use crate::config::TlsVersion;

/// What a TLS listener needs from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM: the certificate first, then its chain.
    pub cert_path: PathBuf,
    /// PEM: PKCS#8, PKCS#1 (RSA) or SEC1 (EC); RSA, ECDSA or Ed25519.
    pub key_path: PathBuf,
    pub min_version: TlsVersion,
    /// rustls's suite names (`config::CIPHER_SUITES`), in preference order; empty: all.
    pub ciphers: Vec<String>,
    /// `tls_verify_peer`: AMQPS clients are asked for a certificate, which is
    /// verified against `ca_cert_path`.
    pub verify_peer: bool,
    /// `tls_ca_cert`: PEM, the CAs client certificates must chain to.
    pub ca_cert_path: Option<PathBuf>,
    /// `tls_fail_if_no_peer_cert`: with `verify_peer`, a client without a
    /// certificate is refused (else it may log in with a password).
    pub fail_if_no_peer_cert: bool,
    /// `[sni:HOST]` sections: other certificates and settings, chosen by the
    /// name the client asks for; the ones above serve every other name.
    pub sni: Vec<SniHost>,
    /// `tls_cert_login_from` and the SAN settings: which name of a verified
    /// client certificate SASL EXTERNAL logs in as.
    pub cert_login: CertLogin,
}

impl TlsSettings {
    /// One certificate and key, the default versions and suites, no client
    /// certificates, no SNI.
    pub fn new(cert_path: PathBuf, key_path: PathBuf) -> TlsSettings {
        TlsSettings {
            cert_path,
            key_path,
            min_version: TlsVersion::V1_2,
            ciphers: Vec::new(),
            verify_peer: false,
            ca_cert_path: None,
            fail_if_no_peer_cert: true,
            sni: Vec::new(),
            cert_login: CertLogin::default(),
        }
    }
}

/// An `[sni:HOST]` section: the certificate and settings for clients that ask
/// for `host` (`*.example.com`: any one label before `example.com`, as LavinMQ),
/// per listener, with what the section leaves out already taken from `[main]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SniHost {
    /// Lowercase.
    pub host: String,
    pub amqp: HostTls,
    /// `verify_peer` is not read: HTTPS asks for no client certificate.
    pub http: HostTls,
}

/// One listener's TLS settings for one `[sni:HOST]` name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostTls {
    pub cert_path: PathBuf,
    /// LavinMQ's rule: without `tls_key`, the key is read from the certificate's file.
    pub key_path: PathBuf,
    pub min_version: TlsVersion,
    pub ciphers: Vec<String>,
    pub verify_peer: bool,
    pub ca_cert_path: Option<PathBuf>,
}

impl HostTls {
    /// `[main]`'s settings, for the names no section names.
    fn of_main(s: &TlsSettings) -> HostTls {
        HostTls {
            cert_path: s.cert_path.clone(),
            key_path: s.key_path.clone(),
            min_version: s.min_version,
            ciphers: s.ciphers.clone(),
            verify_peer: s.verify_peer,
            ca_cert_path: s.ca_cert_path.clone(),
        }
    }
}

/// A certificate file in use, for the expiry health check and metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFile {
    pub path: PathBuf,
    pub role: FileRole,
    /// The `[sni:HOST]` section it comes from; None: the default certificate
    /// (or the CA bundle).
    pub sni: Option<String>,
    /// `notAfter` of each certificate in the file, seconds since the epoch.
    pub not_after_unix: Vec<i64>,
}

/// A listener's TLS configuration, loaded at start (certificates and keys
/// read and checked against each other) and shared by its connections; a
/// [`reload`](Self::reload) swaps in a new one for the handshakes that follow,
/// while open connections keep the one they started with.
#[derive(Clone)]
pub struct TlsAcceptor {
    live: Arc<RwLock<Arc<Loaded>>>,
    role: Role,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Amqp,
    Http,
}

/// One load of the files: the configuration of each listener and what was read.
pub(crate) struct Loaded {
    /// AMQPS: client certificates asked for when `verify_peer`.
    amqp: Arc<Configs>,
    /// HTTPS: offers `http/1.1` by ALPN and asks for no client certificate
    /// (the API logs in with passwords, as RabbitMQ's management listener by
    /// default).
    http: Arc<Configs>,
    files: Vec<CertFile>,
    /// Read with the files, so a SIGHUP's new setting reaches new connections.
    cert_login: CertLogin,
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsAcceptor(..)")
    }
}

impl TlsAcceptor {
    /// Reads the certificates, keys and CA bundle and builds the rustls
    /// configurations; the error names the file and what is wrong with it.
    pub fn load(s: &TlsSettings) -> Result<TlsAcceptor, TlsError> {
        Ok(TlsAcceptor {
            live: Arc::new(RwLock::new(Arc::new(load::build(s)?))),
            role: Role::Amqp,
        })
    }

    /// Reads the files again (SIGHUP) and, if every one is good, uses them for
    /// the handshakes from now on; on an error nothing changes. Open
    /// connections keep the configuration they started with. The session
    /// cache starts empty, so no new connection resumes a session verified
    /// with the old files.
    pub fn reload(&self, s: &TlsSettings) -> Result<Vec<CertFile>, TlsError> {
        let new = Arc::new(load::build(s)?);
        let files = new.files.clone();
        *self.live.write().unwrap_or_else(PoisonError::into_inner) = new;
        Ok(files)
    }

    fn current(&self) -> Arc<Loaded> {
        Arc::clone(&self.live.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The rustls configurations for the next connection of the listener and
    /// the name its client certificate logs in as (one read of the live files).
    pub(crate) fn session_parts(&self) -> (Arc<Configs>, CertLogin) {
        let loaded = self.current();
        (self.of_role(&loaded), loaded.cert_login)
    }

    /// The rustls configurations for the next connection of the listener.
    pub(crate) fn configs(&self) -> Arc<Configs> {
        self.of_role(&self.current())
    }

    fn of_role(&self, loaded: &Loaded) -> Arc<Configs> {
        match self.role {
            Role::Amqp => Arc::clone(&loaded.amqp),
            Role::Http => Arc::clone(&loaded.http),
        }
    }

    /// The same files for the HTTPS listener: `http/1.1` offered by ALPN,
    /// no client certificate asked for. Reloads reach it too.
    pub fn for_http(&self) -> TlsAcceptor {
        TlsAcceptor {
            live: Arc::clone(&self.live),
            role: Role::Http,
        }
    }

    /// The certificate files in use and when their certificates expire.
    pub fn files(&self) -> Vec<CertFile> {
        self.current().files.clone()
    }
}

/// A listener's rustls configurations: `[main]`'s, and one per `[sni:HOST]`
/// section. One is chosen once the ClientHello is read
/// (`rustls::server::Acceptor`), by the name the client asks for, so each name
/// has its own certificate, client verification, versions and suites; a
/// session resumes only with the configuration (and cache) it was made with.
#[derive(Debug)]
pub(crate) struct Configs {
    default: Arc<ServerConfig>,
    /// Lowercase host names; `*.example.com` for a wildcard section.
    by_name: HashMap<String, Arc<ServerConfig>>,
}

impl Configs {
    /// The one configuration when no section exists: no ClientHello needs to
    /// be read before the connection is made.
    pub(crate) fn only(&self) -> Option<&Arc<ServerConfig>> {
        self.by_name.is_empty().then_some(&self.default)
    }

    /// The configuration for the name the client asked for (rustls hands it
    /// over lowercased; None from a client that sends no name, as one
    /// connecting to an address).
    pub(crate) fn pick(&self, name: Option<&str>) -> &Arc<ServerConfig> {
        by_name(&self.by_name, &self.default, name)
    }
}

/// An exact `[sni:HOST]`, then a `*.` one for the parent domain, else the
/// default: a client that sends no name or an unknown one is still served, as
/// by LavinMQ.
fn by_name<'a, T>(map: &'a HashMap<String, T>, default: &'a T, name: Option<&str>) -> &'a T {
    let found = name.and_then(|n| {
        map.get(n).or_else(|| {
            let parent = &n[n.find('.')? + 1..];
            map.get(&format!("*.{parent}"))
        })
    });
    found.unwrap_or(default)
}

/// A refused or failed TLS connection: one DEBUG line each, and an INFO line
/// at most every [`FAILURE_INFO_EVERY_MS`] with how many were not logged at
/// INFO since, so that a scan or a flood of plain-text clients on the TLS port
/// is seen without flooding the log.
pub fn log_failure(peer: Option<std::net::SocketAddr>, why: &str) {
    static LAST_INFO_MS: AtomicU64 = AtomicU64::new(0);
    static NOT_LOGGED: AtomicU64 = AtomicU64::new(0);
    let peer = peer.map(|p| p.to_string()).unwrap_or_else(|| "?".into());
    tracing::debug!(%peer, error = why, "TLS connection failed");
    let now = crate::sys::now_ms();
    let last = LAST_INFO_MS.load(Ordering::Relaxed);
    if last != 0 && now.saturating_sub(last) < FAILURE_INFO_EVERY_MS {
        NOT_LOGGED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    LAST_INFO_MS.store(now, Ordering::Relaxed);
    let before = NOT_LOGGED.swap(0, Ordering::Relaxed);
    tracing::info!(
        %peer,
        error = why,
        failures_not_logged_before = before,
        "TLS connection failed (one line per 10 s at this level; all at debug)"
    );
}

const FAILURE_INFO_EVERY_MS: u64 = 10_000;
