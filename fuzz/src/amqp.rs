//! AMQP steps: every method a client sends (and some it should not), publishes
//! with any properties and body split, raw and corrupted bytes, time, group
//! commits, alarms, disconnects, restarts and, now and then, an API request.

use arbitrary::Arbitrary;
use ringmq_codec::frame::{begin_frame, encode_content_header, end_frame, FRAME_BODY};
use ringmq_codec::*;

use crate::http::HttpOp;
use crate::sim::Sim;
use crate::values::{short, Args, ExchangeKind, ExchangeName, Name};

/// A channel number: mostly the few a script opens (1-3), sometimes 0 or any.
#[derive(Debug, Clone, Copy)]
pub struct Chan(u16);

impl<'a> Arbitrary<'a> for Chan {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Chan(match u.int_in_range(0u8..=15)? {
            0..=8 => 1,
            9..=11 => 2,
            12 | 13 => 3,
            14 => 0,
            _ => u.arbitrary()?,
        }))
    }
}

impl Chan {
    pub const ONE: Chan = Chan(1);

    fn get(self) -> u16 {
        self.0
    }
}

/// A delivery tag: one the client was given, or any.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Tag {
    Seen(u8),
    Zero,
    Any(u64),
}

impl Tag {
    /// A tag for an ack on `channel`: one given on that channel, if any.
    fn get(self, sim: &Sim, c: usize, channel: u16) -> u64 {
        let tags: Vec<u64> = sim.clients[c]
            .tags
            .iter()
            .filter(|(ch, _)| *ch == channel)
            .map(|(_, t)| *t)
            .collect();
        match self {
            Tag::Seen(i) if !tags.is_empty() => tags[i as usize % tags.len()],
            Tag::Seen(_) | Tag::Zero => 0,
            Tag::Any(t) => t,
        }
    }
}

/// tune-ok values: the broker's, the minimum, or (rarely) anything.
#[derive(Debug, Clone, Copy)]
pub enum FrameMax {
    Zero,
    Min,
    Max,
    Any(u32),
}

impl<'a> Arbitrary<'a> for FrameMax {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u.int_in_range(0u8..=7)? {
            0..=2 => FrameMax::Zero,
            3 | 4 => FrameMax::Min,
            5 | 6 => FrameMax::Max,
            _ => FrameMax::Any(u.arbitrary()?),
        })
    }
}

#[derive(Debug, Clone, Copy, Arbitrary)]
pub struct Tune {
    pub channel_max: u16,
    pub frame_max: FrameMax,
    pub heartbeat: u8,
}

/// Client methods (and server methods a client should not send).
#[derive(Debug, Clone, Arbitrary)]
pub enum ClientMethod {
    ChannelOpen,
    ChannelClose(u16),
    ChannelCloseOk,
    ChannelFlow(bool),
    ExchangeDeclare {
        name: ExchangeName,
        kind: ExchangeKind,
        flags: u8,
        args: Args,
    },
    ExchangeDelete {
        name: ExchangeName,
        flags: u8,
    },
    ExchangeBind {
        dest: ExchangeName,
        src: ExchangeName,
        key: Name,
        no_wait: bool,
        args: Args,
    },
    ExchangeUnbind {
        dest: ExchangeName,
        src: ExchangeName,
        key: Name,
        no_wait: bool,
        args: Args,
    },
    QueueDeclare {
        name: Name,
        flags: u8,
        args: Args,
    },
    QueueBind {
        queue: Name,
        exchange: ExchangeName,
        key: Name,
        no_wait: bool,
        args: Args,
    },
    QueueUnbind {
        queue: Name,
        exchange: ExchangeName,
        key: Name,
        args: Args,
    },
    QueuePurge {
        queue: Name,
        no_wait: bool,
    },
    QueueDelete {
        queue: Name,
        flags: u8,
    },
    BasicQos {
        size: u32,
        count: u16,
        global: bool,
    },
    BasicConsume {
        queue: Name,
        tag: Name,
        flags: u8,
        args: Args,
    },
    BasicCancel {
        tag: Name,
        no_wait: bool,
    },
    BasicGet {
        queue: Name,
        no_ack: bool,
    },
    BasicAck {
        tag: Tag,
        multiple: bool,
    },
    BasicReject {
        tag: Tag,
        requeue: bool,
    },
    BasicNack {
        tag: Tag,
        flags: u8,
    },
    BasicRecover(bool),
    BasicRecoverAsync(bool),
    TxSelect,
    TxCommit,
    TxRollback,
    ConfirmSelect(bool),
    ConnectionClose(u16),
    ConnectionCloseOk,
    UpdateSecret(Vec<u8>),
    /// A method only the server sends (the broker must refuse it).
    ServerOnly(u8),
    /// connection.start-ok, tune-ok or open again, or out of turn.
    Handshake(u8),
}

