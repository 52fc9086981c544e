//! The HTTP listeners: hyper http1 connections on the shard's LocalSet, the
//! body limit, authentication and dispatch through the route table.

use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;

use super::error::ApiError;
use super::routes::{self, Need};
use super::{HttpConfig, Query, Reply, Req};
use crate::io::Shared;

/// Largest request body (definitions imports can be big; publishes are bounded
/// by this too).
pub const BODY_BYTES_MAX: usize = 64 << 20;

/// What handlers need to know about the server itself.
#[derive(Debug)]
pub(crate) struct ServerInfo {
    pub started: Instant,
    /// `host:port` of the AMQP listener (connection names end with it).
    pub amqp_addr: String,
    pub api_port: Option<u16>,
    pub metrics_port: Option<u16>,
    pub data_dir: std::path::PathBuf,
    /// Only `/metrics*` is served (the unauthenticated listener).
    pub metrics_only: bool,
}

/// Starts the API and metrics listeners (each only if configured). They are
/// bound when this returns (systemd is told the broker is ready after it); the
/// ones that bound are returned. One that cannot bind is logged and skipped.
pub(crate) async fn spawn(
    shared: &Rc<Shared>,
    cfg: &HttpConfig,
    amqp_addr: String,
    data_dir: std::path::PathBuf,
) -> Vec<(&'static str, std::net::SocketAddr)> {
    let started = Instant::now();
    let mut bound = Vec::new();
    for (addr, metrics_only) in [(&cfg.api, false), (&cfg.metrics, true)] {
        let Some((bind, port)) = addr.clone() else { continue };
        let listener = match TcpListener::bind((bind.as_str(), port)).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(%bind, port, error = %e, "cannot start the HTTP listener");
                continue;
            }
        };
        let what = if metrics_only { "metrics" } else { "HTTP API" };
        if let Ok(a) = listener.local_addr() {
            tracing::info!(addr = %a, "{what} listener started");
            bound.push((what, a));
        }
        let info = ServerInfo {
            started,
            amqp_addr: amqp_addr.clone(),
            api_port: cfg.api.as_ref().map(|a| a.1),
            metrics_port: cfg.metrics.as_ref().map(|a| a.1),
            data_dir: data_dir.clone(),
            metrics_only,
        };
        tokio::task::spawn_local(serve(shared.clone(), listener, Rc::new(info)));
    }
    bound
}

async fn serve(shared: Rc<Shared>, listener: TcpListener, info: Rc<ServerInfo>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (shared, info) = (shared.clone(), info.clone());
        tokio::task::spawn_local(async move {
            let svc = hyper::service::service_fn(move |req| handle(shared.clone(), info.clone(), req));
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(io, svc)
                .await
            {
                tracing::debug!(error = %e, "HTTP connection ended");
            }
        });
    }
}

async fn handle(
    shared: Rc<Shared>,
    info: Rc<ServerInfo>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    // Browsers show their login box only when no credentials were sent (as RabbitMQ).
    let anonymous = !parts.headers.contains_key(hyper::header::AUTHORIZATION);
    let body = match Limited::new(body, BODY_BYTES_MAX).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let e = ApiError::new(413, "bad_request", "request body too large");
            return Ok(error_response(&e, false));
        }
    };
    // From here on nothing awaits: the broker is borrowed only inside dispatch.
    let reply = dispatch(&shared, &info, &parts, body);
    Ok(match reply {
        Ok(r) => response(r),
        Err(e) => error_response(&e, anonymous),
    })
}

fn dispatch(
    shared: &Shared,
    info: &ServerInfo,
    parts: &hyper::http::request::Parts,
    body: Bytes,
) -> Result<Reply, ApiError> {
    let path = parts.uri.path();
    if info.metrics_only && !path.starts_with("/metrics") {
        return Err(ApiError::not_found());
    }
    let (route, params) = routes::find(&parts.method, path)?;
    let mut req = Req {
        shared,
        method: parts.method.clone(),
        params,
        query: Query::parse(parts.uri.query()),
        headers: &parts.headers,
        body,
        user: None,
        now_ms: crate::io::now_ms(),
        info,
    };
    let need = if info.metrics_only && route.need == Need::Management {
        // `/metrics` on the metrics listener is open, as RabbitMQ's 15692.
        Need::None
    } else {
        route.need
    };
    if need != Need::None {
        let b = shared.broker.borrow();
        let user = super::auth::authenticate(&b, req.header("authorization"))?;
        super::auth::authorize(&b, &user, need, &req.method)?;
        if route.checks_vhost() {
            super::auth::check_vhost(
                &b,
                &user,
                req.params.iter().find(|(n, _)| *n == "vhost").map(|p| p.1.as_str()),
            )?;
        }
        req.user = Some(user);
    }
    (route.handler)(&req)
}

fn response(r: Reply) -> Response<Full<Bytes>> {
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
    }
}

/// The UI's Content-Security-Policy (the one `tests/ui/devserver.mjs` enforces
/// while the UI is developed).
const UI_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn build(status: u16, content_type: Option<HeaderValue>, body: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(ct) = content_type {
        resp.headers_mut().insert(CONTENT_TYPE, ct);
    }
    resp.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-cache"));
    resp
}

fn error_response(e: &ApiError, anonymous: bool) -> Response<Full<Bytes>> {
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
