//! Users and their permissions and topic permissions: each change is
//! checked here, on a current copy (a metadata section), and made as an
//! access op that every shard applies (`amqp::meta_access`).

use crate::core::access::op::AccessOp;
use crate::core::access::permissions::Permission;
use crate::core::access::topic_permissions::{TopicPermissionDef, TopicPermissions};
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
    /// The user goes to every shard as it is decided here: hashed once, with
    /// this shard's salt (`access::op`).
    pub fn admin_put_user(&mut self, name: &str, spec: &UserSpec) -> Result<Declared, AdminError> {
        self.in_meta_section(|b| b.put_user_now(name, spec))
    }

    fn put_user_now(&mut self, name: &str, spec: &UserSpec) -> Result<Declared, AdminError> {
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
        self.make_access(AccessOp::UserPut(user))?;
        Ok(if existing.is_some() {
            Declared::Existed
        } else {
            Declared::Created
        })
    }

    /// Deletes a user and its permissions, and closes its connections (RabbitMQ's
    /// 320 "user '...' is deleted").
    pub fn admin_delete_user(&mut self, name: &str) -> Result<(), AdminError> {
        self.in_meta_section(|b| {
            b.users.get(name).ok_or_else(not_found)?;
            b.make_access(AccessOp::UserDelete { name: name.to_owned() })
        })?;
        // The connections' closes (notices of the op).
        self.run_pending();
        Ok(())
    }

    /// Sets a user's permissions in a vhost (both must exist).
    pub fn admin_set_permission(
        &mut self,
        def: crate::core::access::permissions::PermissionDef,
    ) -> Result<Declared, AdminError> {
        self.in_meta_section(|b| {
            if b.users.get(&def.user).is_none() || !b.model.vhosts.contains_key(def.vhost.as_str()) {
                // RabbitMQ 3.10's answer (400, not 404).
                return Err(AdminError::BadRequest("vhost_or_user_not_found".into()));
            }
            Permission::compile(&def).map_err(AdminError::BadRequest)?;
            let existed = b.permissions.get(&def.user, &def.vhost).is_some();
            b.make_access(AccessOp::PermissionSet(def))?;
            Ok(if existed { Declared::Existed } else { Declared::Created })
        })
    }

    pub fn admin_delete_permission(&mut self, user: &str, vhost: &str) -> Result<(), AdminError> {
        self.in_meta_section(|b| {
            b.permissions.get(user, vhost).ok_or_else(not_found)?;
            let (user, vhost) = (user.to_owned(), vhost.to_owned());
            b.make_access(AccessOp::PermissionDelete { user, vhost }).map(drop)
        })
    }

    /// Sets a topic permission (user and vhost must exist; the exchange need
    /// not, as in RabbitMQ). Whether the user had topic permissions in the
    /// vhost before decides 201 or 204, as RabbitMQ's API answers.
    pub fn admin_set_topic_permission(&mut self, def: TopicPermissionDef) -> Result<Declared, AdminError> {
        self.in_meta_section(|b| {
            if b.users.get(&def.user).is_none() || !b.model.vhosts.contains_key(def.vhost.as_str()) {
                return Err(AdminError::BadRequest("vhost_or_user_not_found".into()));
            }
            TopicPermissions::validate(&def).map_err(AdminError::BadRequest)?;
            let existed = b.permissions.topic.has_any(&def.user, &def.vhost);
            b.make_access(AccessOp::TopicPermissionSet(def))?;
            Ok(if existed { Declared::Existed } else { Declared::Created })
        })
    }

    /// Clears a user's topic permissions in a vhost (all, or one exchange's).
    /// NotFound when the user has none there, as RabbitMQ's API.
    pub fn admin_clear_topic_permissions(
        &mut self,
        user: &str,
        vhost: &str,
        exchange: Option<&str>,
    ) -> Result<(), AdminError> {
        self.in_meta_section(|b| {
            if !b.permissions.topic.has_any(user, vhost) {
                return Err(AdminError::NotFound("Not Found".into()));
            }
            b.make_access(AccessOp::TopicPermissionClear {
                user: user.to_owned(),
                vhost: vhost.to_owned(),
                exchange: exchange.map(str::to_owned),
            })
            .map(drop)
        })
    }
}
