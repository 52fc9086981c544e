//! A delivery's whole message, kept when the user forwards it (a shovel): the
//! exchange and routing key it was published with, whether it is redelivered,
//! its raw properties and its body. The load generator never turns it on.

use ringmq_codec::Method;

use crate::connection::{ClientError, Result};

/// Largest body a kept delivery may have: the body is buffered whole before it
/// is handed on (RabbitMQ's default `max_message_size` is 128 MiB).
pub const CONTENT_BODY_BYTES_MAX: u64 = 128 << 20;

/// One message as it came.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Content {
    pub exchange: String,
    pub routing_key: String,
    pub redelivered: bool,
    /// The property flags and values exactly as on the wire.
    pub properties_raw: Vec<u8>,
    pub body: Vec<u8>,
}

/// What is being assembled, and what was completed last.
#[derive(Debug, Default)]
pub(crate) struct Capture {
    building: Content,
    body_size: u64,
    done: Option<Content>,
}

impl Capture {
    /// A basic.deliver, basic.get-ok or basic.return starts a message.
    pub fn handle_method(&mut self, payload: &[u8]) -> Result<()> {
        let (exchange, routing_key, redelivered) = match Method::decode(payload) {
            Ok(Method::BasicDeliver(d)) => (d.exchange.to_string(), d.routing_key.to_string(), d.redelivered),
            Ok(Method::BasicGetOk(g)) => (g.exchange.to_string(), g.routing_key.to_string(), g.redelivered),
            Ok(Method::BasicReturn(r)) => (r.exchange.to_string(), r.routing_key.to_string(), false),
            _ => return Err(ClientError::Protocol("bad delivery method".into())),
        };
        self.building = Content {
            exchange,
            routing_key,
            redelivered,
            properties_raw: Vec::new(),
            body: Vec::new(),
        };
        Ok(())
    }

    pub fn handle_header(&mut self, properties_raw: &[u8], body_size: u64) -> Result<()> {
        if body_size > CONTENT_BODY_BYTES_MAX {
            return Err(ClientError::Protocol(format!(
                "a body of {body_size} bytes is over the {CONTENT_BODY_BYTES_MAX} a kept delivery may have"
            )));
        }
        self.building.properties_raw = properties_raw.to_vec();
        self.building.body = Vec::with_capacity(body_size as usize);
        self.body_size = body_size;
        self.finish_if(body_size == 0);
        Ok(())
    }

    pub fn handle_body(&mut self, chunk: &[u8]) {
        self.building.body.extend_from_slice(chunk);
        let full = self.building.body.len() as u64 >= self.body_size;
        self.finish_if(full);
    }

    fn finish_if(&mut self, complete: bool) {
        if complete {
            self.done = Some(std::mem::take(&mut self.building));
        }
    }

    pub fn take(&mut self) -> Option<Content> {
        self.done.take()
    }
}
