//! `/api/connections`, `/api/channels`, `/api/consumers`: client connections,
//! their channels and consumers. Management users see only their own
//! connections and channels; monitoring and administrators see all.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::common::{
    details, done_part, gather, merge_done, merge_list, merge_one, message_stats, one_part, CHANNEL_FIELDS,
};
use crate::core::mgmt::views::{ChannelView, ConnPhase, ConnView, ConsumerView, QueueView};
use crate::core::mgmt::{ConnId, View};
use crate::http::json::table_to_json;
use crate::http::paging::{self, Item, JsonItem, ListParams, Part, SortKey};
use crate::http::{ApiError, AuthUser, Reply, Req};

/// RabbitMQ's connection name: `peer -> listener` (the AMQPS listener for a
/// TLS connection, the HTTP(S) one for AMQP over WebSocket).
pub(crate) fn conn_name(c: ConnView<'_>, req: &Req<'_>) -> String {
    let amqp = req.info.amqp_addr.as_str();
    match listener_port(c, req) {
        Some(port) => {
            let host = amqp.rsplit_once(':').map_or(amqp, |(h, _)| h);
            format!("{} -> {host}:{port}", c.peer())
        }
        None => format!("{} -> {amqp}", c.peer()),
    }
}

/// The port of the listener a connection came in on, when not the AMQP one's.
fn listener_port(c: ConnView<'_>, req: &Req<'_>) -> Option<u16> {
    if let Some(via) = req.shared.stream_conns.borrow().get(&c.id()) {
        return via.port;
    }
    req.info
        .amqps_port
        .filter(|_| req.shared.tls_conns.borrow().contains_key(&c.id()))
}

pub(crate) fn split_host_port(s: &str) -> (&str, u16) {
    match s.rsplit_once(':') {
        Some((h, p)) => (h.trim_start_matches('[').trim_end_matches(']'), p.parse().unwrap_or(0)),
        None => (s, 0),
    }
}

/// Connections the user may see (open ones, past the handshake).
fn visible<'a, 'u>(b: View<'a>, u: &'u AuthUser) -> impl Iterator<Item = ConnView<'a>> + 'u
where
    'a: 'u,
{
    b.connections()
        .filter(|c| c.is_logged_in() && c.vhost().is_some())
        .filter(move |c| u.sees_all() || c.user() == Some(u.name.as_str()))
}

struct ConnItem<'a> {
    c: ConnView<'a>,
    name: String,
    req: &'a Req<'a>,
}

impl Item for ConnItem<'_> {
    fn name(&self) -> &str {
        &self.name
    }
    fn vhost(&self) -> &str {
        self.c.vhost().unwrap_or("")
    }
    fn sort_key(&self, col: &str) -> Option<SortKey<'_>> {
        Some(match col {
            "name" => SortKey::Str(&self.name),
            "user" => SortKey::Str(self.c.user().unwrap_or("")),
            "channels" => SortKey::Num(self.c.channel_count() as f64),
            "recv_oct" => SortKey::Num(self.c.traffic().recv_oct as f64),
            "send_oct" => SortKey::Num(self.c.traffic().send_oct as f64),
            _ => return None,
        })
    }
    fn render(&self) -> Value {
        let c = self.c;
        let (peer_host, peer_port) = split_host_port(c.peer());
        let (host, mut port) = split_host_port(&self.req.info.amqp_addr);
        let t = c.traffic();
        let tls = self.req.shared.tls_conns.borrow().get(&c.id()).cloned();
        if let Some(p) = listener_port(c, self.req) {
            port = p;
        }
        let peer = tls.as_ref().and_then(|t| t.peer_cert.as_deref());
        // AMQP over WebSocket: its protocol, and TLS when on HTTPS.
        let via = self.req.shared.stream_conns.borrow().get(&c.id()).cloned();
        let protocol = via.as_ref().map_or("AMQP 0-9-1", |v| v.protocol);
        let ssl = tls.is_some() || via.as_ref().is_some_and(|v| v.tls);
        json!({
            "name": self.name,
            "node": super::overview::node_name(),
            // ringmq's own: the shard (loop thread) that serves it.
            "shard": self.req.shared.cross.as_ref().map_or(0, |p| p.shard().0),
            "vhost": c.vhost(),
            "user": c.user(),
            "user_who_performed_action": c.user(),
            "state": match c.phase() {
                ConnPhase::Open => "running",
                ConnPhase::Blocked => "blocked",
                ConnPhase::Flow => "flow",
                ConnPhase::Closing => "closing",
                ConnPhase::Starting => "starting",
            },
            "type": "network",
            "protocol": protocol,
            "auth_mechanism": c.auth_mechanism(),
            "ssl": ssl,
            "host": host,
            "port": port,
            "peer_host": peer_host,
            "peer_port": peer_port,
            "channels": c.channel_count(),
            "channel_max": c.channel_max(),
            "frame_max": c.frame_max(),
            "timeout": c.heartbeat_secs(),
            "connected_at": c.connected_at_ms(),
            "client_properties": table_to_json(&c.client_properties()),
            "recv_oct": t.recv_oct,
            "recv_oct_details": details(t.recv_rate),
            "send_oct": t.send_oct,
            "send_oct_details": details(t.send_rate),
            "recv_cnt": t.recv_cnt,
            "send_cnt": t.send_cnt,
            "send_pend": c.pending_bytes(),
            "blocked": c.blocked(),
            // The client's `connection_name` property, as RabbitMQ shows it.
            "user_provided_name": c.client_properties().get("connection_name").and_then(|v| v.as_str()),
            // RabbitMQ's values: null on a plain connection; Erlang's names of
            // the parts of the suite on a TLS one.
            "ssl_protocol": tls.as_ref().map(|t| t.protocol),
            "ssl_key_exchange": tls.as_ref().map(|t| suite_parts(t.cipher_suite).0),
            "ssl_cipher": tls.as_ref().map(|t| suite_parts(t.cipher_suite).1),
            "ssl_hash": tls.as_ref().map(|t| suite_parts(t.cipher_suite).2),
            // The client's verified certificate, in RabbitMQ's formats
            // (`rabbit_cert_info`); null without one.
            "peer_cert_subject": peer.map(|p| p.subject.as_str()),
            "peer_cert_issuer": peer.map(|p| p.issuer.as_str()),
            "peer_cert_validity": peer.map(|p| p.validity.as_str()),
        })
    }
}

