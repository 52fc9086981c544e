//! `[sni:HOST]` sections, LavinMQ 2.9's way of serving several certificates and
//! TLS settings on one TLS port: a client that asks for `HOST` (TLS's server
//! name indication) gets the section's certificate and settings, every other
//! client those of `[main]`.
//!
//! ```ini
//! [sni:mq.example.com]
//! tls_cert = /etc/ringmq/mq.example.com.pem
//! tls_key = /etc/ringmq/mq.example.com.key
//! tls_verify_peer = true
//! tls_ca_cert = /etc/ringmq/mq-clients-ca.pem
//! tls_min_version = 1.3
//!
//! [sni:*.example.org]
//! tls_cert = /etc/ringmq/wildcard.pem
//! http_tls_cert = /etc/ringmq/wildcard-api.pem
//! ```
//!
//! Read, as LavinMQ reads them: `tls_cert`, `tls_key` (the key from the
//! certificate's file when left out), `tls_min_version`, `tls_ciphers`,
//! `tls_verify_peer`, `tls_ca_cert`, and the same with `amqp_` or `http_` in
//! front for one listener only (`amqp_tls_cert` serves AMQPS, `http_tls_cert`
//! HTTPS). Two differences from LavinMQ, both on the side of refusing more:
//! a setting a section leaves out is `[main]`'s (LavinMQ's section starts from
//! OpenSSL's defaults: no client verification even where `[main]` asks for
//! it), and `tls_verify_peer` asks AMQPS clients only, as it does in `[main]`
//! (the HTTP API logs in with passwords), so `http_tls_verify_peer` and
//! `http_tls_ca_cert` are refused by name. Refused by name too:
//! `tls_keylog_file` (no key log anywhere in ringmq); `mqtt_tls_*` keys are
//! ignored with a warning (the MQTT listener has no TLS yet).

use std::path::{Path, PathBuf};

use super::{Config, ConfigError, TlsVersion};

/// One `[sni:HOST]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SniConfig {
    /// Lowercase: a DNS name, or `*.` and one (any one label in its place).
    pub host: String,
    /// The keys without a prefix: for both listeners.
    pub tls: SniKeys,
    /// `amqp_tls_*`: for AMQPS only, over `tls`.
    pub amqp: SniKeys,
    /// `http_tls_*`: for HTTPS only, over `tls` (no client verification keys).
    pub http: SniKeys,
    /// Where the section starts, for messages.
    pub file: PathBuf,
    pub line: usize,
}

/// The TLS keys of a section (or of its `amqp_`/`http_` overrides); None: not set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SniKeys {
    pub cert_path: Option<PathBuf>,
    pub key_path: Option<PathBuf>,
    pub min_version: Option<TlsVersion>,
    /// rustls's suite names, in preference order (as `[main]`'s `tls_ciphers`).
    pub ciphers: Option<Vec<String>>,
    pub verify_peer: Option<bool>,
    pub ca_cert_path: Option<PathBuf>,
}

/// A listener's settings for one host, with what the section leaves out taken
/// from the other keys of the section and then from `[main]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SniEffective {
    pub cert_path: PathBuf,
    /// LavinMQ's rule: the listener's `tls_key`, else the section's, else the
    /// certificate's file.
    pub key_path: PathBuf,
    pub min_version: TlsVersion,
    pub ciphers: Vec<String>,
    /// Always false for HTTPS.
    pub verify_peer: bool,
    pub ca_cert_path: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SniListener {
    Amqp,
    Http,
}

impl SniConfig {
    /// The effective settings of `listener` for this host (`[main]` from `cfg`).
    pub fn effective(&self, cfg: &Config, listener: SniListener) -> SniEffective {
        let (over, m) = (
            match listener {
                SniListener::Amqp => &self.amqp,
                SniListener::Http => &self.http,
            },
            &cfg.main,
        );
        let base = &self.tls;
        let cert_path = (over.cert_path.clone())
            .or_else(|| base.cert_path.clone())
            .unwrap_or_default();
        let amqp = listener == SniListener::Amqp;
        SniEffective {
            key_path: (over.key_path.clone())
                .or_else(|| base.key_path.clone())
                .unwrap_or_else(|| cert_path.clone()),
            cert_path,
            min_version: over.min_version.or(base.min_version).unwrap_or(m.tls_min_version),
            ciphers: (over.ciphers.clone())
                .or_else(|| base.ciphers.clone())
                .unwrap_or_else(|| m.tls_ciphers.clone()),
            verify_peer: amqp && over.verify_peer.or(base.verify_peer).unwrap_or(m.tls_verify_peer),
            ca_cert_path: if amqp {
                (over.ca_cert_path.clone())
                    .or_else(|| base.ca_cert_path.clone())
                    .or_else(|| m.tls_ca_cert_path.clone())
            } else {
                None
            },
        }
    }
}

