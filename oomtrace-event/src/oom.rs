//! One OOM victim, as users see it. The eBPF decoder builds it from the raw
//! ring-buffer record, the kernel log from the OOM report; enrichment fills in
//! the cgroup paths and the [`WorkloadInfo`]. A field the kernel could not
//! provide is `None` and left out of the JSON; see docs/events.md.

use schemars::JsonSchema;
use serde::Serialize;
use strum::{EnumString, IntoStaticStr, VariantArray};

use crate::{Diagnosis, KernelLog, KernelReport, NotWarned, WallTime, WorkloadInfo};

/// What an NDJSON line is (`kind`, its second field): one stream carries both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema, IntoStaticStr, EnumString, VariantArray)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum RecordKind {
    /// An [`OomEvent`].
    OomKill,
    /// A [`Warning`](crate::Warning).
    Warning,
    /// A [`KernelReportRecord`](crate::KernelReportRecord): the kernel's
    /// report of a kill already sent as an `oom_kill`.
    OomKernelReport,
}

/// What the OOM was constrained by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema, IntoStaticStr, EnumString, VariantArray)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Scope {
    /// A memory cgroup hit its limit.
    Memcg,
    /// The whole machine ran out of memory.
    Global,
    /// The allocating task's cpuset ran out of memory.
    Cpuset,
    /// The allocating task's NUMA memory policy ran out of memory.
    Mempolicy,
    /// Could not be determined; `scope_unknown_reason` says why. Never
    /// reported as `global` without a reason: that would send an operator
    /// after the node.
    Unknown,
}

/// Why the scope could not be inferred (no `oom_kill_process` probe).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema, IntoStaticStr, EnumString, VariantArray)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ScopeUnknownReason {
    /// The walk up from the victim's memcg stopped at its depth bound
    /// (`MAX_CGROUP_DEPTH` levels) before the root, with no memcg at its
    /// limit on the way: a limit further up cannot be ruled out.
    WalkDepthLimit,
    /// The victim's memcg or one of its ancestors could not be read (or the
    /// victim's task was not available to the probe).
    MemcgUnreadable,
    /// A kernel-log event whose report does not say: no line of it that
    /// survived has the wording (a 3.x – 5.0 kill line, which has no
    /// `Out of memory:` / `Memory cgroup out of memory:` prefix, alone).
    NotInLog,
}

/// How the scope and the OOMing memcg were determined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema, IntoStaticStr, EnumString, VariantArray)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ScopeSource {
    /// Read from `struct oom_control` in `oom_kill_process`.
    OomControl,
    /// Inferred: the nearest memcg at its limit above the victim (or none).
    Inferred,
    /// Read from the kernel's OOM report in its log (the `oom-kill:` summary's
    /// constraint, or the kill line's "Memory cgroup out of memory" prefix).
    KernelLog,
}

/// Where an event came from.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, JsonSchema, IntoStaticStr, EnumString, VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum EventSource {
    /// The eBPF probes, as the kill happened (`live`, `daemon`).
    #[default]
    Ebpf,
    /// The kernel's OOM report in its log, read afterwards (`history`, the
    /// daemon's past kills); `kernel_log` says which log.
    KernelLog,
}

/// The killed (or marked) task.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Victim {
    pub pid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tgid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_vm_kb: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anon_rss_kb: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_rss_kb: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shmem_rss_kb: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pgtables_kb: Option<u64>,
}

impl Victim {
    /// anon + file + shmem RSS, when all three are known.
    pub fn rss_kb(&self) -> Option<u64> {
        Some(self.anon_rss_kb? + self.file_rss_kb? + self.shmem_rss_kb?)
    }
}

/// The task whose allocation ran into the OOM.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Trigger {
    /// The thread's pid. Absent for a kernel-log event whose report kept its header
    /// (`<comm> invoked oom-killer: …`) but not the `CPU: … PID: …` line after it (a
    /// grepped log).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Absent for a kernel-log event: the report prints the thread's pid only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tgid: Option<u32>,
    pub comm: String,
}

/// A memory cgroup as captured at the kill.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Cgroup {
    /// kernfs id (the inode number of the cgroup directory); 0 (and left out
    /// of the JSON) when unknown: a kernel-log event names cgroups by path only,
    /// and gets the id only while the directory still exists.
    #[serde(skip_serializing_if = "is_zero")]
    pub id: u64,
    /// Path from the hierarchy root, e.g. `/kubepods/burstable/pod…/…`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The kernel could not capture the whole path (deeper than
    /// `MAX_CGROUP_DEPTH` levels, or more than 2 KiB of names) and its top was
    /// not found either: `path` is the captured part, starting with `…/`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub path_truncated: bool,
    /// The kernfs parent's id and the directory name: how `path` is rebuilt
    /// from the index when nothing else was captured.
    #[serde(skip)]
    pub parent_id: u64,
    #[serde(skip)]
    pub name: String,
    /// The cgroup and its ancestors as the kernel saw them at the kill (the
    /// victim's cgroup only): names it even after the directories are gone.
    #[serde(skip)]
    pub captured: Option<CapturedPath>,
}

