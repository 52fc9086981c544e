//! One broker and its clients, driven the way the io layer drives them: bytes
//! in with `handle_input` (what is not consumed is kept and passed again),
//! every turn's pending work run, output taken and checked, closed connections
//! disconnected, timers fired when due, group commits run on demand.
//!
//! Invariants checked besides "no panic" (each cheap, each something a client
//! or the disk relies on):
//! - `handle_input` consumes at most what it was given;
//! - the broker's output is whole frames, none larger than the connection's
//!   `frame_max`, with a delivery's content header and body frames right after
//!   its method and adding up to the announced size;
//! - delivery tags on a channel only grow;
//! - each publish on a confirm channel is confirmed at most once, and only
//!   publishes are;
//! - every queue counts as unacked exactly the deliveries its channels hold;
//! - pending work at one `now` finishes in a bounded number of turns, and
//!   after `handle_timeout(now)` no timer is due at or before `now`;
//! - the API never answers 5xx (the data directory is healthy), but for a
//!   failed health check;
//! - a clean close succeeds, and a broker opens again on what it wrote, after a
//!   clean close and after a crash (the files as they were, no fsync needed:
//!   the tmpfs keeps every write); a clean restart keeps every durable queue
//!   (with its persistent messages) and exchange.

use std::collections::HashMap;
use std::path::PathBuf;

use bytes::Bytes;
use ringmq::core::model::ids::ConnId;
use ringmq::core::{Broker, CoreConfig};
use ringmq::http::InProcess;
use ringmq_codec::{
    decode_frame, encode_method, ConnectionOpen, ConnectionStartOk, ConnectionTuneOk, Frame, Method, ShortStr, Table,
    PROTOCOL_HEADER,
};

/// Turns of `run_pending` at one `now` after which pending work is a livelock.
const PENDING_TURNS_MAX: usize = 100_000;
/// The broker's seed (generated names): fixed, so an input replays the same.
const SEED: u64 = 0x5eed;
/// Connections a script may have at once; more `Connect` steps are ignored.
pub const CLIENTS_MAX: usize = 4;
/// The broker's frame_max (RabbitMQ's default).
pub const FRAME_MAX: u32 = 131_072;
/// The clock at the start: a realistic epoch time, so TTL arithmetic near
/// `u64` overflow is only reached through what clients send.
const START_MS: u64 = 1_700_000_000_000;

/// The parameters a script fixes once, at its start.
#[derive(Debug, Clone, Copy, arbitrary::Arbitrary)]
pub struct Setup {
    /// Confirms and tx.commit wait for a group commit (`Sync` steps run them).
    pub sync: bool,
    pub channel_max: u8,
    pub consumer_timeout: bool,
    /// What the script starts with (see [`crate::amqp::prelude`]): bit 0
    /// queues, an exchange and bindings; bit 1 a consumer; bit 2 confirms.
    pub prelude: u8,
}

/// What the harness knows of a channel's confirm mode.
#[derive(Debug)]
enum Confirms {
    /// Not in confirm mode: opened (or never used) and no confirm.select sent.
    Off,
    /// A confirm.select went out (no-wait or not, answered or not: the
    /// broker counts from it, as RabbitMQ does): the publishes sent since,
    /// and the sequence numbers confirmed (acked or nacked) so far.
    Counting {
        sent: u64,
        done: std::collections::BTreeSet<u64>,
    },
    /// Bytes the harness did not build went out on the connection: its
    /// publishes and confirm.selects are not known, so neither is the count.
    Unknown,
}

/// An AMQP client: a byte buffer in each direction and what the checks need.
pub struct Client {
    pub id: ConnId,
    /// Bytes `handle_input` has not consumed yet (a partial frame).
    carry: Vec<u8>,
    /// The broker answered a bad protocol header with its own (8 bytes, not a frame).
    header_answer_possible: bool,
    /// Last delivery tag per channel (reset when the channel opens).
    last_tag: HashMap<u16, u64>,
    /// Expecting a content header on this channel, or this many body bytes.
    content: Option<(u16, Option<u64>)>,
    /// Delivery tags seen, for acks that hit (newest last; bounded).
    pub tags: Vec<(u16, u64)>,
    /// Per channel, what the harness knows of its confirm mode; a channel
    /// not in the map is [`Confirms::Off`], or [`Confirms::Unknown`] once
    /// `confirms_unknown` is set.
    confirms: HashMap<u16, Confirms>,
    /// Raw or corrupted bytes went out: any channel not opened since may be
    /// in confirm mode with publishes the harness did not count.
    confirms_unknown: bool,
    /// Channels the broker opened and has not closed.
    open_channels: std::collections::BTreeSet<u16>,
    /// What the client answers by itself (close-ok to a close), as clients do.
    replies: Vec<u8>,
}

