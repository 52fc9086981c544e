//! `sink` and `source`: a minimal AMQP 0-9-1 server for measuring the tool itself.
//!
//! It accepts the handshake (any credentials), opens channels, answers every
//! declare, bind, qos, confirm.select and tx method with its -ok, and discards
//! publishes, acking them at once under confirms (one multiple ack per read
//! batch). `source` also floods every consumer with deliveries as fast as its
//! prefetch allows, and answers basic.get with a message. There is no routing and
//! no storage: whatever rate a client reaches against it is the client's ceiling.

use std::collections::HashMap;
use std::io;
use std::net::TcpListener;

use ringmq_codec::frame::{FRAME_BODY, FRAME_HEADER, FRAME_METHOD};
use ringmq_codec::{
    check_protocol_header, encode_content, encode_deliver, encode_method, short, split_frame, BasicAck, BasicCancelOk,
    BasicConsumeOk, BasicGetEmpty, BasicGetOk, BasicQosOk, ChannelCloseOk, ChannelOpenOk, ConfirmSelectOk,
    ConnectionCloseOk, ConnectionOpenOk, ConnectionStart, ConnectionTune, DecodeError, ExchangeDeclareOk,
    ExchangeDeleteOk, FieldTable, FieldValue, Method, QueueBindOk, QueueDeclareOk, QueueDeleteOk, QueuePurgeOk,
    QueueUnbindOk, ShortStr, Table, TxCommitOk, TxRollbackOk, TxSelectOk,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::args::Server;
use crate::tasks;
use ringmq_client::FRAME_MAX;

/// Output bytes gathered before one write while flooding.
const FLOOD_BATCH_BYTES: usize = 64 * 1024;

/// Accepts connections forever, one thread (and current-thread runtime) each.
pub fn run(s: &Server, flood: bool) -> Result<(), String> {
    let listener = TcpListener::bind((s.bind.as_str(), s.port)).map_err(|e| format!("bind: {e}"))?;
    eprintln!(
        "ringmqperf {} listening on {}:{}",
        if flood { "source" } else { "sink" },
        s.bind,
        s.port
    );
    let body: Vec<u8> = (0..s.size).map(|i| (i % 27 + 64) as u8).collect();
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let body = body.clone();
        std::thread::spawn(move || {
            let rt = tasks::current_thread();
            let r = rt.block_on(async move {
                stream.set_nonblocking(true)?;
                let s = TcpStream::from_std(stream)?;
                s.set_nodelay(true)?;
                serve(s, flood, &body).await
            });
            if let Err(e) = r {
                if e.kind() != io::ErrorKind::UnexpectedEof && e.kind() != io::ErrorKind::ConnectionReset {
                    eprintln!("connection: {e}");
                }
            }
        });
    }
    Ok(())
}

#[derive(Debug, Default)]
struct Chan {
    confirm: bool,
    /// Publishes seen under confirms, i.e. the last tag to ack.
    published: u64,
    acked_to: u64,
    /// Publish method seen, content not complete yet: bytes still expected.
    content_left: Option<u64>,
    prefetch: u16,
    consumers: Vec<(String, bool)>,
    delivered: u64,
    unacked: u64,
    next_consumer: usize,
}

impl Chan {
    /// Deliveries this channel may still send.
    fn credit(&self) -> u64 {
        if self.consumers.is_empty() {
            0
        } else if self.prefetch == 0 || self.consumers.iter().all(|c| c.1) {
            u64::MAX
        } else {
            (self.prefetch as u64).saturating_sub(self.unacked)
        }
    }
}

struct Conn<'b> {
    out: Vec<u8>,
    chans: HashMap<u16, Chan>,
    flood: bool,
    body: &'b [u8],
    closing: bool,
}

