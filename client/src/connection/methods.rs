//! The setup methods (request and reply: channels, declares, bindings, qos,
//! confirm and tx modes, consume and cancel, close) and the pushed ones the
//! hot paths append to the write buffer (acks, gets, publishes).

use std::time::Duration;

use ringmq_codec::{
    encode_method, short, BasicAck, BasicCancel, BasicConsume, BasicGet, BasicQos, ChannelClose, ChannelOpen,
    ConfirmSelect, ConnectionClose, ExchangeBind, ExchangeDeclare, ExchangeDelete, ExchangeUnbind, Method, QueueBind,
    QueueDeclare, QueueDelete, QueuePurge, QueueUnbind, ShortStr, Table, TxCommit, TxSelect,
};

use super::{sh, ClientError, Connection, Event, ExchangeOptions, PublishTemplate, QueueOptions, Result};

impl Connection {
    /// Waits for one specific method, skipping anything else (setup-time only).
    pub(super) async fn expect_method(&mut self, channel: u16, class: u16, method: u16) -> Result<Vec<u8>> {
        loop {
            if let Event::Method {
                channel: ch,
                class_id,
                method_id,
            } = self.recv().await?
            {
                if ch == channel && class_id == class && method_id == method {
                    return Ok(self.last_payload().to_vec());
                }
            }
        }
    }

    /// Sends a synchronous method and returns the reply's payload (class and
    /// method ids included, so `Method::decode` takes it as is).
    pub async fn rpc(&mut self, channel: u16, m: &Method<'_>, reply: (u16, u16)) -> Result<Vec<u8>> {
        encode_method(&mut self.wbuf, channel, m);
        self.flush().await?;
        self.expect_method(channel, reply.0, reply.1).await
    }

    pub async fn open_channel(&mut self) -> Result<u16> {
        let ch = self.next_channel;
        if ch == 0 || ch > self.channel_max {
            return Err(ClientError::Protocol(format!(
                "no channel left: channel_max is {}",
                self.channel_max
            )));
        }
        self.next_channel = ch.wrapping_add(1); // past 65535: 0, refused above
        self.rpc(
            ch,
            &Method::ChannelOpen(ChannelOpen {
                out_of_band: short!(""),
            }),
            (20, 11),
        )
        .await?;
        Ok(ch)
    }

    pub async fn close_channel(&mut self, ch: u16) -> Result<()> {
        let m = Method::ChannelClose(ChannelClose {
            reply_code: 200,
            reply_text: short!("bye"),
            class_id: 0,
            method_id: 0,
        });
        self.rpc(ch, &m, (20, 41)).await.map(drop)
    }

    pub async fn exchange_declare(&mut self, ch: u16, name: &str, kind: &str, durable: bool) -> Result<()> {
        let m = Method::ExchangeDeclare(ExchangeDeclare {
            ticket: 0,
            exchange: sh(name)?,
            kind: sh(kind)?,
            passive: false,
            durable,
            auto_delete: false,
            internal: false,
            no_wait: false,
            arguments: Table::EMPTY,
        });
        self.rpc(ch, &m, (40, 11)).await.map(drop)
    }

    /// exchange.declare with every flag and arguments (a link's setup on
    /// another broker: internal, auto-delete, passive checks).
    pub async fn exchange_declare_with(
        &mut self,
        ch: u16,
        name: &str,
        kind: &str,
        o: ExchangeOptions<'_>,
    ) -> Result<()> {
        let m = Method::ExchangeDeclare(ExchangeDeclare {
            ticket: 0,
            exchange: sh(name)?,
            kind: sh(kind)?,
            passive: o.passive,
            durable: o.durable,
            auto_delete: o.auto_delete,
            internal: o.internal,
            no_wait: false,
            arguments: Table::parse(o.arguments).map_err(|e| ClientError::Protocol(e.to_string()))?,
        });
        self.rpc(ch, &m, (40, 11)).await.map(drop)
    }

