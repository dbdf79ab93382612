//! The warning record of `oomtrace live -o json` (docs/events.md, `kind` =
//! `warning`), read independently of oomtrace's types, and the records of a
//! stream that mixes warnings, kills and their kernel reports.

use std::fmt;

use anyhow::{Context as _, Result};
use serde::Deserialize;

use crate::{
    event::{Advice, Event, Workload, parse_checked},
    report::ReportRecord,
};

/// One warning.
#[derive(Clone, Debug, Deserialize)]
pub struct WarningRecord {
    pub time: String,
    /// `warning`, `imminent` or `recovered`.
    pub state: String,
    pub limit_level: String,
    pub cgroup: Option<String>,
    pub usage_bytes: u64,
    pub unreclaimable_bytes: u64,
    pub limit_bytes: u64,
    pub slope_bytes_per_second: f64,
    pub seconds_left: Option<f64>,
    pub growth: Option<String>,
    /// Limit reclaim during the window (where the kernel side counts it).
    pub reclaim: Option<Reclaim>,
    pub workload: Option<Workload>,
    pub summary: String,
    #[serde(default)]
    pub advice: Vec<Advice>,
    #[serde(skip)]
    pub line: String,
}

/// A warning's `reclaim`.
#[derive(Clone, Copy, Debug, Deserialize)]
pub struct Reclaim {
    pub runs: u64,
    pub reclaimed_bytes: u64,
}

impl WarningRecord {
    /// Parses a line, after checking it against the schema.
    pub fn parse(line: &str) -> Result<WarningRecord> {
        let mut warning: WarningRecord = parse_checked(line, "a warning")?;
        warning.line = line.to_owned();
        Ok(warning)
    }

    /// The advice step `action`.
    pub fn advice(&self, action: &str) -> Option<&Advice> {
        self.advice.iter().find(|a| a.action == action)
    }

    /// The wall-clock time, seconds since the epoch.
    pub fn epoch_seconds(&self) -> Option<f64> {
        epoch_seconds(&self.time)
    }
}

impl fmt::Display for WarningRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line)
    }
}

/// A line of the stream.
#[derive(Clone, Debug)]
pub enum Record {
    Kill(Box<Event>),
    Warning(Box<WarningRecord>),
    KernelReport(Box<ReportRecord>),
}

impl Record {
    /// Parses a line by its `kind`, after checking it against the schema.
    pub fn parse(line: &str) -> Result<Record> {
        let value: serde_json::Value = serde_json::from_str(line).with_context(|| format!("not JSON: {line}"))?;
        Ok(match value.get("kind").and_then(serde_json::Value::as_str) {
            Some("warning") => Record::Warning(Box::new(WarningRecord::parse(line)?)),
            Some("oom_kernel_report") => Record::KernelReport(Box::new(ReportRecord::parse(line)?)),
            _ => Record::Kill(Box::new(Event::parse(line)?)),
        })
    }

    /// A tracer's line parser for streams of every record: every record line
    /// counts, a kill with its `(victim pid, ktime_ns)`, a warning or a kernel report as `(0, 0)`.
    pub fn key(line: &str) -> Option<(u32, u64)> {
        Event::victim_and_ktime(line).or_else(|| {
            (line.contains(r#""kind":"warning""#) || line.contains(r#""kind":"oom_kernel_report""#)).then_some((0, 0))
        })
    }
}

/// RFC 3339 (`2026-11-25T23:12:34.987994Z`, UTC) as seconds since the epoch.
pub fn epoch_seconds(time: &str) -> Option<f64> {
    let at = humantime::parse_rfc3339(time).ok()?;
    at.duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_count_from_the_epoch() {
        assert_eq!(epoch_seconds("1970-01-01T00:00:01.500000Z"), Some(1.5));
        assert_eq!(epoch_seconds("2026-11-25T23:12:34.000000Z"), Some(1_795_648_354.0));
        assert_eq!(epoch_seconds("yesterday"), None);
    }
}
