//! An HTTP destination (`dest-uri` `http://...`, as LavinMQ's shovels have
//! them): each message is POSTed to the URI, its body as the request's body,
//! its properties as headers; a 2xx acknowledges it at the source (except
//! with no-ack), anything else (a status, a refused connection, no answer in
//! [`POST_TIMEOUT`]) is retried with a doubling pause up to [`RETRY_PAUSE_MAX`],
//! the same message, in order. One request at a time: a slow endpoint slows
//! the shovel, it does not pile up requests. `https://` endpoints are checked
//! against the system's CA store (`SSL_CERT_FILE` / `SSL_CERT_DIR` in the
//! broker's environment choose another, as for OpenSSL).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use ringmq_client::{Connection, Consumer, Content};
use ringmq_codec::{BasicProperties, FieldValueRef};

use super::link::{LinkError, Report};
use super::message::Rewrite;
use super::status::without_credentials;
use crate::core::model::shovel::{AckMode, ShovelDef};

/// How long one POST may take.
pub const POST_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest pause between retries: below the source's heartbeat timeout
/// (twice 10 s), which is sent between them.
pub const RETRY_PAUSE_MAX: Duration = Duration::from_secs(8);

/// Why one POST failed (retried).
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    #[error("answered {0}")]
    Status(u16),
    #[error("no answer within {POST_TIMEOUT:?}")]
    Timeout,
    #[error("tls: {0}")]
    Tls(String),
}

/// The client TLS configuration of https:// destinations: the system's CA
/// store, read once per process (a failure is not kept: the next connect
/// tries again).
fn system_trust() -> Result<std::sync::Arc<rustls::ClientConfig>, PostError> {
    static MADE: std::sync::OnceLock<std::sync::Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    if let Some(c) = MADE.get() {
        return Ok(c.clone());
    }
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found.errors.first().map_or("none found".to_owned(), |e| e.to_string());
        return Err(PostError::Tls(format!(
            "no CA certificate in the system store (SSL_CERT_FILE, SSL_CERT_DIR or the OS's): {why}"
        )));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PostError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MADE.get_or_init(|| std::sync::Arc::new(config)).clone())
}

/// The endpoint and its connection (made again after a failure).
struct Endpoint {
    host: String,
    port: u16,
    tls: bool,
    path: String,
    authorization: Option<String>,
    shovel: String,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Endpoint {
    fn parse(uri: &str, shovel: &str) -> Result<Endpoint, LinkError> {
        let bad = |why: &str| LinkError::BadUri {
            uri: without_credentials(uri),
            why: why.to_owned(),
        };
        let (rest, tls) = match (uri.strip_prefix("http://"), uri.strip_prefix("https://")) {
            (Some(rest), _) => (rest, false),
            (_, Some(rest)) => (rest, true),
            _ => return Err(bad("not http:// or https://")),
        };
        let (authority, path) = rest
            .split_once('/')
            .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
        let (userinfo, hostport) = authority
            .rsplit_once('@')
            .map_or((None, authority), |(u, h)| (Some(u), h));
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| bad("bad port"))?),
            None => (hostport, if tls { 443 } else { 80 }),
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        use base64::Engine as _;
        let authorization = userinfo.map(|u| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(u)));
        Ok(Endpoint {
            host: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
            port,
            tls,
            path,
            authorization,
            shovel: shovel.to_owned(),
            sender: None,
        })
    }

    async fn sender(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, PostError> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(PostError::Connect)?;
            let sender = if self.tls {
                let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| PostError::Tls(e.to_string()))?;
                let stream = tokio_rustls::TlsConnector::from(system_trust()?)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| PostError::Tls(e.to_string()))?;
                let (sender, conn) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
                tokio::task::spawn_local(async move {
                    let _ = conn.await;
                });
                sender
            } else {
                let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
                tokio::task::spawn_local(async move {
                    let _ = conn.await;
                });
                sender
            };
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().expect("made above"))
    }

    /// One POST of `content` with `properties_raw`; Ok on a 2xx.
    async fn post(&mut self, content: &Content, properties_raw: &[u8]) -> Result<(), PostError> {
        let mut req = hyper::Request::post(self.path.as_str())
            .header(hyper::header::HOST, format!("{}:{}", self.host, self.port))
            .header(hyper::header::USER_AGENT, "ringmq shovel")
            .header("x-shovel", self.shovel.as_str())
            .header("x-amqp-exchange", content.exchange.as_str())
            .header("x-amqp-routing-key", content.routing_key.as_str());
        if let Some(a) = &self.authorization {
            req = req.header(hyper::header::AUTHORIZATION, a.as_str());
        }
        for (name, value) in property_headers(properties_raw) {
            req = req.header(name, value);
        }
        let req = req
            .body(Full::new(Bytes::copy_from_slice(&content.body)))
            .map_err(|_| PostError::Status(0))?;
        let sender = self.sender().await?;
        let resp = match sender.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                self.sender = None;
                return Err(e.into());
            }
        };
        let status = resp.status().as_u16();
        // The body is read (and dropped) so the connection can be reused.
        resp.into_body().collect().await?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(PostError::Status(status))
        }
    }
}

