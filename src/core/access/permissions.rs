//! Per-user, per-vhost permissions: configure, write and read regular
//! expressions, checked where RabbitMQ checks them, kept in `permissions.json`.
//!
//! The expressions are compiled once, when loaded or set. RabbitMQ anchors them
//! (`^...$` semantics via `re:run` with anchoring in the pattern itself is up to
//! the operator; RabbitMQ matches unanchored): we match unanchored too, so
//! `"^amq\\.gen.*"` and `".*"` mean what they mean there. An empty pattern
//! grants nothing, as in RabbitMQ.
//!
//! The user's topic permissions (`topic_permissions.rs`) live here too, in
//! their own file: removing a user or a vhost removes both kinds, and saving
//! writes both.

use std::path::Path;
use std::sync::Arc;

use regex::Regex;
use serde::{Deserialize, Serialize};

pub const PERMISSIONS_FILE: &str = "permissions.json";

/// One entry as stored and as RabbitMQ definitions spell it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PermissionDef {
    pub user: String,
    pub vhost: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

/// The compiled form a connection holds for its vhost.
#[derive(Debug)]
pub struct Permission {
    configure: Pattern,
    write: Pattern,
    read: Pattern,
}

/// One compiled pattern.
#[derive(Debug)]
enum Pattern {
    /// The empty pattern: grants nothing.
    Nothing,
    /// `.*`, the pattern of nearly every permission (the default user's, and
    /// RabbitMQ's default): unanchored, it matches every name, so no regex is
    /// built. Building one was 43% of opening a broker in the fuzz targets
    /// (the regex crate instrumented), and costs ~0.1 ms per user at start.
    All,
    Regex(Regex),
}

/// What an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Configure,
    Write,
    Read,
}

fn compile(p: &str) -> Result<Pattern, String> {
    match p {
        "" => Ok(Pattern::Nothing),
        ".*" => Ok(Pattern::All),
        _ => Regex::new(p)
            .map(Pattern::Regex)
            .map_err(|e| format!("invalid permission pattern {p:?}: {e}")),
    }
}

impl Permission {
    pub fn compile(def: &PermissionDef) -> Result<Permission, String> {
        Ok(Permission {
            configure: compile(&def.configure)?,
            write: compile(&def.write)?,
            read: compile(&def.read)?,
        })
    }

    pub fn allows(&self, access: Access, name: &str) -> bool {
        let pattern = match access {
            Access::Configure => &self.configure,
            Access::Write => &self.write,
            Access::Read => &self.read,
        };
        match pattern {
            Pattern::Nothing => false,
            Pattern::All => true,
            Pattern::Regex(r) => r.is_match(name),
        }
    }
}

#[derive(Debug, Default)]
pub struct Permissions {
    defs: Vec<PermissionDef>,
    compiled: crate::core::Map<(String, String), Arc<Permission>>,
    /// RabbitMQ's topic authorisation (per user, vhost and topic exchange).
    pub topic: crate::core::access::topic_permissions::TopicPermissions,
}

impl Permissions {
    pub fn set(&mut self, def: PermissionDef) -> Result<(), String> {
        let p = Arc::new(Permission::compile(&def)?);
        self.defs.retain(|d| !(d.user == def.user && d.vhost == def.vhost));
        self.compiled.insert((def.user.clone(), def.vhost.clone()), p);
        self.defs.push(def);
        Ok(())
    }

    /// The user's permission in a vhost; None means no access to the vhost.
    pub fn get(&self, user: &str, vhost: &str) -> Option<Arc<Permission>> {
        self.compiled.get(&(user.to_owned(), vhost.to_owned())).cloned()
    }

    /// Drops every permission on `vhost`, topic permissions too; returns
    /// whether there were any.
    pub fn remove_vhost(&mut self, vhost: &str) -> bool {
        let before = self.defs.len();
        self.defs.retain(|d| d.vhost != vhost);
        self.compiled.retain(|(_, v), _| v != vhost);
        let topic = self.topic.remove_vhost(vhost);
        before != self.defs.len() || topic
    }

