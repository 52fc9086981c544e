//! One seed: generate an operation, apply it to the model, run it against the
//! broker, compare; restart the broker (clean, kill -9, kill -9 after the ack
//! timer) and compare everything the broker holds with the states the model
//! allows. A failure names the seed and writes the operations to a file.

use std::fmt::Write as _;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::client::{Client, Listing, Outcome};
use super::ops::{Generator, Op};
use super::restart::{Looked, Restart, Seen};
use super::script::fit;
use super::semantics::Settle;
use super::state::*;
use crate::common::*;

/// Longer than the broker's ack timer (`ACK_FLUSH_DELAY_MS`, 100 ms), with
/// room for a loaded machine.
const SETTLE: Duration = Duration::from_millis(1_000);

/// Segment sizes a seed runs with: 4 KiB is the smallest the broker takes,
/// and with bodies of up to 700 bytes (`client::wire_body`) every few
/// messages start a new segment file, so rollovers, deletions of acked
/// segments and spare files are hit often.
const SEGMENT_BYTES: [u32; 3] = [4096, 4096, 65536];

#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub ops: usize,
    pub clean: usize,
    pub kill9: usize,
    pub kill9_settled: usize,
    pub looks: usize,
    /// kill -9 restarts that had messages that may come back.
    pub kill9_with_maybe: usize,
    pub published: usize,
    pub delivered: usize,
    pub model: Counts,
}

struct Run {
    seed: u64,
    gen: Generator,
    model: Model,
    log: Vec<String>,
    stats: Stats,
    /// 1: print each operation; 2: and log the model's queues after each.
    trace: u8,
    /// Replaying a script: every clean restart is followed by a full look
    /// (no random choice that a cut-down script would shift).
    replay: bool,
}

/// Where the operations come from.
pub enum Source {
    /// `ops` operations from the seeded generator.
    Generated { ops: usize },
    /// A script (`MODEL_REPLAY`): operations that do not fit the model's state
    /// are skipped.
    Script(Vec<Op>),
}

/// Runs one seed against a broker of its own (or the external one of
/// `RINGMQ_TEST_URI`, where a restart is a look instead).
pub fn run_seed(seed: u64, source: Source, trace: u8) -> Stats {
    let mut rng = StdRng::seed_from_u64(seed);
    let seg = SEGMENT_BYTES[rng.random_range(0..SEGMENT_BYTES.len())].to_string();
    let mut broker = Broker::with_args(&["--segment-size", &seg]);
    let prefix = if broker.is_external() {
        format!("{}-", unique("model"))
    } else {
        String::new()
    };
    let mut run = Run {
        seed,
        gen: Generator::new(rng, broker.is_external()),
        model: Model::default(),
        log: vec![format!("seed {seed}, segment size {seg}")],
        stats: Stats::default(),
        trace,
        replay: matches!(source, Source::Script(_)),
    };
    runtime().block_on(async {
        let mut client = Client::connect(&broker, &prefix).await;
        let external = broker.is_external();
        let (ops, mut script) = match source {
            Source::Generated { ops } => (ops, None),
            Source::Script(ops) => (usize::MAX, Some(ops.into_iter())),
        };
        let mut i = 0;
        while i < ops {
            let mut op = match script.as_mut() {
                None => run.gen.next_op(&run.model),
                Some(s) => match s.next() {
                    Some(op) => op,
                    None => break,
                },
            };
            if external && matches!(op, Op::Restart(_)) {
                op = Op::Check;
            }
            if script.is_some() && !fit(&mut op, &run.model) {
                run.note(format!("# skipped, does not fit: {}", op.to_line()));
                continue;
            }
            client = run.step(i, op, client, &mut broker).await;
            i += 1;
        }
        let last = if external {
            Op::Check
        } else {
            Op::Restart(Restart::Clean)
        };
        client = run.step(i, last, client, &mut broker).await;
        client.abandon();
    });
    run.stats.model = run.model.counts;
    run.stats
}

