//! The AMQP 0-9-1 session on top of the model.
//!
//! | module | what |
//! |---|---|
//! | [`broker`] | `Broker`: the model, the connections and the state of access, policies and definitions, owned together; the core's entry points (`contract.rs`) and `mgmt` work on it |
//! | [`connection`], [`handshake`] | per-connection state; protocol header, SASL, tune, open |
//! | `conn_io` | what the io contract and the output list do to a connection, one method per intent |
//! | `frames`, [`error`] | the frame loop of a connection; errors by scope and the method a close names |
//! | [`dispatch`] | connection methods and per-channel frame routing |
//! | [`channel`] | per-channel state: flow, qos, consumers, unacked, confirm and tx mode |
//! | [`unacked`] | a channel's deliveries waiting for an ack, in tag order |
//! | `exchange`, `queue`, `basic` | one file per AMQP class's methods |
//! | `meta` | a metadata op a method decided: applied, its durable record logged, a deleted queue's consumers cancelled |
//! | `meta_access` | users, permissions, vhosts, policies and parameters as ops: made by a command, applied on every shard, saved once |
//! | [`confirm`] | publisher confirms, transactions, group commit |
//! | `alarms` | resource alarms on the connections: blocked, unblocked, reading paused; the io layer sets them here |
//! | `topic_access` | topic permissions checked for the connection's user: 403 on refusal |
//! | `delivery` | queue → consumer delivery, releasing closed channels |
//! | `direct_reply` | `amq.rabbitmq.reply-to` |
//! | `stream` | stream queues: what they refuse, delivery from each consumer's offset |
//! | `remote` | a method on another shard's queue: the connection parked until the owner answers |
//! | `remote_consume` | consumers on another shard's queue: deliveries, cancels |
//! | [`hand_off`] | a connection whose work is on another shard's queues moves there |
//! | `remote_permits` | what such a consumer may be sent: its prefetch, its channel's, a window, its output |
//! | [`output`] | a connection's pending frames, large bodies sent from the segment mapping |

pub(in crate::core) mod alarms;
pub(in crate::core) mod basic;
pub mod broker;
pub mod channel;
pub mod confirm;
pub(in crate::core) mod conn_io;
pub mod connection;
pub(in crate::core) mod delivery;
pub(in crate::core) mod direct_reply;
pub mod dispatch;
pub mod error;
pub(in crate::core) mod exchange;
pub(in crate::core) mod frames;
pub mod hand_off;
pub mod handshake;
pub(in crate::core) mod meta;
pub(in crate::core) mod meta_access;
pub mod output;
pub(in crate::core) mod queue;
pub(in crate::core) mod remote;
pub(in crate::core) mod remote_consume;
pub(in crate::core) mod remote_permits;
pub(in crate::core) mod stream;
pub(in crate::core) mod topic_access;
pub mod unacked;
