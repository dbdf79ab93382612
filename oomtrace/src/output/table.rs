//! The human table of `oomtrace live`.

use std::io::Write;

use super::EventWriter;
use crate::diagnosis::findings::Breakdown;
use crate::escape::escape;
use oomtrace_event::{
    Finding, KernelReportRecord, OomEvent, ScopeSource, WallTime, Warning, WorkloadInfo, WorkloadKind,
};

pub struct TableWriter;

const HEADER: &str = "TIME (UTC)              PID      COMM             WORKLOAD (NAMESPACE/POD/CONTAINER or CGROUP)             USAGE/LIMIT      RSS      SCOPE      CAUSE            KILLED TRIGGER";

impl EventWriter for TableWriter {
    fn start(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(out, "{HEADER}")?;
        out.flush()
    }

    fn event(&mut self, out: &mut dyn Write, event: &OomEvent) -> std::io::Result<()> {
        writeln!(out, "{}", row(event))?;
        out.flush()
    }

    fn warning(&mut self, out: &mut dyn Write, warning: &Warning) -> std::io::Result<()> {
        writeln!(out, "{}", warning_row(warning))?;
        out.flush()
    }

    fn kernel_report(&mut self, out: &mut dyn Write, record: &KernelReportRecord) -> std::io::Result<()> {
        writeln!(out, "{}", report_row(record))?;
        out.flush()
    }
}

/// A kill's kernel report, after its kill's row: its time, pid and comm,
/// `REPORT`, then what the report adds: the OOMing memcg's memory by kind,
/// its largest process, and the findings they make (tmpfs, page cache,
/// kernel memory with their shares).
pub fn report_row(record: &KernelReportRecord) -> String {
    let time = record.time.as_ref().map_or_else(|| "?".to_owned(), day_and_clock);
    let comm = escape(record.victim_comm.as_deref().unwrap_or("?"));
    let report = &record.kernel_report;
    let mut parts = Vec::new();
    if !report.memory_stat.is_empty() {
        let memory = Breakdown::of(&report.memory_stat);
        let kernel = if memory.kernel > 0 { format!(" kernel {}", bytes(Some(memory.kernel))) } else { String::new() };
        parts.push(format!(
            "anon {} file {} shmem {}{kernel}",
            bytes(Some(memory.anon)),
            bytes(Some(memory.file)),
            bytes(Some(memory.shmem))
        ));
    }
    if let Some(task) = report.largest_tasks.first() {
        parts.push(format!("largest {} ({}) {}", escape(&task.comm), task.pid, bytes(Some(task.rss_kb * 1024))));
    }
    for finding in &record.diagnosis.findings {
        match finding {
            Finding::Tmpfs { share_percent, .. }
            | Finding::PageCache { share_percent, .. }
            | Finding::KernelMemory { share_percent, .. } => {
                parts.push(format!("{} {share_percent}%", finding.kind().as_str()))
            }
            _ => {}
        }
    }
    format!("{time:<23} {pid:<8} {comm:<16} REPORT {}", parts.join("; "), pid = record.victim_pid)
}

/// A warning's row, in the kill's columns: `WARN` under PID, the state under
/// COMM, unreclaimable/limit under USAGE/LIMIT, the time left under RSS, the
/// trend under SCOPE, the limit level under CAUSE.
pub fn warning_row(warning: &Warning) -> String {
    let time = day_and_clock(&warning.time);
    let workload = warning_subject(warning.workload.as_ref(), warning.cgroup.as_deref());
    let held = format!("{}/{}", bytes(Some(warning.unreclaimable_bytes)), bytes(Some(warning.limit_bytes)));
    let left = warning.seconds_left.map_or_else(|| "-".to_owned(), seconds);
    let trend = format!("{}/s", bytes(Some(warning.slope_bytes_per_second.max(0.0) as u64)));
    format!(
        "{time:<23} {tag:<8} {state:<16} {workload:<56} {held:<16} {left:<8} {trend:<10} {level}",
        tag = "WARN",
        state = warning.state.as_str(),
        level = warning.limit_level.as_str(),
    )
}

/// Who a warning (or a `top` row) is about: the Kubernetes name, the unit, the cgroup, or the node; escaped.
pub fn warning_subject(workload: Option<&WorkloadInfo>, cgroup: Option<&str>) -> String {
    let Some(cgroup) = cgroup else { return "(node)".to_owned() };
    let subject = match workload {
        Some(w) => w.kubernetes_name().or_else(|| w.unit.clone()).unwrap_or_else(|| cgroup.to_owned()),
        None => cgroup.to_owned(),
    };
    escape(&subject).into_owned()
}

/// `42s`, `3.5s`, `12m`, `2h`.
pub fn seconds(value: f64) -> String {
    match value {
        v if v < 10.0 => format!("{v:.1}s"),
        v if v < 600.0 => format!("{v:.0}s"),
        v if v < 36_000.0 => format!("{:.0}m", v / 60.0),
        v => format!("{:.0}h", v / 3600.0),
    }
}

