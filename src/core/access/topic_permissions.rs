//! Topic authorisation, as RabbitMQ's internal auth backend has it: per user,
//! vhost and exchange, a `write` and a `read` regular expression over routing
//! keys. `write` is checked on basic.publish to a topic exchange (the routing
//! key), `read` on queue.bind / exchange.bind and their unbinds from one (the
//! binding key). No entry for the user, vhost and exchange allows everything;
//! other exchange types are never checked. Kept in `topic_permissions.json`
//! next to `permissions.json`, and part of [`crate::core::access::permissions::Permissions`]
//! so that deleting a user or a vhost drops them with the other permissions.
//!
//! The patterns are RabbitMQ's (Erlang `re`, i.e. PCRE), matched unanchored:
//! - an empty pattern is `^$` (only the empty key), not "nothing";
//! - `{username}` and `{vhost}` are replaced by the entry's user and vhost,
//!   unescaped, as RabbitMQ does; `{client_id}` is only known to MQTT there, so
//!   on AMQP 0-9-1 it stays as it is, a literal (checked against RabbitMQ 3.10);
//! - a `{` that does not start a `{n}`, `{n,}` or `{n,m}` quantifier is a
//!   literal in PCRE but an error in Rust's `regex`: it is escaped first.
//!
//! The expansion depends only on the entry, so each pattern is compiled once,
//! when set or loaded.

use std::path::Path;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::core::model::Model;

pub const TOPIC_PERMISSIONS_FILE: &str = "topic_permissions.json";

/// One entry as stored, as the HTTP API shows it and as definitions spell it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TopicPermissionDef {
    pub user: String,
    pub vhost: String,
    pub exchange: String,
    pub write: String,
    pub read: String,
}

/// What an operation needs on a topic exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicAccess {
    /// basic.publish: the routing key.
    Write,
    /// queue.bind, exchange.bind (and unbind): the binding key.
    Read,
}

#[derive(Debug)]
struct Compiled {
    write: Regex,
    read: Regex,
}

/// Exchange -> compiled patterns, for one user in one vhost.
type ByExchange = crate::core::Map<String, Compiled>;

#[derive(Debug, Default)]
pub struct TopicPermissions {
    defs: Vec<TopicPermissionDef>,
    /// user -> vhost -> exchange: looked up by `&str` on the publish path
    /// without building a key.
    compiled: crate::core::Map<String, crate::core::Map<String, ByExchange>>,
}

/// Escapes every `{` that PCRE would take as a literal (one that does not
/// open `{n}`, `{n,}` or `{n,m}`), so Rust's `regex` reads the pattern as
/// RabbitMQ's `re` does.
fn pcre_braces(p: &str) -> String {
    let b = p.as_bytes();
    let mut out = String::with_capacity(p.len() + 8);
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if i + 1 < b.len() => {
                // An escape pair is copied whole (the next char may be multibyte).
                let next = p[i + 1..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&p[i..i + 1 + next]);
                i += 1 + next;
            }
            b'{' if !opens_quantifier(&b[i + 1..]) => {
                out.push_str("\\{");
                i += 1;
            }
            _ => {
                let len = p[i..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&p[i..i + len]);
                i += len;
            }
        }
    }
    out
}

/// Whether the bytes after a `{` are `n}`, `n,}` or `n,m}`.
fn opens_quantifier(rest: &[u8]) -> bool {
    let digits = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
    let n = digits(rest);
    if n == 0 {
        return false;
    }
    match rest.get(n) {
        Some(b'}') => true,
        Some(b',') => {
            let m = digits(&rest[n + 1..]);
            rest.get(n + 1 + m) == Some(&b'}')
        }
        _ => false,
    }
}

/// The regex of one pattern of `def`, after RabbitMQ's defaults and expansion.
fn compile_one(def: &TopicPermissionDef, pattern: &str) -> Result<Regex, String> {
    let p = if pattern.is_empty() { "^$" } else { pattern };
    let expanded = p.replace("{username}", &def.user).replace("{vhost}", &def.vhost);
    Regex::new(&pcre_braces(&expanded)).map_err(|e| format!("invalid topic permission pattern {pattern:?}: {e}"))
}

fn compile(def: &TopicPermissionDef) -> Result<Compiled, String> {
    Ok(Compiled {
        write: compile_one(def, &def.write)?,
        read: compile_one(def, &def.read)?,
    })
}

impl TopicPermissions {
    /// Checks that an entry's patterns compile (definitions import validates
    /// the whole file before applying any of it).
    pub fn validate(def: &TopicPermissionDef) -> Result<(), String> {
        compile(def).map(|_| ())
    }

