//! The fault harness's judge (issue 22, step 5 of `docs/cluster.md`).
//!
//! Clients publish with confirms and consume while a nemesis kills, pauses
//! and partitions the cluster's nodes; each client writes down what it saw
//! as [`history::Event`]s. After the cluster healed and every queue was
//! drained, [`checker::check`] reads the history and says what the broker
//! broke of its promises:
//!
//! - every confirmed message is delivered (at the latest by the final drain);
//! - a message delivered again is flagged `redelivered` (at least once,
//!   never silently twice);
//! - per queue, one publisher's messages are first delivered in the order it
//!   published them (gaps are allowed: an unconfirmed publish may be lost);
//! - nothing is delivered that nobody published;
//! - no two nodes confirmed writes in the same leader term (no split brain).
//!
//! | module | what |
//! |---|---|
//! | `history` | what clients record: publishes, confirms (with the node and its term), nacks, deliveries |
//! | `checker` | the judge: a [`checker::Verdict`] listing each broken promise |
//!
//! Nothing here runs a broker: the runner (clients, nemesis, seeds) drives
//! real nodes and feeds this; the checker's own tests feed it made-up
//! histories, valid ones and ones with each fault planted.

pub mod checker;
pub mod history;
