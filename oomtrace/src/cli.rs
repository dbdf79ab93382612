//! Command-line definitions (clap).

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::{
    probe::{ContextProbe, VictimProbe},
    sink::OutputFormat,
};

#[derive(Debug, Parser)]
#[command(name = "oomtrace", version, about = "Explains every kernel OOM kill, from eBPF, as it happens")]
pub struct Cli {
    /// Log filter for stderr (tracing EnvFilter syntax), e.g. "debug".
    #[arg(long, global = true, env = "OOMTRACE_LOG", default_value = "info")]
    pub log: String,
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
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 30s, 5m, 1h)"))
}
