//! A blocking client for the RabbitMQ-shaped management API: basic auth, JSON bodies,
//! `{"error","reason"}` replies turned into [`CtlError::Api`].

use std::io::Read;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use crate::error::CtlError;

/// Bound on a reply body. `GET /api/definitions` of a broker with 100,000 queues is
/// ~30 MB; ureq's own `into_string` stops at 10 MB, which is too small for that.
const REPLY_BYTES_MAX: u64 = 1 << 30;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the API is and who we are.
pub struct Endpoint {
    /// `http://host:port` plus an optional path prefix, no trailing slash.
    pub base: String,
    /// `--socket`: the API on this Unix socket instead of `base`'s host and
    /// port (`base`'s path prefix still applies).
    pub socket: Option<std::path::PathBuf>,
    pub user: String,
    pub password: String,
    pub timeout: Duration,
}

impl Endpoint {
    /// Where the API is, as messages say it.
    pub fn describe(&self) -> String {
        match &self.socket {
            Some(path) => format!("the API on {}", path.display()),
            None => self.base.clone(),
        }
    }
}

pub struct Client {
    transport: Transport,
    base: String,
    auth: String,
}

enum Transport {
    Tcp(ureq::Agent),
    /// The socket's path, and the request timeout.
    Unix(std::path::PathBuf, Duration),
}

/// One request: method, path below the base (already percent-encoded), an optional
/// JSON body and extra headers.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: String,
    pub body: Option<String>,
    pub headers: Vec<(&'a str, String)>,
}

impl<'a> Request<'a> {
    pub fn new(method: &'a str, path: String) -> Self {
        Request {
            method,
            path,
            body: None,
            headers: Vec::new(),
        }
    }

    pub fn json(mut self, body: &Value) -> Self {
        self.body = Some(body.to_string());
        self
    }

    pub fn raw_body(mut self, body: String) -> Self {
        self.body = Some(body);
        self
    }

    pub fn header(mut self, name: &'a str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

impl Client {
    pub fn new(endpoint: &Endpoint) -> Result<Self, CtlError> {
        if !endpoint.base.starts_with("http://") {
            return Err(CtlError::Usage(format!(
                "--uri {}: only http:// is supported (ringmqctl is built without TLS)",
                endpoint.base
            )));
        }
        let transport = match &endpoint.socket {
            Some(path) => Transport::Unix(path.clone(), endpoint.timeout),
            None => Transport::Tcp(
                ureq::AgentBuilder::new()
                    .timeout_connect(CONNECT_TIMEOUT)
                    .timeout(endpoint.timeout)
                    .user_agent(concat!("ringmqctl/", env!("CARGO_PKG_VERSION")))
                    .build(),
            ),
        };
        let credentials = format!("{}:{}", endpoint.user, endpoint.password);
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        );
        Ok(Client {
            transport,
            base: endpoint.base.clone(),
            auth,
        })
    }

    pub fn get(&self, path: String) -> Result<Value, CtlError> {
        self.send(Request::new("GET", path)).map(|v| v.unwrap_or(Value::Null))
    }

    pub fn put(&self, path: String, body: &Value) -> Result<Option<Value>, CtlError> {
        self.send(Request::new("PUT", path).json(body))
    }

    pub fn post(&self, path: String, body: &Value) -> Result<Option<Value>, CtlError> {
        self.send(Request::new("POST", path).json(body))
    }

    pub fn delete(&self, path: String) -> Result<Option<Value>, CtlError> {
        self.send(Request::new("DELETE", path))
    }

    /// Sends the request; `Ok(None)` for an empty 2xx body (201/204 replies).
    pub fn send(&self, req: Request<'_>) -> Result<Option<Value>, CtlError> {
        let body = match &self.transport {
            Transport::Tcp(agent) => self.send_tcp(agent, &req)?,
            Transport::Unix(socket, timeout) => {
                // The base's path prefix (`http://host/prefix`), if any, is kept.
                let prefix = self
                    .base
                    .splitn(4, '/')
                    .nth(3)
                    .map(|p| format!("/{p}"))
                    .unwrap_or_default();
                let target = format!("{prefix}{}", req.path);
                let mut headers = req.headers.clone();
                headers.push(("Authorization", self.auth.clone()));
                if req.body.is_some() {
                    headers.push(("Content-Type", "application/json".into()));
                }
                let call = crate::unix_http::Call {
                    method: req.method,
                    target: &target,
                    headers: &headers,
                    body: req.body.as_deref(),
                };
                let (status, body) = crate::unix_http::request(socket, *timeout, &call, REPLY_BYTES_MAX)?;
                if !(200..300).contains(&status) {
                    return Err(api_error(status, &body));
                }
                body
            }
        };
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| CtlError::Other(format!("{} {}: reply is not JSON: {e}", req.method, req.path)))
    }

