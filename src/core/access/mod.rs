//! Who may do what: users and SASL mechanisms ([`auth`]), configure/write/read
//! permissions per vhost ([`permissions`]) and topic permissions
//! ([`topic_permissions`]).

pub mod auth;
pub mod permissions;
pub mod topic_permissions;