pub struct Sim {
    api: Option<InProcess>,
    config: CoreConfig,
    pub now_ms: u64,
    pub clients: Vec<Client>,
    /// Queue names and consumer tags the broker generated, for later steps.
    pub seen_names: Vec<String>,
    /// Connections accepted so far (each gets its own peer port).
    connects: u32,
    _dir: tempfile::TempDir,
}

/// A scratch directory on a tmpfs when there is one: each input opens a broker
/// (a dozen files), and a disk would make that, not the broker, the cost.
fn scratch_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    let b = tempfile::Builder::new().prefix("ringmq-fuzz-").tempdir_in(shm);
    b.or_else(|_| tempfile::Builder::new().prefix("ringmq-fuzz-").tempdir())
        .expect("a scratch directory")
}

impl Sim {
    pub fn new(setup: Setup) -> Sim {
        let dir = scratch_dir();
        let mut config = CoreConfig {
            data_dir: dir.path().join("data"),
            frame_max: FRAME_MAX,
            // At least the 3 channels a script uses; sometimes few more.
            channel_max: 3 + (setup.channel_max % 4) as u16,
            heartbeat_secs: 0,
            max_message_bytes: 1 << 20,
            store: Default::default(),
            sync: setup.sync,
            default_user: ("guest".into(), "guest".into(), true),
            consumer_timeout_ms: setup.consumer_timeout.then_some(1_000),
            load_definitions: None,
            max_consumers_per_channel: None,
            handshake_timeout_ms: 10_000,
            default_stream_offset: Default::default(),
            internal_secret: None,
        };
        // Small segments, so rollovers and growth happen within a short script.
        config.store.segment_bytes = 64 * 1024;
        let broker = Broker::open(config.clone(), SEED).expect("open a fresh broker");
        Sim {
            api: Some(InProcess::new(broker, config.data_dir.clone())),
            config,
            now_ms: START_MS,
            clients: Vec::new(),
            seen_names: Vec::new(),
            connects: 0,
            _dir: dir,
        }
    }

