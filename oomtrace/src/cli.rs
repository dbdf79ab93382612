//! Command-line definitions (clap), and each command's options built from its flags.

use std::{
    path::PathBuf,
    time::{Duration, SystemTime},
};

use clap::{Args, Parser, Subcommand};

pub use crate::config::LogFormat;
use crate::{
    config::{
        ConfigError, DEFAULT_CRI_TIMEOUT, DEFAULT_MAX_LABEL_SERIES, DEFAULT_METRICS_ADDRESS, DEFAULT_OTLP_QUEUE,
        DEFAULT_STATE_DIR, DaemonConfig, FileConfig, REPORT_CRI_TIMEOUT, WarnSettings, load_file, parse_size,
    },
    diagnose::{DiagnoseOptions, ReportFormat},
    filter::{
        EventFilter,
        since::{self, SinceError},
    },
    history::HistoryOptions,
    kernel,
    klog::{join::side::KernelLogMode, read::LogSource},
    live::LiveOptions,
    output::OutputFormat,
    pipeline::{PipelineOptions, WarnOptions},
    probe::{self, AttachPlan, ContextProbe, EbpfLog, RingSizeError, VictimProbe},
    top::TopOptions,
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
    Check(CheckArgs),
    /// Which container and pod is this process or cgroup in?
    Whois(WhoisArgs),
    /// Run as a node agent: Prometheus metrics, OpenTelemetry export, NDJSON on stdout.
    Daemon(DaemonArgs),
    /// Every OOM kill since boot, from the kernel log (or a saved log), as the same events as `live`.
    History(HistoryArgs),
    /// The node's OOM report: kills by workload with cause, findings and advice; memory now (docs/diagnose.md).
    Diagnose(DiagnoseArgs),
    /// The node's memory cgroups ranked by time to OOM (docs/warnings.md).
    Top(TopArgs),
}

/// When warnings are made (live, daemon, top).
#[derive(Clone, Debug, Default, Args)]
pub struct WarnArgs {
    /// Warn when a cgroup's time to OOM falls under this, e.g. "5m" [default: 5m].
    #[arg(long, value_parser = parse_duration, env = "OOMTRACE_WARN_WITHIN")]
    pub warn_within: Option<Duration>,
    /// The kubelet's hard eviction threshold on memory.available, e.g. "750Mi" (AKS); node-level warnings
    /// are measured against it; "0": none [default: 100Mi, the kubelet's default].
    #[arg(long, value_parser = parse_size, env = "OOMTRACE_EVICTION_HARD")]
    pub eviction_hard: Option<u64>,
}

impl WarnArgs {
    /// Flags over `file`'s keys over the defaults.
    fn settings(&self, within: Option<Duration>, eviction_hard: Option<u64>) -> WarnSettings {
        let defaults = WarnSettings::default();
        WarnSettings {
            within: self.warn_within.or(within).unwrap_or(defaults.within),
            eviction_hard_bytes: self.eviction_hard.or(eviction_hard).unwrap_or(defaults.eviction_hard_bytes),
        }
    }
}

#[derive(Debug, Args)]
pub struct TopArgs {
    /// Output format: a table for people, or JSON (one array of outlooks).
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Print once, after watching for `--sample`, and exit.
    #[arg(long)]
    pub once: bool,
    /// How long to watch before the first ranking (the trend needs a few seconds).
    #[arg(long, value_parser = parse_duration, default_value = "3s")]
    pub sample: Duration,
    /// Refresh interval.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub interval: Duration,
    /// Rows shown (the soonest limits first).
    #[arg(long, default_value_t = 20)]
    pub rows: usize,
    /// Only cgroups under this path (relative to the hierarchy root), e.g. "/kubepods.slice"; hides the node's row.
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<String>,
    #[command(flatten)]
    pub warn: WarnArgs,
    #[command(flatten)]
    pub cri: CriArgs,
}