/// A message's properties as request headers: `content-type` (or
/// `application/octet-stream`), `x-amqp-<property>` for the others that are
/// set, and `x-amqp-header-<name>` for each string or number header whose
/// name is a valid header name.
fn property_headers(raw: &[u8]) -> Vec<(String, String)> {
    let Ok(p) = BasicProperties::decode(raw) else {
        return vec![("content-type".into(), "application/octet-stream".into())];
    };
    let mut out = vec![(
        "content-type".to_owned(),
        p.content_type
            .map_or("application/octet-stream".to_owned(), |c| c.to_string()),
    )];
    let named = [
        ("message-id", p.message_id),
        ("correlation-id", p.correlation_id),
        ("reply-to", p.reply_to),
        ("type", p.kind),
        ("app-id", p.app_id),
        ("user-id", p.user_id),
        ("content-encoding", p.content_encoding),
    ];
    for (k, v) in named {
        if let Some(v) = v {
            out.push((format!("x-amqp-{k}"), v.to_string()));
        }
    }
    if let Some(t) = p.timestamp {
        out.push(("x-amqp-timestamp".into(), t.to_string()));
    }
    if let Some(d) = p.delivery_mode {
        out.push(("x-amqp-delivery-mode".into(), d.to_string()));
    }
    for (k, v) in p.headers.iter().flat_map(|h| h.iter()) {
        let value = match v {
            FieldValueRef::LongString(b) => String::from_utf8_lossy(b).into_owned(),
            other => match other.as_i64() {
                Some(n) => n.to_string(),
                None => continue,
            },
        };
        let name = format!("x-amqp-header-{}", k.as_str().to_ascii_lowercase());
        let valid_name = hyper::header::HeaderName::from_bytes(name.as_bytes()).is_ok();
        if valid_name && hyper::header::HeaderValue::from_str(&value).is_ok() {
            out.push((name, value));
        }
    }
    out
}

/// The moving part with an HTTP destination, the source set up.
pub(super) async fn run(
    def: &ShovelDef,
    name: &str,
    mut src: Connection,
    mut consumer: Consumer,
    limit: Option<u64>,
    rewrite: Rewrite,
    report: &mut dyn Report,
) -> Result<(), LinkError> {
    let mut endpoint = Endpoint::parse(&def.dest_uris[0], name)?;
    let src_err = |source| LinkError::Client { end: "source", source };
    let mut props = Vec::new();
    let mut moved = 0u64;
    while limit.is_none_or(|l| moved < l) {
        let tag = match crate::links::consumed(&src.next().await.map_err(src_err)?) {
            crate::links::Consumed::Delivery(tag) => tag,
            crate::links::Consumed::Cancelled => return Err(LinkError::Cancelled),
            crate::links::Consumed::Other => continue,
        };
        let content = src.take_content().expect("content kept for every delivery");
        consumer.handle_delivery(tag).map_err(src_err)?;
        rewrite.apply(
            &content.properties_raw,
            content.redelivered,
            super::status::now_secs(),
            &mut props,
        )?;
        let mut pause = Duration::from_secs(1);
        loop {
            let r = match tokio::time::timeout(POST_TIMEOUT, endpoint.post(&content, &props)).await {
                Ok(r) => r,
                Err(_) => Err(PostError::Timeout),
            };
            let Err(e) = r else { break };
            tracing::warn!(shovel = name, error = %e, retry_in = ?pause, "shovel: HTTP destination refused a message");
            report.blocked(true);
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RETRY_PAUSE_MAX);
            src.poll_heartbeat(Instant::now()).map_err(src_err)?;
            src.flush().await.map_err(src_err)?;
        }
        report.blocked(false);
        if def.ack_mode != AckMode::NoAck {
            consumer.push_ack(&mut src, tag, false);
            src.flush().await.map_err(src_err)?;
        }
        moved += 1;
    }
    let _ = src.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringmq_codec::{FieldTable, ShortStr, Table};

    #[test]
    fn endpoints_and_headers() {
        let e = Endpoint::parse("http://u:p@h:8080/in/q?x=1", "s").unwrap();
        assert_eq!((e.host.as_str(), e.port, e.path.as_str()), ("h", 8080, "/in/q?x=1"));
        assert_eq!(e.authorization.as_deref(), Some("Basic dTpw"));
        let d = Endpoint::parse("http://h", "s").unwrap();
        assert_eq!((d.port, d.path.as_str(), d.authorization), (80, "/", None));
        assert!(Endpoint::parse("http://:80/", "s").is_err());

        let mut h = FieldTable::new();
        h.insert(ShortStr::truncate("Tenant"), "acme");
        h.insert(ShortStr::truncate("bad name"), "x");
        let hb = h.to_bytes();
        let mut raw = Vec::new();
        BasicProperties {
            content_type: Some(ShortStr::truncate("text/plain")),
            message_id: Some(ShortStr::truncate("m1")),
            headers: Some(Table::parse(&hb).unwrap()),
            ..Default::default()
        }
        .encode(&mut raw);
        let got = property_headers(&raw);
        let has = |k: &str, v: &str| got.iter().any(|(a, b)| a == k && b == v);
        assert!(
            has("content-type", "text/plain") && has("x-amqp-message-id", "m1"),
            "{got:?}"
        );
        assert!(has("x-amqp-header-tenant", "acme"), "{got:?}");
        assert!(!got.iter().any(|(k, _)| k.contains(' ')), "{got:?}");
    }
}
