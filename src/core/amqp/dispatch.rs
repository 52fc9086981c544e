//! Frame dispatch: the handshake, connection-class methods, and per-channel
//! routing of methods and content frames to their handlers.

use ringmq_codec::{
    encode_method, ChannelCloseOk, ChannelFlowOk, ChannelOpenOk, ConnectionCloseOk, ConnectionOpenOk, ConnectionTune,
    ConnectionUpdateSecretOk, Frame, Method, ReplyCode, FRAME_MIN_SIZE,
};

use crate::core::access::auth::{parse_response, INTERNAL_MECHANISM};
use crate::core::amqp::broker::Broker;
use crate::core::amqp::channel::{Channel, ChannelState};
use crate::core::amqp::connection::{ClientCapabilities, ConnState, Connection};
use crate::core::amqp::error::{channel_error, connection_error, in_publish, Exception, MethodResult};

impl Broker {
    pub(crate) fn handle_handshake(&mut self, conn: &mut Connection, frame: Frame<'_>, now_ms: u64) -> MethodResult {
        let Frame::Method { channel: 0, method } = frame else {
            return Err(connection_error(
                ReplyCode::CommandInvalid,
                "expected a connection method during the handshake",
            ));
        };
        match (conn.state, method) {
            (ConnState::AwaitingStartOk, Method::ConnectionStartOk(m)) => {
                // Kept as the wire bytes (one allocation, ~250 B), decoded when the API asks:
                // as a map of owned values it was ~1.2 KB of each connection.
                conn.client_properties = m.client_properties.as_bytes().into();
                conn.capabilities = ClientCapabilities::from_client_properties(&m.client_properties);
                // EXTERNAL takes the name from the certificate and ignores the
                // response (an authorization identity at most), as RabbitMQ's
                // rabbit_auth_mechanism_ssl does.
                let (login, mechanism) = if m.mechanism.as_str() == "EXTERNAL" {
                    let login = self
                        .users
                        .authenticate_external(&conn.cert_identity, conn.peer_is_loopback);
                    let user = match &conn.cert_identity {
                        crate::core::access::auth::CertIdentity::Name(n) => n.clone(),
                        _ => String::new(),
                    };
                    (login.map_err(|why| (user, why)), "EXTERNAL")
                } else if m.mechanism.as_str() == INTERNAL_MECHANISM {
                    let Some((user, secret)) = parse_response("PLAIN", m.response) else {
                        return Err(connection_error(
                            ReplyCode::AccessRefused,
                            format!("malformed response for mechanism {INTERNAL_MECHANISM}"),
                        ));
                    };
                    let login = self.users.authenticate_internal(
                        user,
                        secret.as_bytes(),
                        self.config.internal_secret.as_ref(),
                        conn.peer_is_loopback,
                    );
                    (login.map_err(|why| (user.to_owned(), why)), INTERNAL_MECHANISM)
                } else {
                    let Some((user, pass)) = parse_response(&m.mechanism, m.response) else {
                        return Err(connection_error(
                            ReplyCode::AccessRefused,
                            format!("unsupported or malformed authentication mechanism {}", m.mechanism),
                        ));
                    };
                    let mechanism = if m.mechanism.as_str() == "AMQPLAIN" {
                        "AMQPLAIN"
                    } else {
                        "PLAIN"
                    };
                    let login = self.users.authenticate(user, pass, conn.peer_is_loopback);
                    (login.map_err(|why| (user.to_owned(), why)), mechanism)
                };
                match login {
                    Ok(u) => {
                        conn.user = Some(u.name.clone());
                        conn.auth_mechanism = mechanism;
                        self.node_stats.logins_ok += 1;
                    }
                    Err((user, why)) => {
                        self.node_stats.logins_failed += 1;
                        // Logged without the password; answered after a delay.
                        tracing::warn!(peer = %conn.peer, %user, why, mechanism, "login refused");
                        conn.release_at_ms = Some(now_ms + crate::core::amqp::connection::LOGIN_FAILURE_DELAY_MS);
                        if !conn.capabilities.authentication_failure_close {
                            // Old clients expect the socket to just close.
                            conn.state = ConnState::Closed;
                            return Ok(());
                        }
                        return Err(connection_error(
                            ReplyCode::AccessRefused,
                            format!(
                                "Login was refused using authentication mechanism {}. For details see the broker logfile.",
                                m.mechanism
                            ),
                        ));
                    }
                }
                let tune = ConnectionTune {
                    channel_max: self.config.channel_max,
                    frame_max: self.config.frame_max,
                    heartbeat: self.config.heartbeat_secs,
                };
                encode_method(&mut conn.out, 0, &Method::ConnectionTune(tune));
                conn.state = ConnState::AwaitingTuneOk;
                Ok(())
            }
            (ConnState::AwaitingTuneOk, Method::ConnectionTuneOk(m)) => {
                let frame_max = if m.frame_max == 0 {
                    self.config.frame_max
                } else {
                    m.frame_max
                };
                if frame_max > self.config.frame_max {
                    return Err(connection_error(
                        ReplyCode::NotAllowed,
                        format!("frame_max={} > {} max size", frame_max, self.config.frame_max),
                    ));
                }
                if frame_max < FRAME_MIN_SIZE {
                    return Err(connection_error(
                        ReplyCode::NotAllowed,
                        format!("frame_max={frame_max} < {FRAME_MIN_SIZE} min size"),
                    ));
                }
                let channel_max = if m.channel_max == 0 {
                    self.config.channel_max
                } else {
                    m.channel_max.min(self.config.channel_max)
                };
                conn.tuning.frame_max = frame_max;
                conn.tuning.channel_max = channel_max;
                // RabbitMQ takes the client's heartbeat from tune-ok as is.
                conn.tuning.heartbeat_secs = m.heartbeat;
                conn.state = ConnState::AwaitingOpen;
                Ok(())
            }
            (ConnState::AwaitingOpen, Method::ConnectionOpen(m)) => {
                let Some((name, _)) = self.model.vhosts.get_key_value(m.virtual_host.as_str()) else {
                    return Err(connection_error(
                        ReplyCode::NotAllowed,
                        format!("vhost {} not found", m.virtual_host),
                    ));
                };
                let user = conn.user.clone().unwrap_or_default();
                let Some(permission) = self.permissions.get(&user, &m.virtual_host) else {
                    return Err(connection_error(
                        ReplyCode::NotAllowed,
                        format!("access to vhost '{}' refused for user '{user}'", m.virtual_host),
                    ));
                };
                let vlimit = self
                    .model
                    .vhosts
                    .get(m.virtual_host.as_str())
                    .and_then(|v| v.meta.limits.max_connections);
                if let Some(limit) = vlimit {
                    if self.vhost_connection_count(&m.virtual_host) >= limit {
                        return Err(connection_error(
                            ReplyCode::NotAllowed,
                            format!(
                                "access to vhost '{}' refused for user '{user}': connection limit ({limit}) is reached",
                                m.virtual_host
                            ),
                        ));
                    }
                }
                if let Some(limit) = self.users.get(&user).and_then(|u| u.limits.max_connections) {
                    if self.user_usage(&user).0 >= limit {
                        return Err(connection_error(
                            ReplyCode::NotAllowed,
                            format!("Connection refused for user '{user}': user connection limit ({limit}) is reached"),
                        ));
                    }
                }
                let name = name.clone();
                conn.permission = Some(permission);
                conn.vhost = Some(name.clone());
                encode_method(
                    &mut conn.out,
                    0,
                    &Method::ConnectionOpenOk(ConnectionOpenOk {
                        known_hosts: ringmq_codec::short!(""),
                    }),
                );
                conn.state = ConnState::Open;
                if std::mem::take(&mut conn.in_handshake) {
                    self.handshakes.finished();
                }
                tracing::info!(conn = %conn.describe(), vhost = %name, "connection opened");
                Ok(())
            }
            (_, Method::ConnectionClose(_)) => {
                encode_method(&mut conn.out, 0, &Method::ConnectionCloseOk(ConnectionCloseOk));
                conn.close_ok_sent = true;
                conn.state = ConnState::Closed;
                Ok(())
            }
            (_, m) => Err(connection_error(
                ReplyCode::CommandInvalid,
                format!("unexpected {} during the connection handshake", m.name()),
            )),
        }
    }

