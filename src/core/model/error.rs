//! The error of an operation an operator asks of the broker (the HTTP API,
//! definitions import, ringmqctl, policies): by who is at fault, so each front
//! end answers it (`mgmt::error`: an HTTP status) without parsing text. Here,
//! under the model, because every folder that changes the model on an
//! operator's behalf returns it; and the check every such operation makes on
//! a name it is given ([`short_name`]).

use ringmq_codec::ShortStr;

/// Why a management operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The object (vhost, user, queue, policy, ...) does not exist: 404.
    #[error("{0}")]
    NotFound(String),
    /// The request is invalid (bad value, unknown key, bad pattern): 400.
    #[error("{0}")]
    BadRequest(String),
    /// The request conflicts with the current state (in use, exists with other
    /// settings, a limit reached): RabbitMQ answers these with 400 too, but
    /// callers may want to tell them apart.
    #[error("{0}")]
    Conflict(String),
    /// The user lacks an AMQP permission (configure/write/read) for the object:
    /// RabbitMQ's API answers 401 `not_authorised` "Access refused.".
    #[error("{0}")]
    AccessRefused(String),
    /// Writing the change to disk failed; nothing was changed in memory: 500.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub type AdminResult<T> = Result<T, AdminError>;

/// A name or key from a management request as the short string AMQP carries,
/// or 400 with RabbitMQ's text (`queue should be less than 255 bytes, actually
/// was 256`): the edge where API, import and ctl input becomes a name the
/// broker can encode (issue 15, defect 3).
pub fn short_name<'a>(what: &str, s: &'a str) -> Result<ShortStr<'a>, AdminError> {
    ShortStr::new(s).map_err(|e| AdminError::BadRequest(e.text(what)))
}