    /// Sets (or replaces) the entry for the def's user, vhost and exchange.
    pub fn set(&mut self, def: TopicPermissionDef) -> Result<(), String> {
        let c = compile(&def)?;
        self.compiled
            .entry(def.user.clone())
            .or_default()
            .entry(def.vhost.clone())
            .or_default()
            .insert(def.exchange.clone(), c);
        self.defs
            .retain(|d| !(d.user == def.user && d.vhost == def.vhost && d.exchange == def.exchange));
        self.defs.push(def);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }

    /// Whether `user` has any entry in `vhost`.
    pub fn has_any(&self, user: &str, vhost: &str) -> bool {
        self.defs.iter().any(|d| d.user == user && d.vhost == vhost)
    }

    /// Whether `key` may be written to / bound from `exchange`; true when the
    /// user has no entry for it.
    pub fn allows(&self, user: &str, vhost: &str, exchange: &str, access: TopicAccess, key: &str) -> bool {
        let Some(c) = self
            .compiled
            .get(user)
            .and_then(|v| v.get(vhost))
            .and_then(|x| x.get(exchange))
        else {
            return true;
        };
        match access {
            TopicAccess::Write => c.write.is_match(key),
            TopicAccess::Read => c.read.is_match(key),
        }
    }

    /// Drops the entries of `user` in `vhost`, or only the one for `exchange`;
    /// returns whether there were any.
    pub fn remove(&mut self, user: &str, vhost: &str, exchange: Option<&str>) -> bool {
        self.remove_where(|d| d.user == user && d.vhost == vhost && exchange.is_none_or(|x| x == d.exchange))
    }

    pub fn remove_user(&mut self, user: &str) -> bool {
        self.remove_where(|d| d.user == user)
    }

    pub fn remove_vhost(&mut self, vhost: &str) -> bool {
        self.remove_where(|d| d.vhost == vhost)
    }

    fn remove_where(&mut self, gone: impl Fn(&TopicPermissionDef) -> bool) -> bool {
        let before = self.defs.len();
        for d in self.defs.iter().filter(|d| gone(d)) {
            if let Some(by_vhost) = self.compiled.get_mut(&d.user) {
                if let Some(by_x) = by_vhost.get_mut(&d.vhost) {
                    by_x.remove(&d.exchange);
                    if by_x.is_empty() {
                        by_vhost.remove(&d.vhost);
                    }
                }
                if by_vhost.is_empty() {
                    self.compiled.remove(&d.user);
                }
            }
        }
        self.defs.retain(|d| !gone(d));
        before != self.defs.len()
    }

    /// Every entry, sorted by user, vhost, exchange.
    pub fn defs(&self) -> Vec<TopicPermissionDef> {
        let mut v = self.defs.clone();
        v.sort_by(|a, b| (&a.user, &a.vhost, &a.exchange).cmp(&(&b.user, &b.vhost, &b.exchange)));
        v
    }

    /// Reads `topic_permissions.json`; empty when the file does not exist yet.
    pub fn load(data_dir: &Path) -> std::io::Result<TopicPermissions> {
        let defs: Option<Vec<TopicPermissionDef>> =
            ringmq_store::meta::read_json(&data_dir.join(TOPIC_PERMISSIONS_FILE))?;
        let mut t = TopicPermissions::default();
        for d in defs.unwrap_or_default() {
            if let Err(e) = t.set(d) {
                // A pattern that no longer compiles denies nothing rather than
                // refusing to start; it was checked when it was set.
                tracing::error!(error = %e, "ignoring topic permission entry");
            }
        }
        Ok(t)
    }

    pub fn save(&self, data_dir: &Path) -> std::io::Result<()> {
        ringmq_store::meta::write_json_atomic(&data_dir.join(TOPIC_PERMISSIONS_FILE), &self.defs)
    }
}

/// A topic permission refused a key: RabbitMQ's text is its `Display`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("access to topic '{key}' in exchange '{exchange}' in vhost '{vhost}' refused for user '{user}'")]
pub struct TopicRefused {
    pub user: String,
    pub vhost: String,
    pub exchange: String,
    pub key: String,
}

