//! Joins the eBPF events with the kernel's OOM reports in its log, without
//! ever holding an event.
//!
//! A live event goes out first: the pipeline hands it over before it reads
//! the log at all. The kernel prints a kill's report (`dump_header`: the
//! header, the memcg's counters and memory.stat, the task table and, since
//! 5.0, the `oom-kill:…,pid=N` summary line) *before* it marks the victim,
//! and its kill line (`Killed process N …`) right after (`oom_kill_process`
//! calls `dump_header`, then `__oom_kill_process`, in mm/oom_kill.c from 4.x
//! to 7.x); so the kill line is in the log a few milliseconds after the
//! event, when the log is next read, and then the event's report (kill line
//! included) goes out as a second record, `oom_kernel_report`, naming the
//! event ([`Joined::Report`]).
//! A kill whose report the kernel rate-limited (10 reports per 5 s) to its
//! kill line gets no such record; its kill line only moves the log position.
//!
//! A kill line no live event claims within `grace` is a kill the probes did
//! not see (before they attached: a past kill; or lost) and goes out as an
//! event of its own, `source: kernel_log`, its report in it.
//!
//! The log position of the last kill accounted for is what the daemon keeps
//! in its state file, so that a restart reports each kill once.

pub mod record;
pub mod side;
pub mod tail;

use std::{collections::VecDeque, time::Duration};

use oomtrace_event::{KernelReportRecord, OomEvent};

use self::record::report_record;

/// How far apart the eBPF timestamp (CLOCK_MONOTONIC) and the log's
/// (`local_clock`, the scheduler clock) of one kill may be. They drift apart
/// slowly (9 ms after 6 h of uptime on this project's CI machine); pids are
/// not reused within seconds.
pub const MATCH_WINDOW: Duration = Duration::from_secs(10);

/// Where the log has been read up to, in the log's own terms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogPosition {
    /// Kernel timestamp of the kill line, µs since boot.
    pub since_boot_us: u64,
    /// Its /dev/kmsg sequence number, when read from there.
    pub seq: Option<u64>,
}

/// A kill read from the log, as an event, with where its kill line is.
#[derive(Clone, Debug)]
pub struct LogKill {
    pub event: OomEvent,
    pub position: LogPosition,
}

/// What the joiner hands over, in order.
#[derive(Clone, Debug)]
pub enum Joined {
    /// A kill read from the log that no live event claimed (`source: kernel_log`).
    Kill(Box<OomEvent>),
    /// The report of a live event that already went out, as its record.
    Report(Box<KernelReportRecord>),
}

/// A live event that went out before its kill line was read.
#[derive(Clone, Debug)]
struct Sent {
    pid: u32,
    ktime_ns: u64,
    /// When it was sent.
    at: Duration,
    /// The event, for its report's record (`None`: sent by an earlier run).
    event: Option<Box<OomEvent>>,
}

/// The matching state. Time is passed in (`now`, any monotonic clock) so the
/// logic is tested without sleeping.
#[derive(Debug)]
pub struct Joiner {
    grace: Duration,
    /// Live events sent before their kill line was read. Kept
    /// [`MATCH_WINDOW`] + `grace`.
    sent: VecDeque<Sent>,
    /// Log kills no live event has claimed yet, with when they were read.
    unclaimed: VecDeque<(LogKill, Duration)>,
    /// Everything up to here is accounted for.
    position: LogPosition,
    /// What is ready to go out, in order.
    ready: Vec<Joined>,
}

impl Joiner {
    pub fn new(grace: Duration, position: LogPosition) -> Self {
        Self { grace, sent: VecDeque::new(), unclaimed: VecDeque::new(), position, ready: Vec::new() }
    }

    /// Kills an earlier run sent as live events before their kill line was
    /// read (victim pid, kernel ns): their kill lines, when read now, are no
    /// events (and their reports are no longer sent: the events are gone).
    pub fn sent_earlier(&mut self, sent: &[(u32, u64)], now: Duration) {
        self.sent.extend(sent.iter().map(|&(pid, ktime_ns)| Sent { pid, ktime_ns, at: now, event: None }));
    }

