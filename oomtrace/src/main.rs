//! The `oomtrace` binary: parses the flags, sets up logging and runs the command.

use std::process::ExitCode;

use clap::Parser as _;
use oomtrace::cli::{Cli, Command, LogFormat};
use tracing_subscriber::EnvFilter;

fn init_logging(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Daemon(_)) {
        init_logging(cli.log.as_deref().unwrap_or("info"), LogFormat::Text);
    }
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            // The chain can hold names from outside (a path, a runtime's answer).
            eprintln!("oomtrace: error: {}", oomtrace::escape::escape_controls(&format!("{error:#}")));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Daemon(args) => {
            let config = args.config(cli.log.as_deref())?;
            init_logging(&config.log, config.log_format);
            block_on(oomtrace::daemon::run(config))??;
            Ok(ExitCode::SUCCESS)
        }
        Command::History(args) => {
            block_on(oomtrace::history::run(args.options()?))??;
            Ok(ExitCode::SUCCESS)
        }
        Command::Diagnose(args) => {
            let (options, format) = args.options()?;
            block_on(oomtrace::diagnose::print(&options, format))??;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check => {
            let report = oomtrace::check::run();
            print!("{}", report.render());
            Ok(if report.can_trace() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Whois(args) => {
            let report = block_on(oomtrace::whois::run(&args.targets, args.cri.cri_socket, args.cri.cri_timeout))?;
            print!("{}", oomtrace::whois::render(&report, args.output)?);
            Ok(if report.iter().all(|r| r.error.is_none()) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Top(args) => {
            block_on(oomtrace::top::run(args.options()))??;
            Ok(ExitCode::SUCCESS)
        }
        Command::Live(args) => {
            block_on(oomtrace::live::run(args.options()?))??;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs a command's future on the single-threaded tokio runtime every
/// command uses (one OOM event at a time needs no more).
fn block_on<F: Future>(future: F) -> std::io::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    Ok(runtime.block_on(future))
}
