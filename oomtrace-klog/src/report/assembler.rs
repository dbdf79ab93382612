//! Puts report lines together into reports: the order of the parts, where a report ends, and
//! which lines belong to no report.

use crate::line::{Caller, LogLine};

use super::kill::Aside;
use super::tasks::TaskColumns;
use super::{LineMeta, OomReport, ParseStats, Parsed, UNPARSED_EXAMPLES, header, kill, memcg, summary, tasks};

/// Turns kernel log lines into OOM reports. Feed every line in order with [`Self::push`], then
/// call [`Self::finish`]. Never panics, whatever the input.
///
/// A report ends at its kill line. It is cut short when a line of an earlier part of a report
/// comes after a later part (e.g. a new header, or a second summary line). Unrelated lines in
/// between are skipped. With `CONFIG_PRINTK_CALLER`, each printing task has its own report in
/// progress, so that reports printed at the same time (before 4.2's global `oom_lock`, OOMs of
/// different memcgs could print at once) come apart and another task's lines never end up in a
/// report.
///
/// Cloning it copies the reports in progress (a caller can try what-ifs on a copy).
#[derive(Clone, Debug, Default)]
pub struct ReportParser {
    /// Reports in progress, the one added to last at the end: one without `CONFIG_PRINTK_CALLER`,
    /// else one per printing task (at most [`MAX_OPEN`]; past that the first is given up).
    open: Vec<Building>,
    /// After `Tasks in <memcg> are going to be killed due to memory.oom.group set`.
    oom_group: Option<(String, Option<Caller>)>,
    stats: ParseStats,
}

/// The parts of a report in the order the kernel prints them (3.10 – 7.x). A part earlier than
/// the last one seen starts a new report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Header,
    Cpu,
    TaskIn,
    Counters,
    Stats,
    Tasks,
    Summary,
    Selected,
    Killed,
}

/// Which multi-line block the report is in, if any.
#[derive(Clone, Debug)]
enum Block {
    None,
    /// After `Memory cgroup stats for <path>:`: `name value` lines.
    Stats,
    /// After `Tasks state (memory values in pages):`, before the column header.
    TasksPending,
    /// Rows of a task table with these columns.
    Tasks(TaskColumns),
}

#[derive(Clone, Debug)]
struct Building {
    report: OomReport,
    stage: Stage,
    block: Block,
    caller: Option<Caller>,
}

/// Bounds on one report, far above what kernels print (a global OOM's task table lists every
/// process; memory.stat has about a hundred entries): past them lines are counted in
/// [`ParseStats::dropped_lines`], not kept.
const MAX_TASK_ROWS: usize = 100_000;
const MAX_STAT_VALUES: usize = 1_024;
const MAX_DESCENDANT_STATS: usize = 4_096;

/// How many reports may be in progress at once (one per printing task); past that the oldest is
/// yielded as it is.
const MAX_OPEN: usize = 8;

/// Text that marks a line as the OOM killer's: such a line that does not parse is counted.
const OOM_MARKERS: [&str; 8] = [
    "invoked oom-killer",
    "Killed process",
    "Kill process",
    "oom-kill:",
    "oom_reaper:",
    "Memory cgroup stats for",
    "killed as a result of limit of",
    "Memory cgroup out of memory",
];

/// Whether a line looks like the OOM killer's (drivers also say "Out of memory" inside their
/// messages: only a line starting with it counts).
fn looks_like_oom(text: &str, anchored: bool) -> bool {
    text.starts_with("Out of memory") || (anchored && OOM_MARKERS.iter().any(|marker| text.contains(marker)))
}

/// Whether the line has one of the three-byte pieces that every OOM-killer line found by searching
/// (not by its start) contains: `oom`, `OOM`, `ill` (kill lines, `Task in … killed`), `emo`
/// (`Memory cgroup …`). One pass over the bytes instead of a dozen substring searches on each of
/// the many unrelated lines.
fn has_anchor(text: &str) -> bool {
    text.as_bytes().windows(3).any(|piece| matches!(piece, b"oom" | b"OOM" | b"ill" | b"emo"))
}

