//! Compaction of the definitions log: the records that rebuild the current
//! durable state ([`live_records`]), how many there are ([`live_count`], cheap,
//! for deciding), and the rewrite of the log to them ([`compact`]).

use ringmq_codec::{Method, ShortStr, Table};

use super::log::{encode_record, DEAD_RECORDS_COMPACT_MIN};
use crate::core::model::ids::Dest;
use crate::core::model::vhost::{Exchange, VHost};

/// The records that rebuild the current durable state.
pub(crate) fn live_records(vhost: &VHost) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut push_gen = |m: Method<'_>, gen: u32| {
        let mut buf = Vec::new();
        encode_record(&m, gen, &mut buf);
        out.push(buf);
    };
    let mut xs: Vec<&Exchange> = vhost.exchanges.values().filter(|x| x.durable && !x.builtin).collect();
    xs.sort_by(|a, b| a.name.cmp(&b.name));
    let mut arg_bufs = Vec::new();
    for x in &xs {
        arg_bufs.push(x.arguments.to_bytes());
    }
    for (x, args) in xs.iter().zip(&arg_bufs) {
        push_gen(
            Method::ExchangeDeclare(ringmq_codec::ExchangeDeclare {
                ticket: 0,
                exchange: x.name.as_short(),
                kind: ShortStr::new(x.type_name()).expect("exchange type names are short literals"),
                passive: false,
                durable: true,
                auto_delete: x.auto_delete,
                internal: x.internal,
                no_wait: false,
                arguments: Table::parse(args).expect("own table"),
            }),
            x.store_gen,
        );
    }
    let mut qs: Vec<_> = vhost.queues.values().filter(|q| q.is_durable()).collect();
    qs.sort_by(|a, b| a.name().cmp(b.name()));
    for q in &qs {
        let args = q.arguments().to_bytes();
        // The generation goes with the declare: compaction must keep the queue
        // pointing at the folder that holds its messages.
        let m = Method::QueueDeclare(ringmq_codec::QueueDeclare {
            ticket: 0,
            queue: q.name().as_short(),
            passive: false,
            durable: true,
            exclusive: false,
            auto_delete: q.is_auto_delete(),
            no_wait: false,
            arguments: Table::parse(&args).expect("own table"),
        });
        push_gen(m, q.store_gen());
    }
    for x in vhost.exchanges.values().filter(|x| x.durable) {
        for (dest, rk, args) in x.bindings.iter() {
            let args = args.to_bytes();
            let arguments = Table::parse(&args).expect("own table");
            match dest {
                Dest::Queue(id) => {
                    let Some(q) = vhost.queues.get(id).filter(|q| q.is_durable()) else {
                        continue;
                    };
                    push_gen(
                        Method::QueueBind(ringmq_codec::QueueBind {
                            ticket: 0,
                            queue: q.name().as_short(),
                            exchange: x.name.as_short(),
                            routing_key: rk,
                            no_wait: false,
                            arguments,
                        }),
                        0,
                    );
                }
                Dest::Exchange(d) => {
                    if !vhost.exchanges.get(d).is_some_and(|d| d.durable) {
                        continue;
                    }
                    push_gen(
                        Method::ExchangeBind(ringmq_codec::ExchangeBind {
                            ticket: 0,
                            destination: d.into(),
                            source: x.name.as_short(),
                            routing_key: rk,
                            no_wait: false,
                            arguments,
                        }),
                        0,
                    );
                }
            }
        }
    }
    out
}

/// Rewrites the log to the live records (temp file, fsync, rename); whether
/// that worked (a failure is logged, the old log stays).
pub(super) fn compact(vhost: &mut VHost) -> bool {
    let live = live_records(vhost);
    match vhost.definitions.compact(live.iter().map(|r| r.as_slice())) {
        Ok(()) => {
            vhost
                .definitions
                .live_checked(live.len() as u64, DEAD_RECORDS_COMPACT_MIN);
            true
        }
        Err(e) => {
            tracing::error!(vhost = %vhost.name, error = %e, "definitions compaction failed");
            false
        }
    }
}

/// How many records [`live_records`] would return, without encoding them.
pub(crate) fn live_count(vhost: &VHost) -> u64 {
    let exchanges = vhost.exchanges.values().filter(|x| x.durable && !x.builtin).count();
    let queues = vhost.queues.values().filter(|q| q.is_durable()).count();
    let mut bindings = 0;
    for x in vhost.exchanges.values().filter(|x| x.durable) {
        for (dest, _, _) in x.bindings.iter() {
            let durable = match dest {
                Dest::Queue(id) => vhost.queues.get(id).is_some_and(|q| q.is_durable()),
                Dest::Exchange(d) => vhost.exchanges.get(d).is_some_and(|d| d.durable),
            };
            bindings += usize::from(durable);
        }
    }
    (exchanges + queues + bindings) as u64
}
