//! The HTTP listeners: hyper http1 connections on the shard's LocalSet, the
//! body limit, authentication and dispatch through the route table.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use hyper::{Request, Response, StatusCode};

use super::error::ApiError;
use super::gather;
use super::routes::{self, Need};
use super::websocket::Client;
use super::{HttpConfig, Query, Reply, Req};
use crate::core::mgmt::View;
use crate::shard::Shared;
use crate::sys::stream::Stream;

/// Open HTTP connections per listener. Each holds a socket and hyper's buffers; a
/// dashboard or a UI tab needs one or two, so this is far above use and far
/// below the fd limit the AMQP side needs. Beyond it new connections are closed
/// at once.
pub const HTTP_CONNECTIONS_MAX: usize = 1024;
/// A request's head (request line and headers) must arrive within this, or the
/// connection is closed: a client that dribbles its headers cannot hold a
/// connection forever.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head (request line and headers); hyper answers 431 beyond it.
/// Browsers send 1-4 KiB of headers.
pub const HEAD_BYTES_MAX: usize = 64 << 10;
/// A request's body must arrive within this (408 otherwise): 64 MiB of
/// definitions at a slow 1 MiB/s still fits.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(120);

/// What handlers need to know about the server itself.
#[derive(Debug)]
pub(crate) struct ServerInfo {
    pub started: Instant,
    /// `host:port` of the AMQP listener (connection names end with it).
    pub amqp_addr: String,
    /// The AMQPS listener's port, if there is one.
    pub amqps_port: Option<u16>,
    pub api_port: Option<u16>,
    pub https_port: Option<u16>,
    pub metrics_port: Option<u16>,
    pub data_dir: std::path::PathBuf,
    /// Only `/metrics*` is served (the unauthenticated listener).
    pub metrics_only: bool,
    /// The TLS listeners' certificates (their expiry is a health check and a metric).
    pub tls: Option<crate::tls::TlsAcceptor>,
}

/// Starts the API and metrics listeners (each only if configured). They are
/// bound when this returns (systemd is told the broker is ready after it), and
/// returned. One that cannot bind stops the start, as RabbitMQ's boot fails: a
/// broker running without the API or metrics its operator configured would be
/// found out only by what stops working (monitoring, the management tools).
pub(crate) async fn spawn(
    shared: &Rc<Shared>,
    cfg: &HttpConfig,
    shard: crate::shard::ShardInfo,
) -> std::io::Result<Vec<(&'static str, std::net::SocketAddr)>> {
    let started = Instant::now();
    // The HTTPS listener offers HTTP/1.1 by ALPN (hyper here speaks only it).
    let https = (cfg.https.as_ref()).map(|(bind, port, tls)| (bind.clone(), *port, tls.for_http()));
    let wanted = [
        (Kind::Api, cfg.api.clone(), None),
        (
            Kind::Https,
            https.as_ref().map(|(b, p, _)| (b.clone(), *p)),
            https.map(|h| h.2),
        ),
        (Kind::Metrics, cfg.metrics.clone(), None),
    ];
    // Bound first, so that each listener's info names the ports the others
    // really got (port 0 picks one).
    let mut listening = Vec::new();
    let mut bound = Vec::new();
    for (kind, addr, tls) in wanted {
        let Some((bind, port)) = addr else { continue };
        let listener = crate::sys::listeners::Listeners::bind(&bind, port)
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot start the {} listener: {e}", kind.name())))?;
        for a in listener.local_addrs() {
            tracing::info!(addr = %a, "{} listener started", kind.name());
            bound.push((kind.name(), a));
        }
        listening.push((kind, Listener::Tcp(listener), tls));
    }
    if let Some(path) = &cfg.unix {
        let l = crate::sys::unix_socket::UnixListener::bind(path).map_err(|e| {
            std::io::Error::other(format!(
                "cannot start the HTTP API Unix socket listener at {}: {e}",
                path.display()
            ))
        })?;
        tracing::info!(path = %l.path().display(), "HTTP API Unix socket listener started");
        listening.push((Kind::Api, Listener::Unix(l), None));
    }
    if let Some(l) = cfg.control.as_deref().and_then(control_socket).transpose()? {
        tracing::info!(path = %l.path().display(), "ringmqctl control socket listener started");
        listening.push((Kind::Api, Listener::Unix(l), None));
    }
    let port_of = |k: Kind| {
        (bound.iter())
            .find(|(name, _)| *name == k.name())
            .map(|(_, a)| a.port())
    };
    for (kind, listener, tls) in listening {
        let info = ServerInfo {
            started,
            amqp_addr: shard.amqp_addr.to_string(),
            amqps_port: shard.amqps_addr.map(|a| a.port()),
            api_port: port_of(Kind::Api),
            https_port: port_of(Kind::Https),
            metrics_port: port_of(Kind::Metrics),
            data_dir: shard.data_dir.clone(),
            metrics_only: kind == Kind::Metrics,
            tls: cfg.tls.clone(),
        };
        tokio::task::spawn_local(serve(shared.clone(), listener, tls, std::sync::Arc::new(info)));
    }
    Ok(bound)
}