    pub(crate) fn handle_connection_method(&mut self, conn: &mut Connection, frame: Frame<'_>) -> MethodResult {
        let Frame::Method { method, .. } = frame else {
            return Err(connection_error(
                ReplyCode::UnexpectedFrame,
                "content frame on channel 0",
            ));
        };
        match method {
            Method::ConnectionClose(m) => {
                tracing::debug!(conn = %conn.describe(), code = m.reply_code, text = %m.reply_text, "client closed connection");
                let channels: Vec<u16> = conn.channels.keys().copied().collect();
                for ch in channels {
                    self.release_channel(conn, ch);
                }
                encode_method(&mut conn.out, 0, &Method::ConnectionCloseOk(ConnectionCloseOk));
                conn.close_ok_sent = true;
                conn.state = ConnState::Closed;
                Ok(())
            }
            Method::ConnectionUpdateSecret(_) => {
                // Tokens are not used for authentication yet; accept, as RabbitMQ does
                // for mechanisms without expiry.
                encode_method(
                    &mut conn.out,
                    0,
                    &Method::ConnectionUpdateSecretOk(ConnectionUpdateSecretOk),
                );
                Ok(())
            }
            Method::ConnectionBlocked(_) | Method::ConnectionUnblocked(_) => Ok(()),
            m => Err(connection_error(
                ReplyCode::CommandInvalid,
                format!("{} is not valid on channel 0 once open", m.name()),
            )),
        }
    }