impl TopArgs {
    pub fn options(self) -> TopOptions {
        TopOptions {
            output: self.output,
            once: self.once,
            sample: self.sample,
            interval: self.interval,
            rows: self.rows,
            cgroup_prefix: self.cgroup,
            warn: WarnOptions::from_settings(self.warn.settings(None, None)),
            cri_timeout: self.cri.report_timeout(),
            cri_socket: self.cri.cri_socket,
        }
    }
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
    #[arg(short, long, value_enum, default_value_t = ReportFormat::Table)]
    pub output: ReportFormat,
    #[command(flatten)]
    pub cri: CriArgs,
}

impl DiagnoseArgs {
    /// The options, and the format the report is printed in.
    pub fn options(self) -> Result<(DiagnoseOptions, ReportFormat), ArgsError> {
        let options = DiagnoseOptions {
            source: self.log.source(),
            since: parse_since(self.since.as_deref())?,
            cri_timeout: self.cri.report_timeout(),
            cri_socket: self.cri.cri_socket,
        };
        Ok((options, self.output))
    }
}

/// Which kernel log to read (`history`, `diagnose`).
#[derive(Debug, Args)]
pub struct KernelLogArgs {
    /// Read a saved log instead of the kernel's: syslog, kern.log, messages, `dmesg` / `dmesg -T` output,
    /// `journalctl -k` (short, short-iso, short-precise, short-unix), or "-" for stdin.
    #[arg(long, value_name = "PATH|-", conflicts_with = "journal")]
    pub file: Option<PathBuf>,
    /// Read the systemd journal's kernel messages of this boot (keeps far more than the ring buffer).
    #[arg(long)]
    pub journal: bool,
}

impl KernelLogArgs {
    pub fn source(self) -> LogSource {
        match (self.file, self.journal) {
            (Some(path), _) => LogSource::File(path),
            (None, true) => LogSource::Journal,
            (None, false) => LogSource::Kernel,
        }
    }
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub log: KernelLogArgs,
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
    /// After the closing line, show the lines that could not be placed (OOM-killer lines not
    /// understood, a saved log's lines of no known format): the first 8 of each, and how many more.
    #[arg(short, long)]
    pub verbose: bool,
}

impl HistoryArgs {
    pub fn options(self) -> Result<HistoryOptions, ArgsError> {
        Ok(HistoryOptions {
            source: self.log.source(),
            since: parse_since(self.since.as_deref())?,
            output: self.output,
            filter: self.filter.into(),
            cri_timeout: self.cri.report_timeout(),
            cri_socket: self.cri.cri_socket,
            verbose: self.verbose,
        })
    }
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

impl From<FilterArgs> for EventFilter {
    fn from(args: FilterArgs) -> Self {
        Self {
            cgroup_prefix: args.cgroup,
            comm: args.comm,
            namespace: args.namespace,
            pod: args.pod,
            container: args.container,
        }
    }
}

/// Flags of `oomtrace daemon`; each can also come from the environment and
/// from the config file (docs/daemon.md). Defaults apply last.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// TOML config file.
    #[arg(long, value_name = "PATH", env = "OOMTRACE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where /metrics, /healthz and /readyz listen [default: 0.0.0.0:9101].
    #[arg(long, value_name = "HOST:PORT", env = "OOMTRACE_METRICS_ADDRESS")]
    pub metrics_address: Option<std::net::SocketAddr>,
    /// Log line format on stderr [default: text].
    #[arg(long, value_enum, env = "OOMTRACE_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// NDJSON events on stdout (for `kubectl logs`) [default: true].
    #[arg(long, value_name = "BOOL", env = "OOMTRACE_EVENTS_STDOUT")]
    pub events_stdout: Option<bool>,
    /// CRI socket of the container runtime [default: containerd's, then CRI-O's].
    #[arg(long, value_name = "PATH", env = "OOMTRACE_CRI_SOCKET")]
    pub cri_socket: Option<PathBuf>,
    /// Longest wait for one CRI call [default: 250ms].
    #[arg(long, value_parser = parse_duration, env = "OOMTRACE_CRI_TIMEOUT")]
    pub cri_timeout: Option<Duration>,
    /// Node name on events [default: the hostname].
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// Bound on Prometheus (namespace, pod, container, unit) label sets [default: 2000].
    #[arg(long, value_name = "N", env = "OOMTRACE_MAX_LABEL_SERIES")]
    pub max_label_series: Option<usize>,
    /// OTLP queue bound, in events [default: 2048].
    #[arg(long, value_name = "N", env = "OOMTRACE_OTLP_QUEUE")]
    pub otlp_queue: Option<usize>,
    /// Read the kernel log (needs CAP_SYSLOG where kernel.dmesg_restrict=1): each event gets the kernel's
    /// report (memory.stat, largest tasks), and kills since boot not reported before are reported once [default: true].
    #[arg(long, value_name = "BOOL", env = "OOMTRACE_KERNEL_LOG")]
    pub kernel_log: Option<bool>,
    /// Directory for the position in the kernel log, kept across restarts (a hostPath under /run) [default: /run/oomtrace].
    #[arg(long, value_name = "DIR", env = "OOMTRACE_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Watch memory cgroups and warn before kills [default: true].
    #[arg(long, value_name = "BOOL", env = "OOMTRACE_WARNINGS")]
    pub warnings: Option<bool>,
    #[command(flatten)]
    pub warn: WarnArgs,
}

