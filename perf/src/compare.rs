//! `compare`: one scenario against several brokers in turn (A B A B … for
//! `--rounds`), then each metric's median per broker and its ratio to the first.
//!
//! Alternating rounds spread slow drift (page cache, thermal, neighbours on a
//! shared machine) over all brokers instead of charging it to whichever ran
//! last. Each run is this same binary as a child process with `--json`, so a
//! run cannot inherit another's threads, sockets or allocator state.

use std::collections::BTreeMap;
use std::process::Command as Process;

use serde_json::{json, Value};

use crate::args::{Common, Compare};
use crate::stats;

/// Metrics reported, in table order, when the runs produce them.
const METRICS: [&str; 13] = [
    "publish_rate",
    "consume_rate",
    "cpu_us_per_msg",
    "ops_per_s",
    "p50_us",
    "p90_us",
    "p99_us",
    "p99_9_us",
    "p99_99_us",
    "max_us",
    "rss_per_item",
    "rss_peak_mb",
    "rss_mb",
];

pub fn run(c: &Common, o: &Compare) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let names: Vec<String> = if o.names.is_empty() {
        o.uris.clone()
    } else {
        o.names.clone()
    };
    // samples[metric][broker] = values over rounds
    let mut samples: BTreeMap<&str, Vec<Vec<f64>>> = BTreeMap::new();
    for round in 0..o.rounds {
        for (b, uri) in o.uris.iter().enumerate() {
            let mut args = o.scenario.clone();
            args.extend(["--uri".to_string(), uri.clone(), "--json".to_string(), "-q".to_string()]);
            if let Some(&pid) = o.pids.get(b).filter(|&&p| p != 0) {
                args.extend(["--pid".to_string(), pid.to_string()]);
            }
            let out = Process::new(&exe)
                .args(&args)
                .output()
                .map_err(|e| format!("run {exe:?}: {e}"))?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            let last = stdout.lines().rev().find(|l| l.starts_with('{'));
            let Some(mut v) = last.and_then(|l| serde_json::from_str::<Value>(l).ok()) else {
                return Err(format!(
                    "{} round {}: no JSON result (exit {}): {}",
                    names[b],
                    round + 1,
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            };
            if let Some(&pid) = o.pids.get(b).filter(|&&p| p != 0) {
                if let Some(rss) = stats::rss_bytes(pid) {
                    v["rss_mb"] = json!(rss as f64 / (1024.0 * 1024.0));
                }
            }
            if !c.quiet {
                eprintln!("round {} {}: {}", round + 1, names[b], summary_of(&v));
            }
            for m in METRICS {
                if let Some(x) = v.get(m).and_then(Value::as_f64) {
                    let per = samples.entry(m).or_insert_with(|| vec![Vec::new(); o.uris.len()]);
                    per[b].push(x);
                }
            }
        }
    }
    let table = medians(&samples);
    print_table(c, o, &names, &table);
    Ok(())
}

/// Median per metric per broker, in [`METRICS`] order; skips metrics that are
/// all zero (a publish rate in a consume-only run).
fn medians(samples: &BTreeMap<&str, Vec<Vec<f64>>>) -> Vec<(&'static str, Vec<Option<f64>>)> {
    METRICS
        .iter()
        .filter_map(|&m| {
            let per = samples.get(m)?;
            let meds: Vec<Option<f64>> = per.iter().map(|v| stats::median(v)).collect();
            meds.iter().any(|x| x.is_some_and(|x| x != 0.0)).then_some((m, meds))
        })
        .collect()
}

/// `b / a` as a ratio string, or "-" when undefined.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if a != 0.0 => format!("{:.2}", b / a),
        _ => "-".into(),
    }
}

/// The (numerator, denominator) broker indices of the ratio columns: each
/// later broker over the first, or (`--against-last`) the last over each
/// earlier one, so the broker under test can be named last beside several peers.
fn ratio_pairs(brokers: usize, against_last: bool) -> Vec<(usize, usize)> {
    if against_last {
        let last = brokers.saturating_sub(1);
        (0..last).map(|den| (last, den)).collect()
    } else {
        (1..brokers).map(|num| (num, 0)).collect()
    }
}

fn fmt_value(x: Option<f64>) -> String {
    match x {
        Some(x) if x.abs() >= 100.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.1}"),
        None => "-".into(),
    }
}

fn print_table(c: &Common, o: &Compare, names: &[String], table: &[(&str, Vec<Option<f64>>)]) {
    if c.json {
        let mut v = json!({ "brokers": names, "rounds": o.rounds });
        for (m, meds) in table {
            v[*m] = json!(meds);
        }
        println!("{v}");
        return;
    }
    let label = o.row.clone();
    let mut header = String::from("|");
    if label.is_some() {
        header.push_str(" scenario |");
    }
    header.push_str(" metric |");
    for n in names {
        header.push_str(&format!(" {n} |"));
    }
    for (num, den) in ratio_pairs(names.len(), o.against_last) {
        header.push_str(&format!(" {}/{} |", names[num], names[den]));
    }
    // With --row the caller (benches/compare.sh) prints one header for all scenarios.
    if label.is_none() {
        println!("{header}");
        println!(
            "{}",
            header.split('|').skip(1).map(|_| "|").collect::<Vec<_>>().join("---")
        );
    }
    for (m, meds) in table {
        let mut row = String::from("|");
        if let Some(l) = &label {
            row.push_str(&format!(" {l} |"));
        }
        row.push_str(&format!(" {m} |"));
        for x in meds {
            row.push_str(&format!(" {} |", fmt_value(*x)));
        }
        for (num, den) in ratio_pairs(meds.len(), o.against_last) {
            row.push_str(&format!(" {} |", ratio(meds[den], meds[num])));
        }
        println!("{row}");
    }
}

fn summary_of(v: &Value) -> String {
    METRICS
        .iter()
        .filter_map(|m| v.get(*m).and_then(Value::as_f64).map(|x| format!("{m}={x:.0}")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ratios() {
        let mut s: BTreeMap<&str, Vec<Vec<f64>>> = BTreeMap::new();
        s.insert("publish_rate", vec![vec![100.0, 300.0, 200.0], vec![50.0, 70.0]]);
        s.insert("consume_rate", vec![vec![0.0], vec![0.0]]);
        let t = medians(&s);
        assert_eq!(t, vec![("publish_rate", vec![Some(200.0), Some(60.0)])]);
        assert_eq!(ratio(Some(200.0), Some(60.0)), "0.30");
        assert_eq!(ratio(Some(0.0), Some(60.0)), "-");
        assert_eq!(ratio(None, Some(1.0)), "-");
    }

    #[test]
    fn ratio_columns_against_the_first_or_the_last() {
        assert_eq!(ratio_pairs(3, false), vec![(1, 0), (2, 0)]);
        assert_eq!(ratio_pairs(3, true), vec![(2, 0), (2, 1)]);
        // Two brokers: both ways give last/first.
        assert_eq!(ratio_pairs(2, true), ratio_pairs(2, false));
        assert!(ratio_pairs(1, true).is_empty() && ratio_pairs(1, false).is_empty());
    }
}
