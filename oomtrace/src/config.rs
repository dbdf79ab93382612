//! `oomtrace daemon` configuration: flags, then environment variables (both
//! through clap), then the TOML file, then defaults.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Args;
use serde::Deserialize;

pub const DEFAULT_METRICS_ADDRESS: &str = "0.0.0.0:9101";
pub const DEFAULT_MAX_LABEL_SERIES: usize = 2000;
pub const DEFAULT_OTLP_QUEUE: usize = 2048;
pub const DEFAULT_CRI_TIMEOUT: Duration = Duration::from_millis(250);
/// Where the daemon keeps its position in the kernel log (a tmpfs: a reboot clears it).
pub const DEFAULT_STATE_DIR: &str = "/run/oomtrace";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("invalid config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid value for {key} in {path}: {message}")]
    Value { path: String, key: &'static str, message: String },
}

/// Format of the log lines on stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Flags of `oomtrace daemon`; each can also come from the environment and
/// from the config file (docs/daemon.md). Defaults apply last.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// TOML config file.
    #[arg(long, value_name = "PATH", env = "OOMTRACE_CONFIG")]
    pub config: Option<std::path::PathBuf>,
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
    pub cri_socket: Option<std::path::PathBuf>,
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
    pub state_dir: Option<std::path::PathBuf>,
}

/// A duration flag, e.g. "250ms", "30s", "5m".
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 30s, 5m, 1h)"))
}

/// The TOML file; unknown keys are errors (a typo must not be ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub metrics_address: Option<String>,
    pub log_format: Option<String>,
    pub log: Option<String>,
    pub events_stdout: Option<bool>,
    pub cri_socket: Option<PathBuf>,
    pub cri_timeout: Option<String>,
    pub node_name: Option<String>,
    pub max_label_series: Option<usize>,
    pub otlp_queue: Option<usize>,
    pub kernel_log: Option<bool>,
    pub state_dir: Option<PathBuf>,
}

/// The resolved configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct DaemonConfig {
    pub metrics_address: SocketAddr,
    pub log_format: LogFormat,
    pub log: String,
    pub events_stdout: bool,
    pub cri_socket: Option<PathBuf>,
    pub cri_timeout: Duration,
    pub node_name: Option<String>,
    pub max_label_series: usize,
    pub otlp_queue: usize,
    /// Read the kernel log: reports joined to events, past kills reported once.
    pub kernel_log: bool,
    /// Where the position in the kernel log is kept across restarts.
    pub state_dir: PathBuf,
}

pub fn load_file(path: &std::path::Path) -> Result<FileConfig, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: shown.clone(), source })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse { path: shown, message: e.to_string() })
}

/// Merges flags/env (`args`, `log`) over the file over the defaults.
pub fn resolve(args: &DaemonArgs, log: Option<&str>) -> Result<DaemonConfig, ConfigError> {
    let file = match &args.config {
        Some(path) => load_file(path)?,
        None => FileConfig::default(),
    };
    let path = args.config.as_ref().map_or_else(|| "(no file)".to_owned(), |p| p.display().to_string());
    let value_error = |key: &'static str, message: String| ConfigError::Value { path: path.clone(), key, message };
    let metrics_address = match (args.metrics_address, &file.metrics_address) {
        (Some(address), _) => address,
        (None, Some(text)) => text.parse().map_err(|e| value_error("metrics_address", format!("{text:?}: {e}")))?,
        (None, None) => {
            DEFAULT_METRICS_ADDRESS.parse().map_err(|e| value_error("metrics_address", format!("default: {e}")))?
        }
    };
    let log_format = match (args.log_format, file.log_format.as_deref()) {
        (Some(format), _) => format,
        (None, Some("json")) => LogFormat::Json,
        (None, Some("text")) | (None, None) => LogFormat::Text,
        (None, Some(other)) => return Err(value_error("log_format", format!("{other:?} (use \"text\" or \"json\")"))),
    };
    let cri_timeout = match (args.cri_timeout, file.cri_timeout.as_deref()) {
        (Some(timeout), _) => timeout,
        (None, Some(text)) => {
            humantime::parse_duration(text).map_err(|e| value_error("cri_timeout", format!("{text:?}: {e}")))?
        }
        (None, None) => DEFAULT_CRI_TIMEOUT,
    };
    let max_label_series = args.max_label_series.or(file.max_label_series).unwrap_or(DEFAULT_MAX_LABEL_SERIES);
    if max_label_series == 0 {
        return Err(value_error("max_label_series", "must be at least 1".to_owned()));
    }
    let otlp_queue = args.otlp_queue.or(file.otlp_queue).unwrap_or(DEFAULT_OTLP_QUEUE);
    if otlp_queue == 0 {
        return Err(value_error("otlp_queue", "must be at least 1".to_owned()));
    }
    Ok(DaemonConfig {
        metrics_address,
        log_format,
        log: log.map(str::to_owned).or(file.log).unwrap_or_else(|| "info".to_owned()),
        events_stdout: args.events_stdout.or(file.events_stdout).unwrap_or(true),
        cri_socket: args.cri_socket.clone().or(file.cri_socket),
        cri_timeout,
        node_name: args.node_name.clone().or(file.node_name),
        max_label_series,
        otlp_queue,
        kernel_log: args.kernel_log.or(file.kernel_log).unwrap_or(true),
        state_dir: args.state_dir.clone().or(file.state_dir).unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// `oomtrace daemon`'s flags alone (the whole command line is cli.rs').
    #[derive(Parser)]
    struct Daemon {
        #[command(flatten)]
        args: DaemonArgs,
    }

    fn args(extra: &[&str]) -> DaemonArgs {
        let mut argv = vec!["oomtrace-daemon"];
        argv.extend_from_slice(extra);
        Daemon::parse_from(argv).args
    }

    fn file(text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("oomtrace-config-{}-{}.toml", std::process::id(), text.len()));
        std::fs::write(&path, text).expect("write config");
        path
    }

    #[test]
    fn defaults_apply_without_a_file() {
        let config = resolve(&args(&[]), None).expect("resolves");
        assert_eq!(config.metrics_address.to_string(), DEFAULT_METRICS_ADDRESS);
        assert_eq!(config.log_format, LogFormat::Text);
        assert!(config.events_stdout);
        assert_eq!(config.cri_timeout, DEFAULT_CRI_TIMEOUT);
    }

    #[test]
    fn flags_win_over_the_file() {
        let path =
            file("metrics_address = \"127.0.0.1:9999\"\nlog_format = \"json\"\notlp_queue = 7\ncri_timeout = \"1s\"\n");
        let config =
            resolve(&args(&["--config", path.to_str().expect("utf8"), "--metrics-address", "127.0.0.1:1234"]), None)
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
        let error = resolve(&args(&["--config", typo.to_str().expect("utf8")]), None).expect_err("typo").to_string();
        assert!(error.contains("metrics_adress"), "{error}");
        let bad = file("metrics_address = \"nowhere\"\n\n");
        let error =
            resolve(&args(&["--config", bad.to_str().expect("utf8")]), None).expect_err("bad value").to_string();
        assert!(error.contains("metrics_address") && error.contains("nowhere"), "{error}");
        let missing =
            resolve(&args(&["--config", "/nonexistent/oomtrace.toml"]), None).expect_err("missing").to_string();
        assert!(missing.contains("/nonexistent/oomtrace.toml"), "{missing}");
        let _ = std::fs::remove_file(typo);
        let _ = std::fs::remove_file(bad);
    }
}