impl Run {
    async fn step(&mut self, i: usize, op: Op, mut client: Client, broker: &mut Broker) -> Client {
        self.stats.ops += 1;
        match op {
            Op::Restart(how) => {
                self.note(format!("{i}: {} ({} maybe)", op.to_line(), self.model.maybe_count()));
                client = self.restart(how, client, broker).await;
                self.compare_after_restart(how, &client).await;
            }
            Op::Check => {
                self.note(format!("{i}: {}", op.to_line()));
                let want = vec![self.model.clone()];
                self.look(&client, &want).await;
            }
            mut op => {
                let want = self.apply(&mut op);
                let body = match &op {
                    Op::Publish { body, .. } => format!(" {body}"),
                    _ => String::new(),
                };
                self.note(format!("{i}: {} -> {want:?}{body}", op.to_line()));
                let got = client.exec(&op).await;
                if self.trace >= 2 {
                    let all = self.model.queues.iter().map(|(n, q)| {
                        let es: Vec<String> = q
                            .entries
                            .values()
                            .map(|e| format!("{}{}", e.msg.body, if e.unacked { "~" } else { "" }))
                            .collect();
                        format!("{n}=[{}]", es.join(" "))
                    });
                    self.note(format!("   model {}", all.collect::<Vec<_>>().join(" ")));
                }
                if got != want {
                    self.fail(&format!("{}\n  model:  {want:?}\n  broker: {got:?}", op.to_line()));
                }
            }
        }
        client
    }

    /// The operation's effect on the model and what the broker should answer.
    fn apply(&mut self, op: &mut Op) -> Outcome {
        let m = &mut self.model;
        match op {
            Op::DeclareQueue { queue, durable, args } => match m.queues.get(queue.as_str()) {
                Some(q) => Outcome::Count(q.ready()),
                // RabbitMQ refuses a dead-letter routing key without an exchange.
                None if args.dlrk.is_some() && args.dlx.is_none() => {
                    m.release_channel(0);
                    m.after_input();
                    Outcome::Refused(406)
                }
                None => {
                    m.declare_queue(queue, *durable, args.clone());
                    Outcome::Count(0)
                }
            },
            Op::RedeclareDifferent { .. } => Outcome::Refused(406),
            Op::GetMissing { .. } => Outcome::Refused(404),
            Op::DeleteQueue { queue } => Outcome::Count(m.delete_queue(queue)),
            Op::Purge { queue } => Outcome::Count(m.purge(queue)),
            Op::DeclareExchange { x } => {
                m.exchanges.insert(x.clone());
                Outcome::Done
            }
            Op::DeleteExchange { x } => {
                m.delete_exchange(x);
                Outcome::Done
            }
            Op::Bind { x, queue, key } => {
                m.bindings.insert((x.clone(), queue.clone(), key.clone()));
                Outcome::Done
            }
            Op::Unbind { x, queue, key } => {
                m.bindings.remove(&(x.clone(), queue.clone(), key.clone()));
                Outcome::Done
            }
            Op::SetPolicy { name, queues, def } => {
                let priority = POLICIES.iter().position(|p| p == name).expect("ours") as i64;
                let p = Policy {
                    queues: queues.clone(),
                    priority,
                    def: def.clone(),
                };
                m.policies.insert(name.clone(), p);
                m.policies_changed();
                Outcome::Done
            }
            Op::ClearPolicy { name } => {
                m.policies.remove(name.as_str());
                m.policies_changed();
                Outcome::Done
            }
            Op::Publish {
                exchange,
                key,
                persistent,
                body,
            } => {
                let msg = m.new_msg(*persistent, key);
                assert_eq!(&msg.body, body, "generator and model agree on the next body");
                self.stats.published += 1;
                Outcome::Confirm(m.publish(exchange, msg))
            }
            Op::Get { ch, queue, no_ack } => {
                let got = m.get(*ch, queue, *no_ack);
                self.stats.delivered += usize::from(got.is_some());
                Outcome::Got(got)
            }
            Op::Consume {
                ch,
                queue,
                prefetch,
                no_ack,
                expect,
            } => {
                let ds = m.consume(*ch, queue, *prefetch, *no_ack);
                *expect = ds.len();
                self.stats.delivered += ds.len();
                Outcome::Deliveries(ds)
            }
            Op::Settle { ch, tag, multiple, how } => {
                m.settle(*ch, *tag, *multiple, *how);
                Outcome::Done
            }
            Op::Recover { ch } => {
                m.settle(*ch, 0, true, Settle::Requeue);
                Outcome::Done
            }
            Op::CloseChannel { ch } => {
                m.release_channel(*ch);
                m.after_input();
                Outcome::Done
            }
            Op::Restart(_) | Op::Check => unreachable!("done by step"),
        }
    }