/// Enters section `[sni:host]`: its index in `cfg.sni` (a host named twice is
/// one section, as in LavinMQ).
pub(super) fn section(cfg: &mut Config, host: &str, line: usize, path: &Path) -> Result<usize, ConfigError> {
    let host = host.trim().to_ascii_lowercase();
    let name = host.strip_prefix("*.").unwrap_or(&host);
    if rustls::pki_types::DnsName::try_from(name).is_err() || name.contains('*') {
        return Err(ConfigError::Syntax {
            path: path.to_owned(),
            line,
            message: format!("[sni:{host}]: not a host name (a DNS name, or *. and one)"),
        });
    }
    if let Some(i) = cfg.sni.iter().position(|s| s.host == host) {
        return Ok(i);
    }
    cfg.sni.push(SniConfig {
        host,
        tls: SniKeys::default(),
        amqp: SniKeys::default(),
        http: SniKeys::default(),
        file: path.to_owned(),
        line,
    });
    Ok(cfg.sni.len() - 1)
}

/// One key of section `at`.
pub(super) fn set(
    cfg: &mut Config,
    at: usize,
    key: &str,
    value: &str,
    line: usize,
    path: &Path,
) -> Result<(), ConfigError> {
    let s = &mut cfg.sni[at];
    let bad = |reason: String| ConfigError::BadFileValue {
        path: path.to_owned(),
        line,
        section: "sni:HOST",
        key: key.to_owned(),
        value: value.to_owned(),
        reason,
    };
    let (keys, rest) = if let Some(rest) = key.strip_prefix("amqp_") {
        (&mut s.amqp, rest)
    } else if let Some(rest) = key.strip_prefix("http_") {
        (&mut s.http, rest)
    } else {
        (&mut s.tls, key)
    };
    let http = key.starts_with("http_");
    match rest {
        "tls_cert" => keys.cert_path = Some(super::keys::path(value).map_err(bad)?),
        "tls_key" => keys.key_path = Some(super::keys::path(value).map_err(bad)?),
        "tls_min_version" => keys.min_version = Some(value.parse().map_err(bad)?),
        "tls_ciphers" => keys.ciphers = Some(super::tls::cipher_list(value).map_err(bad)?),
        "tls_verify_peer" | "tls_ca_cert" if http => {
            return Err(bad(
                "HTTPS does not ask for client certificates (the HTTP API logs in with passwords); tls_verify_peer and tls_ca_cert apply to AMQPS".into(),
            ))
        }
        "tls_verify_peer" => keys.verify_peer = Some(super::keys::boolean(value).map_err(bad)?),
        "tls_ca_cert" => keys.ca_cert_path = Some(super::keys::path(value).map_err(bad)?),
        "tls_keylog_file" => {
            return Err(bad(
                "TLS key logging is not supported (neither in [main] nor per host)".into(),
            ))
        }
        _ => {
            let host = s.host.clone();
            let why = if key.starts_with("mqtt_tls_") {
                "ringmq has no MQTT TLS listener yet"
            } else {
                "unknown key"
            };
            cfg.warnings.push(format!(
                "{}:{line}: {why}: {key} in [sni:{host}], ignored",
                path.display()
            ));
        }
    }
    Ok(())
}

