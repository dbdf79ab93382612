//! Kernel OOM reports from a stream of log lines (kernels 2.6.32 and 3.10 to 7.x).
//!
//! The OOM killer prints one report per kill: a header (`dump_header`), the memcg's counters and
//! memory.stat or the machine's memory, the task table, a summary line, the kill line; the OOM
//! reaper may later report the victim's memory freed. [`ReportParser`] reads these lines one at a
//! time, skipping unrelated lines printed in between, and yields one [`OomReport`] per kill.
//! Every line family has its own module with the kernel's format strings by version.
//!
//! ```
//! use oomtrace_klog::{LogLine, Parsed, ReportParser};
//!
//! let mut parser = ReportParser::new();
//! let mut out = Vec::new();
//! for message in [
//!     "dd invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
//!     "eth0: link up", // unrelated lines are skipped
//!     "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/a,task_memcg=/a/b,task=dd,pid=42,uid=0",
//!     "Memory cgroup out of memory: Killed process 42 (dd) total-vm:1000kB, anon-rss:900kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:40kB oom_score_adj:0",
//! ] {
//!     parser.push(&LogLine { message: message.into(), ..LogLine::default() }, &mut out);
//! }
//! parser.finish(&mut out);
//! let [Parsed::Report(report)] = out.as_slice() else { panic!("one report") };
//! assert_eq!((report.victim_pid(), report.task_memcg()), (Some(42), Some("/a/b")));
//! assert_eq!(parser.stats().reports, 1);
//! ```

mod assembler;
mod header;
mod kill;
mod memcg;
mod summary;
mod tasks;
mod text;

use std::time::{Duration, SystemTime};

use serde::{Serialize, Serializer};

use crate::line::{Caller, LogLine};

pub use assembler::ReportParser;
pub use header::{CpuLine, Header};
pub use kill::{Killed, NoKill, ReapedTask, Selected};
pub use memcg::{CounterKind, MemcgCounter, MemcgStat, Protection, StatFormat, TaskIn};
pub use summary::Constraint;
pub use tasks::TaskRow;

/// What the parser yields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Parsed {
    /// One OOM report: one kill (or, rarely, an OOM that killed nothing the log shows).
    Report(Box<OomReport>),
    /// The OOM reaper freed a victim's memory (`oom_reaper: reaped process …`). The pid is that
    /// victim's, which may belong to an earlier report.
    Reaped(ReapedTask),
}

/// One OOM-killer report, with whatever of it the log kept. A report whose header was
/// rate-limited away (10 per 5 s) or filtered out of an excerpt has only its kill line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OomReport {
    /// `<comm> invoked oom-killer: …`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<Header>,
    /// `CPU: … PID: … Comm: …` right after the header: the trigger's pid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuLine>,
    /// `memory: usage …`, `memory+swap: …`, `swap: …`, `kmem: …` (memcg OOMs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub memcg_counters: Vec<MemcgCounter>,
    /// `Memory cgroup stats for <path>:` and its values: the OOMing memcg's memory.stat.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memcg_stat: Option<MemcgStat>,
    /// Before 5.x on cgroup v1 the stats of every memcg below the OOMing one follow it, one line
    /// each: those after the first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub memcg_stat_descendants: Vec<MemcgStat>,
    /// The task table (`Tasks state (memory values in pages):`), in the kernel's order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskRow>,
    /// `oom-kill:constraint=…` (5.0+, RHEL 8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraint: Option<Constraint>,
    /// `Task in <a> killed as a result of limit of <b>` (before 5.0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_in: Option<TaskIn>,
    /// `… Kill process N (c) score S or sacrifice child` (before 5.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selected: Option<Selected>,
    /// `… Killed process N (c) total-vm:…`: the victim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub killed: Option<Killed>,
    /// Why the report ended without a kill line, when the kernel said why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_kill: Option<NoKill>,
    /// `Memory cgroup min protection …kB -- low protection …kB` (6.19+).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protection: Option<Protection>,
    /// Set when this kill is one of a `memory.oom.group` kill's other members (the line
    /// `Tasks in <memcg> are going to be killed due to memory.oom.group set` came before it and
    /// no other report began since): that memcg. The group's first victim's report does not
    /// carry it (the group line comes after its kill line). Best effort without
    /// CONFIG_PRINTK_CALLER: a rate-limited report's kill line right after a group kill is
    /// taken for a member.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_group: Option<String>,
    /// The report's first line.
    pub first: LineMeta,
    /// The report's last line.
    pub last: LineMeta,
}

impl OomReport {
    /// The victim's pid: from the kill line, else the summary, else the selection line.
    pub fn victim_pid(&self) -> Option<u32> {
        let from_summary = || self.constraint.as_ref().map(|constraint| constraint.pid);
        self.killed.as_ref().map(|killed| killed.pid).or_else(from_summary).or(self.selected.as_ref().map(|s| s.pid))
    }

    /// The victim's comm, from the same lines as [`Self::victim_pid`].
    pub fn victim_comm(&self) -> Option<&str> {
        let from_summary = || self.constraint.as_ref().map(|constraint| constraint.task.as_str());
        let from_selected = || self.selected.as_ref().map(|selected| selected.comm.as_str());
        self.killed.as_ref().map(|killed| killed.comm.as_str()).or_else(from_summary).or_else(from_selected)
    }

    /// The trigger's pid (the `CPU:` line).
    pub fn trigger_pid(&self) -> Option<u32> {
        self.cpu.as_ref().map(|cpu| cpu.pid)
    }

