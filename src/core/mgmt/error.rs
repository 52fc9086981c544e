//! The error of management operations (HTTP API, definitions import, ringmqctl),
//! by who is at fault, so the HTTP layer maps it to a status without parsing text.

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

impl AdminError {
    /// The HTTP status RabbitMQ's management API uses for this kind of error.
    pub fn http_status(&self) -> u16 {
        match self {
            AdminError::NotFound(_) => 404,
            AdminError::BadRequest(_) | AdminError::Conflict(_) => 400,
            AdminError::AccessRefused(_) => 401,
            AdminError::Io(_) => 500,
        }
    }
}

pub type AdminResult<T> = Result<T, AdminError>;
