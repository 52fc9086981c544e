//! The `ringmqperf` command line: parses the arguments and runs one command.
//! The binary lives in the broker package (`src/bin/ringmqperf.rs`) so that
//! `cargo install --path .` installs it beside `ringmq` and `ringmqctl`.

use std::process::ExitCode;

use crate::args::{self, Command};
use crate::{compare, latency, ops, server, throughput};

/// Runs `ringmqperf` with `argv` (without the program name); the exit code is 0 on
/// success, 2 for a usage error, 1 when the run failed.
pub fn main(argv: &[String]) -> ExitCode {
    let cmd = match args::parse(argv) {
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