    pub async fn exchange_delete(&mut self, ch: u16, name: &str) -> Result<()> {
        let m = Method::ExchangeDelete(ExchangeDelete {
            ticket: 0,
            exchange: sh(name)?,
            if_unused: false,
            no_wait: false,
        });
        self.rpc(ch, &m, (40, 21)).await.map(drop)
    }

    /// exchange.bind (`unbind` false) or exchange.unbind (true) of
    /// `destination` to `source`; `arguments` encoded field-table entries.
    pub async fn exchange_bind(
        &mut self,
        ch: u16,
        destination: &str,
        source: &str,
        routing_key: &str,
        arguments: &[u8],
        unbind: bool,
    ) -> Result<()> {
        let arguments = Table::parse(arguments).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let (destination, source, routing_key) = (sh(destination)?, sh(source)?, sh(routing_key)?);
        if unbind {
            let m = Method::ExchangeUnbind(ExchangeUnbind {
                ticket: 0,
                destination,
                source,
                routing_key,
                no_wait: false,
                arguments,
            });
            return self.rpc(ch, &m, (40, 51)).await.map(drop);
        }
        let m = Method::ExchangeBind(ExchangeBind {
            ticket: 0,
            destination,
            source,
            routing_key,
            no_wait: false,
            arguments,
        });
        self.rpc(ch, &m, (40, 31)).await.map(drop)
    }

    /// Declares a queue; returns its name (server-named if `name` is empty) and
    /// its message count.
    pub async fn queue_declare(&mut self, ch: u16, name: &str, o: QueueOptions<'_>) -> Result<(String, u32)> {
        let m = Method::QueueDeclare(QueueDeclare {
            ticket: 0,
            queue: sh(name)?,
            passive: o.passive,
            durable: o.durable,
            exclusive: o.exclusive,
            auto_delete: o.auto_delete,
            no_wait: false,
            arguments: Table::parse(o.arguments).map_err(|e| ClientError::Protocol(e.to_string()))?,
        });
        let reply = self.rpc(ch, &m, (50, 11)).await?;
        match Method::decode(&reply) {
            Ok(Method::QueueDeclareOk(ok)) => Ok((ok.queue.to_string(), ok.message_count)),
            _ => Err(ClientError::Protocol("bad queue.declare-ok".into())),
        }
    }

    pub async fn queue_bind(&mut self, ch: u16, queue: &str, exchange: &str, routing_key: &str) -> Result<()> {
        let m = Method::QueueBind(QueueBind {
            ticket: 0,
            queue: sh(queue)?,
            exchange: sh(exchange)?,
            routing_key: sh(routing_key)?,
            no_wait: false,
            arguments: Table::EMPTY,
        });
        self.rpc(ch, &m, (50, 21)).await.map(drop)
    }

    pub async fn queue_unbind(&mut self, ch: u16, queue: &str, exchange: &str, routing_key: &str) -> Result<()> {
        let m = Method::QueueUnbind(QueueUnbind {
            ticket: 0,
            queue: sh(queue)?,
            exchange: sh(exchange)?,
            routing_key: sh(routing_key)?,
            arguments: Table::EMPTY,
        });
        self.rpc(ch, &m, (50, 51)).await.map(drop)
    }

    pub async fn queue_purge(&mut self, ch: u16, queue: &str) -> Result<()> {
        let m = Method::QueuePurge(QueuePurge {
            ticket: 0,
            queue: sh(queue)?,
            no_wait: false,
        });
        self.rpc(ch, &m, (50, 31)).await.map(drop)
    }

    pub async fn queue_delete(&mut self, ch: u16, queue: &str) -> Result<()> {
        let m = Method::QueueDelete(QueueDelete {
            ticket: 0,
            queue: sh(queue)?,
            if_unused: false,
            if_empty: false,
            no_wait: false,
        });
        self.rpc(ch, &m, (50, 41)).await.map(drop)
    }

