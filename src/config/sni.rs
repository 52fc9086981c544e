//! `[sni:HOST]` sections, LavinMQ 2.9's way of serving several certificates on
//! one TLS port: a client that asks for `HOST` (TLS's server name indication)
//! gets the section's certificate, every other client the `tls_cert` of
//! `[main]`.
//!
//! ```ini
//! [sni:mq.example.com]
//! tls_cert = /etc/ringmq/mq.example.com.pem
//! tls_key = /etc/ringmq/mq.example.com.key
//!
//! [sni:*.example.org]
//! tls_cert = /etc/ringmq/wildcard.pem
//! ```
//!
//! `tls_cert` and `tls_key` are read (the key from the certificate's file when
//! `tls_key` is left out, as LavinMQ). LavinMQ's other keys there (per-host
//! `tls_verify_peer`, `tls_ca_cert`, versions, ciphers, per-protocol `amqp_*`,
//! `mqtt_*`, `http_*` overrides) are refused by name rather than ignored: one
//! rustls configuration serves every name here, and a per-host client
//! verification that silently did nothing would be worse than none.

use std::path::{Path, PathBuf};

use super::{Config, ConfigError};

/// One `[sni:HOST]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SniConfig {
    /// Lowercase: a DNS name, or `*.` and one (any one label in its place).
    pub host: String,
    pub cert_path: Option<PathBuf>,
    pub key_path: Option<PathBuf>,
    /// Where the section starts, for messages.
    pub file: PathBuf,
    pub line: usize,
}

/// The keys LavinMQ reads in an `[sni:HOST]` section that ringmq does not act on.
const PER_HOST_NOT_SUPPORTED: &[&str] = &[
    "tls_min_version",
    "tls_ciphers",
    "tls_verify_peer",
    "tls_ca_cert",
    "tls_keylog_file",
];

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
        cert_path: None,
        key_path: None,
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
    let protocol_override = ["amqp_", "mqtt_", "http_"]
        .iter()
        .any(|p| key.strip_prefix(p).is_some_and(|k| k.starts_with("tls_")));
    match key {
        "tls_cert" => s.cert_path = Some(super::keys::path(value).map_err(bad)?),
        "tls_key" => s.key_path = Some(super::keys::path(value).map_err(bad)?),
        k if PER_HOST_NOT_SUPPORTED.contains(&k) || protocol_override => {
            return Err(bad(format!(
                "[sni:{}] takes tls_cert and tls_key only; per-host TLS settings are not supported (set them in [main] for every host)",
                s.host
            )))
        }
        _ => {
            let host = s.host.clone();
            cfg.warnings.push(format!(
                "{}:{line}: unknown key {key} in [sni:{host}], ignored",
                path.display()
            ));
        }
    }
    Ok(())
}

/// Every section names its certificate, and a default one exists for the
/// other names.
pub(super) fn validate(cfg: &Config) -> Result<(), ConfigError> {
    for s in &cfg.sni {
        if s.cert_path.is_none() {
            return Err(ConfigError::Syntax {
                path: s.file.clone(),
                line: s.line,
                message: format!("[sni:{}] has no tls_cert", s.host),
            });
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

    use super::super::{Config, ConfigError};

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
            "{MAIN}[sni:MQ.example.com]\ntls_cert = /a.pem\ntls_key = /a.key\n\n[sni:*.example.org]\ntls_cert = /w.pem\nfoo = 1\n"
        ))
        .unwrap();
        assert_eq!(cfg.sni.len(), 2);
        assert_eq!(cfg.sni[0].host, "mq.example.com");
        assert_eq!(cfg.sni[0].key_path.as_deref(), Some(std::path::Path::new("/a.key")));
        assert_eq!(cfg.sni[1].host, "*.example.org");
        assert_eq!(cfg.sni[1].key_path, None, "the key from the certificate's file");
        assert!(cfg
            .warnings
            .iter()
            .any(|w| w.contains("unknown key foo in [sni:*.example.org]")));
    }

    #[test]
    fn what_would_do_nothing_is_refused() {
        for (text, want) in [
            (format!("{MAIN}[sni:a.example.com]\ntls_key = /k\n"), "has no tls_cert"),
            (
                format!("{MAIN}[sni:a.example.com]\ntls_cert = /c\ntls_verify_peer = true\n"),
                "per-host TLS settings are not supported",
            ),
            (
                format!("{MAIN}[sni:a.example.com]\ntls_cert = /c\namqp_tls_cert = /x\n"),
                "per-host TLS settings are not supported",
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