/// A suite's key exchange, cipher and MAC as RabbitMQ (Erlang's `ssl`) names
/// them: `TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384` is `ecdhe_rsa`, `aes_256_gcm`
/// and `aead` (every suite rustls has is AEAD; the SHA names the PRF, which
/// RabbitMQ does not show); TLS 1.3 suites leave the key exchange to the
/// handshake (`any`).
fn suite_parts(suite: &str) -> (String, String, &'static str) {
    let lower = suite.to_ascii_lowercase();
    let (kx, rest) = match lower.strip_prefix("tls13_") {
        Some(rest) => ("any", rest),
        None => {
            let body = lower.strip_prefix("tls_").unwrap_or(&lower);
            body.split_once("_with_").unwrap_or(("", body))
        }
    };
    let cipher = rest.rsplit_once('_').map_or(rest, |(cipher, _prf)| cipher);
    (kx.to_string(), cipher.to_string(), "aead")
}

#[cfg(test)]
#[test]
fn suites_as_rabbitmq_names_them() {
    assert_eq!(
        suite_parts("TLS13_AES_256_GCM_SHA384"),
        ("any".into(), "aes_256_gcm".into(), "aead")
    );
    assert_eq!(
        suite_parts("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
        ("ecdhe_rsa".into(), "chacha20_poly1305".into(), "aead")
    );
}

fn conn_items<'a>(b: View<'a>, req: &'a Req<'a>, vhost: Option<&str>) -> Vec<ConnItem<'a>> {
    visible(b, req.user())
        .filter(|c| vhost.is_none_or(|v| c.vhost() == Some(v)))
        .map(|c| ConnItem {
            c,
            name: conn_name(c, req),
            req,
        })
        .collect()
}

pub(crate) fn list_all(_: &Req<'_>) -> Result<Reply, ApiError> {
    gather(
        |req| {
            let b = req.shared.broker.borrow();
            paging::part(conn_items(View::of(&b), req, None), &ListParams::parse(&req.query)?)
        },
        merge_list,
    )
}

pub(crate) fn list_vhost(_: &Req<'_>) -> Result<Reply, ApiError> {
    gather(
        |req| {
            let b = req.shared.broker.borrow();
            paging::part(
                conn_items(View::of(&b), req, Some(req.vhost())),
                &ListParams::parse(&req.query)?,
            )
        },
        merge_list,
    )
}

/// The connection a URL names, if the user may see it and it is this shard's.
fn find(b: View<'_>, req: &Req<'_>) -> Option<ConnId> {
    let name = req.param("name");
    visible(b, req.user())
        .find(|c| conn_name(*c, req) == name)
        .map(|c| c.id())
}

