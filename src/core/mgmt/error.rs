//! The error of management operations (HTTP API, definitions import, ringmqctl),
//! by who is at fault: the type is the model's ([`AdminError`], shared by every
//! folder that changes the model for an operator); here is how the HTTP API
//! answers it.

pub use crate::core::model::error::{AdminError, AdminResult};

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