/// Basic properties, each present or not: most one time in four, and the
/// ones that make the broker refuse a publish (a `user_id` other than the
/// login, an `expiration` that is not a number) rarely.
#[derive(Debug, Clone, Default)]
pub struct Props {
    pub content_type: Option<Name>,
    pub headers: Option<Args>,
    pub delivery_mode: Option<u8>,
    pub priority: Option<u8>,
    pub correlation_id: Option<Name>,
    pub reply_to: Option<Name>,
    pub expiration: Option<Name>,
    pub message_id: Option<Name>,
    pub timestamp: Option<u64>,
    pub user_id: Option<Name>,
    pub app_id: Option<Name>,
}

impl<'a> Arbitrary<'a> for Props {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        fn some<'a, T: Arbitrary<'a>>(u: &mut arbitrary::Unstructured<'a>, one_in: u8) -> arbitrary::Result<Option<T>> {
            Ok(if u.ratio(1, one_in)? {
                Some(u.arbitrary()?)
            } else {
                None
            })
        }
        let expiration = if u.ratio(1u8, 4u8)? {
            Some(if u.ratio(3u8, 4u8)? {
                Name::Any(u.int_in_range(0u32..=3_000)?.to_string())
            } else {
                u.arbitrary()?
            })
        } else {
            None
        };
        let user_id = if u.ratio(1u8, 16u8)? {
            Some(if u.ratio(3u8, 4u8)? {
                Name::Any("guest".into())
            } else {
                u.arbitrary()?
            })
        } else {
            None
        };
        Ok(Props {
            content_type: some(u, 4)?,
            headers: some(u, 4)?,
            delivery_mode: if u.ratio(1u8, 2u8)? {
                Some(u.int_in_range(1..=2)?)
            } else {
                some(u, 8)?
            },
            priority: some(u, 4)?,
            correlation_id: some(u, 4)?,
            reply_to: some(u, 8)?,
            expiration,
            message_id: some(u, 4)?,
            timestamp: some(u, 4)?,
            user_id,
            app_id: some(u, 4)?,
        })
    }
}

/// basic.publish, its header and body frames.
#[derive(Debug, Clone)]
pub struct Publish {
    pub conn: u8,
    pub channel: Chan,
    pub exchange: ExchangeName,
    pub key: Name,
    /// Bit 0: mandatory; all bits: immediate too (which closes the connection).
    pub flags: u8,
    pub props: Props,
    pub body: Body,
    /// Body frames of at most this many bytes (0: as large as allowed).
    pub chunk: u16,
    /// The header announces this many more (or fewer) bytes than are sent.
    pub size_delta: Option<i8>,
}

impl<'a> Arbitrary<'a> for Publish {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Publish {
            conn: u.arbitrary()?,
            channel: u.arbitrary()?,
            exchange: u.arbitrary()?,
            key: u.arbitrary()?,
            flags: u.arbitrary()?,
            props: u.arbitrary()?,
            body: u.arbitrary()?,
            chunk: if u.ratio(1u8, 4u8)? { u.arbitrary()? } else { 0 },
            // A wrong size ends the connection: one publish in sixteen.
            size_delta: if u.ratio(1u8, 16u8)? {
                Some(u.arbitrary()?)
            } else {
                None
            },
        })
    }
}

