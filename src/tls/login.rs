//! Which name of a client certificate SASL EXTERNAL logs in as: RabbitMQ's
//! `ssl_cert_login_from` (`distinguished_name`, its default; `common_name`;
//! `subject_alternative_name` with `ssl_cert_login_san_type` and
//! `ssl_cert_login_san_index`), here `tls_cert_login_from`,
//! `tls_cert_login_san_type` and `tls_cert_login_san_index`.

use crate::tls::x509::{CertFacts, SanKind};

/// Where the user name comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CertLogin {
    /// The subject as RFC 4514 writes it, as RabbitMQ shows it
    /// (`CN=alice,O=Example`): RabbitMQ's default.
    #[default]
    DistinguishedName,
    /// The subject's first CN.
    CommonName,
    /// The `index`th (from 0) subject alternative name of kind `kind`.
    SubjectAltName { kind: SanKind, index: usize },
}

/// The most SANs of one kind an index may skip: certificates carry a few.
pub const SAN_INDEX_MAX: usize = 1_000;

impl CertLogin {
    /// The setting's value as RabbitMQ spells it (`subject_alt_name` too).
    pub fn parse(from: &str, kind: SanKind, index: usize) -> Result<CertLogin, String> {
        Ok(match from {
            "distinguished_name" => CertLogin::DistinguishedName,
            "common_name" => CertLogin::CommonName,
            "subject_alternative_name" | "subject_alt_name" => CertLogin::SubjectAltName { kind, index },
            other => {
                return Err(format!(
                    "'{other}' is not distinguished_name, common_name or subject_alternative_name"
                ))
            }
        })
    }

    /// The user name `facts` gives, or None when the certificate has no such
    /// name (EXTERNAL is refused then, as RabbitMQ refuses it).
    pub fn name_of(&self, facts: &CertFacts) -> Option<String> {
        match self {
            CertLogin::DistinguishedName => Some(facts.subject.clone()).filter(|s| !s.is_empty()),
            CertLogin::CommonName => facts.common_name.clone(),
            CertLogin::SubjectAltName { kind, index } => (facts.subject_alt_names.iter())
                .filter(|(k, _)| k == kind)
                .nth(*index)
                .map(|(_, v)| v.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> CertFacts {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "alice");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example");
        params.subject_alt_names = vec![
            rcgen::SanType::DnsName("one.example".try_into().unwrap()),
            rcgen::SanType::Rfc822Name("alice@example.com".try_into().unwrap()),
            rcgen::SanType::DnsName("two.example".try_into().unwrap()),
            rcgen::SanType::IpAddress("192.0.2.7".parse().unwrap()),
            rcgen::SanType::IpAddress("2001:db8::1".parse().unwrap()),
            rcgen::SanType::URI("spiffe://example/alice".try_into().unwrap()),
            rcgen::SanType::OtherName((vec![1, 3, 6, 1, 4, 1, 311, 20, 2, 3], "alice@upn".into())),
        ];
        let cert = params.self_signed(&key).unwrap();
        CertFacts::from_der(cert.der()).unwrap()
    }

    #[test]
    fn each_setting_takes_its_name() {
        let f = facts();
        let name = |from: &str, kind: SanKind, index: usize| CertLogin::parse(from, kind, index).unwrap().name_of(&f);
        assert_eq!(
            name("distinguished_name", SanKind::Dns, 0).as_deref(),
            Some("O=Example,CN=alice")
        );
        assert_eq!(name("common_name", SanKind::Dns, 0).as_deref(), Some("alice"));
        let san = |kind, index| name("subject_alternative_name", kind, index);
        assert_eq!(san(SanKind::Dns, 0).as_deref(), Some("one.example"));
        assert_eq!(
            san(SanKind::Dns, 1).as_deref(),
            Some("two.example"),
            "the index counts names of its kind"
        );
        assert_eq!(san(SanKind::Dns, 2), None);
        assert_eq!(san(SanKind::Email, 0).as_deref(), Some("alice@example.com"));
        assert_eq!(san(SanKind::Ip, 0).as_deref(), Some("192.0.2.7"));
        assert_eq!(san(SanKind::Ip, 1).as_deref(), Some("2001:db8::1"));
        assert_eq!(san(SanKind::Uri, 0).as_deref(), Some("spiffe://example/alice"));
        assert_eq!(san(SanKind::OtherName, 0).as_deref(), Some("alice@upn"));
        assert_eq!(
            name("subject_alt_name", SanKind::Uri, 0),
            san(SanKind::Uri, 0),
            "RabbitMQ's other spelling"
        );
    }

    #[test]
    fn a_wrong_setting_is_named() {
        let e = CertLogin::parse("cn", SanKind::Dns, 0).unwrap_err();
        assert!(e.contains("'cn'") && e.contains("common_name"), "{e}");
    }
}
