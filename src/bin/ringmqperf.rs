//! `ringmqperf`: the load generator and broker comparison tool (see `perf/README.md`).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    ringmq_perf::cli::main(&argv)
}