impl ReportParser {
    /// A parser with nothing in progress.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads one line; appends to `out` what it completes (usually nothing, a report at its
    /// kill line, a [`Parsed::Reaped`] at once).
    pub fn push(&mut self, line: &LogLine, out: &mut Vec<Parsed>) {
        self.stats.lines += 1;
        let meta = LineMeta::from(line);
        // A message printed with embedded newlines (memory.stat before 6.4) is one record.
        for text in line.message.split('\n') {
            let text = text.trim();
            if !text.is_empty() {
                self.read(text, meta, out);
            }
        }
    }

    /// End of input: yields the reports in progress, if they are reports.
    pub fn finish(&mut self, out: &mut Vec<Parsed>) {
        while !self.open.is_empty() {
            self.flush_at(0, out);
        }
        self.oom_group = None;
    }

    /// What the parser saw so far.
    pub fn stats(&self) -> &ParseStats {
        &self.stats
    }

    fn read(&mut self, text: &str, meta: LineMeta, out: &mut Vec<Parsed>) {
        let anchored = has_anchor(text);
        if self.read_block_line(text, meta) {
            return;
        }
        if !self.read_report_line(text, anchored, meta, out) && looks_like_oom(text, anchored) {
            self.not_understood(text);
        }
    }

    /// A `name value` line of a stat block or a row of a task table; `true` when it was one.
    fn read_block_line(&mut self, text: &str, meta: LineMeta) -> bool {
        let Some(index) = self.slot(meta.caller) else { return false };
        let Some(building) = self.open.get_mut(index) else { return false };
        match &building.block {
            Block::Stats => {
                let Some((name, value)) = memcg::parse_stat_entry(text) else { return false };
                if let Some(stat) = building.report.memcg_stat.as_mut() {
                    if stat.values.len() < MAX_STAT_VALUES || stat.values.contains_key(name) {
                        stat.values.insert(name.to_owned(), value);
                    } else {
                        self.stats.dropped_lines += 1;
                    }
                    building.report.last = meta;
                }
                true
            }
            Block::Tasks(columns) => {
                if !tasks::is_row(text) {
                    return false;
                }
                match tasks::parse_row(text, columns) {
                    Some(row) if building.report.tasks.len() < MAX_TASK_ROWS => {
                        building.report.tasks.push(row);
                        building.report.last = meta;
                    }
                    Some(_) => self.stats.dropped_lines += 1,
                    None => self.not_understood(text),
                }
                true
            }
            Block::None | Block::TasksPending => false,
        }
    }

