//! The Prometheus text format (0.0.4): a `# HELP`/`# TYPE` header once per family,
//! then its samples. Every family name gets the scrape's prefix: RabbitMQ's
//! `rabbitmq` unless the request asks for another (`?prefix=`, as LavinMQ).

use std::fmt::Write;

use super::ApiError;

/// The longest prefix accepted (Prometheus allows more; nobody needs it).
pub(crate) const PREFIX_BYTES_MAX: usize = 64;

#[derive(Debug)]
pub(crate) struct Prom {
    prefix: String,
    pub out: String,
}

impl Prom {
    /// `prefix` must be a metric name start: `[a-zA-Z_][a-zA-Z0-9_]*`, at most
    /// [`PREFIX_BYTES_MAX`] bytes (else 400: it is written into every name).
    pub fn new(prefix: &str) -> Result<Prom, ApiError> {
        let mut chars = prefix.chars();
        let starts = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        let rest = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !starts || !rest || prefix.len() > PREFIX_BYTES_MAX {
            return Err(ApiError::bad_request(format!(
                "prefix must match [a-zA-Z_][a-zA-Z0-9_]* and be at most {PREFIX_BYTES_MAX} bytes"
            )));
        }
        Ok(Prom {
            prefix: prefix.to_owned(),
            out: String::new(),
        })
    }

    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let p = &self.prefix;
        let _ = writeln!(self.out, "# HELP {p}_{name} {help}");
        let _ = writeln!(self.out, "# TYPE {p}_{name} {kind}");
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.sample_key(name, labels);
        write_value(&mut self.out, value);
    }

    fn sample_key(&mut self, name: &str, labels: &[(&str, &str)]) {
        let _ = write!(self.out, "{}_{name}", self.prefix);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// A family with one labelled sample.
    pub fn labelled(&mut self, name: &str, kind: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        self.family(name, kind, help);
        self.sample(name, labels, value);
    }
}

/// ` value` and the line's end.
fn write_value(out: &mut String, value: f64) {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        let _ = writeln!(out, " {}", value as i64);
    } else {
        let _ = writeln!(out, " {value}");
    }
}

/// One family of a scrape's text: its `# HELP`/`# TYPE` lines and its
/// samples (the name with its labels, and the value).
struct Family<'a> {
    header: Vec<&'a str>,
    samples: Vec<(&'a str, f64)>,
}

/// The families of a text this module wrote, by name, in order.
fn parse(text: &str) -> Vec<(&str, Family<'_>)> {
    let mut out: Vec<(&str, Family<'_>)> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            out.push((
                name,
                Family {
                    header: vec![line],
                    samples: Vec::new(),
                },
            ));
        } else if line.starts_with('#') {
            if let Some((_, f)) = out.last_mut() {
                f.header.push(line);
            }
        } else if let Some((key, value)) = line.rsplit_once(' ') {
            if let (Some((_, f)), Ok(v)) = (out.last_mut(), value.parse::<f64>()) {
                f.samples.push((key, v));
            }
        }
    }
    out
}

/// The scrape of every shard: the first text's families with the others'
/// samples added in (the same name and labels: the values summed; new ones
/// appended to their family), and the families only the others have after.
pub(crate) fn merge(texts: Vec<String>) -> String {
    let mut texts = texts.iter();
    let Some(first) = texts.next() else {
        return String::new();
    };
    let mut all = parse(first);
    for text in texts {
        for (name, theirs) in parse(text) {
            match all.iter_mut().find(|(n, _)| *n == name) {
                Some((_, mine)) => {
                    for (key, v) in theirs.samples {
                        match mine.samples.iter_mut().find(|(k, _)| *k == key) {
                            Some((_, sum)) => *sum += v,
                            None => mine.samples.push((key, v)),
                        }
                    }
                }
                None => all.push((name, theirs)),
            }
        }
    }
    let mut out = String::with_capacity(first.len());
    for (_, f) in all {
        for h in f.header {
            out.push_str(h);
            out.push('\n');
        }
        for (key, v) in f.samples {
            out.push_str(key);
            write_value(&mut out, v);
        }
    }
    out
}

/// Label values escape `\`, `"` and newlines.
pub(crate) fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn shards_scrapes_add_up_sample_by_sample() {
        let mut a = super::Prom::new("r").unwrap();
        a.single("up", "gauge", "Up", 1.0);
        a.family("queue_messages", "gauge", "Depth");
        a.sample("queue_messages", &[("queue", "q1")], 3.0);
        a.single("total", "counter", "Total", 2.5);
        let mut b = super::Prom::new("r").unwrap();
        b.family("queue_messages", "gauge", "Depth");
        b.sample("queue_messages", &[("queue", "q1")], 4.0);
        b.sample("queue_messages", &[("queue", "q2")], 5.0);
        b.single("total", "counter", "Total", 1.0);
        b.single("only_b", "gauge", "B", 7.0);
        let merged = super::merge(vec![a.out, b.out]);
        assert_eq!(
            merged,
            "# HELP r_up Up\n# TYPE r_up gauge\nr_up 1\n\
             # HELP r_queue_messages Depth\n# TYPE r_queue_messages gauge\n\
             r_queue_messages{queue=\"q1\"} 7\nr_queue_messages{queue=\"q2\"} 5\n\
             # HELP r_total Total\n# TYPE r_total counter\nr_total 3.5\n\
             # HELP r_only_b B\n# TYPE r_only_b gauge\nr_only_b 7\n"
        );
    }

    use super::*;

    #[test]
    fn text_format() {
        let mut p = Prom::new("rabbitmq").unwrap();
        p.single("queues", "gauge", "Queues", 3.0);
        p.family("detailed_queue_messages", "gauge", "Messages per queue");
        p.sample(
            "detailed_queue_messages",
            &[("vhost", "/"), ("queue", "a\"b\\c\nd")],
            7.0,
        );
        p.sample("detailed_queue_messages", &[("vhost", "/"), ("queue", "r")], 0.25);
        assert_eq!(
            p.out,
            "# HELP rabbitmq_queues Queues\n# TYPE rabbitmq_queues gauge\nrabbitmq_queues 3\n\
             # HELP rabbitmq_detailed_queue_messages Messages per queue\n\
             # TYPE rabbitmq_detailed_queue_messages gauge\n\
             rabbitmq_detailed_queue_messages{vhost=\"/\",queue=\"a\\\"b\\\\c\\nd\"} 7\n\
             rabbitmq_detailed_queue_messages{vhost=\"/\",queue=\"r\"} 0.25\n"
        );
    }

    #[test]
    fn prefixes_are_metric_names() {
        assert!(Prom::new("ringmq").is_ok());
        assert!(Prom::new("_x9").is_ok());
        for bad in ["", "9a", "a-b", "a b", "a{b", &"a".repeat(65)] {
            assert!(Prom::new(bad).is_err(), "{bad:?}");
        }
    }
}