/// Where pod names come from.
#[derive(Debug, Args)]
pub struct CriArgs {
    /// CRI socket of the container runtime (default: containerd's, then CRI-O's).
    #[arg(long, value_name = "PATH", env = "OOMTRACE_CRI_SOCKET")]
    pub cri_socket: Option<PathBuf>,
    /// Longest wait for one CRI call, e.g. "500ms"; on timeout the workload keeps what the cgroup path gives
    /// [default: 250ms for `live`, whose events wait for it; 2s for `top`, `whois`, `history`, `diagnose`].
    #[arg(long, value_parser = parse_duration)]
    pub cri_timeout: Option<Duration>,
}

impl CriArgs {
    /// The timeout where each event waits for the runtime's answer.
    pub fn event_timeout(&self) -> Duration {
        self.cri_timeout.unwrap_or(DEFAULT_CRI_TIMEOUT)
    }

    /// The timeout where a person waits for a report or a view.
    pub fn report_timeout(&self) -> Duration {
        self.cri_timeout.unwrap_or(REPORT_CRI_TIMEOUT)
    }
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
    /// Do not read the kernel log (no `oom_kernel_report` records after kills: memory.stat, largest tasks).
    #[arg(long)]
    pub no_kernel_log: bool,
    /// Do not watch memory cgroups (no warnings; kills say `not_warned: watcher_off`).
    #[arg(long)]
    pub no_warnings: bool,
    #[command(flatten)]
    pub warn: WarnArgs,
    #[command(flatten)]
    pub ebpf_log: EbpfLogArgs,
}

/// `--ebpf-log` of `live` and `check`.
#[derive(Clone, Copy, Debug, Default, Args)]
pub struct EbpfLogArgs {
    /// Show what the eBPF programs saw on their failure paths (records dropped, kernel reads that failed and
    /// at which field, walks cut short), logged under the target `oomtrace::ebpf`; "warn" sends only the
    /// first three kinds. Off, no log code runs in the kernel [default: off; the flag alone: debug].
    #[arg(long, value_enum, value_name = "LEVEL", num_args = 0..=1, require_equals = true, default_missing_value = "debug")]
    pub ebpf_log: Option<EbpfLog>,
}

impl EbpfLogArgs {
    pub fn level(self) -> EbpfLog {
        self.ebpf_log.unwrap_or_default()
    }
}

/// Flags of `oomtrace check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    // With --ebpf-log: every program is tried with its log sites live (what
    // `live --ebpf-log` loads), and a line says whether their messages can be read.
    #[command(flatten)]
    pub ebpf_log: EbpfLogArgs,
}

