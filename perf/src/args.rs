//! Command-line parsing, with lavinmqperf's flag names so users can switch tools.
//!
//! Hand-written rather than clap: the grammar is small, and the tool should build
//! fast on a shared 2-core machine. Accepted forms: `-x 5`, `--publishers 5`,
//! `--publishers=5`.

use std::time::Duration;

use ringmq_codec::{FieldTable, FieldValue};

use ringmq_client::tls::TlsTrust;
use ringmq_client::Uri;

pub const USAGE: &str = "\
ringmqperf: AMQP 0-9-1 load generator and broker comparison tool

usage: ringmqperf <scenario> [options]

scenarios:
  throughput        publishers and consumers as fast as allowed
  latency           publish-to-deliver latency at fixed rates (--rates 1000,10000,100000)
  queue-count       declare -x queues, report time (and broker RSS with --pid)
  durable-declare   declare -x durable queues on one channel, time per declare by tenths
  connection-count  open -x idle connections with -c channels each (RSS per connection with --pid)
  bind-churn | queue-churn | connection-churn | consumer-churn   operations per second
  compare           run one scenario against several --uri, A B A B for --rounds, table of medians
  sink | source     a minimal AMQP server that discards publishes / floods deliveries

common: --uri amqp://user:pass@host:port/vhost (default amqp://guest:guest@localhost:5672)
        amqps://... for TLS (port 5671 by default) with --tls-ca FILE (PEM CAs to trust)
        or --insecure (any certificate: self-signed test certificates only)
        -j/--json (last line is one JSON object)  -q/--quiet  --pid PID (broker, for RSS)
        --threads N (0: one current-thread runtime per client; N: one N-worker runtime)

