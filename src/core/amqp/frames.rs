//! The AMQP frame loop of a connection: the protocol header, frames split and
//! dispatched, errors turned into channel or connection closes.

use ringmq_codec::{
    check_protocol_header, encode_method, split_frame, ChannelClose, ConnectionClose, ConnectionStart, DecodeError,
    Frame, Method, ProtocolError, ReplyCode, Table, PROTOCOL_HEADER,
};

use crate::core::access::auth::{MECHANISMS, MECHANISMS_WITH_EXTERNAL};
use crate::core::amqp::broker::{Broker, FRAMES_PER_INPUT_MAX};
use crate::core::amqp::channel::ChannelState;
use crate::core::amqp::connection::{server_properties, ConnState, Connection};
use crate::core::amqp::error::{attribute, cause_of, truncate_shortstr, Exception};

impl Broker {
    pub(in crate::core) fn process_frames(&mut self, conn: &mut Connection, input: &[u8], now_ms: u64) -> usize {
        let mut pos = 0;
        if conn.state == ConnState::AwaitingHeader {
            match check_protocol_header(input) {
                Ok(()) => {
                    pos = PROTOCOL_HEADER.len();
                    self.send_start(conn);
                }
                Err(DecodeError::Incomplete(_)) => return 0,
                Err(DecodeError::Malformed(_)) => {
                    // The spec: answer with the header we support, then close.
                    conn.out.extend_from_slice(&PROTOCOL_HEADER);
                    conn.state = ConnState::Closed;
                    return input.len();
                }
            }
        }
        for _ in 0..FRAMES_PER_INPUT_MAX {
            if matches!(conn.state, ConnState::Closed) {
                return input.len();
            }
            let frame_max = conn.tuning.frame_max;
            let (raw, used) = match split_frame(&input[pos..], frame_max) {
                Ok(x) => x,
                Err(DecodeError::Incomplete(_)) => break,
                Err(DecodeError::Malformed(e)) => {
                    // The stream cannot be resynchronised after a framing error.
                    self.close_connection(conn, e, now_ms);
                    conn.state = ConnState::Closed;
                    return input.len();
                }
            };
            pos += used;
            let frame = match raw.decode() {
                Ok(f) => f,
                Err(e) => {
                    self.close_connection(conn, e, now_ms);
                    continue;
                }
            };
            if let Some(to) = self.leaves_before(conn, &frame, now_ms) {
                // The frame is handled on `to`, with the rest of the input.
                self.start_leaving(conn, to);
                pos -= used;
                break;
            }
            self.handle_frame(conn, frame, now_ms);
            if conn.parked.is_some() {
                break; // the rest waits for another shard's answer (`remote`)
            }
        }
        pos
    }

    fn handle_frame(&mut self, conn: &mut Connection, frame: Frame<'_>, now_ms: u64) {
        if let Frame::Heartbeat = frame {
            return;
        }
        match conn.state {
            ConnState::Closing => {
                // Only the end of the close handshake matters now.
                if let Frame::Method { channel: 0, method } = frame {
                    match method {
                        Method::ConnectionCloseOk(_) => conn.state = ConnState::Closed,
                        Method::ConnectionClose(_) => {
                            encode_method(
                                &mut conn.out,
                                0,
                                &Method::ConnectionCloseOk(ringmq_codec::ConnectionCloseOk),
                            );
                            conn.close_ok_sent = true;
                            conn.state = ConnState::Closed;
                        }
                        _ => {}
                    }
                }
                return;
            }
            ConnState::Closed | ConnState::AwaitingHeader => return,
            ConnState::Open => {}
            _ => {
                let cause = cause_of(&frame);
                let r = self.handle_handshake(conn, frame, now_ms);
                if let Err(e) = r {
                    let e = match e {
                        Exception::Channel(e) | Exception::Connection(e) => e,
                    };
                    self.close_connection(conn, attribute(e, cause), now_ms);
                }
                return;
            }
        }
        let channel = frame.channel();
        let cause = cause_of(&frame);
        let result = if channel == 0 {
            self.handle_connection_method(conn, frame)
        } else {
            self.handle_channel_frame(conn, channel, frame)
        };
        match result {
            Ok(()) => {}
            Err(Exception::Channel(e)) => self.close_channel(conn, channel, attribute(e, cause)),
            Err(Exception::Connection(e)) => self.close_connection(conn, attribute(e, cause), now_ms),
        }
    }

    fn send_start(&mut self, conn: &mut Connection) {
        let props = server_properties(&self.cluster_name()).to_bytes();
        let start = ConnectionStart {
            version_major: 0,
            version_minor: 9,
            server_properties: Table::parse(&props).expect("own table"),
            mechanisms: if conn.cert_identity.is_some() {
                MECHANISMS_WITH_EXTERNAL
            } else {
                MECHANISMS
            },
            locales: b"en_US",
        };
        encode_method(&mut conn.out, 0, &Method::ConnectionStart(start));
        conn.state = ConnState::AwaitingStartOk;
    }

    /// Sends connection.close and waits for close-ok; a hard error ends the
    /// connection, so channels are released now.
    pub(crate) fn close_connection(&mut self, conn: &mut Connection, e: ProtocolError, now_ms: u64) {
        if matches!(conn.state, ConnState::Closing | ConnState::Closed) {
            return;
        }
        tracing::info!(conn = %conn.describe(), error = %e, "closing connection on error");
        let text = e.reply_text();
        let text = truncate_shortstr(&text);
        let close = ConnectionClose {
            reply_code: e.code.code(),
            reply_text: text,
            class_id: e.class_id,
            method_id: e.method_id,
        };
        encode_method(&mut conn.out, 0, &Method::ConnectionClose(close));
        let was_open = conn.state == ConnState::Open;
        conn.state = ConnState::Closing;
        conn.closing_since_ms = now_ms;
        if was_open {
            let channels: Vec<u16> = conn.channels.keys().copied().collect();
            for ch in channels {
                self.release_channel(conn, ch);
            }
        } else if e.code == ReplyCode::AccessRefused || e.code == ReplyCode::NotAllowed {
            // Handshake refusals: nothing to wait for.
            conn.state = ConnState::Closed;
        }
    }

    /// Sends channel.close for a soft error and releases the channel's state;
    /// the channel stays (in Closing) until the client's close-ok.
    pub(crate) fn close_channel(&mut self, conn: &mut Connection, channel: u16, e: ProtocolError) {
        tracing::debug!(conn = %conn.describe(), channel, error = %e, "closing channel on error");
        // Publishes accepted before the error are confirmed before the close.
        crate::core::amqp::confirm::flush_confirms(conn, channel, self.model.commit.synced);
        let text = e.reply_text();
        let close = ChannelClose {
            reply_code: e.code.code(),
            reply_text: truncate_shortstr(&text),
            class_id: e.class_id,
            method_id: e.method_id,
        };
        encode_method(&mut conn.out, channel, &Method::ChannelClose(close));
        self.release_channel(conn, channel);
        if let Some(ch) = conn.channels.get_mut(&channel) {
            ch.state = ChannelState::Closing;
        }
    }
}
