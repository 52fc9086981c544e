//! AMQP URIs: `amqp://user:pass@host:port/vhost?query` (and `amqps://`),
//! percent-decoded, with the query parameters of RabbitMQ's Erlang client
//! (what its shovels and federation take): `heartbeat`, `connection_timeout`,
//! `channel_max`, `auth_mechanism` (plain), and for `amqps://` `cacertfile`,
//! `certfile` + `keyfile`, `verify` and `server_name_indication`. Anything
//! else is refused by name rather than ignored.

use std::path::PathBuf;

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
    /// What the query asked for beyond the trust.
    pub options: UriOptions,
}

/// A URI's query parameters (those that are not the TLS trust, which is
/// [`Uri::tls`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriOptions {
    /// `heartbeat`: the seconds asked for (0: off), over the caller's.
    pub heartbeat_secs: Option<u16>,
    /// `connection_timeout`: milliseconds for the TCP, TLS and AMQP handshakes.
    pub connection_timeout_ms: Option<u64>,
    /// `channel_max`: the most channels taken (the lower of it and the broker's).
    pub channel_max: Option<u16>,
    /// `certfile` + `keyfile` (PEM): the certificate presented to the broker.
    pub client_cert: Option<ClientCert>,
    /// `server_name_indication`: the name the broker's certificate is checked
    /// against and sent in the handshake, instead of the host.
    pub server_name: Option<String>,
    /// False with `server_name_indication=disable`: no name is sent (the
    /// certificate is still checked against the host).
    pub sni: bool,
}

impl Default for UriOptions {
    fn default() -> Self {
        UriOptions {
            heartbeat_secs: None,
            connection_timeout_ms: None,
            channel_max: None,
            client_cert: None,
            server_name: None,
            sni: true,
        }
    }
}

/// A client certificate chain and its private key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Uri {
    pub fn parse(s: &str) -> std::result::Result<Uri, String> {
        let (rest, tls) = match (s.strip_prefix("amqp://"), s.strip_prefix("amqps://")) {
            (Some(rest), _) => (rest, None),
            (_, Some(rest)) => (rest, Some(TlsTrust::Unset)),
            _ => return Err(format!("{s}: only amqp:// and amqps:// URIs are supported")),
        };
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut tls = tls;
        let options = parse_query(s, query, &mut tls)?;
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
            options,
        })
    }
}

/// The query's parameters; sets `tls`'s trust from `cacertfile` / `verify`.
fn parse_query(s: &str, query: &str, tls: &mut Option<TlsTrust>) -> Result<UriOptions, String> {
    let mut o = UriOptions::default();
    let (mut cacert, mut verify, mut cert, mut key) = (None, None, None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v)?;
        let bad = |what: &str| format!("{s}: {k}={v:?}: {what}");
        let tls_only = ["cacertfile", "certfile", "keyfile", "verify", "server_name_indication"];
        if tls.is_none() && tls_only.contains(&k) {
            return Err(format!("{s}: {k} is a TLS setting: use amqps://"));
        }
        match k {
            "heartbeat" => o.heartbeat_secs = Some(v.parse().map_err(|_| bad("not a number of seconds"))?),
            "connection_timeout" => {
                let ms = v.parse().ok().filter(|&ms: &u64| ms > 0);
                o.connection_timeout_ms = Some(ms.ok_or_else(|| bad("not a number of milliseconds > 0"))?);
            }
            "channel_max" => o.channel_max = Some(v.parse().map_err(|_| bad("not a channel count"))?),
            "auth_mechanism" if v.eq_ignore_ascii_case("plain") => {}
            "auth_mechanism" => return Err(bad("only plain is supported")),
            "cacertfile" => cacert = Some(PathBuf::from(v)),
            "certfile" => cert = Some(PathBuf::from(v)),
            "keyfile" => key = Some(PathBuf::from(v)),
            "verify" => match v.as_str() {
                "verify_peer" => verify = Some(true),
                "verify_none" => verify = Some(false),
                _ => return Err(bad("verify_peer or verify_none")),
            },
            "server_name_indication" if v == "disable" => o.sni = false,
            "server_name_indication" if !v.is_empty() => o.server_name = Some(v),
            "server_name_indication" => return Err(bad("a host name or disable")),
            _ => {
                return Err(format!(
                    "{s}: unknown query parameter {k:?} (known: heartbeat, connection_timeout, channel_max, \
                     auth_mechanism, cacertfile, certfile, keyfile, verify, server_name_indication)"
                ))
            }
        }
    }
    o.client_cert = match (cert, key) {
        (Some(cert), Some(key)) => Some(ClientCert { cert, key }),
        (None, None) => None,
        _ => return Err(format!("{s}: certfile and keyfile go together")),
    };
    if let Some(trust) = tls {
        *trust = match (verify, cacert) {
            (Some(false), _) => TlsTrust::Insecure,
            (_, Some(ca)) => TlsTrust::CaFile(ca),
            (Some(true), None) => return Err(format!("{s}: verify=verify_peer needs cacertfile=FILE")),
            (None, None) => TlsTrust::Unset,
        };
    }
    Ok(o)
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
                options: UriOptions::default(),
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

    #[test]
    fn query_parameters_as_rabbitmqs_erlang_client_takes_them() {
        let u =
            Uri::parse("amqp://h/v?heartbeat=5&connection_timeout=10000&channel_max=8&auth_mechanism=PLAIN").unwrap();
        assert_eq!(u.vhost, "v", "the query is not the vhost's");
        assert_eq!(
            (
                u.options.heartbeat_secs,
                u.options.connection_timeout_ms,
                u.options.channel_max
            ),
            (Some(5), Some(10_000), Some(8))
        );
        let t = Uri::parse(
            "amqps://h?cacertfile=/ca.pem&certfile=/c.pem&keyfile=/k%2Epem&verify=verify_peer&server_name_indication=n",
        )
        .unwrap();
        assert_eq!(t.tls, Some(TlsTrust::CaFile("/ca.pem".into())));
        assert_eq!(
            t.options.client_cert,
            Some(ClientCert {
                cert: "/c.pem".into(),
                key: "/k.pem".into()
            })
        );
        assert_eq!((t.options.server_name.as_deref(), t.options.sni), (Some("n"), true));
        assert_eq!(
            Uri::parse("amqps://h?verify=verify_none").unwrap().tls,
            Some(TlsTrust::Insecure)
        );
        assert!(
            !Uri::parse("amqps://h?server_name_indication=disable")
                .unwrap()
                .options
                .sni
        );
        for (bad, says) in [
            ("amqp://h?cacertfile=/ca.pem", "use amqps://"),
            ("amqps://h?verify=verify_peer", "needs cacertfile"),
            ("amqps://h?certfile=/c.pem", "go together"),
            ("amqp://h?heartbeat=x", "seconds"),
            ("amqp://h?auth_mechanism=external", "only plain"),
            ("amqp://h?frobnicate=1", "unknown query parameter \"frobnicate\""),
        ] {
            let e = Uri::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
