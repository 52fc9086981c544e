//! API errors as RabbitMQ sends them: JSON `{"error": .., "reason": ..}` with
//! the status RabbitMQ uses (400, 401, 404, 405, 413; 500 for disk errors).

use crate::core::mgmt::AdminError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: u16,
    pub error: &'static str,
    pub reason: String,
}

impl ApiError {
    pub fn new(status: u16, error: &'static str, reason: impl Into<String>) -> Self {
        ApiError {
            status,
            error,
            reason: reason.into(),
        }
    }

    /// RabbitMQ's 404 for a missing object or an unknown path.
    pub fn not_found() -> Self {
        Self::new(404, "Object Not Found", "Not Found")
    }

    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(400, "bad_request", reason)
    }

    /// 401 for a missing or wrong login (sent with WWW-Authenticate).
    pub fn login_failed() -> Self {
        Self::new(401, "not_authorized", "Login failed")
    }

    /// 401 for a user that may not do this (RabbitMQ says 401, not 403).
    pub fn not_authorised(reason: impl Into<String>) -> Self {
        Self::new(401, "not_authorised", reason)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(405, "method_not_allowed", "Method Not Allowed")
    }

    pub fn not_json() -> Self {
        Self::bad_request("not_json")
    }

    pub fn body(&self) -> String {
        serde_json::json!({"error": self.error, "reason": self.reason}).to_string()
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::NotFound(_) => ApiError::not_found(),
            AdminError::BadRequest(s) | AdminError::Conflict(s) => ApiError::bad_request(s),
            // RabbitMQ's API hides the AMQP text behind "Access refused.".
            AdminError::AccessRefused(_) => ApiError::not_authorised("Access refused."),
            AdminError::Io(e) => ApiError::new(500, "internal_error", e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(
            ApiError::not_found().body(),
            r#"{"error":"Object Not Found","reason":"Not Found"}"#
        );
        let e: ApiError = AdminError::AccessRefused("x".into()).into();
        assert_eq!((e.status, e.reason.as_str()), (401, "Access refused."));
        let e: ApiError = AdminError::BadRequest("inequivalent".into()).into();
        assert_eq!((e.status, e.error), (400, "bad_request"));
    }
}