/// One table row; the names in it escaped.
pub fn row(event: &OomEvent) -> String {
    let time = row_time(event);
    let comm = escape(event.victim.comm.as_deref().unwrap_or("?"));
    let cgroup = event
        .victim_cgroup
        .as_ref()
        .and_then(|c| c.path.clone().or_else(|| Some(format!("id:{}", c.id))))
        .unwrap_or_else(|| "?".to_owned());
    let workload = match event.workload.as_ref() {
        Some(w) => match w.kubernetes_name() {
            // kubernetes_name already says "(monitor of …)" for a monitor.
            Some(name) if w.main_process == Some(false) => format!("{name} (not main)"),
            Some(name) => name,
            None if w.kind == WorkloadKind::ContainerMonitor => format!("{cgroup} (monitor)"),
            None => cgroup,
        },
        None => cgroup,
    };
    let workload = escape(&workload);
    let usage_limit = event.oom_cgroup.as_ref().map_or_else(
        || match event.oom_totalpages {
            Some(_) => "-".to_owned(),
            None => "?".to_owned(),
        },
        |oom| format!("{}/{}", bytes(oom.usage_bytes), bytes(oom.limit_bytes)),
    );
    let rss = event.victim.rss_kb().map_or_else(|| "?".to_owned(), |kb| bytes(Some(kb * 1024)));
    let scope = match (event.scope, event.scope_source) {
        (Some(scope), Some(ScopeSource::Inferred)) => format!("{}*", scope.as_str()),
        (Some(scope), _) => scope.as_str().to_owned(),
        (None, _) => "?".to_owned(),
    };
    let killed = match event.killed {
        Some(true) if event.group_kill == Some(true) => "group",
        Some(true) => "yes",
        Some(false) => "no",
        None => "?",
    };
    // The longest cause name, node_allocatable, fills the column.
    let cause = event.diagnosis.as_ref().map_or("?", |d| d.cause.as_str());
    let trigger = event.trigger.as_ref().map_or_else(
        || "?".to_owned(),
        |t| match t.pid {
            Some(pid) => format!("{pid} {}", escape(&t.comm)),
            None => format!("? {}", escape(&t.comm)),
        },
    );
    format!(
        "{time:<23} {pid:<8} {comm:<16} {workload:<56} {usage_limit:<16} {rss:<8} {scope:<10} {cause:<16} {killed:<6} {trigger}",
        pid = event.victim.pid,
    )
}

/// "2026-11-25T22:41:07.123"; without a wall-clock time, the kernel
/// timestamp: "+1234.567s" (seconds since boot).
fn row_time(event: &OomEvent) -> String {
    match (&event.time, event.ktime_ns) {
        (Some(time), _) => day_and_clock(time),
        (None, Some(ns)) => format!("+{}.{:03}s", ns / 1_000_000_000, ns % 1_000_000_000 / 1_000_000),
        (None, None) => "?".to_owned(),
    }
}

/// 2026-11-25T22:41:07.123456Z -> "2026-11-25T22:41:07.123": always with
/// the day, because `history` spans the boot (days on a node), the daemon's
/// stdout its whole run, and a row pasted elsewhere must still say when; one
/// word, so that the PID stays the second column for `awk`.
fn day_and_clock(time: &WallTime) -> String {
    let text = time.to_string();
    text.get(..23).unwrap_or(&text).to_owned()
}

