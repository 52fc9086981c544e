//! `ringmqctl`: a command-line client for the management HTTP API of ringmq (and of
//! RabbitMQ, whose API ringmq copies), in the manner of rabbitmqctl, lavinmqctl and
//! rabbitmqadmin. It only speaks HTTP; it does not link the broker library.
#![forbid(unsafe_code)]

mod args;
mod client;
mod commands;
mod completion;
mod error;
mod lists;
mod ops;
mod ping;
mod spec;
mod table;
mod unix_http;

use std::fmt::Write as _;

use args::{CommandSpec, OptSpec, Parsed};
use error::{CtlError, EXIT_ERROR, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE};

fn main() {
    std::process::exit(real_main());
}

fn real_main() -> i32 {
    let parsed = match args::parse(std::env::args().skip(1)) {
        Ok(p) => p,
        Err(e) => return fail(&e, false),
    };
    let (result, json) = match parsed {
        Parsed::Help(command) => (commands::emit(&help(command)), false),
        Parsed::Version => (
            commands::emit(concat!("ringmqctl ", env!("CARGO_PKG_VERSION"), "\n")),
            false,
        ),
        Parsed::Run(inv) => (commands::run(&inv), inv.globals.json),
    };
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => fail(&e, json),
    }
}

/// Prints the error to stderr and gives the exit code. With `--json` an API error is
/// printed as the server's JSON body, for scripts that parse it.
fn fail(e: &CtlError, json: bool) -> i32 {
    match e {
        CtlError::Api { body, .. } if json && !body.is_empty() => eprintln!("{body}"),
        CtlError::Usage(_) => eprintln!("ringmqctl: {e}\n(`ringmqctl --help` for usage)"),
        _ => eprintln!("ringmqctl: {e}"),
    }
    e.exit_code()
}

fn options_help(out: &mut String, opts: &[&OptSpec]) {
    let label = |o: &OptSpec| {
        let short: String = o.shorts.iter().map(|c| format!("-{c}, ")).collect();
        let value = o.value.map(|v| format!(" {v}")).unwrap_or_default();
        format!("{short}--{}{value}", o.long)
    };
    let w = opts.iter().map(|o| label(o).len()).max().unwrap_or(0);
    for o in opts {
        let _ = writeln!(out, "  {:<w$}  {}", label(o), o.help);
    }
}

fn help(command: Option<&CommandSpec>) -> String {
    let mut out = String::new();
    let globals: Vec<&OptSpec> = args::GLOBAL_OPTS.iter().collect();
    match command {
        Some(c) => {
            let _ = writeln!(out, "usage: ringmqctl [OPTIONS] {} {}\n\n{}\n", c.name, c.args, c.about);
            if c.name == "list" {
                let _ = writeln!(out, "KIND: {}\n", lists::names().join(", "));
            }
            let own: Vec<&OptSpec> = args::COMMAND_OPTS.iter().filter(|o| c.opts.contains(&o.long)).collect();
            if !own.is_empty() {
                out.push_str("options:\n");
                options_help(&mut out, &own);
                out.push('\n');
            }
        }
        None => {
            out.push_str("usage: ringmqctl [OPTIONS] COMMAND [ARGS]\n\n");
            out.push_str("Manage a ringmq (or RabbitMQ) broker through its HTTP management API.\n\n");
            out.push_str("commands:\n");
            let label = |c: &CommandSpec| format!("{} {}", c.name, c.args).trim_end().to_string();
            let w = args::COMMANDS.iter().map(|c| label(c).len()).max().unwrap_or(0);
            for c in args::COMMANDS {
                let _ = writeln!(out, "  {:<w$}  {}", label(c), c.about);
            }
            let _ = writeln!(out, "\nlist KIND: {}", lists::names().join(", "));
            out.push_str(
                "  (rabbitmqctl's list_queues etc. work too, and the plugins' federation_status and shovel_status)\n",
            );
            out.push_str("`ringmqctl help COMMAND` or `ringmqctl COMMAND --help` shows a command's options.\n\n");
        }
    }
    out.push_str("global options (anywhere on the line; `--` ends options):\n");
    options_help(&mut out, &globals);
    let _ = write!(
        out,
        "\nconnection: --socket PATH, else --uri/--host/--port over TCP; with none of them, \
         the broker's control socket ({}, or ${}; the broker's --control-unix-path) when \
         it answers, else {}\n",
        args::DEFAULT_CONTROL_SOCKET,
        args::CONTROL_SOCKET_ENV,
        args::DEFAULT_URI
    );
    let _ = write!(
        out,
        "\nexit codes:\n  {EXIT_OK}   success\n  {EXIT_ERROR}   the API answered with an error \
         (printed to stderr), or a local file could not be read or written\n  {EXIT_USAGE}   \
         usage error: unknown command or option, wrong arguments, invalid JSON argument\n  \
         {EXIT_UNAVAILABLE}  the API could not be reached (connection refused, DNS, timeout)\n"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_every_command_and_the_exit_codes() {
        let text = help(None);
        for c in args::COMMANDS {
            assert!(text.contains(c.name), "{} missing from help", c.name);
        }
        assert!(text.contains("69"));
        let text = help(args::find_command("set_policy"));
        assert!(text.contains("--apply-to"));
        assert!(!text.contains("--durable"));
    }
}
