//! The few settings a container sets through its environment.
//!
//! A broker in Docker or Kubernetes is configured by environment variables as often
//! as by files, and its first user is the one thing it cannot do without: `guest`
//! logs in only from loopback, which inside a container means never. So, as
//! RabbitMQ's image reads `RABBITMQ_DEFAULT_USER`/`RABBITMQ_DEFAULT_PASS`, ringmq
//! reads the variables below, and nothing else: `main` reads the environment once
//! and hands it to [`super::Config::from_args_and_env`]; no code below the config
//! looks at it. They apply after the file and before the flags, so a flag still wins.
//!
//! Like `--default-user`, they matter only at the first start, when the data
//! directory has no users yet; after that the users are managed through the API.

use super::{Config, ConfigError, DefaultPassword};

/// Name of the default user (created at first start).
pub const DEFAULT_USER: &str = "RINGMQ_DEFAULT_USER";
/// Its password, in clear.
pub const DEFAULT_PASS: &str = "RINGMQ_DEFAULT_PASS";
/// A file holding the password (Docker and Kubernetes secrets); one trailing newline
/// is dropped.
pub const DEFAULT_PASS_FILE: &str = "RINGMQ_DEFAULT_PASS_FILE";
/// `true`/`false`: whether that user may log in only from loopback. Defaults to
/// false when `RINGMQ_DEFAULT_USER` names a user other than guest: such a user is
/// set for the clients outside the container, as RabbitMQ's `loopback_users` lists
/// only guest.
pub const DEFAULT_USER_ONLY_LOOPBACK: &str = "RINGMQ_DEFAULT_USER_ONLY_LOOPBACK";

/// Every variable read, with its meaning, for `--help`.
pub const VARS: &[(&str, &str)] = &[
    (
        DEFAULT_USER,
        "default user created at first start (with RINGMQ_DEFAULT_PASS)",
    ),
    (DEFAULT_PASS, "its password"),
    (DEFAULT_PASS_FILE, "or a file holding the password (Docker secrets)"),
    (
        DEFAULT_USER_ONLY_LOOPBACK,
        "true/false; false by default for a user set here other than guest",
    ),
];

/// Applies the variables in `env` that ringmq reads; others are ignored.
pub(crate) fn apply<I>(cfg: &mut Config, env: I) -> Result<(), ConfigError>
where
    I: IntoIterator<Item = (String, String)>,
{
    let mut user = None;
    let mut pass = None;
    let mut pass_file = None;
    let mut only_loopback = None;
    for (k, v) in env {
        match k.as_str() {
            DEFAULT_USER => user = Some(v),
            DEFAULT_PASS => pass = Some(v),
            DEFAULT_PASS_FILE => pass_file = Some(v),
            DEFAULT_USER_ONLY_LOOPBACK => only_loopback = Some(v),
            _ => {}
        }
    }
    let bad = |var: &str, value: &str, reason: String| ConfigError::BadEnv {
        var: var.to_owned(),
        value: value.to_owned(),
        reason,
    };
    let password = match (pass, pass_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::Invalid(format!(
                "set {DEFAULT_PASS} or {DEFAULT_PASS_FILE}, not both"
            )))
        }
        (Some(p), None) => Some(p),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path).map_err(|e| bad(DEFAULT_PASS_FILE, &path, e.to_string()))?;
            let text = text.strip_suffix('\n').unwrap_or(&text);
            Some(text.strip_suffix('\r').unwrap_or(text).to_owned())
        }
        (None, None) => None,
    };
    if let Some(name) = &user {
        if name.is_empty() {
            return Err(bad(DEFAULT_USER, name, "expected a non-empty value".into()));
        }
        // A remote-capable user with the password "guest" would be a trap.
        if password.is_none() {
            return Err(ConfigError::Invalid(format!(
                "{DEFAULT_USER} is set but neither {DEFAULT_PASS} nor {DEFAULT_PASS_FILE} is"
            )));
        }
        cfg.main.default_user = name.clone();
        if name != "guest" {
            cfg.main.default_user_only_loopback = false;
        }
    }
    if let Some(p) = password {
        if p.is_empty() {
            return Err(bad(DEFAULT_PASS, "", "expected a non-empty password".into()));
        }
        cfg.main.default_password = DefaultPassword::Plain(p);
    }
    if let Some(v) = only_loopback {
        cfg.main.default_user_only_loopback =
            super::keys::boolean(&v).map_err(|reason| bad(DEFAULT_USER_ONLY_LOOPBACK, &v, reason))?;
    }
    Ok(())
}