/// A message body: bytes, or now and then a large body of zeros (to 2 MiB:
/// past frame_max and the broker's 1 MiB message limit).
#[derive(Debug, Clone)]
pub enum Body {
    Bytes(Vec<u8>),
    Big(u32),
}

impl<'a> Arbitrary<'a> for Body {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(if u.ratio(1u8, 16u8)? {
            Body::Big(u.int_in_range(0..=2 << 20)?)
        } else {
            Body::Bytes(u.arbitrary()?)
        })
    }
}

#[derive(Debug, Clone)]
pub enum AmqpOp {
    Connect(Tune),
    /// A connection whose handshake the script sends itself (raw bytes, methods).
    ConnectBare,
    Method {
        conn: u8,
        channel: Chan,
        method: ClientMethod,
    },
    Publish(Publish),
    Raw {
        conn: u8,
        bytes: Vec<u8>,
    },
    /// A method frame with some bytes changed (bad UTF-8, lengths, flags).
    Mutated {
        conn: u8,
        channel: Chan,
        method: ClientMethod,
        flips: Vec<(u16, u8)>,
    },
    Heartbeat(u8),
    Advance(Time),
    Sync(bool),
    Disconnect(u8),
    DiskAlarm(bool),
    MemAlarm(bool),
    Restart {
        crash: bool,
    },
    Api(HttpOp),
}

impl<'a> Arbitrary<'a> for AmqpOp {
    /// Weighted: mostly methods and publishes (with the methods that make
    /// deliveries, declare, bind, consume, get, ack, more often than the
    /// rest), some time and group commits, few restarts and alarms.
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let method = |u: &mut arbitrary::Unstructured<'a>, m: ClientMethod| -> arbitrary::Result<AmqpOp> {
            Ok(AmqpOp::Method {
                conn: u.arbitrary()?,
                channel: u.arbitrary()?,
                method: m,
            })
        };
        Ok(match u.int_in_range(0u8..=99)? {
            0..=5 => {
                let m = ClientMethod::QueueDeclare {
                    name: u.arbitrary()?,
                    flags: u.arbitrary()?,
                    args: u.arbitrary()?,
                };
                method(u, m)?
            }
            6..=9 => {
                let m = ClientMethod::QueueBind {
                    queue: u.arbitrary()?,
                    exchange: u.arbitrary()?,
                    key: u.arbitrary()?,
                    no_wait: u.arbitrary()?,
                    args: u.arbitrary()?,
                };
                method(u, m)?
            }
            10..=13 => {
                let m = ClientMethod::BasicConsume {
                    queue: u.arbitrary()?,
                    tag: u.arbitrary()?,
                    flags: u.arbitrary()?,
                    args: u.arbitrary()?,
                };
                method(u, m)?
            }
            14..=17 => {
                let m = ClientMethod::BasicGet {
                    queue: u.arbitrary()?,
                    no_ack: u.arbitrary()?,
                };
                method(u, m)?
            }
            18..=22 => {
                let m = ClientMethod::BasicAck {
                    tag: u.arbitrary()?,
                    multiple: u.arbitrary()?,
                };
                method(u, m)?
            }
            23..=25 => {
                let m = ClientMethod::ExchangeDeclare {
                    name: u.arbitrary()?,
                    kind: u.arbitrary()?,
                    flags: u.arbitrary()?,
                    args: u.arbitrary()?,
                };
                method(u, m)?
            }
            26..=45 => AmqpOp::Method {
                conn: u.arbitrary()?,
                channel: u.arbitrary()?,
                method: u.arbitrary()?,
            },
            46..=65 => AmqpOp::Publish(u.arbitrary()?),
            66..=67 => AmqpOp::Raw {
                conn: u.arbitrary()?,
                bytes: u.arbitrary()?,
            },
            68..=71 => AmqpOp::Mutated {
                conn: u.arbitrary()?,
                channel: u.arbitrary()?,
                method: u.arbitrary()?,
                flips: u.arbitrary()?,
            },
            72 => AmqpOp::Heartbeat(u.arbitrary()?),
            73..=80 => AmqpOp::Advance(u.arbitrary()?),
            81..=84 => AmqpOp::Sync(u.ratio(1u8, 8u8)?),
            85..=86 => AmqpOp::Connect(u.arbitrary()?),
            87 => AmqpOp::ConnectBare,
            88..=89 => AmqpOp::Disconnect(u.arbitrary()?),
            90 => AmqpOp::DiskAlarm(u.arbitrary()?),
            91 => AmqpOp::MemAlarm(u.arbitrary()?),
            92..=93 => AmqpOp::Restart { crash: u.arbitrary()? },
            _ => AmqpOp::Api(u.arbitrary()?),
        })
    }
}

