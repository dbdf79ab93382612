use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use oomtrace::{
    cli::{Cli, Command, LogFormat},
    history::{HistoryOptions, LogSource},
    join::side::KernelLogMode,
    live::{self, EventFilter, LiveOptions},
    output::OutputFormat,
    pipeline::PipelineOptions,
    probe::AttachPlan,
};
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
            eprintln!("oomtrace: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Daemon(args) => {
            let config = oomtrace::config::resolve(&args, cli.log.as_deref())?;
            init_logging(&config.log, config.log_format);
            block_on(oomtrace::daemon::run(config))??;
            Ok(ExitCode::SUCCESS)
        }
        Command::History(args) => {
            let source = match (args.file, args.journal) {
                (Some(path), _) => LogSource::File(path),
                (None, true) => LogSource::Journal,
                (None, false) => LogSource::Kernel,
            };
            let since = args
                .since
                .as_deref()
                .map(|text| oomtrace::history::since::parse(text, std::time::SystemTime::now()))
                .transpose()?;
            let output = args.output;
            let options = HistoryOptions {
                source,
                since,
                output,
                filter: EventFilter::from(args.filter),
                cri_socket: args.cri.cri_socket,
                cri_timeout: args.cri.cri_timeout,
            };
            let summary = block_on(oomtrace::history::run(options))??;
            let closing = oomtrace::history::reconciliation(&summary);
            // After a table, for the person reading it; after NDJSON, on stderr,
            // so that stdout stays one event per line.
            match output {
                OutputFormat::Table => println!("{closing}"),
                OutputFormat::Json => eprintln!("{closing}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Diagnose(args) => {
            let since = args
                .since
                .as_deref()
                .map(|text| oomtrace::history::since::parse(text, std::time::SystemTime::now()))
                .transpose()?;
            let options = oomtrace::diagnose::DiagnoseOptions {
                source: args.log.source(),
                since,
                cri_socket: args.cri.cri_socket,
                cri_timeout: args.cri.cri_timeout,
            };
            let report = block_on(oomtrace::diagnose::run(&options))??;
            let text = oomtrace::diagnose::render::render(&report, args.output);
            let mut out = std::io::stdout().lock();
            match std::io::Write::write_all(&mut out, text.as_bytes()).and_then(|()| std::io::Write::flush(&mut out)) {
                Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
                    return Err(error).context("writing the report to stdout");
                }
                _ => {}
            }
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
        Command::Live(args) => {
            let ring_bytes = oomtrace::probe::ring_bytes(args.ring_buffer_kib, oomtrace::kernel::page_size())
                .map_err(|e| anyhow::anyhow!("--ring-buffer-kib: {e}"))?;
            let options = LiveOptions {
                output: args.output,
                count: args.count,
                duration: args.duration,
                filter: EventFilter::from(args.filter),
                pipeline: PipelineOptions {
                    plan: AttachPlan {
                        victim: args.victim_probe,
                        context: args.context_probe,
                        confirm_kills: !args.no_kill_confirmation,
                    },
                    ring_bytes,
                    cri_socket: args.cri.cri_socket,
                    cri_timeout: args.cri.cri_timeout,
                    node_name: None,
                    kernel_log: if args.no_kernel_log { KernelLogMode::Off } else { KernelLogMode::Join },
                },
            };
            block_on(live::run(options))??;
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
