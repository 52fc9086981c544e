//! Basic auth against the broker's users and RabbitMQ's tag rules.
//!
//! | tag | may |
//! |---|---|
//! | (none) | nothing over HTTP: 401 "Not management user" |
//! | `management` | objects of vhosts it has permissions in; its own connections |
//! | `policymaker` | management, plus policies and parameters of those vhosts |
//! | `monitoring` | management, plus read everything (all vhosts, connections, nodes) |
//! | `administrator` | everything |
//!
//! A route names the least tag it needs ([`Need`]); routes with a `{vhost}`
//! also need a permission entry in that vhost, except for administrators
//! (RabbitMQ 3.10's `is_authorized_vhost`, checked side by side: monitoring users
//! get 401 "User not authorised to access virtual host" there, administrators
//! do not). What acts as an AMQP client would (declare, bind, publish, get, purge,
//! delete) is checked against the user's permissions in the core, for every tag
//! (401 "Access refused.").

use base64::Engine;
use hyper::Method;

use super::error::ApiError;
use super::routes::Need;
use super::AuthUser;
use crate::core::mgmt::View;

/// Checks `Authorization: Basic ..`. HTTP clients are not on the AMQP loopback
/// rule: the API port is itself bound to loopback by default (as LavinMQ).
pub(crate) fn authenticate(v: View<'_>, header: Option<&str>) -> Result<AuthUser, ApiError> {
    let (user, pass) = parse_basic(header).ok_or_else(ApiError::login_failed)?;
    let u = v.user(&user).ok_or_else(ApiError::login_failed)?;
    if !u.check_password(&pass) {
        return Err(ApiError::login_failed());
    }
    Ok(AuthUser {
        name: u.name().to_owned(),
        tags: u.tags().to_vec(),
    })
}

pub(crate) fn parse_basic(header: Option<&str>) -> Option<(String, String)> {
    let h = header?.trim();
    let (scheme, rest) = h.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

impl AuthUser {
    pub fn has(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    pub fn is_admin(&self) -> bool {
        self.has("administrator")
    }

    /// Monitoring or administrator: sees every vhost and connection.
    pub fn sees_all(&self) -> bool {
        self.is_admin() || self.has("monitoring")
    }

    pub fn is_policymaker(&self) -> bool {
        self.is_admin() || self.has("policymaker")
    }

    pub fn is_management(&self) -> bool {
        self.sees_all() || self.is_policymaker() || self.has("management")
    }

    /// Whether the user may see objects of `vhost` in lists.
    pub fn sees_vhost(&self, v: View<'_>, vhost: &str) -> bool {
        self.sees_all() || v.has_permissions(&self.name, vhost)
    }
}

/// Applies the tag rules for a route.
pub(crate) fn authorize(_v: View<'_>, u: &AuthUser, need: Need, _method: &Method) -> Result<(), ApiError> {
    if !u.is_management() {
        return Err(ApiError::not_authorised("Not management user"));
    }
    let ok = match need {
        Need::None | Need::Management => true,
        Need::Policymaker => u.is_policymaker(),
        Need::Monitoring => u.sees_all(),
        Need::Administrator => u.is_admin(),
    };
    if ok {
        return Ok(());
    }
    Err(ApiError::not_authorised(match need {
        Need::Administrator => "Not administrator user",
        Need::Monitoring => "Not monitor user",
        _ => "Not policymaker user",
    }))
}

/// A route with a `{vhost}`: the vhost must exist (404) and the user must be an
/// administrator or have permissions in it (401).
pub(crate) fn check_vhost(view: View<'_>, u: &AuthUser, vhost: Option<&str>) -> Result<(), ApiError> {
    let Some(v) = vhost else { return Ok(()) };
    if !view.has_vhost(v) {
        return Err(ApiError::not_found());
    }
    if !u.is_admin() && !view.has_permissions(&u.name, v) {
        return Err(ApiError::not_authorised("User not authorised to access virtual host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(tags: &[&str]) -> AuthUser {
        AuthUser {
            name: "u".into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn basic_header() {
        assert_eq!(
            parse_basic(Some("Basic Z3Vlc3Q6Z3Vlc3Q=")),
            Some(("guest".into(), "guest".into()))
        );
        assert_eq!(parse_basic(Some("basic dTpwOnE=")), Some(("u".into(), "p:q".into())));
        assert_eq!(parse_basic(Some("Bearer x")), None);
        assert_eq!(parse_basic(Some("Basic !!")), None);
        assert_eq!(parse_basic(None), None);
    }

    #[test]
    fn tag_rules_as_rabbitmq() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = crate::core::CoreConfig::for_tests(dir.path());
        let broker = crate::core::Broker::open(cfg, 1).unwrap();
        let b = View::of(&broker);
        let g = Method::GET;
        let check = |tags: &[&str], need| authorize(b, &user(tags), need, &g).map_err(|e| e.reason);
        assert_eq!(check(&[], Need::Management), Err("Not management user".into()));
        assert_eq!(
            check(&["impersonator"], Need::Management),
            Err("Not management user".into())
        );
        assert!(check(&["management"], Need::Management).is_ok());
        assert_eq!(
            check(&["management"], Need::Administrator),
            Err("Not administrator user".into())
        );
        assert!(check(&["management"], Need::Monitoring).is_err());
        assert!(check(&["management"], Need::Policymaker).is_err());
        assert!(check(&["policymaker"], Need::Policymaker).is_ok());
        assert!(check(&["policymaker"], Need::Monitoring).is_err());
        assert!(check(&["monitoring"], Need::Monitoring).is_ok());
        assert!(check(&["monitoring"], Need::Policymaker).is_err());
        assert!(check(&["monitoring"], Need::Administrator).is_err());
        for need in [
            Need::Management,
            Need::Policymaker,
            Need::Monitoring,
            Need::Administrator,
        ] {
            assert!(check(&["administrator"], need).is_ok());
        }
        // vhost access: a permission entry, or the administrator tag.
        let mon = user(&["monitoring"]);
        assert!(mon.sees_vhost(b, "/"));
        assert_eq!(check_vhost(b, &mon, Some("/")).unwrap_err().status, 401);
        assert_eq!(check_vhost(b, &mon, Some("nope")).unwrap_err().status, 404);
        assert!(check_vhost(b, &user(&["administrator"]), Some("/")).is_ok());
        let guest = AuthUser {
            name: "guest".into(),
            tags: vec!["management".into()],
        };
        assert!(check_vhost(b, &guest, Some("/")).is_ok());
        assert!(!user(&["management"]).sees_vhost(b, "/"));
    }
}