    /// Every other report line; `true` when the line was understood (or deliberately skipped).
    ///
    /// Lines without an anchor ([`has_anchor`]) skip the checks that search the whole line.
    fn read_report_line(&mut self, text: &str, anchored: bool, meta: LineMeta, out: &mut Vec<Parsed>) -> bool {
        if let Some(parsed) = (anchored && header::is_header(text)).then(|| header::parse_header(text)) {
            let Some(parsed) = parsed else { return false };
            self.flush(meta.caller, out);
            self.oom_group = None;
            if let Some(building) = self.attach(Stage::Header, meta, out) {
                building.report.header = Some(parsed);
            }
            return true;
        }
        if kill::is_reaper(text) {
            if let Some(mut reaped) = kill::parse_reaped(text) {
                reaped.line = meta;
                self.stats.reaped += 1;
                out.push(Parsed::Reaped(reaped));
                return true;
            }
            return self.read_aside(text);
        }
        if anchored && self.read_aside(text) {
            return true;
        }
        if anchored && kill::is_killed(text) {
            let Some(killed) = kill::parse_killed(text) else { return false };
            let group = self.oom_group.take();
            let Some(building) = self.attach(Stage::Killed, meta, out) else { return true };
            building.report.killed = Some(killed);
            let only_kill_line = building.report.header.is_none()
                && building.report.constraint.is_none()
                && building.report.selected.is_none();
            if let Some((memcg, caller)) = group.filter(|(_, caller)| only_kill_line && same_task(*caller, meta.caller))
            {
                building.report.oom_group = Some(memcg.clone());
                self.oom_group = Some((memcg, caller));
            }
            self.flush(meta.caller, out);
            return true;
        }
        if let Some(no_kill) = anchored.then(|| kill::parse_no_kill(text)).flatten() {
            // The victim line names a victim: a report even alone. The other two only end the
            // report in progress.
            if let kill::NoKill::VictimExiting { .. } = no_kill {
                if let Some(building) = self.attach(Stage::Killed, meta, out) {
                    building.report.no_kill = Some(no_kill);
                }
            } else if let Some(building) = self.current_mut(meta.caller) {
                building.report.no_kill = Some(no_kill);
                building.report.last = meta;
            }
            self.flush(meta.caller, out);
            return true;
        }
        if anchored && kill::is_selected(text) {
            let Some(selected) = kill::parse_selected(text) else { return false };
            self.oom_group = None;
            if let Some(building) = self.attach(Stage::Selected, meta, out) {
                building.report.selected = Some(selected);
            }
            return true;
        }
        if summary::is_summary(text) {
            let Some(constraint) = summary::parse_summary(text) else { return false };
            self.oom_group = None;
            if let Some(building) = self.attach(Stage::Summary, meta, out) {
                building.report.constraint = Some(constraint);
            }
            return true;
        }
        if let Some(memcg) = memcg::parse_oom_group(text) {
            self.oom_group = Some((memcg.to_owned(), meta.caller));
            return true;
        }
        if anchored && memcg::is_task_in(text) {
            let Some(task_in) = memcg::parse_task_in(text) else { return false };
            if let Some(building) = self.attach(Stage::TaskIn, meta, out) {
                building.report.task_in = Some(task_in);
            }
            return true;
        }
        if let Some(counter) = memcg::parse_counter(text) {
            let repeated = self
                .current(meta.caller)
                .is_some_and(|building| building.report.memcg_counters.iter().any(|seen| seen.kind == counter.kind));
            if repeated {
                self.flush(meta.caller, out);
            }
            if let Some(building) = self.attach(Stage::Counters, meta, out) {
                building.report.memcg_counters.push(counter);
            }
            return true;
        }
        if memcg::is_stat_start(text) {
            let Some(stat) = memcg::parse_stat_start(text) else { return false };
            return self.read_stat_start(stat, meta, out);
        }
        if tasks::is_tasks_state(text) {
            let Some(building) = self.attach(Stage::Tasks, meta, out) else { return true };
            building.block = Block::TasksPending;
            return true;
        }
        if let Some(columns) = tasks::parse_columns(text) {
            let pending =
                self.current(meta.caller).is_some_and(|building| matches!(building.block, Block::TasksPending));
            if !pending {
                self.cut_if_reached(Stage::Tasks, meta.caller, out);
            }
            if let Some(building) = self.attach(Stage::Tasks, meta, out) {
                building.block = Block::Tasks(columns);
            }
            return true;
        }
        if let Some(protection) = memcg::parse_protection(text) {
            // Also printed with a page allocation failure (`warn_alloc`): only taken inside a report.
            if let Some(building) = self.current_mut(meta.caller).filter(|building| building.stage < Stage::Tasks) {
                building.report.protection = Some(protection);
                building.report.last = meta;
            }
            return true;
        }
        if let Some(cpu) = header::parse_cpu_line(text) {
            // Any `dump_stack` prints this line; it is the trigger's only right after a header.
            if let Some(building) = self.current_mut(meta.caller).filter(|building| building.stage == Stage::Header) {
                building.report.cpu = Some(cpu);
                building.stage = Stage::Cpu;
                building.report.last = meta;
            }
            return true;
        }
        false
    }

    /// `Memory cgroup stats for <path>:`: the OOMing memcg's, or (inline format before 5.x) one
    /// of its descendants'.
    fn read_stat_start(&mut self, stat: memcg::MemcgStat, meta: LineMeta, out: &mut Vec<Parsed>) -> bool {
        let descendant = self.current(meta.caller).is_some_and(|building| {
            building.stage == Stage::Stats
                && stat.format == memcg::StatFormat::InlineKb
                && building.report.memcg_stat.as_ref().is_some_and(|first| first.format == stat.format)
        });
        if !descendant {
            self.cut_if_reached(Stage::Stats, meta.caller, out);
        }
        let lines = stat.format == memcg::StatFormat::Lines;
        let Some(building) = self.attach(Stage::Stats, meta, out) else { return true };
        let mut dropped = false;
        if !descendant {
            building.report.memcg_stat = Some(stat);
        } else if building.report.memcg_stat_descendants.len() < MAX_DESCENDANT_STATS {
            building.report.memcg_stat_descendants.push(stat);
        } else {
            dropped = true;
        }
        if lines {
            building.block = Block::Stats;
        }
        self.stats.dropped_lines += u64::from(dropped);
        true
    }

