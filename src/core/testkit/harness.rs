//! The io layer, played by a test: one [`Broker`] driven through its io
//! contract with a [`FakeClock`], in-memory [`Client`]s, the group commit run
//! when the test says, and optionally a [`Disk`] for power loss.
//!
//! What the real loop does and this does too: feed input with `handle_input`,
//! run pending work until none is left, hand each dirty connection's output to
//! its client, fire timers with `handle_timeout` and tick every connection with
//! `handle_tick`, and call `handle_disconnect` for connections the broker
//! closed. Checked on the way: whole frames consumed, pending work at one `now`
//! finishes (issue 15's livelock), and the next deadline after
//! `handle_timeout(now)` lies after `now`.

use std::collections::BTreeMap;

use crate::core::amqp::broker::Broker;
use crate::core::amqp::confirm::SyncJob;
use crate::core::config::CoreConfig;
use crate::core::model::ids::ConnId;

use super::client::{self, Client, Event};
use super::clock::FakeClock;
use super::disk::Disk;

/// `run_pending` calls at one `now` after which pending work counts as a livelock.
const PENDING_TURNS_MAX: usize = 10_000;

pub struct Harness {
    /// None only inside `crash`/`restart`.
    broker: Option<Broker>,
    config: CoreConfig,
    seed: u64,
    clock: FakeClock,
    /// The last `now` the broker was given (see [`Self::core_now`]).
    core_now: u64,
    clients: BTreeMap<ConnId, Client>,
    /// Input a connection parked for another shard's answer has not taken
    /// yet (the io layer's read buffer): handed in again when it resumes.
    unread: BTreeMap<ConnId, Vec<u8>>,
    /// A group commit taken from the broker and not yet finished.
    sync_job: Option<SyncJob>,
    disk: Option<Disk>,
    /// Shared by the shards of one broker (one data directory).
    dir: std::sync::Arc<tempfile::TempDir>,
}

