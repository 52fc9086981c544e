//! The io_uring driver: one ring per shard thread, completions in batches.
//!
//! One loop turn (`turn`) reaps up to [`CQES_PER_TURN`] completions (receives, sends, fsyncs), feeding received bytes to the core as they come;
//! then `flush` hands the turn's results to the kernel: a group commit if one is
//! due, one send per connection with output (all the frames the turn produced
//! for it), re-armed receives, recycled receive buffers; and one `io_uring_enter`
//! submits it all.

use std::collections::HashMap;
use std::rc::Rc;

use io_uring::{cqueue, IoUring};

mod direct;
mod feed;
mod hand_off;
mod resume;
mod submit;
mod sync;
mod tls;

pub(super) use self::direct::DirectRecv;
use self::feed::{feed, refeed, Fed};
use self::submit::{user_data, Cqe, KIND_CANCEL, KIND_RECV, KIND_RECV_INTO, KIND_SEND, KIND_SYNC};
use self::sync::SyncInFlight;
use super::bufring::BufRing;
use super::conn::{Conn, InFlightSend, Phase};
use crate::core::amqp::output::IDLE_RELEASE_MS;
use crate::core::model::ids::ConnId;
use crate::io::server::Shared;

/// Completions handled per loop turn before the other tasks of the thread get a
/// turn (the rest stay in the completion queue).
pub(super) const CQES_PER_TURN: usize = 4096;
/// Input fed to the core per loop turn before the turn's output is sent.
/// Publishing is CPU-bound in the core (about 1 µs per 16 B message): without
/// this bound one turn took ~60 ms of publishes while the consumer's one send
/// per turn waited (1p1c 16 B: 82 k msgs/s consumed against 1 M published).
/// With it, and sends not queued behind input (see `turn`): 822 k/822 k, the
/// same as the epoll backend on this machine.
pub(super) const INPUT_BYTES_PER_TURN: usize = 256 * 1024;
/// Input fed per connection per turn. Without a per-connection share, a
/// publisher's backlog of receive completions (up to the whole buffer ring, 8
/// MiB) sat ahead of a consumer's acks in one FIFO, and the consumer got ~20 k
/// msgs/s against 1.5 M published (`ringmqperf throughput -x1 -y1 -a100 -P1000`).
pub(super) const INPUT_BYTES_PER_CONN_TURN: usize = 64 * 1024;

/// How long a connection the core closed may take to drain and see the peer's FIN.
const CLOSE_LINGER_MS: u64 = 2_000;

/// Counters for measurements, logged at shutdown.
#[derive(Debug, Default)]
pub(super) struct Stats {
    pub turns: u64,
    pub cqes: u64,
    pub enters: u64,
    pub sends: u64,
    pub direct_recvs: u64,
    pub sq_full: u64,
    pub cq_overflow: u64,
}

pub(super) struct DriverConfig {
    pub max_connections: usize,
}

/// Field order is drop order: the ring goes first. Anything the kernel may still
/// write (receive buffers) or read (send buffers) is leaked in `Drop` when
/// operations are still in flight, so it is never freed under the kernel.
pub(super) struct Driver {
    ring: IoUring,
    bufs: Option<BufRing>,
    slots: Vec<Option<Conn>>,
    free_slots: Vec<u32>,
    next_gen: u32,
    by_id: HashMap<ConnId, u32>,
    /// SQEs pushed whose final completion has not arrived.
    inflight: usize,
    sync: Option<SyncInFlight>,
    shared: Rc<Shared>,
    cfg: DriverConfig,
    /// Completions reaped while the SQ had to be flushed mid-turn (EBUSY).
    backlog: Vec<Cqe>,
    scratch: Vec<Cqe>,
    want_send: Vec<u32>,
    rearm: Vec<u32>,
    more_input: Vec<u32>,
    paused: Vec<u32>,
    dirty_ids: Vec<ConnId>,
    /// Receive completions past the turn's input bound, in arrival order.
    input_wait: std::collections::VecDeque<Cqe>,
    /// Input bytes fed this turn per connection slot (fairness between a
    /// flooding publisher and everyone else).
    turn_input: crate::core::Map<u32, usize>,
    /// Connections whose receive stopped for want of buffers: re-armed once
    /// `input_wait` is empty (its completions hold the buffers).
    starved: Vec<u32>,
    /// The plaintext of one TLS receive (one buffer for all connections).
    tls_plain: Vec<u8>,
    /// Connections leaving for another shard (slot, generation): handed
    /// over once nothing of theirs is in flight (`hand_off`).
    leaving: Vec<(u32, u32)>,
    pub stats: Stats,
}