    /// Lines around a kill that carry no report data; `true` when the line was one.
    fn read_aside(&mut self, text: &str) -> bool {
        match kill::parse_aside(text) {
            Some(Aside::ReaperFailed) => self.stats.reap_failed += 1,
            Some(Aside::HeadersSuppressed(count)) => {
                self.stats.headers_suppressed = self.stats.headers_suppressed.saturating_add(count);
            }
            Some(Aside::SharedMemory) => {}
            None => return false,
        }
        true
    }

    /// Ends the report in progress if it already has the part `stage` (a second one starts the
    /// next report).
    fn cut_if_reached(&mut self, stage: Stage, caller: Option<Caller>, out: &mut Vec<Parsed>) {
        if self.current(caller).is_some_and(|building| building.stage >= stage) {
            self.flush(caller, out);
        }
    }

    /// The report a part at `stage` belongs to: the one in progress (of the printing task),
    /// unless the part comes before (or, for a one-line part, at) the stage it reached; then a
    /// new one.
    fn attach(&mut self, stage: Stage, meta: LineMeta, out: &mut Vec<Parsed>) -> Option<&mut Building> {
        let repeatable = matches!(stage, Stage::Counters | Stage::Stats | Stage::Tasks);
        let continuing = self.slot(meta.caller).filter(|&index| {
            self.open
                .get(index)
                .is_some_and(|building| building.stage < stage || (building.stage == stage && repeatable))
        });
        // The report being added to goes last: the oldest, first, is the one given up past MAX_OPEN.
        let building = match continuing {
            Some(index) if index + 1 == self.open.len() => None,
            Some(index) => Some(self.open.remove(index)),
            None => {
                self.flush(meta.caller, out);
                if self.open.len() >= MAX_OPEN {
                    self.flush_at(0, out);
                }
                Some(Building {
                    report: OomReport { first: meta, ..OomReport::default() },
                    stage,
                    block: Block::None,
                    caller: meta.caller,
                })
            }
        };
        if let Some(building) = building {
            self.open.push(building);
        }
        let building = self.open.last_mut()?;
        building.stage = stage;
        building.block = Block::None;
        building.report.last = meta;
        Some(building)
    }

    /// Where the report in progress of a line's task is: the newest whose task may have printed
    /// the line.
    fn slot(&self, caller: Option<Caller>) -> Option<usize> {
        self.open.iter().rposition(|building| same_task(building.caller, caller))
    }

    fn current(&self, caller: Option<Caller>) -> Option<&Building> {
        self.slot(caller).and_then(|index| self.open.get(index))
    }

    fn current_mut(&mut self, caller: Option<Caller>) -> Option<&mut Building> {
        self.slot(caller).and_then(|index| self.open.get_mut(index))
    }

    /// Yields the report in progress of a line's task, if any.
    fn flush(&mut self, caller: Option<Caller>, out: &mut Vec<Parsed>) {
        if let Some(index) = self.slot(caller) {
            self.flush_at(index, out);
        }
    }

    /// Yields a report in progress, if it is one (a fragment without header, summary,
    /// selection, kill or no-kill line is only counted).
    fn flush_at(&mut self, index: usize, out: &mut Vec<Parsed>) {
        if index >= self.open.len() {
            return;
        }
        let report = self.open.remove(index).report;
        let is_report = report.header.is_some()
            || report.constraint.is_some()
            || report.selected.is_some()
            || report.killed.is_some()
            || report.no_kill.is_some();
        if !is_report {
            self.stats.fragments += 1;
            return;
        }
        self.stats.reports += 1;
        if report.header.is_none() {
            self.stats.reports_without_header += 1;
        }
        if report.killed.is_none() {
            self.stats.reports_without_kill += 1;
        }
        out.push(Parsed::Report(Box::new(report)));
    }

    fn not_understood(&mut self, text: &str) {
        self.stats.unparsed += 1;
        if self.stats.unparsed_examples.len() < UNPARSED_EXAMPLES {
            self.stats.unparsed_examples.push(text.chars().take(300).collect());
        }
    }
}

/// Whether two lines may come from the same task: only two different `T<pid>` callers say no.
fn same_task(a: Option<Caller>, b: Option<Caller>) -> bool {
    match (a, b) {
        (Some(Caller::Task(a)), Some(Caller::Task(b))) => a == b,
        _ => true,
    }
}
