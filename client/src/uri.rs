//! AMQP URIs: `amqp://user:pass@host:port/vhost` (and `amqps://`), percent-decoded.

use crate::tls::TlsTrust;

/// `amqp://user:pass@host:port/vhost`, the parts this tool needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub vhost: String,
    /// `amqps://`: TLS, with the trust the command line gives (`--tls-ca`,
    /// `--insecure`; `Unset` until then).
    pub tls: Option<TlsTrust>,
    /// False for `amqp://` with no host (`amqp://`, `amqp:///vhost`,
    /// `amqp://user:pass@`): `host` is then `localhost`, and a link inside a
    /// broker takes it to mean that broker itself, as RabbitMQ's shovels do.
    pub host_given: bool,
}

impl Uri {
    pub fn parse(s: &str) -> std::result::Result<Uri, String> {
        let (rest, tls) = match (s.strip_prefix("amqp://"), s.strip_prefix("amqps://")) {
            (Some(rest), _) => (rest, None),
            (_, Some(rest)) => (rest, Some(TlsTrust::Unset)),
            _ => return Err(format!("{s}: only amqp:// and amqps:// URIs are supported")),
        };
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((a, r)) => (Some(a), r),
            None => (None, rest),
        };
        let (user, password) = match auth {
            Some(a) => {
                let (u, p) = a.split_once(':').unwrap_or((a, ""));
                (percent_decode(u)?, percent_decode(p)?)
            }
            None => ("guest".to_string(), "guest".to_string()),
        };
        let (hostport, vhost) = match rest.split_once('/') {
            // An empty path is the default vhost "/", as in RabbitMQ's URI spec.
            Some((hp, "")) => (hp, "/".to_string()),
            Some((hp, v)) => (hp, percent_decode(v)?),
            None => (rest, "/".to_string()),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| format!("{s}: bad port {p:?}"))?),
            None => (hostport, if tls.is_some() { 5671 } else { 5672 }),
        };
        let host_given = !host.is_empty();
        let host = if host.is_empty() { "localhost" } else { host };
        Ok(Uri {
            host_given,
            host: host.to_string(),
            port,
            user,
            password,
            vhost,
            tls,
        })
    }
}

fn percent_decode(s: &str) -> std::result::Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).map_err(|e| e.to_string())?;
            let v = u8::from_str_radix(hex, 16).map_err(|_| format!("bad percent escape in {s:?}"))?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_parsing() {
        let u = Uri::parse("amqp://a:b%40c@h:1234/v%2Fx").unwrap();
        assert_eq!(
            u,
            Uri {
                host: "h".into(),
                port: 1234,
                user: "a".into(),
                password: "b@c".into(),
                vhost: "v/x".into(),
                tls: None,
                host_given: true,
            }
        );
        assert!(!Uri::parse("amqp://").unwrap().host_given);
        assert!(!Uri::parse("amqp://u:p@/v").unwrap().host_given);
        let t = Uri::parse("amqps://h/").unwrap();
        assert_eq!((t.port, t.tls), (5671, Some(TlsTrust::Unset)));
        let d = Uri::parse("amqp://localhost").unwrap();
        assert_eq!((d.port, d.user.as_str(), d.vhost.as_str()), (5672, "guest", "/"));
        assert_eq!(Uri::parse("amqp://h:5/").unwrap().vhost, "/");
        assert!(Uri::parse("http://h").is_err());
        assert!(Uri::parse("amqpx://h").is_err());
        assert!(Uri::parse("amqp://h:x").is_err());
    }
}