/// The state a script starts from, so that its first publish can already be
/// routed and delivered: one connection through its handshake, and by
/// `bits` (mostly all set): queues q0 and q1 (durable) and a direct exchange
/// x0 with bindings x0 -"a.b"-> q1, amq.topic -"#"-> q0 (bit 0); a consumer
/// with manual acks and prefetch 2 on q1, channel 2 (bit 1); confirms on
/// channel 1 (bit 2).
pub fn prelude(sim: &mut Sim, bits: u8) {
    AmqpOp::Connect(Tune {
        channel_max: 0,
        frame_max: FrameMax::Zero,
        heartbeat: 0,
    })
    .run(sim);
    let all = bits & 0x80 == 0;
    let on = |n: u8| all || bits & (1 << n) != 0;
    let name = |s: &str| Name::Any(s.into());
    let exchange = |s: &str| ExchangeName::Any(name(s));
    let mut steps = Vec::new();
    let mut method = |channel: u16, method: ClientMethod| {
        steps.push(AmqpOp::Method {
            conn: 0,
            channel: Chan(channel),
            method,
        })
    };
    if on(0) {
        for (q, flags) in [("q0", 0), ("q1", 1)] {
            let (name, args) = (name(q), Args::default());
            method(1, ClientMethod::QueueDeclare { name, flags, args });
        }
        method(
            1,
            ClientMethod::ExchangeDeclare {
                name: exchange("x0"),
                kind: ExchangeKind("direct".into()),
                flags: 1,
                args: Args::default(),
            },
        );
        for (q, x, key) in [("q1", "x0", "a.b"), ("q0", "amq.topic", "#")] {
            let (queue, exchange, key) = (name(q), exchange(x), name(key));
            let args = Args::default();
            method(
                1,
                ClientMethod::QueueBind {
                    queue,
                    exchange,
                    key,
                    no_wait: false,
                    args,
                },
            );
        }
    }
    if on(1) {
        let qos = ClientMethod::BasicQos {
            size: 0,
            count: 2,
            global: false,
        };
        method(2, qos);
        let (queue, tag, args) = (name("q1"), name("c1"), Args::default());
        method(
            2,
            ClientMethod::BasicConsume {
                queue,
                tag,
                flags: 0,
                args,
            },
        );
    }
    if on(2) {
        method(1, ClientMethod::ConfirmSelect(false));
    }
    for step in &steps {
        step.run(sim);
    }
}

/// How far the clock moves.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Time {
    Ms(u8),
    Secs(u8),
    Long(u32),
}

