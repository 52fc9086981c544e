//! What the harness's clients record.

/// A message's identity: its publisher and that publisher's sequence
/// number (increasing in publish order). Carried in the message (its body
/// or a header) so a consumer can say what it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MsgId {
    pub publisher: u32,
    pub seq: u64,
}

/// A leader term: the etcd revision that made its leader
/// (`docs/cluster.md`, "Who leads").
pub type Term = u64;

/// One thing a client saw, in the order it saw it (per client; the
/// checker needs no global order across clients).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Sent to `queue` (through the default exchange). Its fate is unknown
    /// until a confirm or a nack; a publish whose connection broke first
    /// may or may not be kept.
    Published { queue: String, id: MsgId },
    /// The broker confirmed it: from now on it must never be lost. `node`
    /// and `term` are who confirmed it (the node the client was served by
    /// and its leader term then).
    Confirmed {
        queue: String,
        id: MsgId,
        node: String,
        term: Term,
    },
    /// The broker refused to take responsibility for it (basic.nack).
    Nacked { queue: String, id: MsgId },
    /// Delivered from `queue` (during the run or by the final drain).
    Delivered {
        queue: String,
        id: MsgId,
        redelivered: bool,
    },
}

/// Every client's events, and the queues the final drain emptied.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// One list per client, each in the order that client saw its events.
    pub clients: Vec<Vec<Event>>,
}

impl History {
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.clients.iter().flatten()
    }
}