    pub fn broker(&self) -> std::cell::RefMut<'_, Broker> {
        self.api.as_ref().expect("a broker").broker()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.config.data_dir.clone()
    }

    /// One API request at the current time; never a 5xx, but for a failed
    /// health check (RabbitMQ's 503 `{"status": "failed"}` is what monitoring
    /// tools read).
    pub fn request(&mut self, req: hyper::Request<Bytes>) -> hyper::Response<Bytes> {
        let what = format!("{} {}", req.method(), req.uri());
        let health = req.uri().path().starts_with("/api/health/checks/");
        let resp = self.api.as_ref().expect("a broker").request(req, self.now_ms);
        let status = resp.status().as_u16();
        if trace() {
            eprintln!("fuzz-trace: {what} -> {status}");
        }
        let failed_check = || {
            let v: Option<serde_json::Value> = serde_json::from_slice(resp.body()).ok();
            health && status == 503 && v.is_some_and(|v| v["status"] == "failed")
        };
        assert!(
            status < 500 || failed_check(),
            "{what} answered {status}: {}",
            String::from_utf8_lossy(resp.body())
        );
        self.drain();
        resp
    }

    /// Accepts a connection; with `handshake`, sends the protocol header,
    /// start-ok (guest), tune-ok and connection.open on "/" as a client would.
    pub fn connect(&mut self, handshake: Option<(u16, u32, u16)>) -> Option<usize> {
        if self.clients.len() >= CLIENTS_MAX {
            return None;
        }
        // Peers 127.0.0.1:40000, :40001, ...: the API names connections by them.
        let peer = format!("127.0.0.1:{}", 40_000 + self.connects);
        self.connects += 1;
        let id = self.broker().handle_connect(peer, true, self.now_ms);
        self.clients.push(Client {
            id,
            carry: Vec::new(),
            header_answer_possible: true,
            last_tag: HashMap::new(),
            content: None,
            tags: Vec::new(),
            open_channels: Default::default(),
            replies: Vec::new(),
            confirms: HashMap::new(),
            confirms_unknown: false,
        });
        let c = self.clients.len() - 1;
        let Some((channel_max, frame_max, heartbeat)) = handshake else {
            return Some(c);
        };
        let mut out = PROTOCOL_HEADER.to_vec();
        let caps = client_properties();
        let start_ok = ConnectionStartOk {
            client_properties: Table::parse(&caps).expect("own table"),
            mechanism: ShortStr::lit("PLAIN"),
            response: b"\0guest\0guest",
            locale: ShortStr::lit("en_US"),
        };
        encode_method(&mut out, 0, &Method::ConnectionStartOk(start_ok));
        let tune_ok = ConnectionTuneOk {
            channel_max,
            frame_max,
            heartbeat,
        };
        encode_method(&mut out, 0, &Method::ConnectionTuneOk(tune_ok));
        let open = ConnectionOpen {
            virtual_host: ShortStr::lit("/"),
            capabilities: ShortStr::lit(""),
            insist: false,
        };
        encode_method(&mut out, 0, &Method::ConnectionOpen(open));
        self.send(c, &out);
        // Gone if the broker refused the handshake (a tune-ok it does not take).
        self.clients.iter().position(|c| c.id == id)
    }

    /// The client at `index` modulo the number of clients; without any, a new
    /// one through its handshake (so a script goes on after a connection error).
    pub fn pick(&mut self, index: u8) -> Option<usize> {
        if self.clients.is_empty() {
            return self.connect(Some((0, 0, 0)));
        }
        Some(index as usize % self.clients.len())
    }

    /// Opens channel `channel` of client `c` first if it is one of the few a
    /// script uses (1-3), within channel_max, and not open: after a channel
    /// error the script goes on with the channel open again, as a client
    /// would reopen it. Gives the client's index again (it may have closed).
    pub fn ensure_channel(&mut self, c: usize, channel: u16) -> Option<usize> {
        let client = self.clients.get(c)?;
        let channel_max = {
            let b = self.broker();
            b.connection(client.id).map_or(0, |conn| conn.tuning().channel_max)
        };
        if (1..=3).contains(&channel) && channel <= channel_max && !client.open_channels.contains(&channel) {
            let id = client.id;
            let mut out = Vec::new();
            let open = ringmq_codec::ChannelOpen {
                out_of_band: ShortStr::lit(""),
            };
            encode_method(&mut out, channel, &Method::ChannelOpen(open));
            self.send(c, &out);
            return self.clients.iter().position(|c| c.id == id);
        }
        Some(c)
    }

    /// The frame_max the broker holds client `c` to.
    pub fn frame_max(&self, c: usize) -> u32 {
        let b = self.broker();
        b.connection(self.clients[c].id)
            .map_or(ringmq_codec::FRAME_MIN_SIZE, |conn| conn.tuning().frame_max)
    }

    /// Bytes from client `c`, handled as the io layer does, then everything
    /// that follows from them.
    pub fn send(&mut self, c: usize, bytes: &[u8]) {
        self.feed(c, bytes);
        self.drain();
    }

    /// Bytes from client `c` into `handle_input`; what is not consumed is kept.
    fn feed(&mut self, c: usize, bytes: &[u8]) {
        let Some(client) = self.clients.get_mut(c) else { return };
        let id = client.id;
        let mut carry = std::mem::take(&mut client.carry);
        carry.extend_from_slice(bytes);
        let used = self.broker().handle_input(id, &carry, self.now_ms);
        assert!(used <= carry.len(), "handle_input used {used} of {} bytes", carry.len());
        carry.drain(..used);
        if let Some(client) = self.clients.get_mut(c) {
            client.carry = carry;
        }
    }

    /// The socket of client `c` is gone.
    pub fn disconnect(&mut self, c: usize) {
        let client = self.clients.remove(c);
        self.broker().handle_disconnect(client.id);
        self.drain();
    }

    /// The clock moves on by `ms`: due timers fire (once, late, as after a busy
    /// loop turn), every connection gets its tick, the stats tick runs.
    pub fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
        let now = self.now_ms;
        {
            let mut b = self.broker();
            if b.poll_timeout().is_some_and(|t| t <= now) {
                b.handle_timeout(now);
                let next = b.poll_timeout();
                assert!(
                    next.is_none_or(|t| t > now),
                    "after handle_timeout({now}) the next deadline is {next:?}"
                );
            }
            let ids: Vec<ConnId> = self.clients.iter().map(|c| c.id).collect();
            for id in ids {
                b.handle_tick(id, now);
            }
            b.handle_stats_tick(now);
        }
        self.drain();
    }

    /// Runs the group commit the broker asks for (or fails it, as a full or
    /// broken disk would).
    pub fn sync(&mut self, fail: bool) {
        {
            let mut b = self.broker();
            if let Some(job) = b.poll_sync() {
                let r = if fail {
                    Err(std::io::Error::other("fuzz: fsync failed"))
                } else {
                    job.run_blocking()
                };
                b.handle_sync_done(job, r);
            }
        }
        self.drain();
    }

    pub fn disk_alarm(&mut self, on: bool) {
        self.broker().handle_disk_alarm(on);
        self.drain();
    }

    pub fn mem_alarm(&mut self, on: bool) {
        self.broker().handle_mem_alarm(on);
        self.drain();
    }

    /// Stops the broker and opens it again on its data directory. Clean: as
    /// SIGTERM (connection.close 320 to all, connections dropped, `close`).
    /// Crash: the broker is dropped as it is, as kill -9 leaves it.
    pub fn restart(&mut self, crash: bool) {
        if !crash {
            let now = self.now_ms;
            self.broker().handle_shutdown(now);
            self.drain();
            while !self.clients.is_empty() {
                self.disconnect(0);
            }
        }
        let mut broker = self.api.take().expect("a broker").into_broker();
        let before = (!crash).then(|| durable_state(&broker));
        if crash {
            drop(broker);
        } else {
            broker.close().expect("a clean close of a healthy data directory");
        }
        self.clients.clear();
        let broker = Broker::open(self.config.clone(), SEED).expect("a broker opens again on what it wrote");
        if let Some(before) = before {
            let after = durable_state(&broker);
            assert_eq!(before, after, "a clean restart keeps the durable state");
        }
        self.api = Some(InProcess::new(broker, self.config.data_dir.clone()));
        self.drain();
    }

    /// Runs pending work and hands every connection's output to its client,
    /// until there is none; disconnects what the broker closed.
    pub fn drain(&mut self) {
        for _ in 0..PENDING_TURNS_MAX {
            let mut turns = 0;
            let mut any = false;
            {
                let mut b = self.broker();
                while b.has_pending_work() {
                    turns += 1;
                    assert!(
                        turns <= PENDING_TURNS_MAX,
                        "pending work at now={} does not finish",
                        self.now_ms
                    );
                    b.run_pending();
                }
                let mut dirty = Vec::new();
                b.take_dirty(&mut dirty);
            }
            // Every client, not only the dirty ones: the API's handlers take the
            // dirty list to wake the io layer's writers, which this harness is.
            for c in 0..self.clients.len() {
                let id = self.clients[c].id;
                let mut out = Vec::new();
                let now = self.now_ms;
                self.broker().poll_output(id, &mut out, now);
                if !out.is_empty() {
                    any = true;
                    self.receive(c, &out);
                    self.broker().handle_output_drained(id);
                }
            }
            for c in 0..self.clients.len() {
                let replies = std::mem::take(&mut self.clients[c].replies);
                if !replies.is_empty() {
                    any = true;
                    self.feed(c, &replies);
                }
            }
            let closed: Vec<usize> = (0..self.clients.len())
                .filter(|&c| self.broker().is_closed(self.clients[c].id))
                .collect();
            for c in closed.into_iter().rev() {
                any = true;
                let client = self.clients.remove(c);
                self.broker().handle_disconnect(client.id);
            }
            if !any {
                self.check_unacked();
                return;
            }
        }
        panic!("output does not stop at now={}", self.now_ms);
    }

    /// Every queue counts as unacked exactly the deliveries its channels hold
    /// (a message counted unacked with no channel holding it is stuck for good;
    /// one held but not counted can be delivered twice).
    fn check_unacked(&self) {
        let b = self.broker();
        let mut held: HashMap<(&str, u64), u64> = HashMap::new();
        for conn in b.connections() {
            let Some(vhost) = conn.vhost() else { continue };
            for ch in conn.channels() {
                for queue in ch.unacked_queues() {
                    *held.entry((vhost, queue.0)).or_default() += 1;
                }
            }
        }
        for (vname, vhost) in b.model().vhosts() {
            for (id, q) in &vhost.queues {
                let n = held.remove(&(&**vname, id.0)).unwrap_or(0);
                assert_eq!(
                    q.unacked_count(),
                    n,
                    "queue {:?} in {vname:?} counts {} unacked, its channels hold {n}",
                    q.name().as_str(),
                    q.unacked_count()
                );
            }
        }
    }

    /// Checks what the broker sent to client `c`.
    fn receive(&mut self, c: usize, mut bytes: &[u8]) {
        let frame_max = {
            let b = self.broker();
            b.connection(self.clients[c].id)
                .map_or(FRAME_MAX, |conn| conn.tuning().frame_max)
        };
        let client = &mut self.clients[c];
        if std::mem::take(&mut client.header_answer_possible) && bytes.starts_with(b"AMQP") {
            assert_eq!(
                bytes, PROTOCOL_HEADER,
                "a refused protocol header is answered with ours, then nothing"
            );
            return;
        }
        while !bytes.is_empty() {
            let (frame, used) = match decode_frame(bytes, 0) {
                Ok(x) => x,
                Err(e) => panic!(
                    "the broker sent a bad frame: {e:?}: {:?}",
                    &bytes[..bytes.len().min(64)]
                ),
            };
            assert!(
                used as u64 <= frame_max as u64,
                "a {used}-byte frame over frame_max {frame_max}"
            );
            bytes = &bytes[used..];
            client.check_content(&frame);
            if trace() {
                let name = match &frame {
                    Frame::Method {
                        method: Method::ConnectionClose(c),
                        ..
                    } => &format!("close {} {}", c.reply_code, c.reply_text.as_str()),
                    Frame::Method {
                        method: Method::ChannelClose(c),
                        ..
                    } => &format!("close {} {}", c.reply_code, c.reply_text.as_str()),
                    Frame::Method { method, .. } => method.name(),
                    Frame::Header { .. } => "header",
                    Frame::Body { .. } => "body",
                    Frame::Heartbeat => "heartbeat",
                };
                eprintln!("fuzz-trace: {name}");
            }
            if let Frame::Method { channel, method } = frame {
                client.check_method(channel, &method, &mut self.seen_names);
            }
        }
    }
}