async fn serve(stream: TcpStream, flood: bool, body: &[u8]) -> io::Result<()> {
    let (mut rd, mut wr) = stream.into_split();
    let mut buf = vec![0u8; 512 * 1024];
    let (mut start, mut end) = (0usize, 0usize);
    while end < 8 {
        let n = rd.read(&mut buf[end..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        end += n;
    }
    if check_protocol_header(&buf[..8]).is_err() {
        wr.write_all(&ringmq_codec::PROTOCOL_HEADER).await?;
        return Ok(());
    }
    start += 8;
    let mut c = Conn {
        out: Vec::with_capacity(256 * 1024),
        chans: HashMap::new(),
        flood,
        body,
        closing: false,
    };
    send_start(&mut c.out);
    loop {
        loop {
            match split_frame(&buf[start..end], 0) {
                Ok((raw, used)) => {
                    c.on_frame(raw.frame_type, raw.channel, raw.payload);
                    start += used;
                }
                Err(DecodeError::Incomplete(_)) => break,
                Err(DecodeError::Malformed(e)) => return Err(io::Error::other(e.to_string())),
            }
        }
        c.send_confirms();
        let credit = c.flood && c.chans.values().any(|ch| ch.credit() > 0);
        if credit {
            c.produce();
        }
        if !c.out.is_empty() {
            wr.write_all(&c.out).await?;
            c.out.clear();
        }
        if c.closing {
            return Ok(());
        }
        if start == end {
            (start, end) = (0, 0);
        } else if start > buf.len() / 2 {
            buf.copy_within(start..end, 0);
            (start, end) = (0, end - start);
        }
        if end == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let n = if credit {
            match rd.try_read(&mut buf[end..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        } else {
            rd.read(&mut buf[end..]).await?
        };
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        end += n;
    }
}

fn send_start(out: &mut Vec<u8>) {
    let mut caps = FieldTable::new();
    for cap in [
        "publisher_confirms",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
    ] {
        caps.insert(ShortStr::truncate(cap), true);
    }
    let mut props = FieldTable::new();
    props.insert(short!("product"), "ringmqperf sink");
    props.insert(short!("capabilities"), FieldValue::Table(caps));
    let bytes = props.to_bytes();
    let m = Method::ConnectionStart(ConnectionStart {
        version_major: 0,
        version_minor: 9,
        server_properties: Table::parse(&bytes).expect("valid table"),
        mechanisms: b"PLAIN AMQPLAIN",
        locales: b"en_US",
    });
    encode_method(out, 0, &m);
}

impl Conn<'_> {
    fn on_frame(&mut self, frame_type: u8, channel: u16, payload: &[u8]) {
        match frame_type {
            FRAME_METHOD => {
                // basic.publish is the hot path: no decode, just note the content.
                if payload.starts_with(&[0, 60, 0, 40]) {
                    self.chans.entry(channel).or_default().content_left = Some(u64::MAX);
                } else if let Ok(m) = Method::decode(payload) {
                    self.on_method(channel, m);
                }
            }
            FRAME_HEADER => {
                if let (Some(ch), Some(size)) = (self.chans.get_mut(&channel), payload.get(4..12)) {
                    let size = u64::from_be_bytes(size.try_into().expect("8 bytes"));
                    ch.content_left = Some(size);
                    if size == 0 {
                        ch.publish_done();
                    }
                }
            }
            FRAME_BODY => {
                if let Some(ch) = self.chans.get_mut(&channel) {
                    if let Some(left) = ch.content_left.as_mut() {
                        *left = left.saturating_sub(payload.len() as u64);
                        if *left == 0 {
                            ch.publish_done();
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn reply(&mut self, channel: u16, m: Method<'_>) {
        encode_method(&mut self.out, channel, &m);
    }

    fn on_method(&mut self, channel: u16, m: Method<'_>) {
        use Method as M;
        match m {
            M::ConnectionStartOk(_) => self.reply(
                0,
                M::ConnectionTune(ConnectionTune {
                    channel_max: 2047,
                    frame_max: FRAME_MAX,
                    heartbeat: 0,
                }),
            ),
            M::ConnectionOpen(_) => self.reply(
                0,
                M::ConnectionOpenOk(ConnectionOpenOk {
                    known_hosts: short!(""),
                }),
            ),
            M::ConnectionClose(_) => {
                self.reply(0, M::ConnectionCloseOk(ConnectionCloseOk));
                self.closing = true;
            }
            M::ConnectionCloseOk(_) => self.closing = true,
            M::ChannelOpen(_) => {
                self.chans.insert(channel, Chan::default());
                self.reply(channel, M::ChannelOpenOk(ChannelOpenOk { channel_id: b"" }));
            }
            M::ChannelClose(_) => {
                self.chans.remove(&channel);
                self.reply(channel, M::ChannelCloseOk(ChannelCloseOk));
            }
            M::ExchangeDeclare(d) if !d.no_wait => self.reply(channel, M::ExchangeDeclareOk(ExchangeDeclareOk)),
            M::ExchangeDelete(d) if !d.no_wait => self.reply(channel, M::ExchangeDeleteOk(ExchangeDeleteOk)),
            M::QueueDeclare(d) if !d.no_wait => {
                let queue = if d.queue.is_empty() {
                    short!("amq.gen-sink")
                } else {
                    d.queue
                };
                let ok = QueueDeclareOk {
                    queue,
                    message_count: 0,
                    consumer_count: 0,
                };
                self.reply(channel, M::QueueDeclareOk(ok));
            }
            M::QueueBind(b) if !b.no_wait => self.reply(channel, M::QueueBindOk(QueueBindOk)),
            M::QueueUnbind(_) => self.reply(channel, M::QueueUnbindOk(QueueUnbindOk)),
            M::QueuePurge(p) if !p.no_wait => self.reply(channel, M::QueuePurgeOk(QueuePurgeOk { message_count: 0 })),
            M::QueueDelete(d) if !d.no_wait => {
                self.reply(channel, M::QueueDeleteOk(QueueDeleteOk { message_count: 0 }))
            }
            M::BasicQos(q) => {
                self.chans.entry(channel).or_default().prefetch = q.prefetch_count;
                self.reply(channel, M::BasicQosOk(BasicQosOk));
            }
            M::BasicConsume(b) => {
                let ch = self.chans.entry(channel).or_default();
                let tag = if b.consumer_tag.is_empty() {
                    format!("ctag-{channel}-{}", ch.consumers.len())
                } else {
                    b.consumer_tag.to_string()
                };
                ch.consumers.push((tag.clone(), b.no_ack));
                if !b.no_wait {
                    self.reply(
                        channel,
                        M::BasicConsumeOk(BasicConsumeOk {
                            consumer_tag: ShortStr::truncate(&tag),
                        }),
                    );
                }
            }
            M::BasicCancel(b) => {
                if let Some(ch) = self.chans.get_mut(&channel) {
                    ch.consumers.retain(|c| c.0 != b.consumer_tag.as_str());
                }
                if !b.no_wait {
                    let ok = BasicCancelOk {
                        consumer_tag: b.consumer_tag,
                    };
                    self.reply(channel, M::BasicCancelOk(ok));
                }
            }
            M::BasicGet(g) => self.get(channel, g.no_ack),
            M::BasicAck(a) => {
                if let Some(ch) = self.chans.get_mut(&channel) {
                    ch.unacked = if a.multiple {
                        ch.delivered.saturating_sub(a.delivery_tag)
                    } else {
                        ch.unacked.saturating_sub(1)
                    };
                }
            }
            M::ConfirmSelect(c) => {
                self.chans.entry(channel).or_default().confirm = true;
                if !c.no_wait {
                    self.reply(channel, M::ConfirmSelectOk(ConfirmSelectOk));
                }
            }
            M::TxSelect(_) => self.reply(channel, M::TxSelectOk(TxSelectOk)),
            M::TxCommit(_) => self.reply(channel, M::TxCommitOk(TxCommitOk)),
            M::TxRollback(_) => self.reply(channel, M::TxRollbackOk(TxRollbackOk)),
            _ => {}
        }
    }

    fn get(&mut self, channel: u16, no_ack: bool) {
        if !self.flood {
            self.reply(channel, Method::BasicGetEmpty(BasicGetEmpty { cluster_id: short!("") }));
            return;
        }
        let ch = self.chans.entry(channel).or_default();
        ch.delivered += 1;
        if !no_ack {
            ch.unacked += 1;
        }
        let ok = BasicGetOk {
            delivery_tag: ch.delivered,
            redelivered: false,
            exchange: short!(""),
            routing_key: short!("perf-test"),
            message_count: 1_000_000,
        };
        encode_method(&mut self.out, channel, &Method::BasicGetOk(ok));
        encode_content(&mut self.out, channel, 60, &[0, 0], self.body, FRAME_MAX);
    }

    /// One multiple ack per confirm channel that saw publishes since the last.
    fn send_confirms(&mut self) {
        for (&id, ch) in self.chans.iter_mut() {
            if ch.confirm && ch.published > ch.acked_to {
                ch.acked_to = ch.published;
                let m = Method::BasicAck(BasicAck {
                    delivery_tag: ch.published,
                    multiple: true,
                });
                encode_method(&mut self.out, id, &m);
            }
        }
    }

    /// Appends deliveries round-robin over consumers until the batch is full or
    /// credit runs out.
    fn produce(&mut self) {
        let body = self.body;
        for (&id, ch) in self.chans.iter_mut() {
            while self.out.len() < FLOOD_BATCH_BYTES && ch.credit() > 0 {
                let i = ch.next_consumer % ch.consumers.len();
                ch.next_consumer = ch.next_consumer.wrapping_add(1);
                ch.delivered += 1;
                let (tag, no_ack) = &ch.consumers[i];
                if !no_ack {
                    ch.unacked += 1;
                }
                let (out, tag) = (&mut self.out, ShortStr::truncate(tag));
                encode_deliver(
                    out,
                    id,
                    tag,
                    ch.delivered,
                    false,
                    short!(""),
                    short!("perf-test"),
                    &[0, 0],
                    body,
                    FRAME_MAX,
                );
            }
        }
    }
}

impl Chan {
    fn publish_done(&mut self) {
        self.content_left = None;
        if self.confirm {
            self.published += 1;
        }
    }
}