impl Driver {
    pub fn new(ring: IoUring, bufs: BufRing, shared: Rc<Shared>, cfg: DriverConfig) -> Driver {
        Driver {
            ring,
            bufs: Some(bufs),
            slots: Vec::new(),
            free_slots: Vec::new(),
            next_gen: 1,
            by_id: HashMap::new(),
            inflight: 0,
            sync: None,
            shared,
            cfg,
            backlog: Vec::new(),
            scratch: Vec::with_capacity(256),
            want_send: Vec::new(),
            rearm: Vec::new(),
            more_input: Vec::new(),
            paused: Vec::new(),
            dirty_ids: Vec::new(),
            input_wait: std::collections::VecDeque::new(),
            turn_input: Default::default(),
            starved: Vec::new(),
            tls_plain: Vec::new(),
            leaving: Vec::new(),
            stats: Stats::default(),
        }
    }

    fn bufs(&self) -> &BufRing {
        self.bufs.as_ref().expect("buffer ring lives as long as the driver")
    }

    pub fn sync_running(&self) -> bool {
        self.sync.is_some()
    }

    /// Work is waiting that needs no wake-up: the loop should turn again at once.
    pub fn has_ready(&mut self) -> bool {
        !self.backlog.is_empty()
            || !self.input_wait.is_empty()
            || !self.more_input.is_empty()
            || !self.ring.completion().is_empty()
    }

    // ---- completions ----------------------------------------------------------

    /// Reaps up to [`CQES_PER_TURN`] completions; handles sends, fsyncs and
    /// cancels at once, and received input up to [`INPUT_BYTES_PER_TURN`] (the
    /// rest, in order, waits for the next turn); then submits the results.
    ///
    /// Input is the only completion that waits: a send completion queued behind
    /// megabytes of a fast publisher's input would otherwise stall the consumer
    /// (measured: 1p1c 16 B consumed 145 k msgs/s against 1 M published).
    pub fn turn(&mut self, now_ms: u64) {
        self.stats.turns += 1;
        let mut input_bytes = 0;
        let mut reaped = 0;
        self.turn_input.clear();
        let waiting = std::mem::take(&mut self.input_wait);
        for c in waiting {
            // Only input waits; `route` queues it again behind the bounds.
            self.route(c, &mut input_bytes, now_ms);
        }
        for c in std::mem::take(&mut self.backlog) {
            self.route(c, &mut input_bytes, now_ms);
        }
        loop {
            let mut batch = std::mem::take(&mut self.scratch);
            let bufs = &mut self.bufs;
            batch.extend(
                self.ring
                    .completion()
                    .take(CQES_PER_TURN - reaped)
                    .map(|c| Cqe::reaped(&c, bufs)),
            );
            if batch.is_empty() {
                self.scratch = batch;
                break;
            }
            reaped += batch.len();
            for c in batch.drain(..) {
                self.route(c, &mut input_bytes, now_ms);
            }
            self.scratch = batch;
            if reaped >= CQES_PER_TURN {
                break;
            }
        }
        self.stats.cqes += reaped as u64;
        self.flush(now_ms);
    }