impl Client {
    /// What the harness knows of `channel`'s confirm mode.
    fn confirms_of(&mut self, channel: u16) -> &mut Confirms {
        let unknown = self.confirms_unknown;
        self.confirms
            .entry(channel)
            .or_insert(if unknown { Confirms::Unknown } else { Confirms::Off })
    }

    /// A confirm.select went out on `channel` (no-wait or not).
    pub fn confirm_select(&mut self, channel: u16) {
        let track = self.confirms_of(channel);
        if let Confirms::Off = track {
            *track = Confirms::Counting {
                sent: 0,
                done: Default::default(),
            };
        }
    }

    /// A publish went out on `channel` (counted if the channel confirms).
    pub fn published(&mut self, channel: u16) {
        if let Confirms::Counting { sent, .. } = self.confirms_of(channel) {
            *sent += 1;
        }
    }

    /// Raw or corrupted bytes may hold publishes and confirm.selects the
    /// harness does not count: the confirms check stops for this client until
    /// a channel opens again.
    pub fn forget_confirms(&mut self) {
        self.confirms.clear();
        self.confirms_unknown = true;
    }

    /// Each publish is confirmed once, and only publishes are.
    fn confirmed(&mut self, channel: u16, tag: u64, multiple: bool) {
        let Confirms::Counting { sent, done } = self.confirms_of(channel) else {
            return; // not in confirm mode as far as the harness knows
        };
        assert!(
            tag >= 1 && tag <= *sent,
            "confirm of publish {tag} on channel {channel}: {sent} sent"
        );
        if multiple {
            done.extend(1..=tag);
        } else {
            assert!(done.insert(tag), "publish {tag} on channel {channel} confirmed twice");
        }
    }

