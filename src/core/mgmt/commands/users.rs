//! Users and their permissions and topic permissions.

use crate::core::access::topic_permissions::TopicPermissionDef;
use crate::core::amqp::broker::Broker;

use super::{not_found, AdminError, Declared};

/// A user as `PUT /api/users/{name}` gives it.
#[derive(Debug, Clone, Default)]
pub struct UserSpec {
    pub password: Option<String>,
    pub password_hash: Option<String>,
    pub hashing_algorithm: Option<String>,
    pub tags: Vec<String>,
}

impl Broker {
    /// Creates or updates a user (RabbitMQ: a new user needs `password` or
    /// `password_hash`; an update without either keeps the password).
    pub fn admin_put_user(&mut self, name: &str, spec: &UserSpec) -> Result<Declared, AdminError> {
        if name.is_empty() {
            return Err(AdminError::BadRequest("user name must not be empty".into()));
        }
        let existing = self.users.get(name).cloned();
        let salt = (self.random_u64() as u32).to_le_bytes();
        let mut user = match (&spec.password, &spec.password_hash, &existing) {
            (Some(pw), _, _) => crate::core::access::auth::User::new(name, pw, salt, false),
            (None, Some(hash), _) => {
                let alg = spec
                    .hashing_algorithm
                    .clone()
                    .unwrap_or_else(|| crate::core::access::auth::HASH_SHA256.to_owned());
                crate::core::access::auth::validate_hash(&alg, hash).map_err(AdminError::BadRequest)?;
                let mut u = crate::core::access::auth::User::new(name, "", salt, false);
                u.password_hash = hash.clone();
                u.hashing_algorithm = alg;
                u
            }
            (None, None, Some(old)) => old.clone(),
            (None, None, None) => {
                return Err(AdminError::BadRequest(
                    "[{key_missing,password_or_password_hash}]".into(),
                ))
            }
        };
        if let Some(old) = &existing {
            user.loopback_only = old.loopback_only;
            user.limits = old.limits.clone();
        }
        user.tags = spec.tags.clone();
        self.users.insert(user);
        self.users.save(&self.config.data_dir)?;
        Ok(if existing.is_some() {
            Declared::Existed
        } else {
            Declared::Created
        })
    }

    /// Deletes a user and its permissions, and closes its connections (RabbitMQ's
    /// 320 "user '...' is deleted").
    pub fn admin_delete_user(&mut self, name: &str) -> Result<(), AdminError> {
        self.users.remove(name).ok_or_else(not_found)?;
        self.force_close(|c| c.user() == Some(name), &format!("user '{name}' is deleted"));
        self.users.save(&self.config.data_dir)?;
        if self.permissions.remove_user(name) {
            self.permissions.save(&self.config.data_dir)?;
        }
        Ok(())
    }

    /// Sets a user's permissions in a vhost (both must exist).
    pub fn admin_set_permission(
        &mut self,
        def: crate::core::access::permissions::PermissionDef,
    ) -> Result<Declared, AdminError> {
        if self.users.get(&def.user).is_none() || !self.model.vhosts.contains_key(def.vhost.as_str()) {
            // RabbitMQ 3.10's answer (400, not 404).
            return Err(AdminError::BadRequest("vhost_or_user_not_found".into()));
        }
        let existed = self.permissions.get(&def.user, &def.vhost).is_some();
        self.permissions.set(def).map_err(AdminError::BadRequest)?;
        self.permissions.save(&self.config.data_dir)?;
        Ok(if existed { Declared::Existed } else { Declared::Created })
    }

    pub fn admin_delete_permission(&mut self, user: &str, vhost: &str) -> Result<(), AdminError> {
        if !self.permissions.remove(user, vhost) {
            return Err(not_found());
        }
        self.permissions.save(&self.config.data_dir)?;
        Ok(())
    }

    /// Sets a topic permission (user and vhost must exist; the exchange need
    /// not, as in RabbitMQ). Whether the user had topic permissions in the
    /// vhost before decides 201 or 204, as RabbitMQ's API answers.
    pub fn admin_set_topic_permission(&mut self, def: TopicPermissionDef) -> Result<Declared, AdminError> {
        if self.users.get(&def.user).is_none() || !self.model.vhosts.contains_key(def.vhost.as_str()) {
            return Err(AdminError::BadRequest("vhost_or_user_not_found".into()));
        }
        let existed = self.permissions.topic.has_any(&def.user, &def.vhost);
        self.permissions.topic.set(def).map_err(AdminError::BadRequest)?;
        self.permissions.topic.save(&self.config.data_dir)?;
        Ok(if existed { Declared::Existed } else { Declared::Created })
    }

    /// Clears a user's topic permissions in a vhost (all, or one exchange's).
    /// NotFound when the user has none there, as RabbitMQ's API.
    pub fn admin_clear_topic_permissions(
        &mut self,
        user: &str,
        vhost: &str,
        exchange: Option<&str>,
    ) -> Result<(), AdminError> {
        let t = &mut self.permissions.topic;
        if !t.has_any(user, vhost) {
            return Err(AdminError::NotFound("Not Found".into()));
        }
        if t.remove(user, vhost, exchange) {
            t.save(&self.config.data_dir)?;
        }
        Ok(())
    }
}