    /// A live event that has just gone out: its report is ready at once if
    /// its kill line was read already, else it waits for that line.
    pub fn sent(&mut self, event: OomEvent, now: Duration) {
        let key = event.ktime_ns.map(|ktime_ns| (event.victim.pid, ktime_ns));
        if let Some(i) = self.unclaimed.iter().position(|(kill, _)| key.is_some_and(|key| same_kill(key, &kill.event)))
        {
            if let Some((kill, _)) = self.unclaimed.remove(i) {
                self.advance(kill.position);
                self.report(Box::new(event), kill);
            }
            return;
        }
        if let Some((pid, ktime_ns)) = key {
            self.sent.push_back(Sent { pid, ktime_ns, at: now, event: Some(Box::new(event)) });
        }
    }

    /// A kill read from the log. Kills at or before the accounted position
    /// were reported before (by an earlier run) and are dropped; the kill
    /// line of a live event already sent gives that event's report.
    pub fn logged(&mut self, kill: LogKill, now: Duration) {
        if kill.position <= self.position && self.position != LogPosition::default() {
            return;
        }
        if let Some(i) = self.sent.iter().position(|sent| same_kill((sent.pid, sent.ktime_ns), &kill.event)) {
            self.advance(kill.position);
            if let Some(event) = self.sent.remove(i).and_then(|sent| sent.event) {
                self.report(event, kill);
            }
            return;
        }
        self.unclaimed.push_back((kill, now));
    }

    /// The report of `event`, when the kernel printed more than the kill line.
    fn report(&mut self, event: Box<OomEvent>, kill: LogKill) {
        if let Some(record) = report_record(*event, kill.event) {
            self.ready.push(Joined::Report(Box::new(record)));
        }
    }

    /// Log kills no live event claimed go out (`grace` after they were
    /// read); live events sent long enough ago are forgotten.
    pub fn expire(&mut self, now: Duration) {
        while self.unclaimed.front().is_some_and(|(_, read)| *read + self.grace <= now) {
            if let Some((kill, _)) = self.unclaimed.pop_front() {
                self.advance(kill.position);
                self.ready.push(Joined::Kill(Box::new(kill.event)));
            }
        }
        let keep_after = now.saturating_sub(MATCH_WINDOW + self.grace);
        while self.sent.front().is_some_and(|sent| sent.at < keep_after) {
            self.sent.pop_front();
        }
    }

    /// Stopping: log kills no live event claimed go out as they are (a live
    /// event still in flight is not read any more).
    pub fn flush(&mut self) {
        self.expire(Duration::MAX);
    }

    /// Whether a live event of this run still waits for its kill line.
    pub fn awaits_kill_line(&self) -> bool {
        self.sent.iter().any(|sent| sent.event.is_some())
    }

    /// What is ready to go out, oldest first.
    pub fn take_ready(&mut self) -> Vec<Joined> {
        std::mem::take(&mut self.ready)
    }

    /// The reports ready to go out, oldest first; the kills stay ready.
    pub fn take_reports(&mut self) -> Vec<KernelReportRecord> {
        let mut reports = Vec::new();
        for joined in std::mem::take(&mut self.ready) {
            match joined {
                Joined::Report(record) => reports.push(*record),
                kill @ Joined::Kill(_) => self.ready.push(kill),
            }
        }
        reports
    }

    /// When the oldest unclaimed log kill goes out, for the caller's timer.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.unclaimed.front().map(|(_, read)| *read + self.grace)
    }

    /// Everything up to here is accounted for: the daemon's state.
    pub fn position(&self) -> LogPosition {
        self.position
    }

    fn advance(&mut self, to: LogPosition) {
        self.position = self.position.max(to);
    }
}

/// The live kill of (victim pid, ktime_ns) is `logged`: the same victim at
/// (nearly) the same kernel time.
fn same_kill((pid, ktime_ns): (u32, u64), logged: &OomEvent) -> bool {
    let window = u64::try_from(MATCH_WINDOW.as_nanos()).unwrap_or(u64::MAX);
    pid == logged.victim.pid && logged.ktime_ns.is_some_and(|k| k.abs_diff(ktime_ns) <= window)
}

#[cfg(test)]
mod tests;
