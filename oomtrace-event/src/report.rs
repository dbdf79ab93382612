//! What an event carries from the kernel log: which log it was read from, and
//! the parts of the kernel's OOM report no probe reads (the OOMing memcg's
//! memory.stat at the kill, the largest tasks in it).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;
use strum::{EnumString, IntoStaticStr, VariantArray};

use crate::{Diagnosis, RecordKind, SchemaVersion, WallTime, WorkloadInfo};

/// Which kernel log an event was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema, IntoStaticStr, EnumString, VariantArray)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum LogOrigin {
    /// `/dev/kmsg`: the kernel's ring buffer.
    Kmsg,
    /// The same ring buffer through syslog(2), what `dmesg` uses: where
    /// /dev/kmsg cannot be opened (an unprivileged container).
    Klogctl,
    /// The systemd journal's kernel messages (`journalctl -k`).
    Journal,
    /// A saved log (`--file`: syslog, kern.log, `dmesg` output, …) or stdin.
    File,
}

impl LogOrigin {
    /// The name in an event's `sources`.
    pub fn source_name(self) -> &'static str {
        match self {
            Self::Kmsg => "kernel_log:kmsg",
            Self::Klogctl => "kernel_log:klogctl",
            Self::Journal => "kernel_log:journal",
            Self::File => "kernel_log:file",
        }
    }
}

/// The log record an event was read from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct KernelLog {
    pub from: LogOrigin,
    /// `/dev/kmsg` sequence number of the report's kill line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The report's lines were found (false: only the kill line survived:
    /// the header and the tables were rate-limited away or filtered out).
    pub full_report: bool,
}

/// A task of the kernel's "Tasks state" table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ReportTask {
    pub pid: u32,
    pub comm: String,
    /// Resident memory, kB (the table's `rss` pages × page size).
    pub rss_kb: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
}

/// The parts of the kernel's OOM report that no probe reads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct KernelReport {
    /// The memcg whose statistics the kernel printed (the OOMing memcg).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_stat_cgroup: Option<String>,
    /// Its memory.stat at the kill, bytes, under the kernel's names (cgroup v2:
    /// `anon`, `file`, `shmem`, `kernel`, `slab`, `sock`, …; v1: `rss`,
    /// `cache`, `shmem`, …).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub memory_stat: BTreeMap<String, u64>,
    /// The largest tasks of the report's task table by RSS, largest first
    /// (at most [`LARGEST_TASKS`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub largest_tasks: Vec<ReportTask>,
    /// How many tasks the table listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks_listed: Option<usize>,
}

/// The kernel's report of a live kill, read from its log after the kill went
/// out as an `oom_kill` event (which never waits for the log): one record per
/// event whose report the kernel printed (none where it rate-limited the
/// report to its kill line). Joined to its event on `oom_id`, or on
/// `victim_pid` and `ktime_ns`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct KernelReportRecord {
    pub schema_version: SchemaVersion,
    /// Always `oom_kernel_report`.
    pub kind: RecordKind,
    /// The event's `time`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<WallTime>,
    /// The event's `ktime_ns`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ktime_ns: Option<u64>,
    /// The event's `oom_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_id: Option<u64>,
    /// The event's `victim.pid`.
    pub victim_pid: u32,
    /// The event's `victim.comm`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub victim_comm: Option<String>,
    /// The event's `node`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The event's `workload`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<WorkloadInfo>,
    /// Where in the log the report was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_log: Option<KernelLog>,
    pub kernel_report: KernelReport,
    /// The event's diagnosis with the report: the same cause, and the
    /// findings, summary and advice the report adds (tmpfs, page cache,
    /// kernel memory; the largest process).
    pub diagnosis: Diagnosis,
}

/// How many of the report's tasks an event lists.
pub const LARGEST_TASKS: usize = 5;

#[cfg(test)]
mod tests {
    use strum::VariantArray;

    use super::LogOrigin;

    /// An event's `sources` names its log as `kernel_log:` and the log's name.
    #[test]
    fn the_source_name_is_the_origin_name() {
        for origin in LogOrigin::VARIANTS {
            assert_eq!(origin.source_name(), format!("kernel_log:{}", origin.as_str()));
        }
    }
}
