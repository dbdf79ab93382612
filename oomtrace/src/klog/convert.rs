//! An OOM report from the kernel log, as the events `live` prints: one per
//! victim, with every field the log did not carry listed in `unavailable`.
//! Nothing is guessed: a field is filled only from a line that says it.

use std::time::SystemTime;

use oomtrace_klog::report::{CounterKind, Killed, OomReport};

use oomtrace_event::{
    Cgroup, EventSource, KernelLog, KernelReport, LogOrigin, OomCgroup, OomEvent, RecordKind, ReportTask,
    SchemaVersion, Scope, ScopeSource, ScopeUnknownReason, Trigger, Victim, WallTime, report::LARGEST_TASKS,
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
    let (scope, scope_unknown_reason) = scope(report);
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
    // The header names the trigger (`<comm> invoked oom-killer`), also when
    // every line between it and the kill line is gone (`grep -i oom`); the
    // `CPU: … PID: … Comm: …` right after it gives its pid (the thread's).
    let trigger = match (header, &report.cpu) {
        (Some(header), cpu) => {
            Some(Trigger { pid: cpu.as_ref().map(|cpu| cpu.pid), tgid: None, comm: header.trigger_comm.clone() })
        }
        (None, Some(cpu)) => Some(Trigger { pid: Some(cpu.pid), tgid: None, comm: cpu.comm.clone() }),
        (None, None) => None,
    };
    // The report ends with its kill line.
    let line = &report.last;
    let ktime_ns = line.since_boot.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let time = line.wall.or_else(|| Some(clock.boot_wall? + line.since_boot?)).and_then(WallTime::from_system_time);
    for (missing, name) in [
        (time.is_none(), "time"),
        (ktime_ns.is_none(), "ktime_ns"),
        (trigger.is_none(), "trigger"),
        (trigger.as_ref().is_some_and(|t| t.pid.is_none()), "trigger.pid"),
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
        schema_version: SchemaVersion,
        kind: RecordKind::OomKill,
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
        diagnosis: None,
        node: None,
        workload: None,
        warned_seconds_before: None,
        not_warned: None,
        sources: vec![origin.source_name()],
        unavailable,
    }
}

/// A member of a `memory.oom.group` kill, whose report is its kill line
/// alone: it died in the same OOM-killer invocation as `leader` (the kernel
/// prints "Tasks in <group> are going to be killed due to memory.oom.group
/// set" right after the leader's kill line, then the members' kill lines), so
/// the scope, the OOMing memcg, the trigger and the report are the leader's.
/// Its cgroup is the group's memcg: the kernel names no member's own (for
/// kubelet's containers the group is the container's cgroup).
pub fn join_group(member: &mut OomEvent, leader: &OomEvent, group_memcg: &str) {
    member.scope = leader.scope;
    member.scope_source = leader.scope_source;
    member.scope_unknown_reason = leader.scope_unknown_reason;
    member.oom_cgroup.clone_from(&leader.oom_cgroup);
    member.victim_cgroup.get_or_insert_with(|| cgroup_at(group_memcg));
    member.trigger.clone_from(&leader.trigger);
    member.gfp_mask.clone_from(&leader.gfp_mask);
    member.order = leader.order;
    member.kernel_report.clone_from(&leader.kernel_report);
    let inherited = [
        "scope",
        "oom_cgroup",
        "trigger",
        "trigger.pid",
        "gfp_mask",
        "order",
        "kernel_report.memory_stat",
        "kernel_report.largest_tasks",
    ];
    member
        .unavailable
        .retain(|name| *name != "victim_cgroup" && (!inherited.contains(name) || leader.unavailable.contains(name)));
}

