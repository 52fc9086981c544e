//! The session against a rustls client, in memory: no socket, no core.

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::ClientConnection;

use super::session::SEAL_BYTES_MAX;
use super::{TlsAcceptor, TlsSession, TlsSettings};
use crate::config::TlsVersion;

struct Pki {
    dir: tempfile::TempDir,
    ca: CertificateDer<'static>,
}

/// A CA and a server certificate for "localhost" signed by it, as files.
fn pki(alg: &'static rcgen::SignatureAlgorithm) -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate_for(alg).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate_for(alg).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.pem() + &ca.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
    Pki {
        ca: ca.der().clone(),
        dir,
    }
}

fn settings(p: &Pki) -> TlsSettings {
    TlsSettings {
        min_version: TlsVersion::V1_2,
        ..TlsSettings::new(p.dir.path().join("cert.pem"), p.dir.path().join("key.pem"))
    }
}

fn client(p: &Pki) -> ClientConnection {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(p.ca.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap()).unwrap()
}

/// Runs the handshake between the two; the server's plaintext goes to `plain`.
fn handshake(c: &mut ClientConnection, s: &mut TlsSession, plain: &mut Vec<u8>) {
    for _ in 0..10 {
        let mut wire = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut wire).unwrap();
        }
        s.receive(&wire, plain).unwrap();
        let mut back = Vec::new();
        s.seal(&mut back);
        c.read_tls(&mut &back[..]).unwrap();
        c.process_new_packets().unwrap();
        if !c.is_handshaking() && !s.is_handshaking() {
            return;
        }
    }
    panic!("no handshake");
}

#[test]
fn plaintext_both_ways_and_the_handshake_reported() {
    for alg in [&rcgen::PKCS_ECDSA_P256_SHA256, &rcgen::PKCS_ED25519] {
        let p = pki(alg);
        let acceptor = TlsAcceptor::load(&settings(&p)).unwrap();
        let mut s = super::session(&acceptor).unwrap();
        let mut c = client(&p);
        let mut plain = Vec::new();
        handshake(&mut c, &mut s, &mut plain);
        let info = s.take_new_info().expect("handshake done");
        assert_eq!(info.protocol, "tlsv1.3");
        assert!(s.take_new_info().is_none(), "reported once");

        // Client to core: exactly the bytes written.
        c.writer().write_all(b"AMQP\x00\x00\x09\x01").unwrap();
        let mut wire = Vec::new();
        c.write_tls(&mut wire).unwrap();
        assert_eq!(s.receive(&wire, &mut plain), Ok(false));
        assert_eq!(plain, b"AMQP\x00\x00\x09\x01");

        // Core to client: a large output goes out in bounded chunks.
        let body: Vec<u8> = (0..3 * SEAL_BYTES_MAX).map(|i| i as u8).collect();
        s.plaintext_slot().expect("nothing queued").extend_from_slice(&body);
        assert!(s.has_pending() && s.plaintext_slot().is_none());
        let mut got = Vec::new();
        let mut rounds = 0;
        loop {
            let mut cipher = Vec::new();
            let done = s.seal(&mut cipher);
            assert!(cipher.len() <= SEAL_BYTES_MAX + 70 * 1024, "{}", cipher.len());
            let mut rd = &cipher[..];
            while !rd.is_empty() {
                c.read_tls(&mut rd).unwrap();
                c.process_new_packets().unwrap();
                let _ = c.reader().read_to_end(&mut got);
            }
            rounds += 1;
            if done {
                break;
            }
        }
        assert!(rounds >= 3, "{rounds}");
        assert_eq!(got, body);
        assert!(!s.has_pending());

        // close_notify from the client ends it.
        c.send_close_notify();
        let mut wire = Vec::new();
        c.write_tls(&mut wire).unwrap();
        assert_eq!(s.receive(&wire, &mut Vec::new()), Ok(true));
    }
}

#[test]
fn plain_amqp_and_garbage_fail_with_an_alert() {
    let p = pki(&rcgen::PKCS_ECDSA_P256_SHA256);
    let acceptor = TlsAcceptor::load(&settings(&p)).unwrap();
    for input in [
        &b"AMQP\x00\x00\x09\x01"[..],
        &[0xff; 300][..],
        &[0x16, 3, 1, 0xff, 0xff, 1][..],
    ] {
        let mut s = super::session(&acceptor).unwrap();
        let mut plain = Vec::new();
        let e = s.receive(input, &mut plain);
        assert!(e.is_err(), "{input:?}: {e:?}");
        assert!(s.failed() && plain.is_empty());
        let mut alert = Vec::new();
        s.seal(&mut alert);
        assert_eq!(alert.first(), Some(&21), "a TLS alert record: {alert:?}");
        assert!(s.receive(b"more", &mut plain).is_err(), "stays failed");
    }
}

