//! Kernel log lines in, events out: the report parser, the conversion, and
//! the counters the reconciliation with the kernel's count is made of.

use oomtrace_klog::{
    LogLine,
    report::{Parsed, ReportParser},
};

use super::convert::{self, LogClock};
use oomtrace_event::{LogOrigin, OomEvent};

/// What reading one log found, besides the events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CollectStats {
    /// Lines handed to the parser.
    pub lines: u64,
    /// Kill lines (one per victim): what the kernel's `oom_kill` counts.
    pub kills: u64,
    /// Reports whose header and tables were not in the log (rate-limited
    /// away, or a filtered excerpt): their events say so in `unavailable`.
    pub kill_line_only: u64,
    /// Reports that ended before a kill line (an excerpt cut short, or a kill
    /// the kernel gave up: no killable task): no event.
    pub without_kill: u64,
    /// Lines that look like part of an OOM report but were not understood.
    pub unparsed: u64,
    /// `oom_reaper:` lines (the reaper freed a victim's memory).
    pub reaped: u64,
    /// Kill lines that repeat the victim of the kill just before: a
    /// `memory.oom.group` kill kills its first victim a second time while
    /// killing the group, and the kernel prints (and counts in `oom_kill`)
    /// both. Counted in `kills`, no second event.
    pub repeated: u64,
}

/// Feeds lines through the parser and turns every report into events.
pub struct Collector {
    parser: ReportParser,
    origin: LogOrigin,
    clock: LogClock,
    parsed: Vec<Parsed>,
    stats: CollectStats,
    /// The victim of the last report that was not a group member: a group
    /// member with the same pid is that victim killed again.
    first_victim: Option<u32>,
    /// That report's event: a group member's kill line alone says nothing of
    /// the OOM it died in, which is this one's.
    leader: Option<OomEvent>,
}

impl Collector {
    pub fn new(origin: LogOrigin, clock: LogClock) -> Self {
        Self {
            parser: ReportParser::new(),
            origin,
            clock,
            parsed: Vec::new(),
            stats: CollectStats::default(),
            first_victim: None,
            leader: None,
        }
    }

    /// One line; the events of any report it completed go to `out`.
    pub fn line(&mut self, line: &LogLine, out: &mut Vec<OomEvent>) {
        self.stats.lines += 1;
        self.parser.push(line, &mut self.parsed);
        self.drain(out);
    }

    /// Kill lines so far that repeated the group's first victim (see [`CollectStats::repeated`]).
    pub fn repeated(&self) -> u64 {
        self.stats.repeated
    }

    /// Lines that looked like part of an OOM report but were not understood, so far.
    pub fn unparsed(&self) -> u64 {
        self.parser.stats().unparsed
    }

    /// The first of those lines.
    pub fn unparsed_examples(&self) -> &[String] {
        &self.parser.stats().unparsed_examples
    }

    /// A boundary no report continues across (a new boot in a saved log).
    pub fn boundary(&mut self, out: &mut Vec<OomEvent>) {
        self.parser.finish(&mut self.parsed);
        self.drain(out);
    }

    /// End of input: the report in progress, if any.
    pub fn finish(&mut self, out: &mut Vec<OomEvent>) -> CollectStats {
        self.parser.finish(&mut self.parsed);
        self.drain(out);
        self.stats.unparsed = self.parser.stats().unparsed;
        self.stats
    }

