//! Requests without a socket: the listener's route table, login, rights, vhost
//! check and body limit, then the handler, called directly on a broker. For the
//! fuzz target `fuzz/fuzz_targets/http_api.rs` (thousands of requests a second,
//! each on a fresh broker, where a socket and a runtime per input would cost
//! more than the request) and for tests of a handler's answer to odd input.
//!
//! What it skips is hyper's own parsing of the request head and its timeouts:
//! a caller hands over an already built [`Request`].

use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use hyper::{Request, Response};

use super::server::{admit, body_too_large, dispatch, error_response, is_anonymous, ServerInfo};
use crate::core::Broker;
use crate::shard::Shared;

/// A broker and the API in front of it, as one listener on a node would serve it.
#[doc(hidden)]
pub struct InProcess {
    shared: Shared,
    info: std::sync::Arc<ServerInfo>,
}

impl InProcess {
    /// The API of `broker`, whose data directory is `data_dir`.
    pub fn new(broker: Broker, data_dir: PathBuf) -> InProcess {
        InProcess {
            shared: Shared::new(broker, false),
            info: std::sync::Arc::new(ServerInfo {
                started: Instant::now(),
                amqp_addr: "127.0.0.1:5672".into(),
                amqps_port: None,
                api_port: Some(15672),
                https_port: None,
                metrics_port: None,
                data_dir,
                metrics_only: false,
                tls: None,
            }),
        }
    }

    /// The broker, for driving its AMQP side or checking its state between requests.
    pub fn broker(&self) -> std::cell::RefMut<'_, Broker> {
        self.shared.broker.borrow_mut()
    }

    /// The broker back, for a clean close and a restart on its data directory.
    pub fn into_broker(self) -> Broker {
        self.shared.broker.into_inner()
    }

    /// Every route as (method, path pattern), `{name}` marking a path parameter:
    /// what a fuzzer fills in.
    pub fn routes() -> impl Iterator<Item = (&'static str, &'static str)> {
        super::routes::ROUTES.iter().map(|r| (r.method.as_str(), r.path))
    }

    /// Answers one request at `now_ms` (ms since the Unix epoch), as the
    /// listener would once hyper has parsed it and read a body of this size.
    pub fn request(&self, req: Request<Bytes>, now_ms: u64) -> Response<Bytes> {
        let (parts, body) = req.into_parts();
        let admitted = match admit(&self.shared, &self.info, &parts) {
            Ok(a) => a,
            Err(e) => return error_response(&e, is_anonymous(&parts)),
        };
        let max = admitted.route.body_bytes_max;
        if body.len() > max {
            return error_response(&body_too_large(max), false);
        }
        match dispatch(&self.shared, &self.info, &parts, admitted, body, now_ms) {
            Ok(r) => r,
            Err(_) => unreachable!("one shard: no reply waits for another"),
        }
    }
}
