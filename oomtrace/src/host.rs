//! Facts about the machine oomtrace runs on, as events name it.

/// This node's name: `NODE_NAME` (the downward API in a DaemonSet), else the hostname.
pub fn node_name() -> String {
    std::env::var("NODE_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_owned()))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// This process's resident memory, from `/proc/self/status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnMemory {
    /// VmRSS: resident now.
    pub rss_kib: u64,
    /// VmHWM: the peak resident size since the process started.
    pub hwm_kib: u64,
}

impl OwnMemory {
    /// Reads `/proc/self/status` (None where procfs is not mounted).
    pub fn now() -> Option<Self> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        Self::parse(&status)
    }

    fn parse(status: &str) -> Option<Self> {
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(key))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        };
        Some(Self { rss_kib: kib("VmRSS:")?, hwm_kib: kib("VmHWM:")? })
    }
}

/// Logs this process's resident memory at debug level once `phase` of the
/// startup is done: the peak each phase adds (`cargo xtask bench`'s startup
/// breakdown reads these lines).
pub fn log_startup_memory(phase: &'static str) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    if let Some(memory) = OwnMemory::now() {
        tracing::debug!(phase, rss_kib = memory.rss_kib, hwm_kib = memory.hwm_kib, "startup memory");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_memory_is_read_from_the_status_lines() {
        let status =
            "Name:\toomtrace\nVmPeak:\t  200000 kB\nVmHWM:\t   26012 kB\nVmRSS:\t    9500 kB\nRssAnon:\t 1800 kB\n";
        assert_eq!(OwnMemory::parse(status), Some(OwnMemory { rss_kib: 9500, hwm_kib: 26012 }));
        assert_eq!(OwnMemory::parse("Name:\tkthread\n"), None, "a kernel thread has no VmRSS");
    }
}
