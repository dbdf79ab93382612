//! Command-line definitions (clap).

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub use crate::config::{DaemonArgs, LogFormat};
use crate::{
    config::parse_duration,
    output::OutputFormat,
    probe::{ContextProbe, VictimProbe},
};

#[derive(Debug, Parser)]
#[command(name = "oomtrace", version, about = "Explains every kernel OOM kill, from eBPF, as it happens")]
pub struct Cli {
    /// Log filter for stderr (tracing EnvFilter syntax), e.g. "debug" [default: info].
    #[arg(long, global = true, env = "OOMTRACE_LOG")]
    pub log: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print every OOM kill on this machine as it happens.
    Live(LiveArgs),
    /// Report what works on this node (BTF, tracefs, attach methods, cgroups, privileges).
    Check,
    /// Which container and pod is this process or cgroup in?
    Whois(WhoisArgs),
    /// Run as a node agent: Prometheus metrics, OpenTelemetry export, NDJSON on stdout.
    Daemon(DaemonArgs),
    /// Every OOM kill since boot, from the kernel log (or a saved log), as the same events as `live`.
    History(HistoryArgs),
    /// The node's OOM report: kills by workload with cause, findings and advice; memory now (docs/diagnose.md).
    Diagnose(DiagnoseArgs),
}

#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    #[command(flatten)]
    pub log: KernelLogArgs,
    /// Only kills after this: a duration ago ("24h", "30m") or a time ("2026-11-29 10:00:00", RFC 3339)
    /// [default: the whole log, i.e. since boot].
    #[arg(long, value_name = "DURATION|TIME")]
    pub since: Option<String>,
    /// Output format: a table for a terminal, JSON for a pipeline, Markdown for an incident ticket.
    #[arg(short, long, value_enum, default_value_t = crate::diagnose::ReportFormat::Table)]
    pub output: crate::diagnose::ReportFormat,
    #[command(flatten)]
    pub cri: CriArgs,
}

/// Which kernel log to read (as `history` does).
#[derive(Debug, Args)]
pub struct KernelLogArgs {
    /// Read a saved log instead of the kernel's: syslog, kern.log, messages, `dmesg` / `dmesg -T` output,
    /// `journalctl -k` (short, short-iso, short-precise, short-unix), or "-" for stdin.
    #[arg(long, value_name = "PATH|-", conflicts_with = "journal")]
    pub file: Option<std::path::PathBuf>,
    /// Read the systemd journal's kernel messages of this boot (keeps far more than the ring buffer).
    #[arg(long)]
    pub journal: bool,
}

impl KernelLogArgs {
    pub fn source(self) -> crate::history::LogSource {
        use crate::history::LogSource;
        match (self.file, self.journal) {
            (Some(path), _) => LogSource::File(path),
            (None, true) => LogSource::Journal,
            (None, false) => LogSource::Kernel,
        }
    }
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Read a saved log instead of the kernel's: syslog, kern.log, messages, `dmesg` / `dmesg -T` output,
    /// `journalctl -k` (short, short-iso, short-precise, short-unix), or "-" for stdin.
    #[arg(long, value_name = "PATH|-", conflicts_with = "journal")]
    pub file: Option<std::path::PathBuf>,
    /// Read the systemd journal's kernel messages of this boot (keeps far more than the ring buffer).
    #[arg(long)]
    pub journal: bool,
    /// Only kills after this: a duration ago ("1h", "30m") or a time ("2026-11-29 10:00:00", RFC 3339).
    #[arg(long, value_name = "DURATION|TIME")]
    pub since: Option<String>,
    /// Output format: a table for people, or NDJSON (docs/events.md).
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub cri: CriArgs,
}

/// Which victims are shown; every filter given must match.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Only victims whose cgroup path starts with this (whole components), e.g. /kubepods.
    #[arg(long, value_name = "PREFIX")]
    pub cgroup: Option<String>,
    /// Only victims with this command name.
    #[arg(long, value_name = "NAME")]
    pub comm: Option<String>,
    /// Only victims in pods of this namespace.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Only victims in this pod.
    #[arg(long)]
    pub pod: Option<String>,
    /// Only victims in containers of this name.
    #[arg(long)]
    pub container: Option<String>,
}

/// Where pod names come from.
#[derive(Debug, Args)]
pub struct CriArgs {
    /// CRI socket of the container runtime (default: containerd's, then CRI-O's).
    #[arg(long, value_name = "PATH", env = "OOMTRACE_CRI_SOCKET")]
    pub cri_socket: Option<std::path::PathBuf>,
    /// Longest wait for one CRI call, e.g. "250ms"; on timeout the event keeps what the cgroup path gives.
    #[arg(long, value_parser = parse_duration, default_value = "250ms")]
    pub cri_timeout: Duration,
}

#[derive(Debug, Args)]
pub struct WhoisArgs {
    /// PIDs or cgroup paths (relative to the hierarchy root, or under /sys/fs/cgroup).
    #[arg(required = true, value_name = "PID|CGROUP_PATH")]
    pub targets: Vec<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    #[command(flatten)]
    pub cri: CriArgs,
}

#[derive(Debug, Args)]
pub struct LiveArgs {
    /// Output format: a table for people, or NDJSON (docs/events.md).
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Exit after this many events.
    #[arg(long)]
    pub count: Option<u64>,
    /// Exit after this long, e.g. "30s", "5m".
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub cri: CriArgs,
    /// Program reporting victims.
    #[arg(long, value_enum, default_value_t = VictimProbe::Auto)]
    pub victim_probe: VictimProbe,
    /// Program reading the oom_control context (scope, totalpages, points, OOMing memcg).
    #[arg(long, value_enum, default_value_t = ContextProbe::Auto)]
    pub context_probe: ContextProbe,
    /// Kernel-to-user ring buffer size in KiB (power of two, at least one page);
    /// records that do not fit are counted as lost.
    #[arg(long, value_name = "KIB", default_value_t = crate::probe::DEFAULT_RING_BYTES / 1024)]
    pub ring_buffer_kib: u32,
    /// Do not attach signal/signal_generate (events then cannot say whether the kernel killed).
    #[arg(long)]
    pub no_kill_confirmation: bool,
    /// Do not read the kernel log (events then carry no `kernel_report`: memory.stat, largest tasks).
    #[arg(long)]
    pub no_kernel_log: bool,
}
