//! For the record-and-replay tests: a data directory worked on at random
//! through the store's every kind of durable file (queues with priority
//! levels and delivery counts, streams with offsets, filters and retention,
//! the definitions log and its compaction, atomic JSON files, the `running`
//! marker), and a transient queue beside them, never replicated.

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ringmq_store::{DefinitionsLog, LeveledStore, MessageRef, SegmentPosition, StoreConfig, StreamStore};

fn cfg() -> StoreConfig {
    StoreConfig {
        segment_bytes: 512,
        ..StoreConfig::default()
    }
}

fn keep_all(_: &ringmq_store::MessageView<'_>) -> bool {
    true
}

fn value_of(properties: &[u8]) -> Option<&[u8]> {
    (!properties.is_empty()).then_some(properties)
}

struct Queue {
    dir: PathBuf,
    levels: u8,
    store: Option<LeveledStore>,
    unacked: Vec<SegmentPosition>,
}

impl Queue {
    fn open(dir: PathBuf, levels: u8) -> Queue {
        let (store, _) = LeveledStore::open(&dir, cfg(), levels - 1, &keep_all).unwrap();
        Queue {
            dir,
            levels,
            store: Some(store),
            unacked: Vec::new(),
        }
    }

    fn s(&mut self) -> &mut LeveledStore {
        self.store.as_mut().unwrap()
    }
}

pub(super) struct World {
    pub rng: StdRng,
    vhost: PathBuf,
    queues: Vec<Queue>,
    stream: Option<StreamStore>,
    stream_dir: PathBuf,
    defs: DefinitionsLog,
    defs_live: Vec<Vec<u8>>,
    running: Option<ringmq_store::running::Running>,
    body: Vec<u8>,
    tracked: u64,
}

impl World {
    pub fn new(root: &Path, seed: u64) -> World {
        let vhost = ringmq_store::layout::create_vhost_dir(root, "/").unwrap();
        let running = Some(ringmq_store::running::Running::acquire(&vhost).unwrap());
        let (defs, _) = DefinitionsLog::open(&vhost.join("definitions.amqp")).unwrap();
        let queues = (0..3u8)
            .map(|i| {
                let dir = ringmq_store::layout::create_queue_dir(&vhost, &format!("q{i}")).unwrap();
                Queue::open(dir, 1 + i % 2)
            })
            .collect();
        let stream_dir = ringmq_store::layout::create_queue_dir(&vhost, "s").unwrap();
        let (stream, _) = StreamStore::open(&stream_dir, cfg(), value_of).unwrap();
        World {
            rng: StdRng::seed_from_u64(seed),
            vhost,
            queues,
            stream: Some(stream),
            stream_dir,
            defs,
            defs_live: Vec::new(),
            running,
            body: Vec::new(),
            tracked: 0,
        }
    }

    pub fn body(&mut self) -> Vec<u8> {
        let len = if self.rng.random_bool(0.04) {
            20_000
        } else {
            self.rng.random_range(0..200)
        };
        let fill: u8 = self.rng.random();
        self.body.clear();
        self.body.resize(len, fill);
        self.body.clone()
    }

