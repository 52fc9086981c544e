//! Settings checked against each other at start (each value alone was checked
//! when it was set): what is missing for what is asked, and settings that would
//! do nothing, refused with the reason.

use super::{is_tls13_suite, sni, Config, ConfigError, TlsVersion};

impl Config {
    /// Checks settings against each other; each value alone was checked when set.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.main.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::MissingDataDir);
        }
        let tls_wanted = self.amqp.tls_port.is_some() || self.mgmt.tls_port.is_some();
        if tls_wanted && (self.main.tls_cert_path.is_none() || self.main.tls_key_path.is_none()) {
            return Err(ConfigError::Invalid(
                "a TLS port (amqps/https) is enabled but tls_cert and tls_key (--cert, --key) are not both set".into(),
            ));
        }
        sni::validate(self)?;
        self.validate_client_certificates()?;
        let ciphers = &self.main.tls_ciphers;
        if self.main.tls_min_version == TlsVersion::V1_3
            && !ciphers.is_empty()
            && !ciphers.iter().any(|c| is_tls13_suite(c))
        {
            return Err(ConfigError::Invalid(
                "tls_ciphers (--ciphers) names only TLS 1.2 suites, but tls_min_version is 1.3: no suite is left"
                    .into(),
            ));
        }
        self.check_unix_and_proxy()?;
        self.check_listeners_distinct()
    }

    /// A PROXY setting for a listener that is not there would do nothing: refused.
    fn check_unix_and_proxy(&self) -> Result<(), ConfigError> {
        let a = &self.amqp;
        if a.tls_proxy_protocol && a.tls_port.is_none() {
            return Err(ConfigError::Invalid(
                "tls_proxy_protocol (--amqps-proxy-protocol) is on, but there is no AMQPS listener (tls_port, --amqps-port)"
                    .into(),
            ));
        }
        if a.unix_proxy_protocol && a.unix_path.is_none() {
            return Err(ConfigError::Invalid(
                "unix_proxy_protocol (--amqp-unix-proxy-protocol) is on, but there is no AMQP Unix socket (unix_path in [amqp], --amqp-unix-path)".into(),
            ));
        }
        let control = self.mgmt.control_unix_path.as_ref();
        if let Some(other) = [&a.unix_path, &self.mgmt.unix_path]
            .into_iter()
            .flatten()
            .find(|p| Some(*p) == control)
        {
            return Err(ConfigError::Invalid(format!(
                "control_unix_path (--control-unix-path) is {}, another Unix socket's path too",
                other.display()
            )));
        }
        if let (Some(amqp), Some(http)) = (&a.unix_path, &self.mgmt.unix_path) {
            if amqp == http {
                return Err(ConfigError::Invalid(format!(
                    "the AMQP and HTTP Unix sockets are both {}",
                    amqp.display()
                )));
            }
        }
        Ok(())
    }

    /// Mutual TLS: each of its settings must do something with the others
    /// (a setting that is accepted and does nothing would be a lie).
    fn validate_client_certificates(&self) -> Result<(), ConfigError> {
        let m = &self.main;
        // `[sni:HOST]` sections may verify clients where [main] does not.
        let sections_verify = (self.sni.iter()).any(|s| s.effective(self, sni::SniListener::Amqp).verify_peer);
        let any_verify = m.tls_verify_peer || sections_verify;
        let why = if m.tls_verify_peer && m.tls_ca_cert_path.is_none() {
            "tls_verify_peer (--tls-verify-peer) needs tls_ca_cert (--ca-cert), the CAs client certificates are verified against"
        } else if any_verify && self.amqp.tls_port.is_none() {
            "tls_verify_peer (--tls-verify-peer, or an [sni:HOST] section's) asks AMQPS clients for certificates, but no AMQPS port is set (--amqps-port); the HTTPS API never asks for one"
        } else if !m.tls_verify_peer && m.tls_ca_cert_path.is_some() {
            "tls_ca_cert (--ca-cert) is set but tls_verify_peer (--tls-verify-peer) is not: no client certificate would be asked for"
        } else if !any_verify && !m.tls_fail_if_no_peer_cert {
            "tls_fail_if_no_peer_cert = false (--tls-fail-if-no-peer-cert) does nothing without tls_verify_peer (--tls-verify-peer, or in an [sni:HOST] section)"
        } else if !any_verify && m.tls_cert_login_from != "distinguished_name" {
            "tls_cert_login_from (--tls-cert-login-from) does nothing without tls_verify_peer (--tls-verify-peer, or in an [sni:HOST] section): no client certificate would be asked for"
        } else if !m.tls_cert_login_from.starts_with("subject_alt")
            && (m.tls_cert_login_san_type != crate::tls::SanKind::Dns || m.tls_cert_login_san_index != 0)
        {
            "tls_cert_login_san_type and tls_cert_login_san_index (--tls-cert-login-san-*) do nothing unless tls_cert_login_from = subject_alternative_name"
        } else {
            return Ok(());
        };
        Err(ConfigError::Invalid(why.into()))
    }

    /// Two listeners on one address and port would fail at bind with a vaguer error.
    /// (Address lists are compared whole: overlapping lists fail at bind, named.)
    fn check_listeners_distinct(&self) -> Result<(), ConfigError> {
        let mut listeners: Vec<(&str, &str, u16)> = vec![("amqp", &self.amqp.bind, self.amqp.port)];
        let optional = [
            ("amqps", &self.amqp.bind, self.amqp.tls_port),
            ("http", &self.mgmt.bind, self.mgmt.port),
            ("https", &self.mgmt.bind, self.mgmt.tls_port),
            ("mqtt", &self.mqtt.bind, self.mqtt.port),
            (
                "clustering",
                &self.clustering.bind,
                self.clustering.enabled.then_some(self.clustering.port),
            ),
        ];
        listeners.extend(optional.iter().filter_map(|(n, b, p)| p.map(|p| (*n, b.as_str(), p))));
        for (i, (name_a, bind_a, port_a)) in listeners.iter().enumerate() {
            for (name_b, bind_b, port_b) in &listeners[i + 1..] {
                // Port 0 picks a fresh port per listener, so it never collides.
                if *port_a != 0 && port_a == port_b && bind_a == bind_b {
                    return Err(ConfigError::Invalid(format!(
                        "{name_a} and {name_b} both listen on {bind_a}:{port_a}"
                    )));
                }
            }
        }
        Ok(())
    }
}
