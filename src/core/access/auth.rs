//! SASL mechanisms (PLAIN, AMQPLAIN, EXTERNAL), users with RabbitMQ-compatible password
//! hashes, and their persistence in `users.json`.
//!
//! A password hash is stored as RabbitMQ stores it (and exports it in
//! definitions): base64 of a 4-byte salt followed by `H(salt ++ password)`, with
//! `hashing_algorithm` naming H (`rabbit_password_hashing_sha256` by default;
//! SHA-512, MD5 and bcrypt (LavinMQ) are accepted so imported users keep
//! working; we only ever create SHA-256 hashes.
//!
//! Tags are RabbitMQ's: `administrator`, `monitoring`, `management`,
//! `policymaker` decide access to the management API; `impersonator` lets a
//! publisher set another user's `user_id`. Per-user limits (max-connections,
//! max-channels) are enforced at connection.open and channel.open.

use std::path::Path;

use base64::Engine;
use ringmq_codec::{FieldValueRef, Table};
use serde::{Deserialize, Serialize};
use sha2::Digest;

/// The mechanisms announced in connection.start, in order of preference.
pub const MECHANISMS: &[u8] = b"PLAIN AMQPLAIN";
/// The same with EXTERNAL, on a connection whose TLS handshake verified a
/// client certificate (RabbitMQ's rabbitmq_auth_mechanism_ssl offers it only
/// then too).
pub const MECHANISMS_WITH_EXTERNAL: &[u8] = b"PLAIN AMQPLAIN EXTERNAL";

/// The broker's own links' mechanism (`ringmq_client::Login::BrokerInternal`):
/// never announced, accepted only over loopback with this start's secret
/// (`CoreConfig::internal_secret`). Its response is PLAIN's, the secret in
/// place of the password.
pub const INTERNAL_MECHANISM: &str = "RINGMQ-INTERNAL";

/// What a connection's TLS client certificate offers SASL EXTERNAL. The io
/// layer reads it from the certificate its TLS verified (`handle_peer_certificate`);
/// the core never sees the certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CertIdentity {
    /// Plain TCP, or TLS without a client certificate.
    #[default]
    None,
    /// A verified certificate, and the user name it gives (by
    /// `tls_cert_login_from`, RabbitMQ's `ssl_cert_login_from`: its subject,
    /// its CN or one of its alternative names).
    Name(String),
    /// A verified certificate without the name the setting asks for (no CN,
    /// no alternative name of that kind): EXTERNAL is offered and refused, as
    /// RabbitMQ refuses it.
    NoName,
}

impl CertIdentity {
    pub fn is_some(&self) -> bool {
        !matches!(self, CertIdentity::None)
    }
}
/// The users file in the data directory.
pub const USERS_FILE: &str = "users.json";

/// RabbitMQ's names for its hashing modules.
pub const HASH_SHA256: &str = "rabbit_password_hashing_sha256";
pub const HASH_SHA512: &str = "rabbit_password_hashing_sha512";
pub const HASH_MD5: &str = "rabbit_password_hashing_md5";
/// LavinMQ's name for bcrypt hashes (`$2a$...` strings, not salt ++ digest).
pub const HASH_BCRYPT: &str = "Bcrypt";

/// The hashing algorithms a user may carry.
pub const HASH_ALGORITHMS: &[&str] = &[HASH_SHA256, HASH_SHA512, HASH_MD5, HASH_BCRYPT];

/// Per-user limits (RabbitMQ's user limits); None = no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserLimits {
    #[serde(rename = "max-connections", default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u64>,
    #[serde(rename = "max-channels", default, skip_serializing_if = "Option::is_none")]
    pub max_channels: Option<u64>,
}