impl Harness {
    /// A broker on a fresh directory with `CoreConfig::for_tests` changed by
    /// `configure`; `crashable` keeps a [`Disk`] snapshot for [`Self::crash`].
    pub fn new(seed: u64, crashable: bool, configure: impl FnOnce(&mut CoreConfig)) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = CoreConfig::for_tests(&dir.path().join("data"));
        configure(&mut config);
        let broker = Broker::open(config.clone(), seed).expect("open broker");
        let disk = crashable.then(|| Disk::new(&config.data_dir).expect("snapshot"));
        Harness {
            disk,
            ..Harness::with_broker(broker, config, seed, std::sync::Arc::new(dir))
        }
    }

    fn with_broker(broker: Broker, config: CoreConfig, seed: u64, dir: std::sync::Arc<tempfile::TempDir>) -> Harness {
        Harness {
            broker: Some(broker),
            config,
            seed,
            clock: FakeClock::starting_at(1_000),
            core_now: 0,
            clients: BTreeMap::new(),
            unread: BTreeMap::new(),
            sync_job: None,
            disk: None,
            dir,
        }
    }

    /// `n` shards of one broker on one data directory, each a harness of its
    /// own, opened as `Broker::open_shards` opens them and joined to `log`
    /// (which has a cursor per shard, and may have more for readers of its
    /// own): shard `i` is seeded `seed + i`; `sync`: group commit on.
    pub fn shards(
        seed: u64,
        n: u16,
        log: &std::sync::Arc<crate::core::amqp::meta::ShardLog>,
        sync: bool,
    ) -> Vec<Harness> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = CoreConfig::for_tests(&dir.path().join("data"));
        config.sync = sync;
        Harness::shards_in(std::sync::Arc::new(dir), config, seed, n, log)
    }

    fn shards_in(
        dir: std::sync::Arc<tempfile::TempDir>,
        config: CoreConfig,
        seed: u64,
        n: u16,
        log: &std::sync::Arc<crate::core::amqp::meta::ShardLog>,
    ) -> Vec<Harness> {
        use crate::core::model::meta::{ShardId, Shards};
        let files = crate::core::model::vhost_files::VhostFiles::new(n);
        (0..n)
            .map(|i| {
                let seed = seed + u64::from(i);
                let shards = Shards::new(ShardId(i), n);
                let b = Broker::open_shard(config.clone(), seed, shards, log, &files).expect("open shard");
                Harness::with_broker(b, config.clone(), seed, dir.clone())
            })
            .collect()
    }

    /// Restart of the shards of one broker: their clients go, each closes
    /// as [`Self::restart`] does, but those in `killed` are dropped without
    /// closing (kill -9, as [`Self::kill9`] changing nothing); then they open
    /// again on their data directory, joined to `log`, a new one (a log
    /// lives for one run).
    pub fn restart_shards(
        mut shards: Vec<Harness>,
        log: &std::sync::Arc<crate::core::amqp::meta::ShardLog>,
        killed: &[usize],
    ) -> Vec<Harness> {
        for (i, h) in shards.iter_mut().enumerate() {
            if killed.contains(&i) {
                continue;
            }
            let ids: Vec<ConnId> = h.clients.keys().copied().collect();
            for id in ids {
                h.disconnect(id);
            }
            h.clients.clear();
            h.sync_all();
        }
        let (dir, config, seed, n) = (
            shards[0].dir.clone(),
            shards[0].config.clone(),
            shards[0].seed,
            shards.len() as u16,
        );
        for (i, h) in shards.iter_mut().enumerate() {
            let mut b = h.broker.take().expect("broker open");
            if killed.contains(&i) {
                drop(b);
                drop(h.sync_job.take());
            } else {
                b.close().expect("clean close");
            }
        }
        drop(shards);
        Harness::shards_in(dir, config, seed, n, log)
    }

    /// The data directory, and what keeps it (a temp dir) past the harness.
    pub fn data_dir(&self) -> (&std::path::Path, std::sync::Arc<tempfile::TempDir>) {
        (&self.config.data_dir, self.dir.clone())
    }

    pub fn broker(&self) -> &Broker {
        self.broker.as_ref().expect("broker open")
    }

    /// For what a test does beside the io contract (policies, checks).
    pub fn broker_mut(&mut self) -> &mut Broker {
        self.b()
    }

    fn b(&mut self) -> &mut Broker {
        self.broker.as_mut().expect("broker open")
    }

    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// The time the core acts on: the last `now` an input carried. Calls
    /// without one (`handle_disconnect`, `handle_sync_done`) run what they
    /// cause (redeliveries, TTL checks, consumer-timeout deadlines) at it.
    pub fn core_now(&self) -> u64 {
        self.core_now
    }

    /// Time passes; nothing fires until [`Self::fire_timers`] or the next input.
    pub fn advance(&mut self, ms: u64) {
        self.clock.advance(ms);
    }

    /// A new connection that completes the handshake and opens `channels`.
    pub fn connect(&mut self, heartbeat_secs: u16, channels: &[u16]) -> ConnId {
        let now = self.now();
        self.core_now = now;
        let id = self.b().handle_connect("sim".into(), true, now);
        self.clients.insert(id, Client::new());
        let mut bytes = client::handshake(heartbeat_secs);
        for &ch in channels {
            bytes.extend(client::channel_open(ch));
        }
        self.send(id, &bytes);
        id
    }

    /// A connection that logs in as `user` and opens `vhost` (no heartbeat);
    /// its events say whether it got connection.open-ok.
    pub fn connect_as(&mut self, user: &str, password: &str, vhost: &str) -> ConnId {
        let now = self.now();
        self.core_now = now;
        let id = self.b().handle_connect("sim".into(), true, now);
        self.clients.insert(id, Client::new());
        self.send(id, &client::handshake_as(user, password, vhost, 0));
        id
    }

    /// Client `id` sends `bytes` (whole frames) at the current `now`. A
    /// connection parked for another shard's answer takes them when it
    /// resumes ([`Self::is_parked`]).
    pub fn send(&mut self, id: ConnId, bytes: &[u8]) {
        let now = self.now();
        self.core_now = now;
        let unread = self.unread.entry(id).or_default();
        unread.extend_from_slice(bytes);
        let input = std::mem::take(unread);
        let used = self.b().handle_input(id, &input, now);
        self.keep_unread(id, input, used);
        self.pump();
    }

    /// What `handle_input` left: nothing unless the connection parked.
    fn keep_unread(&mut self, id: ConnId, mut input: Vec<u8>, used: usize) {
        if used < input.len() {
            assert!(
                self.broker().connection(id).is_some_and(|c| c.is_parked()),
                "seed {}: whole frames must be consumed unless parked",
                self.seed
            );
            input.drain(..used);
            self.unread.insert(id, input);
        } else {
            self.unread.remove(&id);
        }
    }

    /// Whether connection `id` waits for another shard's answer, with input
    /// not taken yet.
    pub fn is_parked(&self, id: ConnId) -> bool {
        self.broker().connection(id).is_some_and(|c| c.is_parked())
    }

    /// Hands the resumed connections their input again, as the io layer does.
    fn feed_resumed(&mut self) {
        let mut resumed = Vec::new();
        loop {
            self.b().take_resumed(&mut resumed);
            if resumed.is_empty() {
                return;
            }
            let now = self.now();
            for id in resumed.drain(..) {
                let Some(input) = self.unread.remove(&id) else { continue };
                let used = self.b().handle_input(id, &input, now);
                self.keep_unread(id, input, used);
            }
            self.pump();
        }
    }

    /// Runs pending work and hands out output until nothing is left.
    pub fn pump(&mut self) {
        let (seed, now) = (self.seed, self.now());
        let mut dirty = Vec::new();
        loop {
            let b = self.broker.as_mut().expect("broker open");
            b.take_dirty(&mut dirty);
            let mut turns = 0;
            while b.has_pending_work() {
                turns += 1;
                assert!(
                    turns <= PENDING_TURNS_MAX,
                    "seed {seed}: pending work at now={now} does not finish (re-armed for the same now?)"
                );
                b.run_pending();
                b.take_dirty(&mut dirty);
            }
            if dirty.is_empty() {
                return;
            }
            for id in dirty.drain(..) {
                let mut out = Vec::new();
                b.poll_output(id, &mut out, now);
                if let Some(c) = self.clients.get_mut(&id) {
                    c.receive(&out);
                }
                b.handle_output_drained(id);
            }
        }
    }

    /// Events client `id` received since the last call.
    pub fn events(&mut self, id: ConnId) -> Vec<Event> {
        self.clients.get_mut(&id).map(Client::take_events).unwrap_or_default()
    }

    /// Fires the timers due now and ticks every connection, as the io layer's
    /// timers do; connections the broker closed are disconnected. Returns them.
    pub fn fire_timers(&mut self) -> Vec<ConnId> {
        let now = self.now();
        self.core_now = now;
        self.b().handle_timeout(now);
        let next = self.broker().poll_timeout();
        assert!(
            next.is_none_or(|t| t > now),
            "seed {}: after handle_timeout({now}) the next deadline is {next:?}",
            self.seed
        );
        self.pump();
        let ids: Vec<ConnId> = self.clients.keys().copied().collect();
        for &id in &ids {
            self.b().handle_tick(id, now);
        }
        self.pump();
        let closed: Vec<ConnId> = ids.into_iter().filter(|&id| self.broker().is_closed(id)).collect();
        for &id in &closed {
            self.disconnect(id);
        }
        closed
    }

    /// The socket of `id` is gone. Its client stays readable until dropped with
    /// [`Self::forget`].
    pub fn disconnect(&mut self, id: ConnId) {
        // What a parked connection had not read goes with its socket.
        self.unread.remove(&id);
        self.b().handle_disconnect(id);
        self.pump();
    }

    /// Drops a disconnected client's record.
    pub fn forget(&mut self, id: ConnId) {
        self.clients.remove(&id);
    }

    /// Takes a group commit from the broker if one is due and none is in
    /// flight; returns whether one is in flight now.
    pub fn start_sync(&mut self) -> bool {
        if self.sync_job.is_none() {
            self.sync_job = self.b().poll_sync();
        }
        self.sync_job.is_some()
    }

    /// Runs the fsyncs of the group commit in flight (if any) and reports it
    /// done: a durability point.
    pub fn finish_sync(&mut self) {
        let Some(job) = self.sync_job.take() else { return };
        job.run_blocking().expect("fsync");
        self.b().handle_sync_done(job, Ok(()));
        self.pump();
        self.durability_point();
    }

    /// Reports the group commit in flight (if any) failed with EIO, as the io
    /// layer does when an fsync returns an error. Its fsyncs are not run: what a
    /// failed one wrote is unknown. Not a durability point.
    pub fn fail_sync(&mut self) {
        let Some(job) = self.sync_job.take() else { return };
        let eio = std::io::Error::from_raw_os_error(libc::EIO);
        self.b().handle_sync_done(job, Err(eio));
        self.pump();
    }

    /// Whether a group commit would have work (dirty queues, logs, stores).
    pub fn sync_wanted(&self) -> bool {
        !self.broker().model.commit.nothing_dirty() || self.sync_job.is_some()
    }

    /// A batch another shard sent this one (`model::cross`), taken in now.
    pub fn handle_cross(
        &mut self,
        from: crate::core::model::meta::ShardId,
        msgs: Vec<crate::core::model::cross::CrossMsg>,
    ) {
        let now = self.now();
        self.core_now = now;
        self.b().handle_cross(from, msgs, now);
        self.pump();
        self.feed_resumed();
    }

    /// Group commits until nothing waits for one.
    pub fn sync_all(&mut self) {
        self.finish_sync();
        while self.start_sync() {
            self.finish_sync();
        }
    }

    /// The broker may have synced something inline (definitions log, fired
    /// delayed messages, queue deletion): what is on disk now survives a crash.
    pub fn durability_point(&mut self) {
        if let Some(d) = &mut self.disk {
            d.snapshot().expect("snapshot");
        }
    }

    /// Clean restart: every client goes, the broker closes and opens again on
    /// the same directory. Client ids start again, so every client is dropped.
    pub fn restart(&mut self) {
        let ids: Vec<ConnId> = self.clients.keys().copied().collect();
        for id in ids {
            self.disconnect(id);
        }
        self.clients.clear();
        self.sync_all();
        self.broker.take().expect("broker open").close().expect("clean close");
        self.reopen();
    }

    /// Power loss: the broker is dropped without closing, and the data
    /// directory goes back to its last durability point (see [`Disk`]).
    pub fn crash(&mut self) {
        let disk = self.disk.as_mut().expect("a crashable harness");
        drop(self.broker.take());
        drop(self.sync_job.take());
        disk.crash().expect("restore snapshot");
        self.clients.clear();
        self.reopen();
    }

    /// kill -9: the broker is dropped without closing and every write it made
    /// is kept, synced or not (the page cache outlives the process); `change`
    /// may alter the data directory before the broker opens again (a test
    /// putting back files to stand for writes that did not reach the disk).
    /// Limit: dropping the stores writes their buffered acks, which a real
    /// kill -9 loses (the broker writes them within `ACK_FLUSH_DELAY_MS`).
    pub fn kill9(&mut self, change: impl FnOnce(&std::path::Path)) {
        drop(self.broker.take());
        drop(self.sync_job.take());
        change(&self.config.data_dir);
        self.clients.clear();
        self.reopen();
    }

    fn reopen(&mut self) {
        self.broker = Some(Broker::open(self.config.clone(), self.seed).expect("reopen broker"));
        self.durability_point();
    }

    pub fn snapshots_taken(&self) -> u64 {
        self.disk.as_ref().map_or(0, Disk::snapshots_taken)
    }
}
