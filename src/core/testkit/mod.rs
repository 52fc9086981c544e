//! The core's test kit: everything a test needs to drive the sans-IO core
//! through its io contract, and the tests that use it.
//!
//! | file | what lives there |
//! |---|---|
//! | [`clock`] | the fake clock: a monotonic `now` only the test advances |
//! | [`client`] | the in-memory AMQP client: frames encoded with `ringmq_codec`, output decoded into events |
//! | [`harness`] | the io layer played by a test: input, output, timers, ticks, the group commit, restarts and crashes |
//! | [`disk`] | power loss in process: the data directory restored to its last durability point |
//! | [`model`] | what the simulation expects the broker to hold, and the invariants |
//! | [`scenario`] | the simulated world: queues, exchange, profiles, clients |
//! | [`ops`] | what one step of the simulation does |
//! | [`sim`] | the seeded simulation and its tests (seeds printed, replayable) |
//! | `tx`, `dead_letter_hold`, `expires` | focused tests: commit-ok waits for the group commit; the at-least-once dead-letter hold; what counts as use for x-expires |
//! | `delayed_commit` | focused tests: a delayed publish is synced by the group commit, not on the loop, and confirmed (or nacked) by it |
//! | `sync_failure` | focused tests: a group commit that fails (fsync error, or a queue's batch that cannot be prepared) nacks what waits for it, never panics, and the queue goes on |
//! | `definitions_commit`, `old_layout` | focused tests of the definitions log: a durable declare's reply waits for the group commit that syncs its record, compaction; replaying logs and folders of older versions at open |
//! | `after_crash` | focused tests: redelivered flags after power loss and kill -9 (the `running` marker); delayed messages routed around a crash |
//! | `meta_access` | focused tests: users, permissions, vhosts, policies and parameters made on any of 2-4 shards are equal on all (the metadata log's access ops); a user made on one shard logs in on another |
//! | `streams` | focused tests of stream queues: every message synced before its confirm (power loss keeps each at its offset), readers per consumer, retention by age on the stats tick |
//! | `replicated` | the record-and-replay test of clustering: every change of a simulated run recorded, replayed, equal to the data directory byte for byte at every few steps |
//! | `lazy_store` | focused tests: a queue opens its store at its first message; restarts recover durable queues, empty or not; purge and delete of a queue never opened |

pub mod client;
pub mod clock;
pub mod disk;
pub mod harness;
pub mod model;
mod ops;
pub mod scenario;
pub mod sim;
pub mod wires;

mod after_crash;
mod cross_shards;
mod dead_letter_cross;
mod dead_letter_hold;
mod definitions_commit;
mod delayed_commit;
mod delayed_cross;
mod expires;
mod external;
mod idle_buffers;
mod lazy_store;
mod limits;
mod meta_access;
mod meta_replay;
mod meta_shards;
mod old_layout;
mod remote_consume;
mod remote_get;
mod remote_ops;
mod replicated;
mod shards_restart;
mod streams;
mod sync_failure;
mod tx;