    pub(crate) fn handle_channel_frame(
        &mut self,
        conn: &mut Connection,
        channel: u16,
        frame: Frame<'_>,
    ) -> MethodResult {
        // AMQP 0-9-1 §1.4.2.6: usable channel numbers are 1..=channel-max. (RabbitMQ
        // 3.10 and LavinMQ bound only the count of open channels and accept a
        // higher number; a client that uses one does not follow the tune it agreed
        // to, and the number indexes per-connection state, so it is refused.)
        if channel > conn.tuning.channel_max {
            return Err(connection_error(
                ReplyCode::NotAllowed,
                format!(
                    "channel number ({channel}) exceeds the negotiated channel_max ({})",
                    conn.tuning.channel_max
                ),
            ));
        }
        let Some(ch) = conn.channels.get_mut(&channel) else {
            return match frame {
                Frame::Method {
                    method: Method::ChannelOpen(_),
                    ..
                } => {
                    // Like RabbitMQ, the bound is on how many channels are open, not
                    // on the channel number.
                    let open = conn.channels.len();
                    if open >= conn.tuning.channel_max as usize {
                        return Err(connection_error(
                            ReplyCode::NotAllowed,
                            format!(
                                "number of channels opened ({open}) has reached the negotiated channel_max ({})",
                                conn.tuning.channel_max
                            ),
                        ));
                    }
                    if let Some(user) = conn.user.as_deref() {
                        if let Some(limit) = self.users.get(user).and_then(|u| u.limits.max_channels) {
                            // This connection is out of the map while it is handled.
                            let used = self.user_usage(user).1 + open as u64;
                            if used >= limit {
                                return Err(connection_error(
                                    ReplyCode::NotAllowed,
                                    format!(
                                        "number of channels opened for user '{user}' has reached the maximum allowed user limit of ({limit})"
                                    ),
                                ));
                            }
                        }
                    }
                    conn.channels_opened = conn.channels_opened.wrapping_add(1);
                    let mut ch = Box::new(Channel::new(channel));
                    ch.serial = conn.channels_opened;
                    conn.channels.insert(channel, ch);
                    self.node_stats
                        .churn
                        .bump(crate::core::model::stats::Churn::CHANNEL_CREATED);
                    encode_method(
                        &mut conn.out,
                        channel,
                        &Method::ChannelOpenOk(ChannelOpenOk { channel_id: b"" }),
                    );
                    Ok(())
                }
                Frame::Method { .. } => Err(connection_error(ReplyCode::ChannelError, "expected 'channel.open'")),
                _ => Err(connection_error(
                    ReplyCode::UnexpectedFrame,
                    "expected method frame, got non method frame instead",
                )),
            };
        };
        if ch.state == ChannelState::Closing {
            // AMQP 0-9-1 §2.2.4 (and RabbitMQ): after our channel.close only close
            // and close-ok matter; everything else is dropped.
            if let Frame::Method { method, .. } = frame {
                match method {
                    Method::ChannelCloseOk(_) => self.drop_channel(conn, channel),
                    // Both sides closed at once: answer the client's close and
                    // still wait for the close-ok to ours, as RabbitMQ does (pika,
                    // aiormq and the Java client send it).
                    Method::ChannelClose(_) => {
                        encode_method(&mut conn.out, channel, &Method::ChannelCloseOk(ChannelCloseOk));
                    }
                    // The number is free only after the close-ok (RabbitMQ: the same).
                    Method::ChannelOpen(_) => {
                        return Err(connection_error(ReplyCode::ChannelError, "second 'channel.open' seen"))
                    }
                    _ => {}
                }
            }
            return Ok(());
        }
        // Whatever fails while a publish's content is assembled is blamed on the
        // publish (see `cause_of`).
        let publishing = ch.incoming.is_some();
        let r = match frame {
            Frame::Method { method, .. } => {
                if let Some(msg) = &ch.incoming {
                    let text = if msg.header_seen {
                        "expected content body, got non content body frame instead"
                    } else {
                        "expected content header for class 60, got non content header frame instead"
                    };
                    // Blamed on the publish below, as every error while publishing.
                    Err(connection_error(ReplyCode::UnexpectedFrame, text))
                } else {
                    // The close names this method: see `cause_of`.
                    self.handle_channel_method(conn, channel, method)
                }
            }
            Frame::Header { header, .. } => self.handle_content_header(conn, channel, header),
            Frame::Body { payload, .. } => self.handle_content_body(conn, channel, payload),
            Frame::Heartbeat => Ok(()),
        };
        if publishing {
            r.map_err(in_publish)
        } else {
            r
        }
    }

