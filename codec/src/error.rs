//! Decode outcomes and AMQP reply codes.
//!
//! A decoder answers one of three things: a value, "need more bytes"
//! ([`DecodeError::Incomplete`]), or "this input is malformed"
//! ([`DecodeError::Malformed`]), and a malformed input always carries the reply code
//! the connection must be closed with, so the caller never has to guess.

use std::borrow::Cow;
use std::fmt;

/// AMQP 0-9-1 reply codes (spec constants plus the ones RabbitMQ uses).
#[repr(u16)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyCode {
    Success = 200,
    ContentTooLarge = 311,
    NoRoute = 312,
    NoConsumers = 313,
    ConnectionForced = 320,
    InvalidPath = 402,
    AccessRefused = 403,
    NotFound = 404,
    ResourceLocked = 405,
    PreconditionFailed = 406,
    FrameError = 501,
    SyntaxError = 502,
    CommandInvalid = 503,
    ChannelError = 504,
    UnexpectedFrame = 505,
    ResourceError = 506,
    NotAllowed = 530,
    NotImplemented = 540,
    InternalError = 541,
}

impl ReplyCode {
    /// The numeric code as sent on the wire.
    pub const fn code(self) -> u16 {
        self as u16
    }

    /// The upper-case name RabbitMQ puts at the start of a reply text,
    /// e.g. `NOT_FOUND - no queue 'q' in vhost '/'`.
    pub const fn name(self) -> &'static str {
        match self {
            ReplyCode::Success => "OK",
            ReplyCode::ContentTooLarge => "CONTENT_TOO_LARGE",
            ReplyCode::NoRoute => "NO_ROUTE",
            ReplyCode::NoConsumers => "NO_CONSUMERS",
            ReplyCode::ConnectionForced => "CONNECTION_FORCED",
            ReplyCode::InvalidPath => "INVALID_PATH",
            ReplyCode::AccessRefused => "ACCESS_REFUSED",
            ReplyCode::NotFound => "NOT_FOUND",
            ReplyCode::ResourceLocked => "RESOURCE_LOCKED",
            ReplyCode::PreconditionFailed => "PRECONDITION_FAILED",
            ReplyCode::FrameError => "FRAME_ERROR",
            ReplyCode::SyntaxError => "SYNTAX_ERROR",
            ReplyCode::CommandInvalid => "COMMAND_INVALID",
            ReplyCode::ChannelError => "CHANNEL_ERROR",
            ReplyCode::UnexpectedFrame => "UNEXPECTED_FRAME",
            ReplyCode::ResourceError => "RESOURCE_ERROR",
            ReplyCode::NotAllowed => "NOT_ALLOWED",
            ReplyCode::NotImplemented => "NOT_IMPLEMENTED",
            ReplyCode::InternalError => "INTERNAL_ERROR",
        }
    }

    /// Hard errors close the connection; soft errors close only the channel.
    pub const fn is_hard(self) -> bool {
        !matches!(
            self,
            ReplyCode::Success
                | ReplyCode::ContentTooLarge
                | ReplyCode::NoRoute
                | ReplyCode::NoConsumers
                | ReplyCode::AccessRefused
                | ReplyCode::NotFound
                | ReplyCode::ResourceLocked
                | ReplyCode::PreconditionFailed
        )
    }

    /// Maps a wire code back to the enum, if it is one we know.
    pub const fn from_code(code: u16) -> Option<ReplyCode> {
        Some(match code {
            200 => ReplyCode::Success,
            311 => ReplyCode::ContentTooLarge,
            312 => ReplyCode::NoRoute,
            313 => ReplyCode::NoConsumers,
            320 => ReplyCode::ConnectionForced,
            402 => ReplyCode::InvalidPath,
            403 => ReplyCode::AccessRefused,
            404 => ReplyCode::NotFound,
            405 => ReplyCode::ResourceLocked,
            406 => ReplyCode::PreconditionFailed,
            501 => ReplyCode::FrameError,
            502 => ReplyCode::SyntaxError,
            503 => ReplyCode::CommandInvalid,
            504 => ReplyCode::ChannelError,
            505 => ReplyCode::UnexpectedFrame,
            506 => ReplyCode::ResourceError,
            530 => ReplyCode::NotAllowed,
            540 => ReplyCode::NotImplemented,
            541 => ReplyCode::InternalError,
            _ => return None,
        })
    }
}

/// A protocol violation: the peer sent something the spec forbids.
///
/// `class_id`/`method_id` name the method being decoded when known (0 otherwise);
/// they go into the `connection.close` / `channel.close` the caller sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    pub code: ReplyCode,
    pub text: Cow<'static, str>,
    pub class_id: u16,
    pub method_id: u16,
}

impl ProtocolError {
    pub fn new(code: ReplyCode, text: impl Into<Cow<'static, str>>) -> Self {
        ProtocolError {
            code,
            text: text.into(),
            class_id: 0,
            method_id: 0,
        }
    }

    pub(crate) fn frame(text: &'static str) -> Self {
        Self::new(ReplyCode::FrameError, text)
    }

    pub(crate) fn syntax(text: &'static str) -> Self {
        Self::new(ReplyCode::SyntaxError, text)
    }

    /// Attaches the method being decoded, so the close frame can name it.
    pub fn in_method(mut self, class_id: u16, method_id: u16) -> Self {
        self.class_id = class_id;
        self.method_id = method_id;
        self
    }

    /// The reply text as RabbitMQ formats it: `CODE_NAME - detail`.
    pub fn reply_text(&self) -> String {
        format!("{} - {}", self.code.name(), self.text)
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} - {}", self.code.code(), self.code.name(), self.text)
    }
}

impl std::error::Error for ProtocolError {}

/// Why a decode did not produce a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The input is a valid prefix; at least this many more bytes are needed.
    Incomplete(usize),
    /// The input can never become valid; close the connection with this error.
    Malformed(ProtocolError),
}

impl From<ProtocolError> for DecodeError {
    fn from(e: ProtocolError) -> Self {
        DecodeError::Malformed(e)
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Incomplete(n) => write!(f, "need {n} more bytes"),
            DecodeError::Malformed(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for DecodeError {}