impl TopicPermissions {
    /// RabbitMQ's `check_topic_authorisation`: refused when `user` may not use
    /// `key` on `exchange`, a topic exchange of `vhost` in `model`. A missing
    /// exchange passes (its own 404 follows). The AMQP session turns a refusal
    /// into 403 ACCESS_REFUSED (`amqp::topic_access`).
    pub(crate) fn check(
        &self,
        model: &Model,
        user: &str,
        vhost: &str,
        exchange: &str,
        key: &str,
        access: TopicAccess,
    ) -> Result<(), TopicRefused> {
        // The common case, no topic permissions at all, costs one length check.
        if self.is_empty() {
            return Ok(());
        }
        if self.allows(user, vhost, exchange, access, key) {
            return Ok(());
        }
        let is_topic = model
            .vhosts
            .get(vhost)
            .and_then(|v| v.exchanges.get(exchange))
            .is_some_and(|x| x.type_name() == "topic");
        if !is_topic {
            return Ok(());
        }
        Err(TopicRefused {
            user: user.to_owned(),
            vhost: vhost.to_owned(),
            exchange: exchange.to_owned(),
            key: key.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(exchange: &str, write: &str, read: &str) -> TopicPermissionDef {
        TopicPermissionDef {
            user: "u.1".into(),
            vhost: "v".into(),
            exchange: exchange.into(),
            write: write.into(),
            read: read.into(),
        }
    }

    #[test]
    fn braces_that_pcre_reads_as_literals_are_escaped() {
        assert_eq!(pcre_braces("^{client_id}$"), "^\\{client_id}$");
        assert_eq!(pcre_braces("a{2}b{2,}c{2,3}"), "a{2}b{2,}c{2,3}");
        assert_eq!(pcre_braces("a{,3}x{"), "a\\{,3}x\\{");
        assert_eq!(pcre_braces("\\{x\\}é{"), "\\{x\\}é\\{");
        assert_eq!(pcre_braces("trailing\\"), "trailing\\");
        for p in ["^{client_id}$", "a{,3}", "{", "}", "x{1,y}"] {
            assert!(Regex::new(&pcre_braces(p)).is_ok(), "{p}");
        }
    }

    #[test]
    fn patterns_expand_and_match_as_rabbitmq() {
        let mut t = TopicPermissions::default();
        t.set(def("amq.topic", "^{username}\\.", "")).unwrap();
        t.set(def("x2", "^{client_id}$", "^r\\.{vhost}$")).unwrap();
        let allows = |x: &str, a, k: &str| t.allows("u.1", "v", x, a, k);
        assert!(allows("amq.topic", TopicAccess::Write, "u.1.orders"));
        // The user name is inserted unescaped: its `.` matches any character.
        assert!(allows("amq.topic", TopicAccess::Write, "uX1.orders"));
        assert!(!allows("amq.topic", TopicAccess::Write, "other.orders"));
        // An empty pattern is ^$.
        assert!(allows("amq.topic", TopicAccess::Read, ""));
        assert!(!allows("amq.topic", TopicAccess::Read, "a"));
        assert!(allows("x2", TopicAccess::Write, "{client_id}"));
        assert!(!allows("x2", TopicAccess::Write, "c1"));
        assert!(allows("x2", TopicAccess::Read, "r.v"));
        // No entry: allowed.
        assert!(allows("x3", TopicAccess::Write, "anything"));
        assert!(t.allows("someone", "v", "amq.topic", TopicAccess::Write, "x"));
        assert!(t.set(def("amq.topic", "(", "")).is_err());
    }

    #[test]
    fn remove_by_exchange_user_vhost_and_file_round_trip() {
        let mut t = TopicPermissions::default();
        t.set(def("a", ".*", ".*")).unwrap();
        t.set(def("b", "^x", ".*")).unwrap();
        t.set(def("b", "^y", ".*")).unwrap();
        assert_eq!(t.defs().len(), 2, "set replaces per exchange");
        let dir = tempfile::tempdir().unwrap();
        t.save(dir.path()).unwrap();
        let back = TopicPermissions::load(dir.path()).unwrap();
        assert_eq!(back.defs(), t.defs());
        assert!(back.allows("u.1", "v", "b", TopicAccess::Write, "y"));
        assert!(!back.allows("u.1", "v", "b", TopicAccess::Write, "x"));

        assert!(t.remove("u.1", "v", Some("a")));
        assert!(!t.remove("u.1", "v", Some("a")));
        assert!(t.allows("u.1", "v", "a", TopicAccess::Write, "no entry now"));
        assert!(!t.remove_vhost("other"));
        assert!(t.remove_user("u.1"));
        assert!(t.is_empty() && t.compiled.is_empty());
        assert!(TopicPermissions::load(tempfile::tempdir().unwrap().path())
            .unwrap()
            .is_empty());
    }
}
