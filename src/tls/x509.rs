//! What is shown of a certificate: a client's subject, issuer and validity in
//! the management API (RabbitMQ's `peer_cert_*`), its subject's CN for SASL
//! EXTERNAL, and the expiry of our own certificates (the health check and the
//! metric). Pure: DER in, strings and seconds out.

use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

/// The facts of one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    /// RabbitMQ's `peer_cert_subject`: RFC 4514, the last RDN first
    /// (`CN=alice,O=Example`).
    pub subject: String,
    /// `peer_cert_issuer`, the same way.
    pub issuer: String,
    /// `peer_cert_validity`: `2026-01-01T00:00:00Z - 2027-01-01T00:00:00Z`.
    pub validity: String,
    /// The end of the validity, seconds since the epoch.
    pub not_after_unix: i64,
    /// The subject's first common name, as RabbitMQ's `ssl_cert_login_from =
    /// common_name` takes it (None: the subject has no CN, or it is not a string).
    pub common_name: Option<String>,
    /// The subject alternative names of the kinds a login may come from, in
    /// the certificate's order (`ssl_cert_login_san_type` and `_index`).
    pub subject_alt_names: Vec<(SanKind, String)>,
}

/// The kinds of subject alternative name a login may come from (RabbitMQ's
/// `ssl_cert_login_san_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SanKind {
    #[default]
    Dns,
    /// An address, written as Rust and Erlang's `inet:ntoa` write it.
    Ip,
    /// `rfc822Name`.
    Email,
    Uri,
    /// An `otherName` whose value is a string (a Windows UPN, say).
    OtherName,
}

impl std::str::FromStr for SanKind {
    type Err = String;
    fn from_str(s: &str) -> Result<SanKind, String> {
        Ok(match s {
            "dns" => SanKind::Dns,
            "ip" => SanKind::Ip,
            "email" => SanKind::Email,
            "uri" => SanKind::Uri,
            "other_name" => SanKind::OtherName,
            other => return Err(format!("'{other}' is not dns, ip, email, uri or other_name")),
        })
    }
}

/// The names of the certificate's subject alternative name extension that a
/// login may use; others (directory names, X.400 addresses) are left out.
fn subject_alt_names(cert: &X509Certificate<'_>) -> Vec<(SanKind, String)> {
    use x509_parser::extensions::GeneralName;
    let Ok(Some(ext)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    (ext.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::DNSName(s) => Some((SanKind::Dns, (*s).to_owned())),
            GeneralName::RFC822Name(s) => Some((SanKind::Email, (*s).to_owned())),
            GeneralName::URI(s) => Some((SanKind::Uri, (*s).to_owned())),
            GeneralName::IPAddress(b) => ip_text(b).map(|ip| (SanKind::Ip, ip)),
            GeneralName::OtherName(_, value) => other_name_text(value).map(|v| (SanKind::OtherName, v)),
            _ => None,
        })
        .collect()
}

fn ip_text(b: &[u8]) -> Option<String> {
    match b.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(b).ok()?).to_string()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?).to_string()),
        _ => None,
    }
}

/// An otherName's value: `[0] EXPLICIT` around a string (UTF8String,
/// PrintableString, IA5String); None for anything else.
fn other_name_text(value: &[u8]) -> Option<String> {
    use x509_parser::der_parser::ber::BerObjectContent;
    let (_, wrapped) = x509_parser::der_parser::der::parse_der(value).ok()?;
    let inner = match &wrapped.content {
        BerObjectContent::Unknown(any) => x509_parser::der_parser::der::parse_der(any.data).ok()?.1,
        _ => wrapped,
    };
    match inner.content {
        BerObjectContent::UTF8String(s) | BerObjectContent::PrintableString(s) | BerObjectContent::IA5String(s) => {
            Some(s.to_owned())
        }
        _ => None,
    }
}

impl CertFacts {
    /// Parses a DER certificate; `None` if it is not one (a certificate that
    /// rustls accepted always is).
    pub fn from_der(der: &[u8]) -> Option<CertFacts> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let v = cert.validity();
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        Some(CertFacts {
            subject: rdn_sequence(cert.subject()),
            issuer: rdn_sequence(cert.issuer()),
            validity: format!(
                "{} - {}",
                utc_text(v.not_before.timestamp()),
                utc_text(v.not_after.timestamp())
            ),
            not_after_unix: v.not_after.timestamp(),
            common_name,
            subject_alt_names: subject_alt_names(&cert),
        })
    }
}