impl AmqpOp {
    pub fn run(&self, sim: &mut Sim) {
        match self {
            AmqpOp::Connect(t) => {
                let frame_max = match t.frame_max {
                    FrameMax::Zero => 0,
                    FrameMax::Min => FRAME_MIN_SIZE,
                    FrameMax::Max => crate::sim::FRAME_MAX,
                    FrameMax::Any(n) => n,
                };
                sim.connect(Some((t.channel_max, frame_max, t.heartbeat as u16)));
            }
            AmqpOp::ConnectBare => {
                sim.connect(None);
            }
            AmqpOp::Method { conn, channel, method } => {
                let Some(c) = sim.pick(*conn) else { return };
                let Some(c) = sim.ensure_channel(c, channel.get()) else {
                    return;
                };
                let mut out = Vec::new();
                method.encode(sim, c, channel.get(), &mut out);
                if let ClientMethod::ConfirmSelect(_) = method {
                    sim.clients[c].confirm_select(channel.get());
                }
                sim.send(c, &out);
            }
            AmqpOp::Publish(p) => p.run(sim),
            AmqpOp::Raw { conn, bytes } => {
                let Some(c) = sim.pick(*conn) else { return };
                sim.clients[c].forget_confirms();
                sim.send(c, bytes);
            }
            AmqpOp::Mutated {
                conn,
                channel,
                method,
                flips,
            } => {
                let Some(c) = sim.pick(*conn) else { return };
                let Some(c) = sim.ensure_channel(c, channel.get()) else {
                    return;
                };
                sim.clients[c].forget_confirms();
                let mut out = Vec::new();
                method.encode(sim, c, channel.get(), &mut out);
                for (at, byte) in flips {
                    let len = out.len();
                    out[*at as usize % len] = *byte;
                }
                sim.send(c, &out);
            }
            AmqpOp::Heartbeat(conn) => {
                let Some(c) = sim.pick(*conn) else { return };
                let mut out = Vec::new();
                encode_heartbeat(&mut out);
                sim.send(c, &out);
            }
            AmqpOp::Advance(t) => sim.advance(match *t {
                Time::Ms(n) => n as u64,
                Time::Secs(n) => n as u64 * 1000,
                Time::Long(n) => n as u64,
            }),
            AmqpOp::Sync(fail) => sim.sync(*fail),
            AmqpOp::Disconnect(conn) => {
                if let Some(c) = sim.pick(*conn) {
                    sim.disconnect(c);
                }
            }
            AmqpOp::DiskAlarm(on) => sim.disk_alarm(*on),
            AmqpOp::MemAlarm(on) => sim.mem_alarm(*on),
            AmqpOp::Restart { crash } => sim.restart(*crash),
            AmqpOp::Api(op) => op.run(sim),
        }
    }
}

fn bit(flags: u8, n: u8) -> bool {
    flags & (1 << n) != 0
}

/// Two bits set: for flags that end most scripts early when set (passive on a
/// missing name, no-wait hiding the answer), so they are set one time in four.
fn both(flags: u8, a: u8, b: u8) -> bool {
    bit(flags, a) && bit(flags, b)
}