pub(crate) fn get(_: &Req<'_>) -> Result<Reply, ApiError> {
    gather(
        |req| {
            let b = req.shared.broker.borrow();
            let v = View::of(&b);
            one_part(find(v, req).and_then(|id| v.connection(id)).map(|c| {
                ConnItem {
                    c,
                    name: conn_name(c, req),
                    req,
                }
                .render()
            }))
        },
        merge_one,
    )
}

/// DELETE: connection.close 320 with `X-Reason` (or RabbitMQ's default text),
/// by the shard that has it.
pub(crate) fn close(_: &Req<'_>) -> Result<Reply, ApiError> {
    gather(
        |req| {
            let Some(id) = find(View::of(&req.shared.broker.borrow()), req) else {
                return Ok(Part::default());
            };
            let reason = req
                .header("x-reason")
                .unwrap_or("Closed via management plugin")
                .to_owned();
            let r = req
                .shared
                .broker
                .borrow_mut()
                .admin_close_connection(id, &reason, req.now_ms);
            req.shared.after_core_call();
            done_part(r.map_err(ApiError::from).and_then(|()| Reply::no_content()))
        },
        merge_done,
    )
}

/// `/api/connections/username/{user}` may be read by that user, monitoring
/// and administrators; its DELETE by that user and administrators.
fn user_connections(req: &Req<'_>, write: bool) -> Result<Vec<(ConnId, String)>, ApiError> {
    let (me, user) = (req.user(), req.param("user"));
    let allowed = me.name == user || if write { me.is_admin() } else { me.sees_all() };
    if !allowed {
        return Err(ApiError::not_authorised("User not authorised to access object"));
    }
    let b = req.shared.broker.borrow();
    Ok(visible(View::of(&b), me)
        .filter(|c| c.user() == Some(user))
        .map(|c| (c.id(), conn_name(c, req)))
        .collect())
}

/// GET: the user's connections as RabbitMQ's connection tracking lists them
/// (name, vhost, user, node; not the full connection objects).
pub(crate) fn of_user(_: &Req<'_>) -> Result<Reply, ApiError> {
    gather(
        |req| {
            let params = ListParams::parse(&req.query)?;
            let conns = user_connections(req, false)?;
            let b = req.shared.broker.borrow();
            let view = View::of(&b);
            let items: Vec<JsonItem> = conns
                .into_iter()
                .filter_map(|(id, name)| {
                    let vhost = view.connection(id)?.vhost()?.to_owned();
                    let v = json!({"name": name, "vhost": vhost, "user": req.param("user"), "node": super::overview::node_name()});
                    Some(JsonItem { v, name, vhost })
                })
                .collect();
            paging::part(items, &params)
        },
        merge_list,
    )
}

/// DELETE: closes every connection of the user, on every shard (320,
/// `X-Reason` or RabbitMQ's default text); 204 also when there are none.
pub(crate) fn close_of_user(_: &Req<'_>) -> Result<Reply, ApiError> {
    gather(
        |req| {
            let conns = user_connections(req, true)?;
            let reason = req.header("x-reason").unwrap_or("Closed via management plugin");
            for (id, _) in conns {
                let r = req
                    .shared
                    .broker
                    .borrow_mut()
                    .admin_close_connection(id, reason, req.now_ms);
                req.shared.after_core_call();
                r?;
            }
            done_part(Reply::no_content())
        },
        merge_done,
    )
}

struct ChanItem<'a> {
    c: ConnView<'a>,
    ch: ChannelView<'a>,
    conn_name: String,
    name: String,
}