/// The control socket for ringmqctl (the API, mode 0660). At the default path
/// a socket that cannot be made is not an error (None): no `/run/ringmq` (a
/// broker not started by systemd), or another broker listening there (which
/// keeps it; a stale file from a dead one is replaced).
fn control_socket(path: &std::path::Path) -> Option<std::io::Result<crate::sys::unix_socket::UnixListener>> {
    use crate::sys::unix_socket::{UnixBindError, UnixListener, CONTROL_SOCKET_MODE};
    match UnixListener::bind_with_mode(path, CONTROL_SOCKET_MODE) {
        Ok(l) => Some(Ok(l)),
        Err(e) if path == std::path::Path::new(crate::config::DEFAULT_CONTROL_UNIX_PATH) => {
            match &e {
                UnixBindError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                    tracing::info!(path = %path.display(), "no ringmqctl control socket: its directory does not exist")
                }
                _ => tracing::warn!(error = %e, "no ringmqctl control socket"),
            }
            None
        }
        Err(e) => Some(Err(std::io::Error::other(format!(
            "cannot start the ringmqctl control socket listener at {}: {e}",
            path.display()
        )))),
    }
}

/// Where an HTTP listener accepts.
enum Listener {
    Tcp(crate::sys::listeners::Listeners),
    Unix(crate::sys::unix_socket::UnixListener),
}

impl Listener {
    /// The next connection and who is at its other end (for log lines, and
    /// the AMQP session of a WebSocket upgrade).
    async fn accept(&self, tls: bool) -> std::io::Result<(Stream, Client)> {
        match self {
            Listener::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                let _ = s.set_nodelay(true);
                let client = Client {
                    peer: peer.to_string(),
                    loopback: crate::sys::listeners::is_loopback(&peer),
                    port: s.local_addr().ok().map(|a| a.port()),
                    tls,
                };
                Ok((Stream::Tcp(s), client))
            }
            Listener::Unix(l) => {
                let (s, peer) = l.accept().await?;
                // Only local processes reach a Unix socket (as the AMQP one).
                let client = Client {
                    peer,
                    loopback: true,
                    port: None,
                    tls,
                };
                Ok((Stream::Unix(s), client))
            }
        }
    }
}

/// The HTTP listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Api,
    Https,
    /// Only `/metrics*`, without a login.
    Metrics,
}

impl Kind {
    /// As the log's "... listener started" line says it.
    fn name(self) -> &'static str {
        match self {
            Kind::Api => "HTTP API",
            Kind::Https => "HTTPS API",
            Kind::Metrics => "metrics",
        }
    }
}

async fn serve(shared: Rc<Shared>, listener: Listener, tls: Option<crate::tls::TlsAcceptor>, info: Arc<ServerInfo>) {
    let open = Rc::new(Cell::new(0usize));
    let refused = Cell::new(0u64);
    loop {
        let (stream, client) = match listener.accept(tls.is_some()).await {
            Ok(x) => x,
            Err(e) => {
                crate::sys::listeners::accept_failed(&e).await;
                continue;
            }
        };
        if open.get() >= HTTP_CONNECTIONS_MAX {
            // Logged at the first refusal and then every 1,000th, not per socket:
            // a flood must not become a log flood.
            refused.set(refused.get() + 1);
            if refused.get() % 1000 == 1 {
                tracing::warn!(peer = %client.peer, max = HTTP_CONNECTIONS_MAX, refused = refused.get(), "HTTP connection refused: too many open");
            }
            drop(stream);
            continue;
        }
        // The configuration in force now: a reload (SIGHUP) reaches the next handshake.
        let tls = tls.as_ref().map(|t| t.configs());
        let (shared, info, open) = (shared.clone(), info.clone(), open.clone());
        open.set(open.get() + 1);
        tokio::task::spawn_local(async move {
            match tls {
                None => serve_connection(shared, info, stream, client).await,
                // The handshake is bounded like a request's head: a client that
                // connects and says nothing holds a slot for at most that long.
                Some(tls) => match tokio::time::timeout(HEADER_READ_TIMEOUT, tls_handshake(&tls, stream)).await {
                    Ok(Ok(stream)) => serve_connection(shared, info, stream, client).await,
                    Ok(Err(e)) => crate::tls::log_failure(client.peer.parse().ok(), &e.to_string()),
                    Err(_) => {
                        crate::tls::log_failure(client.peer.parse().ok(), "no TLS handshake within the header timeout")
                    }
                },
            }
            open.set(open.get() - 1);
        });
    }
}