impl ClientMethod {
    /// Appends the method frame for client `c` on `channel`.
    pub fn encode(&self, sim: &Sim, c: usize, channel: u16, out: &mut Vec<u8>) {
        let seen = &sim.seen_names;
        let name = |n: &Name| n.resolve(seen);
        let table = |a: &Args| a.to_bytes(seen);
        let m = |out: &mut Vec<u8>, m: Method<'_>| encode_method(out, channel, &m);
        match self {
            ClientMethod::ChannelOpen => m(out, Method::ChannelOpen(ChannelOpen { out_of_band: short("") })),
            ClientMethod::ChannelClose(code) => m(
                out,
                Method::ChannelClose(ChannelClose {
                    reply_code: *code,
                    reply_text: short("bye"),
                    class_id: 0,
                    method_id: 0,
                }),
            ),
            ClientMethod::ChannelCloseOk => m(out, Method::ChannelCloseOk(ChannelCloseOk)),
            ClientMethod::ChannelFlow(active) => m(out, Method::ChannelFlow(ChannelFlow { active: *active })),
            ClientMethod::ExchangeDeclare {
                name: n,
                kind,
                flags,
                args,
            } => {
                let (n, kind, args) = (n.resolve(seen), kind.0.clone(), table(args));
                m(
                    out,
                    Method::ExchangeDeclare(ExchangeDeclare {
                        ticket: 0,
                        exchange: short(&n),
                        kind: short(&kind),
                        passive: both(*flags, 4, 5),
                        durable: bit(*flags, 0),
                        auto_delete: bit(*flags, 1),
                        internal: both(*flags, 2, 6),
                        no_wait: both(*flags, 3, 7),
                        arguments: Table::parse(&args).expect("own table"),
                    }),
                )
            }
            ClientMethod::ExchangeDelete { name: n, flags } => {
                let n = n.resolve(seen);
                m(
                    out,
                    Method::ExchangeDelete(ExchangeDelete {
                        ticket: 0,
                        exchange: short(&n),
                        if_unused: bit(*flags, 0),
                        no_wait: bit(*flags, 1),
                    }),
                )
            }
            ClientMethod::ExchangeBind {
                dest,
                src,
                key,
                no_wait,
                args,
            }
            | ClientMethod::ExchangeUnbind {
                dest,
                src,
                key,
                no_wait,
                args,
            } => {
                let (d, s, k, args) = (dest.resolve(seen), src.resolve(seen), name(key), table(args));
                let arguments = Table::parse(&args).expect("own table");
                let (destination, source, routing_key) = (short(&d), short(&s), short(&k));
                let method = if matches!(self, ClientMethod::ExchangeBind { .. }) {
                    Method::ExchangeBind(ExchangeBind {
                        ticket: 0,
                        destination,
                        source,
                        routing_key,
                        no_wait: *no_wait,
                        arguments,
                    })
                } else {
                    Method::ExchangeUnbind(ExchangeUnbind {
                        ticket: 0,
                        destination,
                        source,
                        routing_key,
                        no_wait: *no_wait,
                        arguments,
                    })
                };
                m(out, method)
            }
            ClientMethod::QueueDeclare { name: n, flags, args } => {
                let (n, args) = (name(n), table(args));
                m(
                    out,
                    Method::QueueDeclare(QueueDeclare {
                        ticket: 0,
                        queue: short(&n),
                        passive: both(*flags, 4, 5),
                        durable: bit(*flags, 0),
                        exclusive: bit(*flags, 1),
                        auto_delete: bit(*flags, 2),
                        no_wait: both(*flags, 3, 6),
                        arguments: Table::parse(&args).expect("own table"),
                    }),
                )
            }
            ClientMethod::QueueBind {
                queue,
                exchange,
                key,
                no_wait,
                args,
            } => {
                let (q, x, k, args) = (name(queue), exchange.resolve(seen), name(key), table(args));
                m(
                    out,
                    Method::QueueBind(QueueBind {
                        ticket: 0,
                        queue: short(&q),
                        exchange: short(&x),
                        routing_key: short(&k),
                        no_wait: *no_wait,
                        arguments: Table::parse(&args).expect("own table"),
                    }),
                )
            }
            ClientMethod::QueueUnbind {
                queue,
                exchange,
                key,
                args,
            } => {
                let (q, x, k, args) = (name(queue), exchange.resolve(seen), name(key), table(args));
                m(
                    out,
                    Method::QueueUnbind(QueueUnbind {
                        ticket: 0,
                        queue: short(&q),
                        exchange: short(&x),
                        routing_key: short(&k),
                        arguments: Table::parse(&args).expect("own table"),
                    }),
                )
            }
            ClientMethod::QueuePurge { queue, no_wait } => {
                let q = name(queue);
                m(
                    out,
                    Method::QueuePurge(QueuePurge {
                        ticket: 0,
                        queue: short(&q),
                        no_wait: *no_wait,
                    }),
                )
            }
            ClientMethod::QueueDelete { queue, flags } => {
                let q = name(queue);
                m(
                    out,
                    Method::QueueDelete(QueueDelete {
                        ticket: 0,
                        queue: short(&q),
                        if_unused: bit(*flags, 0),
                        if_empty: bit(*flags, 1),
                        no_wait: bit(*flags, 2),
                    }),
                )
            }
            ClientMethod::BasicQos { size, count, global } => m(
                out,
                Method::BasicQos(BasicQos {
                    prefetch_size: if *size > 0xffff { 0 } else { *size },
                    prefetch_count: *count,
                    global: *global,
                }),
            ),
            ClientMethod::BasicConsume {
                queue,
                tag,
                flags,
                args,
            } => {
                let (q, t, args) = (name(queue), name(tag), table(args));
                m(
                    out,
                    Method::BasicConsume(BasicConsume {
                        ticket: 0,
                        queue: short(&q),
                        consumer_tag: short(&t),
                        no_local: both(*flags, 0, 4),
                        no_ack: bit(*flags, 1),
                        exclusive: both(*flags, 2, 5),
                        no_wait: both(*flags, 3, 6),
                        arguments: Table::parse(&args).expect("own table"),
                    }),
                )
            }
            ClientMethod::BasicCancel { tag, no_wait } => {
                let t = name(tag);
                m(
                    out,
                    Method::BasicCancel(BasicCancel {
                        consumer_tag: short(&t),
                        no_wait: *no_wait,
                    }),
                )
            }
            ClientMethod::BasicGet { queue, no_ack } => {
                let q = name(queue);
                m(
                    out,
                    Method::BasicGet(BasicGet {
                        ticket: 0,
                        queue: short(&q),
                        no_ack: *no_ack,
                    }),
                )
            }
            ClientMethod::BasicAck { tag, multiple } => m(
                out,
                Method::BasicAck(BasicAck {
                    delivery_tag: tag.get(sim, c, channel),
                    multiple: *multiple,
                }),
            ),
            ClientMethod::BasicReject { tag, requeue } => m(
                out,
                Method::BasicReject(BasicReject {
                    delivery_tag: tag.get(sim, c, channel),
                    requeue: *requeue,
                }),
            ),
            ClientMethod::BasicNack { tag, flags } => m(
                out,
                Method::BasicNack(BasicNack {
                    delivery_tag: tag.get(sim, c, channel),
                    multiple: bit(*flags, 0),
                    requeue: bit(*flags, 1),
                }),
            ),
            ClientMethod::BasicRecover(requeue) => m(out, Method::BasicRecover(BasicRecover { requeue: *requeue })),
            ClientMethod::BasicRecoverAsync(requeue) => {
                m(out, Method::BasicRecoverAsync(BasicRecoverAsync { requeue: *requeue }))
            }
            ClientMethod::TxSelect => m(out, Method::TxSelect(TxSelect)),
            ClientMethod::TxCommit => m(out, Method::TxCommit(TxCommit)),
            ClientMethod::TxRollback => m(out, Method::TxRollback(TxRollback)),
            ClientMethod::ConfirmSelect(no_wait) => m(out, Method::ConfirmSelect(ConfirmSelect { no_wait: *no_wait })),
            ClientMethod::ConnectionClose(code) => m(
                out,
                Method::ConnectionClose(ConnectionClose {
                    reply_code: *code,
                    reply_text: short("bye"),
                    class_id: 0,
                    method_id: 0,
                }),
            ),
            ClientMethod::ConnectionCloseOk => m(out, Method::ConnectionCloseOk(ConnectionCloseOk)),
            ClientMethod::UpdateSecret(secret) => m(
                out,
                Method::ConnectionUpdateSecret(ConnectionUpdateSecret {
                    new_secret: secret,
                    reason: short("fuzz"),
                }),
            ),
            ClientMethod::ServerOnly(which) => {
                let method = match which % 6 {
                    0 => Method::BasicDeliver(BasicDeliver {
                        consumer_tag: short("t"),
                        delivery_tag: 1,
                        redelivered: false,
                        exchange: short(""),
                        routing_key: short("q0"),
                    }),
                    1 => Method::QueueDeclareOk(QueueDeclareOk {
                        queue: short("q0"),
                        message_count: 0,
                        consumer_count: 0,
                    }),
                    2 => Method::ConnectionTune(ConnectionTune {
                        channel_max: 0,
                        frame_max: 0,
                        heartbeat: 0,
                    }),
                    3 => Method::ChannelOpenOk(ChannelOpenOk { channel_id: b"" }),
                    4 => Method::BasicConsumeOk(BasicConsumeOk {
                        consumer_tag: short("t"),
                    }),
                    _ => Method::ConfirmSelectOk(ConfirmSelectOk),
                };
                m(out, method)
            }
            ClientMethod::Handshake(which) => {
                let method = match which % 4 {
                    0 => Method::ConnectionStartOk(ConnectionStartOk {
                        client_properties: Table::EMPTY,
                        mechanism: short("PLAIN"),
                        response: b"\0guest\0guest",
                        locale: short("en_US"),
                    }),
                    1 => Method::ConnectionTuneOk(ConnectionTuneOk {
                        channel_max: 0,
                        frame_max: 0,
                        heartbeat: 0,
                    }),
                    2 => Method::ConnectionOpen(ConnectionOpen {
                        virtual_host: short("/"),
                        capabilities: short(""),
                        insist: false,
                    }),
                    _ => Method::ConnectionSecureOk(ConnectionSecureOk { response: b"x" }),
                };
                if which % 8 >= 4 {
                    out.extend_from_slice(&PROTOCOL_HEADER);
                }
                m(out, method)
            }
        }
    }
}