#[test]
fn loading_errors_name_the_file() {
    let p = pki(&rcgen::PKCS_ECDSA_P256_SHA256);
    let mut s = settings(&p);
    s.cert_path = p.dir.path().join("missing.pem");
    let e = TlsAcceptor::load(&s).unwrap_err().to_string();
    assert!(e.contains("missing.pem"), "{e}");
    // A key that is not the certificate's.
    let other = pki(&rcgen::PKCS_ECDSA_P256_SHA256);
    let mut s = settings(&p);
    s.key_path = other.dir.path().join("key.pem");
    let e = TlsAcceptor::load(&s).unwrap_err().to_string();
    assert!(e.contains("key"), "{e}");
    // A certificate file given as the key.
    let mut s = settings(&p);
    s.key_path = s.cert_path.clone();
    let e = TlsAcceptor::load(&s).unwrap_err().to_string();
    assert!(e.contains("no private key"), "{e}");
    let mut s = settings(&p);
    std::fs::write(p.dir.path().join("empty.pem"), "not pem").unwrap();
    s.cert_path = p.dir.path().join("empty.pem");
    assert!(TlsAcceptor::load(&s)
        .unwrap_err()
        .to_string()
        .contains("no CERTIFICATE"));
}

#[test]
fn every_configurable_suite_is_in_the_provider() {
    let provider = rustls::crypto::ring::default_provider();
    let names: Vec<&str> = provider
        .cipher_suites
        .iter()
        .filter_map(|s| s.suite().as_str())
        .collect();
    for (ours, _, _) in crate::config::CIPHER_SUITES {
        assert!(names.contains(ours), "{ours} not in {names:?}");
    }
    assert_eq!(names.len(), crate::config::CIPHER_SUITES.len());
    let p = pki(&rcgen::PKCS_ECDSA_P256_SHA256);
    let mut s = settings(&p);
    s.ciphers = vec!["TLS13_CHACHA20_POLY1305_SHA256".into()];
    let acceptor = TlsAcceptor::load(&s).unwrap();
    let mut session = super::session(&acceptor).unwrap();
    let mut c = client(&p);
    handshake(&mut c, &mut session, &mut Vec::new());
    assert_eq!(
        session.take_new_info().unwrap().cipher_suite,
        "TLS13_CHACHA20_POLY1305_SHA256"
    );
}

#[test]
fn with_sni_sections_the_client_hello_is_read_first_even_in_pieces() {
    let p = pki(&rcgen::PKCS_ECDSA_P256_SHA256);
    let mut s = settings(&p);
    let host = crate::tls::HostTls {
        cert_path: s.cert_path.clone(),
        key_path: s.key_path.clone(),
        min_version: TlsVersion::V1_3,
        ciphers: Vec::new(),
        verify_peer: false,
        ca_cert_path: None,
    };
    s.sni = vec![crate::tls::SniHost {
        host: "*.example".into(),
        amqp: host.clone(),
        http: host,
    }];
    let acceptor = TlsAcceptor::load(&s).unwrap();
    let mut session = super::session(&acceptor).unwrap();
    let mut c = client(&p);
    let mut hello = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut hello).unwrap();
    }
    // A byte at a time: nothing is chosen, nothing sent, until it is whole.
    let mut plain = Vec::new();
    let (last, first) = hello.split_last().unwrap();
    for b in first {
        assert_eq!(session.receive(std::slice::from_ref(b), &mut plain), Ok(false));
        let mut out = Vec::new();
        session.seal(&mut out);
        assert!(out.is_empty() && session.is_handshaking());
        assert!(session.take_new_info().is_none());
    }
    assert_eq!(session.receive(std::slice::from_ref(last), &mut plain), Ok(false));
    let mut back = Vec::new();
    session.seal(&mut back);
    assert!(!back.is_empty(), "the server's flight");
    c.read_tls(&mut &back[..]).unwrap();
    c.process_new_packets().unwrap();
    handshake(&mut c, &mut session, &mut plain);
    assert_eq!(session.take_new_info().unwrap().protocol, "tlsv1.3");
    c.writer().write_all(b"AMQP\x00\x00\x09\x01").unwrap();
    let mut wire = Vec::new();
    c.write_tls(&mut wire).unwrap();
    assert_eq!(session.receive(&wire, &mut plain), Ok(false));
    assert_eq!(plain, b"AMQP\x00\x00\x09\x01");

    // Not TLS: refused before any configuration is chosen.
    let mut g = super::session(&acceptor).unwrap();
    assert!(g.receive(b"AMQP\x00\x00\x09\x01", &mut Vec::new()).is_err());
    assert!(g.failed());
}
