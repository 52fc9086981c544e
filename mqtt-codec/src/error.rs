//! Decode outcomes. A decoder answers a packet, "need more bytes"
//! ([`DecodeError::Incomplete`]), or why the input cannot be a packet; each
//! of those says how the connection must end (MQTT 5's reason code, and
//! whether a 3.1.1 CONNACK return code applies), so the caller never guesses.

use std::fmt;

/// Why bytes are not (yet) a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Not enough bytes yet: at least this many more are needed.
    Incomplete(usize),
    /// The fixed header announces a packet over the limit the caller set
    /// (MQTT 5: reason 0x95 Packet too large).
    TooLarge { size: usize, max: usize },
    /// Not well-formed per the spec (MQTT 5: 0x81 Malformed Packet).
    Malformed(&'static str),
    /// Well-formed but against the protocol's rules (MQTT 5: 0x82 Protocol
    /// Error; 3.1.1 has no codes: the connection is closed).
    Protocol(&'static str),
    /// A CONNECT for a protocol level this codec does not speak: answered
    /// with CONNACK 0x01 (3.1.1) or 0x84 (5) before closing.
    UnsupportedVersion(u8),
}

impl DecodeError {
    /// The MQTT 5 reason code a DISCONNECT (or CONNACK) carries for it.
    pub fn reason_code(self) -> u8 {
        match self {
            DecodeError::Incomplete(_) => 0x81,
            DecodeError::TooLarge { .. } => crate::reason::PACKET_TOO_LARGE,
            DecodeError::Malformed(_) => crate::reason::MALFORMED_PACKET,
            DecodeError::Protocol(_) => crate::reason::PROTOCOL_ERROR,
            DecodeError::UnsupportedVersion(_) => crate::reason::UNSUPPORTED_PROTOCOL_VERSION,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Incomplete(n) => write!(f, "incomplete packet: {n} more bytes needed"),
            DecodeError::TooLarge { size, max } => write!(f, "packet of {size} bytes over the maximum of {max}"),
            DecodeError::Malformed(why) => write!(f, "malformed packet: {why}"),
            DecodeError::Protocol(why) => write!(f, "protocol error: {why}"),
            DecodeError::UnsupportedVersion(level) => write!(f, "unsupported protocol level {level}"),
        }
    }
}

impl std::error::Error for DecodeError {}

pub type Result<T> = std::result::Result<T, DecodeError>;

pub(crate) const fn malformed<T>(why: &'static str) -> Result<T> {
    Err(DecodeError::Malformed(why))
}

pub(crate) const fn protocol<T>(why: &'static str) -> Result<T> {
    Err(DecodeError::Protocol(why))
}