    /// The trigger's comm: the header's (`<comm> invoked oom-killer`), which a grepped log keeps
    /// when it drops the `CPU:` line, else the `CPU:` line's.
    pub fn trigger_comm(&self) -> Option<&str> {
        let from_cpu = || self.cpu.as_ref().map(|cpu| cpu.comm.as_str());
        self.header.as_ref().map(|header| header.trigger_comm.as_str()).or_else(from_cpu)
    }

    /// The memcg whose limit was hit (summary line, else `Task in … limit of <memcg>`); `None`
    /// for a global OOM or when the log does not say.
    pub fn oom_memcg(&self) -> Option<&str> {
        let from_task_in = || self.task_in.as_ref().map(|task_in| task_in.oom_memcg.as_str());
        self.constraint.as_ref().and_then(|constraint| constraint.oom_memcg.as_deref()).or_else(from_task_in)
    }

    /// The victim's memcg (summary line, else `Task in <memcg> killed …`).
    pub fn task_memcg(&self) -> Option<&str> {
        let from_task_in = || self.task_in.as_ref().map(|task_in| task_in.task_memcg.as_str());
        self.constraint.as_ref().and_then(|constraint| constraint.task_memcg.as_deref()).or_else(from_task_in)
    }

    /// Whether a memcg limit (not the machine) caused the OOM, when any line says so: the
    /// summary's constraint (5.0+), else the wording alone, so that a report cut down to a
    /// line or two (rate-limited, grepped) still says it. `Some(true)`: a `Task in … killed as
    /// a result of limit of …` line or the memcg's counters (before 5.0), or a kill, selection
    /// or skipped-victim line opened by `Memory cgroup out of memory:` (mm/memcontrol.c before
    /// 4.19, mm/oom_kill.c since). `Some(false)`: one opened by `Out of memory:` or `Out of
    /// memory (oom_kill_allocating_task):` (`out_of_memory`, every OOM that is not a memcg's).
    /// `None`: no such line (a kill line of 3.x – 5.0, which has no prefix, alone).
    pub fn is_memcg_oom(&self) -> Option<bool> {
        if let Some(constraint) = &self.constraint {
            return Some(constraint.constraint == "CONSTRAINT_MEMCG");
        }
        if self.task_in.is_some() || !self.memcg_counters.is_empty() {
            return Some(true);
        }
        let prefixed = |prefix: Option<&String>, memcg: bool| prefix.map(|_| memcg);
        if let Some(killed) = self.killed.as_ref().and_then(|k| prefixed(k.prefix.as_ref(), k.memcg_prefix)) {
            return Some(killed);
        }
        if let Some(selected) = &self.selected {
            return Some(selected.memcg_prefix);
        }
        match &self.no_kill {
            Some(NoKill::VictimExiting { memcg_prefix, .. }) => Some(*memcg_prefix),
            _ => None,
        }
    }
}

/// Where a line was in its source: the [`LogLine`] fields other than the text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LineMeta {
    /// `/dev/kmsg` sequence number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Time since boot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_boot: Option<Duration>,
    /// Wall-clock time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wall: Option<SystemTime>,
    /// `CONFIG_PRINTK_CALLER`: `T<pid>` or `C<cpu>`.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "caller_text")]
    pub caller: Option<Caller>,
}

impl From<&LogLine> for LineMeta {
    fn from(line: &LogLine) -> Self {
        LineMeta { seq: line.seq, since_boot: line.since_boot, wall: line.wall, caller: line.caller }
    }
}

/// Serializes a caller as the kernel prints it (`T123`, `C1`).
fn caller_text<S: Serializer>(caller: &Option<Caller>, serializer: S) -> Result<S::Ok, S::Error> {
    match caller {
        Some(Caller::Task(pid)) => serializer.serialize_str(&format!("T{pid}")),
        Some(Caller::Cpu(cpu)) => serializer.serialize_str(&format!("C{cpu}")),
        None => serializer.serialize_none(),
    }
}

/// What the parser saw, for the summary line of `oomtrace history` and for tests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ParseStats {
    /// Lines pushed (a message with embedded newlines counts once).
    pub lines: u64,
    /// Reports yielded.
    pub reports: u64,
    /// Reports without their `invoked oom-killer` header (rate-limited away, filtered out, or
    /// overwritten in the ring buffer).
    pub reports_without_header: u64,
    /// Reports without a kill line (the kernel killed nothing, see [`OomReport::no_kill`], or the
    /// report was cut by the next one or the end of input).
    pub reports_without_kill: u64,
    /// `oom_reaper: reaped process` lines yielded.
    pub reaped: u64,
    /// `oom_reaper: unable to reap` lines.
    pub reap_failed: u64,
    /// Reports the kernel rate-limited away, as its `oom_kill_process: N callbacks suppressed`
    /// lines count them.
    pub headers_suppressed: u64,
    /// Pieces of a report that had neither header nor summary nor kill line (e.g. the ring
    /// buffer starting mid-report): dropped.
    pub fragments: u64,
    /// Report lines past the bounds on one report (100 000 task rows, 1 024 memory.stat entries,
    /// 4 096 descendant memcgs' stats), not kept.
    pub dropped_lines: u64,
    /// OOM-killer lines (`invoked oom-killer`, `Killed process`, `oom-kill:`, `oom_reaper:`, …)
    /// that did not parse.
    pub unparsed: u64,
    /// The first few of those lines, for a diagnostic.
    pub unparsed_examples: Vec<String>,
}

/// How many not-understood lines [`ParseStats::unparsed_examples`] keeps.
pub const UNPARSED_EXAMPLES: usize = 8;
