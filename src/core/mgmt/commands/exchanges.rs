//! Exchange and binding commands, and RabbitMQ's binding properties keys.

use ringmq_codec::{ExchangeDeclare, ExchangeDelete, FieldTable, Table};

use crate::core::amqp::broker::Broker;
use crate::core::model::error::short_name;
use crate::core::model::ids::Dest;

use super::{not_found, AdminCtx, AdminError, Declared, DestKind, ExchangeSpec};

impl Broker {
    pub fn admin_declare_exchange(
        &mut self,
        ctx: &AdminCtx<'_>,
        name: &str,
        spec: &ExchangeSpec,
    ) -> Result<Declared, AdminError> {
        let name = short_name("exchange", name)?;
        let kind = short_name("type", &spec.kind)?;
        let v = self.model.vhosts.get(ctx.vhost).ok_or(not_found())?;
        let existed = v.exchanges.contains_key(name.as_str());
        let args = spec.arguments.to_bytes();
        let m = ExchangeDeclare {
            ticket: 0,
            exchange: name,
            kind,
            passive: false,
            durable: spec.durable,
            auto_delete: spec.auto_delete,
            internal: spec.internal,
            no_wait: true,
            arguments: Table::parse(&args).expect("own table"),
        };
        self.admin_run(ctx, |b, c| b.exchange_declare(c, 1, m))?;
        Ok(if existed { Declared::Existed } else { Declared::Created })
    }

    pub fn admin_delete_exchange(&mut self, ctx: &AdminCtx<'_>, name: &str, if_unused: bool) -> Result<(), AdminError> {
        let v = self.model.vhosts.get(ctx.vhost).ok_or(not_found())?;
        if !v.exchanges.contains_key(name) {
            return Err(not_found());
        }
        let name = short_name("exchange", name)?;
        let m = ExchangeDelete {
            ticket: 0,
            exchange: name,
            if_unused,
            no_wait: true,
        };
        self.admin_run(ctx, |b, c| b.exchange_delete(c, 1, m))
    }

    /// Binds (or unbinds) `source` to a queue or exchange. Returns the binding's
    /// properties key.
    #[allow(clippy::too_many_arguments)]
    pub fn admin_bind(
        &mut self,
        ctx: &AdminCtx<'_>,
        source: &str,
        kind: DestKind,
        dest: &str,
        routing_key: &str,
        arguments: &FieldTable,
        bind: bool,
    ) -> Result<String, AdminError> {
        let routing_key = short_name("routing_key", routing_key)?;
        let v = self.model.vhosts.get(ctx.vhost).ok_or(not_found())?;
        let dest_exists = match kind {
            DestKind::Queue => v.queue_id(dest).is_some(),
            DestKind::Exchange => v.exchanges.contains_key(dest),
        };
        if !dest_exists || !v.exchanges.contains_key(source) {
            return Err(not_found());
        }
        // Both exist, so both are names the vhost holds: short strings already.
        let (source, dest) = (short_name("source", source)?, short_name("destination", dest)?);
        let args = arguments.to_bytes();
        let table = Table::parse(&args).expect("own table");
        self.admin_run(ctx, |b, c| match kind {
            DestKind::Queue => b.queue_bind(c, 1, dest, source, routing_key, table, true, bind),
            DestKind::Exchange => b.exchange_bind(c, 1, dest, source, routing_key, table, true, bind),
        })?;
        Ok(properties_key(&routing_key, arguments))
    }

    /// The bindings from `source` to `dest` (in a vhost), with their props keys.
    pub fn admin_find_binding(
        &self,
        vhost: &str,
        source: &str,
        kind: DestKind,
        dest: &str,
        props_key: &str,
    ) -> Option<(String, FieldTable)> {
        let v = self.model.vhosts.get(vhost)?;
        let d = match kind {
            DestKind::Queue => Dest::Queue(v.queue_id(dest)?),
            DestKind::Exchange => Dest::Exchange(v.exchanges.get_key_value(dest)?.0.clone()),
        };
        let x = v.exchanges.get(source)?;
        x.bindings
            .iter()
            .filter(|(bd, _, _)| **bd == d)
            .find(|(_, rk, args)| props_match(rk, args, props_key))
            .map(|(_, rk, args)| (rk.to_string(), args.clone()))
    }
}

/// RabbitMQ's binding properties key: the routing key alone when there are no
/// arguments (`~` for an empty key), else `key~` and a short hash of the
/// arguments. The hash is ours (RabbitMQ's is Erlang's phash2), so keys are
/// stable here but not equal to RabbitMQ's for bindings with arguments.
pub fn properties_key(routing_key: &str, arguments: &FieldTable) -> String {
    let key = quote_key(routing_key);
    if arguments.is_empty() {
        return if key.is_empty() { "~".into() } else { key };
    }
    use base64::Engine;
    use sha2::Digest;
    let h = sha2::Sha256::digest(arguments.to_bytes());
    let tail = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&h[..4]);
    format!("{key}~{tail}")
}

/// Whether a URL's properties key names this binding. As RabbitMQ, the key part is
/// unquoted rather than compared as text, so a client that sends the routing key
/// decoded (rabbitmqadmin sends `a.%23` in the URL for `a.#`, which arrives as
/// `a.#`) finds it as well as one that sends the `Location` it was given.
pub fn props_match(routing_key: &str, arguments: &FieldTable, props: &str) -> bool {
    let expected = properties_key(routing_key, arguments);
    if props == expected {
        return true;
    }
    let (key, tail) = props.rsplit_once('~').unwrap_or((props, ""));
    let expected_tail = if arguments.is_empty() {
        ""
    } else {
        expected.rsplit_once('~').map_or("", |(_, t)| t)
    };
    let key = key.replace('+', " ");
    let key = percent_encoding::percent_decode_str(&key).decode_utf8_lossy();
    key == routing_key && tail == expected_tail
}

/// RabbitMQ's `quote_binding`: form encoding (letters, digits and `_.-` kept,
/// space as `+`, every other byte `%XX`), with `~`, which separates the key from
/// the hash, as `%7E`. The URL layer percent-encodes the result once more (a
/// `Location` of `k%2Bk%252F` for the key `k k/`, as RabbitMQ 3.10 sends).
fn quote_key(k: &str) -> String {
    let mut out = String::with_capacity(k.len());
    for b in k.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
