//! The kernel's own count of OOM kills: `oom_kill` in /proc/vmstat (every
//! kill since boot, Linux 4.13+), which `history` and the daemon reconcile
//! with the kills they found.

use std::path::Path;

/// Why the kernel's count could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OomCountError {
    #[error("reading {path}: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error("{path} has no oom_kill counter (Linux 4.13 added it)")]
    Missing { path: String },
}

/// `oom_kill` of /proc/vmstat: OOM kills since boot.
pub fn oom_kills_since_boot() -> Result<u64, OomCountError> {
    oom_kills_in(Path::new("/proc/vmstat"))
}

fn oom_kills_in(path: &Path) -> Result<u64, OomCountError> {
    let display = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|source| OomCountError::Read { path: display.clone(), cause: source })?;
    counter(&text, "oom_kill").ok_or(OomCountError::Missing { path: display })
}

/// The value of `name` in `name value` lines (/proc/vmstat, memory.events,
/// memory.oom_control).
pub fn counter(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(char::is_whitespace)?;
        (key == name).then(|| value.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_named_counter_only() {
        let vmstat = "nr_free_pages 100\noom_kill 7\noom_kill_extra x\n";
        assert_eq!(counter(vmstat, "oom_kill"), Some(7));
        assert_eq!(counter(vmstat, "oom"), None);
        assert_eq!(counter("oom_kill x\n", "oom_kill"), None);
    }

    #[test]
    fn this_kernel_counts_kills() {
        // Every kernel the project supports (≥ 5.10) has the counter.
        assert!(oom_kills_since_boot().is_ok());
    }
}