    fn handle_channel_method(&mut self, conn: &mut Connection, channel: u16, method: Method<'_>) -> MethodResult {
        match method {
            Method::ChannelOpen(_) => Err(connection_error(ReplyCode::ChannelError, "second 'channel.open' seen")),
            Method::ChannelClose(_) => {
                self.release_channel(conn, channel);
                self.drop_channel(conn, channel);
                encode_method(&mut conn.out, channel, &Method::ChannelCloseOk(ChannelCloseOk));
                Ok(())
            }
            Method::ChannelCloseOk(_) => Ok(()),
            Method::ChannelFlow(m) if !m.active => {
                // RabbitMQ does not let clients pause deliveries this way.
                Err(connection_error(ReplyCode::NotImplemented, "active=false"))
            }
            Method::ChannelFlow(m) => {
                let ch = conn.channels.get_mut(&channel).expect("open channel");
                ch.flow_active = m.active;
                encode_method(
                    &mut conn.out,
                    channel,
                    &Method::ChannelFlowOk(ChannelFlowOk { active: m.active }),
                );
                if m.active {
                    self.queue_deliveries_for_channel(conn, channel);
                }
                Ok(())
            }
            Method::ChannelFlowOk(_) => Ok(()),
            Method::AccessRequest(_) => {
                encode_method(
                    &mut conn.out,
                    channel,
                    &Method::AccessRequestOk(ringmq_codec::AccessRequestOk { ticket: 1 }),
                );
                Ok(())
            }
            Method::ExchangeDeclare(m) => self.in_meta_section(|b| b.exchange_declare(conn, channel, m)),
            Method::ExchangeDelete(m) => self.in_meta_section(|b| b.exchange_delete(conn, channel, m)),
            Method::ExchangeBind(m) => self.in_meta_section(|b| {
                b.exchange_bind(
                    conn,
                    channel,
                    m.destination,
                    m.source,
                    m.routing_key,
                    m.arguments,
                    m.no_wait,
                    true,
                )
            }),
            Method::ExchangeUnbind(m) => self.in_meta_section(|b| {
                b.exchange_bind(
                    conn,
                    channel,
                    m.destination,
                    m.source,
                    m.routing_key,
                    m.arguments,
                    m.no_wait,
                    false,
                )
            }),
            Method::QueueDeclare(m) => self.in_meta_section(|b| b.queue_declare(conn, channel, m)),
            Method::QueueBind(m) => self.in_meta_section(|b| {
                b.queue_bind(
                    conn,
                    channel,
                    m.queue,
                    m.exchange,
                    m.routing_key,
                    m.arguments,
                    m.no_wait,
                    true,
                )
            }),
            Method::QueueUnbind(m) => self.in_meta_section(|b| {
                b.queue_bind(
                    conn,
                    channel,
                    m.queue,
                    m.exchange,
                    m.routing_key,
                    m.arguments,
                    false,
                    false,
                )
            }),
            Method::QueuePurge(m) => self.queue_purge(conn, channel, m),
            Method::QueueDelete(m) => self.in_meta_section(|b| b.queue_delete(conn, channel, m)),
            Method::BasicQos(m) => self.basic_qos(conn, channel, m),
            Method::BasicConsume(m) => self.basic_consume(conn, channel, m),
            Method::BasicCancel(m) => self.basic_cancel(conn, channel, m),
            Method::BasicPublish(m) => self.basic_publish(conn, channel, m),
            Method::BasicGet(m) => self.basic_get(conn, channel, m),
            Method::BasicAck(m) => self.basic_ack(conn, channel, m.delivery_tag, m.multiple),
            Method::BasicNack(m) => self.basic_nack(conn, channel, m.delivery_tag, m.multiple, m.requeue),
            Method::BasicReject(m) => self.basic_nack(conn, channel, m.delivery_tag, false, m.requeue),
            Method::BasicRecover(m) => self.basic_recover(conn, channel, m.requeue, true),
            Method::BasicRecoverAsync(m) => self.basic_recover(conn, channel, m.requeue, false),
            Method::ConfirmSelect(m) => self.confirm_select(conn, channel, m.no_wait),
            Method::TxSelect(_) => self.tx_select(conn, channel),
            Method::TxCommit(_) => self.tx_commit(conn, channel),
            Method::TxRollback(_) => self.tx_rollback(conn, channel),
            m if m.class_id() == 10 => Err(connection_error(
                ReplyCode::CommandInvalid,
                format!("{} is only valid on channel 0", m.name()),
            )),
            m => Err(connection_error(
                ReplyCode::NotImplemented,
                format!("{} is not a method a client sends", m.name()),
            )),
        }
    }
}

