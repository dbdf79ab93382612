//! What the daemon run measured.

use std::time::Duration;

use super::KillRun;
use oomtrace_testkit::{observability::OtlpCounts, procfs::Memory};

/// CPU a process used over a window.
#[derive(Clone, Debug)]
pub struct CpuUse {
    /// The window, wall time.
    pub seconds: f64,
    /// utime + stime (/proc/<pid>/stat), in 10 ms clock ticks.
    pub ticks_ms: f64,
    /// The threads' run time (schedstat), ns-precise; None when threads came
    /// or went during the window.
    pub precise_ms: Option<f64>,
}

impl CpuUse {
    pub fn percent(&self) -> f64 {
        self.ticks_ms / (self.seconds * 1000.0) * 100.0
    }

    pub fn precise_percent(&self) -> Option<f64> {
        self.precise_ms.map(|ms| ms / (self.seconds * 1000.0) * 100.0)
    }

    /// The larger of both readings (each may round the other way).
    pub fn worst_percent(&self) -> f64 {
        self.precise_percent().map_or(self.percent(), |p| p.max(self.percent()))
    }
}

/// The daemon between kills: memory at both ends, CPU, what it exported.
#[derive(Clone, Debug)]
pub struct IdleWindow {
    pub memory_start: Memory,
    pub memory_end: Memory,
    pub cpu: CpuUse,
    /// Prometheus' own count of its scrapes of the daemon in the window.
    pub scrapes: Result<f64, String>,
    /// What the OTLP receiver got from the daemon in the window.
    pub otlp: OtlpCounts,
}

/// `oomtrace daemon` with Prometheus scraping it and OTLP export on.
#[derive(Clone, Debug)]
pub struct DaemonFigures {
    /// Environment and arguments it ran with.
    pub command: String,
    /// The CRI socket it reported using (or why none).
    pub cri: String,
    /// Spawn to its "waiting for OOM kills" line.
    pub attach: Duration,
    /// Target written to Prometheus' file_sd until `up == 1`.
    pub first_scrape: Duration,
    /// DAEMON_SETTLE after the first scrape, before any kill.
    pub idle: IdleWindow,
    pub burst: KillRun,
    /// From the first hog's start to DRAIN_QUIET after the last event.
    pub burst_cpu: CpuUse,
    /// Right after the burst's events.
    pub after_burst: Memory,
    /// `sum(oomtrace_oom_kills_total)` Prometheus scraped after the burst.
    pub prometheus_kills: Result<f64, String>,
    /// What the OTLP receiver got from the burst on.
    pub otlp_burst: OtlpCounts,
    /// Once the burst was exported: the counter is now exported every interval.
    pub idle_after: IdleWindow,
    pub foreign_events: usize,
    pub exit: String,
}

impl DaemonFigures {
    /// The largest VmRSS after startup: the steady footprint.
    pub fn steady_rss_kb(&self) -> u64 {
        [
            self.idle.memory_start.rss_kb,
            self.idle.memory_end.rss_kb,
            self.after_burst.rss_kb,
            self.idle_after.memory_start.rss_kb,
            self.idle_after.memory_end.rss_kb,
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
    }

    /// The idle CPU the target is judged on: the worse window.
    pub fn idle_cpu_percent(&self) -> f64 {
        self.idle.cpu.worst_percent().max(self.idle_after.cpu.worst_percent())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_use_takes_the_larger_reading() {
        let cpu = CpuUse { seconds: 10.0, ticks_ms: 20.0, precise_ms: Some(6.8) };
        assert!((cpu.worst_percent() - 0.2).abs() < 1e-9);
        let cpu = CpuUse { seconds: 10.0, ticks_ms: 0.0, precise_ms: Some(3.5) };
        assert!((cpu.worst_percent() - 0.035).abs() < 1e-9);
        let cpu = CpuUse { seconds: 10.0, ticks_ms: 10.0, precise_ms: None };
        assert!((cpu.worst_percent() - 0.1).abs() < 1e-9);
    }
}