impl Publish {
    fn run(&self, sim: &mut Sim) {
        let channel = self.channel.get();
        let Some(c) = sim.pick(self.conn) else { return };
        let Some(c) = sim.ensure_channel(c, channel) else {
            return;
        };
        let seen = sim.seen_names.clone();
        let (x, k) = (self.exchange.resolve(&seen), self.key.resolve(&seen));
        let frame_max = sim.frame_max(c);
        let mut out = Vec::new();
        encode_method(
            &mut out,
            channel,
            &Method::BasicPublish(BasicPublish {
                ticket: 0,
                exchange: short(&x),
                routing_key: short(&k),
                mandatory: self.flags & 1 != 0,
                immediate: self.flags == 0xff,
            }),
        );
        let big;
        let body: &[u8] = match &self.body {
            Body::Big(n) => {
                big = vec![0u8; *n as usize];
                &big
            }
            Body::Bytes(b) => b,
        };
        let props = self.props.encode(&seen);
        let size = match self.size_delta {
            Some(d) => (body.len() as i64 + d as i64).max(0) as u64,
            None => body.len() as u64,
        };
        encode_content_header(&mut out, channel, 60, &props, size);
        let chunk_max = body_chunk_max(frame_max);
        let chunk = match self.chunk as usize {
            0 => chunk_max,
            n => n.min(chunk_max),
        };
        for piece in body.chunks(chunk) {
            let at = begin_frame(&mut out, FRAME_BODY, channel);
            out.extend_from_slice(piece);
            end_frame(&mut out, at);
        }
        sim.clients[c].published(channel);
        sim.send(c, &out);
    }
}

