//! The TLS settings' values: the oldest protocol version a listener accepts and
//! the cipher suites it offers, parsed here so that a bad value is refused with
//! its file line or flag, like every other setting. The io layer's `tls` module
//! turns them into a rustls configuration.

use std::str::FromStr;

/// `tls_min_version`, `--tls-min-version`: the oldest TLS version accepted.
///
/// 1.2 by default: what RabbitMQ (since 3.7 with Erlang 23) and LavinMQ accept
/// and what every maintained AMQP client speaks; 1.0 and 1.1 are deprecated (RFC
/// 8996) and rustls does not implement them, so they cannot be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

impl TlsVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1_2 => "1.2",
            Self::V1_3 => "1.3",
        }
    }
}

impl FromStr for TlsVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // LavinMQ passes its value to OpenSSL, so files spell it either way.
        let v = s.trim().to_ascii_lowercase();
        let v = v.strip_prefix("tlsv").or_else(|| v.strip_prefix("tls")).unwrap_or(&v);
        match v {
            "1.2" | "1_2" => Ok(Self::V1_2),
            "1.3" | "1_3" => Ok(Self::V1_3),
            "1" | "1.0" | "1.1" | "1_1" => {
                Err("TLS 1.0 and 1.1 are not offered (deprecated by RFC 8996); expected 1.2 or 1.3".into())
            }
            _ => Err("expected 1.2 or 1.3".into()),
        }
    }
}

/// The cipher suites that can be chosen: the name rustls gives each (and the
/// one ringmq reports), the IANA name, and OpenSSL's, so that a `tls_ciphers`
/// written for LavinMQ or RabbitMQ (OpenSSL names) works when it names suites
/// we have. All are AEAD with forward secrecy; rustls implements no others.
pub const CIPHER_SUITES: &[(&str, &str, &str)] = &[
    (
        "TLS13_AES_256_GCM_SHA384",
        "TLS_AES_256_GCM_SHA384",
        "TLS_AES_256_GCM_SHA384",
    ),
    (
        "TLS13_AES_128_GCM_SHA256",
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_128_GCM_SHA256",
    ),
    (
        "TLS13_CHACHA20_POLY1305_SHA256",
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_CHACHA20_POLY1305_SHA256",
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ),
];

/// Whether the suite (by the rustls name of [`CIPHER_SUITES`]) is a TLS 1.3 one.
pub fn is_tls13_suite(name: &str) -> bool {
    name.starts_with("TLS13_")
}

/// `tls_ciphers`, `--ciphers`: suites separated by `:` (OpenSSL's way), `,` or
/// spaces, by any of their names; the result holds rustls's names in the given
/// order (the server's preference), without repeats. Empty is the default, all
/// suites (LavinMQ's default is empty too: OpenSSL's list). An unknown name, or an
/// OpenSSL cipher *expression* (`HIGH:!aNULL`), is refused: we would not know
/// what it allows.
pub fn cipher_list(v: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for name in v.split([':', ',', ' ', '\t']).filter(|n| !n.is_empty()) {
        let Some((ours, _, _)) = CIPHER_SUITES
            .iter()
            .find(|(a, b, c)| [a, b, c].iter().any(|n| n.eq_ignore_ascii_case(name)))
        else {
            let known: Vec<&str> = CIPHER_SUITES.iter().map(|(_, iana, _)| *iana).collect();
            return Err(format!("unknown cipher suite {name:?}; known: {}", known.join(", ")));
        };
        if !out.iter().any(|o| o == ours) {
            out.push((*ours).to_owned());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        for (s, v) in [
            ("1.2", TlsVersion::V1_2),
            ("TLSv1.3", TlsVersion::V1_3),
            ("tlsv1.2", TlsVersion::V1_2),
        ] {
            assert_eq!(s.parse::<TlsVersion>(), Ok(v), "{s}");
        }
        let old = "1.1".parse::<TlsVersion>().unwrap_err();
        assert!(old.contains("RFC 8996"), "{old}");
        assert!("TLSv1".parse::<TlsVersion>().is_err());
        assert!("1.4".parse::<TlsVersion>().is_err());
        assert!("".parse::<TlsVersion>().is_err());
    }

    #[test]
    fn ciphers_by_any_name_in_order_without_repeats() {
        let got = cipher_list("ECDHE-RSA-AES128-GCM-SHA256:TLS_AES_256_GCM_SHA384, tls13_aes_256_gcm_sha384").unwrap();
        assert_eq!(
            got,
            ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS13_AES_256_GCM_SHA384"]
        );
        let e = cipher_list("HIGH:!aNULL").unwrap_err();
        assert!(e.contains("unknown cipher suite \"HIGH\""), "{e}");
        assert!(cipher_list("AES128-SHA").is_err(), "no forward secrecy: not offered");
        assert_eq!(cipher_list(""), Ok(vec![]), "the default: all suites");
    }
}