    /// Drops every permission of `user`, topic permissions too; returns
    /// whether there were any.
    pub fn remove_user(&mut self, user: &str) -> bool {
        let before = self.defs.len();
        self.defs.retain(|d| d.user != user);
        self.compiled.retain(|(u, _), _| u != user);
        let topic = self.topic.remove_user(user);
        before != self.defs.len() || topic
    }

    /// Drops one permission; returns whether it existed.
    pub fn remove(&mut self, user: &str, vhost: &str) -> bool {
        let before = self.defs.len();
        self.defs.retain(|d| !(d.user == user && d.vhost == vhost));
        self.compiled.remove(&(user.to_owned(), vhost.to_owned()));
        before != self.defs.len()
    }

    /// Every permission, sorted by user then vhost.
    pub fn defs(&self) -> Vec<PermissionDef> {
        let mut v = self.defs.clone();
        v.sort_by(|a, b| (&a.user, &a.vhost).cmp(&(&b.user, &b.vhost)));
        v
    }

    /// Reads `permissions.json` and `topic_permissions.json`; None when the
    /// first does not exist yet.
    pub fn load(data_dir: &Path) -> std::io::Result<Option<Permissions>> {
        let defs: Option<Vec<PermissionDef>> = ringmq_store::meta::read_json(&data_dir.join(PERMISSIONS_FILE))?;
        let Some(defs) = defs else { return Ok(None) };
        let mut p = Permissions {
            topic: crate::core::access::topic_permissions::TopicPermissions::load(data_dir)?,
            ..Permissions::default()
        };
        for d in defs {
            if let Err(e) = p.set(d) {
                // A bad pattern denies that entry rather than refusing to start.
                tracing::error!(error = %e, "ignoring permission entry");
            }
        }
        Ok(Some(p))
    }

    /// Writes both files (each atomically: temp file, fsync, rename).
    pub fn save(&self, data_dir: &Path) -> std::io::Result<()> {
        ringmq_store::meta::write_json_atomic(&data_dir.join(PERMISSIONS_FILE), &self.defs)?;
        self.topic.save(data_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(c: &str, w: &str, r: &str) -> PermissionDef {
        PermissionDef {
            user: "u".into(),
            vhost: "/".into(),
            configure: c.into(),
            write: w.into(),
            read: r.into(),
        }
    }

    #[test]
    fn patterns_grant_what_they_match() {
        let mut p = Permissions::default();
        p.set(def("^amq\\.gen.*", ".*", "")).unwrap();
        let perm = p.get("u", "/").unwrap();
        assert!(perm.allows(Access::Configure, "amq.gen-abc"));
        assert!(!perm.allows(Access::Configure, "orders"));
        assert!(perm.allows(Access::Write, "anything"));
        assert!(!perm.allows(Access::Read, "anything"), "empty pattern grants nothing");
        assert!(p.get("u", "other").is_none());
        assert!(p.get("v", "/").is_none());
        // `.*` (built without a regex) matches what the regex would: every name,
        // the empty one and ones with a newline (unanchored, `.*` matches empty).
        p.set(def(".*", ".*", ".*")).unwrap();
        let all = p.get("u", "/").unwrap();
        let regex = Regex::new(".*").unwrap();
        for name in ["", "a\nb", "amq.gen-x", "é"] {
            assert!(all.allows(Access::Read, name));
            assert!(regex.is_match(name));
        }
    }

    #[test]
    fn bad_pattern_is_refused_and_file_round_trips() {
        let mut p = Permissions::default();
        assert!(p.set(def("(", ".*", ".*")).is_err());
        p.set(def(".*", ".*", ".*")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        p.save(dir.path()).unwrap();
        let back = Permissions::load(dir.path()).unwrap().unwrap();
        assert!(back.get("u", "/").unwrap().allows(Access::Read, "q"));
    }
}