/// Every listener of every section has a certificate, a client verification
/// has its CA bundle, a default certificate exists for the other names, and
/// the versions leave a suite.
pub(super) fn validate(cfg: &Config) -> Result<(), ConfigError> {
    for s in &cfg.sni {
        let at = |message: String| ConfigError::Syntax {
            path: s.file.clone(),
            line: s.line,
            message,
        };
        let host = &s.host;
        if s.tls.cert_path.is_none() && (s.amqp.cert_path.is_none() || s.http.cert_path.is_none()) {
            return Err(at(format!("[sni:{host}] has no tls_cert")));
        }
        let amqp = s.effective(cfg, SniListener::Amqp);
        if amqp.verify_peer && amqp.ca_cert_path.is_none() {
            return Err(at(format!(
                "[sni:{host}]: tls_verify_peer needs tls_ca_cert (in the section or in [main]): the CAs client certificates must chain to"
            )));
        }
        if !amqp.verify_peer && (s.tls.ca_cert_path.is_some() || s.amqp.ca_cert_path.is_some()) {
            return Err(at(format!(
                "[sni:{host}]: tls_ca_cert is set but client certificates are not asked for (tls_verify_peer, in the section or in [main])"
            )));
        }
        for (name, e) in [("amqp", &amqp), ("http", &s.effective(cfg, SniListener::Http))] {
            if e.min_version == TlsVersion::V1_3
                && !e.ciphers.is_empty()
                && !e.ciphers.iter().any(|c| super::is_tls13_suite(c))
            {
                return Err(at(format!(
                    "[sni:{host}] ({name}): tls_ciphers names only TLS 1.2 suites, but tls_min_version is 1.3: no suite is left"
                )));
            }
        }
    }
    if !cfg.sni.is_empty() && (cfg.main.tls_cert_path.is_none() || cfg.main.tls_key_path.is_none()) {
        return Err(ConfigError::Invalid(
            "[sni:HOST] sections need tls_cert and tls_key in [main] too: the certificate for every other name".into(),
        ));
    }
    Ok(())
}
#[cfg(test)]
mod tests {
    use std::io::Write;

    use std::path::Path;

    use super::super::{Config, ConfigError, TlsVersion};
    use super::{SniEffective, SniListener};