    /// Handles a completion now, or queues it behind the turn's input bound.
    fn route(&mut self, c: Cqe, input_bytes: &mut usize, now_ms: u64) {
        let is_input = matches!(c.user_data >> 56, KIND_RECV | KIND_RECV_INTO);
        if is_input {
            // A connection's completions stay in order: once one of its waits,
            // the rest of its completions wait too.
            let slot = c.user_data as u32;
            let used = self.turn_input.get(&slot).copied().unwrap_or(0);
            let behind = self.input_wait.iter().any(|w| w.user_data as u32 == slot);
            if *input_bytes >= INPUT_BYTES_PER_TURN || used >= INPUT_BYTES_PER_CONN_TURN || behind {
                self.input_wait.push_back(c);
                return;
            }
            let n = c.res.max(0) as usize;
            *input_bytes += n;
            *self.turn_input.entry(slot).or_insert(0) += n;
        }
        self.complete(c, now_ms);
    }

    fn complete(&mut self, c: Cqe, now_ms: u64) {
        let kind = c.user_data >> 56;
        let slot = c.user_data as u32;
        let gen = (c.user_data >> 32) as u32 & 0xff_ffff;
        let more = cqueue::more(c.flags);
        if !more {
            self.inflight -= 1;
        }
        match kind {
            KIND_RECV => self.on_recv(slot, gen, c, more, now_ms),
            KIND_RECV_INTO => self.on_recv_into(slot, gen, c, now_ms),
            KIND_SEND => self.on_send(slot, gen, c),
            KIND_SYNC => self.on_sync(c),
            KIND_CANCEL => {}
            _ => panic!("completion with unknown user_data {:#x}", c.user_data),
        }
    }

    /// Takes over an accepted connection (accepted on the epoll side, after
    /// its PROXY header if the listener requires one: see `super::serve` for
    /// why accept is not an SQE).
    pub fn adopt(&mut self, acc: crate::io::accept::Accepted, now_ms: u64) {
        if !self.shared.below_max_connections(self.cfg.max_connections) {
            tracing::warn!(
                max = self.cfg.max_connections,
                "connection refused: max_connections reached"
            );
            return;
        }
        if acc.mqtt.is_some() {
            // MQTT is served by the connection tasks (`io::conn`), as the
            // byte streams are: its session sits between the socket and the core.
            tokio::task::spawn_local(crate::io::conn::serve_connection(self.shared.clone(), acc));
            return;
        }
        // The socket came from tokio (non-blocking, TCP_NODELAY set if asked
        // for); the ring's receive and send wait for readiness themselves.
        // Plain TCP may move to another shard with its socket; TLS (its
        // session is this driver's) and the Unix socket (shard 0's) stay.
        let movable = acc.tls.is_none() && matches!(acc.stream, crate::sys::stream::Stream::Tcp(_));
        let sock = match acc.stream {
            crate::sys::stream::Stream::Tcp(s) => s.into_std().map(socket2::Socket::from),
            crate::sys::stream::Stream::Unix(s) => s.into_std().map(socket2::Socket::from),
        };
        let sock = match sock {
            Ok(s) => s,
            Err(e) => return tracing::warn!(error = %e, "cannot take over accepted socket"),
        };
        let _ = sock.set_nonblocking(false);
        let id = {
            let mut b = self.shared.broker.borrow_mut();
            let id = b.handle_connect(acc.peer.name, acc.peer.loopback, now_ms);
            if movable {
                b.allow_hand_off(id);
            }
            id
        };
        let slot = self.add_slot(id, |gen| Conn::new(id, sock, acc.peer.addr, gen, acc.tls));
        if !acc.initial.is_empty() {
            // The client's first bytes, read with its PROXY header: fed as a
            // receive's would be, before the first receive is armed.
            self.feed_bytes(slot, &acc.initial, false, now_ms);
        }
        self.arm_recv(slot);
    }

