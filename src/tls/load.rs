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

use super::{CertFacts, CertFile, FileRole, Loaded, SniCert, TlsError, TlsSettings};
use crate::config::TlsVersion;

pub(super) fn build(s: &TlsSettings) -> Result<Loaded, TlsError> {
    let provider = Arc::new(provider(&s.ciphers)?);
    let mut files = Vec::new();
    let default = certified_key(&s.cert_path, &s.key_path, &provider, None, &mut files)?;
    let mut by_name = HashMap::new();
    for sni in &s.sni {
        let ck = certified_key(&sni.cert_path, &sni.key_path, &provider, Some(sni), &mut files)?;
        by_name.insert(sni.host.clone(), ck);
    }
    let resolver: Arc<dyn ResolvesServerCert> = Arc::new(SniResolver { default, by_name });
    let verifier = client_verifier(s, &provider, &mut files)?;
    let versions: &[&rustls::SupportedProtocolVersion] = match s.min_version {
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let config = |verifier: Arc<dyn ClientCertVerifier>| -> Result<ServerConfig, TlsError> {
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(versions)
            .map_err(TlsError::Settings)?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::clone(&resolver));
        // `tls_ciphers` is the server's order of preference, as OpenSSL's
        // cipher list is for LavinMQ and RabbitMQ (`honor_cipher_order`).
        config.ignore_client_order = !s.ciphers.is_empty();
        Ok(config)
    };
    let amqp = config(verifier)?;
    let mut http = config(WebPkiClientVerifier::no_client_auth())?;
    http.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Loaded {
        amqp: Arc::new(amqp),
        http: Arc::new(http),
        files,
        cert_login: s.cert_login,
    })
}

/// A chain and its key, checked against each other (and, for an SNI
/// section with a plain host name, against that name); the file is noted.
fn certified_key(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
    sni: Option<&SniCert>,
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
    if let Some(sni) = sni.filter(|s| !s.host.starts_with("*.")) {
        // rustls's own SNI resolver checks that the certificate names the host
        // (a wildcard section has no one name to check it against).
        ResolvesServerCertUsingSni::new()
            .add(&sni.host, ck.clone())
            .map_err(|source| TlsError::SniName {
                host: sni.host.clone(),
                cert: cert_path.to_owned(),
                source,
            })?;
    }
    files.push(cert_file(
        cert_path,
        FileRole::Certificate,
        sni.map(|s| s.host.clone()),
        &certs,
    ));
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
    s: &TlsSettings,
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
    files.push(cert_file(path, FileRole::CaBundle, None, &certs));
    let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider));
    if !s.fail_if_no_peer_cert {
        builder = builder.allow_unauthenticated();
    }
    builder.build().map_err(|e| TlsError::Verifier {
        path: path.clone(),
        why: e.to_string(),
    })
}

/// The certificate for the name the client asked for (an exact `[sni:HOST]`,
/// then a `*.` one for its parent domain), else the default one: a client
/// that sends no name (one connecting to an address) or an unknown one still
/// gets a certificate, as from LavinMQ.
#[derive(Debug)]
struct SniResolver {
    default: Arc<CertifiedKey>,
    /// Lowercase host names; `*.example.com` for a wildcard section.
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

impl SniResolver {
    fn pick(&self, name: Option<&str>) -> Arc<CertifiedKey> {
        let found = name.and_then(|n| {
            self.by_name.get(n).or_else(|| {
                let parent = &n[n.find('.')? + 1..];
                self.by_name.get(&format!("*.{parent}"))
            })
        });
        Arc::clone(found.unwrap_or(&self.default))
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // rustls hands the name over lowercased (a DNS name, never an address).
        Some(self.pick(hello.server_name()))
    }
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
        let key = |n: u8| {
            let k = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let signing =
                rustls::crypto::ring::sign::any_supported_type(&PrivateKeyDer::try_from(k.serialize_der()).unwrap())
                    .unwrap();
            Arc::new(CertifiedKey::new(vec![CertificateDer::from(vec![n])], signing))
        };
        let r = SniResolver {
            default: key(0),
            by_name: [
                ("a.example.com".to_owned(), key(1)),
                ("*.example.com".to_owned(), key(2)),
            ]
            .into_iter()
            .collect(),
        };
        let first = |name: Option<&str>| r.pick(name).cert[0].as_ref()[0];
        assert_eq!(first(Some("a.example.com")), 1);
        assert_eq!(first(Some("b.example.com")), 2);
        assert_eq!(first(Some("x.b.example.com")), 0, "a wildcard is one label");
        assert_eq!(first(Some("example.com")), 0);
        assert_eq!(first(Some("other.org")), 0);
        assert_eq!(first(Some("nodot")), 0);
        assert_eq!(first(None), 0);
    }
}