    /// The body of a 2xx reply over TCP.
    fn send_tcp(&self, agent: &ureq::Agent, req: &Request<'_>) -> Result<Vec<u8>, CtlError> {
        let url = format!("{}{}", self.base, req.path);
        // No `Accept: application/json`: RabbitMQ's vhost-limit resource offers no
        // content type and answers such a PUT with 406.
        let mut call = agent.request(req.method, &url).set("Authorization", &self.auth);
        for (name, value) in &req.headers {
            call = call.set(name, value);
        }
        let result = match &req.body {
            Some(body) => call.set("Content-Type", "application/json").send_string(body),
            None => call.call(),
        };
        match result {
            Ok(resp) => read_body(resp),
            Err(ureq::Error::Status(status, resp)) => {
                let body = read_body(resp).unwrap_or_default();
                Err(api_error(status, &body))
            }
            Err(ureq::Error::Transport(t)) => Err(transport_error(&t)),
        }
    }
}

fn read_body(resp: ureq::Response) -> Result<Vec<u8>, CtlError> {
    let mut body = Vec::new();
    resp.into_reader()
        .take(REPLY_BYTES_MAX + 1)
        .read_to_end(&mut body)
        .map_err(|e| CtlError::Unavailable(format!("reading the reply: {e}")))?;
    if body.len() as u64 > REPLY_BYTES_MAX {
        return Err(CtlError::Other(format!("reply larger than {REPLY_BYTES_MAX} bytes")));
    }
    Ok(body)
}

/// RabbitMQ replies `{"error": "...", "reason": "..."}`; anything else (a proxy's HTML
/// page) is kept as text so the user still sees it.
pub fn api_error(status: u16, body: &[u8]) -> CtlError {
    let text = String::from_utf8_lossy(body).trim().to_string();
    let (error, reason) = match serde_json::from_slice::<Value>(body) {
        Ok(v) => (
            v.get("error").map(value_text).unwrap_or_default(),
            v.get("reason").map(value_text).unwrap_or_default(),
        ),
        Err(_) => (String::new(), text.clone()),
    };
    CtlError::Api {
        status,
        error,
        reason,
        body: text,
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn transport_error(t: &ureq::Transport) -> CtlError {
    use ureq::ErrorKind as K;
    match t.kind() {
        K::InvalidUrl | K::UnknownScheme => CtlError::Usage(format!("bad URI: {t}")),
        K::Dns | K::ConnectionFailed | K::Io | K::ProxyConnect => {
            // ureq's message names the URL already.
            CtlError::Unavailable(format!("cannot reach the API: {t}"))
        }
        _ => CtlError::Other(t.to_string()),
    }
}

/// Percent-encodes one path segment: everything but RFC 3986 unreserved characters,
/// so `/` in a vhost name becomes `%2F` and the API sees one segment.
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `/api/` followed by the encoded segments: `api_path(&["queues", "/", "a b"])` is
/// `/api/queues/%2F/a%20b`.
pub fn api_path(segments: &[&str]) -> String {
    let mut path = String::from("/api");
    for s in segments {
        path.push('/');
        path.push_str(&encode_segment(s));
    }
    path
}

/// The URL name of an exchange: the default exchange `""` is `amq.default` in the API.
pub fn exchange_segment(name: &str) -> &str {
    if name.is_empty() {
        "amq.default"
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode_segment("/"), "%2F");
        assert_eq!(encode_segment("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(encode_segment("a b/c?d#e%"), "a%20b%2Fc%3Fd%23e%25");
        assert_eq!(encode_segment("é"), "%C3%A9");
        assert_eq!(encode_segment(""), "");
    }

    #[test]
    fn paths_encode_every_segment() {
        assert_eq!(api_path(&["queues", "/", "a b"]), "/api/queues/%2F/a%20b");
        assert_eq!(api_path(&["overview"]), "/api/overview");
        assert_eq!(
            api_path(&["exchanges", "/", exchange_segment(""), "publish"]),
            "/api/exchanges/%2F/amq.default/publish"
        );
        assert_eq!(
            api_path(&["vhost-limits", "v+1", "max-queues"]),
            "/api/vhost-limits/v%2B1/max-queues"
        );
    }

    #[test]
    fn api_errors_keep_error_and_reason() {
        let e = api_error(404, br#"{"error":"Object Not Found","reason":"Not Found"}"#);
        match e {
            CtlError::Api {
                status, error, reason, ..
            } => {
                assert_eq!(
                    (status, error.as_str(), reason.as_str()),
                    (404, "Object Not Found", "Not Found")
                );
            }
            other => panic!("{other:?}"),
        }
        match api_error(502, b"<html>bad gateway</html>") {
            CtlError::Api { error, reason, .. } => {
                assert_eq!(error, "");
                assert_eq!(reason, "<html>bad gateway</html>");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_http_is_accepted() {
        let ep = |base: &str| Endpoint {
            base: base.into(),
            socket: None,
            user: "guest".into(),
            password: "guest".into(),
            timeout: Duration::from_secs(1),
        };
        assert!(matches!(Client::new(&ep("https://x")), Err(CtlError::Usage(_))));
        assert!(Client::new(&ep("http://127.0.0.1:15672")).is_ok());
    }
}
