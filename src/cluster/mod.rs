//! Clustering (issue 22), as LavinMQ does it: etcd decides which node leads;
//! the leader serves everything and streams its data to followers that keep
//! an in-sync copy. Built from the bottom:
//!
//! | module | what |
//! |---|---|
//! | [`etcd`] | a client of etcd's v3 API over its JSON gateway: leases, get, put, create-if-absent, delete, watch |
//! | [`election`] | the election as a state machine (time passed in): lease, campaign, and the fencing rule that makes a leader step down before its lease can expire |
//! | [`elect`] | runs an [`election::Election`] against etcd, reporting the node's role |
//! | [`dir_files`] | those files on disk: changes applied and synced, listed with their checksums |
//! | [`files`] | a data directory as replication reads and changes it (in memory for tests) |
//! | [`log`] | the leader's numbered, bounded log of changes |
//! | [`record`] | the store's changes (`ringmq_store::changes`) made numbered changes of that log, their bytes read back from the files |
//! | [`leader`], [`follower`] | each side of a follower's connection as a state machine: challenge, full sync by plan, live stream, acks |
//! | [`relay`] | a follower passing its clients' connections to the leader |
//! | [`stream`] | the stream over TCP: the leader serving followers, a follower reconnecting |
//! | [`wire`] | the replication stream's frames: challenge, hello with the file list, batches of changes, synced, ack |
//!
//! | [`isr`] | the leader's upkeep of the in-sync replica set, as a state machine |
//! | [`lead`] | a leading node: serves followers, keeps the set in etcd, publishes how far confirms may go |
//! | [`node`] | a clustered node: follows and relays until it leads, then runs the broker with its recorder and confirm gate |
//! | [`view`] | the leader's view of its cluster for `/api/nodes` |
//!
//! The plan and what is left: `docs/cluster.md`.

pub mod dir_files;
pub mod elect;
pub mod election;
pub mod etcd;
pub mod files;
pub mod follower;
pub mod isr;
pub mod lead;
pub mod leader;
pub mod log;
pub mod node;
pub mod record;
pub mod relay;
pub mod stream;
pub mod view;
pub mod wire;

#[cfg(test)]
mod replay_tests;
#[cfg(test)]
mod replay_world;
#[cfg(test)]
pub(crate) mod replica_check;
#[cfg(test)]
mod serve_tests;
#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod test_rng;
