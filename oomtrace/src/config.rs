//! `oomtrace daemon` configuration: the TOML file, the defaults, and the resolved
//! [`DaemonConfig`]. Flags and environment variables (both through clap) win over
//! the file, the file over the defaults: `cli::DaemonArgs::config` merges them.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use serde::Deserialize;

pub const DEFAULT_METRICS_ADDRESS: &str = "0.0.0.0:9101";
pub const DEFAULT_MAX_LABEL_SERIES: usize = 2000;
pub const DEFAULT_OTLP_QUEUE: usize = 2048;
/// The bound on one CRI call where an event waits for it (`live`, `daemon`).
pub const DEFAULT_CRI_TIMEOUT: Duration = Duration::from_millis(250);
/// The bound on one CRI call where a person waits for a report or a view
/// instead (`top`, `whois`, `history`, `diagnose`): names matter more there
/// than a quarter of a second, and a busy node's runtime may need more.
pub const REPORT_CRI_TIMEOUT: Duration = Duration::from_secs(2);
/// Warn when a cgroup's time to OOM falls under this.
pub const DEFAULT_WARN_WITHIN: Duration = Duration::from_secs(300);
/// The kubelet's default `--eviction-hard` `memory.available<100Mi`.
pub const DEFAULT_EVICTION_HARD_BYTES: u64 = 100 * 1024 * 1024;
/// Where the daemon keeps its position in the kernel log (a tmpfs: a reboot clears it).
pub const DEFAULT_STATE_DIR: &str = "/run/oomtrace";

/// Like every error here that prints its cause in its message, the cause is a
/// field named `cause`, not `source`: thiserror would also chain a `source`,
/// and anyhow's `{:#}` (how `main` prints errors) would name it twice.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {cause}")]
    Read { path: String, cause: std::io::Error },
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
    pub warnings: Option<bool>,
    pub warn_within: Option<String>,
    pub eviction_hard: Option<String>,
}

/// How warnings before kills are made (docs/warnings.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WarnSettings {
    /// Warn when the time to OOM falls under this.
    pub within: Duration,
    /// The kubelet's hard eviction threshold on `memory.available` (0: none).
    pub eviction_hard_bytes: u64,
}

impl Default for WarnSettings {
    fn default() -> Self {
        Self { within: DEFAULT_WARN_WITHIN, eviction_hard_bytes: DEFAULT_EVICTION_HARD_BYTES }
    }
}

/// A size as Kubernetes writes memory: `750Mi`, `1Gi`, `100M`, `0`, bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits.parse().map_err(|_| format!("{text:?} is not a size (examples: 750Mi, 1Gi, 0)"))?;
    let factor: u64 = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "k" | "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        other => return Err(format!("{text:?}: unknown unit {other:?} (use Ki, Mi, Gi, k, M, G)")),
    };
    number.checked_mul(factor).ok_or_else(|| format!("{text:?} is too large"))
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
    /// Warnings before kills (None: no watcher).
    pub warnings: Option<WarnSettings>,
}

pub fn load_file(path: &std::path::Path) -> Result<FileConfig, ConfigError> {
    let shown = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: shown.clone(), cause: source })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse { path: shown, message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_kubernetes_writes_them() {
        assert_eq!(parse_size("750Mi"), Ok(750 << 20));
        assert_eq!(parse_size("1Gi"), Ok(1 << 30));
        assert_eq!(parse_size("100M"), Ok(100_000_000));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5Xi").is_err_and(|e| e.contains("Xi")));
    }

    /// The chain that `main` prints (`{:#}`) names the cause once.
    #[test]
    fn a_missing_file_names_its_cause_once() {
        let Err(error) = load_file(std::path::Path::new("/nonexistent/oomtrace.toml")) else {
            panic!("a missing file loaded")
        };
        let shown = format!("{:#}", anyhow::Error::from(error));
        assert_eq!(
            shown,
            "cannot read the config file /nonexistent/oomtrace.toml: No such file or directory (os error 2)"
        );
    }
}