/// RabbitMQ's names of the attribute types (`rabbit_cert_info:format_rdn`);
/// others are shown by their dotted OID, as there.
const NAMES: &[(&str, &str)] = &[
    ("2.5.4.4", "SN"),
    ("2.5.4.42", "GIVENNAME"),
    ("2.5.4.43", "INITIALS"),
    ("2.5.4.44", "GENERATIONQUALIFIER"),
    ("2.5.4.3", "CN"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.12", "TITLE"),
    ("2.5.4.6", "C"),
    ("2.5.4.5", "SERIALNUMBER"),
    ("2.5.4.65", "PSEUDONYM"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("1.2.840.113549.1.9.1", "EMAILADDRESS"),
    ("2.5.4.9", "STREET"),
    ("0.9.2342.19200300.100.1.1", "UID"),
];

/// A name as RFC 4514 writes it, as RabbitMQ does: RDNs last first, joined by
/// `,`; the attributes of one RDN by `+`; values escaped.
fn rdn_sequence(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter()
        .map(|rdn| {
            rdn.iter()
                .map(|attr| {
                    let oid = attr.attr_type().to_id_string();
                    let ty = NAMES
                        .iter()
                        .find(|(o, _)| *o == oid)
                        .map_or(oid.as_str(), |(_, n)| n)
                        .to_owned();
                    let value = match attr.as_str() {
                        Ok(s) => s.as_bytes(),
                        // BMP, teletex and other strings: their bytes, escaped.
                        Err(_) => attr.as_slice(),
                    };
                    format!("{ty}={}", escape_value(value))
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// RFC 4514's escaping as `rabbit_cert_info:escape_rdn_value` does it: a
/// leading space or `#`, a trailing space and `"+,;<>\` get a backslash;
/// bytes outside printable ASCII are written `\XX` (hex).
fn escape_value(v: &[u8]) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, &c) in v.iter().enumerate() {
        let first = i == 0;
        let last = i + 1 == v.len();
        let edge_space = c == b' ' && (first || last);
        if edge_space || (first && c == b'#') || b"\"+,;<>\\".contains(&c) {
            out.push('\\');
            out.push(c as char);
        } else if !(32..126).contains(&c) {
            out.push_str(&format!("\\{c:02X}"));
        } else {
            out.push(c as char);
        }
    }
    out
}

/// `2026-01-31T23:59:59Z` for seconds since the epoch (UTC).
pub fn utc_text(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Year, month, day of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, proleptic Gregorian).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc_text(0), "1970-01-01T00:00:00Z");
        // `date -u -d @1700000000`: Tue Nov 14 22:13:20 UTC 2023.
        assert_eq!(utc_text(1_700_000_000), "2023-11-14T22:13:20Z");
        // A leap day, and the day after.
        assert_eq!(utc_text(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_text(951_868_800), "2000-03-01T00:00:00Z");
        assert_eq!(utc_text(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(utc_text(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn escaping_as_rabbitmq() {
        assert_eq!(escape_value(b"alice"), "alice");
        assert_eq!(escape_value(b" #a,b+c "), "\\ #a\\,b\\+c\\ ");
        assert_eq!(escape_value(b"#x"), "\\#x");
        assert_eq!(escape_value(b",x~"), "\\,x\\7E");
        assert_eq!(escape_value("é".as_bytes()), "\\C3\\A9");
        assert_eq!(escape_value(b""), "");
    }

    #[test]
    fn subject_issuer_validity_and_cn_of_a_made_certificate() {
        let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Test CA");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example, Inc");
        params.distinguished_name.push(rcgen::DnType::CommonName, "alice");
        params.not_before = rcgen::date_time_ymd(2024, 2, 29);
        params.not_after = rcgen::date_time_ymd(2030, 1, 1);
        let cert = params.signed_by(&key, &issuer).unwrap();
        let f = CertFacts::from_der(cert.der()).unwrap();
        // rcgen writes the CN's RDN first; RFC 4514 (and RabbitMQ) lists the last first.
        assert_eq!(f.subject, "O=Example\\, Inc,CN=alice");
        assert_eq!(f.issuer, "CN=Test CA");
        assert_eq!(f.validity, "2024-02-29T00:00:00Z - 2030-01-01T00:00:00Z");
        assert_eq!(f.common_name.as_deref(), Some("alice"));
        assert_eq!(f.not_after_unix, 1_893_456_000);
        assert!(CertFacts::from_der(b"not a certificate").is_none());
    }
}
