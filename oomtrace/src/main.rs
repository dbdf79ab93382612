//! The `oomtrace` binary: parses the flags, sets up logging and runs the command.

use std::process::ExitCode;

use clap::Parser as _;
use oomtrace::{
    cli::{Cli, Command, LogFormat},
    probe::EbpfLog,
};
use tracing_subscriber::EnvFilter;

/// `extra`: a directive added to `level` (the eBPF log's target, let through
/// at the level `--ebpf-log` asked for).
fn init_logging(level: &str, format: LogFormat, extra: Option<String>) {
    let mut filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    if let Some(directive) = extra.and_then(|d| d.parse().ok()) {
        filter = filter.add_directive(directive);
    }
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ebpf_log = match &cli.command {
        Command::Live(args) => args.ebpf_log.level(),
        Command::Check(args) => args.ebpf_log.level(),
        _ => EbpfLog::Off,
    };
    if !matches!(cli.command, Command::Daemon(_)) {
        init_logging(cli.log.as_deref().unwrap_or("info"), LogFormat::Text, ebpf_log.directive());
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
            init_logging(&config.log, config.log_format, None);
            oomtrace::output::stdout_pipe::widen();
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
        Command::Check(args) => {
            let report = oomtrace::check::run(args.ebpf_log.level());
            print!("{}", report.render());
            Ok(if report.can_trace() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Whois(args) => {
            let timeout = args.cri.report_timeout();
            let report = block_on(oomtrace::whois::run(&args.targets, args.cri.cri_socket, timeout))?;
            print!("{}", oomtrace::whois::render(&report, args.output)?);
            Ok(if report.iter().all(|r| r.error.is_none()) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Top(args) => {
            block_on(oomtrace::top::run(args.options()))??;
            Ok(ExitCode::SUCCESS)
        }
        Command::Live(args) => {
            let options = args.options()?;
            oomtrace::output::stdout_pipe::widen();
            block_on(oomtrace::live::run(options))??;
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
