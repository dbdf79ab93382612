//! An OOM report from the kernel log, as the events `live` prints: one per
//! victim, with every field the log did not carry listed in `unavailable`.
//! Nothing is guessed: a field is filled only from a line that says it.

use std::time::SystemTime;

use oomtrace_klog::report::{CounterKind, Killed, OomReport};

use crate::event::{
    Cgroup, EventSource, KernelLog, KernelReport, LogOrigin, OomCgroup, OomEvent, ReportTask, Scope, ScopeSource,
    ScopeUnknownReason, Trigger, Victim, report::LARGEST_TASKS,
};

/// How the log's times become the event's.
#[derive(Clone, Copy, Debug)]
pub struct LogClock {
    /// Wall-clock time of boot, for logs of this boot (kmsg, the journal's
    /// current boot): `time` from the kernel timestamp. None for a saved file,
    /// whose boot is unknown: `time` only from the line's own wall clock.
    pub boot_wall: Option<SystemTime>,
    pub page_size: u64,
}

/// The fields an event read from the kernel log never has: they exist only
/// at the kill (the probes' `oom_control` and page counters).
const NEVER_IN_LOG: [&str; 5] = ["oom_id", "killed", "oom_totalpages", "chosen_points", "victim.tgid"];

/// The event of `report`'s victim (none when the report has no kill line).
/// The members of a `memory.oom.group` kill each have a report of their own.
pub fn events(report: &OomReport, origin: LogOrigin, clock: &LogClock) -> Vec<OomEvent> {
    report.killed.iter().map(|killed| event(report, killed, origin, clock)).collect()
}

fn event(report: &OomReport, killed: &Killed, origin: LogOrigin, clock: &LogClock) -> OomEvent {
    let mut unavailable: Vec<&'static str> = NEVER_IN_LOG.to_vec();
    let (scope, scope_unknown_reason) = scope(report, killed);
    let (task_memcg, oom_memcg) = memcg_paths(report);
    let victim_cgroup = task_memcg.map(cgroup_at);
    let oom_cgroup = match scope {
        Some(Scope::Memcg) => oom_memcg.map(|path| {
            let memory = report.memcg_counters.iter().find(|c| c.kind == CounterKind::Memory);
            OomCgroup {
                cgroup: cgroup_at(path),
                usage_bytes: memory.map(|c| c.usage_kb.saturating_mul(1024)),
                limit_bytes: memory.map(|c| c.limit_kb.saturating_mul(1024)),
            }
        }),
        _ => None,
    };
    let header = report.header.as_ref();
    let trigger = header.map(|h| Trigger {
        pid: report.cpu.as_ref().map_or(0, |c| c.pid),
        tgid: report.cpu.as_ref().map_or(0, |c| c.pid),
        comm: h.trigger_comm.clone(),
    });
    // The report ends with its kill line.
    let line = &report.last;
    let ktime_ns = line.since_boot.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let time = line.wall.or_else(|| Some(clock.boot_wall? + line.since_boot?)).map(rfc3339);
    for (missing, name) in [
        (time.is_none(), "time"),
        (ktime_ns.is_none(), "ktime_ns"),
        (trigger.is_none(), "trigger"),
        (scope.is_none(), "scope"),
        (victim_cgroup.is_none(), "victim_cgroup"),
        (scope == Some(Scope::Memcg) && oom_cgroup.is_none(), "oom_cgroup"),
        (header.and_then(|h| h.gfp_mask).is_none(), "gfp_mask"),
        (header.and_then(|h| h.order).is_none(), "order"),
    ] {
        if missing {
            unavailable.push(name);
        }
    }
    let kernel_report = kernel_report(report, clock.page_size);
    if kernel_report.memory_stat.is_empty() {
        unavailable.push("kernel_report.memory_stat");
    }
    if kernel_report.largest_tasks.is_empty() {
        unavailable.push("kernel_report.largest_tasks");
    }
    OomEvent {
        time,
        source: EventSource::KernelLog,
        kernel_log: Some(KernelLog { from: origin, seq: line.seq, full_report: report.header.is_some() }),
        ktime_ns,
        oom_id: None,
        killed: None,
        // Only the members after the first victim are marked in the log.
        group_kill: report.oom_group.as_ref().map(|_| true),
        scope,
        scope_source: scope.map(|_| ScopeSource::KernelLog),
        scope_unknown_reason,
        victim: victim(killed),
        victim_cgroup,
        oom_cgroup,
        oom_totalpages: None,
        chosen_points: None,
        gfp_mask: header.and_then(|h| h.gfp_mask).map(|m| format!("{m:#x}")),
        order: header.and_then(|h| h.order),
        trigger,
        kernel_report: Some(kernel_report).filter(|r| r != &KernelReport::default()),
        node: None,
        workload: None,
        sources: vec![origin.source_name()],
        unavailable,
    }
}

