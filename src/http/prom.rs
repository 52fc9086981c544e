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
        if value.fract() == 0.0 && value.abs() < 1e15 {
            let _ = writeln!(self.out, " {}", value as i64);
        } else {
            let _ = writeln!(self.out, " {value}");
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

/// Label values escape `\`, `"` and newlines.
pub(crate) fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
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
