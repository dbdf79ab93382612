//! What was found in a log against what the kernel counted: the line `history` ends with and
//! `diagnose` reports.

use super::{collect::CollectStats, read::ReadSummary};

/// The counts one reading of a log is reconciled from.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogCount {
    pub collected: CollectStats,
    pub read: ReadSummary,
    /// `oom_kill` of /proc/vmstat (logs of this boot only).
    pub kernel_count: Option<u64>,
}

impl LogCount {
    /// The kills found against those the kernel counted, with what explains a difference.
    pub fn reconciliation(&self) -> String {
        let found = self.collected.kills;
        let mut line = match self.kernel_count {
            Some(counted) => format!("kernel counted {counted} OOM kills since boot; {found} found in the log"),
            None => format!("{found} OOM kills found in the log"),
        };
        let mut notes = Vec::new();
        if self.read.rotated > 0 {
            notes.push(format!("{} earlier records rotated out of the ring buffer", self.read.rotated));
        }
        if self.read.overwritten > 0 {
            notes.push(format!("{} records overwritten while reading", self.read.overwritten));
        }
        if self.collected.kill_line_only > 0 {
            notes.push(plural(self.collected.kill_line_only, "report", "with only the kill line (rate-limited)"));
        }
        if self.collected.repeated > 0 {
            notes.push(format!(
                "{} of them a memory.oom.group kill's first victim killed again (one event each)",
                self.collected.repeated
            ));
        }
        if self.read.boots > 1 {
            notes.push(format!("{} boots", self.read.boots));
        }
        if self.read.skipped > 0 {
            notes.push(format!("{} lines of no known format skipped", self.read.skipped));
        }
        if self.collected.unparsed > 0 {
            notes.push(format!("{} OOM lines not understood", self.collected.unparsed));
        }
        if !notes.is_empty() {
            line.push_str(&format!(" ({})", notes.join("; ")));
        }
        if let Some(counted) = self.kernel_count
            && counted > found
        {
            line.push_str(&format!(
                "; {} not in this log{}",
                counted - found,
                if self.read.rotated > 0 { ": try --journal, which keeps more" } else { "" }
            ));
        }
        line
    }
}

/// "1 report with …", "2 reports with …".
fn plural(count: u64, noun: &str, rest: &str) -> String {
    format!("{count} {noun}{} {rest}", if count == 1 { "" } else { "s" })
}