/// The TLS handshake of an HTTPS connection, with the configuration for the
/// name the client asks for when `[sni:HOST]` sections exist (read from the
/// ClientHello first).
async fn tls_handshake(
    configs: &crate::tls::Configs,
    stream: Stream,
) -> std::io::Result<tokio_rustls::server::TlsStream<Stream>> {
    if let Some(config) = configs.only() {
        return tokio_rustls::TlsAcceptor::from(std::sync::Arc::clone(config))
            .accept(stream)
            .await;
    }
    let start = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream).await?;
    let config = std::sync::Arc::clone(configs.pick(start.client_hello().server_name()));
    start.into_stream(config).await
}

/// One HTTP/1.1 connection (plain or TLS) served by hyper until it ends, or
/// until it is upgraded to WebSocket (the upgraded connection is served by
/// its own task, and no longer counts as an HTTP connection).
async fn serve_connection<S>(shared: Rc<Shared>, info: Arc<ServerInfo>, stream: S, client: Client)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let client = Rc::new(client);
    let svc = hyper::service::service_fn(move |req| handle(shared.clone(), info.clone(), client.clone(), req));
    let io = hyper_util::rt::TokioIo::new(stream);
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_header_size(HEAD_BYTES_MAX)
        .serve_connection(io, svc)
        .with_upgrades()
        .await
    {
        tracing::debug!(error = %e, "HTTP connection ended");
    }
}

async fn handle(
    shared: Rc<Shared>,
    info: Arc<ServerInfo>,
    client: Rc<Client>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    // AMQP over WebSocket, on any path of the API listeners; the session logs
    // in with AMQP's own SASL, not the API's basic auth.
    if !info.metrics_only && super::websocket::is_upgrade(req.headers()) {
        let anonymous = !req.headers().contains_key(hyper::header::AUTHORIZATION);
        let resp = super::websocket::upgrade(shared, (*client).clone(), req);
        return Ok(resp.unwrap_or_else(|e| error_response(&e, anonymous)).map(Full::new));
    }
    let (parts, body) = req.into_parts();
    // Route, login and rights are decided on the head alone: a request that is
    // refused has none of its body read, so an anonymous client cannot make the
    // broker buffer anything.
    let admitted = match admit(&shared, &info, &parts) {
        Ok(a) => a,
        Err(e) => return Ok(error_response(&e, is_anonymous(&parts)).map(Full::new)),
    };
    let body = match read_body(body, &parts.headers, admitted.route.body_bytes_max).await {
        Ok(b) => b,
        Err(e) => return Ok(error_response(&e, false).map(Full::new)),
    };
    let reply = match dispatch(&shared, &info, &parts, admitted, body, crate::sys::now_ms()) {
        Ok(r) => r,
        Err(later) => later.finish(&shared).await,
    };
    Ok(reply.map(Full::new))
}

/// Browsers show their login box only when no credentials were sent (as RabbitMQ).
pub(super) fn is_anonymous(parts: &hyper::http::request::Parts) -> bool {
    !parts.headers.contains_key(hyper::header::AUTHORIZATION)
}

/// Runs the handler of an admitted request whose body has been read. From here
/// on nothing awaits: the broker is borrowed only inside the handler. A reply
/// to be gathered from other shards comes back as [`Later`], for the caller
/// to await ([`gather::everywhere`]).
pub(super) fn dispatch(
    shared: &Shared,
    info: &Arc<ServerInfo>,
    parts: &hyper::http::request::Parts,
    admitted: Admitted,
    body: Bytes,
    now_ms: u64,
) -> Result<Response<Bytes>, Box<Later>> {
    let req = Req {
        shared,
        params: admitted.params,
        query: Query::parse(parts.uri.query()),
        headers: &parts.headers,
        body,
        user: admitted.user,
        now_ms,
        info,
    };
    let reply = match (admitted.route.handler)(&req) {
        Ok(Reply::Gather(g)) if shared.shard_count() > 1 => {
            return Err(Box::new(Later {
                req: gather::OwnedReq::of(&req, info.clone()),
                gather: g,
                anonymous: is_anonymous(parts),
            }))
        }
        Ok(Reply::Gather(g)) => gather::here(&req, g),
        other => other,
    };
    Ok(match reply {
        Ok(r) => response(r),
        Err(e) => error_response(&e, is_anonymous(parts)),
    })
}

/// A reply that waits for other shards' parts.
pub(super) struct Later {
    req: gather::OwnedReq,
    gather: gather::Gather,
    anonymous: bool,
}