/// Helper for handlers: the channel, which the dispatcher has checked is open.
pub(crate) fn chan(conn: &mut Connection, channel: u16) -> &mut Channel {
    conn.channels
        .get_mut(&channel)
        .expect("dispatcher checked the channel is open")
}

/// 406 helper used by several handlers.
pub(crate) fn precondition(text: impl Into<String>) -> Exception {
    channel_error(ReplyCode::PreconditionFailed, text)
}

/// Checks a permission: 403 ACCESS_REFUSED on the channel, RabbitMQ's text.
pub(crate) fn check_access(
    conn: &Connection,
    access: crate::core::access::permissions::Access,
    kind: &str,
    name: &str,
) -> Result<(), Exception> {
    // RabbitMQ checks the default exchange under the name amq.default.
    let name_checked = if kind == "exchange" && name.is_empty() {
        "amq.default"
    } else {
        name
    };
    if conn.permission.as_ref().is_some_and(|p| p.allows(access, name_checked)) {
        return Ok(());
    }
    // RabbitMQ 3.x's wording (it does not say which of the three was missing).
    Err(channel_error(
        ReplyCode::AccessRefused,
        format!(
            "access to {kind} '{name_checked}' in vhost '{}' refused for user '{}'",
            conn.vhost.as_deref().unwrap_or(""),
            conn.user.as_deref().unwrap_or("")
        ),
    ))
}
