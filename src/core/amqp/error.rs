//! AMQP errors by scope: what closes a channel and what closes the connection,
//! and which method a close names as its cause.

use ringmq_codec::{Frame, ProtocolError, ReplyCode, ShortStr};

/// A client error, by scope: closes the channel or the whole connection.
#[derive(Debug)]
pub enum Exception {
    Channel(ProtocolError),
    Connection(ProtocolError),
}

pub type MethodResult = Result<(), Exception>;

pub fn channel_error(code: ReplyCode, text: impl Into<String>) -> Exception {
    Exception::Channel(ProtocolError::new(code, text.into()))
}

pub fn connection_error(code: ReplyCode, text: impl Into<String>) -> Exception {
    Exception::Connection(ProtocolError::new(code, text.into()))
}

/// The method a frame's error is blamed on in the close's class and method ids, as
/// RabbitMQ does: a method frame is its own cause; a stray content frame has none
/// (0/0). A frame that arrives while a publish's content is being assembled
/// belongs to that basic.publish (60/40), whatever it is: the channel's frame
/// handler names that cause ([`in_publish`]), where it has the channel in hand,
/// so no frame pays a channel lookup for it.
pub(in crate::core) fn cause_of(frame: &Frame<'_>) -> (u16, u16) {
    match frame {
        Frame::Method { method, .. } => (method.class_id(), method.method_id()),
        _ => (0, 0),
    }
}

/// basic.publish's class and method ids.
pub(in crate::core) const BASIC_PUBLISH: (u16, u16) = (60, 40);

/// Names basic.publish as the cause of an error of a frame that came while a
/// publish's content was being assembled (unless it names one already).
pub(in crate::core) fn in_publish(e: Exception) -> Exception {
    match e {
        Exception::Channel(e) => Exception::Channel(attribute(e, BASIC_PUBLISH)),
        Exception::Connection(e) => Exception::Connection(attribute(e, BASIC_PUBLISH)),
    }
}

/// Names the cause in an error that does not name one already.
pub(in crate::core) fn attribute(e: ProtocolError, (class_id, method_id): (u16, u16)) -> ProtocolError {
    if e.class_id == 0 && e.method_id == 0 {
        e.in_method(class_id, method_id)
    } else {
        e
    }
}

/// Reply texts are short strings: cut at 255 bytes on a char boundary.
pub(crate) fn truncate_shortstr(s: &str) -> ShortStr<'_> {
    ShortStr::truncate(s)
}

/// A refused exchange type, by RabbitMQ's scope: a bad `x-delayed-type` closes
/// the channel (406), an unknown type the connection (503).
impl From<crate::core::model::exchange::delayed::ExchangeTypeError> for Exception {
    fn from(e: crate::core::model::exchange::delayed::ExchangeTypeError) -> Exception {
        use crate::core::model::exchange::delayed::ExchangeTypeError;
        match e {
            ExchangeTypeError::BadDelayedType => channel_error(ReplyCode::PreconditionFailed, e.to_string()),
            ExchangeTypeError::Unknown(_) => connection_error(ReplyCode::CommandInvalid, e.to_string()),
        }
    }
}
