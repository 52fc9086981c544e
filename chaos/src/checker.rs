//! The judge: a history in, each broken promise out (see the crate's docs
//! for the promises).

use std::collections::{BTreeMap, BTreeSet};

use crate::history::{Event, History, MsgId, Term};

/// What the history shows the broker broke; empty lists when it kept every
/// promise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Confirmed and never delivered (queue, message).
    pub lost: Vec<(String, MsgId)>,
    /// Delivered again without the `redelivered` flag: (queue, message, how
    /// many deliveries were not flagged).
    pub unflagged_repeats: Vec<(String, MsgId, usize)>,
    /// First delivered out of its publisher's order, as one client saw it:
    /// (queue, the message delivered before, the earlier-published one that
    /// came after it).
    pub reordered: Vec<(String, MsgId, MsgId)>,
    /// Delivered but never published (queue, message).
    pub phantoms: Vec<(String, MsgId)>,
    /// Terms in which more than one node confirmed writes.
    pub split_brain: Vec<(Term, BTreeSet<String>)>,
    /// Confirmed by one client and nacked to it too (queue, message).
    pub confirmed_and_nacked: Vec<(String, MsgId)>,
    /// Counts, for the report: published, confirmed, delivered (first
    /// deliveries), delivered again flagged.
    pub published: usize,
    pub confirmed: usize,
    pub delivered: usize,
    pub redelivered: usize,
}

impl Verdict {
    /// Every promise kept.
    pub fn ok(&self) -> bool {
        self.lost.is_empty()
            && self.unflagged_repeats.is_empty()
            && self.reordered.is_empty()
            && self.phantoms.is_empty()
            && self.split_brain.is_empty()
            && self.confirmed_and_nacked.is_empty()
    }
}

/// The most of each kind of violation kept in a verdict: a broken run lists
/// enough to start from, not millions of lines.
pub const LISTED_MAX: usize = 100;

fn push<T>(list: &mut Vec<T>, v: T) {
    if list.len() < LISTED_MAX {
        list.push(v);
    }
}

/// Judges `h`.
pub fn check(h: &History) -> Verdict {
    let mut v = Verdict::default();
    let mut published: BTreeSet<(&str, MsgId)> = BTreeSet::new();
    let mut confirmed: BTreeSet<(&str, MsgId)> = BTreeSet::new();
    let mut nacked: BTreeSet<(&str, MsgId)> = BTreeSet::new();
    // Per (queue, message): deliveries without the flag, with it.
    let mut deliveries: BTreeMap<(&str, MsgId), (usize, usize)> = BTreeMap::new();
    let mut terms: BTreeMap<Term, BTreeSet<String>> = BTreeMap::new();
    for e in h.events() {
        match e {
            Event::Published { queue, id } => {
                published.insert((queue, *id));
            }
            Event::Confirmed { queue, id, node, term } => {
                confirmed.insert((queue, *id));
                terms.entry(*term).or_default().insert(node.clone());
            }
            Event::Nacked { queue, id } => {
                nacked.insert((queue, *id));
            }
            Event::Delivered { queue, id, redelivered } => {
                let d = deliveries.entry((queue, *id)).or_default();
                if *redelivered {
                    d.1 += 1;
                } else {
                    d.0 += 1;
                }
            }
        }
    }
    v.published = published.len();
    v.confirmed = confirmed.len();
    for &(q, id) in confirmed.intersection(&nacked) {
        push(&mut v.confirmed_and_nacked, (q.to_owned(), id));
    }
    for &(q, id) in &confirmed {
        if !deliveries.contains_key(&(q, id)) {
            push(&mut v.lost, (q.to_owned(), id));
        }
    }
    for (&(q, id), &(plain, flagged)) in &deliveries {
        if !published.contains(&(q, id)) {
            push(&mut v.phantoms, (q.to_owned(), id));
        }
        // The first delivery may be unflagged (or flagged: a redelivery
        // after the client lost the first one); any further unflagged one
        // is a repeat the broker did not own up to.
        if plain > 1 {
            push(&mut v.unflagged_repeats, (q.to_owned(), id, plain - 1));
        }
        v.delivered += 1;
        v.redelivered += flagged;
    }
    for (term, nodes) in terms {
        if nodes.len() > 1 && v.split_brain.len() < LISTED_MAX {
            v.split_brain.push((term, nodes));
        }
    }
    check_order(h, &mut v);
    v
}

/// Per client, per queue, per publisher: unflagged deliveries come in
/// increasing sequence numbers.
fn check_order(h: &History, v: &mut Verdict) {
    for client in &h.clients {
        let mut last: BTreeMap<(&str, u32), MsgId> = BTreeMap::new();
        for e in client {
            let Event::Delivered {
                queue,
                id,
                redelivered: false,
            } = e
            else {
                continue;
            };
            let prev = last.entry((queue, id.publisher)).or_insert(*id);
            if id.seq < prev.seq {
                push(&mut v.reordered, (queue.clone(), *prev, *id));
            } else {
                *prev = *id;
            }
        }
    }
}

#[cfg(test)]
mod tests;
