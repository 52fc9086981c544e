//! The management seam: what the HTTP API and ringmqctl run against the core.
//! Writes go through the same code as AMQP.
//!
//! | module | what |
//! |---|---|
//! | [`commands`] | management operations (the HTTP API's writes, get/publish/purge) |
//! | [`vhosts`] | vhost create/delete, limits, global parameters, node and cluster names |
//! | [`error`] | the error a management operation returns |
//! | [`json_table`] | AMQP field tables to and from JSON |

pub mod commands;
pub mod error;
pub mod json_table;
pub mod vhosts;