    /// One random operation; what it did.
    pub fn step(&mut self) -> String {
        let q = self.rng.random_range(0..self.queues.len());
        match self.rng.random_range(0..100) {
            0..=29 => {
                let body = self.body();
                let prio = self.rng.random_range(0..2);
                let m = MessageRef {
                    timestamp_ms: 1,
                    exchange: b"x",
                    routing_key: b"k",
                    properties: b"",
                    body: &body,
                };
                self.queues[q].s().append(m, prio).unwrap();
                format!("publish {} bytes to q{q}", body.len())
            }
            30..=44 => match self.queues[q].s().next_ready().unwrap() {
                Some(pos) => {
                    // Now and then one delivered again and again, written out:
                    // the delivery counts' file is rewritten past 4,096 entries.
                    let times = if self.rng.random_bool(0.1) { 2500 } else { 1 };
                    for _ in 0..times {
                        self.queues[q].s().bump_delivery_count(pos);
                    }
                    self.queues[q].s().flush_acks().unwrap();
                    self.queues[q].unacked.push(pos);
                    format!("deliver from q{q} ({times} times)")
                }
                None => "nothing to deliver".into(),
            },
            45..=56 => {
                let n = self.queues[q].unacked.len();
                if n == 0 {
                    return "nothing to ack".into();
                }
                let pos = self.queues[q].unacked.swap_remove(self.rng.random_range(0..n));
                if self.rng.random_bool(0.8) {
                    self.queues[q].s().ack(pos).unwrap();
                    format!("ack in q{q}")
                } else {
                    self.queues[q].s().requeue(pos).unwrap();
                    format!("requeue in q{q}")
                }
            }
            57..=61 => {
                self.queues[q].unacked.clear();
                self.queues[q].s().purge().unwrap();
                format!("purge q{q}")
            }
            62..=69 => {
                for q in &mut self.queues {
                    q.s().sync_all_blocking().unwrap();
                }
                self.stream.as_mut().unwrap().sync_all_blocking().unwrap();
                "group commit".into()
            }
            70..=71 => {
                let queue = &mut self.queues[q];
                queue.store.take().unwrap().close().unwrap();
                *queue = Queue::open(queue.dir.clone(), queue.levels);
                format!("close and reopen q{q}")
            }
            72 => {
                let queue = &mut self.queues[q];
                queue.store.take().unwrap().delete().unwrap();
                let dir = ringmq_store::layout::create_queue_dir(&self.vhost, &format!("q{q}")).unwrap();
                *queue = Queue::open(dir, queue.levels);
                format!("delete and declare q{q}")
            }
            73..=84 => self.stream_step(),
            85..=94 => self.definitions_step(),
            _ => {
                let users: Vec<u32> = (0..self.rng.random_range(0..5)).collect();
                ringmq_store::meta::write_json_atomic(&self.vhost.join("users.json"), &users).unwrap();
                if self.rng.random_bool(0.3) {
                    self.running.take().unwrap().release().unwrap();
                    self.running = Some(ringmq_store::running::Running::acquire(&self.vhost).unwrap());
                }
                "users".into()
            }
        }
    }

    fn stream_step(&mut self) -> String {
        let body = self.body();
        let s = self.stream.as_mut().unwrap();
        match self.rng.random_range(0..10) {
            0..=5 => {
                let filter: &[u8] = [&b""[..], b"red", b"blue"][self.rng.random_range(0..3)];
                s.append(MessageRef {
                    timestamp_ms: 1000,
                    exchange: b"",
                    routing_key: b"s",
                    properties: filter,
                    body: &body,
                })
                .unwrap();
                "stream append".into()
            }
            6 => {
                // Many at once now and then: the offsets file is compacted
                // past 1,024 records.
                let times = if self.rng.random_bool(0.5) { 400 } else { 1 };
                for _ in 0..times {
                    let tag = ["a", "b", "c"][self.rng.random_range(0..3)];
                    self.tracked += 1;
                    s.track(tag, self.tracked).unwrap();
                }
                format!("stream offsets tracked {times} times")
            }
            7 => {
                let removed = s.retain(Some(2048), None, 2000).unwrap();
                format!("stream retention removed {removed}")
            }
            _ => {
                self.stream.take().unwrap().close().unwrap();
                self.stream = Some(StreamStore::open(&self.stream_dir, cfg(), value_of).unwrap().0);
                "stream close and reopen".into()
            }
        }
    }

    fn definitions_step(&mut self) -> String {
        if self.rng.random_bool(0.15) && !self.defs_live.is_empty() {
            let keep = self.rng.random_range(0..self.defs_live.len());
            self.defs_live.truncate(keep);
            self.defs.compact(&self.defs_live).unwrap();
            return format!("definitions compacted to {keep}");
        }
        let rec = format!("declare {}", self.rng.random::<u32>()).into_bytes();
        self.defs.append(&rec).unwrap();
        self.defs_live.push(rec);
        if self.rng.random_bool(0.2) {
            self.defs.sync().unwrap();
        }
        "definition".into()
    }

    /// A transient queue's folder: written, never replicated.
    pub fn transient(&self) -> LeveledStore {
        let parent = self.vhost.join("transient");
        let dir = ringmq_store::layout::create_transient_dir(&parent, "tq").unwrap();
        LeveledStore::open(&dir, cfg(), 0, &keep_all).unwrap().0
    }

    /// Closes everything cleanly.
    pub fn close(mut self) {
        for q in std::mem::take(&mut self.queues) {
            q.store.unwrap().close().unwrap();
        }
        self.stream.take().unwrap().close().unwrap();
        self.running.take().unwrap().release().unwrap();
    }
}