/// The scope the report states: the `oom-kill:` summary's constraint (5.0+),
/// else its wording ([`OomReport::is_memcg_oom`]): `Memory cgroup out of
/// memory:` and the pre-5.0 "Task in … killed as a result of limit of …" line
/// are a memcg's OOM; `Out of memory:` and `Out of memory
/// (oom_kill_allocating_task):` the machine's. The kernel prints `Out of
/// memory:` for the rare cpuset and mempolicy OOMs too, which only the summary
/// tells apart: without it they show as global, as with an inferred scope.
/// Unknown only when no line of the report has the wording (a kill line of
/// 3.x – 5.0, which has no prefix, alone).
fn scope(report: &OomReport) -> (Option<Scope>, Option<ScopeUnknownReason>) {
    let from_constraint = report.constraint.as_ref().and_then(|c| match c.constraint.as_str() {
        "CONSTRAINT_MEMCG" => Some(Scope::Memcg),
        "CONSTRAINT_NONE" => Some(Scope::Global),
        "CONSTRAINT_CPUSET" => Some(Scope::Cpuset),
        "CONSTRAINT_MEMORY_POLICY" => Some(Scope::Mempolicy),
        _ => None,
    });
    match (from_constraint, report.is_memcg_oom()) {
        (Some(scope), _) => (Some(scope), None),
        (None, Some(true)) => (Some(Scope::Memcg), None),
        (None, Some(false)) => (Some(Scope::Global), None),
        (None, None) => (Some(Scope::Unknown), Some(ScopeUnknownReason::NotInLog)),
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use oomtrace_klog::{LogLine, report::Parsed, report::ReportParser};

    use super::*;

    const PAGE: u64 = 4096;

    /// Parses `dmesg`-style lines (`[seconds] message`) into reports.
    fn reports(text: &str) -> Vec<OomReport> {
        let mut parser = ReportParser::new();
        let mut out = Vec::new();
        for line in text.lines() {
            let (stamp, message) = line.trim_start_matches('[').split_once("] ").expect("[stamp] message");
            let since_boot = Duration::from_secs_f64(stamp.trim().parse().expect("stamp"));
            let line = LogLine { message: message.to_owned(), since_boot: Some(since_boot), ..LogLine::default() };
            parser.push(&line, &mut out);
        }
        parser.finish(&mut out);
        out.into_iter()
            .filter_map(|p| match p {
                Parsed::Report(r) => Some(*r),
                Parsed::Reaped(_) => None,
            })
            .collect()
    }

    fn clock() -> LogClock {
        LogClock { boot_wall: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_410_400)), page_size: PAGE }
    }

    // This host's kernel (6.18, cgroup v1), trimmed: a memcg kill with its whole report.
    const FULL: &str = "\
[  100.000001] dd invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0
[  100.000002] CPU: 1 UID: 0 PID: 20689 Comm: dd Not tainted 6.18.0 #1 PREEMPT(voluntary)
[  100.000003] memory: usage 65536kB, limit 65536kB, failcnt 17
[  100.000004] Memory cgroup stats for /shop:
[  100.000005] rss 66895872
[  100.000006] shmem 0
[  100.000007] Tasks state (memory values in pages):
[  100.000008] [  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name
[  100.000009] [  20680]     0 20680     1000      100      90       10         0    45056        0             0 sh
[  100.000010] [  20689]     0 20689    66280    16730    16320      410         0   180224        0             0 dd
[  100.000011] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/shop,task_memcg=/shop/api,task=dd,pid=20689,uid=0
[  100.000012] Memory cgroup out of memory: Killed process 20689 (dd) total-vm:265120kB, anon-rss:65280kB, file-rss:1620kB, shmem-rss:0kB, UID:0 pgtables:176kB oom_score_adj:0";

    #[test]
    fn a_full_report_gives_every_field_the_log_has_and_lists_the_rest() {
        let reports = reports(FULL);
        assert_eq!(reports.len(), 1);
        let events = events(&reports[0], LogOrigin::File, &clock());
        assert_eq!(events.len(), 1);
        let event = &events[0];
        assert_eq!(event.source, EventSource::KernelLog);
        assert_eq!((event.victim.pid, event.victim.comm.as_deref()), (20689, Some("dd")));
        assert_eq!((event.victim.anon_rss_kb, event.victim.file_rss_kb), (Some(65280), Some(1620)));
        assert_eq!(event.scope, Some(Scope::Memcg));
        assert_eq!(event.victim_cgroup.as_ref().and_then(|c| c.path.as_deref()), Some("/shop/api"));
        let oom = event.oom_cgroup.as_ref().expect("oom_cgroup");
        assert_eq!(oom.cgroup.path.as_deref(), Some("/shop"));
        assert_eq!((oom.usage_bytes, oom.limit_bytes), (Some(64 << 20), Some(64 << 20)));
        let trigger = event.trigger.as_ref().expect("trigger");
        assert_eq!((trigger.pid, trigger.tgid, trigger.comm.as_str()), (Some(20689), None, "dd"));
        assert_eq!(event.gfp_mask.as_deref(), Some("0xcc0"));
        assert_eq!(event.ktime_ns, Some(100_000_012_000));
        assert_eq!(event.time.map(|t| t.to_string()).as_deref(), Some("2025-11-29T10:01:40.000012Z"));
        let report = event.kernel_report.as_ref().expect("kernel_report");
        assert_eq!(report.memory_stat.get("rss"), Some(&66_895_872));
        assert_eq!(report.largest_tasks.first().map(|t| (t.pid, t.rss_kb)), Some((20689, 16730 * 4)));
        assert_eq!(report.tasks_listed, Some(2));
        for never in NEVER_IN_LOG {
            assert!(event.unavailable.contains(&never), "{never}");
        }
        assert!(!event.unavailable.contains(&"trigger") && !event.unavailable.contains(&"time"));
    }

    #[test]
    fn a_kill_line_alone_says_only_what_it_says() {
        let line = "[  5.5] Out of memory: Killed process 7 (java) total-vm:1000kB, anon-rss:900kB, file-rss:0kB, \
                    shmem-rss:0kB, UID:1000 pgtables:12kB oom_score_adj:0";
        let reports = reports(line);
        let events = events(&reports[0], LogOrigin::Kmsg, &LogClock { boot_wall: None, page_size: PAGE });
        let event = &events[0];
        // `out_of_memory` prints "Out of memory" for every OOM that is not a memcg's.
        assert_eq!((event.scope, event.scope_unknown_reason), (Some(Scope::Global), None));
        assert!(event.oom_cgroup.is_none() && !event.unavailable.contains(&"oom_cgroup"));
        assert!(event.trigger.is_none() && event.victim_cgroup.is_none() && event.time.is_none());
        assert_eq!(event.kernel_log.as_ref().map(|l| l.full_report), Some(false));
        for missing in ["trigger", "victim_cgroup", "time", "gfp_mask", "kernel_report.memory_stat"] {
            assert!(event.unavailable.contains(&missing), "{missing}: {:?}", event.unavailable);
        }
    }

    #[test]
    fn a_memcg_kill_line_alone_is_a_memcg_oom() {
        let line = "[  5.5] Memory cgroup out of memory: Killed process 7 (java) total-vm:1000kB, anon-rss:900kB, \
                    file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:12kB oom_score_adj:0";
        let event = &events(&reports(line)[0], LogOrigin::Kmsg, &clock())[0];
        assert_eq!(event.scope, Some(Scope::Memcg));
        assert!(event.oom_cgroup.is_none(), "no line names the memcg");
        assert!(event.unavailable.contains(&"oom_cgroup"));
    }

    /// `grep -i oom` keeps the header and a 5.x kill line: the trigger by name, the
    /// allocation, the scope and the victim, as from the whole report.
    #[test]
    fn a_header_and_its_kill_line_alone_give_the_trigger_scope_and_victim() {
        let full = &events(&reports(FULL)[0], LogOrigin::File, &clock())[0];
        let grepped: Vec<&str> = FULL.lines().filter(|line| line.to_lowercase().contains("oom")).collect();
        assert_eq!(grepped.len(), 4, "header, the task table's columns, summary, kill line");
        for cut in [grepped.join("\n"), [grepped[0], grepped[3]].join("\n")] {
            let event = &events(&reports(&cut)[0], LogOrigin::File, &clock())[0];
            assert_eq!((event.scope, event.victim.pid), (full.scope, full.victim.pid), "{cut}");
            let trigger = event.trigger.as_ref().expect("trigger from the header");
            assert_eq!((trigger.pid, trigger.comm.as_str()), (None, "dd"));
            assert_eq!((&event.gfp_mask, event.order), (&full.gfp_mask, full.order));
            assert!(event.unavailable.contains(&"trigger.pid") && !event.unavailable.contains(&"trigger"));
        }
    }

    /// Before 5.1 the kill line has no prefix: the selection line before it says which OOM it
    /// was; without either, the scope is unknown.
    #[test]
    fn an_unprefixed_kill_line_takes_the_scope_from_its_selection_line() {
        let kill = "[  5.6] Killed process 7 (java) total-vm:1000kB, anon-rss:900kB, file-rss:0kB, shmem-rss:0kB";
        for (selection, scope) in [
            ("[  5.5] Memory cgroup out of memory: Kill process 7 (java) score 999 or sacrifice child", Scope::Memcg),
            ("[  5.5] Out of memory: Kill process 7 (java) score 999 or sacrifice child", Scope::Global),
            (
                "[  5.5] Out of memory (oom_kill_allocating_task): Kill process 7 (java) score 1 or sacrifice child",
                Scope::Global,
            ),
        ] {
            let event = &events(&reports(&format!("{selection}\n{kill}"))[0], LogOrigin::File, &clock())[0];
            assert_eq!((event.scope, event.victim.pid), (Some(scope), 7), "{selection}");
        }
        let alone = &events(&reports(kill)[0], LogOrigin::File, &clock())[0];
        assert_eq!(
            (alone.scope, alone.scope_unknown_reason),
            (Some(Scope::Unknown), Some(ScopeUnknownReason::NotInLog))
        );
    }
}
