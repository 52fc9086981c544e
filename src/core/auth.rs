//! SASL mechanisms (PLAIN, AMQPLAIN) and the user table.
//!
//! Users, tags and permissions in full come with the vhost/permission work; this
//! holds the seam: a user table with password check, and the `guest` rule that
//! RabbitMQ applies by default (guest may only connect from loopback).

use std::collections::HashMap;

use ringmq_codec::{FieldValueRef, Table};

/// The mechanisms announced in connection.start, in order of preference.
pub const MECHANISMS: &[u8] = b"PLAIN AMQPLAIN";

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub password: String,
    /// RabbitMQ's `loopback_users`: this user may only log in from 127.0.0.0/8 or ::1.
    pub loopback_only: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Users {
    users: HashMap<String, User>,
}

impl Users {
    /// The default table: `guest`/`guest`, loopback only.
    pub fn with_default_guest() -> Self {
        Self::with_default_user("guest", "guest", true)
    }

    /// A table with one user, the configured default one.
    pub fn with_default_user(name: &str, password: &str, loopback_only: bool) -> Self {
        let mut u = Users::default();
        u.users.insert(
            name.to_owned(),
            User {
                name: name.to_owned(),
                password: password.to_owned(),
                loopback_only,
            },
        );
        u
    }

    /// Checks credentials; `Err` carries the reason for the log (never sent to the
    /// client: RabbitMQ's refusal text does not say which part was wrong).
    pub fn authenticate(&self, username: &str, password: &str, peer_is_loopback: bool) -> Result<&User, &'static str> {
        let user = self.users.get(username).ok_or("no such user")?;
        if user.password != password {
            return Err("wrong password");
        }
        if user.loopback_only && !peer_is_loopback {
            return Err("user may only connect via localhost");
        }
        Ok(user)
    }
}

/// Extracts (username, password) from a start-ok response for a mechanism.
pub fn parse_response<'a>(mechanism: &str, response: &'a [u8]) -> Option<(&'a str, &'a str)> {
    match mechanism {
        // PLAIN (RFC 4616): authzid NUL authcid NUL passwd.
        "PLAIN" => {
            let mut parts = response.splitn(3, |b| *b == 0);
            let _authzid = parts.next()?;
            let user = std::str::from_utf8(parts.next()?).ok()?;
            let pass = std::str::from_utf8(parts.next()?).ok()?;
            Some((user, pass))
        }
        // AMQPLAIN: a field table without its length prefix, keys LOGIN and PASSWORD.
        "AMQPLAIN" => {
            let t = Table::parse(response).ok()?;
            let get = |k: &str| match t.get(k)? {
                FieldValueRef::LongString(s) => std::str::from_utf8(s).ok(),
                _ => None,
            };
            Some((get("LOGIN")?, get("PASSWORD")?))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringmq_codec::{FieldTable, FieldValue};

    #[test]
    fn plain_and_amqplain() {
        assert_eq!(parse_response("PLAIN", b"\0guest\0guest"), Some(("guest", "guest")));
        assert_eq!(parse_response("PLAIN", b"\0guest"), None);
        let t: FieldTable = [("LOGIN", FieldValue::from("u")), ("PASSWORD", FieldValue::from("p"))]
            .into_iter()
            .collect();
        assert_eq!(parse_response("AMQPLAIN", &t.to_bytes()), Some(("u", "p")));
        assert_eq!(parse_response("EXTERNAL", b""), None);
    }

    #[test]
    fn guest_is_loopback_only() {
        let u = Users::with_default_guest();
        assert!(u.authenticate("guest", "guest", true).is_ok());
        assert!(u.authenticate("guest", "guest", false).is_err());
        assert!(u.authenticate("guest", "nope", true).is_err());
    }
}