impl LiveArgs {
    pub fn options(self) -> Result<LiveOptions, ArgsError> {
        let ring_bytes = probe::ring_bytes(self.ring_buffer_kib, kernel::page_size()).map_err(ArgsError::RingBuffer)?;
        Ok(LiveOptions {
            output: self.output,
            count: self.count,
            duration: self.duration,
            filter: self.filter.into(),
            pipeline: PipelineOptions {
                plan: AttachPlan {
                    victim: self.victim_probe,
                    context: self.context_probe,
                    confirm_kills: !self.no_kill_confirmation,
                    count_reclaim: false,
                },
                ring_bytes,
                ebpf_log: self.ebpf_log.level(),
                cri_timeout: self.cri.event_timeout(),
                cri_socket: self.cri.cri_socket,
                node_name: None,
                kernel_log: if self.no_kernel_log { KernelLogMode::Off } else { KernelLogMode::Join },
                warnings: (!self.no_warnings).then(|| WarnOptions::from_settings(self.warn.settings(None, None))),
            },
        })
    }
}

/// A flag's value that clap accepted but the command cannot use.
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    #[error(transparent)]
    Since(#[from] SinceError),
    /// (Not a `source`: the message already holds it.)
    #[error("--ring-buffer-kib: {0}")]
    RingBuffer(RingSizeError),
}

/// `--since` of `history` and `diagnose`, counted back from now.
fn parse_since(text: Option<&str>) -> Result<Option<SystemTime>, SinceError> {
    text.map(|text| since::parse(text, SystemTime::now())).transpose()
}

/// A clap value parser (clap wants its errors as strings).
fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 30s, 5m, 1h)"))
}

