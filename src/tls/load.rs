//! Reading the files of a TLS configuration and building rustls's: the
//! certificate chains and keys (the default one and each `[sni:HOST]`
//! section's), the CA bundle client certificates are verified against, the
//! provider with the chosen versions and suites.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert, ResolvesServerCertUsingSni, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use super::{CertFacts, CertFile, Configs, FileRole, HostTls, Loaded, TlsError, TlsSettings};
use crate::config::TlsVersion;

pub(super) fn build(s: &TlsSettings) -> Result<Loaded, TlsError> {
    let mut files = Vec::new();
    let main = HostTls::of_main(s);
    let fail = s.fail_if_no_peer_cert;
    let amqp_default = server_config(&main, None, Listener::Amqp, fail, &mut files)?;
    let http_default = server_config(&main, None, Listener::Http, fail, &mut files)?;
    let (mut amqp, mut http) = (HashMap::new(), HashMap::new());
    for sni in &s.sni {
        let host = Some(sni.host.as_str());
        amqp.insert(
            sni.host.clone(),
            server_config(&sni.amqp, host, Listener::Amqp, fail, &mut files)?,
        );
        http.insert(
            sni.host.clone(),
            server_config(&sni.http, host, Listener::Http, fail, &mut files)?,
        );
    }
    Ok(Loaded {
        amqp: Arc::new(Configs {
            default: amqp_default,
            by_name: amqp,
        }),
        http: Arc::new(Configs {
            default: http_default,
            by_name: http,
        }),
        files,
        cert_login: s.cert_login,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listener {
    Amqp,
    Http,
}

/// One listener's configuration for one name (`sni`; None: `[main]`'s): its
/// certificate, versions, suites and, on AMQPS, client verification.
fn server_config(
    h: &HostTls,
    sni: Option<&str>,
    listener: Listener,
    fail_if_no_peer_cert: bool,
    files: &mut Vec<CertFile>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(provider(&h.ciphers)?);
    let key = certified_key(&h.cert_path, &h.key_path, &provider, sni, files)?;
    let verifier = match listener {
        Listener::Amqp => client_verifier(h, sni, fail_if_no_peer_cert, &provider, files)?,
        Listener::Http => WebPkiClientVerifier::no_client_auth(),
    };
    let versions: &[&rustls::SupportedProtocolVersion] = match h.min_version {
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(TlsError::Settings)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(OneCert(key)));
    // `tls_ciphers` is the server's order of preference, as OpenSSL's
    // cipher list is for LavinMQ and RabbitMQ (`honor_cipher_order`).
    config.ignore_client_order = !h.ciphers.is_empty();
    if listener == Listener::Http {
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
    }
    Ok(Arc::new(config))
}

/// The certificate of a configuration: the name was chosen before (`Configs`).
#[derive(Debug)]
struct OneCert(Arc<CertifiedKey>);

impl ResolvesServerCert for OneCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

/// Notes a file read, once per (path, role, section): AMQPS and HTTPS often
/// share one.
fn note(files: &mut Vec<CertFile>, f: CertFile) {
    if !files
        .iter()
        .any(|g| g.path == f.path && g.role == f.role && g.sni == f.sni)
    {
        files.push(f);
    }
}

/// A chain and its key, checked against each other (and, for an SNI
/// section with a plain host name, against that name); the file is noted.
fn certified_key(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
    sni: Option<&str>,
    files: &mut Vec<CertFile>,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let certs = read_certs(cert_path, FileRole::Certificate)?;
    let key =
        PrivateKeyDer::from_pem_file(key_path).map_err(|e| TlsError::file(FileRole::Key, key_path, pem_error(e)))?;
    let ck = CertifiedKey::from_der(certs.clone(), key, provider).map_err(|source| TlsError::KeyMismatch {
        cert: cert_path.to_owned(),
        key: key_path.to_owned(),
        source,
    })?;
    if let Some(host) = sni.filter(|h| !h.starts_with("*.")) {
        // rustls's own SNI resolver checks that the certificate names the host
        // (a wildcard section has no one name to check it against).
        ResolvesServerCertUsingSni::new()
            .add(host, ck.clone())
            .map_err(|source| TlsError::SniName {
                host: host.to_owned(),
                cert: cert_path.to_owned(),
                source,
            })?;
    }
    note(
        files,
        cert_file(cert_path, FileRole::Certificate, sni.map(str::to_owned), &certs),
    );
    Ok(Arc::new(ck))
}

fn cert_file(path: &Path, role: FileRole, sni: Option<String>, certs: &[CertificateDer<'_>]) -> CertFile {
    CertFile {
        path: path.to_owned(),
        role,
        sni,
        not_after_unix: certs
            .iter()
            .filter_map(|c| CertFacts::from_der(c))
            .map(|f| f.not_after_unix)
            .collect(),
    }
}

/// Without `verify_peer`, no certificate is asked for. With it, the CA bundle
/// is what a client's chain must end in; without `fail_if_no_peer_cert` a
/// client may also send none (and log in with a password).
fn client_verifier(
    s: &HostTls,
    sni: Option<&str>,
    fail_if_no_peer_cert: bool,
    provider: &Arc<CryptoProvider>,
    files: &mut Vec<CertFile>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    if !s.verify_peer {
        return Ok(WebPkiClientVerifier::no_client_auth());
    }
    let Some(path) = &s.ca_cert_path else {
        // The configuration refuses this at start; a caller that builds settings
        // by hand gets the same answer.
        return Err(TlsError::file(
            FileRole::CaBundle,
            Path::new(""),
            "tls_verify_peer needs tls_ca_cert (--ca-cert)",
        ));
    };
    let certs = read_certs(path, FileRole::CaBundle)?;
    let mut roots = rustls::RootCertStore::empty();
    for c in &certs {
        roots.add(c.clone()).map_err(|e| TlsError::Verifier {
            path: path.clone(),
            why: format!("not a usable CA certificate: {e}"),
        })?;
    }
    note(
        files,
        cert_file(path, FileRole::CaBundle, sni.map(str::to_owned), &certs),
    );
    let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider));
    if !fail_if_no_peer_cert {
        builder = builder.allow_unauthenticated();
    }
    builder.build().map_err(|e| TlsError::Verifier {
        path: path.clone(),
        why: e.to_string(),
    })
}

pub(super) fn read_certs(path: &Path, role: FileRole) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::file(role, path, pem_error(e)))?;
    if certs.is_empty() {
        return Err(TlsError::file(
            role,
            path,
            "no CERTIFICATE block in the file (PEM expected)",
        ));
    }
    Ok(certs)
}

