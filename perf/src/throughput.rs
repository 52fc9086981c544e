//! The `throughput` and `latency` scenarios: publishers and consumers on their
//! own connections, a reporter printing one line per second, a summary.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use ringmq_codec::{BasicProperties, Method, TxCommit};
use serde_json::json;

use crate::args::{Common, Throughput};
use crate::stats::{self, Counters, LatencySink};
use crate::streams::{self, Templates};
use crate::tasks::{self, Task};
use ringmq_client::{sh as short_name, ClientError, Connection, Event, QueueOptions, Result, Uri};

/// Bytes of publishes encoded before one write: large enough to amortise the
/// syscall, small enough to stay in L2 and keep the broker's reads even.
const BATCH_BYTES: usize = 64 * 1024;
const BATCH_MSGS_MAX: usize = 256;
/// How often idle tasks look at the stop flag.
const POLL: Duration = Duration::from_millis(100);

/// State shared by the tasks of one run.
#[derive(Debug, Default)]
pub struct Shared {
    pub counters: Counters,
    pub latency: LatencySink,
    stop: AtomicBool,
    go: AtomicBool,
    ready: AtomicUsize,
    finished_publishers: AtomicUsize,
    finished_tasks: AtomicUsize,
    /// Publishes left under -C (unused when 0 was given).
    pub_left: AtomicI64,
    errors: Mutex<Vec<String>>,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Relaxed)
    }

    async fn ready_and_wait(&self) {
        self.ready.fetch_add(1, Relaxed);
        while !self.go.load(Relaxed) && !self.stopped() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Takes up to `n` publishes from the -C budget.
    fn claim(&self, n: usize, limited: bool) -> usize {
        if !limited {
            return n;
        }
        let before = self.pub_left.fetch_sub(n as i64, Relaxed);
        before.clamp(0, n as i64) as usize
    }

    fn error(&self, who: &str, e: ClientError) {
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("{who}: {e}"));
    }
}

/// The result of one run.
#[derive(Debug, Clone)]
pub struct Summary {
    pub elapsed: Duration,
    pub published: u64,
    pub consumed: u64,
    pub confirmed: u64,
    pub nacked: u64,
    pub latency: Option<Histogram<u64>>,
    pub errors: Vec<String>,
    /// CPU the broker (`--pid`) used during the measured run, in seconds.
    pub broker_cpu_s: Option<f64>,
    /// The broker's highest RSS seen during the run (sampled every 50 ms).
    pub broker_rss_peak: Option<u64>,
}

impl Summary {
    pub fn publish_rate(&self) -> f64 {
        stats::rate(0, self.published, self.elapsed)
    }

    pub fn consume_rate(&self) -> f64 {
        stats::rate(0, self.consumed, self.elapsed)
    }

    pub fn to_json(&self, scenario: &str) -> serde_json::Value {
        let mut v = json!({
            "scenario": scenario,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "published": self.published,
            "consumed": self.consumed,
            "confirmed": self.confirmed,
            "nacked": self.nacked,
            "publish_rate": self.publish_rate().round(),
            "consume_rate": self.consume_rate().round(),
            "errors": self.errors,
        });
        if let Some(h) = &self.latency {
            for (name, us) in stats::percentiles(h) {
                v[format!("{name}_us")] = json!(us);
            }
        }
        if let Some(rss) = self.broker_rss_peak {
            v["rss_peak_mb"] = json!(rss as f64 / (1024.0 * 1024.0));
        }
        if let Some(cpu) = self.broker_cpu_s {
            v["broker_cpu_s"] = json!(cpu);
            v["cpu_us_per_msg"] = json!(self.cpu_us_per_msg(cpu));
        }
        v
    }

    /// The broker's CPU per message moved: per publish received plus per
    /// delivery sent (a stream message read by 10 consumers counts 11 times).
    fn cpu_us_per_msg(&self, cpu_s: f64) -> f64 {
        cpu_s * 1e6 / (self.published + self.consumed).max(1) as f64
    }