throughput/latency:
  -x/--publishers N (1)  -y/--consumers N (1)  -s/--size BYTES (16)  -z/--time SECONDS
  -C/--pmessages N  -D/--cmessages N  -r/--rate N per publisher  -p/--persistent
  -c/--confirm MAX_OUTSTANDING  -a/--ack EVERY (0 = auto-ack)  -P/--prefetch N  -g/--get
  -t/--tx MSGS_PER_TX  -T/--tx-acks ACKS_PER_TX  -e/--exchange NAME  --exchange-type TYPE
  -u/--queue NAME (perf-test)  -k/--routing-key KEY  --queue-args JSON  --consumer-args JSON
  --queue-pattern 'q-%d' --queue-pattern-from N --queue-pattern-to M  -l/--measure-latency
  --prefill N (publish N messages before starting)  --keep-queues  --rates LIST (latency)
  --stream (stream queues; -a 100 -P 1000 unless given)  --stream-offset first|last|next|N|timestamp|30s
  --filter-value V (consumers filter on V)  --filter-selectivity PCT (V on PCT% of publishes; else 'other')
  --filter-run N (V's publishes in runs of N in a row: values clustered in time)

ops: -x/--count N  -c/--channels N  -z/--time SECONDS  -u/--queue NAME  --hold SECONDS

compare: --uri A --uri B [--name a --name b] [--pid PA --pid PB] --rounds N [--row LABEL]
         [--against-last: ratios last/each other, not each other/first] -- <scenario> [options]

sink/source: --bind ADDR (127.0.0.1)  --port PORT (5690)  -s/--size BYTES (source body)
";

/// Options every scenario takes.
#[derive(Debug, Clone, PartialEq)]
pub struct Common {
    pub uri: Uri,
    pub json: bool,
    pub quiet: bool,
    /// 0: each client on its own thread with a current-thread runtime.
    pub threads: usize,
    pub pid: Option<u32>,
    /// `--tls-ca` / `--insecure`, for an `amqps://` URI.
    pub tls_trust: TlsTrust,
}

impl Common {
    /// Gives an `amqps://` URI the trust the flags named (they may come after
    /// `--uri`); refuses one without any.
    fn finish(mut self) -> Result<Common, String> {
        // A URI's own `cacertfile=` / `verify=` stand; the flags fill in the rest.
        if self.uri.tls == Some(TlsTrust::Unset) {
            if self.tls_trust == TlsTrust::Unset {
                return Err("amqps:// needs --tls-ca FILE (or --insecure for a test certificate)".into());
            }
            self.uri.tls = Some(self.tls_trust.clone());
        }
        Ok(self)
    }
}

impl Default for Common {
    fn default() -> Self {
        Common {
            uri: Uri::parse("amqp://guest:guest@localhost:5672").expect("default uri"),
            json: false,
            quiet: false,
            threads: 0,
            pid: None,
            tls_trust: TlsTrust::Unset,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Throughput {
    pub publishers: usize,
    pub consumers: usize,
    pub size: usize,
    pub duration: Option<Duration>,
    pub pmessages: u64,
    pub cmessages: u64,
    pub rate: u64,
    pub persistent: bool,
    pub confirm: u32,
    pub ack: u32,
    pub prefetch: Option<u16>,
    pub get: bool,
    pub tx_publish: u32,
    pub tx_ack: u32,
    pub exchange: String,
    pub exchange_type: String,
    pub queue: String,
    pub routing_key: Option<String>,
    /// Encoded field-table entries.
    pub queue_args: Vec<u8>,
    pub consumer_args: Vec<u8>,
    pub queue_pattern: Option<(String, u32, u32)>,
    pub measure_latency: bool,
    pub prefill: u64,
    pub keep_queues: bool,
    pub rates: Vec<u64>,
    /// `--stream` and its options (`streams.rs`).
    pub stream: Option<crate::streams::StreamOpts>,
}

impl Default for Throughput {
    fn default() -> Self {
        Throughput {
            publishers: 1,
            consumers: 1,
            size: 16,
            duration: None,
            pmessages: 0,
            cmessages: 0,
            rate: 0,
            persistent: false,
            confirm: 0,
            ack: 0,
            prefetch: None,
            get: false,
            tx_publish: 0,
            tx_ack: 0,
            exchange: String::new(),
            exchange_type: "direct".into(),
            queue: "perf-test".into(),
            routing_key: None,
            queue_args: Vec::new(),
            consumer_args: Vec::new(),
            queue_pattern: None,
            measure_latency: false,
            prefill: 0,
            keep_queues: false,
            rates: vec![1_000, 10_000, 100_000],
            stream: None,
        }
    }
}

impl Throughput {
    /// The queues this run uses: the pattern expanded, or the one `--queue`.
    pub fn queue_names(&self) -> Vec<String> {
        match &self.queue_pattern {
            Some((pat, from, to)) => (*from..=*to).map(|i| pat.replace("%d", &i.to_string())).collect(),
            None => vec![self.queue.clone()],
        }
    }

    /// The routing key publishes to (and bindings of) queue `q` use.
    pub fn routing_key_for<'a>(&'a self, q: &'a str) -> &'a str {
        self.routing_key.as_deref().unwrap_or(q)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ops {
    pub count: usize,
    pub channels: usize,
    pub duration: Duration,
    pub queue: String,
    pub hold: Duration,
}

impl Default for Ops {
    fn default() -> Self {
        Ops {
            count: 100,
            channels: 1,
            duration: Duration::from_secs(10),
            queue: "perf-churn".into(),
            hold: Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Compare {
    pub uris: Vec<String>,
    pub names: Vec<String>,
    pub pids: Vec<u32>,
    pub rounds: usize,
    pub row: Option<String>,
    /// Ratio columns divide the last broker by each earlier one (`ringmq/rabbitmq`,
    /// `ringmq/lavinmq`) instead of each later one by the first.
    pub against_last: bool,
    /// The scenario and its options, passed through to each run.
    pub scenario: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub bind: String,
    pub port: u16,
    pub size: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Throughput(Common, Throughput),
    Latency(Common, Throughput),
    Ops(String, Common, Ops),
    Compare(Common, Compare),
    Sink(Server),
    Source(Server),
    Help,
}

pub const OPS_SCENARIOS: [&str; 7] = [
    "queue-count",
    "durable-declare",
    "connection-count",
    "bind-churn",
    "queue-churn",
    "connection-churn",
    "consumer-churn",
];

/// Walks `args`, splitting `--flag=value`.
struct Tokens<'a> {
    args: &'a [String],
    i: usize,
}

impl<'a> Tokens<'a> {
    fn next_flag(&mut self) -> Option<Result<(String, Option<String>), String>> {
        let a = self.args.get(self.i)?;
        self.i += 1;
        if !a.starts_with('-') || a == "-" {
            return Some(Err(format!("unexpected argument {a:?}")));
        }
        Some(Ok(match a.split_once('=') {
            Some((f, v)) if a.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        }))
    }

    fn value(&mut self, flag: &str, inline: Option<String>) -> Result<String, String> {
        if let Some(v) = inline {
            return Ok(v);
        }
        let v = self.args.get(self.i).ok_or_else(|| format!("{flag} needs a value"))?;
        self.i += 1;
        Ok(v.clone())
    }

    fn num<T: std::str::FromStr>(&mut self, flag: &str, inline: Option<String>) -> Result<T, String> {
        let v = self.value(flag, inline)?;
        v.parse().map_err(|_| format!("{flag}: {v:?} is not a valid number"))
    }

    fn secs(&mut self, flag: &str, inline: Option<String>) -> Result<Duration, String> {
        let v: f64 = self.num(flag, inline)?;
        if !(v >= 0.0 && v.is_finite()) {
            return Err(format!("{flag}: {v} is not a valid duration"));
        }
        Ok(Duration::from_secs_f64(v))
    }
}

/// Applies a common option; false if `flag` is not one.
fn common_flag(c: &mut Common, flag: &str, inline: &mut Option<String>, t: &mut Tokens<'_>) -> Result<bool, String> {
    match flag {
        "--uri" => c.uri = Uri::parse(&t.value(flag, inline.take())?)?,
        "-j" | "--json" => c.json = true,
        "-q" | "--quiet" => c.quiet = true,
        "--threads" => c.threads = t.num(flag, inline.take())?,
        "--pid" => c.pid = Some(t.num(flag, inline.take())?),
        "--tls-ca" => c.tls_trust = TlsTrust::CaFile(t.value(flag, inline.take())?.into()),
        "--insecure" => c.tls_trust = TlsTrust::Insecure,
        _ => return Ok(false),
    }
    Ok(true)
}

pub fn parse(args: &[String]) -> Result<Command, String> {
    let Some((scenario, rest)) = args.split_first() else {
        return Ok(Command::Help);
    };
    match scenario.as_str() {
        "-h" | "--help" | "help" => Ok(Command::Help),
        "throughput" => parse_throughput(rest).map(|(c, t)| Command::Throughput(c, t)),
        "latency" => parse_throughput(rest).map(|(c, mut t)| {
            t.measure_latency = true;
            Command::Latency(c, t)
        }),
        "compare" => parse_compare(rest),
        "sink" => parse_server(rest).map(Command::Sink),
        "source" => parse_server(rest).map(Command::Source),
        s if OPS_SCENARIOS.contains(&s) => parse_ops(rest).map(|(c, o)| Command::Ops(s.to_string(), c, o)),
        s => Err(format!("unknown scenario {s:?}; try --help")),
    }
}

fn parse_throughput(args: &[String]) -> Result<(Common, Throughput), String> {
    let mut c = Common::default();
    let mut o = Throughput::default();
    let mut t = Tokens { args, i: 0 };
    let (mut pattern, mut from, mut to) = (None, 1u32, 1u32);
    while let Some(next) = t.next_flag() {
        let (flag, mut inline) = next?;
        if common_flag(&mut c, &flag, &mut inline, &mut t)? {
            continue;
        }
        let f = flag.as_str();
        match f {
            "-x" | "--publishers" => o.publishers = t.num(f, inline)?,
            "-y" | "--consumers" => o.consumers = t.num(f, inline)?,
            "-s" | "--size" => o.size = t.num(f, inline)?,
            "-z" | "--time" => o.duration = Some(t.secs(f, inline)?),
            "-C" | "--pmessages" => o.pmessages = t.num(f, inline)?,
            "-D" | "--cmessages" => o.cmessages = t.num(f, inline)?,
            "-r" | "--rate" => o.rate = t.num(f, inline)?,
            "-p" | "--persistent" => o.persistent = true,
            "-c" | "--confirm" => o.confirm = t.num(f, inline)?,
            "-a" | "--ack" => o.ack = t.num(f, inline)?,
            "-P" | "--prefetch" => o.prefetch = Some(t.num(f, inline)?),
            "-g" | "--get" | "--poll" => o.get = true,
            "-t" | "--tx" | "--transaction" => o.tx_publish = t.num(f, inline)?,
            "-T" | "--tx-acks" => o.tx_ack = t.num(f, inline)?,
            "-e" | "--exchange" => o.exchange = t.value(f, inline)?,
            "--exchange-type" => o.exchange_type = t.value(f, inline)?,
            "-u" | "--queue" => o.queue = t.value(f, inline)?,
            "-k" | "--routing-key" => o.routing_key = Some(t.value(f, inline)?),
            "--queue-args" => o.queue_args = json_table(&t.value(f, inline)?)?,
            "--consumer-args" => o.consumer_args = json_table(&t.value(f, inline)?)?,
            "--queue-pattern" => pattern = Some(t.value(f, inline)?),
            "--queue-pattern-from" => from = t.num(f, inline)?,
            "--queue-pattern-to" => to = t.num(f, inline)?,
            "-l" | "--measure-latency" => o.measure_latency = true,
            "--prefill" => o.prefill = t.num(f, inline)?,
            "--keep-queues" => o.keep_queues = true,
            "--rates" => o.rates = num_list(&t.value(f, inline)?)?,
            _ if crate::streams::flag(&mut o, f, || t.value(f, inline.clone()))? => {}
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if let Some(p) = pattern {
        if !p.contains("%d") {
            return Err("--queue-pattern must contain %d".into());
        }
        if from > to {
            return Err("--queue-pattern-from is above --queue-pattern-to".into());
        }
        o.queue_pattern = Some((p, from, to));
    }
    if o.publishers == 0 && o.consumers == 0 && o.prefill == 0 {
        return Err("nothing to do: no publishers, no consumers".into());
    }
    if o.size > 256 * 1024 * 1024 {
        return Err("--size above 256 MiB".into());
    }
    crate::streams::finish(&mut o)?;
    Ok((c.finish()?, o))
}

fn parse_ops(args: &[String]) -> Result<(Common, Ops), String> {
    let mut c = Common::default();
    let mut o = Ops::default();
    let mut t = Tokens { args, i: 0 };
    while let Some(next) = t.next_flag() {
        let (flag, mut inline) = next?;
        if common_flag(&mut c, &flag, &mut inline, &mut t)? {
            continue;
        }
        let f = flag.as_str();
        match f {
            "-x" | "--count" => o.count = t.num(f, inline)?,
            "-c" | "--channels" => o.channels = t.num(f, inline)?,
            "-z" | "--time" => o.duration = t.secs(f, inline)?,
            "-u" | "--queue" => o.queue = t.value(f, inline)?,
            "--hold" => o.hold = t.secs(f, inline)?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok((c.finish()?, o))
}

fn parse_compare(args: &[String]) -> Result<Command, String> {
    let split = args
        .iter()
        .position(|a| a == "--")
        .ok_or("compare: give the scenario after --")?;
    let (own, scenario) = (&args[..split], &args[split + 1..]);
    let mut c = Common::default();
    let mut o = Compare {
        rounds: 3,
        scenario: scenario.to_vec(),
        ..Default::default()
    };
    let mut t = Tokens { args: own, i: 0 };
    while let Some(next) = t.next_flag() {
        let (flag, inline) = next?;
        let f = flag.as_str();
        match f {
            "--uri" => {
                let u = t.value(f, inline)?;
                Uri::parse(&u)?;
                o.uris.push(u)
            }
            "--name" => o.names.push(t.value(f, inline)?),
            "--pid" => o.pids.push(t.num(f, inline)?),
            "--rounds" => o.rounds = t.num(f, inline)?,
            "--row" => o.row = Some(t.value(f, inline)?),
            "--against-last" => o.against_last = true,
            "-j" | "--json" => c.json = true,
            "-q" | "--quiet" => c.quiet = true,
            _ => return Err(format!("unknown compare option {flag}")),
        }
    }
    if o.uris.is_empty() {
        return Err("compare: give at least one --uri".into());
    }
    if !o.names.is_empty() && o.names.len() != o.uris.len() {
        return Err("compare: give one --name per --uri".into());
    }
    if !o.pids.is_empty() && o.pids.len() != o.uris.len() {
        return Err("compare: give one --pid per --uri (0 for unknown)".into());
    }
    if o.rounds == 0 {
        return Err("compare: --rounds must be at least 1".into());
    }
    match o.scenario.first().map(String::as_str) {
        Some("throughput" | "latency") => {}
        Some(s) if OPS_SCENARIOS.contains(&s) => {}
        _ => return Err("compare: the scenario after -- must be throughput, latency or an ops scenario".into()),
    }
    Ok(Command::Compare(c, o))
}

fn parse_server(args: &[String]) -> Result<Server, String> {
    let mut o = Server {
        bind: "127.0.0.1".into(),
        port: 5690,
        size: 16,
    };
    let mut t = Tokens { args, i: 0 };
    while let Some(next) = t.next_flag() {
        let (flag, inline) = next?;
        let f = flag.as_str();
        match f {
            "-b" | "--bind" => o.bind = t.value(f, inline)?,
            "--port" => o.port = t.num(f, inline)?,
            "-s" | "--size" => o.size = t.num(f, inline)?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(o)
}

fn num_list(s: &str) -> Result<Vec<u64>, String> {
    s.split(',')
        .map(|x| x.trim().parse().map_err(|_| format!("{x:?} is not a number")))
        .collect()
}

/// A JSON object as encoded AMQP field-table entries: strings become long
/// strings, integers signed 64-bit, as RabbitMQ's clients send them.
pub fn json_table(s: &str) -> Result<Vec<u8>, String> {
    let v: serde_json::Value = serde_json::from_str(s).map_err(|e| format!("bad JSON {s:?}: {e}"))?;
    let serde_json::Value::Object(map) = v else {
        return Err(format!("{s:?} is not a JSON object"));
    };
    Ok(json_object(&map)?.to_bytes())
}

fn json_object(map: &serde_json::Map<String, serde_json::Value>) -> Result<FieldTable, String> {
    let mut t = FieldTable::new();
    for (k, v) in map {
        let k = ringmq_codec::ShortStr::new(k).map_err(|e| e.text(&format!("argument name {k:?}")))?;
        t.insert(k, json_value(v)?);
    }
    Ok(t)
}

fn json_value(v: &serde_json::Value) -> Result<FieldValue, String> {
    use serde_json::Value as J;
    Ok(match v {
        J::Null => FieldValue::Void,
        J::Bool(b) => FieldValue::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => FieldValue::I64(i),
            None => FieldValue::F64(n.as_f64().ok_or("number out of range")?),
        },
        J::String(s) => FieldValue::LongString(s.as_bytes().to_vec()),
        J::Array(a) => FieldValue::Array(a.iter().map(json_value).collect::<Result<_, _>>()?),
        J::Object(m) => FieldValue::Table(json_object(m)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringmq_codec::{FieldValueRef, Table};

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn throughput_flags() {
        let cmd = parse(&args(
            "throughput -x 3 --consumers=2 -s 1024 -z 10 -C 500 -r 100 -p -c 1000 -a 50 -P 200 \
             -e ex --exchange-type fanout -u q1 -k rk --uri amqp://u:p@h:5673/v -j --threads 2",
        ))
        .unwrap();
        let Command::Throughput(c, t) = cmd else {
            panic!("{cmd:?}")
        };
        assert_eq!((t.publishers, t.consumers, t.size), (3, 2, 1024));
        assert_eq!(t.duration, Some(Duration::from_secs(10)));
        assert_eq!((t.pmessages, t.rate, t.confirm, t.ack), (500, 100, 1000, 50));
        assert_eq!(t.prefetch, Some(200));
        assert!(t.persistent && !t.get);
        assert_eq!((t.exchange.as_str(), t.exchange_type.as_str()), ("ex", "fanout"));
        assert_eq!(t.queue_names(), vec!["q1"]);
        assert_eq!(t.routing_key_for("q1"), "rk");
        assert_eq!(
            (c.uri.host.as_str(), c.uri.port, c.uri.vhost.as_str()),
            ("h", 5673, "v")
        );
        assert!(c.json);
        assert_eq!(c.threads, 2);
    }

    #[test]
    fn defaults_and_patterns() {
        let Command::Throughput(c, t) = parse(&args("throughput")).unwrap() else {
            panic!()
        };
        assert_eq!(c, Common::default());
        assert_eq!(t, Throughput::default());
        assert_eq!(t.routing_key_for("perf-test"), "perf-test");
        let Command::Throughput(_, t) = parse(&args(
            "throughput --queue-pattern q-%d --queue-pattern-from 1 --queue-pattern-to 3",
        ))
        .unwrap() else {
            panic!()
        };
        assert_eq!(t.queue_names(), vec!["q-1", "q-2", "q-3"]);
        assert!(parse(&args("throughput --queue-pattern q")).is_err());
        assert!(parse(&args(
            "throughput --queue-pattern q%d --queue-pattern-from 3 --queue-pattern-to 1"
        ))
        .is_err());
    }

    #[test]
    fn errors_are_reported() {
        assert!(parse(&args("throughput -x")).unwrap_err().contains("needs a value"));
        assert!(parse(&args("throughput -x abc"))
            .unwrap_err()
            .contains("not a valid number"));
        assert!(parse(&args("throughput --bogus"))
            .unwrap_err()
            .contains("unknown option"));
        assert!(parse(&args("throughput stray")).is_err());
        assert!(parse(&args("nope")).is_err());
        assert!(parse(&args("throughput -x 0 -y 0")).is_err());
        assert_eq!(parse(&[]).unwrap(), Command::Help);
    }

    #[test]
    fn amqps_takes_its_trust_from_the_flags_in_any_order() {
        let Command::Throughput(c, _) = parse(&args("throughput --uri amqps://h/ --tls-ca /ca.pem")).unwrap() else {
            panic!()
        };
        assert_eq!(c.uri.tls, Some(TlsTrust::CaFile("/ca.pem".into())));
        let Command::Ops(_, c, _) = parse(&args("connection-churn --insecure --uri amqps://h:1/")).unwrap() else {
            panic!()
        };
        assert_eq!((c.uri.port, c.uri.tls), (1, Some(TlsTrust::Insecure)));
        let e = parse(&args("throughput --uri amqps://h/")).unwrap_err();
        assert!(e.contains("--tls-ca"), "{e}");
        // A plain URI ignores them.
        let Command::Throughput(c, _) = parse(&args("throughput --uri amqp://h/ --insecure")).unwrap() else {
            panic!()
        };
        assert_eq!(c.uri.tls, None);
    }

    #[test]
    fn latency_and_ops_and_servers() {
        let Command::Latency(_, t) = parse(&args("latency --rates 10,20 -z 2")).unwrap() else {
            panic!()
        };
        assert!(t.measure_latency);
        assert_eq!(t.rates, vec![10, 20]);
        let Command::Ops(name, c, o) = parse(&args("connection-count -x 50 -c 4 --pid 42")).unwrap() else {
            panic!()
        };
        assert_eq!(
            (name.as_str(), o.count, o.channels, c.pid),
            ("connection-count", 50, 4, Some(42))
        );
        let Command::Sink(s) = parse(&args("sink --port 6000 -b 0.0.0.0")).unwrap() else {
            panic!()
        };
        assert_eq!((s.bind.as_str(), s.port), ("0.0.0.0", 6000));
    }

    #[test]
    fn compare_splits_at_double_dash() {
        let cmd = parse(&args(
            "compare --uri amqp://a --uri amqp://b --name x --name y --rounds 5 -- throughput -z 3",
        ))
        .unwrap();
        let Command::Compare(_, o) = cmd else { panic!() };
        assert_eq!(o.uris, vec!["amqp://a", "amqp://b"]);
        assert_eq!(o.rounds, 5);
        assert_eq!(o.scenario, args("throughput -z 3"));
        assert!(parse(&args("compare --uri amqp://a throughput")).is_err());
        assert!(parse(&args("compare -- throughput")).is_err());
        assert!(parse(&args("compare --uri amqp://a --name x --name y -- throughput")).is_err());
    }

    #[test]
    fn json_arguments_become_tables() {
        let bytes = json_table(r#"{"x-max-length": 10, "x-queue-type": "classic", "x-f": true}"#).unwrap();
        let t = Table::parse(&bytes).unwrap();
        assert_eq!(t.get("x-max-length"), Some(FieldValueRef::I64(10)));
        assert_eq!(t.get("x-queue-type"), Some(FieldValueRef::LongString(b"classic")));
        assert_eq!(t.get("x-f"), Some(FieldValueRef::Bool(true)));
        assert!(json_table("[1]").is_err());
        assert!(json_table("{").is_err());
    }
}
