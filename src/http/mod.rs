//! The management HTTP API (RabbitMQ's shapes under `/api`), Prometheus
//! metrics, and the embedded web UI, served on the shard's own event loop.
//!
//! Handlers are plain synchronous functions: they borrow the broker, call the
//! core, and return before anything awaits, so a request never holds the broker
//! across an `.await` and never blocks the AMQP path for longer than the call.
//!
//! | file | what |
//! |---|---|
//! | `server.rs` | listeners, hyper connections, body limits, dispatch |
//! | `in_process.rs` | the same admission and dispatch without a socket (fuzzing) |
//! | `auth.rs` | basic auth against the broker's users, tag rules, vhost access |
//! | `error.rs` | `{"error": .., "reason": ..}` replies with RabbitMQ's statuses |
//! | `paging.rs` | `page`, `page_size`, `name`, `use_regex`, `sort`, `columns` |
//! | `json.rs` | AMQP field tables and properties to and from JSON |
//! | `routes/mod.rs` | the route table: one line per route (extend it there) |
//! | `routes/*.rs` | one file per resource group (queues, exchanges, users, ...) |
//! | `websocket.rs` | AMQP over WebSocket: the upgrade, RFC 6455 framing, the stream handed to the transport |
//! | `ui/` | the web UI's static files, embedded with `include_bytes!` |

mod auth;
mod error;
mod gather;
mod in_process;
mod json;
mod paging;
mod prom;
mod routes;
mod server;
mod websocket;

#[doc(hidden)]
pub use in_process::InProcess;

use bytes::Bytes;
use hyper::header::HeaderMap;
use serde_json::Value;

pub(crate) use error::ApiError;

use crate::core::mgmt::AdminCtx;
use crate::shard::Shared;

/// Where the HTTP servers listen; `None` disables one.
#[derive(Debug, Clone, Default)]
pub struct HttpConfig {
    pub api: Option<(String, u16)>,
    /// The API over TLS (RabbitMQ's and LavinMQ's 15671): bind address, port
    /// and the certificate's configuration.
    pub https: Option<(String, u16, crate::tls::TlsAcceptor)>,
    /// The unauthenticated `/metrics` listener (RabbitMQ's 15692).
    pub metrics: Option<(String, u16)>,
    /// The API on a Unix domain socket (LavinMQ's `[mgmt] unix_path`).
    pub unix: Option<std::path::PathBuf>,
    /// The API on the Unix socket ringmqctl tries first (`control_unix_path`,
    /// mode 0660); at [`crate::config::DEFAULT_CONTROL_UNIX_PATH`] a socket
    /// that cannot be made is logged, not an error.
    pub control: Option<std::path::PathBuf>,
    /// The TLS configuration of the AMQPS and HTTPS listeners, if either is
    /// on: the certificate-expiration health check and the expiry metric read
    /// its certificates.
    pub tls: Option<crate::tls::TlsAcceptor>,
}

/// The API and metrics servers as a shard service: the binary hands this to
/// the transport, which starts it once AMQP listens (so `io` never names `http`).
pub fn services(cfg: HttpConfig) -> crate::shard::Services {
    crate::shard::Services::new(move |shared, info| {
        let cfg = cfg.clone();
        Box::pin(async move { server::spawn(&shared, &cfg, info).await })
    })
}

/// Decoded query parameters (`a=b&c=d`, `+` as space), in order: a key may
/// repeat (`family=a&family=b`, as RabbitMQ's detailed metrics take it).
#[derive(Debug, Clone, Default)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        let mut pairs = Vec::new();
        for pair in q.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            pairs.push((decode(&k.replace('+', " ")), decode(&v.replace('+', " "))));
        }
        Query(pairs)
    }

    /// The last value of `k`.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }

    /// Every value of `k`, in order.
    pub fn all<'a>(&'a self, k: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(key, _)| key == k).map(|(_, v)| v.as_str())
    }

    pub fn flag(&self, k: &str) -> bool {
        self.get(k).is_some_and(|v| v == "true")
    }
}

/// Percent-decodes one path segment or query part (`%2F` is `/`).
pub(crate) fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Percent-encodes a name for a URL path segment (RabbitMQ's `%2F`).
pub(crate) fn encode(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

/// The authenticated user of a request.
#[derive(Debug, Clone)]
pub(crate) struct AuthUser {
    pub name: String,
    pub tags: Vec<String>,
}

/// One request, as handlers see it.
pub(crate) struct Req<'a> {
    pub shared: &'a Shared,
    /// Path parameters by their names in the route pattern, decoded.
    pub params: Vec<(&'static str, String)>,
    pub query: Query,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
    /// None only on unauthenticated routes.
    pub user: Option<AuthUser>,
    pub now_ms: u64,
    pub info: &'a server::ServerInfo,
}

impl Req<'_> {
    /// A path parameter; routes only name parameters their pattern has.
    pub fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("route has no parameter {name}"))
    }

    pub fn vhost(&self) -> &str {
        self.param("vhost")
    }

    pub fn user(&self) -> &AuthUser {
        self.user.as_ref().expect("authenticated route")
    }

    /// The body as JSON (an empty body is `{}`); 400 `not_json` otherwise.
    pub fn json(&self) -> Result<Value, ApiError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Object(Default::default()));
        }
        serde_json::from_slice(&self.body).map_err(|_| ApiError::not_json())
    }

    /// The body as a JSON object.
    pub fn json_object(&self) -> Result<serde_json::Map<String, Value>, ApiError> {
        match self.json()? {
            Value::Object(m) => Ok(m),
            _ => Err(ApiError::bad_request("not_json_object")),
        }
    }

    /// String fields of a JSON object body, in `keys` order; 400 naming every
    /// missing key at once, as RabbitMQ's `[{key_missing,a},{key_missing,b}]`.
    pub fn string_fields(&self, keys: &[&str]) -> Result<Vec<String>, ApiError> {
        let body = self.json_object()?;
        let missing: Vec<String> = keys
            .iter()
            .filter(|k| !body.contains_key(**k))
            .map(|k| format!("{{key_missing,{k}}}"))
            .collect();
        if !missing.is_empty() {
            return Err(ApiError::bad_request(format!("[{}]", missing.join(","))));
        }
        keys.iter()
            .map(|k| match &body[*k] {
                Value::String(s) => Ok(s.clone()),
                _ => Err(ApiError::bad_request(format!("{k} must be a string"))),
            })
            .collect()
    }

    /// Context for core admin calls in this request's vhost.
    pub fn ctx(&self) -> AdminCtx<'_> {
        AdminCtx {
            user: &self.user().name,
            vhost: self.vhost(),
            now_ms: self.now_ms,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A handler's answer.
#[derive(Debug)]
pub(crate) enum Reply {
    Json(u16, Value),
    /// No body (201 / 204).
    Empty(u16),
    /// 201 with a Location header (bindings).
    Created(String),
    Raw {
        status: u16,
        content_type: &'static str,
        body: Bytes,
    },
    /// Made from every shard's part (`gather`).
    Gather(gather::Gather),
}

impl Reply {
    pub fn ok(v: Value) -> Result<Reply, ApiError> {
        Ok(Reply::Json(200, v))
    }

    pub fn no_content() -> Result<Reply, ApiError> {
        Ok(Reply::Empty(204))
    }
}