    fn drain(&mut self, out: &mut Vec<OomEvent>) {
        for parsed in self.parsed.drain(..) {
            match parsed {
                Parsed::Report(report) => {
                    let pid = report.killed.as_ref().map(|k| k.pid);
                    let kill_line_only =
                        report.header.is_none() && report.constraint.is_none() && report.selected.is_none();
                    // A task dies once: the same pid on a kill line alone right
                    // after is the group kill killing it again, whether or not
                    // the parser saw the group's line before it.
                    if pid.is_some() && pid == self.first_victim && (report.oom_group.is_some() || kill_line_only) {
                        self.stats.kills += 1;
                        self.stats.repeated += 1;
                        continue;
                    }
                    if report.oom_group.is_none() {
                        self.first_victim = pid;
                    }
                    let mut events = convert::events(&report, self.origin, &self.clock);
                    match (&report.oom_group, &self.leader) {
                        (None, _) => self.leader = events.first().cloned(),
                        (Some(group), Some(leader)) => {
                            events.iter_mut().for_each(|member| convert::join_group(member, leader, group));
                        }
                        (Some(_), None) => {}
                    }
                    if events.is_empty() {
                        self.stats.without_kill += 1;
                    } else if report.header.is_none() && report.oom_group.is_none() {
                        self.stats.kill_line_only += 1;
                    }
                    self.stats.kills += events.len() as u64;
                    out.extend(events);
                }
                Parsed::Reaped(_) => self.stats.reaped += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn line(seconds: f64, message: &str) -> LogLine {
        LogLine {
            message: message.to_owned(),
            since_boot: Some(Duration::from_secs_f64(seconds)),
            ..LogLine::default()
        }
    }

    fn kill(pid: u32) -> String {
        format!(
            "Memory cgroup out of memory: Killed process {pid} (hog) total-vm:33792kB, anon-rss:32512kB, \
             file-rss:0kB, shmem-rss:572kB, UID:0 pgtables:108kB oom_score_adj:984"
        )
    }

    const GROUP: &str = "/kubepods.slice/pod.slice/cri-containerd-1.scope";

    /// A group kill's log: pid 10's whole report (when `whole`), then the
    /// kill lines of `then`, after the group's line when `marked`.
    fn group_kill(whole: bool, marked: bool, then: &[u32]) -> (Vec<OomEvent>, CollectStats) {
        let mut collector = Collector::new(LogOrigin::Kmsg, LogClock { boot_wall: None, page_size: 4096 });
        let mut events = Vec::new();
        let mut lines =
            vec!["hog invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=984".to_owned()];
        if whole {
            lines.push(format!(
                "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg={GROUP},task_memcg={GROUP},task=hog,pid=10,uid=0"
            ));
        }
        lines.push(kill(10));
        if marked {
            lines.push(format!("Tasks in {GROUP} are going to be killed due to memory.oom.group set"));
        }
        lines.extend(then.iter().map(|&pid| kill(pid)));
        for (n, message) in lines.iter().enumerate() {
            collector.line(&line(1.0 + n as f64 / 10.0, message), &mut events);
        }
        let stats = collector.finish(&mut events);
        (events, stats)
    }

    /// The victim marked by the probes finds its report before its kill line
    /// is printed: by the summary line's pid, near in time; a member of a
    /// group kill finds the group's first victim's.
    fn pids(events: &[OomEvent]) -> Vec<u32> {
        events.iter().map(|e| e.victim.pid).collect()
    }

    /// The order seen on the node VM's 6.12 journal: the group's other task
    /// first, the first victim again last.
    #[test]
    fn the_first_victim_killed_again_after_another_member_is_one_event() {
        let (events, stats) = group_kill(true, true, &[11, 10]);
        assert_eq!(pids(&events), vec![10, 11]);
        assert_eq!((stats.kills, stats.repeated, stats.kill_line_only), (3, 1, 0));
        // The same without the group's line (seen in a node VM's journal: the
        // first victim again, not marked as a member): still one event.
        let (events, stats) = group_kill(false, false, &[10]);
        assert_eq!((events.len(), stats.kills, stats.repeated), (1, 2, 1));
    }

    /// Seen on the node VM (6.1 and 6.12): with memory.oom.group the kernel
    /// kills the chosen victim, then every task of the group, the victim
    /// again among them: two kill lines (and two `oom_kill` counts), one task.
    #[test]
    fn a_group_kill_repeating_its_first_victim_gives_one_event_per_task() {
        let (events, stats) = group_kill(true, true, &[10, 11]);
        assert_eq!(pids(&events), vec![10, 11]);
        assert_eq!((stats.kills, stats.repeated, stats.kill_line_only), (3, 1, 0));
        assert_eq!(events[1].group_kill, Some(true));
        // The member died in the leader's OOM: its scope, OOMing memcg and
        // trigger are the leader's, its cgroup the group's.
        let member = &events[1];
        assert_eq!(member.scope, Some(oomtrace_event::Scope::Memcg));
        assert_eq!(member.oom_cgroup.as_ref().and_then(|c| c.cgroup.path.as_deref()), Some(GROUP));
        assert_eq!(member.victim_cgroup.as_ref().and_then(|c| c.path.as_deref()), Some(GROUP));
        assert_eq!(member.trigger, events[0].trigger);
        for field in ["scope", "victim_cgroup", "oom_cgroup", "trigger", "gfp_mask", "order"] {
            let known = !events[0].unavailable.contains(&field) || field == "victim_cgroup";
            assert_eq!(!member.unavailable.contains(&field), known, "{field}: {:?}", member.unavailable);
        }
    }
}