impl Item for ChanItem<'_> {
    fn name(&self) -> &str {
        &self.name
    }
    fn vhost(&self) -> &str {
        self.c.vhost().unwrap_or("")
    }
    fn sort_key(&self, col: &str) -> Option<SortKey<'_>> {
        Some(match col {
            "name" => SortKey::Str(&self.name),
            "messages_unacknowledged" => SortKey::Num(self.ch.unacked() as f64),
            "consumer_count" => SortKey::Num(self.ch.consumer_count() as f64),
            _ => return None,
        })
    }
    fn render(&self) -> Value {
        let (c, ch) = (self.c, self.ch);
        let (peer_host, peer_port) = split_host_port(c.peer());
        let (uncommitted, acks_uncommitted) = ch.uncommitted();
        json!({
            "name": self.name,
            "number": ch.number(),
            "node": super::overview::node_name(),
            "vhost": c.vhost(),
            "user": c.user(),
            "user_who_performed_action": c.user(),
            "state": if ch.is_open() { if ch.flow_active() { "running" } else { "flow" } } else { "closing" },
            "connection_details": {"name": self.conn_name, "peer_host": peer_host, "peer_port": peer_port},
            "consumer_count": ch.consumer_count(),
            "prefetch_count": ch.consumer_prefetch(),
            "global_prefetch_count": ch.channel_prefetch(),
            "messages_unacknowledged": ch.unacked(),
            "messages_unconfirmed": ch.unconfirmed(),
            "messages_uncommitted": uncommitted,
            "acks_uncommitted": acks_uncommitted,
            "confirm": ch.confirm(),
            "transactional": ch.transactional(),
            // Quorum queues here are not Raft groups: nothing is ever pending.
            "pending_raft_commands": 0,
            "message_stats": message_stats(ch.stats(), CHANNEL_FIELDS),
        })
    }
}

fn chan_items<'a>(b: View<'a>, req: &Req<'_>, only: Option<ConnId>, vhost: Option<&str>) -> Vec<ChanItem<'a>> {
    let mut out = Vec::new();
    for c in visible(b, req.user()) {
        if only.is_some_and(|id| id != c.id()) || vhost.is_some_and(|v| c.vhost() != Some(v)) {
            continue;
        }
        let cn = conn_name(c, req);
        for ch in c.channels() {
            out.push(ChanItem {
                c,
                ch,
                name: format!("{cn} ({})", ch.number()),
                conn_name: cn.clone(),
            });
        }
    }
    out
}

/// The channels of one connection: from the shard that has it (404 where
/// none has).
pub(crate) fn channels_of(_: &Req<'_>) -> Result<Reply, ApiError> {
    gather(
        |req| {
            let b = req.shared.broker.borrow();
            let v = View::of(&b);
            let Some(id) = find(v, req) else {
                return Ok(Part::default());
            };
            let mut part = paging::part(chan_items(v, req, Some(id), None), &ListParams::parse(&req.query)?)?;
            part.found = true;
            Ok(part)
        },
        |req, parts| {
            if !parts.iter().any(|p| p.found) {
                return Err(ApiError::not_found());
            }
            merge_list(req, parts)
        },
    )
}

pub(crate) fn channels(_: &Req<'_>) -> Result<Reply, ApiError> {
    gather(
        |req| {
            let b = req.shared.broker.borrow();
            paging::part(
                chan_items(View::of(&b), req, None, None),
                &ListParams::parse(&req.query)?,
            )
        },
        merge_list,
    )
}

pub(crate) fn channels_vhost(_: &Req<'_>) -> Result<Reply, ApiError> {
    gather(
        |req| {
            let b = req.shared.broker.borrow();
            paging::part(
                chan_items(View::of(&b), req, None, Some(req.vhost())),
                &ListParams::parse(&req.query)?,
            )
        },
        merge_list,
    )
}

pub(crate) fn channel(_: &Req<'_>) -> Result<Reply, ApiError> {
    gather(
        |req| {
            let b = req.shared.broker.borrow();
            let name = req.param("name");
            one_part(
                chan_items(View::of(&b), req, None, None)
                    .into_iter()
                    .find(|i| i.name == name)
                    .map(|i| i.render()),
            )
        },
        merge_one,
    )
}

/// One consumer as RabbitMQ lists it.
pub(crate) fn consumer_json(b: View<'_>, req: &Req<'_>, vhost: &str, queue: &str, c: ConsumerView<'_>) -> Value {
    let conn = b.connection(c.conn());
    let cn = conn.map(|x| conn_name(x, req)).unwrap_or_default();
    let (peer_host, peer_port) = conn.map_or(("", 0), |x| split_host_port(x.peer()));
    let prefetch = conn
        .and_then(|x| x.channel(c.channel()))
        .and_then(|ch| ch.consumer_prefetch_of(c.tag()))
        .unwrap_or(0);
    let mut v = json!({
        "consumer_tag": c.tag(),
        "queue": {"name": queue, "vhost": vhost},
        "channel_details": {
            "name": format!("{cn} ({})", c.channel()),
            "number": c.channel(),
            "connection_name": cn,
            "peer_host": peer_host,
            "peer_port": peer_port,
            "user": conn.and_then(|x| x.user()),
            "node": super::overview::node_name(),
        },
        "ack_required": !c.no_ack(),
        "exclusive": c.exclusive(),
        "prefetch_count": prefetch,
        "active": true,
        "activity_status": "up",
        "arguments": if c.priority() != 0 { json!({"x-priority": c.priority()}) } else { json!({}) },
    });
    // ringmq's own field (RabbitMQ 3.10 shows no offset for an AMQP consumer
    // of a stream): the offset the consumer reads next. Its reader is on the
    // stream's owner while the consumer is listed by its connection's shard:
    // when that is another shard, the owner's part brings the offset aside
    // and the merge puts it in (`place_stream_offsets`).
    match c.stream_offset() {
        Some(offset) => v["stream_offset"] = json!(offset),
        None if c.of_stream() => v[AWAITS_OFFSET] = json!(reader_key(c.conn(), c.channel(), c.tag())),
        None => {}
    }
    v
}

