//! Developer tasks for oomtrace, never needed by users.
//!
//! `cargo xtask bench`: measure oomtrace on real OOM kills and compare it with
//! bpftrace in the same run (see `bench.rs`).

mod bench;
mod cgroup;
mod procfs;
mod report;
mod tracer;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "Developer tasks for oomtrace")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Benchmark `oomtrace live` on real memcg OOM kills (needs root) and
    /// write the report to docs/benchmarks.md.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(args) => bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