    /// A delivery's content header and body frames come right after its method.
    fn check_content(&mut self, frame: &Frame<'_>) {
        let Some((ch, remaining)) = self.content else { return };
        match (remaining, frame) {
            (None, Frame::Header { channel, header }) if *channel == ch => {
                let size = header.body_size;
                self.content = (size > 0).then_some((ch, Some(size)));
            }
            (Some(left), Frame::Body { channel, payload }) if *channel == ch => {
                let n = payload.len() as u64;
                assert!(n <= left, "body frames longer than the announced size");
                self.content = (n < left).then_some((ch, Some(left - n)));
            }
            _ => panic!("content of a delivery on channel {ch} interrupted by {frame:?}"),
        }
    }

    fn check_method(&mut self, channel: u16, method: &Method<'_>, seen: &mut Vec<String>) {
        let tag = match method {
            Method::ConfirmSelectOk(_) => {
                let track = self.confirms_of(channel);
                assert!(
                    !matches!(track, Confirms::Off),
                    "confirm.select-ok on channel {channel} that sent no confirm.select"
                );
                None
            }
            Method::BasicAck(a) => {
                self.confirmed(channel, a.delivery_tag, a.multiple);
                None
            }
            Method::BasicNack(n) => {
                self.confirmed(channel, n.delivery_tag, n.multiple);
                None
            }
            Method::ChannelOpenOk(_) => {
                self.last_tag.insert(channel, 0);
                self.confirms.insert(channel, Confirms::Off);
                self.open_channels.insert(channel);
                None
            }
            Method::ChannelClose(_) => {
                self.open_channels.remove(&channel);
                let ok = Method::ChannelCloseOk(ringmq_codec::ChannelCloseOk);
                encode_method(&mut self.replies, channel, &ok);
                None
            }
            Method::ChannelCloseOk(_) => {
                self.open_channels.remove(&channel);
                None
            }
            Method::ConnectionClose(_) => {
                let ok = Method::ConnectionCloseOk(ringmq_codec::ConnectionCloseOk);
                encode_method(&mut self.replies, 0, &ok);
                None
            }
            Method::BasicDeliver(d) => Some(d.delivery_tag),
            Method::BasicGetOk(g) => Some(g.delivery_tag),
            Method::BasicReturn(_) => {
                self.content = Some((channel, None));
                None
            }
            Method::QueueDeclareOk(q) => {
                remember(seen, q.queue.as_str());
                None
            }
            Method::BasicConsumeOk(c) => {
                remember(seen, c.consumer_tag.as_str());
                None
            }
            _ => None,
        };
        if let Some(tag) = tag {
            self.content = Some((channel, None));
            let last = self.last_tag.entry(channel).or_insert(0);
            assert!(tag > *last, "delivery tag {tag} after {last} on channel {channel}");
            *last = tag;
            self.tags.push((channel, tag));
            if self.tags.len() > 64 {
                self.tags.remove(0);
            }
        }
    }
}

