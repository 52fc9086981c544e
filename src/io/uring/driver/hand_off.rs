//! Connections moving between shards (`core::amqp::hand_off`). A leaving
//! one is no longer read (its receive cancelled); once no receive or send of
//! its is in flight, its socket, unread input and core state go to the
//! target in the rings' next batch for it (`io::shards::cross`). An arriving
//! one gets a slot, its input is fed, its receive armed and its output sent.

use std::os::fd::OwnedFd;

use super::super::conn::{Conn, Phase};
use super::submit::{user_data, KIND_RECV, KIND_RECV_INTO};
use super::Driver;
use crate::io::shards::cross::Moving;

impl Driver {
    /// Connections the core stopped to move: their receives are cancelled;
    /// those with nothing in flight go.
    pub(super) fn hand_off_leaving(&mut self) {
        let mut ids = std::mem::take(&mut self.dirty_ids);
        self.shared.broker.borrow_mut().take_leaving(&mut ids);
        for id in ids.drain(..) {
            let Some(&slot) = self.by_id.get(&id) else { continue };
            let c = self.slots[slot as usize].as_mut().expect("a listed slot is live");
            // Its input waits in `carry` and goes with it; `arm_recv` leaves
            // a paused connection alone.
            c.paused = true;
            let (gen, armed, direct) = (c.gen, c.recv_armed, c.direct.is_some());
            if armed {
                self.cancel(user_data(KIND_RECV, slot, gen));
            }
            if direct {
                self.cancel(user_data(KIND_RECV_INTO, slot, gen));
            }
            self.leaving.push((slot, gen));
        }
        self.dirty_ids = ids;
        for (slot, gen) in std::mem::take(&mut self.leaving) {
            let Some(c) = self.slots[slot as usize].as_ref().filter(|c| c.gen == gen) else {
                continue;
            };
            if c.phase != Phase::Open {
                continue; // the peer went meanwhile
            }
            if !c.is_idle() || c.direct.is_some() {
                self.leaving.push((slot, gen)); // its completions come first
                continue;
            }
            self.depart(slot);
        }
    }

    /// Hands the connection in `slot`, with nothing in flight, to its target.
    fn depart(&mut self, slot: u32) {
        let shared = self.shared.clone();
        let Some(port) = shared.cross.as_ref() else { return };
        let c = self.slots[slot as usize].as_mut().expect("checked by the caller");
        let id = c.id;
        // A second descriptor of the socket goes; the slot's closes with it.
        let socket = match c.sock.try_clone() {
            Ok(s) => OwnedFd::from(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot hand a connection to another shard: closing it");
                self.peer_gone(slot);
                return;
            }
        };
        let departing = self.shared.broker.borrow_mut().hand_off(id);
        let Some(departing) = departing else {
            // It closed meanwhile: it stays, read again to finish its close.
            c.paused = false;
            self.rearm.push(slot);
            self.want_send.push(slot);
            return;
        };
        let input = std::mem::take(&mut c.carry);
        c.phase = Phase::Dead;
        self.by_id.remove(&id);
        self.shared.conn_closed();
        self.try_free(slot);
        port.depart(Moving {
            departing,
            socket,
            input,
        });
    }

    /// Connections other shards handed here: served from now on, their
    /// input first.
    pub(super) fn take_arrived(&mut self, now_ms: u64) {
        let shared = self.shared.clone();
        let Some(port) = shared.cross.as_ref() else { return };
        if !port.has_arrived() {
            return;
        }
        for a in port.take_arrived() {
            let sock = socket2::Socket::from(a.socket);
            let peer = sock.peer_addr().ok().and_then(|p| p.as_socket());
            let slot = self.add_slot(a.id, |gen| {
                let mut c = Conn::new(a.id, sock, peer, gen, None);
                c.carry = a.input;
                c.framed = true;
                c.last_send_ms = now_ms;
                c
            });
            self.shared.broker.borrow_mut().allow_hand_off(a.id);
            self.more_input.push(slot);
            self.want_send.push(slot);
            self.rearm.push(slot);
        }
    }
}
