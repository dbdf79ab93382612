//! The node's own memory, from /proc/meminfo: what a global OOM or the
//! kubelet's eviction is measured against.

use std::io;

/// MemTotal and MemAvailable, bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeMemory {
    pub total_bytes: u64,
    pub available_bytes: u64,
}

impl NodeMemory {
    pub fn read() -> io::Result<Self> {
        let text = std::fs::read_to_string("/proc/meminfo")?;
        Self::parse(&text)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no MemTotal/MemAvailable in /proc/meminfo"))
    }

    /// `MemTotal:  24579 kB` lines (MemAvailable: kernel 3.14+).
    pub fn parse(text: &str) -> Option<Self> {
        let kb = |key: &str| {
            text.lines().find_map(|line| line.strip_prefix(key)?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        };
        Some(Self { total_bytes: kb("MemTotal:")? * 1024, available_bytes: kb("MemAvailable:")? * 1024 })
    }

    /// What is in use and not available for reclaim (MemTotal − MemAvailable).
    pub fn used_bytes(&self) -> u64 {
        self.total_bytes.saturating_sub(self.available_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_gives_total_and_available() {
        let text = "MemTotal:       16384 kB\nMemFree:         1024 kB\nMemAvailable:    4096 kB\n";
        let node = NodeMemory::parse(text).expect("parsed");
        assert_eq!(node, NodeMemory { total_bytes: 16384 * 1024, available_bytes: 4096 * 1024 });
        assert_eq!(node.used_bytes(), 12288 * 1024);
        assert_eq!(NodeMemory::parse("MemTotal: 1 kB\n"), None);
    }
}
