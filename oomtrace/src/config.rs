//! `oomtrace daemon` configuration: the TOML file, the defaults, and the resolved
//! [`DaemonConfig`]. Flags and environment variables (both through clap) win over
//! the file, the file over the defaults: `cli::DaemonArgs::config` merges them.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

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