/// 1536 -> "1.5K", 67108864 -> "64.0M".
pub fn bytes(value: Option<u64>) -> String {
    let Some(value) = value else { return "?".to_owned() };
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut scaled = value as f64;
    let mut unit = 0;
    while scaled >= 1024.0 && unit < UNITS.len() - 1 {
        scaled /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{value}B") } else { format!("{scaled:.1}{}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::diagnosis;
    use oomtrace_event::{
        Attribution, Cgroup, OomCgroup, Scope, Trigger, Victim, WorkloadInfo, workload::MonitoredContainer,
    };

    fn event_in(path: &str, workload: WorkloadInfo) -> OomEvent {
        OomEvent {
            time: "2026-11-25T22:41:07.123456Z".parse().ok(),
            killed: Some(true),
            victim_cgroup: Some(Cgroup { id: 9, path: Some(path.to_owned()), ..Cgroup::default() }),
            trigger: Some(Trigger { pid: Some(7), tgid: Some(7), comm: "conmon".to_owned() }),
            workload: Some(workload),
            ..OomEvent::of_victim(Victim { pid: 7, comm: Some("conmon".to_owned()), ..Victim::default() })
        }
    }

    /// A report's row says what the report adds: memory by kind, the largest
    /// process and the memory findings, escaped.
    #[test]
    fn a_report_row_shows_what_the_report_adds() {
        use oomtrace_event::{KernelReport, RecordKind, ReportTask, SchemaVersion};
        const MIB: u64 = 1 << 20;
        let stat = [("anon", 10 * MIB), ("file", 40 * MIB), ("shmem", 30 * MIB), ("kernel", 2 * MIB)];
        let report = KernelReport {
            memory_stat: stat.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            largest_tasks: vec![ReportTask {
                pid: 42,
                comm: "j\x1bava".to_owned(),
                rss_kb: 8 * 1024,
                oom_score_adj: None,
            }],
            ..KernelReport::default()
        };
        let mut event = event_in("/a", WorkloadInfo::new(WorkloadKind::Unknown, Attribution::Unknown));
        event.kernel_report = Some(report.clone());
        let record = KernelReportRecord {
            schema_version: SchemaVersion,
            kind: RecordKind::OomKernelReport,
            time: event.time,
            ktime_ns: None,
            oom_id: None,
            victim_pid: 7,
            victim_comm: Some("dd".to_owned()),
            node: None,
            workload: None,
            kernel_log: None,
            kernel_report: report,
            diagnosis: diagnosis::diagnose(&event),
        };
        assert_eq!(
            report_row(&record),
            "2026-11-25T22:41:07.123 7        dd               REPORT anon 10.0M file 10.0M shmem 30.0M kernel 2.0M; \
             largest j\\x1bava (42) 8.0M; tmpfs 57%"
        );
    }

    /// A runtime monitor's kill never reads as its container's.
    #[test]
    fn monitors_are_shown_as_monitors() {
        let mut named = WorkloadInfo::new(WorkloadKind::ContainerMonitor, Attribution::Full);
        named.identity.namespace = Some("ns".to_owned());
        named.identity.pod = Some("web".to_owned());
        named.monitored = Some(MonitoredContainer { container: Some("app".to_owned()), ..Default::default() });
        let row = row(&event_in("/kubepods/x/crio-conmon-y", named));
        assert!(row.contains(" ns/web/(monitor of app) "), "{row}");
        let path = "/machine.slice/libpod-conmon-abc.scope";
        let mut bare = WorkloadInfo::new(WorkloadKind::ContainerMonitor, Attribution::Partial);
        bare.monitored = Some(MonitoredContainer::default());
        let row = super::row(&event_in(path, bare));
        assert!(row.contains(&format!(" {path} (monitor) ")), "{row}");
    }

    /// The CAUSE column holds every cause name within its width, and `?` for
    /// an event without a diagnosis; the columns after it stay aligned.
    #[test]
    fn the_cause_column() {
        let path = "/system.slice/kubelet.service";
        let mut event = event_in(path, WorkloadInfo::new(WorkloadKind::SystemService, Attribution::Host));
        event.scope = Some(Scope::Memcg);
        event.oom_cgroup = Some(OomCgroup {
            cgroup: Cgroup { path: Some(path.to_owned()), ..Cgroup::default() },
            ..OomCgroup::default()
        });
        let cause_at = HEADER.find("CAUSE").expect("CAUSE column");
        let killed_at = HEADER.find("KILLED").expect("KILLED column");
        let undiagnosed = row(&event);
        assert_eq!(undiagnosed.get(cause_at..killed_at), Some(format!("{:<17}", "?").as_str()), "{undiagnosed}");
        event.diagnosis = Some(diagnosis::diagnose(&event));
        let diagnosed = row(&event);
        assert_eq!(diagnosed.get(cause_at..killed_at), Some("cgroup_limit     "), "{diagnosed}");
        assert_eq!(diagnosed.get(killed_at..), Some("yes    7 conmon"), "{diagnosed}");
        assert!(diagnosed.starts_with("2026-11-25T22:41:07.123 7 "), "{diagnosed}");
        let widest = ["container_limit", "pod_limit", "node_allocatable", "node_memory", "constrained", "unknown"];
        assert!(widest.iter().all(|c| c.len() < killed_at - cause_at), "a cause name overflows CAUSE");
    }

    /// A victim, a trigger and a cgroup named to attack the terminal: the row
    /// shows them escaped, and the columns after them stay where they were.
    #[test]
    fn names_are_escaped() {
        let path = "/x\u{1b}]0;pwn\u{7}";
        let mut event = event_in(path, WorkloadInfo::new(WorkloadKind::Host, Attribution::Host));
        event.victim.comm = Some("\u{1b}[2J\u{9b}\\".to_owned());
        event.trigger = Some(Trigger { pid: Some(8), tgid: Some(8), comm: "t\u{202e}".to_owned() });
        let row = row(&event);
        assert!(!row.contains(['\u{1b}', '\u{7}', '\u{9b}', '\u{202e}']), "{row:?}");
        assert!(row.contains(r" \x1b[2J\u{9b}\\  /x\x1b]0;pwn\x07 "), "{row}");
        assert!(row.ends_with(r" 8 t\u{202e}"), "{row}");
        let usage_at = HEADER.find("USAGE").expect("USAGE column");
        assert_eq!(row.get(usage_at..usage_at + 2), Some("? "), "{row}");
    }

    #[test]
    fn byte_units() {
        assert_eq!(bytes(Some(512)), "512B");
        assert_eq!(bytes(Some(1536)), "1.5K");
        assert_eq!(bytes(Some(64 << 20)), "64.0M");
        assert_eq!(bytes(None), "?");
    }
}