    fn load(text: &str) -> Result<Config, ConfigError> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        let path = f.path().to_str().unwrap().to_owned();
        Config::from_args(["-c".into(), path, "-D".into(), "/tmp/d".into()])
    }

    const MAIN: &str = "[main]\ntls_cert = /d.pem\ntls_key = /d.key\n";

    #[test]
    fn sections_are_read_as_lavinmq_writes_them() {
        let cfg = load(&format!(
            "{MAIN}[sni:MQ.example.com]\ntls_cert = /a.pem\ntls_key = /a.key\n\n[sni:*.example.org]\ntls_cert = /w.pem\nfoo = 1\nmqtt_tls_cert = /m.pem\n"
        ))
        .unwrap();
        assert_eq!(cfg.sni.len(), 2);
        assert_eq!(cfg.sni[0].host, "mq.example.com");
        assert_eq!(cfg.sni[0].tls.key_path.as_deref(), Some(Path::new("/a.key")));
        assert_eq!(cfg.sni[1].host, "*.example.org");
        assert_eq!(cfg.sni[1].tls.key_path, None);
        let w = cfg.sni[1].effective(&cfg, SniListener::Amqp);
        assert_eq!(w.key_path, Path::new("/w.pem"), "the key from the certificate's file");
        assert!(cfg
            .warnings
            .iter()
            .any(|w| w.contains("unknown key: foo in [sni:*.example.org]")));
        assert!(cfg
            .warnings
            .iter()
            .any(|w| w.contains("no MQTT TLS listener yet: mqtt_tls_cert")));
    }

    #[test]
    fn per_host_settings_and_what_they_inherit() {
        let cfg = load(&format!(
            "{MAIN}tls_min_version = 1.2\ntls_ciphers = TLS_AES_256_GCM_SHA384:ECDHE-RSA-AES128-GCM-SHA256\n\
             [amqp]\ntls_port = 5671\n[sni:a.example.com]\ntls_cert = /a.pem\ntls_verify_peer = yes\ntls_ca_cert = /ca.pem\n\
             tls_min_version = TLSv1.3\namqp_tls_ca_cert = /amqp-ca.pem\n\
             http_tls_cert = /api.pem\nhttp_tls_key = /api.key\nhttp_tls_min_version = 1.2\n\
             [sni:b.example.com]\ntls_cert = /b.pem\namqp_tls_ciphers = TLS_AES_128_GCM_SHA256\n"
        ))
        .unwrap();
        let a = &cfg.sni[0];
        assert_eq!(a.tls.verify_peer, Some(true));
        let amqp = a.effective(&cfg, SniListener::Amqp);
        assert_eq!(
            amqp,
            SniEffective {
                cert_path: "/a.pem".into(),
                key_path: "/a.pem".into(),
                min_version: TlsVersion::V1_3,
                ciphers: vec![
                    "TLS13_AES_256_GCM_SHA384".into(),
                    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into()
                ],
                verify_peer: true,
                ca_cert_path: Some("/amqp-ca.pem".into()),
            }
        );
        let http = a.effective(&cfg, SniListener::Http);
        assert_eq!(
            (http.cert_path.to_str(), http.key_path.to_str(), http.min_version),
            (Some("/api.pem"), Some("/api.key"), TlsVersion::V1_2)
        );
        assert!(
            !http.verify_peer && http.ca_cert_path.is_none(),
            "HTTPS asks for no certificate"
        );
        let b = cfg.sni[1].effective(&cfg, SniListener::Amqp);
        assert_eq!(b.ciphers, ["TLS13_AES_128_GCM_SHA256"]);
        assert!(!b.verify_peer, "[main] does not verify");
        assert_eq!(
            cfg.sni[1].effective(&cfg, SniListener::Http).ciphers.len(),
            2,
            "[main]'s"
        );

        // [main]'s client verification reaches a section that says nothing,
        // and a section may turn it off.
        let cfg = load(&format!(
            "{MAIN}tls_verify_peer = true\ntls_ca_cert = /ca.pem\n[amqp]\ntls_port = 5671\n\
             [sni:a.example.com]\ntls_cert = /a.pem\n[sni:b.example.com]\ntls_cert = /b.pem\ntls_verify_peer = false\n"
        ));
        let cfg = cfg.unwrap();
        let a = cfg.sni[0].effective(&cfg, SniListener::Amqp);
        assert!(a.verify_peer);
        assert_eq!(a.ca_cert_path.as_deref(), Some(Path::new("/ca.pem")));
        assert!(!cfg.sni[1].effective(&cfg, SniListener::Amqp).verify_peer);
    }

    #[test]
    fn what_would_do_nothing_is_refused() {
        for (text, want) in [
            (format!("{MAIN}[sni:a.example.com]\ntls_key = /k\n"), "has no tls_cert"),
            (
                format!("{MAIN}[sni:a.example.com]\namqp_tls_cert = /k\n"),
                "has no tls_cert",
            ),
            (
                format!("{MAIN}[sni:a.example.com]\ntls_cert = /c\ntls_verify_peer = true\n"),
                "tls_verify_peer needs tls_ca_cert",
            ),
            (
                format!("{MAIN}[sni:a.example.com]\ntls_cert = /c\ntls_ca_cert = /ca\n"),
                "tls_ca_cert is set but client certificates are not asked for",
            ),
            (
                format!("{MAIN}[sni:a.example.com]\ntls_cert = /c\nhttp_tls_verify_peer = true\n"),
                "HTTPS does not ask for client certificates",
            ),
            (
                format!("{MAIN}[sni:a.example.com]\ntls_cert = /c\nhttp_tls_ca_cert = /ca\n"),
                "HTTPS does not ask for client certificates",
            ),
            (
                format!("{MAIN}[sni:a.example.com]\ntls_cert = /c\ntls_keylog_file = /k\n"),
                "key logging is not supported",
            ),
            (
                format!("{MAIN}[sni:a.example.com]\ntls_cert = /c\ntls_min_version = 1.1\n"),
                "RFC 8996",
            ),
            (
                format!("{MAIN}[sni:a.example.com]\ntls_cert = /c\namqp_tls_ciphers = HIGH\n"),
                "unknown cipher suite",
            ),
            (
                format!("{MAIN}[sni:a.example.com]\ntls_cert = /c\ntls_verify_peer = maybe\n"),
                "expected true or false",
            ),
            (
                format!(
                    "{MAIN}[sni:a.example.com]\ntls_cert = /c\ntls_min_version = 1.3\namqp_tls_ciphers = ECDHE-RSA-AES128-GCM-SHA256\n"
                ),
                "(amqp): tls_ciphers names only TLS 1.2 suites",
            ),
            (
                "[sni:a.example.com]\ntls_cert = /c\n".to_owned(),
                "need tls_cert and tls_key in [main]",
            ),
            (format!("{MAIN}[sni:bad host]\ntls_cert = /c\n"), "not a host name"),
            (format!("{MAIN}[sni:a.*.com]\ntls_cert = /c\n"), "not a host name"),
        ] {
            let e = load(&text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