fn pem_error(e: rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::Io(e) => e.to_string(),
        Error::NoItemsFound => "no private key in the file (PEM expected)".into(),
        other => format!("not a valid PEM file ({other:?})"),
    }
}

/// The ring provider with the chosen suites, in the chosen order.
fn provider(ciphers: &[String]) -> Result<CryptoProvider, TlsError> {
    let mut p = rustls::crypto::ring::default_provider();
    if ciphers.is_empty() {
        return Ok(p);
    }
    let all = std::mem::take(&mut p.cipher_suites);
    for name in ciphers {
        let suite = all
            .iter()
            .find(|s| s.suite().as_str() == Some(name.as_str()))
            .ok_or_else(|| TlsError::UnknownSuite(name.clone()))?;
        p.cipher_suites.push(*suite);
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sni_picks_exact_then_wildcard_then_default() {
        let map: HashMap<String, u8> = [("a.example.com".to_owned(), 1), ("*.example.com".to_owned(), 2)]
            .into_iter()
            .collect();
        let first = |name: Option<&str>| *super::super::by_name(&map, &0, name);
        assert_eq!(first(Some("a.example.com")), 1);
        assert_eq!(first(Some("b.example.com")), 2);
        assert_eq!(first(Some("x.b.example.com")), 0, "a wildcard is one label");
        assert_eq!(first(Some("example.com")), 0);
        assert_eq!(first(Some("other.org")), 0);
        assert_eq!(first(Some("nodot")), 0);
        assert_eq!(first(None), 0);
    }
}
