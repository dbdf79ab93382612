//! What the kernel side saw, on request: the eBPF programs' own messages on
//! their failure paths (a record dropped because the ring buffer was full, a
//! kernel read that failed and at which field, a memcg walk cut short, a map
//! insert refused), sent through aya-log and forwarded here into `tracing`
//! under the target `oomtrace::ebpf`.
//!
//! Off costs nothing: aya-log-ebpf gates every log site on its
//! `AYA_LOG_LEVEL` global, which sits in `.rodata`; the loader writes 0 there
//! (and shrinks the log ring buffer to one page), the kernel freezes the
//! section, and the verifier, seeing a constant, never walks the log code
//! and rewrites the branch to it as dead.

use std::panic::AssertUnwindSafe;

use aya::{Ebpf, EbpfLoader};
use aya_log::{EbpfLogger, Level};
use tokio::{
    io::{Interest, unix::AsyncFd},
    task::JoinHandle,
};

/// The `tracing` target every kernel-side message is logged under.
pub const TARGET: &str = "oomtrace::ebpf";
/// aya-log-ebpf's ring buffer and level global (`aya_log::LEVEL`).
const LOG_MAP: &str = "AYA_LOGS";

/// Which of the eBPF programs' messages are sent (none by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, strum::Display)]
#[strum(serialize_all = "lowercase")]
pub enum EbpfLog {
    /// No log code runs in the kernel.
    #[default]
    Off,
    /// Records dropped, walks cut short, map inserts refused.
    Warn,
    /// And every kernel read that failed, naming the field.
    Debug,
}

impl EbpfLog {
    /// The value of aya-log-ebpf's `AYA_LOG_LEVEL`: messages at this level
    /// and more severe are sent (aya-log's levels count up from Error = 1).
    fn aya_level(self) -> &'static u8 {
        const OFF: u8 = 0;
        const WARN: u8 = Level::Warn as u8;
        const DEBUG: u8 = Level::Debug as u8;
        match self {
            EbpfLog::Off => &OFF,
            EbpfLog::Warn => &WARN,
            EbpfLog::Debug => &DEBUG,
        }
    }

    /// The `tracing` directive that lets these messages through whatever
    /// `--log` says (None when off).
    pub fn directive(self) -> Option<String> {
        (self != EbpfLog::Off).then(|| format!("{TARGET}={self}"))
    }

    /// On at debug when the daemon's log filter lets debug messages through
    /// (`log = "debug"`, or a directive at debug for some target), else off.
    pub fn for_log_filter(filter: &str) -> EbpfLog {
        let debug = tracing_subscriber::EnvFilter::try_new(filter)
            .ok()
            .and_then(|filter| filter.max_level_hint())
            .is_some_and(|max| max >= tracing::level_filters::LevelFilter::DEBUG);
        if debug { EbpfLog::Debug } else { EbpfLog::Off }
    }
}

/// Sets the level global and, when off, shrinks aya-log's ring buffer from
/// 128 KiB to one page (nothing is ever written to it).
pub fn configure(loader: &mut EbpfLoader<'_>, log: EbpfLog, page_size: u64) {
    loader.override_global(aya_log::LEVEL, log.aya_level(), true);
    if log == EbpfLog::Off {
        loader.map_max_entries(LOG_MAP, u32::try_from(page_size).unwrap_or(4096));
    }
}

/// Forwards the kernel side's messages into `tracing` until dropped (aborted).
pub struct Forwarder {
    task: JoinHandle<()>,
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why the kernel side's messages cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("aya-log's ring buffer cannot be read: {0}")]
    Logger(#[from] aya_log::Error),
    #[error("aya-log's ring buffer cannot be watched: {0}")]
    Watch(std::io::Error),
}

/// Starts forwarding (needs a tokio runtime). The caller warns on failure:
/// a run never fails for want of these messages.
pub fn forward(ebpf: &mut Ebpf) -> Result<Forwarder, ForwardError> {
    let logger = EbpfLogger::init_with_logger(ebpf, ToTracing)?;
    // SAFETY: the logger owns its ring buffer's map fd and is moved into the
    // AsyncFd, so the fd stays open and unchanged for the AsyncFd's lifetime.
    let mut logger = unsafe { AsyncFd::register_with_interest(logger, Interest::READABLE) }
        .map_err(|e| ForwardError::Watch(e.into_parts().1))?;
    let task = tokio::spawn(async move {
        loop {
            let mut guard = match logger.readable_mut().await {
                Ok(guard) => guard,
                Err(error) => {
                    tracing::warn!(%error, "eBPF log: waiting on aya-log's ring buffer failed; no more kernel-side messages");
                    return;
                }
            };
            // aya-log panics on a record it cannot parse: stop forwarding
            // rather than lose the run.
            let flushed = std::panic::catch_unwind(AssertUnwindSafe(|| guard.get_inner_mut().flush()));
            guard.clear_ready();
            if flushed.is_err() {
                tracing::warn!("eBPF log: a malformed record in aya-log's ring buffer; no more kernel-side messages");
                return;
            }
        }
    });
    Ok(Forwarder { task })
}

/// aya-log hands records to a `log::Log`; this one logs them with `tracing`.
struct ToTracing;

impl log::Log for ToTracing {
    fn enabled(&self, _metadata: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        // The eBPF crate is a binary named `oomtrace`: its modules are
        // `oomtrace::mark_victim`, `oomtrace::kernel`, ...
        let module = record.module_path().unwrap_or("?");
        let module = module.strip_prefix("oomtrace::").unwrap_or(module);
        let line = record.line().unwrap_or(0);
        let message = record.args();
        match record.level() {
            log::Level::Error => tracing::error!(target: TARGET, module, line, "{message}"),
            log::Level::Warn => tracing::warn!(target: TARGET, module, line, "{message}"),
            log::Level::Info => tracing::info!(target: TARGET, module, line, "{message}"),
            log::Level::Debug => tracing::debug!(target: TARGET, module, line, "{message}"),
            log::Level::Trace => tracing::trace!(target: TARGET, module, line, "{message}"),
        }
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_unless_the_daemon_logs_at_debug() {
        assert_eq!(EbpfLog::for_log_filter("info"), EbpfLog::Off);
        assert_eq!(EbpfLog::for_log_filter("warn,oomtrace=info"), EbpfLog::Off);
        assert_eq!(EbpfLog::for_log_filter("debug"), EbpfLog::Debug);
        assert_eq!(EbpfLog::for_log_filter("info,oomtrace::ebpf=debug"), EbpfLog::Debug);
        assert_eq!(EbpfLog::for_log_filter("trace"), EbpfLog::Debug);
        assert_eq!(EbpfLog::for_log_filter("not a filter ==="), EbpfLog::Off);
    }

    #[test]
    fn levels_match_aya_log() {
        assert_eq!(*EbpfLog::Off.aya_level(), 0);
        assert_eq!(*EbpfLog::Warn.aya_level(), 2);
        assert_eq!(*EbpfLog::Debug.aya_level(), 4);
        assert_eq!(EbpfLog::Off.directive(), None);
        assert_eq!(EbpfLog::Warn.directive().as_deref(), Some("oomtrace::ebpf=warn"));
    }
}