    /// A slot for connection `id` (served here from now on), made by `conn`
    /// with its generation.
    fn add_slot(&mut self, id: ConnId, conn: impl FnOnce(u32) -> Conn) -> u32 {
        self.shared.conn_opened();
        let gen = self.next_gen;
        self.next_gen = self.next_gen.wrapping_add(1) & 0xff_ffff;
        let conn = conn(gen);
        let slot = match self.free_slots.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(conn);
                s
            }
            None => {
                self.slots.push(Some(conn));
                (self.slots.len() - 1) as u32
            }
        };
        self.by_id.insert(id, slot);
        slot
    }

    /// Feeds received bytes (plain, or ciphertext on AMQPS) to the core and
    /// queues what follows from it; `armed`: a multishot receive is running.
    fn feed_bytes(&mut self, slot: u32, data: &[u8], armed: bool, now_ms: u64) {
        let conn = self.slots[slot as usize].as_mut().expect("a live slot");
        let (gen, outcome) = match conn.tls {
            None => (conn.gen, feed(&self.shared, conn, data, now_ms)),
            Some(_) => (
                conn.gen,
                tls::feed_tls(&self.shared, conn, data, &mut self.tls_plain, now_ms),
            ),
        };
        match outcome {
            Fed::Done if armed => self.maybe_leave_multishot(slot, now_ms),
            Fed::Done => {}
            // The slot is freed once its last completion is in (this one's
            // handling sees it gone or dead).
            Fed::TlsEnd => self.peer_gone(slot),
            Fed::MoreInput => self.more_input.push(slot),
            Fed::Paused => {
                self.paused.push(slot);
                if armed {
                    // Stop reading: TCP backpressure then slows the publisher.
                    self.cancel(user_data(KIND_RECV, slot, gen));
                }
            }
        }
        self.want_send.push(slot);
    }

    fn on_recv(&mut self, slot: u32, gen: u32, c: Cqe, more: bool, now_ms: u64) {
        let buf = cqueue::buffer_select(c.flags).map(|bid| self.bufs().take(bid, c.buf_off, c.res.max(0) as usize));
        let conn = self.slots[slot as usize]
            .as_mut()
            .filter(|conn| conn.gen == gen)
            .expect("receive completion for a freed slot");
        if !more {
            conn.recv_armed = false;
            conn.leaving_multishot = false;
        }
        if let Some(buf) = buf {
            // Out of `self` while its bytes are fed (the struct moves, the
            // buffers it owns do not); nothing on the way uses the ring's buffers.
            let bufs = self.bufs.take().expect("buffer ring");
            self.feed_bytes(slot, bufs.bytes(&buf), more, now_ms);
            self.bufs = Some(bufs);
            self.bufs.as_mut().expect("buffer ring").recycle(buf);
        }
        match c.res {
            n if n > 0 => {
                if !more {
                    self.rearm.push(slot);
                }
            }
            0 => self.peer_gone(slot),
            e if e == -libc::ENOBUFS => {
                // All receive buffers are out: they come back as waiting input is fed.
                if !more {
                    self.starved.push(slot);
                }
            }
            e if e == -libc::ECANCELED => {
                // Cancelled to pause reading (re-armed on resume), to receive a
                // large frame directly, or because the connection ends.
                if !more {
                    self.rearm.push(slot);
                }
                self.try_free(slot);
            }
            e => {
                tracing::debug!(error = %std::io::Error::from_raw_os_error(-e), "connection read error");
                self.peer_gone(slot);
            }
        }
    }

    fn on_send(&mut self, slot: u32, gen: u32, c: Cqe) {
        let conn = self.slots[slot as usize]
            .as_mut()
            .filter(|conn| conn.gen == gen)
            .expect("send completion for a freed slot");
        let send = conn.send.as_mut().expect("send completion without a send in flight");
        send.on_result(c.res);
        if !send.finished() {
            let e = send.sqe(&conn.sock, user_data(KIND_SEND, slot, gen));
            self.push(e);
            return;
        }
        let send = conn.send.take().expect("checked above");
        if send.failed() {
            // The kernel is done with the memory (this is its completion): drop it.
            drop(send);
            self.peer_gone(slot);
            return;
        }
        conn.spare = send.release();
        if conn.phase != Phase::Dead && conn.output_drained() {
            self.shared.broker.borrow_mut().handle_output_drained(conn.id);
            self.want_send.push(slot);
        }
        self.try_free(slot);
    }

    // ---- connection life --------------------------------------------------------

    /// The peer is gone, or we gave up on it: the core forgets the connection
    /// now; the slot is freed once its last completion arrived.
    fn peer_gone(&mut self, slot: u32) {
        let Some(conn) = self.slots[slot as usize].as_mut() else {
            return;
        };
        if conn.phase == Phase::Dead {
            self.try_free(slot);
            return;
        }
        conn.phase = Phase::Dead;
        let id = conn.id;
        if !conn.is_idle() {
            // Ends the armed receive and any blocked send promptly.
            let _ = conn.sock.shutdown(std::net::Shutdown::Both);
        }
        self.by_id.remove(&id);
        if let Some(session) = &conn.tls {
            session.log_if_unfinished(conn.peer);
            self.shared.tls_conns.borrow_mut().remove(&id);
        }
        self.shared.broker.borrow_mut().handle_disconnect(id);
        self.shared.conn_closed();
        self.try_free(slot);
    }

    fn try_free(&mut self, slot: u32) {
        let free = self.slots[slot as usize]
            .as_ref()
            .is_some_and(|c| c.phase == Phase::Dead && c.is_idle());
        if free {
            // Closes the socket: no operation on it is in flight any more.
            self.slots[slot as usize] = None;
            self.free_slots.push(slot);
        }
    }

    /// The heartbeat timer: every open connection gets a tick; closing ones past
    /// their deadline are dropped.
    pub fn tick_all(&mut self, now_ms: u64) {
        for slot in 0..self.slots.len() as u32 {
            let Some(conn) = self.slots[slot as usize].as_mut() else {
                continue;
            };
            match conn.phase {
                Phase::Open => {
                    if conn.send.is_none() && now_ms.saturating_sub(conn.last_send_ms) >= IDLE_RELEASE_MS {
                        // Idle: the spare output buffer and an emptied carry-over
                        // go back to the allocator (10,000 idle connections).
                        conn.spare.release_if_empty();
                        if conn.carry.is_empty() {
                            conn.carry = Vec::new();
                        }
                    }
                    self.shared.broker.borrow_mut().handle_tick(conn.id, now_ms);
                    if conn.send.is_some() && self.shared.broker.borrow().is_closed(conn.id) {
                        // Closed by the core (heartbeats missed) while a send
                        // waits on a peer that reads nothing: `flush_send`, which
                        // starts the close, waits for that send, which may never
                        // end. The close's deadline starts now instead.
                        conn.phase = Phase::Closing {
                            deadline_ms: now_ms + CLOSE_LINGER_MS,
                            fin_sent: false,
                        };
                        continue;
                    }
                    self.want_send.push(slot);
                    self.cancel_idle_direct(slot, now_ms, IDLE_RELEASE_MS);
                }
                Phase::Closing { deadline_ms, .. } if now_ms > deadline_ms => self.peer_gone(slot),
                _ => {}
            }
        }
    }

    // ---- the end of a turn --------------------------------------------------------

    fn flush(&mut self, now_ms: u64) {
        if self.shared.cross.is_some() {
            self.take_resumed();
            self.take_arrived(now_ms);
            self.hand_off_leaving();
        }
        for slot in std::mem::take(&mut self.more_input) {
            if let Some(conn) = self.slots[slot as usize].as_mut() {
                if refeed(&self.shared, conn, now_ms) {
                    self.more_input.push(slot);
                }
                self.want_send.push(slot);
            }
        }
        self.resume_paused(now_ms);
        while self.sync.is_none() {
            let job = self.shared.broker.borrow_mut().poll_sync();
            let Some(job) = job else { break };
            self.start_sync(job);
        }
        if let Some(port) = &self.shared.cross {
            // What this turn made for other shards goes out, one batch each;
            // readers paused for room in the rings go on at the next turn.
            if port.pump(&mut self.shared.broker.borrow_mut()) {
                if let Some(kick) = &self.shared.driver_kick {
                    kick.notify_one();
                }
            }
        }
        let mut ids = std::mem::take(&mut self.dirty_ids);
        self.shared.broker.borrow_mut().take_dirty(&mut ids);
        for id in ids.drain(..) {
            if let Some(&slot) = self.by_id.get(&id) {
                self.want_send.push(slot);
            } else if let Some(writer) = self.shared.writers.borrow().get(&id) {
                // A connection of the tokio tasks (a byte stream a service
                // handed over: AMQP over WebSocket) wakes its own writer.
                writer.notify_one();
            }
        }
        self.dirty_ids = ids;
        for slot in std::mem::take(&mut self.want_send) {
            self.flush_send(slot, now_ms);
        }
        if self.input_wait.is_empty() || self.bufs().half_free() {
            // Out of buffers: armed again once half the pool is back (a small
            // pool must not wait for all the waiting input to be fed).
            self.rearm.append(&mut self.starved);
        }
        for slot in std::mem::take(&mut self.rearm) {
            self.arm_recv(slot);
        }
        if self.shared.broker.borrow().has_pending_work() {
            self.shared.work_kick.notify_one();
        }
        self.shared.rearm_timer();
        self.bufs().publish();
        let need_enter = {
            let sq = self.ring.submission();
            !sq.is_empty() || sq.cq_overflow() || sq.taskrun()
        };
        if need_enter {
            self.submit();
        }
    }

    /// Sends the connection's pending output, unless a send is in flight (its
    /// completion calls this again). The closing handshake's FIN goes here too.
    fn flush_send(&mut self, slot: u32, now_ms: u64) {
        let Some(conn) = self.slots[slot as usize].as_mut() else {
            return;
        };
        if conn.phase == Phase::Dead || conn.send.is_some() {
            return;
        }
        let mut b = self.shared.broker.borrow_mut();
        if conn.phase == Phase::Open && b.is_closed(conn.id) {
            conn.phase = Phase::Closing {
                deadline_ms: now_ms + CLOSE_LINGER_MS,
                fin_sent: false,
            };
        }
        let mut buf = std::mem::take(&mut conn.spare);
        match conn.tls.as_deref_mut() {
            None => {
                b.take_output(conn.id, &mut buf, now_ms);
            }
            Some(session) => tls::take_sealed(&mut b, conn.id, conn.phase, session, &mut buf, now_ms),
        }
        if buf.is_empty() {
            conn.spare = buf;
            if let Phase::Closing { fin_sent: false, .. } = conn.phase {
                // We received close-ok (or gave up): FIN right after the last
                // frame. When we *sent* close-ok the client closes first (clients
                // such as lapin report an early EOF as an error), so we wait.
                if !b.should_linger(conn.id) {
                    let _ = conn.sock.shutdown(std::net::Shutdown::Write);
                }
                conn.phase = Phase::Closing {
                    deadline_ms: now_ms + CLOSE_LINGER_MS,
                    fin_sent: true,
                };
            }
            return;
        }
        drop(b);
        let mut sent = InFlightSend::new(buf);
        let e = sent.sqe(&conn.sock, user_data(KIND_SEND, slot, conn.gen));
        conn.send = Some(sent);
        conn.last_send_ms = now_ms;
        self.stats.sends += 1;
        self.push(e);
    }

    // ---- shutdown -------------------------------------------------------------------

    /// Ends every connection and waits (bounded) for all operations to complete,
    /// so that nothing the kernel may touch is freed under it.
    pub fn finish(&mut self, now_ms: u64) {
        for slot in 0..self.slots.len() as u32 {
            if let Some(conn) = self.slots[slot as usize].as_ref() {
                let _ = conn.sock.shutdown(std::net::Shutdown::Both);
            }
            self.peer_gone(slot);
        }
        for _ in 0..200 {
            self.turn(now_ms);
            if self.inflight == 0 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        tracing::warn!(inflight = self.inflight, "io_uring operations still in flight at exit");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if self.inflight > 0 {
            // The kernel may still use these after the ring's fd is closed (ring
            // teardown is asynchronous): leak them rather than free them under it.
            std::mem::forget(self.bufs.take());
            std::mem::forget(std::mem::take(&mut self.slots));
        }
    }
}
