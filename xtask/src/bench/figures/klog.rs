//! Kernel log parsing: `oomtrace history` timed on a 100 MB syslog file and
//! on the whole kernel ring buffer, beside grep, cat and dmesg on the same
//! input in the same run.

use std::time::Duration;

use super::median_ms;

/// One command's timed runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Timed {
    /// As the report quotes it.
    pub command: String,
    /// Spawn to exit, one per run.
    pub wall: Vec<Duration>,
    /// user + system time of each run.
    pub cpu: Vec<Duration>,
}

impl Timed {
    pub fn new(command: impl Into<String>) -> Self {
        Self { command: command.into(), wall: Vec::new(), cpu: Vec::new() }
    }

    pub fn best_s(&self) -> Option<f64> {
        self.wall.iter().min().map(Duration::as_secs_f64)
    }

    pub fn median_s(&self) -> Option<f64> {
        median_ms(&self.wall).map(|ms| ms / 1e3)
    }

    pub fn median_cpu_s(&self) -> Option<f64> {
        median_ms(&self.cpu).map(|ms| ms / 1e3)
    }

    /// Megabytes (10^6 bytes) per second at the median run.
    pub fn mb_per_s(&self, bytes: u64) -> Option<f64> {
        self.median_s().filter(|s| *s > 0.0).map(|s| bytes as f64 / 1e6 / s)
    }
}

/// What a run of `oomtrace history` (or `diagnose`) found, besides its time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// NDJSON lines on stdout: one per event (`diagnose`: the report's `kills`).
    pub events: u64,
    /// Its closing line on stderr ("… N found in the log …"; `diagnose`: the
    /// report's `kernel_log.reconciliation`, the same sentence).
    pub closing: String,
    /// Its peak RSS (GNU time's `%M`), where GNU time could be had.
    pub peak_rss_kb: Option<u64>,
}

/// The generated syslog file: what was written, by construction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyslogShape {
    pub bytes: u64,
    pub kernel_lines: u64,
    pub unrelated_lines: u64,
    /// Repetitions of the fixture.
    pub repetitions: u64,
    /// Kernel "Killed process" lines written: the kills a parser must find.
    pub kill_lines: u64,
    /// Seconds spent writing it.
    pub written_in: Duration,
}

/// `oomtrace history --file` against grep and cat on the same file.
#[derive(Clone, Debug, PartialEq)]
pub struct SyslogFigures {
    pub path: String,
    pub shape: SyslogShape,
    pub oomtrace: Timed,
    pub grep: Timed,
    pub cat: Timed,
    /// `grep -c "Killed process"`'s answer.
    pub grep_count: Option<u64>,
    pub found: Result<Found, String>,
    /// `oomtrace diagnose --file` on the same file, in the same rounds.
    pub diagnose: Timed,
    pub diagnose_found: Result<Found, String>,
}

/// `oomtrace history` on /dev/kmsg against dmesg, and what the buffer held.
#[derive(Clone, Debug, PartialEq)]
pub struct RingFigures {
    /// The ring buffer's size (syslog(2) SYSLOG_ACTION_SIZE_BUFFER).
    pub capacity_bytes: Option<u64>,
    /// Records /dev/kmsg held, read before the timed runs, and their bytes
    /// as the device returns them (`prio,seq,usec,flags;text`).
    pub records: u64,
    pub record_bytes: u64,
    /// Records gone before the first one read (the buffer has wrapped).
    pub rotated: u64,
    /// `dmesg`'s output: bytes and "Killed process" lines.
    pub dmesg_bytes: u64,
    pub dmesg_kill_lines: u64,
    /// "Killed process" lines of `dmesg --kernel`: without what programs
    /// wrote to /dev/kmsg (the kernel files those under the user facility).
    pub kernel_kill_lines: u64,
    pub oomtrace: Timed,
    pub dmesg: Timed,
    pub found: Result<Found, String>,
}

/// The section's figures; each half may fail on its own.
#[derive(Clone, Debug, PartialEq)]
pub struct KlogFigures {
    /// When and on which commit (the section can be run alone).
    pub generated: String,
    pub commit: String,
    pub syslog: Result<SyslogFigures, String>,
    pub ring: Result<RingFigures, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_median_and_throughput() {
        let ms = Duration::from_millis;
        let timed = Timed { command: "x".to_owned(), wall: vec![ms(500), ms(400), ms(800)], cpu: vec![ms(300); 3] };
        assert_eq!(timed.best_s(), Some(0.4));
        assert_eq!(timed.median_s(), Some(0.5));
        assert_eq!(timed.median_cpu_s(), Some(0.3));
        assert_eq!(timed.mb_per_s(100_000_000), Some(200.0));
        assert_eq!(Timed::new("none").median_s(), None);
        assert_eq!(Timed::new("none").mb_per_s(1), None);
    }
}
