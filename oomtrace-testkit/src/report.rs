//! The kernel-report record of `oomtrace live -o json` (docs/events.md,
//! `kind` = `oom_kernel_report`): the report of a live kill, which follows
//! the kill, read independently of oomtrace's types.

use std::fmt;

use anyhow::Result;
use serde::Deserialize;

use crate::event::{Diagnosis, Event, KernelLog, KernelReport, Workload, parse_checked};

/// One kill's kernel report.
#[derive(Clone, Debug, Deserialize)]
pub struct ReportRecord {
    pub time: Option<String>,
    pub ktime_ns: Option<u64>,
    pub oom_id: Option<u64>,
    pub victim_pid: u32,
    pub victim_comm: Option<String>,
    pub node: Option<String>,
    pub workload: Option<Workload>,
    pub kernel_log: Option<KernelLog>,
    pub kernel_report: KernelReport,
    pub diagnosis: Diagnosis,
    #[serde(skip)]
    pub line: String,
}

impl ReportRecord {
    /// Parses a line, after checking it against the schema.
    pub fn parse(line: &str) -> Result<ReportRecord> {
        let mut record: ReportRecord = parse_checked(line, "a kernel report")?;
        record.line = line.to_owned();
        Ok(record)
    }

    /// Whether this is the report of `event`: its victim at its kernel time.
    pub fn is_of(&self, event: &Event) -> bool {
        self.victim_pid == event.victim.pid && self.ktime_ns == Some(event.ktime_ns)
    }

    /// `(victim pid, ktime_ns)` of a report line: a tracer's
    /// [`ParseLine`](crate::tracer::ParseLine) that reads only reports.
    pub fn victim_and_ktime(line: &str) -> Option<(u32, u64)> {
        if !line.contains(r#""kind":"oom_kernel_report""#) {
            return None;
        }
        #[derive(Deserialize)]
        struct Minimal {
            victim_pid: u32,
            ktime_ns: u64,
        }
        let minimal: Minimal = serde_json::from_str(line).ok()?;
        Some((minimal.victim_pid, minimal.ktime_ns))
    }
}

impl fmt::Display for ReportRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line)
    }
}
