//! `latency`: publish-to-delivery latency at fixed rates, so it is measured
//! below saturation too (at saturation latency is just queueing delay).
//!
//! Each rate is one throughput run with timestamps in the first 8 body bytes;
//! the publishers share the rate evenly.

use serde_json::json;

use crate::args::{Common, Throughput};
use crate::stats;
use crate::throughput;

pub fn run(c: &Common, o: &Throughput) -> Result<(), String> {
    let mut results = Vec::new();
    for &rate in &o.rates {
        let mut t = o.clone();
        t.measure_latency = true;
        t.size = t.size.max(8);
        t.publishers = t.publishers.max(1);
        t.rate = (rate / t.publishers as u64).max(1);
        if t.duration.is_none() && t.pmessages == 0 {
            t.duration = Some(std::time::Duration::from_secs(10));
        }
        let quiet = Common {
            quiet: true,
            ..c.clone()
        };
        let s = throughput::run(&quiet, &t)?;
        let h = s.latency.clone().unwrap_or_else(stats::new_histogram);
        if !c.json {
            println!(
                "rate {rate} msgs/s (achieved {:.0}/s): {}",
                s.consume_rate(),
                throughput::latency_line(&h)
            );
        }
        let mut v =
            json!({ "rate": rate, "publish_rate": s.publish_rate().round(), "consume_rate": s.consume_rate().round() });
        for (name, us) in stats::percentiles(&h) {
            v[format!("{name}_us")] = json!(us);
        }
        results.push(v);
    }
    if c.json {
        // One rate: flat fields, which is what `compare` reads.
        let out = if results.len() == 1 {
            let mut v = results.pop().expect("one result");
            v["scenario"] = json!("latency");
            v
        } else {
            json!({ "scenario": "latency", "results": results })
        };
        println!("{out}");
    }
    Ok(())
}