    async fn restart(&mut self, how: Restart, client: Client, broker: &mut Broker) -> Client {
        // Everything sent so far has been handled.
        client.round_trip(0).await;
        match how {
            Restart::Clean => {
                self.stats.clean += 1;
                tokio::task::block_in_place(|| broker.stop());
            }
            Restart::Kill9 => {
                self.stats.kill9 += 1;
                self.model.counts.maybe_at_kill += self.model.maybe_count();
                self.stats.kill9_with_maybe += usize::from(self.model.maybe_count() > 0);
                tokio::task::block_in_place(|| broker.kill9());
            }
            Restart::Kill9Settled => {
                self.stats.kill9_settled += 1;
                tokio::time::sleep(SETTLE).await;
                tokio::task::block_in_place(|| broker.kill9());
            }
        }
        client.abandon();
        tokio::task::block_in_place(|| broker.start());
        Client::connect(broker, "").await
    }

    async fn compare_after_restart(&mut self, how: Restart, client: &Client) {
        let want = self.model.after_restart(how);
        let full = want.len() > 1 || how != Restart::Clean || self.replay || self.gen.rng().random_bool(0.5);
        if full {
            self.look(client, &want).await;
            return;
        }
        self.model = want.into_iter().next().expect("one state");
        self.note(format!("   model {}", show(&self.model.seen())));
        self.compare_listing(client);
        for (name, q) in &self.model.queues {
            let n = client.count(name).await;
            if n != q.ready() {
                self.fail(&format!(
                    "after {how:?}: queue {name} has {n} messages, model {}",
                    q.ready()
                ));
            }
        }
    }

    /// Takes every ready message of every queue (and puts them back) and
    /// finds the state in `want` that shows the same; it becomes the model.
    async fn look(&mut self, client: &Client, want: &[Model]) {
        self.stats.looks += 1;
        let mut seen = Seen::new();
        for name in want[0].queues.keys() {
            seen.insert(name.clone(), client.look(name).await);
        }
        let Some(m) = want.iter().find(|m| m.seen() == seen) else {
            let mut diff = format!("{} allowed state(s), none matches; the first:\n", want.len());
            for (name, got) in &seen {
                let expect = &want[0].seen()[name];
                if got != expect {
                    let _ = writeln!(diff, "  {name}: model  {expect:?}\n  {name}: broker {got:?}");
                }
            }
            self.fail(&diff);
        };
        self.model = m.clone();
        self.note(format!("   seen {}", show(&seen)));
        self.compare_listing(client);
        // The look delivered them all: flagged from now on.
        for q in self.model.queues.values_mut() {
            for e in q.entries.values_mut().filter(|e| !e.unacked) {
                e.redelivered = true;
            }
        }
    }

    fn compare_listing(&self, client: &Client) {
        let m = &self.model;
        let want = Listing {
            queues: m.queues.keys().cloned().collect(),
            exchanges: m.exchanges.clone(),
            policies: m.policies.keys().cloned().collect(),
            bindings: m.bindings.clone(),
        };
        let got = client.listing();
        if got != want {
            self.fail(&format!("listing\n  model:  {want:?}\n  broker: {got:?}"));
        }
    }

    fn note(&mut self, line: String) {
        if self.trace >= 1 {
            eprintln!("{line}");
        }
        self.log.push(line);
    }

    fn log_path(&self) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("model-seed-{}.log", self.seed))
    }

    fn fail(&self, what: &str) -> ! {
        let tail = &self.log[self.log.len().saturating_sub(40)..];
        panic!(
            "model divergence, MODEL_SEED={} MODEL_OPS={} cargo test --test model\n{what}\nlast operations:\n{}",
            self.seed,
            self.stats.ops,
            tail.join("\n")
        );
    }
}

impl Drop for Run {
    /// On any failure (a divergence or an error the client hit), the seed and
    /// every operation so far go to a file.
    fn drop(&mut self) {
        if std::thread::panicking() {
            let path = self.log_path();
            let _ = std::fs::write(&path, self.log.join("\n") + "\n");
            eprintln!(
                "model: MODEL_SEED={} failed after {} operations; all of them in {}",
                self.seed,
                self.stats.ops,
                path.display()
            );
        }
    }
}

/// A compact view for the log: `q0=[m1 m2* m3(q1:maxlen:1)]` (`*`:
/// redelivered; then x-death).
fn show(seen: &Seen) -> String {
    let queue = |(n, v): (&String, &Vec<Looked>)| {
        let ms: Vec<String> = v
            .iter()
            .map(|(b, r, d)| {
                let star = if *r { "*" } else { "" };
                let deaths = if d.is_empty() {
                    String::new()
                } else {
                    format!("({})", d.join(","))
                };
                format!("{b}{star}{deaths}")
            })
            .collect();
        format!("{n}=[{}]", ms.join(" "))
    };
    seen.iter().map(queue).collect::<Vec<_>>().join(" ")
}