impl DaemonArgs {
    /// Merges flags/env (`self`, `log`) over the file over the defaults.
    pub fn config(&self, log: Option<&str>) -> Result<DaemonConfig, ConfigError> {
        let file = match &self.config {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        let path = self.config.as_ref().map_or_else(|| "(no file)".to_owned(), |p| p.display().to_string());
        let value_error = |key: &'static str, message: String| ConfigError::Value { path: path.clone(), key, message };
        let metrics_address = match (self.metrics_address, &file.metrics_address) {
            (Some(address), _) => address,
            (None, Some(text)) => text.parse().map_err(|e| value_error("metrics_address", format!("{text:?}: {e}")))?,
            (None, None) => {
                DEFAULT_METRICS_ADDRESS.parse().map_err(|e| value_error("metrics_address", format!("default: {e}")))?
            }
        };
        let log_format = match (self.log_format, file.log_format.as_deref()) {
            (Some(format), _) => format,
            (None, Some("json")) => LogFormat::Json,
            (None, Some("text")) | (None, None) => LogFormat::Text,
            (None, Some(other)) => {
                return Err(value_error("log_format", format!("{other:?} (use \"text\" or \"json\")")));
            }
        };
        let cri_timeout = match (self.cri_timeout, file.cri_timeout.as_deref()) {
            (Some(timeout), _) => timeout,
            (None, Some(text)) => {
                humantime::parse_duration(text).map_err(|e| value_error("cri_timeout", format!("{text:?}: {e}")))?
            }
            (None, None) => DEFAULT_CRI_TIMEOUT,
        };
        let max_label_series = self.max_label_series.or(file.max_label_series).unwrap_or(DEFAULT_MAX_LABEL_SERIES);
        if max_label_series == 0 {
            return Err(value_error("max_label_series", "must be at least 1".to_owned()));
        }
        let warn_within = match file.warn_within.as_deref() {
            Some(text) => Some(
                humantime::parse_duration(text).map_err(|e| value_error("warn_within", format!("{text:?}: {e}")))?,
            ),
            None => None,
        };
        let eviction_hard = file.eviction_hard.as_deref().map(parse_size).transpose();
        let warn_settings =
            self.warn.settings(warn_within, eviction_hard.map_err(|e| value_error("eviction_hard", e))?);
        let otlp_queue = self.otlp_queue.or(file.otlp_queue).unwrap_or(DEFAULT_OTLP_QUEUE);
        if otlp_queue == 0 {
            return Err(value_error("otlp_queue", "must be at least 1".to_owned()));
        }
        let log = log.map(str::to_owned).or(file.log).unwrap_or_else(|| "info".to_owned());
        Ok(DaemonConfig {
            metrics_address,
            log_format,
            log,
            events_stdout: self.events_stdout.or(file.events_stdout).unwrap_or(true),
            cri_socket: self.cri_socket.clone().or(file.cri_socket),
            cri_timeout,
            node_name: self.node_name.clone().or(file.node_name),
            max_label_series,
            otlp_queue,
            kernel_log: self.kernel_log.or(file.kernel_log).unwrap_or(true),
            state_dir: self.state_dir.clone().or(file.state_dir).unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
            warnings: self.warnings.or(file.warnings).unwrap_or(true).then_some(warn_settings),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn args(extra: &[&str]) -> DaemonArgs {
        let mut argv = vec!["oomtrace", "daemon"];
        argv.extend_from_slice(extra);
        match Cli::parse_from(argv).command {
            Command::Daemon(args) => args,
            other => panic!("not daemon: {other:?}"),
        }
    }

    fn file(text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("oomtrace-config-{}-{}.toml", std::process::id(), text.len()));
        std::fs::write(&path, text).expect("write config");
        path
    }

    #[test]
    fn defaults_apply_without_a_file() {
        let config = args(&[]).config(None).expect("resolves");
        assert_eq!(config.metrics_address.to_string(), DEFAULT_METRICS_ADDRESS);
        assert_eq!(config.log_format, LogFormat::Text);
        assert!(config.events_stdout);
        assert_eq!(config.cri_timeout, DEFAULT_CRI_TIMEOUT);
    }

    #[test]
    fn a_cri_call_waits_250ms_where_events_wait_and_2s_where_a_person_does() {
        let top = |extra: &[&str]| match Cli::parse_from([&["oomtrace", "top"], extra].concat()).command {
            Command::Top(args) => args.options().cri_timeout,
            other => panic!("not top: {other:?}"),
        };
        assert_eq!(top(&[]), REPORT_CRI_TIMEOUT);
        assert_eq!(top(&["--cri-timeout", "300ms"]), Duration::from_millis(300));
        match Cli::parse_from(["oomtrace", "live"]).command {
            Command::Live(args) => {
                assert_eq!(args.options().expect("valid").pipeline.cri_timeout, DEFAULT_CRI_TIMEOUT)
            }
            other => panic!("not live: {other:?}"),
        }
    }

    #[test]
    fn flags_win_over_the_file() {
        let path =
            file("metrics_address = \"127.0.0.1:9999\"\nlog_format = \"json\"\notlp_queue = 7\ncri_timeout = \"1s\"\n");
        let config = args(&["--config", path.to_str().expect("utf8"), "--metrics-address", "127.0.0.1:1234"])
            .config(None)
            .expect("resolves");
        assert_eq!(config.metrics_address.to_string(), "127.0.0.1:1234");
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.otlp_queue, 7);
        assert_eq!(config.cri_timeout, Duration::from_secs(1));
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn malformed_files_are_clear_errors() {
        let typo = file("metrics_adress = \"127.0.0.1:1\"\n");
        let error = args(&["--config", typo.to_str().expect("utf8")]).config(None).expect_err("typo").to_string();
        assert!(error.contains("metrics_adress"), "{error}");
        let bad = file("metrics_address = \"nowhere\"\n\n");
        let error = args(&["--config", bad.to_str().expect("utf8")]).config(None).expect_err("bad value").to_string();
        assert!(error.contains("metrics_address") && error.contains("nowhere"), "{error}");
        let missing = args(&["--config", "/nonexistent/oomtrace.toml"]).config(None).expect_err("missing").to_string();
        assert!(missing.contains("/nonexistent/oomtrace.toml"), "{missing}");
        let _ = std::fs::remove_file(typo);
        let _ = std::fs::remove_file(bad);
    }
}