/// The scope the report states: the `oom-kill:` summary's constraint (5.0+),
/// else what the kill line's prefix and the pre-5.0 "Task in … killed as a
/// result of limit of …" line say. "Out of memory:" alone does not tell a
/// global OOM from a cpuset or mempolicy one: unknown, not global.
fn scope(report: &OomReport, killed: &Killed) -> (Option<Scope>, Option<ScopeUnknownReason>) {
    let from_constraint = report.constraint.as_ref().and_then(|c| match c.constraint.as_str() {
        "CONSTRAINT_MEMCG" => Some(Scope::Memcg),
        "CONSTRAINT_NONE" => Some(Scope::Global),
        "CONSTRAINT_CPUSET" => Some(Scope::Cpuset),
        "CONSTRAINT_MEMORY_POLICY" => Some(Scope::Mempolicy),
        _ => None,
    });
    match from_constraint {
        Some(scope) => (Some(scope), None),
        None if killed.memcg_prefix || report.task_in.is_some() => (Some(Scope::Memcg), None),
        None => (Some(Scope::Unknown), Some(ScopeUnknownReason::NotInLog)),
    }
}

/// (the victim's memcg, the OOMing memcg) as the report names them.
fn memcg_paths(report: &OomReport) -> (Option<&str>, Option<&str>) {
    if let Some(c) = &report.constraint {
        return (c.task_memcg.as_deref(), c.oom_memcg.as_deref());
    }
    match &report.task_in {
        Some(t) => (Some(t.task_memcg.as_str()), Some(t.oom_memcg.as_str())),
        None => (None, report.memcg_stat.as_ref().map(|s| s.memcg.as_str())),
    }
}

fn cgroup_at(path: &str) -> Cgroup {
    Cgroup { path: Some(path.to_owned()), ..Cgroup::default() }
}

fn victim(killed: &Killed) -> Victim {
    Victim {
        pid: killed.pid,
        tgid: None,
        comm: Some(killed.comm.clone()),
        uid: killed.uid,
        oom_score_adj: killed.oom_score_adj,
        total_vm_kb: killed.total_vm_kb,
        anon_rss_kb: killed.anon_rss_kb,
        file_rss_kb: killed.file_rss_kb,
        shmem_rss_kb: killed.shmem_rss_kb,
        pgtables_kb: killed.pgtables_kb,
    }
}

/// The report's memory.stat and its largest tasks by RSS.
pub fn kernel_report(report: &OomReport, page_size: u64) -> KernelReport {
    let mut tasks: Vec<ReportTask> = report
        .tasks
        .iter()
        .filter_map(|t| {
            Some(ReportTask {
                pid: t.pid,
                comm: t.name.clone(),
                rss_kb: t.rss_pages?.saturating_mul(page_size) / 1024,
                oom_score_adj: t.oom_score_adj,
            })
        })
        .collect();
    tasks.sort_by(|a, b| b.rss_kb.cmp(&a.rss_kb).then(a.pid.cmp(&b.pid)));
    tasks.truncate(LARGEST_TASKS);
    KernelReport {
        memory_stat_cgroup: report.memcg_stat.as_ref().map(|s| s.memcg.clone()),
        memory_stat: report.memcg_stat.as_ref().map(|s| s.values.clone()).unwrap_or_default(),
        largest_tasks: tasks,
        tasks_listed: (!report.tasks.is_empty()).then_some(report.tasks.len()),
    }
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_micros(time).to_string()
}