impl Later {
    pub(super) async fn finish(self, shared: &Shared) -> Response<Bytes> {
        match gather::everywhere(shared, self.req, self.gather).await {
            Ok(r) => response(r),
            Err(e) => error_response(&e, self.anonymous),
        }
    }
}

/// A request the route table and the authorisation rules let through.
pub(super) struct Admitted {
    pub(super) route: &'static routes::Route,
    params: routes::Params,
    /// None only on routes that need no login.
    user: Option<super::AuthUser>,
}

/// Finds the route and checks the credentials and rights for it, from the
/// request's head.
pub(super) fn admit(
    shared: &Shared,
    info: &ServerInfo,
    parts: &hyper::http::request::Parts,
) -> Result<Admitted, ApiError> {
    let path = parts.uri.path();
    if info.metrics_only && !path.starts_with("/metrics") {
        return Err(ApiError::not_found());
    }
    let (route, params) = routes::find(&parts.method, path)?;
    let need = if info.metrics_only && route.need == Need::Management {
        // `/metrics` on the metrics listener is open, as RabbitMQ's 15692.
        Need::None
    } else {
        route.need
    };
    let mut user = None;
    if need != Need::None {
        let b = shared.broker.borrow();
        let header = parts
            .headers
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let v = View::of(&b);
        let u = super::auth::authenticate(v, header)?;
        super::auth::authorize(v, &u, need, &parts.method)?;
        if route.checks_vhost() {
            super::auth::check_vhost(v, &u, params.iter().find(|(n, _)| *n == "vhost").map(|p| p.1.as_str()))?;
        }
        user = Some(u);
    }
    Ok(Admitted { route, params, user })
}

/// Reads a body of at most `max` bytes within [`BODY_READ_TIMEOUT`]. A declared
/// length over the limit is refused before a byte is read.
async fn read_body(body: Incoming, headers: &hyper::HeaderMap, max: usize) -> Result<Bytes, ApiError> {
    let too_large = || body_too_large(max);
    let declared = headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    match tokio::time::timeout(BODY_READ_TIMEOUT, Limited::new(body, max).collect()).await {
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(e)) => Err(ApiError::new(
            400,
            "bad_request",
            format!("cannot read the request body: {e}"),
        )),
        Err(_) => Err(ApiError::new(
            408,
            "request_timeout",
            format!("request body not received within {} s", BODY_READ_TIMEOUT.as_secs()),
        )),
    }
}

/// 413 for a body over the route's limit.
pub(super) fn body_too_large(max: usize) -> ApiError {
    ApiError::new(413, "bad_request", format!("request body larger than {max} bytes"))
}

fn response(r: Reply) -> Response<Bytes> {
    let json = HeaderValue::from_static("application/json");
    match r {
        Reply::Json(status, v) => build(status, Some(json), Bytes::from(v.to_string())),
        Reply::Empty(status) => build(status, None, Bytes::new()),
        Reply::Created(location) => {
            let mut resp = build(201, None, Bytes::new());
            if let Ok(v) = HeaderValue::from_str(&location) {
                resp.headers_mut().insert(LOCATION, v);
            }
            resp
        }
        Reply::Raw {
            status,
            content_type,
            body,
        } => {
            let mut resp = build(status, Some(HeaderValue::from_static(content_type)), body);
            // The UI's files: the UI needs nothing from other origins and no
            // inline code, so a strict policy costs it nothing and stops an
            // injected script; nosniff keeps content types as sent.
            let h = resp.headers_mut();
            h.insert("content-security-policy", HeaderValue::from_static(UI_CSP));
            h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
            h.insert("x-frame-options", HeaderValue::from_static("DENY"));
            resp
        }
        // Gathered before this (`dispatch`); a merge never answers another.
        Reply::Gather(_) => {
            debug_assert!(false, "a merge answered Reply::Gather");
            error_response(&ApiError::new(500, "internal_error", "a reply gathered twice"), false)
        }
    }
}

/// The UI's Content-Security-Policy (the one `tests/ui/devserver.mjs` enforces
/// while the UI is developed).
const UI_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn build(status: u16, content_type: Option<HeaderValue>, body: Bytes) -> Response<Bytes> {
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(ct) = content_type {
        resp.headers_mut().insert(CONTENT_TYPE, ct);
    }
    resp.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-cache"));
    resp
}

pub(super) fn error_response(e: &ApiError, anonymous: bool) -> Response<Bytes> {
    let mut resp = build(
        e.status,
        Some(HeaderValue::from_static("application/json")),
        Bytes::from(e.body()),
    );
    if e.status == 401 && anonymous {
        resp.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"RabbitMQ Management\""),
        );
    }
    resp
}