/// `RINGMQ_FUZZ_TRACE=1`: each frame the broker sends and each request's
/// status on stderr (to see what a corpus reaches: run it with `-runs=0`).
fn trace() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("RINGMQ_FUZZ_TRACE").is_some())
}

/// What a clean restart must keep: per vhost, each durable queue's name and
/// persistent ready messages (a durable queue keeps only those, as in
/// RabbitMQ; nothing is unacked once every connection is gone) and the names
/// of durable exchanges.
type DurableState = std::collections::BTreeMap<String, (Vec<(String, u64)>, Vec<String>)>;

fn durable_state(b: &Broker) -> DurableState {
    let mut state = DurableState::new();
    for (vname, v) in b.model().vhosts() {
        let mut queues: Vec<(String, u64)> = v
            .queues
            .values()
            .filter(|q| q.is_durable() && q.exclusive_owner().is_none())
            .map(|q| {
                let mut persistent = 0;
                let r = q.for_each_ready(|_, m| {
                    let p = ringmq_codec::BasicProperties::decode(m.properties);
                    persistent += p.is_ok_and(|p| p.is_persistent()) as u64;
                });
                r.expect("stored messages read back");
                (q.name().to_string(), persistent)
            })
            .collect();
        queues.sort();
        let mut exchanges: Vec<String> = v
            .exchanges
            .iter()
            .filter(|(_, x)| x.durable)
            .map(|(n, _)| n.to_string())
            .collect();
        exchanges.sort();
        state.insert(vname.to_string(), (queues, exchanges));
    }
    state
}

fn remember(seen: &mut Vec<String>, name: &str) {
    if !seen.iter().any(|s| s == name) {
        seen.push(name.to_string());
        if seen.len() > 16 {
            seen.remove(0);
        }
    }
}

/// A client announcing every capability the broker has (so it gets
/// connection.blocked, basic.cancel and authentication_failure_close).
fn client_properties() -> Vec<u8> {
    use ringmq_codec::{FieldTable, FieldValue};
    let caps: FieldTable = [
        "publisher_confirms",
        "consumer_cancel_notify",
        "connection.blocked",
        "authentication_failure_close",
        "basic.nack",
    ]
    .into_iter()
    .map(|k| (ShortStr::lit(k), FieldValue::Bool(true)))
    .collect();
    let mut p = FieldTable::new();
    p.insert(ShortStr::lit("capabilities"), FieldValue::Table(caps));
    p.to_bytes()
}