impl UserLimits {
    pub fn is_empty(&self) -> bool {
        self.max_connections.is_none() && self.max_channels.is_none()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct User {
    pub name: String,
    /// base64(salt ++ hash), as in RabbitMQ definitions.
    pub password_hash: String,
    pub hashing_algorithm: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// RabbitMQ's `loopback_users`: this user may only log in from 127.0.0.0/8 or ::1.
    #[serde(default)]
    pub loopback_only: bool,
    #[serde(default, skip_serializing_if = "UserLimits::is_empty")]
    pub limits: UserLimits,
}

impl User {
    /// A user with a freshly salted SHA-256 hash of `password`.
    pub fn new(name: &str, password: &str, salt: [u8; 4], loopback_only: bool) -> User {
        User {
            name: name.to_owned(),
            password_hash: hash_password(HASH_SHA256, password, salt).expect("known algorithm"),
            hashing_algorithm: HASH_SHA256.to_owned(),
            tags: Vec::new(),
            loopback_only,
            limits: UserLimits::default(),
        }
    }

    /// Whether `password` matches the stored hash (constant-time compare).
    pub fn check_password(&self, password: &str) -> bool {
        if self.hashing_algorithm == HASH_BCRYPT {
            return bcrypt::verify(password, &self.password_hash).unwrap_or(false);
        }
        let Ok(stored) = base64::engine::general_purpose::STANDARD.decode(&self.password_hash) else {
            return false;
        };
        if stored.len() < 4 {
            return false;
        }
        let salt = [stored[0], stored[1], stored[2], stored[3]];
        let Some(computed) = digest(&self.hashing_algorithm, &salt, password) else {
            return false;
        };
        let expected = &stored[4..];
        // Compare every byte whatever the first mismatch: no timing hint.
        computed.len() == expected.len() && computed.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }

    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

fn digest(algorithm: &str, salt: &[u8; 4], password: &str) -> Option<Vec<u8>> {
    Some(match algorithm {
        HASH_SHA256 => sha2::Sha256::new()
            .chain_update(salt)
            .chain_update(password)
            .finalize()
            .to_vec(),
        HASH_SHA512 => sha2::Sha512::new()
            .chain_update(salt)
            .chain_update(password)
            .finalize()
            .to_vec(),
        HASH_MD5 => md5(salt, password.as_bytes())?,
        _ => return None,
    })
}

/// MD5 is only accepted for users imported from old RabbitMQ definitions; we
/// never create such hashes.
fn md5(salt: &[u8; 4], password: &[u8]) -> Option<Vec<u8>> {
    use md5::Digest as _;
    Some(
        md5::Md5::new()
            .chain_update(salt)
            .chain_update(password)
            .finalize()
            .to_vec(),
    )
}

/// Checks an imported hash: a known algorithm, and a hash of the right form
/// (base64 of a 4-byte salt and a digest of the algorithm's length, or a bcrypt
/// string). The error says what is wrong, for definitions import errors.
pub fn validate_hash(algorithm: &str, hash: &str) -> Result<(), String> {
    let digest_len = match algorithm {
        HASH_SHA256 => 32,
        HASH_SHA512 => 64,
        HASH_MD5 => 16,
        HASH_BCRYPT => {
            return hash
                .parse::<bcrypt::HashParts>()
                .map(|_| ())
                .map_err(|e| format!("invalid bcrypt hash: {e}"));
        }
        other => {
            return Err(format!(
                "unknown hashing algorithm '{other}' (known: {})",
                HASH_ALGORITHMS.join(", ")
            ))
        }
    };
    // An empty hash is RabbitMQ's "no password": nobody can log in with one.
    if hash.is_empty() {
        return Ok(());
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(hash)
        .map_err(|_| "password_hash is not base64".to_owned())?;
    if raw.len() != 4 + digest_len {
        return Err(format!(
            "password_hash has {} bytes, {algorithm} needs {}",
            raw.len(),
            4 + digest_len
        ));
    }
    Ok(())
}

/// base64(salt ++ H(salt ++ password)).
pub fn hash_password(algorithm: &str, password: &str, salt: [u8; 4]) -> Option<String> {
    let mut out = salt.to_vec();
    out.extend(digest(algorithm, &salt, password)?);
    Some(base64::engine::general_purpose::STANDARD.encode(out))
}

#[derive(Debug, Clone, Default)]
pub struct Users {
    users: crate::core::Map<String, User>,
}

impl Users {
    /// A table with one user, the configured default one.
    pub fn with_default_user(name: &str, password: &str, loopback_only: bool, salt: [u8; 4]) -> Self {
        let mut u = Users::default();
        let mut user = User::new(name, password, salt, loopback_only);
        // As RabbitMQ's guest: the first user can manage the broker.
        user.tags.push("administrator".into());
        u.insert(user);
        u
    }

    pub fn insert(&mut self, user: User) {
        self.users.insert(user.name.clone(), user);
    }

    pub fn iter(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    pub fn remove(&mut self, name: &str) -> Option<User> {
        self.users.remove(name)
    }

    pub fn get(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// Reads `users.json` from the data directory; None if there is none yet.
    pub fn load(data_dir: &Path) -> std::io::Result<Option<Users>> {
        let list: Option<Vec<User>> = ringmq_store::meta::read_json(&data_dir.join(USERS_FILE))?;
        Ok(list.map(|list| {
            let mut u = Users::default();
            for user in list {
                u.insert(user);
            }
            u
        }))
    }

    /// Writes `users.json` atomically (temp file, fsync, rename).
    pub fn save(&self, data_dir: &Path) -> std::io::Result<()> {
        let mut list: Vec<&User> = self.users.values().collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        ringmq_store::meta::write_json_atomic(&data_dir.join(USERS_FILE), &list)
    }

    /// Checks credentials; `Err` carries the reason for the log (never sent to the
    /// client: RabbitMQ's refusal text does not say which part was wrong).
    pub fn authenticate(&self, username: &str, password: &str, peer_is_loopback: bool) -> Result<&User, &'static str> {
        let user = self.users.get(username).ok_or("no such user")?;
        if !user.check_password(password) {
            return Err("wrong password");
        }
        if user.loopback_only && !peer_is_loopback {
            return Err("user may only connect via localhost");
        }
        Ok(user)
    }
}

impl Users {
    /// [`INTERNAL_MECHANISM`]: `user` without its password, proved by
    /// `secret` (this start's, `expected`) from loopback only. The user must
    /// exist: RabbitMQ's federation links log in so as its default user
    /// (`check_user_login` without a password). `Err` carries the reason for
    /// the log.
    pub fn authenticate_internal(
        &self,
        username: &str,
        secret: &[u8],
        expected: Option<&crate::core::config::InternalSecret>,
        peer_is_loopback: bool,
    ) -> Result<&User, &'static str> {
        let expected = expected.ok_or("the internal mechanism is off")?;
        if !peer_is_loopback {
            return Err("the internal mechanism is for loopback connections only");
        }
        if !expected.matches(secret) {
            return Err("wrong internal secret");
        }
        self.users.get(username).ok_or("no such user")
    }

    /// SASL EXTERNAL: the certificate's name must be a user's (no password is
    /// asked: the TLS handshake proved the key). `Err` carries the reason for
    /// the log, as [`Users::authenticate`]'s.
    pub fn authenticate_external(&self, id: &CertIdentity, peer_is_loopback: bool) -> Result<&User, &'static str> {
        let name = match id {
            CertIdentity::Name(name) => name,
            CertIdentity::NoName => return Err("the client certificate has no name where tls_cert_login_from looks"),
            CertIdentity::None => return Err("EXTERNAL without a verified client certificate"),
        };
        let user = self.users.get(name).ok_or("no such user (the certificate's name)")?;
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
        let t: FieldTable = [
            (ringmq_codec::short!("LOGIN"), FieldValue::from("u")),
            (ringmq_codec::short!("PASSWORD"), FieldValue::from("p")),
        ]
        .into_iter()
        .collect();
        assert_eq!(parse_response("AMQPLAIN", &t.to_bytes()), Some(("u", "p")));
        assert_eq!(parse_response("EXTERNAL", b""), None);
    }

    #[test]
    fn external_needs_a_certificate_a_cn_and_a_user() {
        let mut u = Users::with_default_user("guest", "guest", true, [1, 2, 3, 4]);
        u.insert(User::new("alice", "pw", [5; 4], false));
        let cn = |n: &str| CertIdentity::Name(n.into());
        assert_eq!(u.authenticate_external(&cn("alice"), false).unwrap().name, "alice");
        assert!(u.authenticate_external(&cn("bob"), true).is_err(), "unknown user");
        assert!(u.authenticate_external(&cn("Alice"), true).is_err(), "names are exact");
        assert!(u.authenticate_external(&CertIdentity::NoName, true).is_err());
        assert!(u.authenticate_external(&CertIdentity::None, true).is_err());
        assert!(u.authenticate_external(&cn("guest"), false).is_err(), "loopback only");
        assert!(u.authenticate_external(&cn("guest"), true).is_ok());
    }

    #[test]
    fn guest_is_loopback_only() {
        let u = Users::with_default_user("guest", "guest", true, [1, 2, 3, 4]);
        assert!(u.authenticate("guest", "guest", true).is_ok());
        assert!(u.authenticate("guest", "guest", false).is_err());
        assert!(u.authenticate("guest", "nope", true).is_err());
    }

    #[test]
    fn hashes_match_rabbitmq_format() {
        // Computed independently with Python's hashlib:
        // base64(salt ++ sha256(salt ++ b"guest")) for the salt 90 8d c6 0a.
        let h = hash_password(HASH_SHA256, "guest", [0x90, 0x8d, 0xc6, 0x0a]).unwrap();
        assert_eq!(h, GUEST_HASH_SALT_908DC60A);
        let user = User {
            name: "guest".into(),
            password_hash: GUEST_HASH_SALT_908DC60A.into(),
            hashing_algorithm: HASH_SHA256.into(),
            tags: vec![],
            loopback_only: false,
            limits: UserLimits::default(),
        };
        assert!(user.check_password("guest"));
        assert!(!user.check_password("guesT"));
    }

    #[test]
    fn imported_md5_and_bcrypt_hashes_verify() {
        // base64(salt ++ md5(salt ++ b"secret")) for the salt 01 02 03 04, by hashlib.
        let md5 = User {
            password_hash: "AQIDBDgk9ci8Lfh6CKE9Y0AUfmU=".into(),
            hashing_algorithm: HASH_MD5.into(),
            ..User::new("m", "x", [0; 4], false)
        };
        assert!(validate_hash(HASH_MD5, &md5.password_hash).is_ok());
        assert!(md5.check_password("secret"));
        assert!(!md5.check_password("Secret"));
        // The OpenBSD bcrypt test vector for "U*U".
        let bc = User {
            password_hash: "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW".into(),
            hashing_algorithm: HASH_BCRYPT.into(),
            ..User::new("b", "x", [0; 4], false)
        };
        assert!(validate_hash(HASH_BCRYPT, &bc.password_hash).is_ok());
        assert!(bc.check_password("U*U"));
        assert!(!bc.check_password("U*V"));
        assert!(
            validate_hash(HASH_SHA256, "AQIDBDgk9ci8Lfh6CKE9Y0AUfmU=").is_err(),
            "md5-sized hash as sha256"
        );
        assert!(validate_hash("rabbit_password_hashing_sha1", "").is_err());
        assert!(validate_hash(HASH_BCRYPT, "nope").is_err());
    }

    const GUEST_HASH_SALT_908DC60A: &str = "kI3GCrswBLNZQzHJJ95QLoyfAVooYhnvf7jbqiW9BjOYUloe";

    #[test]
    fn internal_login_needs_the_secret_loopback_and_the_user() {
        let mut users = Users::default();
        users.insert(User::new("guest", "guest", [1, 2, 3, 4], false));
        let secret = crate::core::config::InternalSecret::from_random([7; 32]);
        let ok = |u: &str, s: &str, on: Option<&_>, lo| {
            users
                .authenticate_internal(u, s.as_bytes(), on, lo)
                .map(|u| u.name.clone())
        };
        assert_eq!(
            ok("guest", secret.as_str(), Some(&secret), true),
            Ok("guest".to_owned())
        );
        assert_eq!(
            ok("guest", secret.as_str(), None, true),
            Err("the internal mechanism is off")
        );
        assert!(
            ok("guest", secret.as_str(), Some(&secret), false).is_err(),
            "not from outside"
        );
        assert_eq!(ok("guest", "guest", Some(&secret), true), Err("wrong internal secret"));
        let mut shorter = secret.as_str().to_owned();
        shorter.pop();
        assert_eq!(ok("guest", &shorter, Some(&secret), true), Err("wrong internal secret"));
        assert_eq!(ok("nobody", secret.as_str(), Some(&secret), true), Err("no such user"));
    }

    #[test]
    fn users_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Users::load(dir.path()).unwrap().is_none());
        let mut u = Users::with_default_user("guest", "guest", true, [9, 9, 9, 9]);
        let mut admin = User::new("admin", "s3cret", [1, 1, 1, 1], false);
        admin.tags.push("administrator".into());
        u.insert(admin);
        u.save(dir.path()).unwrap();
        let back = Users::load(dir.path()).unwrap().unwrap();
        assert!(back.authenticate("admin", "s3cret", false).is_ok());
        assert!(back.get("admin").unwrap().has_tag("administrator"));
        assert!(back.authenticate("guest", "guest", true).is_ok());
    }
}