/// The field of a consumer row whose stream offset is on another shard
/// (taken out by the merge).
const AWAITS_OFFSET: &str = "_awaits_stream_offset";

/// A stream reader as both shards name it: its connection (ids are unique
/// over the shards), channel and consumer tag.
fn reader_key(conn: ConnId, channel: u16, tag: &str) -> String {
    format!("{}/{channel}/{tag}", conn.0)
}

/// The offsets of `q`'s readers (a stream this shard owns) whose consumers
/// are listed by other shards: for this shard's `Part::aside`.
pub(crate) fn stream_offsets_aside<'a>(view: View<'a>, q: QueueView<'a>) -> impl Iterator<Item = Value> + 'a {
    (q.stream_reader_offsets())
        .filter(move |(conn, ..)| view.connection(*conn).is_none())
        .map(|(conn, channel, tag, offset)| json!({"reader": reader_key(conn, channel, tag), "offset": offset}))
}

/// Puts the offsets the stream owners' parts brought aside into the consumer
/// rows awaiting them, before the parts are merged.
pub(crate) fn place_stream_offsets(parts: &mut [Part]) {
    let offsets: HashMap<&str, u64> = (parts.iter().flat_map(|p| &p.aside))
        .filter_map(|a| Some((a["reader"].as_str()?, a["offset"].as_u64()?)))
        .collect();
    let mut found = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        for (j, row) in part.rows.iter().enumerate() {
            if let Some(key) = row.v.get(AWAITS_OFFSET).and_then(Value::as_str) {
                found.push((i, j, offsets.get(key).copied()));
            }
        }
    }
    for (i, j, offset) in found {
        let v = &mut parts[i].rows[j].v;
        if let Some(o) = v.as_object_mut() {
            o.remove(AWAITS_OFFSET);
        }
        // None: the reader went between the shards' looks (the consumer was
        // cancelled), so there is no offset to show.
        if let Some(offset) = offset {
            v["stream_offset"] = json!(offset);
        }
    }
}

/// This shard's consumers: those whose connection is here. A consumer of
/// another shard's queue is in this shard's copy of the queue too (and in
/// the owner's list, where its connection is not), so each is listed once,
/// by the shard of its channel.
fn consumer_part(req: &Req<'_>, vhost: Option<&str>) -> Result<Part, ApiError> {
    let params = ListParams::parse(&req.query)?;
    let b = req.shared.broker.borrow();
    let view = View::of(&b);
    let u = req.user();
    let mut items = Vec::new();
    let mut aside = Vec::new();
    for v in view.vhosts() {
        let vn = v.name();
        if vhost.is_some_and(|x| x != vn) || !u.sees_vhost(view, vn) {
            continue;
        }
        for q in v.queues() {
            for c in q.consumers().filter(|c| view.connection(c.conn()).is_some()) {
                items.push(JsonItem {
                    v: consumer_json(view, req, vn, q.name(), c),
                    name: c.tag().to_string(),
                    vhost: vn.to_string(),
                });
            }
            if q.owner() == view.shard() {
                aside.extend(stream_offsets_aside(view, q));
            }
        }
    }
    let mut part = paging::part(items, &params)?;
    part.aside = aside;
    Ok(part)
}

pub(crate) fn consumers(_: &Req<'_>) -> Result<Reply, ApiError> {
    gather(|req| consumer_part(req, None), merge_consumers)
}

pub(crate) fn consumers_vhost(_: &Req<'_>) -> Result<Reply, ApiError> {
    gather(|req| consumer_part(req, Some(req.vhost())), merge_consumers)
}

fn merge_consumers(req: &Req<'_>, mut parts: Vec<Part>) -> Result<Reply, ApiError> {
    place_stream_offsets(&mut parts);
    merge_list(req, parts)
}
