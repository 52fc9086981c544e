//! Who may do what: users and SASL mechanisms ([`auth`]), configure/write/read
//! permissions per vhost ([`permissions`]) and topic permissions
//! ([`topic_permissions`]); and every change to them, to vhosts, policies and
//! parameters as a value for the shards' metadata log ([`op`]).
//!
//! The rules only, over users, vhosts and names (and the model, for whether an
//! exchange is a topic one: `TopicPermissions::check`): the AMQP session turns
//! a refusal into its 403 (`amqp::dispatch::check_access`,
//! `amqp::topic_access`), and the management commands change them
//! (`mgmt::commands`). Nothing here names `Broker` (`tests/walls.rs`).

pub mod auth;
pub mod op;
pub mod permissions;
pub mod topic_permissions;