/// A cgroup path captured in the kernel, nearest level first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CapturedPath {
    /// (kernfs id, directory name) of the cgroup, then of each parent.
    pub levels: Vec<(u64, String)>,
    /// `None`: the last level is the hierarchy root (whose name is empty).
    /// `Some(id)`: the capture stopped below the root; `id` is the kernfs id
    /// of the nearest ancestor not captured (0 if unknown).
    pub uncaptured_id: Option<u64>,
}

/// The memcg that hit its limit, with its page counter at the kill.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct OomCgroup {
    #[serde(flatten)]
    pub cgroup: Cgroup,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_bytes: Option<u64>,
}

/// One OOM victim.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct OomEvent {
    /// The version of this JSON (`oomtrace_event::SCHEMA_VERSION`).
    pub schema_version: SchemaVersion,
    /// Always `oom_kill`.
    pub kind: RecordKind,
    /// Wall-clock time of the kill (RFC 3339, UTC). Absent only for a kill
    /// read from a saved log that carries kernel timestamps but no wall-clock
    /// time (`dmesg` output without `-T`): the boot it counts from is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<WallTime>,
    /// Where this event came from.
    pub source: EventSource,
    /// The kernel log the event was read from (`source` = `kernel_log`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_log: Option<KernelLog>,
    /// Kernel CLOCK_MONOTONIC timestamp of `mark_victim` (eBPF), or the
    /// kernel log's timestamp of the kill line (`kernel_log`; absent when the
    /// log kept only wall-clock times, e.g. `dmesg -T`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ktime_ns: Option<u64>,
    /// Identifies one OOM-killer invocation (shared by the victims of a group kill).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_id: Option<u64>,
    /// The kernel sent SIGKILL (false: the victim was already exiting).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub killed: Option<bool>,
    /// `memory.oom.group`: every task of the cgroup is killed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_kill: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope_source: Option<ScopeSource>,
    /// Set when `scope` is `unknown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope_unknown_reason: Option<ScopeUnknownReason>,
    pub victim: Victim,
    /// The victim's own memory cgroup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub victim_cgroup: Option<Cgroup>,
    /// The memory cgroup that hit its limit (an ancestor of the victim's with
    /// pod-level limits); absent for a global OOM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_cgroup: Option<OomCgroup>,
    /// `oom_control.totalpages`: the limit, in pages, the OOM ran against
    /// (memcg max plus swap for a memcg OOM; RAM plus swap for a global one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_totalpages: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chosen_points: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gfp_mask: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<i32>,
    /// Absent only for a kernel-log event whose report header was not logged
    /// (rate-limited, or a grep-filtered excerpt).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// What only the kernel's OOM report has: the OOMing memcg's memory.stat
    /// and its largest tasks (kernel-log events). A live (`ebpf`) event goes
    /// out before the kernel log is read: its report follows in an
    /// `oom_kernel_report` record ([`KernelReportRecord`](crate::KernelReportRecord)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_report: Option<KernelReport>,
    /// Why the kill happened (cause and findings; docs/events.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<Diagnosis>,
    /// The node (Kubernetes node name or hostname).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The victim's container, pod or service (see docs/events.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<WorkloadInfo>,
    /// Seconds from the first warning of the cgroup that hit its limit (or
    /// of the node) to this kill; absent when it was not warned (`not_warned`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warned_seconds_before: Option<f64>,
    /// Why it was not warned, where the watcher can tell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_warned: Option<NotWarned>,
    /// The programs that supplied this event's fields.
    pub sources: Vec<&'static str>,
    /// Fields this kernel or these probes could not provide (absent above).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<&'static str>,
}

impl OomEvent {
    /// An eBPF event of `victim` with nothing else known: what tests (and
    /// examples) fill in.
    pub fn of_victim(victim: Victim) -> Self {
        Self {
            schema_version: SchemaVersion,
            kind: RecordKind::OomKill,
            time: None,
            source: EventSource::Ebpf,
            kernel_log: None,
            ktime_ns: None,
            oom_id: None,
            killed: None,
            group_kill: None,
            scope: None,
            scope_source: None,
            scope_unknown_reason: None,
            victim,
            victim_cgroup: None,
            oom_cgroup: None,
            oom_totalpages: None,
            chosen_points: None,
            gfp_mask: None,
            order: None,
            trigger: None,
            kernel_report: None,
            diagnosis: None,
            node: None,
            workload: None,
            warned_seconds_before: None,
            not_warned: None,
            sources: Vec::new(),
            unavailable: Vec::new(),
        }
    }
}

/// Written as [`SCHEMA_VERSION`](crate::SCHEMA_VERSION): the version of the
/// types this program was built with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchemaVersion;

impl Serialize for SchemaVersion {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(crate::SCHEMA_VERSION)
    }
}

impl JsonSchema for SchemaVersion {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SchemaVersion".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "integer", "const": crate::SCHEMA_VERSION })
    }
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every NDJSON line starts with the schema version.
    #[test]
    fn the_schema_version_comes_first() {
        let event = OomEvent {
            time: "2026-11-25T23:12:34.987994Z".parse().ok(),
            ..OomEvent::of_victim(Victim { pid: 7, ..Victim::default() })
        };
        let json = serde_json::to_string(&event).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"schema_version":3,"kind":"oom_kill","time":"2026-11-25T23:12:34.987994Z","source":"ebpf","victim":{"pid":7},"sources":[]}"#
        );
    }
}
