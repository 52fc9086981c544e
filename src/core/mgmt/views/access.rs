//! Users, read-only (permissions are listed by [`super::View`]).

use crate::core::access::auth::{User, UserLimits};

#[derive(Clone, Copy)]
pub struct UserView<'a> {
    u: &'a User,
}

impl<'a> UserView<'a> {
    pub(super) fn new(u: &'a User) -> Self {
        UserView { u }
    }

    pub fn name(&self) -> &'a str {
        &self.u.name
    }
    /// base64(salt ++ hash), as in RabbitMQ definitions.
    pub fn password_hash(&self) -> &'a str {
        &self.u.password_hash
    }
    pub fn hashing_algorithm(&self) -> &'a str {
        &self.u.hashing_algorithm
    }
    pub fn tags(&self) -> &'a [String] {
        &self.u.tags
    }
    pub fn limits(&self) -> &'a UserLimits {
        &self.u.limits
    }
    /// Whether `password` matches (constant-time compare).
    pub fn check_password(&self, password: &str) -> bool {
        self.u.check_password(password)
    }
}
