//! Replies made from what every shard holds (`shard::peers`): a handler that
//! lists connections, channels, consumers or queues, or acts on one that may
//! be another shard's, answers [`Reply::Gather`] with two functions. `part`
//! runs on every shard, on its thread, with the request made again there
//! (its broker, its TLS and WebSocket tables) and gives what that shard
//! holds, as a [`Part`]; `merge` runs on the shard that took the request,
//! with every shard's part, this shard's first, and makes the reply. With
//! one shard both run at once ([`here`]): one code path, whatever the count.

use std::sync::Arc;

use bytes::Bytes;
use hyper::HeaderMap;

use super::error::ApiError;
use super::paging::Part;
use super::server::ServerInfo;
use super::{AuthUser, Query, Reply, Req};
use crate::shard::peers::Job;
use crate::shard::Shared;

/// See the module's text.
#[derive(Clone, Copy)]
pub(crate) struct Gather {
    pub part: fn(&Req<'_>) -> Result<Part, ApiError>,
    pub merge: fn(&Req<'_>, Vec<Part>) -> Result<Reply, ApiError>,
}

impl std::fmt::Debug for Gather {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gather(..)")
    }
}

/// A request as the shard that took it has it, to be made again on another.
pub(crate) struct OwnedReq {
    params: Vec<(&'static str, String)>,
    query: Query,
    headers: HeaderMap,
    body: Bytes,
    user: Option<AuthUser>,
    now_ms: u64,
    info: Arc<ServerInfo>,
}

impl OwnedReq {
    pub(crate) fn of(req: &Req<'_>, info: Arc<ServerInfo>) -> OwnedReq {
        OwnedReq {
            params: req.params.clone(),
            query: req.query.clone(),
            headers: req.headers.clone(),
            body: req.body.clone(),
            user: req.user.clone(),
            now_ms: req.now_ms,
            info,
        }
    }

    /// The request on `shared`'s shard.
    fn on<'a>(&'a self, shared: &'a Shared) -> Req<'a> {
        Req {
            shared,
            params: self.params.clone(),
            query: self.query.clone(),
            headers: &self.headers,
            body: self.body.clone(),
            user: self.user.clone(),
            now_ms: self.now_ms,
            info: &self.info,
        }
    }
}

/// `g` on this shard alone: the broker runs one.
pub(crate) fn here(req: &Req<'_>, g: Gather) -> Result<Reply, ApiError> {
    let part = (g.part)(req)?;
    (g.merge)(req, vec![part])
}

/// `g` on every shard: each one's part, then the merge here.
pub(crate) async fn everywhere(shared: &Shared, req: OwnedReq, g: Gather) -> Result<Reply, ApiError> {
    let req = Arc::new(req);
    let theirs = req.clone();
    let part = g.part;
    let job: Job<Result<Part, ApiError>> = Arc::new(move |s: &Shared| part(&theirs.on(s)));
    let parts = shared
        .on_every_shard(job)
        .await
        .into_iter()
        .collect::<Result<Vec<Part>, ApiError>>()?;
    (g.merge)(&req.on(shared), parts)
}