    pub async fn qos(&mut self, ch: u16, prefetch_count: u16) -> Result<()> {
        let m = Method::BasicQos(BasicQos {
            prefetch_size: 0,
            prefetch_count,
            global: false,
        });
        self.rpc(ch, &m, (60, 11)).await.map(drop)
    }

    pub async fn confirm_select(&mut self, ch: u16) -> Result<()> {
        let m = Method::ConfirmSelect(ConfirmSelect { no_wait: false });
        self.rpc(ch, &m, (85, 11)).await.map(drop)
    }

    pub async fn tx_select(&mut self, ch: u16) -> Result<()> {
        self.rpc(ch, &Method::TxSelect(TxSelect), (90, 11)).await.map(drop)
    }

    pub async fn tx_commit(&mut self, ch: u16) -> Result<()> {
        self.rpc(ch, &Method::TxCommit(TxCommit), (90, 21)).await.map(drop)
    }

    /// Starts a consumer; returns the consumer tag.
    pub async fn consume(&mut self, ch: u16, queue: &str, no_ack: bool, arguments: &[u8]) -> Result<String> {
        let m = Method::BasicConsume(BasicConsume {
            ticket: 0,
            queue: sh(queue)?,
            consumer_tag: short!(""),
            no_local: false,
            no_ack,
            exclusive: false,
            no_wait: false,
            arguments: Table::parse(arguments).map_err(|e| ClientError::Protocol(e.to_string()))?,
        });
        let reply = self.rpc(ch, &m, (60, 21)).await?;
        match Method::decode(&reply) {
            Ok(Method::BasicConsumeOk(ok)) => Ok(ok.consumer_tag.to_string()),
            _ => Err(ClientError::Protocol("bad basic.consume-ok".into())),
        }
    }

    /// Cancels a consumer, skipping deliveries still in flight.
    pub async fn cancel(&mut self, ch: u16, consumer_tag: &str) -> Result<()> {
        let m = Method::BasicCancel(BasicCancel {
            consumer_tag: sh(consumer_tag)?,
            no_wait: false,
        });
        self.rpc(ch, &m, (60, 31)).await.map(drop)
    }

    /// Queues a basic.ack for the next flush.
    pub fn push_ack(&mut self, ch: u16, delivery_tag: u64, multiple: bool) {
        encode_method(
            &mut self.wbuf,
            ch,
            &Method::BasicAck(BasicAck { delivery_tag, multiple }),
        );
    }

    /// Queues a basic.get for the next flush.
    pub fn push_get(&mut self, ch: u16, queue: ShortStr<'_>, no_ack: bool) {
        let m = Method::BasicGet(BasicGet {
            ticket: 0,
            queue,
            no_ack,
        });
        encode_method(&mut self.wbuf, ch, &m);
    }

    /// Queues any method for the next flush (tx.commit in a pipeline, say).
    pub fn push_method(&mut self, ch: u16, m: &Method<'_>) {
        encode_method(&mut self.wbuf, ch, m);
    }

    /// Queues one publish from a template: one memcpy, plus the timestamp patch.
    #[inline]
    pub fn push_publish(&mut self, t: &PublishTemplate, stamp: Option<u64>) {
        let at = self.wbuf.len();
        self.wbuf.extend_from_slice(&t.bytes);
        if let (Some(ts), Some(off)) = (stamp, t.stamp_at) {
            self.wbuf[at + off..at + off + 8].copy_from_slice(&ts.to_be_bytes());
        }
    }

    /// Sends connection.close and waits (briefly) for close-ok.
    pub async fn close(mut self) -> Result<()> {
        let m = Method::ConnectionClose(ConnectionClose {
            reply_code: 200,
            reply_text: short!("bye"),
            class_id: 0,
            method_id: 0,
        });
        encode_method(&mut self.wbuf, 0, &m);
        self.flush().await?;
        let wait = async {
            loop {
                match self.recv().await {
                    Ok(Event::Method {
                        channel: 0,
                        class_id: 10,
                        method_id: 51,
                    }) => return,
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), wait).await;
        Ok(())
    }
}