impl Props {
    /// The raw properties (flags and values) of a content header.
    fn encode(&self, seen: &[String]) -> Vec<u8> {
        let s = |n: &Option<Name>| n.as_ref().map(|n| n.resolve(seen));
        let (content_type, correlation_id, reply_to) =
            (s(&self.content_type), s(&self.correlation_id), s(&self.reply_to));
        let (expiration, message_id, user_id, app_id) = (
            s(&self.expiration),
            s(&self.message_id),
            s(&self.user_id),
            s(&self.app_id),
        );
        let headers = self.headers.as_ref().map(|h| h.to_bytes(seen));
        let p = BasicProperties {
            content_type: content_type.as_deref().map(short),
            content_encoding: None,
            headers: headers.as_deref().map(|h| Table::parse(h).expect("own table")),
            delivery_mode: self.delivery_mode,
            priority: self.priority,
            correlation_id: correlation_id.as_deref().map(short),
            reply_to: reply_to.as_deref().map(short),
            expiration: expiration.as_deref().map(short),
            message_id: message_id.as_deref().map(short),
            timestamp: self.timestamp,
            kind: None,
            user_id: user_id.as_deref().map(short),
            app_id: app_id.as_deref().map(short),
            cluster_id: None,
        };
        let mut out = Vec::new();
        p.encode(&mut out);
        out
    }
}
