use std::process::ExitCode;

use ringmq_perf::args::{self, Command};
use ringmq_perf::{compare, latency, ops, server, throughput};

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let cmd = match args::parse(&argv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ringmqperf: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cmd {
        Command::Help => {
            print!("{}", args::USAGE);
            Ok(())
        }
        Command::Throughput(c, t) => throughput::run(&c, &t).map(|s| {
            if c.json {
                println!("{}", s.to_json("throughput"));
            } else {
                s.print_text();
            }
        }),
        Command::Latency(c, t) => latency::run(&c, &t),
        Command::Sink(s) => server::run(&s, false),
        Command::Source(s) => server::run(&s, true),
        Command::Ops(name, c, o) => ops::run(&name, &c, &o),
        Command::Compare(c, o) => compare::run(&c, &o),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringmqperf: {e}");
            ExitCode::FAILURE
        }
    }
}