    pub fn print_text(&self) {
        println!("Summary:");
        println!("Average publish rate: {:.0} msgs/s", self.publish_rate());
        println!("Average consume rate: {:.0} msgs/s", self.consume_rate());
        println!(
            "published {} consumed {} confirmed {} nacked {} in {:.2} s",
            self.published,
            self.consumed,
            self.confirmed,
            self.nacked,
            self.elapsed.as_secs_f64()
        );
        if let Some(h) = &self.latency {
            println!("latency: {}", latency_line(h));
        }
        if let Some(cpu) = self.broker_cpu_s {
            println!(
                "broker CPU {cpu:.2} s, {:.2} µs per message in or out",
                self.cpu_us_per_msg(cpu)
            );
        }
        for e in &self.errors {
            println!("error: {e}");
        }
    }
}

pub fn latency_line(h: &Histogram<u64>) -> String {
    let p = stats::percentiles(h);
    if p.is_empty() {
        return "no samples".into();
    }
    p.iter()
        .map(|(n, v)| format!("{} {} µs", n.replace('_', "."), v))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Declares the exchange, queues and bindings; prefills if asked.
async fn setup(uri: &Uri, o: &Throughput) -> Result<()> {
    let mut conn = Connection::connect(uri).await?;
    let ch = conn.open_channel().await?;
    if !o.exchange.is_empty() && !o.exchange.starts_with("amq.") {
        conn.exchange_declare(ch, &o.exchange, &o.exchange_type, o.persistent)
            .await?;
    }
    let queues = o.queue_names();
    for q in &queues {
        let opts = QueueOptions {
            // RabbitMQ refuses a stream that is not durable.
            durable: o.persistent || o.stream.is_some(),
            arguments: &o.queue_args,
            ..Default::default()
        };
        conn.queue_declare(ch, q, opts).await?;
        if !o.exchange.is_empty() {
            conn.queue_bind(ch, q, &o.exchange, o.routing_key_for(q)).await?;
        }
    }
    if o.prefill > 0 {
        prefill(&mut conn, ch, o, &queues).await?;
    }
    conn.close().await
}

/// Publishes `o.prefill` messages round-robin over the queues, with confirms so
/// they are all in before the measured run starts.
async fn prefill(conn: &mut Connection, ch: u16, o: &Throughput, queues: &[String]) -> Result<()> {
    conn.confirm_select(ch).await?;
    let props = properties(o);
    let body = vec![b'x'; o.size];
    let tpls: Vec<_> = queues
        .iter()
        .map(|q| {
            let names = (short_name(&o.exchange)?, short_name(publish_key(o, q))?);
            Ok(Templates::new(o, ch, names, &props, &body, conn.frame_max))
        })
        .collect::<Result<_>>()?;
    let started = Instant::now();
    let mut confirms = Confirms::new(10_000);
    let mut sent = 0u64;
    while sent < o.prefill || confirms.outstanding() > 0 {
        let n = (confirms.room() as u64)
            .min(o.prefill - sent)
            .min(BATCH_MSGS_MAX as u64);
        if n == 0 {
            conn.fill().await?;
        } else {
            for i in 0..n {
                let seq = sent + i;
                let q = (seq % tpls.len() as u64) as usize;
                conn.push_publish(tpls[q].get(seq / tpls.len() as u64), None);
            }
            conn.flush().await?;
            confirms.sent(n);
            sent += n;
        }
        while let Some(ev) = conn.next_event()? {
            if let Event::Ack {
                delivery_tag, multiple, ..
            }
            | Event::Nack {
                delivery_tag, multiple, ..
            } = ev
            {
                confirms.on_ack(delivery_tag, multiple);
            }
        }
    }
    eprintln!(
        "prefilled {} messages in {:.2} s",
        o.prefill,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn cleanup(uri: &Uri, o: &Throughput) -> Result<()> {
    let mut conn = Connection::connect(uri).await?;
    let ch = conn.open_channel().await?;
    for q in o.queue_names() {
        conn.queue_delete(ch, &q).await?;
    }
    if !o.exchange.is_empty() && !o.exchange.starts_with("amq.") {
        let m = Method::ExchangeDelete(ringmq_codec::ExchangeDelete {
            ticket: 0,
            exchange: short_name(&o.exchange)?,
            if_unused: false,
            no_wait: false,
        });
        conn.rpc(ch, &m, (40, 21)).await?;
    }
    conn.close().await
}

fn properties(o: &Throughput) -> BasicProperties<'static> {
    BasicProperties {
        delivery_mode: o.persistent.then_some(2),
        ..Default::default()
    }
}

/// The routing key a publish to queue `q` carries: the queue name on the default
/// exchange, else `-k` (or the queue name, which the binding uses too).
fn publish_key<'a>(o: &'a Throughput, q: &'a str) -> &'a str {
    if o.exchange.is_empty() {
        q
    } else {
        o.routing_key_for(q)
    }
}

/// Tracks unconfirmed publishes by delivery tag. Acks may be single or
/// multiple and (with several queues) out of order; `outstanding` counts from
/// the lowest unconfirmed tag, so a lone early ack frees room only once the
/// tags below it are confirmed. The deque never grows past the window.
#[derive(Debug)]
struct Confirms {
    max: u64,
    base: u64,
    acked: VecDeque<bool>,
}

impl Confirms {
    fn new(max: u32) -> Confirms {
        Confirms {
            max: max as u64,
            base: 1,
            acked: VecDeque::with_capacity(max as usize),
        }
    }

    fn outstanding(&self) -> u64 {
        self.acked.len() as u64
    }

    fn room(&self) -> usize {
        self.max.saturating_sub(self.outstanding()) as usize
    }

    fn sent(&mut self, n: u64) {
        self.acked.extend(std::iter::repeat_n(false, n as usize));
    }

    /// Marks an ack; returns how many publishes it newly confirmed.
    fn on_ack(&mut self, tag: u64, multiple: bool) -> u64 {
        if tag < self.base || tag >= self.base + self.acked.len() as u64 {
            return 0;
        }
        let at = (tag - self.base) as usize;
        let from = if multiple { 0 } else { at };
        let mut newly = 0;
        for a in self.acked.range_mut(from..=at) {
            newly += u64::from(!*a);
            *a = true;
        }
        while self.acked.front() == Some(&true) {
            self.acked.pop_front();
            self.base += 1;
        }
        newly
    }
}

async fn publisher(sh: Arc<Shared>, o: Arc<Throughput>, uri: Uri, idx: usize) -> Result<()> {
    let mut conn = Connection::connect(&uri).await?;
    let ch = conn.open_channel().await?;
    if o.confirm > 0 {
        conn.confirm_select(ch).await?;
    }
    if o.tx_publish > 0 {
        conn.tx_select(ch).await?;
    }
    let queues = o.queue_names();
    let q = &queues[idx % queues.len()];
    let body: Vec<u8> = (0..o.size).map(|i| (i % 27 + 64) as u8).collect();
    let names = (short_name(&o.exchange)?, short_name(publish_key(&o, q))?);
    let tpls = Templates::new(&o, ch, names, &properties(&o), &body, conn.frame_max);
    let tpl = tpls.common();
    let batch_max = (BATCH_BYTES / tpl.bytes.len()).clamp(1, BATCH_MSGS_MAX);
    let limited = o.pmessages > 0;
    let stamp = o.measure_latency && tpl.stamp_at.is_some();
    let mut confirms = Confirms::new(if o.confirm > 0 { o.confirm } else { u32::MAX });
    let c = &sh.counters;
    sh.ready_and_wait().await;
    let started = Instant::now();
    let (mut sent, mut in_tx, mut blocked) = (0u64, 0u32, false);
    while !sh.stopped() {
        // Confirms and flow control arrive while we write; take them without waiting.
        while conn.try_fill()? {
            on_publisher_events(&mut conn, &mut confirms, &mut blocked, c)?;
        }
        let mut n = batch_max.min(confirms.room());
        if o.rate > 0 {
            let due = (started.elapsed().as_secs_f64() * o.rate as f64) as u64 + 1;
            n = n.min(due.saturating_sub(sent) as usize);
        }
        if o.tx_publish > 0 {
            n = n.min((o.tx_publish - in_tx) as usize);
        }
        if n == 0 || blocked {
            if o.rate > 0 && !blocked && confirms.room() > 0 {
                tokio::time::sleep(Duration::from_micros(500)).await;
            } else if let Ok(r) = tokio::time::timeout(POLL, conn.fill()).await {
                r?;
                on_publisher_events(&mut conn, &mut confirms, &mut blocked, c)?;
            }
            continue;
        }
        let n = sh.claim(n, limited);
        if n == 0 {
            break;
        }
        for i in 0..n as u64 {
            conn.push_publish(tpls.get(sent + i), stamp.then(stats::now_nanos));
        }
        conn.flush().await?;
        sent += n as u64;
        c.published.fetch_add(n as u64, Relaxed);
        if o.confirm > 0 {
            confirms.sent(n as u64);
            c.outstanding.fetch_add(n as i64, Relaxed);
        }
        if o.tx_publish > 0 {
            in_tx += n as u32;
            if in_tx >= o.tx_publish {
                conn.tx_commit(ch).await?;
                in_tx = 0;
            }
        }
    }
    if in_tx > 0 {
        conn.push_method(ch, &Method::TxCommit(TxCommit));
        conn.flush().await?;
    }
    // Wait for the last confirms so the counts are final (bounded: a broker that
    // never confirms must not hang the tool).
    let deadline = Instant::now() + Duration::from_secs(10);
    while o.confirm > 0 && confirms.outstanding() > 0 && Instant::now() < deadline {
        if let Ok(r) = tokio::time::timeout(POLL, conn.fill()).await {
            r?;
            on_publisher_events(&mut conn, &mut confirms, &mut blocked, c)?;
        }
    }
    sh.finished_publishers.fetch_add(1, Relaxed);
    conn.close().await
}

fn on_publisher_events(conn: &mut Connection, cf: &mut Confirms, blocked: &mut bool, c: &Counters) -> Result<()> {
    while let Some(ev) = conn.next_event()? {
        match ev {
            Event::Ack {
                delivery_tag, multiple, ..
            } => {
                let n = cf.on_ack(delivery_tag, multiple);
                c.confirmed.fetch_add(n, Relaxed);
                c.outstanding.fetch_sub(n as i64, Relaxed);
            }
            Event::Nack {
                delivery_tag, multiple, ..
            } => {
                let n = cf.on_ack(delivery_tag, multiple);
                c.nacked.fetch_add(n, Relaxed);
                c.outstanding.fetch_sub(n as i64, Relaxed);
            }
            Event::Returned { .. } => {
                c.returned.fetch_add(1, Relaxed);
            }
            Event::Blocked => *blocked = true,
            Event::Unblocked => *blocked = false,
            _ => {}
        }
    }
    Ok(())
}

async fn consumer(sh: Arc<Shared>, o: Arc<Throughput>, uri: Uri, idx: usize) -> Result<()> {
    let mut conn = Connection::connect(&uri).await?;
    let ch = conn.open_channel().await?;
    let queues = o.queue_names();
    let q = &queues[idx % queues.len()];
    if let Some(p) = o.prefetch {
        conn.qos(ch, p).await?;
    }
    if o.tx_ack > 0 {
        conn.tx_select(ch).await?;
    }
    let no_ack = o.ack == 0;
    // Acking every N with a prefetch of N or less would stall: the broker stops
    // at the prefetch before we reach N. Ack at half the window instead.
    let ack_every = match o.prefetch {
        Some(p) if p > 0 && o.ack >= p as u32 => (p as u32 / 2).max(1),
        _ => o.ack.max(1),
    };
    let q_short = short_name(q)?;
    if !o.get {
        conn.consume(ch, q, no_ack, &o.consumer_args).await?;
    }
    let mut hist = o.measure_latency.then(stats::new_histogram);
    let c = &sh.counters;
    sh.ready_and_wait().await;
    if o.get {
        conn.push_get(ch, q_short, no_ack);
        conn.flush().await?;
    }
    let (mut unacked, mut last_tag, mut acks_in_tx) = (0u32, 0u64, 0u32);
    while !sh.stopped() {
        match tokio::time::timeout(POLL, conn.fill()).await {
            Ok(r) => r?,
            Err(_) => {
                // Idle: ack the tail so the broker can go on (and counts settle).
                if unacked > 0 {
                    conn.push_ack(ch, last_tag, true);
                    unacked = 0;
                    conn.flush().await?;
                }
                continue;
            }
        }
        let mut n = 0u64;
        while let Some(ev) = conn.next_event()? {
            match ev {
                Event::Delivery {
                    delivery_tag,
                    head,
                    get,
                    ..
                } => {
                    n += 1;
                    if let Some(h) = hist.as_mut() {
                        let us = stats::now_nanos().saturating_sub(head) / 1000;
                        h.saturating_record(us.max(1));
                    }
                    if !no_ack {
                        unacked += 1;
                        last_tag = delivery_tag;
                        if unacked >= ack_every {
                            conn.push_ack(ch, delivery_tag, true);
                            unacked = 0;
                            acks_in_tx += 1;
                            if o.tx_ack > 0 && acks_in_tx >= o.tx_ack {
                                // Pipelined: the commit-ok is skipped as an unknown event.
                                conn.push_method(ch, &Method::TxCommit(TxCommit));
                                acks_in_tx = 0;
                            }
                        }
                    }
                    if get {
                        conn.push_get(ch, q_short, no_ack);
                    }
                }
                Event::GetEmpty { .. } => conn.push_get(ch, q_short, no_ack),
                _ => {}
            }
        }
        if n > 0 {
            let total = c.consumed.fetch_add(n, Relaxed) + n;
            if o.cmessages > 0 && total >= o.cmessages {
                sh.stop.store(true, Relaxed);
            }
        }
        if let Some(h) = hist.as_mut() {
            sh.latency.merge(h, false);
        }
        conn.flush().await?;
    }
    if let Some(h) = hist.as_mut() {
        sh.latency.merge(h, true);
    }
    if unacked > 0 {
        conn.push_ack(ch, last_tag, true);
        conn.flush().await?;
    }
    conn.close().await
}

fn guarded<F>(sh: Arc<Shared>, who: String, f: F) -> Task
where
    F: std::future::Future<Output = Result<()>> + Send + 'static,
{
    Box::pin(async move {
        if let Err(e) = f.await {
            if !sh.stopped() {
                sh.error(&who, e);
            }
        }
        sh.finished_tasks.fetch_add(1, Relaxed);
    })
}

/// Runs one throughput scenario; prints per-second lines unless quiet.
pub fn run(c: &Common, o: &Throughput) -> std::result::Result<Summary, String> {
    let rt = tasks::current_thread();
    let setup_start = SystemTime::now();
    rt.block_on(setup(&c.uri, o)).map_err(|e| format!("setup: {e}"))?;
    let sh = Arc::new(Shared::default());
    sh.pub_left.store(o.pmessages as i64, Relaxed);
    let mut run_o = o.clone();
    if let Some(s) = &o.stream {
        run_o
            .consumer_args
            .extend(streams::consumer_args(s, (setup_start, SystemTime::now())));
    }
    let oa = Arc::new(run_o);
    let mut all: Vec<Task> = Vec::new();
    for i in 0..o.consumers {
        let f = consumer(sh.clone(), oa.clone(), c.uri.clone(), i);
        all.push(guarded(sh.clone(), format!("consumer {i}"), f));
    }
    for i in 0..o.publishers {
        let f = publisher(sh.clone(), oa.clone(), c.uri.clone(), i);
        all.push(guarded(sh.clone(), format!("publisher {i}"), f));
    }
    let total = all.len();
    let handles = tasks::spawn_all(c.threads, all);
    let wait_start = Instant::now();
    while sh.ready.load(Relaxed) + sh.finished_tasks.load(Relaxed) < total {
        if wait_start.elapsed() > Duration::from_secs(60) {
            sh.stop.store(true, Relaxed);
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = Instant::now();
    let cpu_at_start = c.pid.and_then(stats::cpu_secs);
    sh.go.store(true, Relaxed);
    let (end, broker_rss_peak) = report_until_done(c, o, &sh, started, total);
    let cpu_at_end = c.pid.and_then(stats::cpu_secs);
    sh.stop.store(true, Relaxed);
    for h in handles {
        let _ = h.join();
    }
    let s = sh.counters.snapshot();
    let latency = o.measure_latency.then(|| sh.latency.take());
    if !o.keep_queues {
        if let Err(e) = rt.block_on(cleanup(&c.uri, o)) {
            eprintln!("cleanup: {e}");
        }
    }
    let errors = std::mem::take(&mut *sh.errors.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(Summary {
        elapsed: end.duration_since(started),
        published: s.published,
        consumed: s.consumed,
        confirmed: s.confirmed,
        nacked: sh.counters.nacked.load(Relaxed),
        latency,
        errors,
        broker_cpu_s: cpu_at_start.zip(cpu_at_end).map(|(a, b)| b - a),
        broker_rss_peak,
    })
}

/// Prints a line per second until the run is over; returns when the work ended
/// (the last progress for runs that end by running out of work, so a drained
/// queue's idle tail does not dilute the rates) and the broker's peak RSS.
fn report_until_done(
    c: &Common,
    o: &Throughput,
    sh: &Shared,
    started: Instant,
    total: usize,
) -> (Instant, Option<u64>) {
    let mut rss_peak = None;
    let tick = Duration::from_millis(50);
    let mut last_line = started;
    let mut at_line = sh.counters.snapshot();
    let mut last_change = (started, at_line);
    let mut latency_total = stats::new_histogram();
    loop {
        std::thread::sleep(tick);
        if let Some(rss) = c.pid.and_then(stats::rss_bytes) {
            rss_peak = rss_peak.max(Some(rss));
        }
        let now = Instant::now();
        let s = sh.counters.snapshot();
        if (s.published, s.consumed, s.confirmed)
            != (last_change.1.published, last_change.1.consumed, last_change.1.confirmed)
        {
            last_change = (now, s);
        }
        if now.duration_since(last_line) >= Duration::from_secs(1) {
            let dt = now.duration_since(last_line);
            let mut line = format!(
                "{:>4.0}s published {:.0}/s consumed {:.0}/s outstanding {}",
                now.duration_since(started).as_secs_f64(),
                stats::rate(at_line.published, s.published, dt),
                stats::rate(at_line.consumed, s.consumed, dt),
                s.outstanding
            );
            if o.measure_latency {
                let h = sh.latency.take();
                let p: std::collections::HashMap<_, _> = stats::percentiles(&h).into_iter().collect();
                if let (Some(p50), Some(p99)) = (p.get("p50"), p.get("p99")) {
                    line.push_str(&format!(" latency p50 {p50} µs p99 {p99} µs"));
                }
                let _ = latency_total.add(&h);
            }
            if !c.quiet {
                println!("{line}");
            }
            last_line = now;
            at_line = s;
        }
        if o.duration.is_some_and(|d| now.duration_since(started) >= d) {
            finish_latency(sh, latency_total);
            return (now, rss_peak);
        }
        let publishers_done = sh.finished_publishers.load(Relaxed) >= o.publishers;
        let all_done = sh.finished_tasks.load(Relaxed) >= total;
        let drained = drained(o, s.published, s.consumed);
        let idle = now.duration_since(last_change.0) >= Duration::from_secs(2);
        let bounded = o.duration.is_none() || o.pmessages > 0 || o.cmessages > 0 || o.prefill > 0;
        if all_done
            || sh.stopped()
            || (publishers_done && o.publishers > 0 && drained)
            || (publishers_done && bounded && idle && s.consumed > 0)
        {
            finish_latency(sh, latency_total);
            return (if idle { last_change.0 } else { now }, rss_peak);
        }
    }
}

/// Whether the consumers have had all that was published. On the default
/// exchange each publish is one delivery; elsewhere (fanout) the copies are
/// unknown, and on a stream each consumer reads every message, the prefill's
/// too (streams.rs): there only the idle rule ends a bounded run.
fn drained(o: &Throughput, published: u64, consumed: u64) -> bool {
    o.consumers == 0 || (o.exchange.is_empty() && o.stream.is_none() && consumed >= published)
}

/// Puts the per-second histograms back so the summary sees every sample.
fn finish_latency(sh: &Shared, mut total: Histogram<u64>) {
    sh.latency.merge(&mut total, true);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_run_is_not_drained_by_counts() {
        let plain = Throughput::default();
        assert!(drained(&plain, 10, 10) && !drained(&plain, 10, 9));
        let stream = Throughput {
            stream: Some(Default::default()),
            ..Throughput::default()
        };
        assert!(!drained(&stream, 10, 30), "three consumers of a stream each read all");
        let idle = Throughput { consumers: 0, ..stream };
        assert!(drained(&idle, 10, 0));
    }

    #[test]
    fn confirms_single_multiple_and_out_of_order() {
        let mut c = Confirms::new(10);
        c.sent(5);
        assert_eq!((c.outstanding(), c.room()), (5, 5));
        assert_eq!(c.on_ack(3, false), 1);
        assert_eq!(c.outstanding(), 5, "tags 1-2 still unconfirmed");
        assert_eq!(c.on_ack(2, true), 2);
        assert_eq!(c.outstanding(), 2, "1-3 confirmed");
        assert_eq!(c.on_ack(3, false), 0, "duplicate");
        assert_eq!(c.on_ack(9, false), 0, "never sent");
        assert_eq!(c.on_ack(5, true), 2);
        assert_eq!((c.outstanding(), c.room()), (0, 10));
        c.sent(1);
        assert_eq!(c.on_ack(6, false), 1);
    }
}
